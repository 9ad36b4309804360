//! The MoE language model really learns: held-out loss falls, the same seed gives the same
//! losses bit for bit, and a domain classifier learns to route by domain.

use tinymoe::data::batch::Batches;
use tinymoe::data::corpora::{self, Domain};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::init;
use tinymoe::engine::optim::{Kind, Schedule};
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::moe::layer::Level;
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::Gating;
use tinymoe::train::{self, MoeHistory, MoeTraining};

const PAD: usize = 256;

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

fn config(level: Level, gating: Gating, domain_loss: Option<f64>) -> moe_lm::Config {
    moe_lm::Config {
        vocab: 257,
        max_seq: 48,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 4,
        expert: ExpertKind::Mlp { hidden: 64 },
        router_hidden: Some(32),
        noisy: false,
        level,
        gating,
        router_losses: RouterLossConfig::paper(),
        domain_loss,
        bidirectional_experts: false,
    }
}

fn run(cfg: moe_lm::Config, epochs: usize, moe: &MoeTraining) -> MoeHistory {
    let (train_s, train_l) = data(24, 1);
    let (val_s, val_l) = data(6, 2);
    let train_b = Batches::new(&train_s, &train_l, 40, PAD, 8).unwrap();
    let val_b = Batches::new(&val_s, &val_l, 40, PAD, 8).unwrap();
    let mut model = moe_lm::init::<f32>(cfg, &mut init::rng(3));
    let tc = train::Config {
        epochs,
        batch_size: 8,
        lr: 1e-2,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: Some(1.0),
        seed: 4,
        rules: vec![],
    };
    train::fit_moe_lm(&mut model, &train_b, &val_b, &tc, moe, &mut |_| {}, &mut |_, _| Ok(())).unwrap()
}

#[test]
fn held_out_loss_falls_and_the_same_seed_repeats_bit_for_bit() {
    let cfg = config(Level::Token, Gating::top_k(2), None);
    let a = run(cfg, 8, &MoeTraining::default());
    let first = a.epochs[0].val.loss;
    let last = a.epochs.last().unwrap().val.loss;
    assert!(first - last > 0.5, "validation loss {first:.3} → {last:.3} (nats/byte)");
    assert!(a.epochs.iter().all(|e| e.val.domain_loss.iter().all(|l| l.is_finite())));
    let b = run(cfg, 8, &MoeTraining::default());
    assert_eq!(a.step_losses, b.step_losses, "same seed, same thread count: same losses");
}

#[test]
fn a_domain_classifier_learns_to_route_by_domain() {
    // Sequence-level, top-1 by the classifier's prediction after a teacher-forcing phase.
    let cfg = config(Level::Sequence, Gating::top_k(1), Some(1.0));
    let moe = MoeTraining { teacher_start: 1.0, teacher_end: 0.0, ..MoeTraining::default() };
    let h = run(cfg, 10, &moe);
    let acc: Vec<f64> = h.epochs.iter().map(|e| e.val.domain_accuracy.unwrap()).collect();
    assert!(*acc.last().unwrap() > 0.8 && acc[0] < 0.5, "routing accuracy per epoch {acc:?} (chance 0.25)");
    // Routed by the prediction, the domains' tokens go mostly to their own experts.
    let last = &h.epochs.last().unwrap().val;
    let diagonal: f64 = last.top_share.iter().enumerate().map(|(d, s)| s[d]).sum::<f64>() / 4.0;
    assert!(diagonal > 0.75, "mean share of a domain's tokens at its own expert {diagonal:.3}: {:?}", last.top_share);
}

/// A loss that turns NaN (here from a NaN planted in the head) stops training at that step with
/// an error naming it, before any weight changes; nothing is saved for the bad step.
#[test]
fn a_loss_that_turns_non_finite_stops_the_run_and_keeps_the_weights() {
    let (train_s, train_l) = data(8, 1);
    let (val_s, val_l) = data(2, 2);
    let train_b = Batches::new(&train_s, &train_l, 40, PAD, 8).unwrap();
    let val_b = Batches::new(&val_s, &val_l, 40, PAD, 8).unwrap();
    let mut model = moe_lm::init::<f32>(config(Level::Token, Gating::top_k(2), None), &mut init::rng(3));
    model.head.b[0] = f32::NAN;
    let before = model.clone();
    let tc = train::Config {
        epochs: 1,
        batch_size: 8,
        lr: 1e-2,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: None,
        seed: 4,
        rules: vec![],
    };
    let mut saves = 0;
    let err =
        train::fit_moe_lm(&mut model, &train_b, &val_b, &tc, &MoeTraining::default(), &mut |_| {}, &mut |_, _| {
            saves += 1;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, tinymoe::Error::NonFiniteLoss { step: 0, .. }), "{err}");
    assert!(err.to_string().contains("at step 0"), "{err}");
    // Bit by bit (NaN ≠ NaN under ==).
    let bits = |m: &moe_lm::Params<f32>| -> Vec<u32> {
        m.tensors().into_iter().flat_map(|(_, t)| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>()).collect()
    };
    assert_eq!(bits(&model), bits(&before), "no weight changed");
    assert_eq!(saves, 0, "nothing was saved for the bad step");
}
