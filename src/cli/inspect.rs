//! `tinymoe inspect <checkpoint>`: what a checkpoint holds, read without running the model.
//!
//! Prints the header (model kind, format version, config, and the metadata saved beside the
//! weights: tokeniser, epoch, losses, seed), then one line per tensor: shape, element count,
//! L2 norm ‖t‖₂ = √(Σ tᵢ²), min, max and mean, and the total parameter count. Loading checks the
//! magic, version, lengths and the CRC-32 before any of this is printed, so "checksum OK" means
//! every byte of the file is the one that was saved. The statistics of a kind this program
//! cannot decode come from the tensors read by name (the header's offsets); a file without
//! offsets is listed from its header alone (names and shapes).
//!
//! `--prefix blocks.0` lists only the tensors a prefix selects: exactly the ones partial
//! loading ([`crate::transplant`]) would take from the file under that prefix.

use crate::checkpoint::{self, TensorInfo};
use crate::engine::params::Tensors;
use crate::error::Error;
use crate::run::lm::KIND as LM_KIND;
use crate::run::saved::load_lm;
use crate::train::{LmState, Standing};
use crate::transplant;
use clap::Args;
use ndarray::ArrayViewD;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint written by tinymoe (e.g. results/lm/model.ckpt).
    pub checkpoint: PathBuf,
    /// List only the tensors under this name prefix (e.g. embed, blocks.0, experts.2): the
    /// ones partial loading would take.
    #[arg(long)]
    pub prefix: Option<String>,
}

/// One tensor's summary statistics, accumulated in f64 so the sums do not lose digits.
struct Stats {
    l2: f64,
    min: f64,
    max: f64,
    mean: f64,
}

fn stats(t: &ArrayViewD<f32>) -> Stats {
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in t.iter() {
        let x = f64::from(x);
        sum += x;
        sum_sq += x * x;
        min = min.min(x);
        max = max.max(x);
    }
    let n = t.len().max(1) as f64;
    Stats { l2: sum_sq.sqrt(), min, max, mean: sum / n }
}

fn shape_text(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// `tinymoe inspect`.
pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let path = &a.checkpoint;
    // `read` validates the framing and the checksum; it fails with a one-line error naming the file.
    let (header, _) = checkpoint::read(path)?;
    let prefix = a.prefix.as_deref().unwrap_or("");
    let selected = |name: &str| transplant::suffix(prefix, name).is_some();
    if !header.tensors.iter().any(|t| selected(&t.name)) {
        let parts = transplant::parts(header.tensors.iter().map(|t| t.name.as_str()));
        return Err(Error::bad_value(
            "prefix",
            format!("{prefix:?}"),
            &format!("selects no tensor of {} (it has: {})", path.display(), parts.join(", ")),
        )
        .into());
    }
    // Decode the weights before printing anything, so a file that fails prints only the error.
    let lm = if header.kind == LM_KIND { Some(load_lm(path)?) } else { None };
    let by_name = match (&lm, header.tensors.iter().all(|t| t.offset.is_some())) {
        (None, true) => Some(checkpoint::read_tensors(path, selected)?.1),
        _ => None,
    };
    println!("{}", path.display());
    println!("  kind            {}", header.kind);
    println!("  format version  {}", checkpoint::VERSION);
    println!("  payload         {} bytes", header.payload_bytes);
    println!("  checksum OK     (CRC-32 over the whole file)");
    print_json("config", &header.config);
    print_json("meta", &header.meta);
    println!();

    if let Some((_, model, state)) = lm {
        print_state(state.as_ref().map(LmState::standing).as_ref());
        print_tensors(&model, prefix);
    } else if let Some(tensors) = by_name {
        let standing = header.meta.get("training").and_then(|t| serde_json::from_value::<Standing>(t.clone()).ok());
        print_state(standing.as_ref());
        print_tensors(&tensors, prefix);
    } else {
        println!("  (kind {:?}, saved without tensor offsets: listing the header)", header.kind);
        print_header_tensors(&header.tensors, prefix);
    }
    let parts = transplant::parts(header.tensors.iter().map(|t| t.name.as_str()));
    println!("  parts           {}   (for --prefix and partial loading)", parts.join(", "));
    Ok(())
}

/// "total parameters: …", or with a prefix, "under "blocks.0": … (of … in all)".
fn print_total(prefix: &str, count: usize, tensors: usize, all_count: usize, all_tensors: usize) {
    if prefix.is_empty() {
        println!("\n  total parameters: {count} in {tensors} tensors");
    } else {
        println!(
            "\n  parameters under {prefix:?}: {count} in {tensors} tensors (of {all_count} in {all_tensors} in all)"
        );
    }
}

/// Where training stood when the checkpoint was saved.
fn print_state(standing: Option<&Standing>) {
    let Some(s) = standing else {
        println!("  training state  none (weights only: cannot be resumed)\n");
        return;
    };
    println!(
        "  training state  epoch {} ({} batches done), optimiser step {}, {} epoch(s) finished{}",
        s.epoch,
        s.batches_done,
        s.step,
        s.epochs_finished,
        if s.interrupted { ", interrupted" } else { "" }
    );
    if let Some(e) = &s.last_epoch {
        let number = |key: &str| e.get(key).and_then(serde_json::Value::as_f64);
        if let (Some(train), Some(val)) = (number("train_loss"), number("val_loss")) {
            println!("  last epoch      train loss {train:.4}, validation loss {val:.4}");
        }
    }
    println!("  resumable       yes: optimiser moments, generator states and data position are saved\n");
}

/// A JSON value under a label, indented; objects one key per line.
fn print_json(label: &str, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    let mut lines = text.lines();
    println!("  {label:<15} {}", lines.next().unwrap_or(""));
    for line in lines {
        println!("  {:<15} {line}", "");
    }
}

fn print_tensors(model: &dyn Tensors<f32>, prefix: &str) {
    let all = model.tensors();
    let all_count = all.iter().map(|(_, t)| t.len()).sum();
    let all_tensors = all.len();
    let tensors: Vec<_> = all.into_iter().filter(|(n, _)| transplant::suffix(prefix, n).is_some()).collect();
    let width = tensors.iter().map(|(n, _)| n.len()).max().unwrap_or(6).max(6);
    println!(
        "  {:<width$}  {:<14} {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
        "tensor", "shape", "elements", "L2 norm", "min", "max", "mean"
    );
    let mut total = 0usize;
    for (name, t) in &tensors {
        let s = stats(t);
        total += t.len();
        println!(
            "  {name:<width$}  {:<14} {:>10}  {:>10.4}  {:>10.4}  {:>10.4}  {:>10.4}",
            shape_text(t.shape()),
            t.len(),
            s.l2,
            s.min,
            s.max,
            s.mean
        );
    }
    print_total(prefix, total, tensors.len(), all_count, all_tensors);
}

/// Π shape, saturating: a header from an unknown (or forged) file may list any shape.
fn elements(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
}

fn print_header_tensors(all: &[TensorInfo], prefix: &str) {
    let all_count = all.iter().fold(0usize, |n, t| n.saturating_add(elements(&t.shape)));
    let tensors: Vec<&TensorInfo> = all.iter().filter(|t| transplant::suffix(prefix, &t.name).is_some()).collect();
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).max(6);
    println!("  {:<width$}  {:<14} {:>10}", "tensor", "shape", "elements");
    let mut total = 0usize;
    for t in &tensors {
        let n = elements(&t.shape);
        total = total.saturating_add(n);
        println!("  {:<width$}  {:<14} {:>10}", t.name, shape_text(&t.shape), n);
    }
    print_total(prefix, total, tensors.len(), all_count, all.len());
}
