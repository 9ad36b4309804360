//! Global-norm gradient clipping (Pascanu et al. 2013), as `torch.nn.utils.clip_grad_norm_`.
//!
//! ```text
//!   ‖g‖ = √(Σ over every tensor and element of g²)
//!   if ‖g‖ > max_norm:  g ← g · max_norm / ‖g‖
//! ```
//! One norm over all tensors together, so the direction of the full gradient is kept;
//! only its length is capped.

use crate::engine::params::Tensors;
use crate::engine::Float;

/// √(Σ g²) over every tensor, accumulated in f64 in visiting order (deterministic).
pub fn global_norm<F: Float>(grads: &dyn Tensors<F>) -> f64 {
    let mut sum = 0.0f64;
    for (_, g) in grads.tensors() {
        for &v in g.iter() {
            let v = v.to_f64().expect("floats convert to f64");
            sum += v * v;
        }
    }
    sum.sqrt()
}

/// Scales `grads` so their global norm is at most `max_norm`; returns the norm before.
pub fn clip_global_norm<F: Float>(grads: &mut dyn Tensors<F>, max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if norm > max_norm {
        let scale = F::lit(max_norm / norm);
        for (_, mut g) in grads.tensors_mut() {
            g.mapv_inplace(|v| v * scale);
        }
    }
    norm
}
