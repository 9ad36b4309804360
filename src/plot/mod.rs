//! Pictures as PNG: loss curves, 2-D decision/routing maps, heatmaps and framed digits.
//!
//! Architecture invariant: plot takes plain numbers and labels; it knows nothing of the
//! engine, moe or models. Text is drawn with an embedded DejaVu Sans, so a PNG renders the
//! same on any machine, with no system fonts.

pub mod digits;
pub mod heatmap;
pub mod line;
pub mod regions;
pub mod routing;

use crate::error::Error;
use std::path::Path;
use std::sync::Once;

/// The font family every plot uses.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters, once per process.
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, plotters::style::FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("the embedded DejaVu Sans is a valid TTF");
    });
}

/// Whether `path` asks for an SVG (by its extension, `.svg`); any other path is drawn as a PNG.
pub(crate) fn is_svg(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
}

/// Calls `$draw(root, …)` with a drawing area of `$size` on the backend that `$path` asks for:
/// an SVG for `.svg`, else a PNG. Every figure is drawn by one generic function, so the two
/// formats show the same picture.
macro_rules! on_backend {
    ($path:expr, $size:expr, |$root:ident| $body:expr) => {{
        use plotters::prelude::IntoDrawingArea as _;
        if $crate::plot::is_svg($path) {
            let $root = plotters::prelude::SVGBackend::new($path, $size).into_drawing_area();
            $body
        } else {
            let $root = plotters::prelude::BitMapBackend::new($path, $size).into_drawing_area();
            $body
        }
    }};
}
pub(crate) use on_backend;

/// A drawing error, with the file it was for.
pub(crate) fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot { path: path.to_path_buf(), problem: e.to_string() }
}

/// A colour per class/expert, readable on white and distinct side by side (Tableau 10).
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];
