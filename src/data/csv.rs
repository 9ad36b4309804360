//! Reading a classification data set from CSV: numeric feature columns, then an integer
//! class label in the last column. A first line that is not all numbers is a header.
//!
//! Every problem is an error naming the file and the line (a short row, a word where a
//! number should be, a label that is negative or fractional); nothing is skipped silently.

use crate::data::synthetic::Dataset;
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// The most classes a CSV file may have: labels are 0..MAX_CLASSES. A classifier gets one
/// output per class up to the largest label, so a label of 10⁹ would ask for a billion outputs.
pub const MAX_CLASSES: usize = 1 << 16;

/// Loads `path` into a [`Dataset`]; `classes` is one more than the largest label.
pub fn load(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let malformed = |line: usize, problem: String| Error::Malformed { path: path.to_path_buf(), line, problem };
    let mut rows: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            continue; // header
        }
        if fields.len() < 2 {
            return Err(malformed(
                line_no,
                format!("{} column(s); need at least one feature and a label", fields.len()),
            ));
        }
        match width {
            None => width = Some(fields.len()),
            Some(w) if w != fields.len() => {
                return Err(malformed(line_no, format!("{} columns, but earlier lines have {w}", fields.len())))
            }
            _ => {}
        }
        let (label, features) = fields.split_last().expect("at least two fields");
        for (c, f) in features.iter().enumerate() {
            let v: f32 =
                f.parse().map_err(|_| malformed(line_no, format!("column {}: {f:?} is not a number", c + 1)))?;
            if !v.is_finite() {
                return Err(malformed(line_no, format!("column {}: {f:?} is not finite", c + 1)));
            }
            rows.push(v);
        }
        let label: usize = label
            .parse()
            .map_err(|_| malformed(line_no, format!("label {label:?} is not a class number 0, 1, 2, …")))?;
        if label >= MAX_CLASSES {
            return Err(malformed(
                line_no,
                format!(
                    "label {label} is too large: class numbers must be 0..{MAX_CLASSES} (one model output per class)"
                ),
            ));
        }
        labels.push(label);
    }
    let width = width.ok_or_else(|| malformed(1, "no data rows".to_string()))?;
    let x = Array2::from_shape_vec((labels.len(), width - 1), rows).expect("each row pushed width − 1 features");
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if classes < 2 {
        return Err(malformed(1, "every row has the same label: a classifier needs at least two classes".into()));
    }
    Ok(Dataset { x, y: labels, classes })
}
