//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as PyTorch implements them.
//!
//! ```text
//!   m ← β₁·m + (1 − β₁)·g            first moment: a running mean of the gradient
//!   v ← β₂·v + (1 − β₂)·g²           second moment: a running mean of its square
//!   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)    bias correction (m, v start at 0)
//!   θ ← θ − lr · m̂ / (√v̂ + ε)
//! ```
//! Each coordinate gets its own step size ≈ lr, whatever the gradient's scale.
//!
//! Weight decay λ two ways:
//! - Adam (coupled, "L2"): g ← g + λθ before the moments, so the decay is rescaled by √v̂
//!   like everything else;
//! - AdamW (decoupled): θ ← θ − lr·λ·θ, applied directly, outside the adaptive scaling.

use crate::engine::Float;

/// Hyper-parameters of one Adam/AdamW step.
#[derive(Debug, Clone, Copy)]
pub struct Hyper<F> {
    pub lr: F,
    pub beta1: F,
    pub beta2: F,
    pub eps: F,
    pub weight_decay: F,
    /// true: AdamW (decoupled decay); false: Adam with L2 added to the gradient.
    pub decoupled: bool,
    /// Step number, starting at 1 (for the bias correction).
    pub t: u64,
}

/// One Adam/AdamW step on one tensor; all slices have equal length.
pub fn update<F: Float>(theta: &mut [F], g: &[F], m: &mut [F], v: &mut [F], h: Hyper<F>) {
    assert_eq!(theta.len(), g.len(), "adam: θ and g differ in length");
    let one = F::one();
    let bias1 = one - h.beta1.powi(h.t as i32);
    let bias2 = one - h.beta2.powi(h.t as i32);
    // Fold the bias corrections into the step: lr·m̂/(√v̂+ε) = (lr/bias1)·m / (√v/√bias2 + ε).
    let step = h.lr / bias1;
    let inv_sqrt_bias2 = one / bias2.sqrt();
    let decay = one - h.lr * h.weight_decay;
    for (((w, &g), m), v) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if h.decoupled { g } else { g + h.weight_decay * *w };
        *m = h.beta1 * *m + (one - h.beta1) * g;
        *v = h.beta2 * *v + (one - h.beta2) * g * g;
        if h.decoupled {
            *w *= decay;
        }
        *w -= step * *m / ((*v).sqrt() * inv_sqrt_bias2 + h.eps);
    }
}
