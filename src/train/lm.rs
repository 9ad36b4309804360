//! Language-model training: windows of a token stream, resumable bit for bit.

use super::{check_resumes, finite, update, Checkpoint, Config, Progress, Standing};
use crate::data::text::Windows;
use crate::engine::init::{self, streams, RngState};
use crate::engine::layers::Mode;
use crate::engine::optim::Optimizer;
use crate::error::{Error, Result};
use crate::models::transformer_lm as lm;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

impl LmState {
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
}

/// What [`fit_lm_resumable`] calls to save a checkpoint: why, the model, where the run stands.
pub type SaveFn<'a> = dyn FnMut(Checkpoint<LmEpoch>, &lm::Params<f32>, &LmState) -> Result<()> + 'a;

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
            check_resumes(&state.optimizer, model)?;
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
