//! The terminal side of a run: a progress bar (indicatif) with loss and throughput, and the
//! run's notes printed above it. Drawn on stderr, and only where stderr is a terminal, so logs
//! and CI output stay clean. The bar is cleared when a phase ends and when the observer is
//! dropped, so an error never leaves a half-drawn bar behind it.

use crate::run::Observer;
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

/// Prints a run's notes on stdout and draws its phases as progress bars.
#[derive(Default)]
pub struct Terminal {
    bar: Option<ProgressBar>,
}

impl Observer for Terminal {
    fn start(&mut self, what: &str, total: usize, done: usize) {
        self.finish();
        let b = bar(total, what);
        b.set_position(done as u64);
        self.bar = Some(b);
    }
    fn step(&mut self, p: &Progress) {
        if let Some(b) = &self.bar {
            update(b, p);
        }
    }
    fn note(&mut self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.finish();
    }
}
