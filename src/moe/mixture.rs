//! Dense soft mixture of MLP experts (Jacobs et al. 1991; SPEC §2 "dense soft routing").
//!
//! ```text
//!   g   = softmax(gate(x))                  [n, E]        gate: an MLP ending in E logits
//!   yₑ  = expertₑ(x)                         [n, d_out]    every expert runs on every row
//!   y   = Σₑ g[:, e] ⊙ yₑ                    [n, d_out]    each row mixes the experts' outputs
//! ```
//! Backward, with dy = ∂L/∂y [n, d_out]:
//! ```text
//!   dyₑ       = g[:, e] ⊙ dy                 each expert sees dy scaled by its gate weight
//!   dg[r, e]  = Σⱼ dy[r, j] · yₑ[r, j]       how much more of expert e row r would have liked
//!   dz        = softmax_backward(g, dg)      through the gate's softmax: dz = g ⊙ (dg − Σₑ g dg)
//!   dx        = gate_backward(dz) + Σₑ expertₑ_backward(dyₑ)     (x fed every branch)
//! ```
//! **Switching experts off** ([`forward_with_off`], E1's ablation): an expert marked off gets
//! the gate logit −∞ before the softmax, so its gate is exactly 0 and the others are
//! renormalised over the experts left on, gᵢ = exp(zᵢ) / Σ_{j on} exp(zⱼ). The backward above
//! is unchanged: gₑ = 0 makes dyₑ = 0 and, through softmax_backward, dz = 0 for that expert.
//!
//! The experts and the gate are independent until the mix, so they run in parallel (rayon),
//! each with its own dropout stream drawn in order from the caller's generator: the result
//! does not depend on the thread count. Sums over experts run in index order.
//!
//! This is E1's MoE and the `mlp-moe` benchmark. Sparse (top-k) routing and the routers of
//! the transformer MoEs grow beside it in this module.

use crate::engine::init;
use crate::engine::layers::{mlp, Activation, InputGrad, Mode};
use crate::engine::ops::softmax::{softmax, softmax_backward};
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::Float;
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The gate MLP (ending in E logits) and the E expert MLPs (all with the same d_in, d_out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub gate: mlp::Params<F>,
    pub experts: Vec<mlp::Params<F>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub gate: mlp::Grads<F>,
    pub experts: Vec<mlp::Grads<F>>,
}

/// The gate's and every expert's caches, the gate probabilities g [n, E] and each expert's
/// output yₑ [n, d_out] (backward needs them for dg).
#[derive(Debug, Clone)]
pub struct Cache<F> {
    gate: mlp::Cache<F>,
    experts: Vec<mlp::Cache<F>>,
    gates: Array2<F>,
    outputs: Vec<Array2<F>>,
}

impl<F: Float> Cache<F> {
    /// The routing weights g [n, E] of the forward pass.
    pub fn gates(&self) -> &Array2<F> {
        &self.gates
    }
}

/// `n_experts` experts with `expert_sizes` (e.g. [784, 128, 128, 10]) and a gate with
/// `gate_sizes` (e.g. [784, 256, 128], to which the E-logit output layer is appended).
pub fn init<F: Float>(
    expert_sizes: &[usize],
    gate_sizes: &[usize],
    n_experts: usize,
    act: Activation,
    dropout: f64,
    rng: &mut init::Rng,
) -> Params<F> {
    assert_eq!(expert_sizes.first(), gate_sizes.first(), "mixture: the gate and the experts must read the same input");
    let experts = (0..n_experts).map(|_| mlp::init(expert_sizes, act, dropout, rng)).collect();
    let mut gate_sizes = gate_sizes.to_vec();
    gate_sizes.push(n_experts);
    Params { gate: mlp::init(&gate_sizes, act, dropout, rng), experts }
}

/// One seed per branch (gate first, then each expert), drawn in order from the caller's
/// generator in training; `None` at eval.
fn branch_seeds(n_branches: usize, mode: &mut Mode) -> Option<Vec<u64>> {
    match mode {
        Mode::Train(rng) => Some((0..n_branches).map(|_| rng.next_u64()).collect()),
        Mode::Eval => None,
    }
}

/// x [n, d_in] → y [n, d_out].
pub fn forward<F: Float>(p: &Params<F>, x: ArrayView2<F>, mode: &mut Mode) -> (Array2<F>, Cache<F>) {
    forward_with_off(p, x, None, mode)
}

/// [`forward`] with the experts whose `off[e]` is true switched off: their gate logits are
/// −∞, so their gate is 0 and the rest renormalise. Panics if `off` does not have one entry
/// per expert or switches every expert off (no distribution is left to mix by).
pub fn forward_with_off<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    off: Option<&[bool]>,
    mode: &mut Mode,
) -> (Array2<F>, Cache<F>) {
    let n_experts = p.experts.len();
    if let Some(off) = off {
        assert_eq!(off.len(), n_experts, "mixture: {} off flags for {n_experts} experts", off.len());
        assert!(off.iter().any(|&o| !o), "mixture: every expert is switched off");
    }
    let seeds = branch_seeds(n_experts + 1, mode);
    // Branch 0 is the gate, branch 1 + e is expert e; all independent, so in parallel.
    let branches: Vec<&mlp::Params<F>> = std::iter::once(&p.gate).chain(p.experts.iter()).collect();
    let mut results: Vec<(Array2<F>, mlp::Cache<F>)> = branches
        .par_iter()
        .enumerate()
        .map(|(i, branch)| match &seeds {
            Some(seeds) => mlp::forward(branch, x, &mut Mode::Train(&mut init::rng(seeds[i]))),
            None => mlp::forward(branch, x, &mut Mode::Eval),
        })
        .collect();
    let expert_results = results.split_off(1);
    let (mut gate_logits, gate_cache) = results.pop().expect("branch 0 is the gate");
    for (e, _) in off.unwrap_or(&[]).iter().enumerate().filter(|(_, &o)| o) {
        gate_logits.column_mut(e).fill(F::neg_infinity());
    }
    let gates = softmax(gate_logits.view());
    let (outputs, expert_caches): (Vec<_>, Vec<_>) = expert_results.into_iter().unzip();

    let mut y = Array2::zeros(outputs[0].raw_dim());
    for (e, out) in outputs.iter().enumerate() {
        // y[r, :] += g[r, e] · yₑ[r, :]
        Zip::from(y.rows_mut()).and(out.rows()).and(gates.column(e)).for_each(|mut y, out, &g| {
            y.scaled_add(g, &out);
        });
    }
    (y, Cache { gate: gate_cache, experts: expert_caches, gates, outputs })
}

/// dy [n, d_out] → (dx [n, d_in] if asked for, grads).
pub fn backward<F: Float>(
    p: &Params<F>,
    c: &Cache<F>,
    dy: ArrayView2<F>,
    input_grad: InputGrad,
) -> (Option<Array2<F>>, Grads<F>) {
    let n_experts = p.experts.len();
    // dg[r, e] = Σⱼ dy[r, j] · yₑ[r, j]
    let mut dgates = Array2::zeros(c.gates.raw_dim());
    for (e, out) in c.outputs.iter().enumerate() {
        Zip::from(dgates.column_mut(e)).and(dy.rows()).and(out.rows()).for_each(|dg, dy, out| *dg = dy.dot(&out));
    }
    let dlogits = softmax_backward(c.gates.view(), dgates.view());

    // Every branch's backward is independent: gate (branch 0) and experts in parallel.
    let results: Vec<(Option<Array2<F>>, mlp::Grads<F>)> = (0..=n_experts)
        .into_par_iter()
        .map(|i| {
            if i == 0 {
                mlp::backward(&p.gate, &c.gate, dlogits.view(), input_grad)
            } else {
                let e = i - 1;
                // dyₑ = g[:, e] ⊙ dy, row by row
                let mut dy_e = dy.to_owned();
                Zip::from(dy_e.rows_mut()).and(c.gates.column(e)).for_each(|mut row, &g| row.mapv_inplace(|v| v * g));
                mlp::backward(&p.experts[e], &c.experts[e], dy_e.view(), input_grad)
            }
        })
        .collect();

    let mut dx: Option<Array2<F>> = None;
    let mut grads = Vec::with_capacity(n_experts + 1);
    for (branch_dx, g) in results {
        if let Some(bdx) = branch_dx {
            // x fed every branch, so its gradient sums them (in branch order: deterministic).
            match dx.as_mut() {
                Some(total) => *total += &bdx,
                None => dx = Some(bdx),
            }
        }
        grads.push(g);
    }
    let experts = grads.split_off(1);
    let gate = grads.pop().expect("branch 0 is the gate");
    (dx, Grads { gate, experts })
}

/// The index of each row's largest gate: which expert "took" that row.
pub fn top_expert<F: Float>(gates: ArrayView2<F>) -> Vec<usize> {
    gates.axis_iter(Axis(0)).map(crate::engine::losses::cross_entropy::argmax).collect()
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("gate", self.gate.tensors());
        t.extend(list("experts", &self.experts));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("gate", self.gate.tensors_mut());
        t.extend(list_mut("experts", &mut self.experts));
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("gate", self.gate.tensors());
        t.extend(list("experts", &self.experts));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("gate", self.gate.tensors_mut());
        t.extend(list_mut("experts", &mut self.experts));
        t
    }
}
