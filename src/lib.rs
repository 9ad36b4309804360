//! # tinymoe
//!
//! A from-scratch, NumPy-style deep-learning engine in pure Rust, written to be read: every
//! forward and backward pass by hand (no autograd), f32 for training, f64 for gradient checks.
//!
//! Code map (see ARCHITECTURE.md):
//! - [`engine`]: layers (linear … attention, the transformer block), losses, optimisers, init,
//!   the gradient checker. Pure maths.
//! - [`moe`]: routing on top of the engine: experts, routers, the routing decision (dense,
//!   top-k, capacity, forced, switched-off, steered, assigned), the MoE layer (token- or
//!   sequence-level), router losses, metrics, interventions and the dense mixture of E1.
//! - [`models`]: layers and routing composed into models with a loss: classifiers, the MoE
//!   classifier, the GPT-style LM and the MoE LM, and the KV-cached decoder.
//! - [`data`]: data sets as arrays (built-in synthetic tasks and domain corpora, CSV, text,
//!   MNIST, `.npy`), tokenisers and padded batches.
//! - [`train`]: the resumable training loops: classifiers (`train/mod.rs`), language models
//!   (`train/lm.rs`) and MoE language models (`train/moe.rs`).
//! - [`plot`]: PNG pictures from plain numbers.
//! - [`checkpoint`], [`io`]: checkpoints with a checksum, and atomic file writes.
//! - [`transplant`]: partial loading, one part of a checkpoint into another model by name.
//! - [`interchange`]: weights as safetensors, with PyTorch `state_dict` names and layouts.
//! - [`layer_check`]: one layer on arrays from `.npy` files, every gradient in f64 (the library
//!   side of `tinymoe layer`).
//! - [`bench`](mod@bench): the benchmark workloads of BENCH.md.
//! - [`error`]: the one error type, [`Error`].
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
pub mod twin;

pub use error::{Error, Result};
