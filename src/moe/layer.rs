//! The MoE layer: a router, E experts, and the dispatch between them.
//!
//! ```text
//!   units     token-level: every row of x [batch·seq, d]      → m = batch·seq decisions
//!             sequence-level: the mean of each sequence's non-padding rows → m = batch decisions
//!   z, h      = router(units)                                  [m, E]   (routing::decide)
//!   g, kept   = decide(h)                                      [m, E]
//!   y[r]      = Σ_{e kept for unit(r)} g[unit(r), e] · expertₑ(x)[r]
//!   passthrough experts (transformer stacks, whose output is the stream itself):
//!   y[r]     += (1 − Σ_{e kept} g[unit(r), e]) · x[r]          a dropped token keeps x
//! ```
//! **Dispatch is really sparse.** For each expert the layer gathers only what it must see,
//! runs the expert once on that batch, and scatters the result back:
//! - an MLP expert under token-level routing gets exactly the rows routed to it;
//! - under sequence-level routing an expert gets the sequences routed to it (an MLP expert
//!   only their non-padding rows);
//! - a transformer-stack expert under token-level routing attends across positions, so it gets
//!   every sequence that holds at least one token routed to it, and only those tokens take
//!   its output.
//!
//! An expert with nothing routed to it is never called (`Stats::calls` counts the calls).
//! The experts are independent, so they run in parallel (rayon), each with its own dropout
//! stream drawn in order from the caller's generator; outputs are added in expert order, so
//! the result does not depend on the thread count.
//!
//! **Backward**, with dy [batch·seq, d]:
//! ```text
//!   dyₑ[local] = g · dy[r]                       (zero on gathered rows that do not take e)
//!   dg[u, e]  += dy[r] · expertₑ(x)[r]            (minus dy[r]·x[r] with passthrough)
//!   dx[rows gathered for e] += expertₑ_backward(dyₑ)
//!   dx[r]     += (1 − Σ g) · dy[r]                passthrough
//!   dh         = routing::backward(dg);  router backward with dz = ∂(router losses)/∂z
//!   dx        += router_backward            token-level: row by row;
//!                                           sequence-level: d(pooled)/n_real to each real row
//! ```

use crate::engine::init;
use crate::engine::layers::attention::Mask;
use crate::engine::layers::Mode;
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use crate::moe::expert::{self, Expert};
use crate::moe::router;
use crate::moe::routing::{self, Decision, Gating, Intervention};
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One routing decision per token, or one per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Token,
    Sequence,
}

/// What a layer is, beyond its tensors (saved with the model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub level: Level,
    pub gating: Gating,
    /// y += (1 − Σ kept gates)·x: for experts whose output replaces the stream (stacks).
    pub passthrough: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub router: router::Params<F>,
    pub experts: Vec<Expert<F>>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub router: router::Grads<F>,
    pub experts: Vec<expert::Grads<F>>,
}

/// How routing is steered on one call (not part of the model).
#[derive(Debug, Clone, Copy, Default)]
pub struct Route<'a> {
    pub intervention: Option<&'a Intervention>,
    /// Per unit, an expert that overrides the router (`Some`: the domain label under teacher
    /// forcing) or `None` (the router decides).
    pub assigned: Option<&'a [Option<usize>]>,
}

/// Work done by the experts in one forward pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Forward calls per expert (0 or 1): an expert with no tokens is not called.
    pub calls: Vec<usize>,
    /// Rows each expert ran on (gathered rows, including context rows of a stack expert).
    pub rows: Vec<usize>,
    /// Rows whose output each expert contributed to.
    pub tokens: Vec<usize>,
    /// Assignments dropped for capacity.
    pub dropped: usize,
}

/// What one expert did: which rows it read, which rows it wrote, with which unit's gate.
#[derive(Debug, Clone)]
struct Plan {
    /// Global rows gathered into the expert's input, in order.
    rows: Vec<usize>,
    /// (local row, global row, unit) for every row that takes the expert's output.
    take: Vec<(usize, usize, usize)>,
    /// The gathered batch as sequences (batch, seq) for a stack expert; (rows, 1) otherwise.
    batch: usize,
    seq: usize,
    key_padding: Option<Array2<u8>>,
}

#[derive(Debug, Clone)]
struct ExpertRun<F> {
    plan: Plan,
    cache: expert::Cache<F>,
    out: Array2<F>,
}

#[derive(Debug, Clone)]
pub struct Cache<F> {
    router: router::Cache<F>,
    logits: Array2<F>,
    decision: Decision<F>,
    real: Vec<bool>,
    runs: Vec<Option<ExpertRun<F>>>,
    /// x, for passthrough and for the sequence pooling's backward.
    x: Option<Array2<F>>,
    batch: usize,
    seq: usize,
    /// Real rows per sequence (sequence-level pooling).
    lengths: Vec<usize>,
    row_mask: Vec<bool>,
    stats: Stats,
}

impl<F: Float> Cache<F> {
    /// The router's clean logits z [m, E]: what the router losses read.
    pub fn logits(&self) -> &Array2<F> {
        &self.logits
    }
    /// The routing decision (gates, chosen experts, kept assignments).
    pub fn decision(&self) -> &Decision<F> {
        &self.decision
    }
    /// Which units are real (not padding): the mask for router losses and metrics.
    pub fn unit_mask(&self) -> &[bool] {
        &self.real
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The unit each row belongs to: itself (token-level) or its sequence.
    pub fn unit_of_row(&self, row: usize) -> usize {
        if self.lengths.is_empty() {
            row
        } else {
            row / self.seq
        }
    }
}

/// A layer of `n_experts` experts made by `make_expert`, with a router reading `d_in`.
pub fn init<F: Float>(
    d_in: usize,
    router_hidden: Option<usize>,
    noisy: bool,
    n_experts: usize,
    config: Config,
    mut make_expert: impl FnMut(&mut Rng) -> Expert<F>,
    rng: &mut Rng,
) -> Params<F> {
    let experts = (0..n_experts).map(|_| make_expert(rng)).collect();
    let router = router::init(d_in, router_hidden, n_experts, noisy, rng);
    Params { router, experts, config }
}

fn row_mask(key_padding: Option<ArrayView2<u8>>, n: usize) -> Vec<bool> {
    match key_padding {
        Some(m) => m.iter().map(|&v| v != 0).collect(),
        None => vec![true; n],
    }
}

/// x [batch·seq, d] → y [batch·seq, d_out]. `mask.key_padding` [batch, seq] marks real tokens.
pub fn forward<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    batch: usize,
    seq: usize,
    mask: Mask,
    route: Route,
    mode: &mut Mode,
) -> (Array2<F>, Cache<F>) {
    let n = x.nrows();
    assert_eq!(n, batch * seq, "moe layer: x has {n} rows, batch·seq = {}", batch * seq);
    let n_experts = p.experts.len();
    let rows_real = row_mask(mask.key_padding, n);
    let cfg = p.config;

    // The units the router reads: rows, or the mean of each sequence's real rows.
    let (units, real, lengths) = match cfg.level {
        Level::Token => (None, rows_real.clone(), Vec::new()),
        Level::Sequence => {
            let mut pooled = Array2::zeros((batch, x.ncols()));
            let mut lengths = vec![0usize; batch];
            for (s, len) in lengths.iter_mut().enumerate() {
                for t in 0..seq {
                    let r = s * seq + t;
                    if rows_real[r] {
                        pooled.row_mut(s).scaled_add(F::one(), &x.row(r));
                        *len += 1;
                    }
                }
                if *len > 0 {
                    let inv = F::one() / F::lit(*len as f64);
                    pooled.row_mut(s).mapv_inplace(|v| v * inv);
                }
            }
            let real = lengths.iter().map(|&l| l > 0).collect();
            (Some(pooled), real, lengths)
        }
    };
    let (logits, h, router_cache) = match &units {
        Some(pooled) => router::forward(&p.router, pooled.view(), mode),
        None => router::forward(&p.router, x, mode),
    };
    let iv_none = Intervention::none();
    let iv = route.intervention.unwrap_or(&iv_none);
    let decision = routing::decide(h.view(), &real, cfg.gating, iv, route.assigned);

    // Plan each expert's gather.
    let plans: Vec<Option<Plan>> = (0..n_experts)
        .map(|e| plan(&p.experts[e], cfg.level, &decision, e, batch, seq, &rows_real, mask.key_padding))
        .collect();

    // Run the experts that have work, in parallel, each with its own dropout stream.
    let seeds: Option<Vec<u64>> = match mode {
        Mode::Train(rng) => Some((0..n_experts).map(|_| rng.next_u64()).collect()),
        Mode::Eval => None,
    };
    let runs: Vec<Option<ExpertRun<F>>> = plans
        .into_par_iter()
        .enumerate()
        .map(|(e, plan)| {
            let plan = plan?;
            let xe = x.select(Axis(0), &plan.rows);
            let m = Mask { causal: mask.causal, key_padding: plan.key_padding.as_ref().map(|k| k.view()) };
            let (out, cache) = match &seeds {
                Some(s) => expert::forward(
                    &p.experts[e],
                    xe.view(),
                    plan.batch,
                    plan.seq,
                    m,
                    &mut Mode::Train(&mut init::rng(s[e])),
                ),
                None => expert::forward(&p.experts[e], xe.view(), plan.batch, plan.seq, m, &mut Mode::Eval),
            };
            Some(ExpertRun { plan, cache, out })
        })
        .collect();

    let d_out = p.experts.first().map_or(x.ncols(), |e| e.dims().1);
    let mut y = Array2::zeros((n, d_out));
    let mut stats = Stats {
        calls: vec![0; n_experts],
        rows: vec![0; n_experts],
        tokens: vec![0; n_experts],
        dropped: decision.dropped,
    };
    for (e, run) in runs.iter().enumerate() {
        let Some(run) = run else { continue };
        stats.calls[e] = 1;
        stats.rows[e] = run.plan.rows.len();
        stats.tokens[e] = run.plan.take.len();
        for &(local, global, unit) in &run.plan.take {
            let g = decision.gates[[unit, e]];
            y.row_mut(global).scaled_add(g, &run.out.row(local));
        }
    }
    let unit_of = |r: usize| if cfg.level == Level::Token { r } else { r / seq };
    if cfg.passthrough {
        for r in 0..n {
            let u = unit_of(r);
            let kept: F = (0..n_experts).map(|e| decision.gates[[u, e]] * decision.kept[[u, e]]).sum();
            y.row_mut(r).scaled_add(F::one() - kept, &x.row(r));
        }
    }
    let keep_x = cfg.passthrough || cfg.level == Level::Sequence;
    let cache = Cache {
        router: router_cache,
        logits,
        decision,
        real,
        runs,
        x: keep_x.then(|| x.to_owned()),
        batch,
        seq,
        lengths,
        row_mask: rows_real,
        stats,
    };
    (y, cache)
}

/// Which rows expert `e` reads and which take its output.
#[allow(clippy::too_many_arguments)]
fn plan<F: Float>(
    expert: &Expert<F>,
    level: Level,
    d: &Decision<F>,
    e: usize,
    batch: usize,
    seq: usize,
    rows_real: &[bool],
    key_padding: Option<ArrayView2<u8>>,
) -> Option<Plan> {
    let kept = |u: usize| d.kept[[u, e]] > F::zero();
    let sequences = |seqs: Vec<usize>, take_row: &dyn Fn(usize, usize) -> Option<usize>| -> Option<Plan> {
        if seqs.is_empty() {
            return None;
        }
        let mut rows = Vec::with_capacity(seqs.len() * seq);
        let mut take = Vec::new();
        for (j, &s) in seqs.iter().enumerate() {
            for t in 0..seq {
                let r = s * seq + t;
                rows.push(r);
                if let Some(unit) = take_row(s, r) {
                    take.push((j * seq + t, r, unit));
                }
            }
        }
        let key_padding = key_padding.map(|m| m.select(Axis(0), &seqs));
        Some(Plan { rows, take, batch: seqs.len(), seq, key_padding })
    };
    let rows = |rows: Vec<usize>, unit_of: &dyn Fn(usize) -> usize| -> Option<Plan> {
        if rows.is_empty() {
            return None;
        }
        let take = rows.iter().enumerate().map(|(i, &r)| (i, r, unit_of(r))).collect();
        let n = rows.len();
        Some(Plan { rows, take, batch: n, seq: 1, key_padding: None })
    };
    match (level, expert.needs_sequences()) {
        (Level::Token, false) => rows((0..batch * seq).filter(|&r| kept(r)).collect(), &|r| r),
        (Level::Sequence, false) => {
            rows((0..batch * seq).filter(|&r| rows_real[r] && kept(r / seq)).collect(), &|r| r / seq)
        }
        (Level::Token, true) => {
            let seqs = (0..batch).filter(|&s| (0..seq).any(|t| kept(s * seq + t))).collect();
            sequences(seqs, &|_, r| kept(r).then_some(r))
        }
        (Level::Sequence, true) => {
            let seqs = (0..batch).filter(|&s| kept(s)).collect();
            sequences(seqs, &|s, r| rows_real[r].then_some(s))
        }
    }
}

/// dy [batch·seq, d_out], and ∂L/∂z [m, E] from the router losses (None: no router loss)
/// → (dx [batch·seq, d], grads).
pub fn backward<F: Float>(
    p: &Params<F>,
    c: &Cache<F>,
    dy: ArrayView2<F>,
    dlogits: Option<ArrayView2<F>>,
) -> (Array2<F>, Grads<F>) {
    let n_experts = p.experts.len();
    let n = dy.nrows();
    let d_in = p.router.d_in();
    let passthrough = p.config.passthrough;

    // dg, and each expert's dyₑ.
    let mut dgates = Array2::<F>::zeros(c.decision.gates.raw_dim());
    let mut dys: Vec<Option<Array2<F>>> = Vec::with_capacity(n_experts);
    for (e, run) in c.runs.iter().enumerate() {
        let Some(run) = run else {
            dys.push(None);
            continue;
        };
        let mut dye = Array2::zeros(run.out.raw_dim());
        for &(local, global, unit) in &run.plan.take {
            let g = c.decision.gates[[unit, e]];
            let dyr = dy.row(global);
            let mut dot = dyr.dot(&run.out.row(local));
            if passthrough {
                dot -= dyr.dot(&c.x.as_ref().expect("passthrough keeps x").row(global));
            }
            dgates[[unit, e]] += dot;
            dye.row_mut(local).scaled_add(g, &dyr);
        }
        dys.push(Some(dye));
    }

    // The experts' backward, in parallel.
    let results: Vec<(Option<Array2<F>>, expert::Grads<F>)> = (0..n_experts)
        .into_par_iter()
        .map(|e| match (&c.runs[e], &dys[e]) {
            (Some(run), Some(dye)) => {
                let (dx, g) = expert::backward(&p.experts[e], &run.cache, dye.view());
                (Some(dx), g)
            }
            _ => (None, expert::zero_grads(&p.experts[e])),
        })
        .collect();

    let mut dx = Array2::<F>::zeros((n, d_in));
    let mut expert_grads = Vec::with_capacity(n_experts);
    for (e, (dxe, g)) in results.into_iter().enumerate() {
        if let (Some(dxe), Some(run)) = (dxe, &c.runs[e]) {
            for (local, &global) in run.plan.rows.iter().enumerate() {
                dx.row_mut(global).scaled_add(F::one(), &dxe.row(local));
            }
        }
        expert_grads.push(g);
    }
    if passthrough {
        for r in 0..n {
            let u = c.unit_of_row(r);
            let kept: F = (0..n_experts).map(|e| c.decision.gates[[u, e]] * c.decision.kept[[u, e]]).sum();
            dx.row_mut(r).scaled_add(F::one() - kept, &dy.row(r));
        }
    }

    // Through the gates into the router.
    let dh = routing::backward(&c.decision, dgates.view());
    let dz = match dlogits {
        Some(d) => d.to_owned(),
        None => Array2::zeros(dh.raw_dim()),
    };
    let (drouter_in, router) = router::backward(&p.router, &c.router, dz.view(), dh.view());
    if c.lengths.is_empty() {
        dx += &drouter_in;
    } else {
        // pooled[s] = (1/len_s) Σ_{real t} x[s·seq + t]
        for s in 0..c.batch {
            if c.lengths[s] == 0 {
                continue;
            }
            let inv = F::one() / F::lit(c.lengths[s] as f64);
            for t in 0..c.seq {
                let r = s * c.seq + t;
                if c.row_mask[r] {
                    dx.row_mut(r).scaled_add(inv, &drouter_in.row(s));
                }
            }
        }
    }
    (dx, Grads { router, experts: expert_grads })
}

/// The gates of every row (each row gets its unit's gates): [batch·seq, E].
pub fn row_gates<F: Float>(c: &Cache<F>) -> Array2<F> {
    let n = c.batch * c.seq;
    let mut g = Array2::zeros((n, c.decision.n_experts()));
    Zip::from(g.rows_mut()).and(&ndarray::Array1::from_iter(0..n)).for_each(|mut row, &r| {
        row.assign(&c.decision.gates.row(c.unit_of_row(r)));
    });
    g
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("router", self.router.tensors());
        t.extend(list("experts", &self.experts));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("router", self.router.tensors_mut());
        t.extend(list_mut("experts", &mut self.experts));
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("router", self.router.tensors());
        t.extend(list("experts", &self.experts));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("router", self.router.tensors_mut());
        t.extend(list_mut("experts", &mut self.experts));
        t
    }
}
