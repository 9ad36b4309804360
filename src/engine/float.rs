//! The one numeric trait of tinymoe: `F: Float`.
//!
//! Every layer is written once and runs in two precisions:
//! - `f32` for training (fast, half the memory traffic);
//! - `f64` for gradient checks, where central finite differences need the extra digits
//!   (with ε = 1e-5, f32 rounding alone would swamp the derivative).
//!
//! Constants are written `F::lit(0.5)` and hoisted into named locals in hot code.

use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::Debug;
use std::iter::Sum;

/// A float that ndarray can multiply (GEMM via matrixmultiply), broadcast, and sum.
pub trait Float:
    LinalgScalar + ScalarOperand + num_traits::Float + num_traits::NumAssign + Sum + Debug + Send + Sync + 'static
{
    /// A literal in this precision: `F::lit(0.044715)`.
    fn lit(x: f64) -> Self;
    /// The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, accurate to the last bit (libm),
    /// so that the exact GELU's finite differences agree with its analytic derivative.
    fn erf(self) -> Self;
}

impl Float for f32 {
    fn lit(x: f64) -> Self {
        x as f32
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Float for f64 {
    fn lit(x: f64) -> Self {
        x
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
