//! An MoE classifier: a Mixture-of-Experts layer whose experts each output the class logits
//! (E6, chapters 08 and 09).
//!
//! ```text
//!   x       [batch, d_in]                     one row = one routing unit (token level, seq = 1)
//!   z, h    = router(x)                       [batch, E]   clean logits z; h = z + noise in training
//!   g, kept = decide(h)                       [batch, E]   dense, or top-k renormalised over the k chosen
//!   logits  = Σ_{e kept} g[:, e] ⊙ expertₑ(x) [batch, classes]   expertₑ: MLP d_in → hidden… → classes
//!   L       = CE(logits, y) + router losses(z)                  Switch balance, z-loss, entropies
//! ```
//! Everything routing-related is [`crate::moe::layer`]'s: the router (linear or 2-layer,
//! optionally noisy), the decision (dense or top-k, capacity and dropping), the sparse
//! dispatch (an unchosen expert is never called) and the backward through all of it. This file
//! only adds the loss on top: cross-entropy on the mixed logits, plus
//! [`crate::moe::losses::total`] on the router's clean logits z, whose gradient enters the
//! layer's backward as `dlogits`.
//!
//! The Switch loss's fᵢ counts routing *decisions*, the k chosen experts of each row before
//! capacity (a dropped assignment was still sent). Under dense routing every row chooses
//! every expert, f = 1/E for all i, and the Switch loss is the constant α with zero gradient:
//! balancing needs a choice to balance.
//!
//! Beside forward and backward: [`predict`] (eval mode: no dropout, no noise), [`evaluate`]
//! (accuracy and the routing metrics of `moe::metrics`) and [`fit`], a small seeded training
//! loop (shuffle, batch, step) on `engine::optim`. Models take plain arrays, so `fit` reads
//! an `x` [n, d_in] and labels rather than a data set, and its settings ([`Fit`]) carry the
//! same fields as the classifier loop's `Config` in src/train.rs, which a model may not import
//! (tests/layering.rs).

use crate::engine::init::{self, streams};
use crate::engine::layers::attention::Mask;
use crate::engine::layers::{Activation, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::ops::softmax::softmax;
use crate::engine::optim::{self, Kind, Optimizer, Rule, Schedule};
use crate::engine::params::{prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use crate::error::{Error, Result};
use crate::moe::expert::Expert;
use crate::moe::layer::{self, Level, Route};
use crate::moe::losses::{self, RouterLossConfig, RouterLossValues};
use crate::moe::metrics::{self, ClassExpert, Entropy};
use crate::moe::routing::{Gating, Strategy};
use ndarray::{s, Array2, ArrayView2};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// The shape of the model, its routing and its router losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub d_in: usize,
    /// The experts' hidden widths: each expert is d_in → hidden… → classes (ReLU).
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub n_experts: usize,
    /// Some(h): 2-layer feed-forward router d_in → h → E (ReLU); None: linear router.
    pub router_hidden: Option<usize>,
    /// Noisy gating (Shazeer 2017): learned Gaussian noise on the logits in training.
    pub noisy: bool,
    /// Dense or top-k, with an optional capacity factor.
    pub gating: Gating,
    pub router_losses: RouterLossConfig,
    /// Dropout inside the experts (training only).
    pub dropout: f64,
}

impl Config {
    /// E6 (SPEC §4): 4 experts, each an MLP 20 → 64 → 32 → 3, a linear gate
    /// softmax(TopK(W·x, k = 2)), the Switch load-balancing loss at the paper's α = 1e-2
    /// and nothing else; no noise, no capacity limit, no dropout.
    pub fn e6() -> Config {
        Config {
            d_in: 20,
            hidden: vec![64, 32],
            classes: 3,
            n_experts: 4,
            router_hidden: None,
            noisy: false,
            gating: Gating::top_k(2),
            router_losses: RouterLossConfig { balance: 1e-2, ..RouterLossConfig::default() },
            dropout: 0.0,
        }
    }

    /// Checks every value against its allowed range, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.d_in == 0 {
            return Err(Error::bad_value("d_in", 0, "an expert needs at least one input feature"));
        }
        if self.classes < 2 {
            return Err(Error::bad_value("classes", self.classes, "a classifier needs at least 2 classes"));
        }
        if self.n_experts == 0 {
            return Err(Error::bad_value("n_experts", 0, "an MoE needs at least one expert"));
        }
        if let Some(&w) = self.hidden.iter().find(|&&w| w == 0) {
            return Err(Error::bad_value("hidden", w, "every hidden layer needs at least one unit"));
        }
        if let Strategy::TopK(k) = self.gating.strategy {
            if k == 0 || k > self.n_experts {
                return Err(Error::bad_value(
                    "top_k",
                    k,
                    &format!("must be 1..={} (the number of experts)", self.n_experts),
                ));
            }
        }
        if let Some(c) = self.gating.capacity_factor {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::bad_value("capacity_factor", c, "must be a finite number > 0"));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::bad_value("dropout", self.dropout, "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// The MoE layer (router + experts) and the configuration it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub moe: layer::Params<F>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub moe: layer::Grads<F>,
}

/// Each part of the loss (f64, for logging); `total` is what backward differentiates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Losses {
    /// Cross-entropy of the mixed logits (nats per row).
    pub ce: f64,
    pub router: RouterLossValues,
    pub total: f64,
}

/// What backward needs: the layer's cache, the cross-entropy's, and ∂(router losses)/∂z.
pub struct Cache<F> {
    moe: layer::Cache<F>,
    ce: cross_entropy::Cache<F>,
    /// ∂(router losses)/∂z [batch, E].
    dz: Array2<F>,
}

impl<F: Float> Cache<F> {
    /// The MoE layer's cache: router logits, the routing decision, the experts' work.
    pub fn moe(&self) -> &layer::Cache<F> {
        &self.moe
    }
    /// softmax(logits) [batch, classes].
    pub fn probs(&self) -> &Array2<F> {
        self.ce.probs()
    }
}

/// A model for `cfg`: experts He-initialised, the router as in `moe::router` (its output
/// layer N(0, 0.02²), so every expert starts almost equally likely). Panics on a config that
/// fails [`Config::validate`] (check it at the boundary).
pub fn init<F: Float>(cfg: &Config, rng: &mut Rng) -> Params<F> {
    if let Err(e) = cfg.validate() {
        panic!("moe classifier: {e}");
    }
    let sizes: Vec<usize> =
        std::iter::once(cfg.d_in).chain(cfg.hidden.iter().copied()).chain(std::iter::once(cfg.classes)).collect();
    // Each row is its own unit; experts output logits, not a stream, so no passthrough.
    let layer_cfg = layer::Config { level: Level::Token, gating: cfg.gating, passthrough: false };
    let moe = layer::init(
        cfg.d_in,
        cfg.router_hidden,
        cfg.noisy,
        cfg.n_experts,
        layer_cfg,
        |r| Expert::mlp(&sizes, Activation::Relu, cfg.dropout, r),
        rng,
    );
    Params { moe, config: cfg.clone() }
}

/// x [batch, d_in] as [batch·1, d_in]: every row a sequence of one, no padding.
fn layer_forward<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    route: Route,
    mode: &mut Mode,
) -> (Array2<F>, layer::Cache<F>) {
    let (d_in, expected) = (x.ncols(), p.config.d_in);
    assert_eq!(d_in, expected, "moe classifier: x has {d_in} features, the model reads {expected}");
    let mask = Mask { causal: false, key_padding: None };
    layer::forward(&p.moe, x, x.nrows(), 1, mask, route, mode)
}

/// [batch, E]: 1 where a row chose the expert (before capacity), what the Switch loss's fᵢ counts.
pub fn dispatch<F: Float>(c: &layer::Cache<F>) -> Array2<F> {
    let d = c.decision();
    let mut out = Array2::zeros(d.gates.raw_dim());
    for (u, chosen) in d.chosen.iter().enumerate() {
        for &e in chosen {
            out[[u, e]] = F::one();
        }
    }
    out
}

/// x [batch, d_in], labels y (each < classes) → the losses and the cache for [`backward`].
pub fn forward<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    y: &[usize],
    route: Route,
    mode: &mut Mode,
) -> (Losses, Cache<F>) {
    assert_eq!(y.len(), x.nrows(), "moe classifier: {} labels for {} rows", y.len(), x.nrows());
    let (logits, moe) = layer_forward(p, x, route, mode);
    let (ce_loss, ce) = cross_entropy::forward(logits.view(), y, None);
    // The router losses read the clean logits z (no noise), every row real.
    let (router, dz) = losses::total(&p.config.router_losses, moe.logits().view(), dispatch(&moe).view(), None);
    let ce_loss = ce_loss.to_f64().unwrap_or(f64::NAN);
    let losses = Losses { ce: ce_loss, router, total: ce_loss + router.total };
    (losses, Cache { moe, ce, dz })
}

/// ∂L/∂(every parameter) of `Losses::total`: the cross-entropy's gradient enters as dy, the
/// router losses' as ∂L/∂z; the layer does the rest.
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>) -> Grads<F> {
    let dlogits = cross_entropy::backward(&c.ce); // [batch, classes]
                                                  // The input is data: its gradient (which the layer computes anyway) is dropped.
    let (_, moe) = layer::backward(&p.moe, &c.moe, dlogits.view(), Some(c.dz.view()));
    Grads { moe }
}

/// What the model does with a batch in eval mode (no dropout, no noise), in f64.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Mixed logits [batch, classes].
    pub logits: Array2<f64>,
    /// Gates g [batch, E]: the mixing weights (0 for an unchosen expert).
    pub gates: Array2<f64>,
    /// The router's full distribution softmax(z) [batch, E], over every expert.
    pub router_probs: Array2<f64>,
    /// Each row's chosen experts, best first.
    pub chosen: Vec<Vec<usize>>,
    /// The experts' work in this pass (calls, rows, dropped assignments).
    pub stats: layer::Stats,
}

/// One eval-mode pass over x [batch, d_in] as a single batch (capacity counts this batch).
pub fn predict<F: Float>(p: &Params<F>, x: ArrayView2<F>, route: Route) -> Prediction {
    let (logits, c) = layer_forward(p, x, route, &mut Mode::Eval);
    let to64 = |a: &Array2<F>| a.mapv(|v| v.to_f64().unwrap_or(f64::NAN));
    let z = to64(c.logits());
    Prediction {
        logits: to64(&logits),
        gates: to64(&c.decision().gates),
        router_probs: softmax(z.view()),
        chosen: c.decision().chosen.clone(),
        stats: c.stats().clone(),
    }
}

/// A row's first choice. Every row is real and no expert is switched off here, so every row
/// chooses at least one expert.
fn first_choice(chosen: &[usize]) -> usize {
    *chosen.first().expect("every row chooses at least one expert")
}

/// Accuracy and the routing metrics of a labelled set (eval mode).
#[derive(Debug, Clone)]
pub struct Eval {
    /// Mean cross-entropy (nats per row) and accuracy.
    pub loss: f64,
    pub accuracy: f64,
    /// Share of rows whose first choice is each expert, `[E]` (sums to 1).
    pub utilisation: Vec<f64>,
    /// Var(utilisation): 0 balanced … (E−1)/E² collapsed onto one expert.
    pub load_variance: f64,
    /// Share of the kept (served) assignments each expert ran, `[E]`; top-k: k per row.
    pub load: Vec<f64>,
    /// Entropies of the router's full distribution softmax(z), in nats.
    pub entropy: Entropy,
    /// Class × expert tables of the gates (mean gate, share of first choices).
    pub class_expert: ClassExpert,
    /// H(class | first-choice expert) / ln(classes): 0 specialised … 1 mixed.
    pub specialisation: f64,
    /// Assignments dropped for capacity, over all batches.
    pub dropped: usize,
}

/// Evaluates on x [n, d_in] with labels y, in batches of `batch` rows (capacity is per batch,
/// as in training). The routing rule is the model's own (`params.moe.config.gating`): set its
/// capacity factor to the evaluation value (the papers: 2.0) before calling, if it has one.
pub fn evaluate<F: Float>(p: &Params<F>, x: ArrayView2<F>, y: &[usize], batch: usize) -> Eval {
    let (n, n_experts, classes) = (x.nrows(), p.config.n_experts, p.config.classes);
    assert_eq!(y.len(), n, "moe classifier: {} labels for {n} rows", y.len());
    let mut gates = Array2::<f64>::zeros((n, n_experts));
    let mut probs = Array2::<f64>::zeros((n, n_experts));
    let mut first = Vec::with_capacity(n);
    let mut served = vec![0usize; n_experts];
    let (mut loss, mut hits, mut dropped) = (0.0, 0.0, 0);
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let pred = predict(p, x.slice(s![start..end, ..]), Route::default());
        let (l, _) = cross_entropy::forward(pred.logits.view(), &y[start..end], None);
        let rows = (end - start) as f64;
        loss += l * rows;
        hits += cross_entropy::accuracy(pred.logits.view(), &y[start..end], None) * rows;
        gates.slice_mut(s![start..end, ..]).assign(&pred.gates);
        probs.slice_mut(s![start..end, ..]).assign(&pred.router_probs);
        first.extend(pred.chosen.iter().map(|c| first_choice(c)));
        for (e, t) in pred.stats.tokens.iter().enumerate() {
            served[e] += t;
        }
        dropped += pred.stats.dropped;
    }
    let utilisation = metrics::utilisation(&first, n_experts, None);
    let total_served = served.iter().sum::<usize>().max(1) as f64;
    let class_expert = metrics::class_expert(gates.view(), y, classes, None);
    Eval {
        loss: loss / n.max(1) as f64,
        accuracy: hits / n.max(1) as f64,
        load_variance: metrics::load_variance(&utilisation),
        utilisation,
        load: served.iter().map(|&s| s as f64 / total_served).collect(),
        entropy: metrics::routing_entropy(probs.view(), None),
        specialisation: class_expert.specialisation_index(),
        class_expert,
        dropped,
    }
}

/// How [`fit`] trains: the same fields as the `Config` of src/train.rs.
#[derive(Debug, Clone)]
pub struct Fit {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub optimizer: Kind,
    /// Clip the global gradient norm to this (None: no clipping).
    pub clip: Option<f64>,
    /// Drives the shuffle and the dropout/noise streams (the weights come from [`init()`]'s rng).
    pub seed: u64,
    /// Parameter-group rules (freeze, lr scale, L2-SP), first match wins.
    pub rules: Vec<Rule>,
}

impl Fit {
    /// Adam (PyTorch defaults) at a constant `lr`, no clipping, no rules.
    pub fn adam(epochs: usize, batch_size: usize, lr: f64, seed: u64) -> Fit {
        Fit {
            epochs,
            batch_size,
            lr,
            schedule: Schedule::Constant,
            optimizer: Kind::adam(),
            clip: None,
            seed,
            rules: Vec::new(),
        }
    }
}

/// One training step, as [`fit`] reports it.
#[derive(Debug, Clone)]
pub struct StepLog {
    /// 1-based: the number of optimiser steps taken so far.
    pub step: usize,
    pub epoch: usize,
    pub losses: Losses,
    /// Training accuracy of this batch (dropout and noise on).
    pub accuracy: f64,
    /// Share of this batch's rows whose first choice is each expert, `[E]`.
    pub utilisation: Vec<f64>,
    /// Assignments dropped for capacity in this batch.
    pub dropped: usize,
}

/// Trains `p` in place on x [n, d_in] with labels y: each epoch shuffles the rows (seeded),
/// and each batch takes one forward, one backward and one optimiser step. `on_step` sees
/// every step and the model after it (to evaluate along the way). Returns every step's log.
///
/// Errors on data that does not fit the model or a bad setting (before any step), and on a
/// loss or gradient that is not finite (the model keeps its last good weights).
pub fn fit<F: Float>(
    p: &mut Params<F>,
    x: ArrayView2<F>,
    y: &[usize],
    cfg: &Fit,
    on_step: &mut dyn FnMut(&StepLog, &Params<F>),
) -> Result<Vec<StepLog>> {
    check_data(p, x, y)?;
    if cfg.epochs == 0 {
        return Err(Error::bad_value("epochs", 0, "must be at least 1"));
    }
    if cfg.batch_size == 0 {
        return Err(Error::bad_value("batch_size", 0, "must be at least 1"));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(Error::bad_value("lr", cfg.lr, "the learning rate must be a finite number > 0"));
    }
    let mut shuffle_rng = init::stream(cfg.seed, streams::SHUFFLE);
    let mut dropout_rng = init::stream(cfg.seed, streams::DROPOUT);
    let mut opt = Optimizer::new(cfg.optimizer, &cfg.rules, p);
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    let mut logs = Vec::new();
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut shuffle_rng);
        for idx in order.chunks(cfg.batch_size) {
            let xb = x.select(ndarray::Axis(0), idx);
            let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            let (losses, cache) = forward(p, xb.view(), &yb, Route::default(), &mut Mode::Train(&mut dropout_rng));
            if !losses.total.is_finite() {
                return Err(Error::NonFiniteLoss { step, value: losses.total });
            }
            let mut grads = backward(p, &cache);
            if !optim::global_norm(&grads).is_finite() {
                let (tensor, value) = grads
                    .tensors()
                    .into_iter()
                    .find_map(|(name, g)| {
                        g.iter().find(|v| !v.is_finite()).map(|v| (name, v.to_f64().unwrap_or(f64::NAN)))
                    })
                    .unwrap_or_else(|| ("(sum of squares overflowed)".into(), f64::INFINITY));
                return Err(Error::NonFiniteGrad { step, tensor, value });
            }
            if let Some(max_norm) = cfg.clip {
                optim::clip_global_norm(&mut grads, max_norm);
            }
            opt.step(p, &grads, cfg.schedule.lr_at(step, cfg.lr));
            step += 1;
            let d = cache.moe().decision();
            let first: Vec<usize> = d.chosen.iter().map(|c| first_choice(c)).collect();
            let log = StepLog {
                step,
                epoch,
                losses,
                accuracy: cross_entropy::accuracy(cache.probs().view(), &yb, None),
                utilisation: metrics::utilisation(&first, p.config.n_experts, None),
                dropped: d.dropped,
            };
            on_step(&log, p);
            logs.push(log);
        }
    }
    Ok(logs)
}

/// The boundary check of [`fit`]: widths, label range, one label per row, at least one row.
fn check_data<F: Float>(p: &Params<F>, x: ArrayView2<F>, y: &[usize]) -> Result<()> {
    p.config.validate()?;
    let (d_in, classes) = (p.config.d_in, p.config.classes);
    if x.ncols() != d_in {
        return Err(Error::bad_value("features", x.ncols(), &format!("the model reads {d_in} features per row")));
    }
    if y.len() != x.nrows() {
        return Err(Error::bad_value("labels", y.len(), &format!("there are {} rows", x.nrows())));
    }
    if y.is_empty() {
        return Err(Error::bad_value("training rows", 0, "need at least one row to train on"));
    }
    if let Some(&bad) = y.iter().find(|&&l| l >= classes) {
        return Err(Error::bad_value(
            "label",
            bad,
            &format!("the model has {classes} classes (labels 0..{})", classes - 1),
        ));
    }
    Ok(())
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        prefixed("moe", self.moe.tensors())
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        prefixed("moe", self.moe.tensors_mut())
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        prefixed("moe", self.moe.tensors())
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        prefixed("moe", self.moe.tensors_mut())
    }
}
