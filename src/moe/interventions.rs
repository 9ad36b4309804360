//! Interventions on a trained MoE that change what trains, or what the layer holds.
//!
//! The routing-time interventions (force every input to one expert, switch experts off,
//! steer by log-probability offsets) are a [`routing::Intervention`] handed to each forward
//! pass. The training-time ones are expressed as optimiser rules ([`Rule`], first match wins,
//! by tensor-name prefix), so they work for any model that names its MoE layer's tensors
//! `{layer}.router.…` and `{layer}.experts.{e}.…`:
//!
//! ```text
//!   freeze all but expert e:      experts.j frozen for every j ≠ e (router and the rest train)
//!   train only the router:        router trains, everything else frozen
//!   train only expert e + router: the "new domain" recipe after add_expert
//! ```
//! [`add_expert`] grows a layer by one expert: the router gains one output column, the mean of
//! the existing columns plus N(0, 0.02²) noise, so the newcomer's score starts at the average
//! of the trained experts' scores for every input. A fresh N(0, 0.02²) column, as at init,
//! scores ≈ 0 against trained columns whose scores have drifted, and that can fail either way:
//! when the trained scores sit above 0 the newcomer is never chosen under top-k and never
//! trains (tests/moe_interventions.rs); when they sit below 0 it takes most tokens at once and
//! wrecks the old domains (chapter 10 measures both). The mean column starts it in the middle.
//! A noisy router gains a zero noise column.
//!
//! Steering (SteerMoE, Fayyaz et al. 2025) adds an offset oₑ to chosen experts' router
//! log-probabilities; beyond that paper, the same offsets may stay on *during training*
//! (`train::MoeTraining::intervention`), so the model learns with a thumb on the scale.
//!
//! [`routing::Intervention`]: crate::moe::routing::Intervention

use crate::engine::init;
use crate::engine::optim::Rule;
use crate::engine::{Float, Rng};
use crate::moe::expert::Expert;
use crate::moe::layer;
use ndarray::{concatenate, Array1, Array2, Axis};

/// Rules freezing every expert of the layer at `prefix` (e.g. "moe") except `keep`.
pub fn freeze_all_but(prefix: &str, n_experts: usize, keep: usize) -> Vec<Rule> {
    (0..n_experts).filter(|&e| e != keep).map(|e| Rule::new(&format!("{prefix}.experts.{e}")).frozen()).collect()
}

/// Rules that train only the router of the layer at `prefix`: everything else is frozen.
pub fn train_only_router(prefix: &str) -> Vec<Rule> {
    vec![Rule::new(&format!("{prefix}.router")), Rule::new("").frozen()]
}

/// Rules that train only expert `e` and the router of the layer at `prefix`.
pub fn train_only_expert_and_router(prefix: &str, e: usize) -> Vec<Rule> {
    vec![Rule::new(&format!("{prefix}.router")), Rule::new(&format!("{prefix}.experts.{e}")), Rule::new("").frozen()]
}

/// Appends `expert` to the layer and a column for it to the router's output (and noise)
/// layer. Returns the new expert's index. Panics if the expert's width does not fit the
/// layer (a bug in the caller).
pub fn add_expert<F: Float>(p: &mut layer::Params<F>, expert: Expert<F>, rng: &mut Rng) -> usize {
    if let Some(first) = p.experts.first() {
        assert_eq!(first.dims(), expert.dims(), "add_expert: the new expert's (d_in, d_out) differs from the others'");
    }
    let last = p.router.net.layers.last_mut().expect("a router has at least one layer");
    let n = F::lit(last.w.ncols().max(1) as f64);
    let mean_w = last.w.sum_axis(Axis(1)).mapv(|v| v / n).insert_axis(Axis(1));
    let column: Array2<F> = mean_w + init::normal::<F, _, _>((last.w.nrows(), 1), 0.02, rng);
    let mean_b = last.b.sum() / n;
    // concatenate keeps the inputs' column-major-ish layout: the optimiser wants rows contiguous.
    last.w = concatenate(Axis(1), &[last.w.view(), column.view()])
        .expect("same number of rows")
        .as_standard_layout()
        .into_owned();
    last.b = concatenate(Axis(0), &[last.b.view(), Array1::from_elem(1, mean_b).view()]).expect("1-d");
    if let Some(noise) = &mut p.router.noise {
        noise.w = concatenate(Axis(1), &[noise.w.view(), Array2::zeros((noise.w.nrows(), 1)).view()])
            .expect("same number of rows")
            .as_standard_layout()
            .into_owned();
        noise.b = concatenate(Axis(0), &[noise.b.view(), Array1::zeros(1).view()]).expect("1-d");
    }
    p.experts.push(expert);
    p.experts.len() - 1
}
