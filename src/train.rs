//! The training loops, for classifiers and for language models: shuffle, batch, step,
//! evaluate, repeat.
//!
//! ```text
//!   for each epoch:
//!     shuffle the training rows (seeded)
//!     for each batch:  loss, grads = train_step(model, batch)
//!                      stop if the loss is not finite (weights keep their last good values)
//!                      clip ‖grads‖ (optional);  optimizer.step(lr = schedule(step))
//!     evaluate on the validation rows (dropout off)
//! ```
//! Every random choice comes from the config's seed through named streams (init, shuffle,
//! dropout), so the same seed and thread count give bit-identical losses.

use crate::data::batch::{Batches, Sampling};
use crate::data::text::Windows;
use crate::data::Dataset;
use crate::engine::init::{self, streams, RngState};
use crate::engine::layers::Mode;
use crate::engine::optim::{self, Kind, Optimizer, Rule, Schedule};
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use crate::models::moe_lm;
use crate::models::transformer_lm as lm;
use crate::moe::layer::Route;
use crate::moe::routing::Intervention;
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How to train.
#[derive(Debug, Clone)]
pub struct Config {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub optimizer: Kind,
    /// Clip the global gradient norm to this (None: no clipping).
    pub clip: Option<f64>,
    pub seed: u64,
    /// Parameter-group rules (freeze, lr scale, L2-SP), first match wins.
    pub rules: Vec<Rule>,
}

impl Config {
    /// Checks every value against its allowed range, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::bad_value("lr", self.lr, "the learning rate must be a finite number > 0"));
        }
        if self.epochs == 0 {
            return Err(Error::bad_value("epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::bad_value("batch_size", 0, "must be at least 1"));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::bad_value("clip", c, "the gradient-norm cap must be a finite number > 0"));
            }
        }
        Ok(())
    }
}

/// Reported after every step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    pub epoch: usize,
    pub loss: f64,
    pub samples_per_s: f64,
    /// For language models: tokens (positions predicted) per second.
    pub tokens_per_s: Option<f64>,
}

/// One epoch's summary.
#[derive(Debug, Clone)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub seconds: f64,
}

/// Every step's loss and every epoch's summary.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub step_losses: Vec<f64>,
    pub epochs: Vec<EpochStats>,
}

/// Checks that a data set fits a model: width = d_in, labels < classes.
pub fn check_fits(model: &Classifier<f32>, data: &Dataset, what: &str) -> Result<()> {
    let (d_in, classes) = model.dims();
    if data.x.ncols() != d_in {
        return Err(Error::bad_value(
            &format!("{what} features"),
            data.x.ncols(),
            &format!("the model reads {d_in} features per row"),
        ));
    }
    if let Some(&bad) = data.y.iter().find(|&&y| y >= classes) {
        return Err(Error::bad_value(
            &format!("{what} label"),
            bad,
            &format!("the model has {classes} classes (labels 0..{})", classes - 1),
        ));
    }
    Ok(())
}

/// Trains `model` in place; `on_step` sees every step (for a progress bar).
pub fn fit(
    model: &mut Classifier<f32>,
    train: &Dataset,
    val: &Dataset,
    cfg: &Config,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<History> {
    cfg.validate()?;
    check_fits(model, train, "training")?;
    check_fits(model, val, "validation")?;
    if train.is_empty() {
        return Err(Error::bad_value("training rows", 0, "need at least one row to train on"));
    }
    let mut shuffle_rng = init::stream(cfg.seed, streams::SHUFFLE);
    let mut dropout_rng = init::stream(cfg.seed, streams::DROPOUT);
    let mut opt = Optimizer::new(cfg.optimizer, &cfg.rules, model);
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = batches_per_epoch * cfg.epochs;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = History::default();
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        order.shuffle(&mut shuffle_rng);
        let (mut loss_sum, mut acc_sum, mut seen) = (0.0, 0.0, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let batch = train.select(idx);
            let out = classifier::train_step(model, batch.x.view(), &batch.y, &mut dropout_rng);
            let loss = finite(out.loss as f64, step)?;
            let mut grads = out.grads;
            update(model, &mut grads, &mut opt, cfg, step)?;
            step += 1;
            loss_sum += loss * idx.len() as f64;
            acc_sum += out.accuracy * idx.len() as f64;
            seen += idx.len();
            history.step_losses.push(loss);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            on_step(&Progress {
                step,
                total_steps,
                epoch,
                loss,
                samples_per_s: seen as f64 / seconds,
                tokens_per_s: None,
            });
        }
        let (val_loss, val_acc) = classifier::evaluate(model, val.x.view(), &val.y, 512);
        history.epochs.push(EpochStats {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            train_acc: acc_sum / train.len() as f64,
            val_loss,
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(history)
}

/// A loss that is NaN or infinite stops training before any weight changes.
fn finite(loss: f64, step: usize) -> Result<f64> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(Error::NonFiniteLoss { step, value: loss })
    }
}

/// A gradient with a NaN or infinity anywhere stops training before any weight changes, naming
/// the step and the first tensor (parameter group) that holds it — a finite loss can still
/// backpropagate into an overflow.
pub fn check_grads(grads: &dyn Tensors<f32>, step: usize) -> Result<()> {
    if optim::global_norm(grads).is_finite() {
        return Ok(());
    }
    let (tensor, value) = grads
        .tensors()
        .into_iter()
        .find_map(|(name, g)| g.iter().find(|v| !v.is_finite()).map(|&v| (name, v as f64)))
        .unwrap_or_else(|| ("(sum of squares overflowed)".into(), f64::INFINITY));
    Err(Error::NonFiniteGrad { step, tensor, value })
}

/// One optimiser step: refuse non-finite gradients, clip the gradients' global norm (if
/// asked), then step at the schedule's learning rate for this step.
fn update(
    model: &mut dyn Tensors<f32>,
    grads: &mut dyn Tensors<f32>,
    opt: &mut Optimizer<f32>,
    cfg: &Config,
    step: usize,
) -> Result<()> {
    check_grads(grads, step)?;
    if let Some(max_norm) = cfg.clip {
        optim::clip_global_norm(grads, max_norm);
    }
    opt.step(model, grads, cfg.schedule.lr_at(step, cfg.lr));
    Ok(())
}

/// One epoch of language-model training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmEpoch {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (nats per token).
    pub train_loss: f64,
    /// Validation loss (nats per token), dropout off.
    pub val_loss: f64,
    pub tokens_per_s: f64,
    pub seconds: f64,
}

impl LmEpoch {
    /// e^loss: the model is as unsure as a uniform choice among this many tokens.
    pub fn val_perplexity(&self) -> f64 {
        self.val_loss.exp()
    }
}

/// Every step's loss and every epoch's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmHistory {
    pub step_losses: Vec<f64>,
    pub epochs: Vec<LmEpoch>,
    /// The run stopped early on request (Ctrl-C) after saving where it stood.
    pub interrupted: bool,
}

/// Where a language-model run stands: everything needed to continue it so that the losses are
/// bit-identical to a run that was never stopped. The data order is not stored: it is drawn
/// from the shuffle generator at the start of each epoch, so keeping the generator's state at
/// that moment (and how many batches are done) replays it exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmState {
    /// The epoch in progress (1-based), and how many of its batches are done.
    pub epoch: usize,
    pub batches_done: usize,
    /// Optimiser steps taken (the schedule's position).
    pub step: usize,
    /// The shuffle generator as it was when `epoch` began.
    pub epoch_rng: RngState,
    pub dropout_rng: RngState,
    pub optimizer: Optimizer<f32>,
    /// This epoch's running loss sum and token count so far.
    pub loss_sum: f64,
    pub tokens: usize,
    pub history: LmHistory,
}

/// What [`fit_lm_resumable`] calls to save a checkpoint: why, the model, where the run stands.
pub type SaveFn<'a> = dyn FnMut(Checkpoint, &lm::Params<f32>, &LmState) -> Result<()> + 'a;

/// Why [`fit_lm_resumable`] hands out its state.
#[derive(Debug, Clone, Copy)]
pub enum Checkpoint<'a> {
    /// An epoch just ended (with its summary).
    Epoch(&'a LmEpoch),
    /// The stop flag was raised; the run ends after this save.
    Interrupted,
}

/// Trains a causal language model in place on the token stream `train`, cut into windows of
/// `seq` positions, evaluating on the `val` windows after each epoch. Each epoch cuts the
/// stream at a fresh random offset in 0..seq (seeded), so the model sees every token at new
/// positions and in new company, not the same windows over and over. `on_step` sees every
/// step; `on_epoch` sees every epoch's summary and the model (to print, and to save a
/// checkpoint) and may stop the run with an error.
pub fn fit_lm(
    model: &mut lm::Params<f32>,
    train: &[usize],
    seq: usize,
    val: &Windows,
    cfg: &Config,
    on_step: &mut dyn FnMut(&Progress),
    on_epoch: &mut dyn FnMut(&LmEpoch, &lm::Params<f32>) -> Result<()>,
) -> Result<LmHistory> {
    fit_lm_resumable(model, train, seq, val, cfg, None, None, on_step, &mut |event, m, _| match event {
        Checkpoint::Epoch(e) => on_epoch(e, m),
        Checkpoint::Interrupted => Ok(()),
    })
}

/// [`fit_lm`], started from a saved [`LmState`] (or from scratch with None), and stoppable:
/// when `stop` is raised (by a Ctrl-C handler) the run finishes its current step, hands its
/// state to `save` and returns with `interrupted` set. `save` also gets the state after every
/// epoch. Training N epochs, or N/2, saving, loading and resuming, gives the same losses bit
/// for bit.
#[allow(clippy::too_many_arguments)]
pub fn fit_lm_resumable(
    model: &mut lm::Params<f32>,
    train: &[usize],
    seq: usize,
    val: &Windows,
    cfg: &Config,
    resume: Option<LmState>,
    stop: Option<&AtomicBool>,
    on_step: &mut dyn FnMut(&Progress),
    save: &mut SaveFn,
) -> Result<LmHistory> {
    cfg.validate()?;
    if seq == 0 || seq > model.config.max_seq {
        return Err(Error::bad_value(
            "seq",
            seq,
            &format!("must be in 1..={} (the model's max_seq)", model.config.max_seq),
        ));
    }
    // Every epoch must have at least one full window whatever its offset.
    if train.len() < 2 * seq + 1 {
        return Err(Error::bad_value(
            "training tokens",
            train.len(),
            &format!("need at least 2·seq + 1 = {} tokens to train on", 2 * seq + 1),
        ));
    }
    if val.is_empty() {
        return Err(Error::bad_value("validation windows", 0, "the held-out text is shorter than one window"));
    }
    let vocab = model.config.vocab;
    if let Some(&bad) = train.iter().chain(val.ids.iter()).chain(val.targets.iter()).find(|&&t| t >= vocab) {
        return Err(Error::bad_value("token id", bad, &format!("the model's vocabulary has {vocab} ids")));
    }
    let mut state = match resume {
        Some(mut state) => {
            state.history.interrupted = false;
            let names: Vec<String> = model.tensors().into_iter().map(|(n, _)| n).collect();
            if state.optimizer.names() != names.as_slice() {
                return Err(Error::bad_value(
                    "resume",
                    "optimizer state",
                    "it was saved for a model with other tensors than this one",
                ));
            }
            state
        }
        None => LmState {
            epoch: 1,
            batches_done: 0,
            step: 0,
            epoch_rng: RngState::of(&init::stream(cfg.seed, streams::SHUFFLE)),
            dropout_rng: RngState::of(&init::stream(cfg.seed, streams::DROPOUT)),
            optimizer: Optimizer::new(cfg.optimizer, &cfg.rules, model),
            loss_sum: 0.0,
            tokens: 0,
            history: LmHistory::default(),
        },
    };
    let mut opt = state.optimizer.clone();
    let mut dropout_rng = state.dropout_rng.restore();
    let total_steps = Windows::new(train, seq).len().div_ceil(cfg.batch_size) * cfg.epochs;
    let mut step = state.step;
    while state.epoch <= cfg.epochs {
        let epoch = state.epoch;
        let started = Instant::now();
        let mut shuffle_rng = state.epoch_rng.restore();
        let windows = Windows::new(&train[shuffle_rng.gen_range(0..seq)..], seq);
        let order = windows.shuffled_order(&mut shuffle_rng);
        let (mut loss_sum, mut tokens, mut tokens_now) = (state.loss_sum, state.tokens, 0usize);
        for (b, rows) in order.chunks(cfg.batch_size).enumerate().skip(state.batches_done) {
            let batch = windows.select(rows);
            let (loss, cache) =
                lm::forward(model, batch.ids.view(), batch.targets.view(), &mut Mode::Train(&mut dropout_rng));
            let loss = finite(loss as f64, step)?;
            let mut grads = lm::backward(model, &cache);
            update(model, &mut grads, &mut opt, cfg, step)?;
            step += 1;
            let n = batch.ids.len();
            loss_sum += loss * n as f64;
            tokens += n;
            tokens_now += n;
            state.history.step_losses.push(loss);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            on_step(&Progress {
                step,
                total_steps,
                epoch,
                loss,
                samples_per_s: (tokens_now / seq) as f64 / seconds,
                tokens_per_s: Some(tokens_now as f64 / seconds),
            });
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                state = LmState {
                    batches_done: b + 1,
                    step,
                    dropout_rng: RngState::of(&dropout_rng),
                    optimizer: opt.clone(),
                    loss_sum,
                    tokens,
                    ..state
                };
                state.history.interrupted = true;
                save(Checkpoint::Interrupted, model, &state)?;
                return Ok(state.history);
            }
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let val_loss = lm::evaluate(model, val.ids.view(), val.targets.view(), cfg.batch_size);
        let stats = LmEpoch {
            epoch,
            train_loss: loss_sum / tokens.max(1) as f64,
            val_loss,
            tokens_per_s: tokens_now as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
        };
        state.history.epochs.push(stats.clone());
        // The shuffle generator has drawn this epoch's offset and order: that is where the next begins.
        state = LmState {
            epoch: epoch + 1,
            batches_done: 0,
            step,
            epoch_rng: RngState::of(&shuffle_rng),
            dropout_rng: RngState::of(&dropout_rng),
            optimizer: opt.clone(),
            loss_sum: 0.0,
            tokens: 0,
            ..state
        };
        save(Checkpoint::Epoch(&stats), model, &state)?;
    }
    Ok(state.history)
}

/// How an MoE language model trains beyond [`Config`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeTraining {
    /// Shuffled, or balanced across domains (oversampling the small ones).
    pub balanced: bool,
    /// Domain-classifier routing: the probability that a sequence goes to its true domain's
    /// expert (teacher forcing) rather than the classifier's choice, moving linearly from
    /// `teacher_start` at the first step to `teacher_end` at the last.
    pub teacher_start: f64,
    pub teacher_end: f64,
    /// Routing interventions kept on during training (e.g. steering offsets: SteerMoE's
    /// inference-time steering, applied while the model learns). Evaluation runs without them.
    pub intervention: Intervention,
}

impl Default for MoeTraining {
    fn default() -> Self {
        MoeTraining { balanced: false, teacher_start: 1.0, teacher_end: 0.0, intervention: Intervention::default() }
    }
}

/// One epoch of MoE language-model training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeEpoch {
    pub epoch: usize,
    /// Mean next-token loss over the epoch's real targets (nats per token).
    pub train_loss: f64,
    /// Mean of the router losses (balance + z + entropies) over the epoch's steps.
    pub router_loss: f64,
    pub val: MoeEval,
    pub tokens_per_s: f64,
    pub seconds: f64,
}

/// An MoE LM measured on labelled sequences (eval mode: no dropout, no noise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeEval {
    /// Next-token loss over every real target.
    pub loss: f64,
    /// The same per domain (label), NaN for a domain with no sequence.
    pub domain_loss: Vec<f64>,
    /// Mean gate of each expert over each domain's real tokens [domains][E].
    pub mean_gate: Vec<Vec<f64>>,
    /// Share of each domain's real tokens whose top expert is e [domains][E].
    pub top_share: Vec<Vec<f64>>,
    /// Domain-classifier routing: share of sequences whose predicted domain is the label.
    pub domain_accuracy: Option<f64>,
    /// Assignments dropped for capacity.
    pub dropped: usize,
}

/// Every step's loss and every epoch's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoeHistory {
    pub step_losses: Vec<f64>,
    pub epochs: Vec<MoeEpoch>,
}

fn check_vocab(model: &moe_lm::Params<f32>, data: &Batches, what: &str, n_domains: usize) -> Result<()> {
    let vocab = model.config.vocab;
    if let Some(bad) = data.max_token().filter(|&t| t >= vocab) {
        return Err(Error::bad_value(
            &format!("{what} token id"),
            bad,
            &format!("the model's vocabulary has {vocab} ids"),
        ));
    }
    if model.config.domain_loss.is_some() && n_domains > model.config.n_experts {
        return Err(Error::bad_value(
            "domains",
            n_domains,
            &format!("domain routing needs one expert per domain; the model has {}", model.config.n_experts),
        ));
    }
    Ok(())
}

/// Trains an MoE language model in place on labelled sequences (`train`), evaluating on `val`
/// after every epoch; `on_epoch` may stop the run with an error (e.g. a failed save).
pub fn fit_moe_lm(
    model: &mut moe_lm::Params<f32>,
    train: &Batches,
    val: &Batches,
    cfg: &Config,
    moe: &MoeTraining,
    on_step: &mut dyn FnMut(&Progress),
    on_epoch: &mut dyn FnMut(&MoeEpoch, &moe_lm::Params<f32>) -> Result<()>,
) -> Result<MoeHistory> {
    cfg.validate()?;
    let n_domains = train.n_labels().max(val.n_labels());
    check_vocab(model, train, "training", n_domains)?;
    check_vocab(model, val, "validation", n_domains)?;
    if train.is_empty() || val.is_empty() {
        return Err(Error::bad_value("sequences", 0, "need at least one training and one validation sequence"));
    }
    let mut shuffle_rng = init::stream(cfg.seed, streams::SHUFFLE);
    let mut dropout_rng = init::stream(cfg.seed, streams::DROPOUT);
    let mut teacher_rng = init::stream(cfg.seed, streams::DATA);
    let mut opt = Optimizer::new(cfg.optimizer, &cfg.rules, model);
    let sampling = if moe.balanced { Sampling::Balanced } else { Sampling::Shuffled };
    let steps_per_epoch = train.order(sampling, &mut init::rng(0)).len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut history = MoeHistory::default();
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let order = train.order(sampling, &mut shuffle_rng);
        let (mut loss_sum, mut router_sum, mut tokens, mut batches) = (0.0, 0.0, 0usize, 0usize);
        for batch in train.iter(&order) {
            let assigned: Option<Vec<Option<usize>>> = model.config.domain_loss.map(|_| {
                let t = if total_steps > 1 { step as f64 / (total_steps - 1) as f64 } else { 0.0 };
                let p_teacher = moe.teacher_start + (moe.teacher_end - moe.teacher_start) * t;
                batch.labels.iter().map(|&l| (teacher_rng.gen::<f64>() < p_teacher).then_some(l)).collect()
            });
            let route = Route { intervention: Some(&moe.intervention), assigned: assigned.as_deref() };
            let (losses, cache) = moe_lm::forward(
                model,
                batch.ids.view(),
                batch.targets.view(),
                Some(&batch.labels),
                route,
                &mut Mode::Train(&mut dropout_rng),
            );
            finite(losses.total, step)?;
            let mut grads = moe_lm::backward(model, &cache);
            update(model, &mut grads, &mut opt, cfg, step)?;
            step += 1;
            let n = batch.n_tokens();
            loss_sum += losses.lm * n as f64;
            router_sum += losses.router.total;
            tokens += n;
            batches += 1;
            history.step_losses.push(losses.lm);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            on_step(&Progress {
                step,
                total_steps,
                epoch,
                loss: losses.lm,
                samples_per_s: (batches * cfg.batch_size) as f64 / seconds,
                tokens_per_s: Some(tokens as f64 / seconds),
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let val_eval = evaluate_moe_lm(model, val, n_domains, cfg.batch_size, None);
        let stats = MoeEpoch {
            epoch,
            train_loss: loss_sum / tokens.max(1) as f64,
            router_loss: router_sum / batches.max(1) as f64,
            val: val_eval,
            tokens_per_s: tokens as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
        };
        on_epoch(&stats, model)?;
        history.epochs.push(stats);
    }
    Ok(history)
}

/// Loss per domain and the domain × expert routing tables of `data`, in eval mode, under an
/// optional routing intervention (force, switch off, steer); with domain-classifier routing
/// the sequences go where the classifier says (no teacher forcing).
pub fn evaluate_moe_lm(
    model: &moe_lm::Params<f32>,
    data: &Batches,
    n_domains: usize,
    batch_size: usize,
    intervention: Option<&Intervention>,
) -> MoeEval {
    let n_experts = model.config.n_experts;
    let mut loss = vec![0.0; n_domains];
    let mut count = vec![0usize; n_domains];
    let mut gate_sum = vec![vec![0.0; n_experts]; n_domains];
    let mut top_count = vec![vec![0usize; n_experts]; n_domains];
    let (mut correct, mut sequences, mut dropped) = (0usize, 0usize, 0usize);
    let order = data.order(Sampling::InOrder, &mut init::rng(0));
    for batch in order.chunks(batch_size.max(1)).map(|rows| data.batch(rows)) {
        let route = Route { intervention, assigned: None };
        let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), Some(&batch.labels), route);
        dropped += r.stats.dropped;
        let seq = batch.ids.ncols();
        for (b, &label) in batch.labels.iter().enumerate() {
            for t in 0..seq {
                if batch.mask[[b, t]] == 0 {
                    continue;
                }
                let row = b * seq + t;
                loss[label] += r.token_loss[[b, t]];
                count[label] += 1;
                for (sum, &g) in gate_sum[label].iter_mut().zip(r.gates.row(row)) {
                    *sum += g;
                }
                if let Some(&top) = r.chosen[row].first() {
                    top_count[label][top] += 1;
                }
            }
        }
        if model.config.domain_loss.is_some() {
            let predicted = moe_lm::argmax_rows(r.logits.view());
            correct += predicted.iter().zip(&batch.labels).filter(|(p, l)| p == l).count();
            sequences += batch.labels.len();
        }
    }
    let total_count: usize = count.iter().sum();
    let per = |sum: f64, n: usize| if n == 0 { f64::NAN } else { sum / n as f64 };
    MoeEval {
        loss: per(loss.iter().sum(), total_count),
        domain_loss: loss.iter().zip(&count).map(|(&l, &n)| per(l, n)).collect(),
        mean_gate: gate_sum.iter().zip(&count).map(|(g, &n)| g.iter().map(|&v| per(v, n)).collect()).collect(),
        top_share: top_count.iter().zip(&count).map(|(c, &n)| c.iter().map(|&v| per(v as f64, n)).collect()).collect(),
        domain_accuracy: (model.config.domain_loss.is_some()).then(|| per(correct as f64, sequences)),
        dropped,
    }
}
