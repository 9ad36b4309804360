//! A results folder and what goes into it: every file written atomically and recorded, tables as
//! CSV, figures as PNG and SVG, and a `report.md` built from the same tables and figures.
//!
//! ```text
//!   let mut out = Results::create(Path::new("results/e1"))?;
//!   out.table("accuracy.csv", &table)?;                      // a CSV, and recorded
//!   let fig = out.figure("loss_curve", "validation loss", |p| line_chart(p, ...))?;  // .png + .svg
//!   let mut report = Report::new("E1: ...");
//!   report.table(&table).figure(&fig);
//!   out.report(&report)?;                                    // report.md, links relative
//!   println!("{}", out.summary());                           // "wrote results/e1/{...}"
//! ```
//!
//! Nothing here prints: the summary line is a string for the caller (the CLI) to show.

use crate::error::{Error, Result};
use crate::io::{create_dir, write_atomic};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A results folder: where files go, and the list of what was written into it (in order).
#[derive(Debug)]
pub struct Results {
    dir: PathBuf,
    written: Vec<String>,
}

impl Results {
    /// Creates the folder (and its parents) or opens it if it exists; a file in the way, or a
    /// folder that cannot be made, is an error naming the path.
    pub fn create(dir: &Path) -> Result<Results> {
        create_dir(dir)?;
        Ok(Results { dir: dir.to_path_buf(), written: Vec::new() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a file called `name` goes (it may contain `/` for a subfolder).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Records a file that someone else wrote into the folder (a checkpoint saved by the
    /// training loop), so the summary names it.
    pub fn record(&mut self, name: &str) {
        if !self.written.iter().any(|w| w == name) {
            self.written.push(name.to_string());
        }
    }

    /// Writes `bytes` as `name`, atomically (a crash leaves the old file or the new, never half).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        write_atomic(&path, bytes)?;
        self.record(name);
        Ok(path)
    }

    pub fn text(&mut self, name: &str, text: &str) -> Result<PathBuf> {
        self.write(name, text.as_bytes())
    }

    /// Any serialisable value as pretty JSON.
    pub fn json<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::bad_value("json", name, &format!("cannot be written: {e}")))?;
        self.write(name, text.as_bytes())
    }

    /// A table as CSV (a header line, then one line per row).
    pub fn table(&mut self, name: &str, table: &Table) -> Result<PathBuf> {
        self.write(name, table.to_csv().as_bytes())
    }

    /// A figure as `stem.png` and `stem.svg`, both drawn by `draw` (a plot function that picks
    /// its backend by the extension of the path it is given). Each is drawn into a temporary
    /// file beside it and moved into place, so a failed drawing leaves the old picture.
    pub fn figure(&mut self, stem: &str, caption: &str, draw: impl Fn(&Path) -> Result<()>) -> Result<Figure> {
        for ext in ["png", "svg"] {
            let name = format!("{stem}.{ext}");
            let path = self.path(&name);
            if let Some(parent) = path.parent() {
                create_dir(parent)?;
            }
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let tmp = path.with_file_name(format!(".{file}.tmp-{}.{ext}", std::process::id()));
            let drawn = draw(&tmp).and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e)));
            if drawn.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            drawn?;
            self.record(&name);
        }
        Ok(Figure { png: format!("{stem}.png"), svg: format!("{stem}.svg"), caption: caption.to_string() })
    }

    /// `report.md`, rendered from `report`.
    pub fn report(&mut self, report: &Report) -> Result<PathBuf> {
        self.write("report.md", report.render().as_bytes())
    }

    /// Every file written, in order, relative to the folder.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    /// "wrote DIR/{a, b, c}": the summary line, derived from what was really written.
    pub fn summary(&self) -> String {
        format!("wrote {}/{{{}}}", self.dir.display(), self.written.join(", "))
    }
}

/// A figure in a results folder: its PNG and SVG (relative names) and a caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub png: String,
    pub svg: String,
    pub caption: String,
}

impl Figure {
    /// The same figure seen from a folder `prefix` above it (e.g. `"e1/seed-42"`), for a
    /// report that links into a cell's folder.
    pub fn under(&self, prefix: &str) -> Figure {
        let join = |f: &str| if prefix.is_empty() { f.to_string() } else { format!("{prefix}/{f}") };
        Figure { png: join(&self.png), svg: join(&self.svg), caption: self.caption.clone() }
    }
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// A measured number, written with enough digits to read it back exactly in CSV, and
    /// with `digits` decimals in markdown.
    Num(f64),
    /// A mean ± standard deviation over n runs (markdown only; CSV tables keep the three as
    /// separate columns).
    MeanStd {
        mean: f64,
        std: f64,
        n: usize,
    },
}

impl Value {
    fn csv(&self) -> String {
        match self {
            Value::Text(s) => csv_quote(s),
            Value::Int(i) => i.to_string(),
            Value::Num(x) => format_num(*x),
            Value::MeanStd { mean, std, n } => format!("{} ± {} (n = {n})", format_num(*mean), format_num(*std)),
        }
    }

    fn markdown(&self, digits: usize) -> String {
        match self {
            Value::Text(s) => s.replace('|', "\\|"),
            Value::Int(i) => i.to_string(),
            Value::Num(x) => format_fixed(*x, digits),
            Value::MeanStd { mean, std, n } if *n > 1 => {
                format!("{} ± {}", format_fixed(*mean, digits), format_fixed(*std, digits))
            }
            Value::MeanStd { mean, .. } => format_fixed(*mean, digits),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Num(x)
    }
}
impl From<usize> for Value {
    fn from(i: usize) -> Value {
        Value::Int(i as i64)
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Value {
        Value::Int(i as i64)
    }
}

/// A number for CSV: the shortest text that reads back as the same f64 (Rust's `{}`), and
/// "NaN" / "inf" / "-inf" for the non-finite.
fn format_num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x}")
    }
}

fn format_fixed(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        format_num(x)
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Named columns and rows of values: written as CSV, and shown in a report as markdown.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Decimals shown in markdown (CSV keeps every digit); default 3.
    pub digits: usize,
}

impl Table {
    pub fn new<S: AsRef<str>>(columns: &[S]) -> Table {
        Table { columns: columns.iter().map(|c| c.as_ref().to_string()).collect(), rows: Vec::new(), digits: 3 }
    }

    pub fn with_digits(mut self, digits: usize) -> Table {
        self.digits = digits;
        self
    }

    /// Appends a row; it must have one value per column (a programming error otherwise).
    pub fn push(&mut self, row: Vec<Value>) -> &mut Table {
        assert_eq!(row.len(), self.columns.len(), "a table row needs one value per column {:?}", self.columns);
        self.rows.push(row);
        self
    }

    pub fn to_csv(&self) -> String {
        let mut out = self.columns.iter().map(|c| csv_quote(c)).collect::<Vec<_>>().join(",");
        out.push('\n');
        for row in &self.rows {
            out += &row.iter().map(Value::csv).collect::<Vec<_>>().join(",");
            out.push('\n');
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.columns.join(" | "));
        let rule: Vec<&str> = self
            .rows
            .first()
            .map(|r| r.iter().map(|v| if matches!(v, Value::Text(_)) { "---" } else { "---:" }).collect())
            .unwrap_or_else(|| vec!["---"; self.columns.len()]);
        let _ = writeln!(out, "|{}|", rule.iter().map(|r| format!(" {r} ")).collect::<Vec<_>>().join("|"));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| v.markdown(self.digits)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }
}

/// One part of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading at level 2 (`##`) or deeper.
    Heading(usize, String),
    /// A paragraph of markdown.
    Text(String),
    Table(Table),
    Figure(Figure),
    /// A fenced block (the settings as TOML, a transcript).
    Code {
        lang: String,
        text: String,
    },
}

/// A markdown report: a title, then blocks in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Report {
    pub fn new(title: &str) -> Report {
        Report { title: title.to_string(), blocks: Vec::new() }
    }

    pub fn heading(&mut self, text: &str) -> &mut Report {
        self.blocks.push(Block::Heading(2, text.to_string()));
        self
    }

    pub fn subheading(&mut self, text: &str) -> &mut Report {
        self.blocks.push(Block::Heading(3, text.to_string()));
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Report {
        self.blocks.push(Block::Text(text.trim().to_string()));
        self
    }

    pub fn table(&mut self, table: &Table) -> &mut Report {
        self.blocks.push(Block::Table(table.clone()));
        self
    }

    pub fn figure(&mut self, figure: &Figure) -> &mut Report {
        self.blocks.push(Block::Figure(figure.clone()));
        self
    }

    pub fn code(&mut self, lang: &str, text: &str) -> &mut Report {
        self.blocks.push(Block::Code { lang: lang.to_string(), text: text.trim_end().to_string() });
        self
    }

    /// The markdown: the PNG embedded with its caption in italics under it and the SVG linked.
    pub fn render(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for block in &self.blocks {
            out.push('\n');
            match block {
                Block::Heading(level, text) => {
                    let _ = writeln!(out, "{} {text}", "#".repeat((*level).max(2)));
                }
                Block::Text(text) => {
                    let _ = writeln!(out, "{text}");
                }
                Block::Table(t) => out += &t.to_markdown(),
                Block::Figure(f) => {
                    let _ = writeln!(out, "![{}]({})\n", f.caption.replace(['[', ']'], ""), f.png);
                    let _ = writeln!(out, "*{}* ([SVG]({}))", f.caption, f.svg);
                }
                Block::Code { lang, text } => {
                    let _ = writeln!(out, "```{lang}\n{text}\n```");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_numbers_and_quotes_text() {
        let mut t = Table::new(&["arm", "acc", "n"]);
        t.push(vec!["a,b".into(), 0.1f64.into(), 3usize.into()]);
        t.push(vec!["plain".into(), f64::NAN.into(), 0usize.into()]);
        let csv = t.to_csv();
        assert_eq!(csv, "arm,acc,n\n\"a,b\",0.1,3\nplain,NaN,0\n");
        let back: f64 = "0.1".parse().unwrap();
        assert_eq!(back, 0.1);
    }

    #[test]
    fn markdown_aligns_numbers_right_and_shows_mean_std() {
        let mut t = Table::new(&["arm", "acc"]).with_digits(2);
        t.push(vec!["x".into(), Value::MeanStd { mean: 0.5, std: 0.25, n: 3 }]);
        t.push(vec!["y".into(), Value::MeanStd { mean: 0.5, std: f64::NAN, n: 1 }]);
        assert_eq!(t.to_markdown(), "| arm | acc |\n| --- | ---: |\n| x | 0.50 ± 0.25 |\n| y | 0.50 |\n");
    }

    #[test]
    fn report_embeds_png_and_links_svg() {
        let fig = Figure { png: "a.png".into(), svg: "a.svg".into(), caption: "the loss".into() };
        let mut r = Report::new("T");
        r.heading("H").text("para").figure(&fig.under("cell")).code("toml", "x = 1\n");
        let md = r.render();
        assert!(md.starts_with("# T\n"));
        assert!(md.contains("## H\n"));
        assert!(md.contains("![the loss](cell/a.png)"));
        assert!(md.contains("([SVG](cell/a.svg))"));
        assert!(md.contains("```toml\nx = 1\n```"));
    }
}
