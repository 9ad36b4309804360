//! Exact resume of an MoE language model: training straight through equals stopping (at an
//! epoch's end or in the middle of one), saving a real checkpoint file, loading it and going
//! on — every step loss and every weight bit for bit. Leaving out any part of the saved state
//! makes the runs differ, so the comparison can fail.

use std::sync::atomic::{AtomicBool, Ordering};
use tinymoe::checkpoint::{self, Trained};
use tinymoe::data::batch::Batches;
use tinymoe::data::corpora::{self, Domain};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::init::{self, streams, RngState};
use tinymoe::engine::optim::{Kind, Optimizer, Schedule};
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::moe::layer::Level;
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::{Gating, Strategy};
use tinymoe::train::{self, Checkpoint, MoeHistory, MoeState, MoeTraining};

const PAD: usize = 256;
const EPOCHS: usize = 4;

type Saved = Trained<moe_lm::Params<f32>, MoeState>;

/// A change to a saved state before resuming from it.
type Damage = Box<dyn Fn(&mut MoeState)>;

fn data(per: usize, seed: u64) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (label, &d) in Domain::E2.iter().enumerate() {
        for t in corpora::generate(d, per, seed) {
            seqs.push(Bytes.encode(&t));
            labels.push(label);
        }
    }
    (seqs, labels)
}

fn batches(d: &(Vec<Vec<usize>>, Vec<usize>)) -> Batches<'_> {
    Batches::new(&d.0, &d.1, 32, PAD, 8).unwrap()
}

/// Every random part of training is on: dropout, noisy gating, and (with `domain`) teacher
/// forcing that flips a coin per sequence.
fn model_config(domain: bool) -> moe_lm::Config {
    moe_lm::Config {
        vocab: 257,
        max_seq: 32,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        dropout: 0.1,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 4,
        expert: ExpertKind::Mlp { hidden: 32 },
        router_hidden: None,
        noisy: !domain,
        level: if domain { Level::Sequence } else { Level::Token },
        gating: if domain {
            Gating::top_k(1)
        } else {
            Gating { strategy: Strategy::TopKProbs(2), capacity_factor: Some(1.0) }
        },
        router_losses: RouterLossConfig::paper(),
        domain_loss: domain.then_some(1.0),
        bidirectional_experts: false,
    }
}

fn train_config() -> train::Config {
    train::Config {
        epochs: EPOCHS,
        batch_size: 8,
        lr: 3e-3,
        schedule: Schedule::WarmupCosine { warmup: 3, total: 40, min_lr: 0.0 },
        optimizer: Kind::adamw(0.01),
        clip: Some(1.0),
        seed: 7,
        rules: vec![],
    }
}

fn moe_training(domain: bool) -> MoeTraining {
    MoeTraining { balanced: domain, teacher_start: 0.9, teacher_end: 0.1, ..MoeTraining::default() }
}

struct Run {
    history: MoeHistory,
    model: moe_lm::Params<f32>,
}

/// Trains from `from` (or from scratch), raising the stop flag after `stop_after` steps if
/// given; every state handed to `save` is written to `path` and the last one read back.
fn train_from(
    domain: bool,
    from: Option<(moe_lm::Params<f32>, MoeState)>,
    stop_after: Option<usize>,
    path: &std::path::Path,
) -> (Run, Option<MoeState>) {
    let (train_d, val_d) = (data(10, 1), data(3, 2));
    let (train_b, val_b) = (batches(&train_d), batches(&val_d));
    let (mut model, state) = match from {
        Some((m, s)) => (m, Some(s)),
        None => (moe_lm::init::<f32>(model_config(domain), &mut init::stream(7, streams::INIT)), None),
    };
    let stop = AtomicBool::new(false);
    let mut steps = 0;
    let history = train::fit_moe_lm_resumable(
        &mut model,
        &train_b,
        &val_b,
        &train_config(),
        &moe_training(domain),
        state,
        Some(&stop),
        &mut |_| {
            steps += 1;
            if stop_after == Some(steps) {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &mut |event, m, s| {
            let saved = Trained { model: m.clone(), state: Some(s.clone()) };
            let kind = if matches!(event, Checkpoint::Interrupted) { "interrupted" } else { "epoch" };
            checkpoint::save(path, "moe-lm", &m.config, &saved, serde_json::json!({ "why": kind }))
        },
    )
    .unwrap();
    let state = path.exists().then(|| checkpoint::load::<Saved>(path, "moe-lm").unwrap().1.state.unwrap());
    (Run { history, model }, state)
}

/// A fresh folder per call: the tests run in parallel threads of one process and two of them
/// stop at the same step, so the name alone would let one delete the other's checkpoint.
fn tmp(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tinymoe-moe-resume-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.ckpt")
}

/// Stops after `stop_after` steps, loads the checkpoint file, lets `damage` change the saved
/// state, and finishes the run.
fn stopped_and_resumed(domain: bool, stop_after: usize, damage: impl Fn(&mut MoeState)) -> Run {
    let path = tmp(&format!("{domain}-{stop_after}"));
    let (first, state) = train_from(domain, None, Some(stop_after), &path);
    let mut state = state.expect("a checkpoint was saved");
    assert!(first.history.interrupted);
    assert_eq!(state.step, stop_after);
    let (_, saved) = checkpoint::load::<Saved>(&path, "moe-lm").unwrap();
    damage(&mut state);
    train_from(domain, Some((saved.model, state)), None, &path).0
}

fn straight(domain: bool) -> Run {
    train_from(domain, None, None, &tmp(&format!("{domain}-straight"))).0
}

fn same(a: &Run, b: &Run) -> bool {
    a.history.step_losses == b.history.step_losses
        && a.model == b.model
        && a.history.epochs.len() == b.history.epochs.len()
}

#[test]
fn resuming_at_an_epoch_end_or_mid_epoch_is_bit_identical() {
    for domain in [false, true] {
        let whole = straight(domain);
        let per_epoch = whole.history.step_losses.len() / EPOCHS;
        assert!(per_epoch >= 4, "{per_epoch} steps per epoch");
        assert_eq!(whole.history.epochs.len(), EPOCHS);
        for stop_after in [2 * per_epoch, per_epoch + 2] {
            let resumed = stopped_and_resumed(domain, stop_after, |_| {});
            assert_eq!(resumed.history.step_losses, whole.history.step_losses, "domain {domain}, stop {stop_after}");
            assert!(same(&resumed, &whole), "weights after resuming at step {stop_after} (domain routing: {domain})");
            assert_eq!(
                resumed.history.epochs,
                whole
                    .history
                    .epochs
                    .iter()
                    .map(|e| {
                        // Timings differ from run to run; everything else must not.
                        let mut e = e.clone();
                        let r = &resumed.history.epochs[e.epoch - 1];
                        e.tokens_per_s = r.tokens_per_s;
                        e.seconds = r.seconds;
                        e
                    })
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn leaving_out_any_part_of_the_state_changes_the_run() {
    let whole = straight(true);
    let stop = whole.history.step_losses.len() / EPOCHS + 2;
    let seed = train_config().seed;
    let parts: [(&str, Damage); 4] = [
        ("optimizer", Box::new(|s: &mut MoeState| s.optimizer = fresh_optimizer(s))),
        (
            "dropout generator",
            Box::new(move |s: &mut MoeState| s.dropout_rng = RngState::of(&init::stream(seed, streams::DROPOUT))),
        ),
        (
            "teacher-forcing generator",
            Box::new(move |s: &mut MoeState| s.teacher_rng = RngState::of(&init::stream(seed, streams::DATA))),
        ),
        (
            "epoch's shuffle generator",
            Box::new(move |s: &mut MoeState| s.epoch_rng = RngState::of(&init::stream(seed, streams::SHUFFLE))),
        ),
    ];
    for (part, damage) in parts {
        let resumed = stopped_and_resumed(true, stop, damage);
        assert!(
            !same(&resumed, &whole),
            "resuming without the saved {part} gave the same run: the test could not fail"
        );
    }
}

fn fresh_optimizer(_: &MoeState) -> Optimizer<f32> {
    let model = moe_lm::init::<f32>(model_config(true), &mut init::rng(0));
    let cfg = train_config();
    Optimizer::new(cfg.optimizer, &cfg.rules, &model)
}

#[test]
fn an_optimizer_saved_for_another_model_is_refused() {
    let path = tmp("other-model");
    let (_, state) = train_from(false, None, Some(3), &path);
    let mut other = model_config(false);
    other.n_experts = 3;
    let model = moe_lm::init::<f32>(other, &mut init::rng(1));
    let (train_d, val_d) = (data(10, 1), data(3, 2));
    let (train_b, val_b) = (batches(&train_d), batches(&val_d));
    let err = train::fit_moe_lm_resumable(
        &mut model.clone(),
        &train_b,
        &val_b,
        &train_config(),
        &moe_training(false),
        state,
        None,
        &mut |_| {},
        &mut |_, _, _| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("optimizer state"), "{err}");
}
