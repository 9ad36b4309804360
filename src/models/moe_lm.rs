//! The Mixture-of-Experts language model of the experiments: one file for E2–E5 and the demo.
//!
//! ```text
//!   h₀     = tok[ids] + pos[0..seq]                          [batch·seq, d]
//!   h      = shared blocks(h₀)                               0 or more pre-LN blocks every token uses
//!   stack experts (E2, E3, E4):   h₁ = moe(h)                each expert a small encoder; a token's
//!                                                            stream is Σ g·expertₑ(h) (+ passthrough)
//!   MLP experts (E5, the demo):   h₁ = h + moe(ln_moe(h))    Switch-style: the MoE replaces a
//!                                                            feed-forward sub-layer, inside a residual
//!   logits = ln_f(h₁)·W_head + b_head                        [batch·seq, vocab]
//!   L      = CE(logits, targets)                             padding targets ignored
//!          + router losses(z)                                Switch balance, z-loss, entropies
//!          + λ · CE(z, domains)                              domain-classifier routing only
//! ```
//! Routing is token-level or sequence-level, dense or top-k (see [`crate::moe::layer`]).
//! **Domain-classifier routing** (E5) is sequence-level top-1 routing whose router is a
//! classifier of the sequence's domain, read from the pooled output of the shared stack and
//! trained by its own cross-entropy against the domain labels (weight λ). Top-1 gates are the
//! constant 1, so the LM loss does not reach the classifier: it learns the domains only. The
//! sequence goes to the expert the classifier picks — or, under teacher forcing, to its true
//! domain's expert (`Route::assigned`), switchable per sequence so a schedule can move from
//! one to the other.
//!
//! Backward is the chain in reverse; the router's logits collect the gradients of the router
//! losses and of the domain cross-entropy, handed to [`layer::backward`].

use crate::engine::layers::attention::Mask;
use crate::engine::layers::transformer_block::{self as block};
use crate::engine::layers::{embedding, layer_norm, linear, Activation, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use crate::moe::expert::Expert;
use crate::moe::layer::{self, Level, Route};
use crate::moe::losses::{self, RouterLossConfig, RouterLossValues};
use crate::moe::routing::Gating;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// What each expert is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ExpertKind {
    /// A stack of `layers` pre-LN blocks (d_model, n_heads, d_ff as the model).
    Stack { layers: usize },
    /// A feed-forward MLP d_model → hidden → d_model (GELU), Switch-style.
    Mlp { hidden: usize },
}

/// The shape of the model, its routing, and its auxiliary losses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab: usize,
    pub max_seq: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Feed-forward width of the shared blocks and of stack experts.
    pub d_ff: usize,
    pub dropout: f64,
    pub pad_id: Option<usize>,
    /// Blocks every token goes through before the MoE layer.
    pub shared_layers: usize,
    pub n_experts: usize,
    pub expert: ExpertKind,
    /// Some(h): 2-layer feed-forward router d → h → E (ReLU); None: linear router.
    pub router_hidden: Option<usize>,
    pub noisy: bool,
    pub level: Level,
    pub gating: Gating,
    pub router_losses: RouterLossConfig,
    /// Some(λ): domain-classifier routing, the router trained on domain labels with weight λ.
    pub domain_loss: Option<f64>,
    /// Stack experts attend both ways: each position also sees the positions after it —
    /// including the token it predicts, so the loss is no longer a language-model loss (E2's
    /// labelled leaking arm). The shared stack stays causal. Older configs: false.
    #[serde(default)]
    pub bidirectional_experts: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub embed: embedding::Params<F>,
    pub shared: Vec<block::Params<F>>,
    /// The LayerNorm in front of MLP experts (None for stack experts, which normalise inside).
    pub ln_moe: Option<layer_norm::Params<F>>,
    pub moe: layer::Params<F>,
    pub ln_f: layer_norm::Params<F>,
    pub head: linear::Params<F>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub embed: embedding::Grads<F>,
    pub shared: Vec<block::Grads<F>>,
    pub ln_moe: Option<layer_norm::Grads<F>>,
    pub moe: layer::Grads<F>,
    pub ln_f: layer_norm::Grads<F>,
    pub head: linear::Grads<F>,
}

/// Each part of the loss (f64, for logging); `total` is what backward differentiates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Losses {
    /// Next-token cross-entropy (nats per real target).
    pub lm: f64,
    pub router: RouterLossValues,
    /// Cross-entropy of the domain classifier (0 unless domain routing).
    pub domain: f64,
    pub total: f64,
}

pub struct Cache<F> {
    embed: embedding::Cache,
    shared: Vec<block::Cache<F>>,
    ln_moe: Option<(layer_norm::Cache<F>, Array2<F>)>,
    moe: layer::Cache<F>,
    ln_f: layer_norm::Cache<F>,
    head: linear::Cache<F>,
    ce: cross_entropy::Cache<F>,
    /// ∂(router losses + λ·domain CE)/∂z [units, E].
    dz: Array2<F>,
    batch: usize,
    seq: usize,
}

impl<F: Float> Cache<F> {
    /// The MoE layer's cache: routing decision, router logits, expert statistics.
    pub fn moe(&self) -> &layer::Cache<F> {
        &self.moe
    }
    /// The head's logits [batch·seq, vocab] (recomputed from the head's cached input).
    pub fn logits(&self, p: &Params<F>) -> Array2<F> {
        linear::forward(&p.head, self.head.input()).0
    }
    /// Each target position's probability distribution [batch·seq, vocab].
    pub fn probs(&self) -> &Array2<F> {
        self.ce.probs()
    }
    /// Attention weights of shared block `layer`: [batch, n_heads, seq, seq].
    pub fn attention(&self, layer: usize) -> &ndarray::Array4<F> {
        self.shared[layer].attn.probs()
    }
}

/// GPT-2 style init (std 0.02), the router as in `moe::router`.
pub fn init<F: Float>(cfg: Config, rng: &mut Rng) -> Params<F> {
    let std = 0.02;
    let embed = embedding::init(cfg.vocab, cfg.max_seq, cfg.d_model, cfg.pad_id, std, rng);
    let shared = (0..cfg.shared_layers)
        .map(|_| block::init(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, std, rng))
        .collect();
    let passthrough = matches!(cfg.expert, ExpertKind::Stack { .. });
    let layer_cfg = layer::Config { level: cfg.level, gating: cfg.gating, passthrough };
    let d = cfg.d_model;
    let moe = layer::init(
        d,
        cfg.router_hidden,
        cfg.noisy,
        cfg.n_experts,
        layer_cfg,
        |r| match cfg.expert {
            ExpertKind::Stack { layers } => Expert::stack(layers, d, cfg.n_heads, cfg.d_ff, cfg.dropout, r),
            ExpertKind::Mlp { hidden } => {
                let mut e = Expert::mlp(&[d, hidden, d], Activation::GeluTanh, cfg.dropout, r);
                if let Expert::Mlp(m) = &mut e {
                    for l in &mut m.layers {
                        l.w = crate::engine::init::normal(l.w.raw_dim(), std, r);
                    }
                }
                e
            }
        },
        rng,
    );
    let ln_moe = (!passthrough).then(|| layer_norm::init(d, 1e-5));
    let head = linear::init_normal(d, cfg.vocab, std, rng);
    Params { embed, shared, ln_moe, moe, ln_f: layer_norm::init(d, 1e-5), head, config: cfg }
}

/// 1 for a real token, 0 for padding, row by row [batch·seq].
fn real_rows(ids: ArrayView2<usize>, pad: Option<usize>) -> Array1<u8> {
    ids.iter().map(|&id| u8::from(Some(id) != pad)).collect()
}

/// The mean next-token loss plus the auxiliary losses. `domains` (one label per sequence) is
/// needed with domain-classifier routing; `route` carries interventions and teacher forcing.
pub fn forward<F: Float>(
    p: &Params<F>,
    ids: ArrayView2<usize>,
    targets: ArrayView2<usize>,
    domains: Option<&[usize]>,
    route: Route,
    mode: &mut Mode,
) -> (Losses, Cache<F>) {
    let cfg = p.config;
    let (batch, seq) = ids.dim();
    assert_eq!(ids.dim(), targets.dim(), "moe lm: ids are {:?}, targets {:?}", ids.dim(), targets.dim());
    let pad = crate::models::transformer_lm::padding_mask(ids, cfg.pad_id);
    let mask = Mask { causal: true, key_padding: pad.as_ref().map(|m| m.view()) };
    let (h, embed, shared) = trunk(p, ids, mask, mode);
    let expert_mask = Mask { causal: !cfg.bidirectional_experts, ..mask };
    let (h1, moe, ln_moe) = match &p.ln_moe {
        Some(ln) => {
            let (a, ln_cache) = layer_norm::forward(ln, h.view());
            let (m, moe) = layer::forward(&p.moe, a.view(), batch, seq, expert_mask, route, mode);
            (&h + &m, moe, Some((ln_cache, h)))
        }
        None => {
            let (m, moe) = layer::forward(&p.moe, h.view(), batch, seq, expert_mask, route, mode);
            (m, moe, None)
        }
    };
    let (normed, ln_f) = layer_norm::forward(&p.ln_f, h1.view());
    let (logits, head) = linear::forward(&p.head, normed.view());
    let targets_flat: Vec<usize> = targets.iter().copied().collect();
    let (lm_loss, ce) = cross_entropy::forward(logits.view(), &targets_flat, cfg.pad_id);

    // The router's auxiliary losses, on the clean logits of the real units.
    let z = moe.logits();
    let unit_mask: Array1<u8> = match cfg.level {
        Level::Token => real_rows(ids, cfg.pad_id),
        Level::Sequence => moe.unit_mask().iter().map(|&r| u8::from(r)).collect(),
    };
    let dispatch = dispatch_of(&moe);
    let (router, mut dz) = losses::total(&cfg.router_losses, z.view(), dispatch.view(), Some(unit_mask.view()));
    let mut domain = 0.0;
    if let (Some(weight), Some(labels)) = (cfg.domain_loss, domains) {
        let (l, c) = cross_entropy::forward(z.view(), labels, None);
        domain = l.to_f64().unwrap_or(f64::NAN);
        dz.scaled_add(F::lit(weight), &cross_entropy::backward(&c));
    }
    let lm = lm_loss.to_f64().unwrap_or(f64::NAN);
    let total = lm + router.total + cfg.domain_loss.map_or(0.0, |w| w * domain);
    let cache = Cache { embed, shared, ln_moe, moe, ln_f, head, ce, dz, batch, seq };
    (Losses { lm, router, domain, total }, cache)
}

/// Embedding and the shared (causal) stack: h [batch·seq, d], what the MoE layer's residual
/// carries.
fn trunk<F: Float>(
    p: &Params<F>,
    ids: ArrayView2<usize>,
    mask: Mask,
    mode: &mut Mode,
) -> (Array2<F>, embedding::Cache, Vec<block::Cache<F>>) {
    let (batch, seq) = ids.dim();
    let (h0, embed) = embedding::forward(&p.embed, ids, p.config.pad_id);
    let h0 = h0.into_shape_with_order((batch * seq, p.config.d_model)).expect("standard layout");
    let (h, shared) = block::forward_stack(&p.shared, h0.view(), batch, seq, mask, mode);
    (h, embed, shared)
}

/// The router's logits [batch, seq, E] as they are with only the first t + 1 tokens of each
/// sequence known — what a domain-routed model can decide while it generates. Sequence-level
/// routing reads the mean of the MoE layer's input over the real positions so far; the shared
/// stack is causal, so position t's input does not depend on later tokens and this equals
/// routing the truncated prefix (a test checks it). Token-level routing: each position's own
/// logits. Eval mode; padding positions carry the last real position's logits.
pub fn prefix_router_logits<F: Float>(p: &Params<F>, ids: ArrayView2<usize>) -> ndarray::Array3<f64> {
    let (batch, seq) = ids.dim();
    let pad = crate::models::transformer_lm::padding_mask(ids, p.config.pad_id);
    let mask = Mask { causal: true, key_padding: pad.as_ref().map(|m| m.view()) };
    let (h, _, _) = trunk(p, ids, mask, &mut Mode::Eval);
    let x = match &p.ln_moe {
        Some(ln) => layer_norm::forward(ln, h.view()).0,
        None => h,
    };
    let units = match p.config.level {
        Level::Token => x,
        Level::Sequence => {
            let mut means = Array2::<F>::zeros(x.raw_dim());
            for b in 0..batch {
                let mut sum = Array1::<F>::zeros(x.ncols());
                let mut n = 0usize;
                for t in 0..seq {
                    let r = b * seq + t;
                    if pad.as_ref().is_none_or(|m| m[[b, t]] != 0) {
                        sum += &x.row(r);
                        n += 1;
                    }
                    if n > 0 {
                        let inv = F::one() / F::lit(n as f64);
                        means.row_mut(r).assign(&sum.mapv(|v| v * inv));
                    }
                }
            }
            means
        }
    };
    let (z, _, _) = crate::moe::router::forward(&p.moe.router, units.view(), &mut Mode::Eval);
    let e = z.ncols();
    z.mapv(|v| v.to_f64().unwrap_or(f64::NAN)).into_shape_with_order((batch, seq, e)).expect("standard layout")
}

/// [units, E]: 1 where a unit chose the expert (before capacity), what the Switch loss's fᵢ counts.
fn dispatch_of<F: Float>(c: &layer::Cache<F>) -> Array2<F> {
    let d = c.decision();
    let mut out = Array2::zeros(d.gates.raw_dim());
    for (u, chosen) in d.chosen.iter().enumerate() {
        for &e in chosen {
            out[[u, e]] = F::one();
        }
    }
    out
}

/// ∂L/∂(every parameter) of `Losses::total`.
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>) -> Grads<F> {
    let d = p.config.d_model;
    let dlogits = cross_entropy::backward(&c.ce);
    let (dnormed, head) = linear::backward(&p.head, &c.head, dlogits.view());
    let (dh1, ln_f) = layer_norm::backward(&p.ln_f, &c.ln_f, dnormed.view());
    let (dh, moe, ln_moe) = match (&p.ln_moe, &c.ln_moe) {
        (Some(ln), Some((ln_cache, _))) => {
            // h₁ = h + moe(ln(h)): dh1 reaches h directly and through the MoE branch.
            let (da, moe) = layer::backward(&p.moe, &c.moe, dh1.view(), Some(c.dz.view()));
            let (dh_branch, g_ln) = layer_norm::backward(ln, ln_cache, da.view());
            (dh1 + &dh_branch, moe, Some(g_ln))
        }
        _ => {
            let (dh, moe) = layer::backward(&p.moe, &c.moe, dh1.view(), Some(c.dz.view()));
            (dh, moe, None)
        }
    };
    let (dh0, shared) = block::backward_stack(&p.shared, &c.shared, dh.view());
    let dh0 = dh0.into_shape_with_order((c.batch, c.seq, d)).expect("standard layout");
    let embed = embedding::backward(&p.embed, &c.embed, dh0.view());
    Grads { embed, shared, ln_moe, moe, ln_f, head }
}

/// What evaluation and the analyses read from one eval-mode pass.
pub struct Routed {
    /// −ln p(target) per position [batch, seq] (0 where the target is padding).
    pub token_loss: Array2<f64>,
    /// Each row's gates [batch·seq, E] (a sequence-level unit's gates on all its rows).
    pub gates: Array2<f64>,
    /// Each row's chosen experts, best first (empty for padding).
    pub chosen: Vec<Vec<usize>>,
    /// The router's logits [units, E] (units = rows or sequences).
    pub logits: Array2<f64>,
    pub losses: Losses,
    pub stats: layer::Stats,
}

/// One eval-mode pass (dropout and noise off) with per-token losses and routing.
pub fn routed<F: Float>(
    p: &Params<F>,
    ids: ArrayView2<usize>,
    targets: ArrayView2<usize>,
    domains: Option<&[usize]>,
    route: Route,
) -> Routed {
    let (batch, seq) = ids.dim();
    let (losses, c) = forward(p, ids, targets, domains, route, &mut Mode::Eval);
    let probs = c.ce.probs();
    let token_loss = Array2::from_shape_fn((batch, seq), |(b, t)| {
        let target = targets[[b, t]];
        if Some(target) == p.config.pad_id {
            0.0
        } else {
            -probs[[b * seq + t, target]].to_f64().unwrap_or(f64::NAN).max(f64::MIN_POSITIVE).ln()
        }
    });
    let gates = layer::row_gates(&c.moe).mapv(|v| v.to_f64().unwrap_or(f64::NAN));
    let chosen = (0..batch * seq).map(|r| c.moe.decision().chosen[c.moe.unit_of_row(r)].clone()).collect();
    let chosen = chosen_rows(chosen, ids, p.config.pad_id);
    let logits = c.moe.logits().mapv(|v| v.to_f64().unwrap_or(f64::NAN));
    Routed { token_loss, gates, chosen, logits, losses, stats: c.moe.stats().clone() }
}

fn chosen_rows(mut chosen: Vec<Vec<usize>>, ids: ArrayView2<usize>, pad: Option<usize>) -> Vec<Vec<usize>> {
    for (c, &id) in chosen.iter_mut().zip(ids.iter()) {
        if Some(id) == pad {
            c.clear();
        }
    }
    chosen
}

/// The index of the largest logit in each row: the classifier's domain, or the top expert.
pub fn argmax_rows(z: ArrayView2<f64>) -> Vec<usize> {
    z.axis_iter(Axis(0)).map(crate::engine::losses::cross_entropy::argmax).collect()
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors());
        t.extend(list("shared", &self.shared));
        if let Some(ln) = &self.ln_moe {
            t.extend(prefixed("ln_moe", ln.tensors()));
        }
        t.extend(prefixed("moe", self.moe.tensors()));
        t.extend(prefixed("ln_f", self.ln_f.tensors()));
        t.extend(prefixed("head", self.head.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors_mut());
        t.extend(list_mut("shared", &mut self.shared));
        if let Some(ln) = &mut self.ln_moe {
            t.extend(prefixed("ln_moe", ln.tensors_mut()));
        }
        t.extend(prefixed("moe", self.moe.tensors_mut()));
        t.extend(prefixed("ln_f", self.ln_f.tensors_mut()));
        t.extend(prefixed("head", self.head.tensors_mut()));
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors());
        t.extend(list("shared", &self.shared));
        if let Some(ln) = &self.ln_moe {
            t.extend(prefixed("ln_moe", ln.tensors()));
        }
        t.extend(prefixed("moe", self.moe.tensors()));
        t.extend(prefixed("ln_f", self.ln_f.tensors()));
        t.extend(prefixed("head", self.head.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors_mut());
        t.extend(list_mut("shared", &mut self.shared));
        if let Some(ln) = &mut self.ln_moe {
            t.extend(prefixed("ln_moe", ln.tensors_mut()));
        }
        t.extend(prefixed("moe", self.moe.tensors_mut()));
        t.extend(prefixed("ln_f", self.ln_f.tensors_mut()));
        t.extend(prefixed("head", self.head.tensors_mut()));
        t
    }
}
