//! Line charts (loss curves): several named series of (x, y) points on labelled axes.

use crate::error::Result;
use crate::plot::{ensure_font, plot_err, FONT, PALETTE};
use plotters::prelude::*;
use std::path::Path;

/// One named curve.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Draws `series` into a 900×540 PNG at `path`, with a title, axis labels and a legend.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    ensure_font();
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    crate::plot::on_backend!(path, (900, 540), |root| draw(
        root,
        path,
        title,
        x_label,
        y_label,
        series,
        (x0, x1, y0, y1)
    ))
}

/// Draws the chart on any backend (PNG or SVG).
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    (x0, x1, y0, y1): (f64, f64, f64, f64),
) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let font = |size| (FONT, size).into_font();
    let pad = (y1 - y0) * 0.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, font(26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(font(15))
        .axis_desc_style(font(18))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let color = RGBColor(r, g, b);
        let pts = s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite());
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .label_font(font(16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}
