//! Small grayscale images in a grid, each framed in a colour: E1's picture of test digits, one
//! row per class, each digit framed in the colour of the expert whose gate is largest for it.
//! The picture a learner looks at first: a row that is all one colour is a class the gate
//! sends to one expert.
//!
//! ```text
//!   cells[row][col] = (ink [side·side] in 0 … 1, colour index into PALETTE)
//!   pixel (px, py) of a cell ← 255·(1 − ink)  (white paper, black ink), scaled ×SCALE
//!   each cell: FRAME px of its colour around it, GAP px of white between cells
//!   a legend strip on top: one swatch per colour in `legend`, in order
//! ```
//! Drawn pixel by pixel with the `image` crate (no text, so no font): the caption beside the
//! picture says which colour is which expert (the swatches are in expert order). Encoded as a
//! PNG in memory, so the results writer can write it atomically like any other file.

use crate::error::{Error, Result};
use crate::plot::PALETTE;
use image::{ImageEncoder, Rgb, RgbImage};
use std::path::Path;

/// Each image pixel becomes SCALE × SCALE screen pixels.
pub const SCALE: u32 = 2;
/// Width of the coloured frame around each image, and of the white gap between cells.
pub const FRAME: u32 = 3;
pub const GAP: u32 = 2;

/// One framed image: `ink` is side·side values in [0, 1] (1 = black), row-major; `colour`
/// indexes [`PALETTE`] (modulo its length).
#[derive(Debug, Clone)]
pub struct Framed {
    pub ink: Vec<f32>,
    pub colour: usize,
}

/// The PNG bytes of `cells` (rows of framed `side`×`side` images, rows may differ in length)
/// under a legend strip of the colours in `legend`. `name` is only for the error message.
/// Errors on no cells or an image whose length is not side·side.
pub fn framed_grid_png(name: &Path, side: usize, cells: &[Vec<Framed>], legend: &[usize]) -> Result<Vec<u8>> {
    let bad = |problem: String| Error::Plot { path: name.to_path_buf(), problem };
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    if columns == 0 || side == 0 {
        return Err(bad("no images to draw".into()));
    }
    if let Some(f) = cells.iter().flatten().find(|f| f.ink.len() != side * side) {
        return Err(bad(format!("an image has {} pixels, a {side}×{side} image has {}", f.ink.len(), side * side)));
    }
    let cell = side as u32 * SCALE + 2 * FRAME; // one framed image, without the gap
    let pitch = cell + GAP;
    let legend_h = if legend.is_empty() { 0 } else { 14 + GAP };
    // Wide enough for the grid and for the legend, whichever is wider.
    let width = (GAP + columns as u32 * pitch).max(GAP + legend.len() as u32 * (24 + GAP));
    let height = GAP + legend_h + cells.len() as u32 * pitch;
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let colour = |i: usize| {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        Rgb([r, g, b])
    };
    let fill = |img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, c: Rgb<u8>| {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img.put_pixel(x, y, c);
            }
        }
    };
    // The legend: one 24 × 14 swatch per colour, left to right.
    for (k, &c) in legend.iter().enumerate() {
        fill(&mut img, GAP + k as u32 * (24 + GAP), GAP, 24, 14, colour(c));
    }
    for (r, row) in cells.iter().enumerate() {
        for (c, f) in row.iter().enumerate() {
            let (x0, y0) = (GAP + c as u32 * pitch, GAP + legend_h + r as u32 * pitch);
            fill(&mut img, x0, y0, cell, cell, colour(f.colour));
            for py in 0..side {
                for px in 0..side {
                    // White paper, black ink; the clamp keeps a value outside [0, 1] drawable.
                    let v = (255.0 * (1.0 - f.ink[py * side + px].clamp(0.0, 1.0))).round() as u8;
                    let (sx, sy) = (x0 + FRAME + px as u32 * SCALE, y0 + FRAME + py as u32 * SCALE);
                    fill(&mut img, sx, sy, SCALE, SCALE, Rgb([v, v, v]));
                }
            }
        }
    }
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), width, height, image::ColorType::Rgb8)
        .map_err(|e| bad(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_take_their_palette_colour_and_ink_is_black() {
        let ink = |v: f32| Framed { ink: vec![v; 4], colour: 1 };
        let png = framed_grid_png(Path::new("t.png"), 2, &[vec![ink(1.0), ink(0.0)]], &[0, 1]).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let cell = 2 * SCALE + 2 * FRAME;
        assert_eq!(img.width(), (GAP + 2 * (cell + GAP)).max(GAP + 2 * (24 + GAP)), "the grid or the legend");
        let top = GAP + 14 + GAP;
        let (r, g, b) = PALETTE[1];
        assert_eq!(img.get_pixel(GAP, top).0, [r, g, b], "the frame");
        assert_eq!(img.get_pixel(GAP + FRAME, top + FRAME).0, [0, 0, 0], "full ink is black");
        assert_eq!(img.get_pixel(GAP + cell + GAP + FRAME, top + FRAME).0, [255, 255, 255], "no ink is white");
        let (r, g, b) = PALETTE[0];
        assert_eq!(img.get_pixel(GAP, GAP).0, [r, g, b], "the first legend swatch");
        assert!(framed_grid_png(Path::new("t.png"), 3, &[vec![ink(1.0)]], &[]).is_err());
        assert!(framed_grid_png(Path::new("t.png"), 2, &[], &[]).is_err());
    }
}
