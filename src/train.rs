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

use crate::data::text::Windows;
use crate::data::Dataset;
use crate::engine::init::{self, streams, RngState};
use crate::engine::layers::Mode;
use crate::engine::optim::{self, Kind, Optimizer, Rule, Schedule};
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use crate::models::transformer_lm as lm;
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
