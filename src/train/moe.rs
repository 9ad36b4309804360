//! MoE language-model training on labelled sequences: sampling, teacher forcing, interventions,
//! and evaluation per domain.

use super::{check_resumes, finite, update, Checkpoint, Config, Progress, Standing};
use crate::data::batch::{Batches, Sampling};
use crate::engine::init::{self, streams, RngState};
use crate::engine::layers::Mode;
use crate::engine::optim::Optimizer;
use crate::error::{Error, Result};
use crate::models::moe_lm;
use crate::moe::layer::Route;
use crate::moe::routing::Intervention;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    /// The run stopped early on request (Ctrl-C) after saving where it stood.
    #[serde(default)]
    pub interrupted: bool,
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

/// Where an MoE language-model run stands: everything needed to continue it with losses
/// bit-identical to a run that was never stopped (as [`super::LmState`] for the plain LM, plus the
/// teacher-forcing generator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoeState {
    /// The epoch in progress (1-based), and how many of its batches are done.
    pub epoch: usize,
    pub batches_done: usize,
    /// Optimiser steps taken (the schedule's and the teacher-forcing schedule's position).
    pub step: usize,
    /// The shuffle generator as it was when `epoch` began (it draws the epoch's order).
    pub epoch_rng: RngState,
    pub dropout_rng: RngState,
    /// Draws, per sequence, whether domain routing is teacher-forced.
    pub teacher_rng: RngState,
    pub optimizer: Optimizer<f32>,
    /// This epoch's running sums so far: next-token loss × tokens, router loss, tokens, batches.
    pub loss_sum: f64,
    pub router_sum: f64,
    pub tokens: usize,
    pub batches: usize,
    pub history: MoeHistory,
}

impl MoeState {
    /// Where the run stands, for the checkpoint header.
    pub fn standing(&self) -> Standing {
        Standing {
            epoch: self.epoch,
            batches_done: self.batches_done,
            step: self.step,
            epochs_finished: self.history.epochs.len(),
            interrupted: self.history.interrupted,
            last_epoch: self.history.epochs.last().map(|e| {
                serde_json::json!({ "epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val.loss,
                                    "router_loss": e.router_loss })
            }),
        }
    }
}

/// What [`fit_moe_lm_resumable`] calls to save a checkpoint: why, the model, where the run stands.
pub type MoeSaveFn<'a> = dyn FnMut(Checkpoint<MoeEpoch>, &moe_lm::Params<f32>, &MoeState) -> Result<()> + 'a;

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
    fit_moe_lm_resumable(model, train, val, cfg, moe, None, None, on_step, &mut |event, m, _| match event {
        Checkpoint::Epoch(e) => on_epoch(e, m),
        Checkpoint::Interrupted => Ok(()),
    })
}

/// [`fit_moe_lm`], started from a saved [`MoeState`] (or from scratch with None), and
/// stoppable: when `stop` is raised (by a Ctrl-C handler) the run finishes its current step,
/// hands its state to `save` and returns with `interrupted` set; `save` also gets the state
/// after every epoch. Training N epochs, or stopping anywhere, saving, loading and resuming,
/// gives the same losses bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn fit_moe_lm_resumable(
    model: &mut moe_lm::Params<f32>,
    train: &Batches,
    val: &Batches,
    cfg: &Config,
    moe: &MoeTraining,
    resume: Option<MoeState>,
    stop: Option<&AtomicBool>,
    on_step: &mut dyn FnMut(&Progress),
    save: &mut MoeSaveFn,
) -> Result<MoeHistory> {
    cfg.validate()?;
    let n_domains = train.n_labels().max(val.n_labels());
    check_vocab(model, train, "training", n_domains)?;
    check_vocab(model, val, "validation", n_domains)?;
    if train.is_empty() || val.is_empty() {
        return Err(Error::bad_value("sequences", 0, "need at least one training and one validation sequence"));
    }
    let mut state = match resume {
        Some(mut state) => {
            state.history.interrupted = false;
            check_resumes(&state.optimizer, model)?;
            state
        }
        None => MoeState {
            epoch: 1,
            batches_done: 0,
            step: 0,
            epoch_rng: RngState::of(&init::stream(cfg.seed, streams::SHUFFLE)),
            dropout_rng: RngState::of(&init::stream(cfg.seed, streams::DROPOUT)),
            teacher_rng: RngState::of(&init::stream(cfg.seed, streams::DATA)),
            optimizer: Optimizer::new(cfg.optimizer, &cfg.rules, model),
            loss_sum: 0.0,
            router_sum: 0.0,
            tokens: 0,
            batches: 0,
            history: MoeHistory::default(),
        },
    };
    let mut opt = state.optimizer.clone();
    let mut dropout_rng = state.dropout_rng.restore();
    let mut teacher_rng = state.teacher_rng.restore();
    let sampling = if moe.balanced { Sampling::Balanced } else { Sampling::Shuffled };
    let steps_per_epoch = train.order(sampling, &mut init::rng(0)).len().div_ceil(train.batch_size());
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut step = state.step;
    while state.epoch <= cfg.epochs {
        let epoch = state.epoch;
        let started = Instant::now();
        let mut shuffle_rng = state.epoch_rng.restore();
        let order = train.order(sampling, &mut shuffle_rng);
        let (mut loss_sum, mut router_sum, mut tokens, mut batches) =
            (state.loss_sum, state.router_sum, state.tokens, state.batches);
        let mut tokens_now = 0usize;
        for (b, batch) in train.iter(&order).enumerate().skip(state.batches_done) {
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
            tokens_now += n;
            batches += 1;
            state.history.step_losses.push(losses.lm);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            on_step(&Progress {
                step,
                total_steps,
                epoch,
                loss: losses.lm,
                samples_per_s: ((b + 1 - state.batches_done) * train.batch_size()) as f64 / seconds,
                tokens_per_s: Some(tokens_now as f64 / seconds),
            });
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                state = MoeState {
                    batches_done: b + 1,
                    step,
                    dropout_rng: RngState::of(&dropout_rng),
                    teacher_rng: RngState::of(&teacher_rng),
                    optimizer: opt.clone(),
                    loss_sum,
                    router_sum,
                    tokens,
                    batches,
                    ..state
                };
                state.history.interrupted = true;
                save(Checkpoint::Interrupted, model, &state)?;
                return Ok(state.history);
            }
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let val_eval = evaluate_moe_lm(model, val, n_domains, cfg.batch_size, None);
        let stats = MoeEpoch {
            epoch,
            train_loss: loss_sum / tokens.max(1) as f64,
            router_loss: router_sum / batches.max(1) as f64,
            val: val_eval,
            tokens_per_s: tokens_now as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
        };
        state.history.epochs.push(stats.clone());
        // The shuffle generator has drawn this epoch's order: that is where the next begins.
        state = MoeState {
            epoch: epoch + 1,
            batches_done: 0,
            step,
            epoch_rng: RngState::of(&shuffle_rng),
            dropout_rng: RngState::of(&dropout_rng),
            teacher_rng: RngState::of(&teacher_rng),
            optimizer: opt.clone(),
            loss_sum: 0.0,
            router_sum: 0.0,
            tokens: 0,
            batches: 0,
            ..state
        };
        save(Checkpoint::Epoch(&stats), model, &state)?;
    }
    Ok(state.history)
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
