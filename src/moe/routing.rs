//! The routing decision: from router logits to gates, and back.
//!
//! A *unit* is what one decision is made for: a token (token-level routing) or a whole
//! sequence (sequence-level routing). For m units and E experts, with h [m, E] the logits
//! the router hands over (noisy in training if the router is noisy):
//!
//! ```text
//!   h'      = h + o                     steering offsets o [E] (0 unless steering; SteerMoE)
//!   C(u)    = the experts unit u may use:
//!               dense:   every expert that is switched on
//!               top-k:   the k largest h'[u, ·] among the experts switched on
//!   S(u)    = the experts the softmax runs over: C(u) (renormalised top-k, dense), or every
//!             expert switched on (`TopKProbs`, Switch Transformer style)
//!               forced:  {e}   (every unit to expert e, gate 1)
//!               assigned:{a_u} (e.g. the domain label or a classifier's choice, gate 1)
//!   p[u, e] = exp(h'[u, e]) / Σ_{j ∈ S(u)} exp(h'[u, j])   for e ∈ S(u)
//!   g[u, e] = p[u, e] for e ∈ C(u), else 0
//! ```
//! So the gates of top-k are the softmax renormalised over the chosen k, and an expert that
//! is switched off is simply never in C(u): the rest renormalise among themselves. Padding
//! units (mask 0) choose nothing: they take no expert's capacity and do no work.
//!
//! **Capacity** (Switch Transformer, GShard): with a capacity factor c, each expert accepts at
//! most ⌈c · k · m_real / E⌉ assignments. Assignments are served first-choice first, then in
//! unit order; one that finds its expert full is *dropped*: its gate keeps its value but the
//! expert does not run on that unit, so the unit's output lacks that share (it passes through
//! the residual around the MoE layer). `kept` marks the assignments that were served.
//!
//! **Backward.** The choice C(u) is piecewise constant in h (a tie moves it; gradient checks
//! stay away from ties), so only the softmax over C(u) is differentiated. With dg = ∂L/∂g:
//! ```text
//!   dh'[u, j] = p[u, j] · ([j ∈ C(u)]·dg[u, j] − Σ_{c ∈ C(u)} p[u, c] · dg[u, c])   for j ∈ S(u)
//!   dh = dh'                                                             (o is a constant)
//! ```
//! Forced and assigned routing has constant gates (1): no gradient reaches the router through
//! them (a domain classifier learns from its own cross-entropy instead).

use crate::engine::Float;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// How many experts each unit uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Strategy {
    /// Every expert runs on every unit: y = Σₑ gₑ·expertₑ(x).
    Dense,
    /// Only the k best experts run, their gates renormalised over the chosen k (Shazeer 2017).
    /// With k = 1 the gate is the constant 1: the router learns only from auxiliary losses.
    TopK(usize),
    /// Only the k best experts run, each weighted by its full-softmax probability, not
    /// renormalised (Switch Transformer: y = pₑ(x)·expertₑ(x)): with k = 1 the router still
    /// learns from the main loss through pₑ.
    TopKProbs(usize),
}

impl Strategy {
    /// Experts per unit (E for dense).
    pub fn k(self, n_experts: usize) -> usize {
        match self {
            Strategy::Dense => n_experts,
            Strategy::TopK(k) | Strategy::TopKProbs(k) => k.min(n_experts),
        }
    }
}

/// The routing rule of a layer (saved with the model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gating {
    pub strategy: Strategy,
    /// Capacity factor for top-k (None: unlimited). Papers: 1.25 in training, 2.0 at eval.
    pub capacity_factor: Option<f64>,
}

impl Gating {
    pub const DENSE: Gating = Gating { strategy: Strategy::Dense, capacity_factor: None };
    pub fn top_k(k: usize) -> Gating {
        Gating { strategy: Strategy::TopK(k), capacity_factor: None }
    }
}

/// Interventions on a trained MoE, applied at the routing step (per call, not saved).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// Send every unit to this expert with gate 1.
    pub force: Option<usize>,
    /// Experts switched off: never chosen, the others renormalise.
    pub disabled: Vec<usize>,
    /// Steering: added to each expert's router logit, i.e. to its log-probability
    /// (softmax(h + o) = softmax(log softmax(h) + o)). Positive favours an expert.
    pub offsets: Option<Vec<f64>>,
}

impl Intervention {
    pub fn none() -> Self {
        Self::default()
    }
}

/// One routing decision for m units.
#[derive(Debug, Clone)]
pub struct Decision<F> {
    /// g [m, E]: the gate of every chosen (unit, expert), 0 elsewhere.
    pub gates: Array2<F>,
    /// p [m, E]: the softmax over each unit's support S(u) (= g for renormalised routing).
    pub probs: Array2<F>,
    /// For each unit, its chosen experts, best first.
    pub chosen: Vec<Vec<usize>>,
    /// [m, E] 1 where the expert really runs on the unit (chosen and not dropped), else 0.
    pub kept: Array2<F>,
    /// Assignments dropped for capacity.
    pub dropped: usize,
    /// Per unit: its gates are constants (forced or assigned): no gradient reaches h there.
    pub fixed: Vec<bool>,
}

impl<F: Float> Decision<F> {
    pub fn n_experts(&self) -> usize {
        self.gates.ncols()
    }
    /// Kept assignments per expert.
    pub fn load(&self) -> Vec<usize> {
        (0..self.n_experts()).map(|e| self.kept.column(e).iter().filter(|&&k| k > F::zero()).count()).collect()
    }
}

/// The capacity of each expert: ⌈c · k · m_real / E⌉.
pub fn capacity(factor: f64, k: usize, m_real: usize, n_experts: usize) -> usize {
    (factor * (k * m_real) as f64 / n_experts as f64).ceil() as usize
}

/// Decides the routing of m units from h [m, E]. `real[u]` is false for padding units.
/// `assigned` overrides the router for the units where it holds `Some(e)`: hard routing to e
/// with gate 1 (a domain label under teacher forcing); `None` units are routed by h.
/// Panics on an expert index ≥ E or k = 0 (validated at the boundary).
pub fn decide<F: Float>(
    h: ArrayView2<F>,
    real: &[bool],
    gating: Gating,
    iv: &Intervention,
    assigned: Option<&[Option<usize>]>,
) -> Decision<F> {
    let (m, n_experts) = h.dim();
    assert_eq!(real.len(), m, "routing: {m} units but {} mask entries", real.len());
    let mut gates = Array2::zeros((m, n_experts));
    let mut kept = Array2::zeros((m, n_experts));
    let mut chosen = vec![Vec::new(); m];
    let mut fixed = vec![false; m];
    let allowed: Vec<bool> = (0..n_experts).map(|e| !iv.disabled.contains(&e)).collect();
    let k = gating.strategy.k(n_experts);
    assert!(k >= 1, "routing: k must be ≥ 1");
    let mut probs = Array2::zeros((m, n_experts));
    let over_all = matches!(gating.strategy, Strategy::TopKProbs(_));
    for u in 0..m {
        if !real[u] {
            continue;
        }
        if let Some(e) = iv.force.or_else(|| assigned.and_then(|a| a[u])) {
            assert!(e < n_experts, "routing: expert {e} of {n_experts}");
            fixed[u] = true;
            chosen[u] = vec![e];
            gates[[u, e]] = F::one();
            probs[[u, e]] = F::one();
            continue;
        }
        let offset = |e: usize| iv.offsets.as_ref().map_or(F::zero(), |o| F::lit(o[e]));
        let score = |e: usize| h[[u, e]] + offset(e);
        // Experts switched on, best first (ties: lower index first, so the choice is stable).
        let mut order: Vec<usize> = (0..n_experts).filter(|&e| allowed[e]).collect();
        order.sort_by(|&a, &b| score(b).partial_cmp(&score(a)).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
        if order.is_empty() {
            continue; // every expert switched off: the unit passes through
        }
        let support = if over_all { &order[..] } else { &order[..k.min(order.len())] };
        let max = score(order[0]);
        let sum: F = support.iter().map(|&e| (score(e) - max).exp()).sum();
        for &e in support {
            probs[[u, e]] = (score(e) - max).exp() / sum;
        }
        order.truncate(k);
        for &e in &order {
            gates[[u, e]] = probs[[u, e]];
        }
        chosen[u] = order;
    }
    // Serve the assignments: first choices of every unit in order, then second choices, …
    let m_real = real.iter().filter(|&&r| r).count();
    let cap = match (gating.strategy, gating.capacity_factor, iv.force.is_some() || assigned.is_some()) {
        (Strategy::TopK(_) | Strategy::TopKProbs(_), Some(c), false) => capacity(c, k, m_real, n_experts),
        _ => usize::MAX,
    };
    let mut load = vec![0usize; n_experts];
    let mut dropped = 0;
    let max_rank = chosen.iter().map(Vec::len).max().unwrap_or(0);
    for rank in 0..max_rank {
        for u in 0..m {
            if let Some(&e) = chosen[u].get(rank) {
                if load[e] < cap {
                    load[e] += 1;
                    kept[[u, e]] = F::one();
                } else {
                    dropped += 1;
                }
            }
        }
    }
    Decision { gates, probs, chosen, kept, dropped, fixed }
}

/// dg = ∂L/∂g [m, E] → dh = ∂L/∂h [m, E] (see the module doc).
pub fn backward<F: Float>(d: &Decision<F>, dgates: ArrayView2<F>) -> Array2<F> {
    let mut dh = Array2::zeros(d.gates.raw_dim());
    for (u, chosen) in d.chosen.iter().enumerate() {
        if d.fixed[u] {
            continue;
        }
        let dot: F = chosen.iter().map(|&c| d.probs[[u, c]] * dgates[[u, c]]).sum();
        // Every expert of the support S(u) (p > 0) moves the softmax; only chosen ones carry dg.
        for j in 0..d.probs.ncols() {
            let p = d.probs[[u, j]];
            if p > F::zero() {
                let own = if chosen.contains(&j) { dgates[[u, j]] } else { F::zero() };
                dh[[u, j]] = p * (own - dot);
            }
        }
    }
    dh
}
