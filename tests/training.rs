//! Training really learns, and is reproducible: same seed → bitwise-equal losses, whatever
//! the thread count.

use tinymoe::data::synthetic::spirals;
use tinymoe::engine::init::{self, streams};
use tinymoe::engine::optim::{Kind, Schedule};
use tinymoe::models::classifier::{self, Classifier};
use tinymoe::train::{fit, Config, History};
use tinymoe::Error;

fn config(epochs: usize, seed: u64) -> Config {
    Config {
        epochs,
        batch_size: 32,
        lr: 3e-3,
        schedule: Schedule::WarmupCosine { warmup: 20, total: epochs * 30, min_lr: 0.0 },
        optimizer: Kind::adam(),
        clip: Some(5.0),
        seed,
        rules: vec![],
    }
}

fn run(moe: bool, epochs: usize, seed: u64) -> (Classifier<f32>, History) {
    let train = spirals(200, 3, 1.25, 0.2, seed);
    let val = spirals(60, 3, 1.25, 0.2, seed + 1000);
    let mut rng = init::stream(seed, streams::INIT);
    let mut model = if moe {
        classifier::init_moe(2, &[32, 32], 3, &[16], 4, 0.1, &mut rng)
    } else {
        classifier::init_mlp(2, &[64, 64], 3, 0.1, &mut rng)
    };
    let h = fit(&mut model, &train, &val, &config(epochs, seed), &mut |_| {}).expect("training runs");
    (model, h)
}

#[test]
fn mlp_learns_the_spirals() {
    let (_, h) = run(false, 40, 1);
    let first = &h.epochs[0];
    let last = h.epochs.last().unwrap();
    assert!(last.val_loss < 0.5 * first.val_loss, "validation loss {} → {}", first.val_loss, last.val_loss);
    assert!(last.val_acc > 0.9, "validation accuracy {}", last.val_acc);
}

#[test]
fn moe_learns_the_spirals_and_uses_several_experts() {
    let (model, h) = run(true, 40, 2);
    let first = &h.epochs[0];
    let last = h.epochs.last().unwrap();
    assert!(last.val_loss < 0.5 * first.val_loss, "validation loss {} → {}", first.val_loss, last.val_loss);
    assert!(last.val_acc > 0.9, "validation accuracy {}", last.val_acc);
    let val = spirals(60, 3, 1.25, 0.2, 1002);
    let gates = classifier::gates(&model, val.x.view()).unwrap();
    for row in gates.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn same_seed_gives_bitwise_identical_losses() {
    let (_, a) = run(true, 3, 7);
    let (_, b) = run(true, 3, 7);
    assert_eq!(a.step_losses, b.step_losses);
    let (_, c) = run(true, 3, 8);
    assert_ne!(a.step_losses, c.step_losses, "a different seed is a different run");
}

#[test]
fn losses_do_not_depend_on_the_thread_count() {
    let on =
        |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| run(true, 2, 9).1);
    assert_eq!(on(1).step_losses, on(2).step_losses);
}

#[test]
fn a_nan_loss_stops_training_naming_the_step_and_keeps_the_weights() {
    let mut train = spirals(20, 3, 1.25, 0.2, 3);
    train.x.column_mut(0).fill(f32::NAN); // every batch is poisoned, so the very first step fails
    let val = spirals(10, 3, 1.25, 0.2, 4);
    let mut model = classifier::init_mlp::<f32>(2, &[8], 3, 0.0, &mut init::rng(3));
    let before = model.clone();
    let err = fit(&mut model, &train, &val, &config(2, 3), &mut |_| {}).unwrap_err();
    match err {
        Error::NonFiniteLoss { step, .. } => assert_eq!(step, 0),
        e => panic!("expected NonFiniteLoss, got {e}"),
    }
    assert_eq!(model, before, "no update was applied from the bad step");
}

#[test]
fn a_diverging_run_stops_at_the_first_infinite_loss() {
    let train = spirals(20, 3, 1.25, 0.2, 3);
    let mut model = classifier::init_mlp::<f32>(2, &[8], 3, 0.0, &mut init::rng(3));
    let mut cfg = config(50, 3);
    cfg.optimizer = Kind::Sgd { momentum: 0.0 };
    cfg.schedule = Schedule::Constant;
    cfg.clip = None;
    cfg.lr = 1e30;
    let err = fit(&mut model, &train, &train, &cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::NonFiniteLoss { step, .. } if step >= 1), "{err}");
    assert!(err.to_string().contains("at step"), "{err}");
}

#[test]
fn bad_config_values_are_rejected_by_name() {
    let train = spirals(10, 3, 1.25, 0.2, 3);
    let mut model = classifier::init_mlp::<f32>(2, &[8], 3, 0.0, &mut init::rng(3));
    let mut cfg = config(1, 0);
    cfg.lr = -0.1;
    let msg = fit(&mut model, &train, &train, &cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(msg.contains("lr = -0.1"), "{msg}");
    let mut cfg = config(1, 0);
    cfg.batch_size = 0;
    assert!(fit(&mut model, &train, &train, &cfg, &mut |_| {}).unwrap_err().to_string().contains("batch_size"));
    // Data of the wrong width names the mismatch.
    let wide = tinymoe::data::Dataset { x: ndarray::Array2::zeros((4, 3)), y: vec![0, 1, 2, 0], classes: 3 };
    let msg = fit(&mut model, &wide, &wide, &config(1, 0), &mut |_| {}).unwrap_err().to_string();
    assert!(msg.contains("reads 2 features"), "{msg}");
}
