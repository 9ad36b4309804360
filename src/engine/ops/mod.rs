//! Parameter-free kernels: the parallel matrix product, softmax and log-softmax (with backward).
//!
//! Invariant: no parameters, no randomness, no IO; each function's shapes are in its doc.

pub mod matmul;
pub mod softmax;
