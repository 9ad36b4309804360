//! Progress bars (indicatif) for long work: step, loss and throughput. Drawn on stderr,
//! and only where stderr is a terminal, so logs and CI output stay clean.

use crate::train::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `total` steps, labelled `what`.
pub fn bar(total: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} steps  {msg}  ({elapsed} elapsed, {eta} left)",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Moves the bar to this step and shows the loss and samples/s (tokens/s for an LM).
pub fn update(pb: &ProgressBar, p: &Progress) {
    pb.set_position(p.step as u64);
    let speed = match p.tokens_per_s {
        Some(t) => format!("{t:.0} tokens/s"),
        None => format!("{:.0} samples/s", p.samples_per_s),
    };
    pb.set_message(format!("epoch {}  loss {:.4}  {speed}", p.epoch, p.loss));
}
