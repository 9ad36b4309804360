//! Inverted dropout (Srivastava et al. 2014, with the scaling moved to training time).
//!
//! ```text
//!   training:  mᵢ ~ Bernoulli(1 − p),  y = x ⊙ m / (1 − p)
//!   eval:      y = x
//!   backward:  dx = dy ⊙ m / (1 − p)   (the same mask: a dropped unit passed nothing forward,
//!                                       so it receives nothing back)
//! ```
//! Dividing by 1 − p in training keeps E[y] = x, so evaluation needs no rescaling.
//! The mask comes from the caller's seeded generator: the same seed drops the same units.
//! Shapes: x, y, dy, dx all [n, d].

use crate::engine::init::Rng;
use crate::engine::Float;
use ndarray::{Array2, ArrayView2};
use rand::Rng as _;

/// Training draws a fresh mask from the generator; evaluation is the identity.
pub enum Mode<'a> {
    Train(&'a mut Rng),
    Eval,
}

/// The scaled mask m / (1 − p) [n, d], or `None` where forward was the identity.
#[derive(Debug, Clone)]
pub struct Cache<F> {
    mask: Option<Array2<F>>,
}

/// y = x ⊙ m / (1 − p) in training, y = x at eval or when p = 0. Panics unless 0 ≤ p < 1.
pub fn forward<F: Float>(x: ArrayView2<F>, p: f64, mode: &mut Mode) -> (Array2<F>, Cache<F>) {
    assert!((0.0..1.0).contains(&p), "dropout: p = {p} is outside [0, 1)");
    match mode {
        Mode::Train(rng) if p > 0.0 => {
            let keep = F::lit(1.0 / (1.0 - p));
            let mask =
                Array2::from_shape_simple_fn(x.raw_dim(), || if rng.gen::<f64>() < p { F::zero() } else { keep });
            let y = &x * &mask;
            (y, Cache { mask: Some(mask) })
        }
        _ => (x.to_owned(), Cache { mask: None }),
    }
}

/// dx = dy ⊙ m / (1 − p), or dy if forward was the identity.
pub fn backward<F: Float>(c: &Cache<F>, dy: ArrayView2<F>) -> Array2<F> {
    match &c.mask {
        Some(mask) => {
            assert_eq!(mask.dim(), dy.dim(), "dropout: dy is {:?}, the mask is {:?}", dy.dim(), mask.dim());
            &dy * mask
        }
        None => dy.to_owned(),
    }
}
