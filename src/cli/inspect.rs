//! `tinymoe inspect <checkpoint>`: what a checkpoint holds, read without running the model.
//!
//! Prints the header (model kind, format version, config, and the metadata saved beside the
//! weights: tokeniser, epoch, losses, seed), then one line per tensor: shape, element count,
//! L2 norm ‖t‖₂ = √(Σ tᵢ²), min, max and mean, and the total parameter count. Loading checks the
//! magic, version, lengths and the CRC-32 before any of this is printed, so "checksum OK" means
//! every byte of the file is the one that was saved. A kind this program cannot decode is
//! listed from its header alone (names and shapes, no statistics).

use crate::checkpoint::{self, TensorInfo};
use crate::cli::lm::KIND as LM_KIND;
use crate::engine::params::Tensors;
use crate::models::transformer_lm as lm;
use crate::train::LmState;
use clap::Args;
use ndarray::ArrayViewD;
use std::path::{Path, PathBuf};

/// What `tinymoe train lm` saves: the model, and the state that resumes its training.
type SavedLm = checkpoint::Trained<lm::Params<f32>, LmState>;

/// Loads a language-model checkpoint (validating all of it): its header, weights and, when it
/// was saved mid-training, its training state.
pub(super) fn load_lm(path: &Path) -> crate::Result<(checkpoint::Header, lm::Params<f32>, Option<LmState>)> {
    let (header, saved): (_, SavedLm) = checkpoint::load(path, LM_KIND)?;
    Ok((header, saved.model, saved.state))
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint written by tinymoe (e.g. results/lm/model.ckpt).
    pub checkpoint: PathBuf,
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
    // Decode the weights before printing anything, so a file that fails prints only the error.
    let lm = if header.kind == LM_KIND { Some(load_lm(path)?) } else { None };
    println!("{}", path.display());
    println!("  kind            {}", header.kind);
    println!("  format version  {}", checkpoint::VERSION);
    println!("  payload         {} bytes", header.payload_bytes);
    println!("  checksum OK     (CRC-32 over the whole file)");
    print_json("config", &header.config);
    print_json("meta", &header.meta);
    println!();

    if let Some((_, model, state)) = lm {
        print_state(state.as_ref());
        print_tensors(&model);
    } else {
        println!("  (kind {:?}: statistics need a model type this command knows; listing the header)", header.kind);
        print_header_tensors(&header.tensors);
    }
    Ok(())
}

/// Where training stood when the checkpoint was saved.
fn print_state(state: Option<&LmState>) {
    let Some(s) = state else {
        println!("  training state  none (weights only: cannot be resumed)\n");
        return;
    };
    let last = s.history.epochs.last();
    println!(
        "  training state  epoch {} ({} batches done), optimiser step {}, {} epoch(s) finished{}",
        s.epoch,
        s.batches_done,
        s.step,
        s.history.epochs.len(),
        if s.history.interrupted { ", interrupted" } else { "" }
    );
    if let Some(e) = last {
        println!("  last epoch      train loss {:.4}, validation loss {:.4}", e.train_loss, e.val_loss);
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

fn print_tensors<M: Tensors<f32>>(model: &M) {
    let tensors = model.tensors();
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
    println!("\n  total parameters: {total} in {} tensors", tensors.len());
}

fn print_header_tensors(tensors: &[TensorInfo]) {
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).max(6);
    println!("  {:<width$}  {:<14} {:>10}", "tensor", "shape", "elements");
    let mut total = 0usize;
    for t in tensors {
        let n: usize = t.shape.iter().product();
        total += n;
        println!("  {:<width$}  {:<14} {:>10}", t.name, shape_text(&t.shape), n);
    }
    println!("\n  total parameters: {total} in {} tensors", tensors.len());
}
