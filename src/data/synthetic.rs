//! Built-in synthetic classification tasks, deterministic by seed.
//!
//! **Spirals** (the CS231n toy problem): K interleaved arms in the plane, one class per arm.
//! ```text
//!   for arm k, t uniform in [0, 1]:   r = t,   θ = k·2π/K + turns·2π·t + N(0, noise²)
//!   x = (r·sin θ, r·cos θ),  label k
//! ```
//! No straight line separates two arms, so a linear model tops out near chance while a
//! small MLP reaches ~99 %; and an MoE's gate can visibly carve the plane among experts.

use ndarray::Array2;
use ndarray_rand::rand_distr::{Distribution, Normal};
use rand::Rng as _;

/// A feature matrix [n, d_in] and one class label per row.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub x: Array2<f32>,
    pub y: Vec<usize>,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(ndarray::Axis(0), idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes,
        }
    }
}

/// `n_per_class` points on each of `classes` spiral arms, shuffled, from `seed`.
pub fn spirals(n_per_class: usize, classes: usize, turns: f64, noise: f64, seed: u64) -> Dataset {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise).expect("noise is finite and ≥ 0");
    let n = n_per_class * classes;
    let mut points: Vec<([f32; 2], usize)> = Vec::with_capacity(n);
    for k in 0..classes {
        for _ in 0..n_per_class {
            let t: f64 = rng.gen();
            let theta = k as f64 * std::f64::consts::TAU / classes as f64
                + turns * std::f64::consts::TAU * t
                + normal.sample(&mut rng);
            points.push(([(t * theta.sin()) as f32, (t * theta.cos()) as f32], k));
        }
    }
    // Fisher–Yates with the same generator, so the order is part of the seed too.
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        points.swap(i, j);
    }
    let x = Array2::from_shape_fn((n, 2), |(r, c)| points[r].0[c]);
    Dataset { x, y: points.iter().map(|p| p.1).collect(), classes }
}
