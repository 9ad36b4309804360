//! Element-wise activations and their derivatives.
//!
//! ```text
//!   ReLU        y = max(x, 0)                         y' = 1 if x > 0 else 0
//!   GELU exact  y = x·Φ(x) = ½x(1 + erf(x/√2))         y' = Φ(x) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)
//!   GELU tanh   y = ½x(1 + tanh u),  u = √(2/π)(x + 0.044715x³)
//!               y' = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
//! ```
//! The tanh form is Hendrycks & Gimpel 2016 (GELU, eq. 2), the one GPT-2 and BERT use;
//! PyTorch calls it `GELU(approximate="tanh")`. Backward is dx = dy ⊙ y'(x).
//! Shapes: x, y, dy, dx all [n, d].

use crate::engine::Float;
use ndarray::{Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

/// Which non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    /// GELU with the exact Gaussian CDF (erf).
    GeluErf,
    /// GELU with the tanh approximation (GPT-2).
    GeluTanh,
}

/// The forward input x [n, d], from which y' is recomputed in backward.
#[derive(Debug, Clone)]
pub struct Cache<F> {
    x: Array2<F>,
}

/// y = act(x), element-wise.
/// Element-wise work is split over rows across rayon threads (GELU's tanh/erf is costly).
pub fn forward<F: Float>(act: Activation, x: ArrayView2<F>) -> (Array2<F>, Cache<F>) {
    let mut y = Array2::zeros(x.raw_dim());
    Zip::from(y.rows_mut()).and(x.rows()).par_for_each(|mut y, x| {
        Zip::from(&mut y).and(&x).for_each(|y, &x| *y = value(act, x));
    });
    (y, Cache { x: x.to_owned() })
}

/// dx = dy ⊙ act'(x).
pub fn backward<F: Float>(act: Activation, c: &Cache<F>, dy: ArrayView2<F>) -> Array2<F> {
    assert_eq!(dy.dim(), c.x.dim(), "activation: dy is {:?}, x was {:?}", dy.dim(), c.x.dim());
    let mut dx = Array2::zeros(dy.raw_dim());
    Zip::from(dx.rows_mut()).and(c.x.rows()).and(dy.rows()).par_for_each(|mut dx, x, dy| {
        Zip::from(&mut dx).and(&x).and(&dy).for_each(|dx, &x, &dy| *dx = dy * derivative(act, x));
    });
    dx
}

/// act(x) for one scalar.
pub fn value<F: Float>(act: Activation, x: F) -> F {
    let half = F::lit(0.5);
    match act {
        // Not x.max(0): Rust's max returns the non-NaN operand, which would turn a NaN into 0
        // and hide it. NaN propagates, as in PyTorch, so a broken input shows in the loss.
        Activation::Relu => {
            if x > F::zero() || x.is_nan() {
                x
            } else {
                F::zero()
            }
        }
        Activation::GeluErf => half * x * (F::one() + (x * F::lit(std::f64::consts::FRAC_1_SQRT_2)).erf()),
        Activation::GeluTanh => {
            let u = F::lit(SQRT_2_OVER_PI) * (x + F::lit(GELU_C) * x * x * x);
            half * x * (F::one() + tanh(u))
        }
    }
}

/// act'(x) for one scalar. ReLU'(0) is taken as 0 (PyTorch's choice).
pub fn derivative<F: Float>(act: Activation, x: F) -> F {
    let half = F::lit(0.5);
    match act {
        Activation::Relu => {
            if x > F::zero() {
                F::one()
            } else {
                F::zero()
            }
        }
        Activation::GeluErf => {
            let cdf = half * (F::one() + (x * F::lit(std::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf = (-half * x * x).exp() * F::lit(INV_SQRT_2PI);
            cdf + x * pdf
        }
        Activation::GeluTanh => {
            let c = F::lit(GELU_C);
            let s = F::lit(SQRT_2_OVER_PI);
            let t = tanh(s * (x + c * x * x * x));
            half * (F::one() + t) + half * x * (F::one() - t * t) * s * (F::one() + F::lit(3.0) * c * x * x)
        }
    }
}

/// tanh u = 1 − 2/(e^(2u) + 1), an exact identity. Written through exp because the
/// platform's scalar tanhf costs ~15 ns a call here while expf costs a few; for large |u|,
/// e^(2u) → ∞ or 0 and the formula goes cleanly to ±1. (Near u = 0 it loses a few bits of
/// *relative* precision to cancellation; GELU adds 1 to it, so its absolute error, which is
/// what matters there, stays at the last bit.)
fn tanh<F: Float>(u: F) -> F {
    let two = F::lit(2.0);
    F::one() - two / ((two * u).exp() + F::one())
}

const GELU_C: f64 = 0.044715;
/// √(2/π)
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// 1/√(2π)
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "relu" => Ok(Activation::Relu),
            "gelu" | "gelu-erf" => Ok(Activation::GeluErf),
            "gelu-tanh" => Ok(Activation::GeluTanh),
            _ => Err(format!("unknown activation {s:?} (expected relu, gelu-erf or gelu-tanh)")),
        }
    }
}
