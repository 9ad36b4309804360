//! Learning-rate schedules: the learning rate at step s (0-based) for a base rate lr.
//!
//! ```text
//!   Constant:        lr
//!   WarmupCosine:    s < W:       lr · (s + 1) / W                                (linear warm-up)
//!                    W ≤ s < S:   lr_min + ½(lr − lr_min)(1 + cos(π (s − W)/(S − W)))
//!                    s ≥ S:       lr_min
//! ```
//! Warm-up keeps Adam's first steps small while its second-moment estimate is still noisy;
//! the cosine then anneals smoothly to `min_lr` at step S = `total` (Loshchilov & Hutter 2017).
//! As in nanoGPT, the peak rate is used twice (at s = W − 1, the end of warm-up, and at
//! s = W, the start of the cosine).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    Constant,
    WarmupCosine { warmup: usize, total: usize, min_lr: f64 },
}

impl Schedule {
    /// The learning rate at step `s` for base rate `lr`.
    pub fn lr_at(&self, s: usize, lr: f64) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::WarmupCosine { warmup, total, min_lr } => {
                if s < warmup {
                    lr * (s + 1) as f64 / warmup as f64
                } else if s >= total {
                    min_lr
                } else {
                    let progress = (s - warmup) as f64 / (total - warmup).max(1) as f64;
                    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        }
    }
}
