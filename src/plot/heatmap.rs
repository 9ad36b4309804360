//! Heatmaps: a matrix of numbers drawn as coloured cells, with a label on every row and
//! every column, alone or as a grid of panels in one PNG.
//!
//! Used for attention maps (queries × keys, token text on both axes, one panel per head) and
//! routing maps (domain × expert, digit × expert). A value v maps linearly onto a white →
//! dark blue scale (matplotlib's "Blues") by t = (v − lo) / (hi − lo), clamped to [0, 1];
//! the scale is drawn as a colour bar with lo, the midpoint and hi written beside it. NaN is
//! drawn grey (and gets its own key under the bar), so a missing value is visible, not a panic.
//!
//! Layout, in pixels: square cells whose side shrinks as the matrix grows (48 px for a few
//! cells, 18 px — still room for a label — up to ~100 rows or columns, then smaller), so the
//! image grows with the matrix but stays under ~2000 px a side per panel. Labels longer than
//! [`LABEL_CHARS`] lose their middle to "…"; column labels wider than a cell are turned
//! upright; when cells are smaller than a line of text, every k-th label is drawn. Cells of
//! 34 px or more (up to ~20 rows and columns alone, ~12 in a 2×2 grid) get their value
//! written in them ([`Annotate::Auto`]), all to the same number of decimals.
//!
//! Errors (never panics) as `Error::Plot` naming the file: an empty matrix, label counts that
//! do not match the matrix, a colour range that is not finite or not increasing.

use crate::error::Result;
use crate::plot::{ensure_font, plot_err, FONT};
use ndarray::{ArrayView2, ArrayView3, Axis};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::path::Path;

/// Labels longer than this many characters are shortened to it, with "…" in the middle.
pub const LABEL_CHARS: usize = 16;

/// Whether to write each value inside its cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotate {
    /// When the cells are big enough for the text (about 30 px, i.e. up to ~20 rows/columns).
    Auto,
    Always,
    Never,
}

/// One heatmap: `values[[i, j]]` is drawn in row i (from the top), column j (from the left).
///
/// Build it with [`Heatmap::new`] and override fields with struct update syntax:
/// `Heatmap { x_desc: "expert", ..Heatmap::new("routing", v.view(), &domains, &experts) }`.
#[derive(Debug, Clone)]
pub struct Heatmap<'a> {
    pub title: &'a str,
    /// [rows, cols]. NaN is drawn grey; ±∞ at the ends of the scale.
    pub values: ArrayView2<'a, f64>,
    /// One per row, drawn left of the grid.
    pub row_labels: &'a [String],
    /// One per column, drawn under the grid.
    pub col_labels: &'a [String],
    /// Axis titles: what the columns are (e.g. "key", "expert") ...
    pub x_desc: &'a str,
    /// ... and what the rows are ("query", "domain").
    pub y_desc: &'a str,
    /// The values at the white and the dark end of the scale; None: the finite min and max.
    pub range: Option<(f64, f64)>,
    pub annotate: Annotate,
}

impl<'a> Heatmap<'a> {
    /// No axis titles, the data's own range, values written in the cells when they fit.
    pub fn new(
        title: &'a str,
        values: ArrayView2<'a, f64>,
        row_labels: &'a [String],
        col_labels: &'a [String],
    ) -> Heatmap<'a> {
        Heatmap { title, values, row_labels, col_labels, x_desc: "", y_desc: "", range: None, annotate: Annotate::Auto }
    }
}

/// Draws one heatmap, with its colour bar, into a PNG at `path`.
pub fn heatmap(path: &Path, h: &Heatmap) -> Result<()> {
    draw_figure(path, "", std::slice::from_ref(h), 1)
}

/// Draws `panels` into one PNG at `path`, `columns` panels per line (0: ⌈√n⌉), under a
/// common `title`. Every panel gets the same cell size and **one shared colour scale**
/// (the union of the panels' ranges), so colours compare across panels.
pub fn heatmap_grid(path: &Path, title: &str, panels: &[Heatmap], columns: usize) -> Result<()> {
    if panels.is_empty() {
        return Err(plot_err(path, format!("heatmap grid '{title}' has no panels")));
    }
    let columns = if columns == 0 { (panels.len() as f64).sqrt().ceil() as usize } else { columns };
    draw_figure(path, title, panels, columns.min(panels.len()))
}

/// Attention maps: `weights` [n_heads, seq(query), seq(key)] as one panel per head ("head 0",
/// "head 1", …), keys on x and queries on y, each axis labelled with its tokens. The shared
/// scale runs from 0 to the largest weight (a row of P sums to 1, so with many keys a fixed
/// 0…1 scale would leave most maps white).
pub fn attention_grid(
    path: &Path,
    title: &str,
    weights: ArrayView3<f64>,
    query_tokens: &[String],
    key_tokens: &[String],
) -> Result<()> {
    let heads = weights.len_of(Axis(0));
    let top = weights.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let range = Some((0.0, if top > 0.0 { top } else { 1.0 }));
    let names: Vec<String> = (0..heads).map(|h| format!("head {h}")).collect();
    let panels: Vec<Heatmap> = names
        .iter()
        .zip(weights.outer_iter())
        .map(|(name, w)| Heatmap {
            x_desc: "key",
            y_desc: "query",
            range,
            ..Heatmap::new(name, w, query_tokens, key_tokens)
        })
        .collect();
    heatmap_grid(path, title, &panels, 0)
}

// ---------------------------------------------------------------------------------------
// Checks, colours and sizes

/// Empty matrices, wrong label counts and bad ranges are errors, named with both counts.
fn validate(path: &Path, h: &Heatmap) -> Result<()> {
    let (rows, cols) = h.values.dim();
    let what = format!("heatmap '{}'", h.title);
    if rows == 0 || cols == 0 {
        return Err(plot_err(path, format!("{what}: the matrix is empty ({rows} rows × {cols} columns)")));
    }
    if h.row_labels.len() != rows {
        let n = h.row_labels.len();
        return Err(plot_err(path, format!("{what}: {n} row labels for a matrix with {rows} rows")));
    }
    if h.col_labels.len() != cols {
        let n = h.col_labels.len();
        return Err(plot_err(path, format!("{what}: {n} column labels for a matrix with {cols} columns")));
    }
    if let Some((lo, hi)) = h.range {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(plot_err(path, format!("{what}: colour range ({lo}, {hi}) must be finite with lo < hi")));
        }
    }
    Ok(())
}

/// The linear map from values to colours.
struct Scale {
    lo: f64,
    hi: f64,
}

/// matplotlib's "Blues", sampled: white-ish at 0, dark blue at 1.
const BLUES: [(f64, f64, f64); 5] =
    [(247.0, 251.0, 255.0), (198.0, 219.0, 239.0), (107.0, 174.0, 214.0), (33.0, 113.0, 181.0), (8.0, 48.0, 107.0)];
const NAN_GREY: RGBColor = RGBColor(170, 170, 170);

impl Scale {
    /// The union of the panels' ranges (explicit, or the finite min and max of the data).
    fn of(panels: &[Heatmap]) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in panels {
            let (a, b) = p.range.unwrap_or_else(|| {
                p.values
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
            });
            lo = lo.min(a);
            hi = hi.max(b);
        }
        if lo > hi {
            // No finite value anywhere (all NaN): any range will do.
            (lo, hi) = (0.0, 1.0);
        } else if lo == hi {
            // A constant matrix: centre the one value on the scale.
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        Scale { lo, hi }
    }

    fn color(&self, v: f64) -> RGBColor {
        if v.is_nan() {
            return NAN_GREY;
        }
        let t = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        // Piecewise linear between the sampled stops.
        let x = t * (BLUES.len() - 1) as f64;
        let k = (x.floor() as usize).min(BLUES.len() - 2);
        let f = x - k as f64;
        let (a, b) = (BLUES[k], BLUES[k + 1]);
        let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

/// Black text on light cells, white on dark ones (by perceived luminance).
fn text_color_on(c: RGBColor) -> RGBColor {
    let luminance = (0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64) / 255.0;
    if luminance > 0.55 {
        BLACK
    } else {
        WHITE
    }
}

/// A value in a cell, with as many decimals as the scale's span calls for (so that a
/// probability of 3e-7 reads "0.00", like its neighbours).
fn fmt_cell(v: f64, scale: &Scale) -> String {
    let span = scale.hi - scale.lo;
    if v.is_nan() {
        "NaN".into()
    } else if !(1e-3..1e4).contains(&span) {
        format!("{v:.1e}")
    } else {
        let decimals = match span {
            s if s >= 100.0 => 0,
            s if s >= 10.0 => 1,
            s if s >= 0.1 => 2,
            s if s >= 0.01 => 3,
            _ => 4,
        };
        format!("{v:.decimals$}")
    }
}

/// A tick value: 3 significant digits or so.
fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        "NaN".into()
    } else if a == 0.0 {
        "0".into()
    } else if !(0.001..1000.0).contains(&a) {
        format!("{v:.1e}")
    } else if a < 0.01 {
        format!("{v:.3}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `s` cut to at most `max` characters by an "…" in the middle: the end is kept because
/// labels that differ, differ at the end as often as not ("expert 10", "expert 11").
fn truncate(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail = max.saturating_sub(1) / 2;
    let head = max.saturating_sub(1) - tail;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(n - tail));
    t
}

const PAD: u32 = 10;
const MIN_CELL: u32 = 18; // the smallest cell that still holds a 10 px label
const MAX_CELL: u32 = 48;
const ANNOTATE_CELL: u32 = 34;
const AXIS_PX: f64 = 15.0;
const COLORBAR_W: u32 = 110;

/// Pixel sizes shared by every panel of one figure.
struct Layout {
    cell: u32,
    label_px: f64,
    /// Draw every `row_step`-th row label (1 = all of them).
    row_step: usize,
    col_step: usize,
    /// Column labels turned to read bottom-up (they are wider than a cell).
    col_upright: bool,
    row_label_w: u32,
    col_label_h: u32,
    title_px: f64,
    title_h: u32,
    y_desc_w: u32,
    x_desc_h: u32,
    grid_h: u32,
    panel_w: u32,
    panel_h: u32,
}

/// Width in pixels of `s` in the plot font at `px`.
fn text_w(path: &Path, s: &str, px: f64) -> Result<u32> {
    Ok((FONT, px).into_font().box_size(s).map_err(|e| plot_err(path, e))?.0)
}

/// Cell side for an n-cell axis: aim at `target` px in all, never beyond `max` px.
fn cell_size(n: usize, target: u32, max: u32) -> u32 {
    let n = n as u32;
    let cell = (target / n).clamp(MIN_CELL, MAX_CELL);
    if n * cell > max {
        (max / n).max(2)
    } else {
        cell
    }
}

fn layout(path: &Path, panels: &[Heatmap], columns: usize, title_px: f64) -> Result<Layout> {
    let rows = panels.iter().map(|p| p.values.nrows()).max().expect("at least one panel");
    let cols = panels.iter().map(|p| p.values.ncols()).max().expect("at least one panel");
    // One panel aims at 720 px of cells; side by side, each gets its share of ~1440 px.
    let columns = columns as u32;
    let (target, max) = if columns <= 1 { (720, 1800) } else { ((1440 / columns).max(320), (3000 / columns).max(400)) };
    let cell = cell_size(rows.max(cols), target, max);
    let label_px = (cell as f64 * 0.62).clamp(10.0, 15.0);
    let line = label_px + 3.0; // the height one label needs
    let step = |cell: u32| (line / cell as f64).ceil().max(1.0) as usize;

    let mut row_label_w = 0;
    let mut widest_col = 0;
    for p in panels {
        for l in p.row_labels {
            row_label_w = row_label_w.max(text_w(path, &truncate(l, LABEL_CHARS), label_px)?);
        }
        for l in p.col_labels {
            widest_col = widest_col.max(text_w(path, &truncate(l, LABEL_CHARS), label_px)?);
        }
    }
    let col_upright = widest_col + 4 > cell;
    let col_label_h = if col_upright { widest_col + 10 } else { line as u32 + 8 };
    let title_h = if panels.iter().any(|p| !p.title.is_empty()) { title_px as u32 + 14 } else { 0 };
    let y_desc_w = if panels.iter().any(|p| !p.y_desc.is_empty()) { AXIS_PX as u32 + 10 } else { 0 };
    let x_desc_h = if panels.iter().any(|p| !p.x_desc.is_empty()) { AXIS_PX as u32 + 12 } else { 0 };
    let (grid_w, grid_h) = (cols as u32 * cell, rows as u32 * cell);
    let row_label_w = row_label_w + 8;
    let mut panel_w = PAD + y_desc_w + row_label_w + grid_w + PAD;
    for p in panels {
        panel_w = panel_w.max(text_w(path, p.title, title_px)? + 2 * PAD);
    }
    let panel_h = title_h + PAD / 2 + grid_h + col_label_h + x_desc_h + PAD;
    Ok(Layout {
        cell,
        label_px,
        row_step: step(cell),
        col_step: if col_upright { step(cell) } else { 1 },
        col_upright,
        row_label_w,
        col_label_h,
        title_px,
        title_h,
        y_desc_w,
        x_desc_h,
        grid_h,
        panel_w,
        panel_h,
    })
}

// ---------------------------------------------------------------------------------------
// Drawing

fn draw_figure(path: &Path, title: &str, panels: &[Heatmap], columns: usize) -> Result<()> {
    for p in panels {
        validate(path, p)?;
    }
    ensure_font();
    // A lone heatmap's own title is the figure's title; in a grid the panel titles are smaller.
    let (fig_title_px, panel_title_px) = if title.is_empty() { (0.0, 20.0) } else { (22.0, 15.0) };
    let lay = layout(path, panels, columns, panel_title_px)?;
    let scale = Scale::of(panels);
    let lines = panels.len().div_ceil(columns) as u32;
    let fig_title_h = if title.is_empty() { 0 } else { fig_title_px as u32 + 20 };
    let bar_h = lay.grid_h.clamp(120, 360);
    let width = (columns as u32 * lay.panel_w + COLORBAR_W).max(text_w(path, title, fig_title_px)? + 2 * PAD);
    let height = (fig_title_h + lines * lay.panel_h).max(fig_title_h + lay.title_h + bar_h + 70);

    let geometry = Geometry { width, fig_title_h, fig_title_px, bar_h };
    crate::plot::on_backend!(path, (width, height), |root| draw_on(
        root, path, title, panels, columns, &lay, &scale, &geometry
    ))
}

/// The figure's measured sizes, computed once for either backend.
struct Geometry {
    width: u32,
    fig_title_h: u32,
    fig_title_px: f64,
    bar_h: u32,
}

/// Draws the laid-out figure on any backend (PNG or SVG).
#[allow(clippy::too_many_arguments)]
fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    path: &Path,
    title: &str,
    panels: &[Heatmap],
    columns: usize,
    lay: &Layout,
    scale: &Scale,
    g: &Geometry,
) -> Result<()> {
    let Geometry { width, fig_title_h, fig_title_px, bar_h } = *g;
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    if !title.is_empty() {
        let style = (FONT, fig_title_px).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(title, &style, (width as i32 / 2, (fig_title_h / 2) as i32)).map_err(|e| plot_err(path, e))?;
    }
    for (k, p) in panels.iter().enumerate() {
        let ox = (k % columns) as u32 * lay.panel_w;
        let oy = fig_title_h + (k / columns) as u32 * lay.panel_h;
        draw_panel(&root, (ox as i32, oy as i32), lay, p, scale).map_err(|e| plot_err(path, e))?;
    }
    let any_nan = panels.iter().any(|p| p.values.iter().any(|v| v.is_nan()));
    let bar_x = (columns as u32 * lay.panel_w + 14) as i32;
    let bar_y = (fig_title_h + lay.title_h + PAD / 2) as i32;
    draw_colorbar(&root, (bar_x, bar_y), bar_h as i32, scale, any_nan).map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// One panel with its top-left corner at `(ox, oy)`.
fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (ox, oy): (i32, i32),
    lay: &Layout,
    h: &Heatmap,
    scale: &Scale,
) -> DrawResult<DB> {
    let (rows, cols) = h.values.dim();
    let cell = lay.cell as i32;
    let x0 = ox + (PAD + lay.y_desc_w + lay.row_label_w) as i32;
    let y0 = oy + (lay.title_h + PAD / 2) as i32;
    let (x1, y1) = (x0 + cols as i32 * cell, y0 + rows as i32 * cell);
    let font = |px: f64| (FONT, px).into_font();

    if !h.title.is_empty() {
        let style = font(lay.title_px).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        // Centred over the grid, unless the title is wider than that.
        let grid_centre = (x0 + x1) / 2;
        let half_title = font(lay.title_px).box_size(h.title).map(|(w, _)| w as i32 / 2).unwrap_or(0);
        let centre =
            grid_centre.min(ox + lay.panel_w as i32 - PAD as i32 - half_title).max(ox + PAD as i32 + half_title);
        root.draw_text(h.title, &style, (centre, oy + lay.title_h as i32 / 2 + 2))?;
    }

    let annotate = match h.annotate {
        Annotate::Always => true,
        Annotate::Never => false,
        Annotate::Auto => lay.cell >= ANNOTATE_CELL,
    };
    let annotate_px = (lay.cell as f64 * 0.3).clamp(9.0, 13.0);
    for ((i, j), &v) in h.values.indexed_iter() {
        let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
        let c = scale.color(v);
        root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], c.filled()))?;
        if annotate {
            let ink = text_color_on(c);
            let style = font(annotate_px).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
            root.draw_text(&fmt_cell(v, scale), &style, (x + cell / 2, y + cell / 2))?;
        }
    }
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], RGBColor(120, 120, 120).stroke_width(1)))?;

    // Row labels, right-aligned against the grid.
    let row_style = font(lay.label_px).color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, l) in h.row_labels.iter().enumerate().step_by(lay.row_step) {
        root.draw_text(&truncate(l, LABEL_CHARS), &row_style, (x0 - 5, y0 + i as i32 * cell + cell / 2))?;
    }
    // Column labels under the grid: level if they fit in a cell, else reading bottom-up
    // with their last letter against the grid.
    let col_style = if lay.col_upright {
        font(lay.label_px).transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center))
    } else {
        font(lay.label_px).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top))
    };
    for (j, l) in h.col_labels.iter().enumerate().step_by(lay.col_step) {
        root.draw_text(&truncate(l, LABEL_CHARS), &col_style, (x0 + j as i32 * cell + cell / 2, y1 + 5))?;
    }

    let desc = font(AXIS_PX).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
    if !h.x_desc.is_empty() {
        let y = y1 + lay.col_label_h as i32 + lay.x_desc_h as i32 / 2;
        root.draw_text(h.x_desc, &desc, ((x0 + x1) / 2, y))?;
    }
    if !h.y_desc.is_empty() {
        let style =
            font(AXIS_PX).transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(h.y_desc, &style, (ox + PAD as i32 + lay.y_desc_w as i32 / 2, (y0 + y1) / 2))?;
    }
    Ok(())
}

/// The scale as a vertical bar, dark (hi) on top, with hi, the midpoint and lo beside it,
/// and a grey "NaN" key under it when some value is NaN.
fn draw_colorbar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    bar_h: i32,
    scale: &Scale,
    any_nan: bool,
) -> DrawResult<DB> {
    const BAR_W: i32 = 18;
    for k in 0..bar_h {
        // Row k from the top shows the value at fraction 1 − k/(bar_h − 1) of the range.
        let t = 1.0 - k as f64 / (bar_h - 1) as f64;
        let c = scale.color(scale.lo + t * (scale.hi - scale.lo));
        root.draw(&Rectangle::new([(x, y + k), (x + BAR_W, y + k + 1)], c.filled()))?;
    }
    root.draw(&Rectangle::new([(x, y), (x + BAR_W, y + bar_h)], RGBColor(120, 120, 120).stroke_width(1)))?;
    let style = (FONT, 13.0).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let mid = 0.5 * (scale.lo + scale.hi);
    for (value, at) in [(scale.hi, y), (mid, y + bar_h / 2), (scale.lo, y + bar_h - 1)] {
        root.draw(&PathElement::new(vec![(x + BAR_W, at), (x + BAR_W + 4, at)], BLACK))?;
        root.draw_text(&fmt_value(value), &style, (x + BAR_W + 7, at))?;
    }
    if any_nan {
        let ny = y + bar_h + 16;
        root.draw(&Rectangle::new([(x, ny), (x + BAR_W, ny + 14)], NAN_GREY.filled()))?;
        root.draw_text("NaN", &style, (x + BAR_W + 7, ny + 7))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_long_labels_with_an_ellipsis() {
        assert_eq!(truncate("short", 16), "short");
        assert_eq!(truncate("abcdefghij", 5), "ab…ij");
        assert_eq!(truncate("a long column label 3", 16), "a long c…label 3");
        assert_eq!(truncate("ééééé", 5), "ééééé");
    }

    #[test]
    fn the_scale_runs_white_to_dark_blue_and_nan_is_grey() {
        let s = Scale { lo: 0.0, hi: 2.0 };
        assert_eq!(s.color(0.0), RGBColor(247, 251, 255));
        assert_eq!(s.color(2.0), RGBColor(8, 48, 107));
        assert_eq!(s.color(-5.0), s.color(0.0));
        assert_eq!(s.color(f64::INFINITY), s.color(2.0));
        assert_eq!(s.color(f64::NAN), NAN_GREY);
    }

    #[test]
    fn cell_values_share_their_decimals() {
        let probs = Scale { lo: 0.0, hi: 0.9 };
        assert_eq!(fmt_cell(3e-7, &probs), "0.00");
        assert_eq!(fmt_cell(0.25, &probs), "0.25");
        let counts = Scale { lo: 0.0, hi: 250.0 };
        assert_eq!(fmt_cell(12.0, &counts), "12");
        assert_eq!(fmt_cell(f64::NAN, &counts), "NaN");
    }

    #[test]
    fn cells_shrink_as_the_matrix_grows_within_limits() {
        assert_eq!(cell_size(3, 720, 1800), MAX_CELL);
        assert_eq!(cell_size(24, 720, 1800), 30);
        assert_eq!(cell_size(80, 720, 1800), MIN_CELL);
        assert_eq!(cell_size(300, 720, 1800), 6);
        assert_eq!(cell_size(5000, 720, 1800), 2);
    }
}
