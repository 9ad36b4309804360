//! The training loops, for classifiers and for language models: shuffle, batch, step,
//! evaluate, repeat.
//!
//! ```text
//!   for each epoch:
//!     shuffle the training rows (a fresh seeded permutation)
//!     for each batch:  loss, grads = train_step(model, batch)
//!                      stop if the loss is not finite (weights keep their last good values)
//!                      clip ‖grads‖ (optional);  optimizer.step(lr = schedule(step))
//!     evaluate on the validation rows (dropout off)
//! ```
//! Every random choice comes from the config's seed through named streams (init, shuffle,
//! dropout), so the same seed and thread count give bit-identical losses. A run can stop (Ctrl-C)
//! and go on from a checkpoint of its state ([`FitState`], [`LmState`]) exactly as if it had
//! never stopped.

use crate::data::Dataset;
use crate::engine::init::{self, streams, RngState};
use crate::engine::optim::{self, Kind, Optimizer, Rule, Schedule};
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use rand::seq::SliceRandom;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub seconds: f64,
}

/// Every step's loss and every epoch's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub step_losses: Vec<f64>,
    pub epochs: Vec<EpochStats>,
    /// The run stopped early on request (Ctrl-C) after saving where it stood.
    pub interrupted: bool,
}

/// Where a classifier run stands: everything needed to continue it so that the losses and
/// weights are bit-identical to a run that was never stopped. The data order is not stored:
/// each epoch draws a fresh permutation of the training rows from the shuffle generator, so
/// keeping the generator's state at the start of the epoch (and how many batches are done)
/// replays it exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitState {
    /// The epoch in progress (1-based), and how many of its batches are done.
    pub epoch: usize,
    pub batches_done: usize,
    /// Optimiser steps taken (the schedule's position).
    pub step: usize,
    /// The shuffle generator as it was when `epoch` began.
    pub epoch_rng: RngState,
    pub dropout_rng: RngState,
    pub optimizer: Optimizer<f32>,
    /// This epoch's running sums so far: loss × rows, accuracy × rows, and rows seen.
    pub loss_sum: f64,
    pub acc_sum: f64,
    pub seen: usize,
    pub history: History,
}

impl FitState {
    /// A run about to start: epoch 1, nothing done, the generators at the seed's streams.
    pub fn start(model: &Classifier<f32>, cfg: &Config) -> FitState {
        FitState {
            epoch: 1,
            batches_done: 0,
            step: 0,
            epoch_rng: RngState::of(&init::stream(cfg.seed, streams::SHUFFLE)),
            dropout_rng: RngState::of(&init::stream(cfg.seed, streams::DROPOUT)),
            optimizer: Optimizer::new(cfg.optimizer, &cfg.rules, model),
            loss_sum: 0.0,
            acc_sum: 0.0,
            seen: 0,
            history: History::default(),
        }
    }

    /// Where the run stands, for the checkpoint header.
    pub fn standing(&self) -> Standing {
        Standing {
            epoch: self.epoch,
            batches_done: self.batches_done,
            step: self.step,
            epochs_finished: self.history.epochs.len(),
            interrupted: self.history.interrupted,
            last_epoch: self.history.epochs.last().and_then(|e| serde_json::to_value(e).ok()),
        }
    }

    /// The state fits this run: a model with the optimiser's tensors, and a position that this
    /// many batches per epoch could have reached (a changed data size or batch size could not
    /// replay the same order, so it is refused rather than silently continued differently).
    fn check_can_resume(&self, model: &Classifier<f32>, batches_per_epoch: usize) -> Result<()> {
        check_resumes(&self.optimizer, model)?;
        let consistent = self.epoch >= 1
            && self.batches_done <= batches_per_epoch
            && self.history.epochs.len() == self.epoch - 1
            && self.step == (self.epoch - 1) * batches_per_epoch + self.batches_done
            && self.history.step_losses.len() == self.step;
        if !consistent {
            return Err(Error::bad_value(
                "resume",
                format!("epoch {}, batch {}, step {}", self.epoch, self.batches_done, self.step),
                &format!(
                    "this run has {batches_per_epoch} batches per epoch, which cannot reach that position \
                     (did the training data or the batch size change since it was saved?)"
                ),
            ));
        }
        Ok(())
    }
}

/// What [`fit_resumable`] calls to save a checkpoint: why, the model, where the run stands.
pub type FitSaveFn<'a> = dyn FnMut(Checkpoint<EpochStats>, &Classifier<f32>, &FitState) -> Result<()> + 'a;

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
    fit_resumable(model, train, val, cfg, None, None, on_step, &mut |_, _, _| Ok(()))
}

/// [`fit`], started from a saved [`FitState`] (or from scratch with None), and stoppable: when
/// `stop` is raised (by a Ctrl-C handler) the run finishes its current step, hands its state to
/// `save` and returns with `interrupted` set. `save` also gets the state after every epoch (to
/// write a checkpoint; an error from it stops the run). Training 2N epochs, or N, saving,
/// loading and resuming, gives the same losses and weights bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn fit_resumable(
    model: &mut Classifier<f32>,
    train: &Dataset,
    val: &Dataset,
    cfg: &Config,
    resume: Option<FitState>,
    stop: Option<&AtomicBool>,
    on_step: &mut dyn FnMut(&Progress),
    save: &mut FitSaveFn,
) -> Result<History> {
    cfg.validate()?;
    check_fits(model, train, "training")?;
    check_fits(model, val, "validation")?;
    if train.is_empty() {
        return Err(Error::bad_value("training rows", 0, "need at least one row to train on"));
    }
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = batches_per_epoch * cfg.epochs;
    let mut state = match resume {
        Some(mut state) => {
            state.history.interrupted = false;
            state.check_can_resume(model, batches_per_epoch)?;
            state
        }
        None => FitState::start(model, cfg),
    };
    let mut opt = state.optimizer.clone();
    let mut dropout_rng = state.dropout_rng.restore();
    let mut step = state.step;
    while state.epoch <= cfg.epochs {
        let epoch = state.epoch;
        let started = Instant::now();
        let mut shuffle_rng = state.epoch_rng.restore();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut shuffle_rng);
        let (mut loss_sum, mut acc_sum, mut seen, mut seen_now) = (state.loss_sum, state.acc_sum, state.seen, 0);
        for (b, idx) in order.chunks(cfg.batch_size).enumerate().skip(state.batches_done) {
            let batch = train.select(idx);
            let out = classifier::train_step(model, batch.x.view(), &batch.y, &mut dropout_rng);
            let loss = finite(out.loss as f64, step)?;
            let mut grads = out.grads;
            update(model, &mut grads, &mut opt, cfg, step)?;
            step += 1;
            loss_sum += loss * idx.len() as f64;
            acc_sum += out.accuracy * idx.len() as f64;
            seen += idx.len();
            seen_now += idx.len();
            state.history.step_losses.push(loss);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            on_step(&Progress {
                step,
                total_steps,
                epoch,
                loss,
                samples_per_s: seen_now as f64 / seconds,
                tokens_per_s: None,
            });
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                state = FitState {
                    batches_done: b + 1,
                    step,
                    dropout_rng: RngState::of(&dropout_rng),
                    optimizer: opt.clone(),
                    loss_sum,
                    acc_sum,
                    seen,
                    ..state
                };
                state.history.interrupted = true;
                save(Checkpoint::Interrupted, model, &state)?;
                return Ok(state.history);
            }
        }
        let (val_loss, val_acc) = classifier::evaluate(model, val.x.view(), &val.y, 512);
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: acc_sum / seen.max(1) as f64,
            val_loss,
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        };
        state.history.epochs.push(stats.clone());
        // The shuffle generator has drawn this epoch's order: that is where the next begins.
        state = FitState {
            epoch: epoch + 1,
            batches_done: 0,
            step,
            epoch_rng: RngState::of(&shuffle_rng),
            dropout_rng: RngState::of(&dropout_rng),
            optimizer: opt.clone(),
            loss_sum: 0.0,
            acc_sum: 0.0,
            seen: 0,
            ..state
        };
        save(Checkpoint::Epoch(&stats), model, &state)?;
    }
    Ok(state.history)
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

/// Why a resumable loop hands out its state: to save a checkpoint.
#[derive(Debug, Clone, Copy)]
pub enum Checkpoint<'a, E> {
    /// An epoch just ended (with its summary).
    Epoch(&'a E),
    /// The stop flag was raised; the run ends after this save.
    Interrupted,
}

/// Where a run stands, in a few numbers: what a checkpoint's header records under
/// `meta.training`, so `tinymoe inspect` can show it for any model without decoding the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// The epoch in progress (1-based) and how many of its batches are done.
    pub epoch: usize,
    pub batches_done: usize,
    /// Optimiser steps taken.
    pub step: usize,
    pub epochs_finished: usize,
    /// The run stopped early on request (Ctrl-C) after saving where it stood.
    pub interrupted: bool,
    /// The last finished epoch's summary, as JSON.
    pub last_epoch: Option<serde_json::Value>,
}

/// A saved optimiser must belong to this model: the same tensors, in the same order.
fn check_resumes(opt: &Optimizer<f32>, model: &dyn Tensors<f32>) -> Result<()> {
    let names: Vec<String> = model.tensors().into_iter().map(|(n, _)| n).collect();
    if opt.names() != names.as_slice() {
        return Err(Error::bad_value(
            "resume",
            "optimizer state",
            "it was saved for a model with other tensors than this one",
        ));
    }
    Ok(())
}

pub mod domain_eval;
mod lm;
mod moe;
pub use lm::*;
pub use moe::*;
