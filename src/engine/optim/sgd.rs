//! Stochastic gradient descent with (heavy-ball) momentum, as PyTorch's `torch.optim.SGD`.
//!
//! ```text
//!   v ← μ·v + g          (v starts at 0; μ = 0 is plain SGD)
//!   θ ← θ − lr·v
//! ```
//! Momentum averages recent gradients, so steps along a consistent direction grow (up to
//! 1/(1 − μ) times) while oscillating components cancel.

use crate::engine::Float;

/// One SGD step on one tensor: θ, g and the velocity v are flat slices of equal length.
pub fn update<F: Float>(theta: &mut [F], g: &[F], velocity: &mut [F], lr: F, momentum: F) {
    assert_eq!(theta.len(), g.len(), "sgd: θ and g differ in length");
    for ((w, &g), v) in theta.iter_mut().zip(g).zip(velocity.iter_mut()) {
        *v = momentum * *v + g;
        *w -= lr * *v;
    }
}
