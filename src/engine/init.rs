//! Seeded weight initialisation.
//!
//! - He (Kaiming) normal, for layers followed by ReLU: W ~ N(0, 2 / fan_in).
//!   He et al. 2015, "Delving Deep into Rectifiers", §2.2.
//! - Xavier/Glorot uniform, for tanh/linear/softmax layers: W ~ U(−a, a), a = √(6 / (fan_in + fan_out)).
//!   Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward networks".
//! - Normal with a given std (GPT-2 uses 0.02 for embeddings and projections).
//!
//! Every function takes the generator: one seed drives every random choice in tinymoe,
//! through [`Rng`], a ChaCha8 stream whose output is fixed by its algorithm, not by a crate
//! version.

use crate::engine::Float;
use ndarray::{Array, Dimension, ShapeBuilder};
use ndarray_rand::rand_distr::{Distribution, Normal, Uniform};
use rand::SeedableRng;

/// The generator used everywhere: `Rng::seed_from_u64(seed)`.
pub type Rng = rand_chacha::ChaCha8Rng;

/// The seeded generator for `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Samples are drawn in f64 and rounded to `F`, so f32 and f64 models built from one seed
/// hold the same weights up to rounding.
fn sample<F: Float, D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    shape: Sh,
    dist: impl Distribution<f64>,
    rng: &mut Rng,
) -> Array<F, D> {
    Array::from_shape_simple_fn(shape, || F::lit(dist.sample(rng)))
}

/// N(0, std²) in any shape.
pub fn normal<F: Float, D: Dimension, Sh: ShapeBuilder<Dim = D>>(shape: Sh, std: f64, rng: &mut Rng) -> Array<F, D> {
    let dist = Normal::new(0.0, std).expect("std is finite and ≥ 0");
    sample(shape, dist, rng)
}

/// U(−a, a) in any shape.
pub fn uniform<F: Float, D: Dimension, Sh: ShapeBuilder<Dim = D>>(shape: Sh, a: f64, rng: &mut Rng) -> Array<F, D> {
    sample(shape, Uniform::new_inclusive(-a, a), rng)
}

/// He normal for a [fan_in, fan_out] weight: std = √(2 / fan_in).
pub fn he_normal<F: Float>(fan_in: usize, fan_out: usize, rng: &mut Rng) -> ndarray::Array2<F> {
    normal((fan_in, fan_out), (2.0 / fan_in as f64).sqrt(), rng)
}

/// Xavier/Glorot uniform for a [fan_in, fan_out] weight: a = √(6 / (fan_in + fan_out)).
pub fn xavier_uniform<F: Float>(fan_in: usize, fan_out: usize, rng: &mut Rng) -> ndarray::Array2<F> {
    uniform((fan_in, fan_out), (6.0 / (fan_in + fan_out) as f64).sqrt(), rng)
}

/// Independent generator number `stream` under one seed (ChaCha's stream parameter): one
/// seed drives init (stream 0), data shuffling, dropout, … without their draws interleaving,
/// so adding dropout does not change the shuffle order.
pub fn stream(seed: u64, stream: u64) -> Rng {
    let mut r = rng(seed);
    r.set_stream(stream);
    r
}

/// A generator's exact position, to save in a checkpoint and restore: its seed, stream and
/// how many 32-bit words it has produced. Restoring gives the same future draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

impl RngState {
    pub fn of(r: &Rng) -> RngState {
        RngState { seed: r.get_seed(), stream: r.get_stream(), word_pos: r.get_word_pos() }
    }
    pub fn restore(&self) -> Rng {
        let mut r = Rng::from_seed(self.seed);
        r.set_stream(self.stream);
        r.set_word_pos(self.word_pos);
        r
    }
}

/// The stream numbers used across tinymoe.
pub mod streams {
    pub const INIT: u64 = 0;
    pub const SHUFFLE: u64 = 1;
    pub const DROPOUT: u64 = 2;
    pub const DATA: u64 = 3;
}
