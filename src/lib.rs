//! # tinymoe
//!
//! A from-scratch, NumPy-style deep-learning engine in pure Rust, written to be read: every
//! forward and backward pass by hand (no autograd), f32 for training, f64 for gradient checks.
//!
//! Code map (see ARCHITECTURE.md):
//! - [`engine`]: layers, losses, optimisers, init, the gradient checker. Pure maths.
//! - [`moe`]: routing on top of the engine (today: the dense soft mixture).
//! - [`models`]: layers and routing composed into models with a loss.
//! - [`data`]: data sets as arrays (built-in synthetic tasks, CSV files).
//! - [`train`]: the training loop.
//! - [`plot`]: PNG pictures from plain numbers.
//! - [`checkpoint`], [`io`]: checkpoints with a checksum, and atomic file writes.
//! - [`interchange`]: weights as safetensors, with PyTorch `state_dict` names and layouts.
//! - [`bench`]: the benchmark workloads of BENCH.md.
//! - [`run`]: the run layer: typed settings and presets, one session per run on disk, results
//!   folders with reports, seeded multi-run experiments.
//! - [`cli`]: the `tinymoe` program; parses, calls [`run`], prints: the only place that prints.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod engine;
pub mod error;
pub mod interchange;
pub mod io;
pub mod layer_check;
pub mod models;
pub mod moe;
pub mod plot;
pub mod run;
pub mod train;
pub mod transplant;

pub use error::{Error, Result};
