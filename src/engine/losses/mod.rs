//! Losses: a scalar from logits and targets, and ∂L/∂logits.
//!
//! Invariant: losses are means over the real (non-padding) items, so their value does not
//! depend on how much padding a batch holds.

pub mod cross_entropy;
