//! Parameter-free kernels: softmax and log-softmax (with backward).
//!
//! Invariant: no parameters, no randomness, no IO; each function's shapes are in its doc.

pub mod softmax;
