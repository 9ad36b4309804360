//! Routing heatmaps: a class × expert matrix (domain × expert in E2–E4, digit × expert in E1,
//! sentiment × expert in E6) as a labelled PNG with the number written in every cell.
//!
//! The matrix is usually a table of the routing metrics (`mean_gate` or `top_share` of the
//! moe metrics): shares and mean gates, all in [0, 1]. Such a matrix is drawn on a fixed
//! 0 … 1 colour scale, so that two heatmaps (seeds, control vs pretrained) compare by colour;
//! any other matrix (counts, risk differences) uses its own min … max. A NaN (a class absent
//! from the batch) is drawn grey. Cells are annotated up to 24 rows and columns; larger
//! matrices annotate only where the cells are big enough ([`Annotate::Auto`]).
//!
//! Drawing is [`super::heatmap::heatmap`]'s: this file only picks the scale, the
//! axis titles and the annotation.

use crate::error::Result;
use crate::plot::heatmap::{heatmap, Annotate, Heatmap};
use ndarray::ArrayView2;
use std::path::Path;

/// The largest matrix side whose every cell gets its number.
pub const ANNOTATE_UP_TO: usize = 24;

/// Draws `matrix` [rows, experts] at `path`: `row_labels` on the left (what the rows are is
/// `rows_are`, e.g. "domain", "digit"), `col_labels` under the grid (the experts), the
/// title on top. Errors (never panics) on an empty matrix or label counts that do not match.
pub fn routing_heatmap(
    path: &Path,
    matrix: ArrayView2<f64>,
    row_labels: &[String],
    col_labels: &[String],
    title: &str,
    rows_are: &str,
) -> Result<()> {
    let finite = || matrix.iter().copied().filter(|v| v.is_finite());
    // Shares and gates (all in [0, 1]) get the fixed scale; anything else its own range.
    let is_share = finite().count() > 0 && finite().all(|v| (0.0..=1.0).contains(&v));
    let range = if is_share { Some((0.0, 1.0)) } else { None };
    let (rows, cols) = matrix.dim();
    let annotate = if rows.max(cols) <= ANNOTATE_UP_TO { Annotate::Always } else { Annotate::Auto };
    let h = Heatmap {
        x_desc: "expert",
        y_desc: rows_are,
        range,
        annotate,
        // A re-borrow: Heatmap ties all its borrows to one lifetime.
        ..Heatmap::new(title, matrix.view(), row_labels, col_labels)
    };
    heatmap(path, &h)
}
