//! Optimisers: SGD with momentum, Adam, AdamW; global-norm clipping; learning-rate
//! schedules; parameter groups (freeze, per-group learning rate, L2-SP anchor).
//!
//! The update rules live in `sgd.rs` and `adam.rs` as plain functions on flat slices, one
//! tensor at a time, so each reads as its formula. [`Optimizer`] is the bookkeeping around
//! them: it walks a model's named tensors (via [`Tensors`]), keeps one state slot per tensor,
//! applies the group rules, and updates tensors in parallel (each tensor is independent, so
//! the result does not depend on the thread count).
//!
//! Invariant: `step` never allocates per element; the only per-step allocations are the
//! lists of tensor views and, for L2-SP-anchored tensors, one gradient buffer.

pub mod adam;
pub mod clip;
pub mod groups;
pub mod schedule;
pub mod sgd;

pub use clip::{clip_global_norm, global_norm};
pub use groups::{Rule, Setting};
pub use schedule::Schedule;

use crate::engine::params::Tensors;
use crate::engine::Float;
use ndarray::{ArrayD, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which update rule, with its hyper-parameters (PyTorch's defaults in [`Kind::adam`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    Sgd {
        momentum: f64,
    },
    /// Adam; `weight_decay` is coupled L2 (added to the gradient).
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// AdamW; `weight_decay` is decoupled.
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl Kind {
    /// Adam with β₁ = 0.9, β₂ = 0.999, ε = 1e-8, no weight decay.
    pub fn adam() -> Kind {
        Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
    /// AdamW with β₁ = 0.9, β₂ = 0.999, ε = 1e-8 and the given decoupled weight decay.
    pub fn adamw(weight_decay: f64) -> Kind {
        Kind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }
}

/// Per-tensor optimiser state: SGD's velocity lives in `m`; Adam uses both moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slot<F> {
    m: Vec<F>,
    v: Vec<F>,
}

/// An optimiser bound to one model's tensor list (names fixed at construction). Serialisable,
/// so a checkpoint can carry its moments and step count and training resumes exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Optimizer<F> {
    pub kind: Kind,
    names: Vec<String>,
    settings: Vec<Setting>,
    slots: Vec<Slot<F>>,
    /// θ₀ for tensors under an L2-SP rule, captured at construction.
    anchors: Vec<Option<ArrayD<F>>>,
    /// Steps taken so far.
    pub t: u64,
}

impl<F: Float> Optimizer<F> {
    /// An optimiser for `params` with the given group rules (first match wins). Tensors with
    /// an L2-SP rule are anchored to their values now.
    pub fn new(kind: Kind, rules: &[Rule], params: &dyn Tensors<F>) -> Self {
        let mut names = Vec::new();
        let mut settings = Vec::new();
        let mut slots = Vec::new();
        let mut anchors = Vec::new();
        for (name, p) in params.tensors() {
            let s = groups::setting_for(rules, &name);
            let n = if s.frozen { 0 } else { p.len() };
            let n_v = if matches!(kind, Kind::Sgd { .. }) { 0 } else { n };
            slots.push(Slot { m: vec![F::zero(); n], v: vec![F::zero(); n_v] });
            anchors.push((s.l2sp > 0.0).then(|| p.to_owned()));
            settings.push(s);
            names.push(name);
        }
        Optimizer { kind, names, settings, slots, anchors, t: 0 }
    }

    /// The tensor names this optimiser was built for, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The settings each tensor got from the rules, by name.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.names.iter().map(|n| n.as_str()).zip(self.settings.iter())
    }

    /// One update of every non-frozen tensor with learning rate `lr` (times its group's scale).
    pub fn step(&mut self, params: &mut dyn Tensors<F>, grads: &dyn Tensors<F>, lr: f64) {
        self.t += 1;
        let t = self.t;
        let kind = self.kind;
        let params = params.tensors_mut();
        let grads = grads.tensors();
        assert_eq!(params.len(), self.names.len(), "optimizer: the model's tensor list changed");
        assert_eq!(grads.len(), params.len(), "optimizer: {} grads for {} params", grads.len(), params.len());
        let work: Vec<_> = params
            .into_iter()
            .zip(grads)
            .zip(self.slots.iter_mut())
            .zip(self.settings.iter().zip(self.anchors.iter()).zip(self.names.iter()))
            .collect();
        work.into_par_iter().for_each(|((((pname, mut theta), (gname, g)), slot), ((setting, anchor), name))| {
            assert!(pname == *name && gname == *name, "optimizer: expected {name}, got param {pname} and grad {gname}");
            assert_eq!(theta.shape(), g.shape(), "optimizer: {name} param and grad shapes differ");
            if setting.frozen {
                return;
            }
            // L2-SP: the gradient of λ‖θ − θ₀‖² is 2λ(θ − θ₀), added to the loss gradient.
            let pulled: Option<ArrayD<F>> = anchor.as_ref().map(|theta0| {
                let two_lambda = F::lit(2.0 * setting.l2sp);
                let mut g = g.to_owned();
                Zip::from(&mut g).and(&theta).and(theta0).for_each(|g, &w, &w0| *g += two_lambda * (w - w0));
                g
            });
            let g: &[F] = match &pulled {
                Some(p) => p.as_slice().expect("to_owned() is contiguous"),
                None => g.to_slice().expect("gradients are contiguous"),
            };
            let theta = theta.as_slice_mut().expect("parameters are contiguous");
            let lr = F::lit(lr * setting.lr_scale);
            match kind {
                Kind::Sgd { momentum } => sgd::update(theta, g, &mut slot.m, lr, F::lit(momentum)),
                Kind::Adam { beta1, beta2, eps, weight_decay } | Kind::AdamW { beta1, beta2, eps, weight_decay } => {
                    let h = adam::Hyper {
                        lr,
                        beta1: F::lit(beta1),
                        beta2: F::lit(beta2),
                        eps: F::lit(eps),
                        weight_decay: F::lit(weight_decay),
                        decoupled: matches!(kind, Kind::AdamW { .. }),
                        t,
                    };
                    adam::update(theta, g, &mut slot.m, &mut slot.v, h)
                }
            }
        });
    }

    /// The L2-SP penalty Σ λ‖θ − θ₀‖² over anchored tensors, to report beside the loss.
    pub fn l2sp_penalty(&self, params: &dyn Tensors<F>) -> f64 {
        let mut total = 0.0;
        for (((_, p), anchor), s) in params.tensors().into_iter().zip(&self.anchors).zip(&self.settings) {
            if let Some(theta0) = anchor {
                let sq: f64 =
                    p.iter().zip(theta0.iter()).map(|(&a, &b)| (a - b).to_f64().unwrap_or(f64::NAN).powi(2)).sum();
                total += s.l2sp * sq;
            }
        }
        total
    }
}
