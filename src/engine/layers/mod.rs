//! Layers: each a `forward(params, input) -> (output, cache)` and a
//! `backward(params, cache, d_output) -> (d_input, grads)` pair, side by side in one file,
//! with the formula and the shapes in the file's opening comment.
//!
//! Invariant: layers never allocate randomness of their own (dropout takes the caller's
//! generator), never print, never return `Result`: their inputs were validated at the
//! boundary, so a shape mismatch here is a bug and panics with both shapes.

pub mod activation;
pub mod attention;
pub mod dropout;
pub mod embedding;
pub mod layer_norm;
pub mod linear;
pub mod mlp;
pub mod transformer_block;

pub use activation::Activation;
pub use dropout::Mode;
pub use mlp::InputGrad;
