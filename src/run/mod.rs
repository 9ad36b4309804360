//! The run layer: everything between the maths and the command line.
//!
//! ```text
//!   cli (parse → call → print)
//!    └─ run
//!        ├─ settings, config   typed settings, presets, TOML files with their checks
//!        ├─ classifier, lm, moe_lm
//!        │                     one kind of run each: data, model, training, results folder
//!        ├─ session            a run on disk: folder, config files, checkpoints, resume,
//!        │                     the last good checkpoint, the interrupted notice
//!        ├─ results            atomic, recorded files: CSV tables, PNG + SVG figures, report.md
//!        ├─ html               report.html: figures embedded, a token explorer; self-contained
//!        ├─ experiment         arms × seeds, one folder per cell, summary.csv with mean ± std
//!        ├─ experiments        the registered experiments (`tinymoe experiment list`)
//!        └─ interrupt          Ctrl-C: the first saves and stops, a second quits
//! ```
//!
//! Nothing here prints. Long work reports to an [`Observer`] (the CLI draws a progress bar
//! and prints its notes); results come back as values and files.

pub mod analysis;
pub mod classifier;
pub mod config;
pub mod experiment;
pub mod experiments;
pub mod html;
pub mod interrupt;
pub mod lm;
pub mod moe_explorer;
pub mod moe_lm;
pub mod results;
pub mod saved;
pub mod session;
pub mod settings;

use crate::train::Progress;

/// What a run tells whoever is watching: phases of training with their steps, and lines worth
/// showing (an epoch's summary, "resuming at …"). Every method has a do-nothing default.
pub trait Observer {
    /// A phase of `total` steps starts, `done` of them already done (a resumed run).
    fn start(&mut self, _what: &str, _total: usize, _done: usize) {}
    /// A training step finished.
    fn step(&mut self, _p: &Progress) {}
    /// A line for the user.
    fn note(&mut self, _line: &str) {}
    /// The phase ended (finished, stopped or failed).
    fn finish(&mut self) {}
}

/// An observer that ignores everything (tests, examples, experiment cells run quietly).
pub struct Quiet;

impl Observer for Quiet {}

/// An observer that keeps every note (for tests and for a report's transcript).
#[derive(Debug, Default)]
pub struct Transcript {
    pub notes: Vec<String>,
}

impl Observer for Transcript {
    fn note(&mut self, line: &str) {
        self.notes.push(line.to_string());
    }
}
