//! Shared test helpers: seeded random arrays in f64 and the tolerance every gradient check
//! is held to; [`cli`] runs the `tinymoe` binary for the command-line tests.
#![allow(dead_code)]

pub mod cli;

use ndarray::{Array, Dimension, ShapeBuilder};
use tinymoe::engine::init::{self, Rng};

/// Every backward pass must agree with central differences to this relative error.
pub const TOL: f64 = 1e-6;

/// The seeded generator for a test.
pub fn rng(seed: u64) -> Rng {
    init::rng(seed)
}

/// U(−1, 1) in any shape, f64.
pub fn uniform<D: Dimension, Sh: ShapeBuilder<Dim = D>>(shape: Sh, rng: &mut Rng) -> Array<f64, D> {
    init::uniform(shape, 1.0, rng)
}
