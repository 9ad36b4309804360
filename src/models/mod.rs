//! Whole models: layers and routing composed into something that has a loss.
//!
//! Architecture invariant: models use `engine` and `moe`; they know nothing of data files,
//! io, experiments or the CLI, and take plain arrays.

pub mod classifier;
pub mod generate;
pub mod moe_classifier;
pub mod moe_generate;
pub mod moe_lm;
pub mod transformer_lm;
pub mod validate;
