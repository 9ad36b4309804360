//! A 2-D map of the plane coloured by a discrete choice (the predicted class, or the expert
//! a gate picks), with the data points drawn on top in their own class colours.

use crate::error::Result;
use crate::plot::{ensure_font, plot_err, FONT, PALETTE};
use ndarray::Array2;
use plotters::prelude::*;
use std::path::Path;

/// What to draw: `grid[[i, j]]` is the choice at x = x_range.0 + (j + ½)·Δx,
/// y = y_range.0 + (i + ½)·Δy; `points` are (x, y, class).
pub struct RegionMap<'a> {
    pub title: &'a str,
    pub grid: &'a Array2<usize>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// Names of the grid's choices, for the legend (e.g. "expert 0").
    pub region_names: &'a [String],
    pub points: &'a [(f64, f64, usize)],
}

/// Draws the map into a 700×700 PNG at `path`.
pub fn region_map(path: &Path, m: &RegionMap) -> Result<()> {
    ensure_font();
    crate::plot::on_backend!(path, (700, 700), |root| draw(root, path, m))
}

/// Draws the map on any backend (PNG or SVG).
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, path: &Path, m: &RegionMap) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let font = |size| (FONT, size).into_font();
    let mut chart = ChartBuilder::on(&root)
        .caption(m.title, font(24))
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(m.x_range.0..m.x_range.1, m.y_range.0..m.y_range.1)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("feature 1")
        .y_desc("feature 2")
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let (rows, cols) = m.grid.dim();
    let dx = (m.x_range.1 - m.x_range.0) / cols as f64;
    let dy = (m.y_range.1 - m.y_range.0) / rows as f64;
    let tint = |k: usize| {
        let (r, g, b) = PALETTE[k % PALETTE.len()];
        // 35 % colour on white: regions stay light so the points read on top of them.
        let mix = |c: u8| (255.0 - 0.35 * (255.0 - c as f64)) as u8;
        RGBColor(mix(r), mix(g), mix(b))
    };
    chart
        .draw_series(m.grid.indexed_iter().map(|((i, j), &k)| {
            let x = m.x_range.0 + j as f64 * dx;
            let y = m.y_range.0 + i as f64 * dy;
            Rectangle::new([(x, y), (x + dx, y + dy)], tint(k).filled())
        }))
        .map_err(|e| plot_err(path, e))?;
    for (k, name) in m.region_names.iter().enumerate() {
        let c = tint(k);
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(|e| plot_err(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
    }
    chart
        .draw_series(m.points.iter().map(|&(x, y, k)| {
            let (r, g, b) = PALETTE[k % PALETTE.len()];
            Circle::new((x, y), 2, RGBColor(r, g, b).filled())
        }))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_series_labels()
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}
