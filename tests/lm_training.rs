//! The language model really learns: a tiny byte-level LM trained with Adam on a short
//! repeated text drives its loss far below the uniform baseline ln(vocab), deterministically.

use ndarray::Array2;
use tinymoe::engine::init;
use tinymoe::engine::layers::Mode;
use tinymoe::engine::optim::{Kind, Optimizer};
use tinymoe::models::transformer_lm::{self as lm, Config};

fn train(seed: u64, steps: usize) -> Vec<f64> {
    let text = b"the cat sat on the mat. the dog sat on the log. ".repeat(4);
    let (batch, seq) = (4, 24);
    let cfg = Config {
        vocab: 256,
        max_seq: seq,
        d_model: 32,
        n_heads: 4,
        d_ff: 64,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let mut model = lm::init::<f32>(cfg, &mut init::rng(seed));
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    // Windows at fixed offsets: ids = text[o .. o+seq], targets = text[o+1 .. o+seq+1].
    let ids = Array2::from_shape_fn((batch, seq), |(b, t)| text[b * 11 + t] as usize);
    let targets = Array2::from_shape_fn((batch, seq), |(b, t)| text[b * 11 + t + 1] as usize);
    let mut losses = Vec::new();
    let mut rng = init::rng(seed + 1);
    for _ in 0..steps {
        let (loss, cache) = lm::forward(&model, ids.view(), targets.view(), &mut Mode::Train(&mut rng));
        let grads = lm::backward(&model, &cache);
        opt.step(&mut model, &grads, 3e-3);
        losses.push(loss as f64);
    }
    losses
}

#[test]
fn a_tiny_lm_learns_a_repeated_text() {
    let losses = train(1, 150);
    let uniform = (256f64).ln();
    assert!((losses[0] - uniform).abs() < 0.1, "starts near ln 256 = {uniform:.3}: {}", losses[0]);
    let last = *losses.last().unwrap();
    assert!(last < 0.5, "after 150 steps the text is nearly memorised: {last}");
}

#[test]
fn lm_training_is_reproducible() {
    assert_eq!(train(7, 5), train(7, 5));
}

/// The margin the issue asks for: on held-out text, a tiny byte-level LM trained for three short
/// epochs (well under a second) must cut the validation loss from ≈ ln 256 = 5.55 nats (the
/// untrained model) by at least 2 nats, and the last epoch must beat the first. (Measured:
/// 5.505 → 3.68 after epoch 1 → 3.28 after epoch 3.)
#[test]
fn validation_loss_of_a_tiny_lm_falls_by_two_nats_on_held_out_text() {
    use tinymoe::data::text::{self, Windows};
    use tinymoe::data::tokenizer::{Bytes, Tokenizer};
    use tinymoe::engine::optim::Schedule;
    use tinymoe::train::{fit_lm, Config as TrainConfig};

    let tokens = Bytes.encode(&text::builtin());
    let (train_tokens, val_tokens) = text::split(&tokens[..24_000], 0.1);
    let seq = 32;
    let val = Windows::new(val_tokens, seq);
    let cfg = Config {
        vocab: 256,
        max_seq: seq,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        n_layers: 1,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let mut model = lm::init::<f32>(cfg, &mut init::rng(3));
    let before = lm::evaluate(&model, val.ids.view(), val.targets.view(), 64);
    assert!((before - 256f64.ln()).abs() < 0.05, "untrained: {before}");
    let train_cfg = TrainConfig {
        epochs: 3,
        batch_size: 16,
        lr: 3e-3,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: Some(1.0),
        seed: 3,
        rules: vec![],
    };
    let history = fit_lm(&mut model, train_tokens, seq, &val, &train_cfg, &mut |_| {}, &mut |_, _| Ok(())).unwrap();
    let (first, last) = (&history.epochs[0], &history.epochs[2]);
    eprintln!("validation loss: untrained {before:.3}, epoch 1 {:.3}, epoch 3 {:.3}", first.val_loss, last.val_loss);
    assert!(
        last.val_loss < before - 2.0,
        "validation loss {before:.3} → {:.3}: fell by less than 2 nats",
        last.val_loss
    );
    assert!(
        last.val_loss < first.val_loss,
        "epoch 3 ({:.3}) did not beat epoch 1 ({:.3})",
        last.val_loss,
        first.val_loss
    );
    assert!((last.val_perplexity() - last.val_loss.exp()).abs() < 1e-9);
}

/// Exact resume: a run stopped mid-epoch, saved to a checkpoint file, loaded and continued
/// gives the same step losses and the same final weights, bit for bit, as a run never stopped.
#[test]
fn training_stopped_saved_loaded_and_resumed_equals_training_straight_through() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tinymoe::checkpoint::{self, Trained};
    use tinymoe::data::text::{self, Windows};
    use tinymoe::data::tokenizer::{Bytes, Tokenizer};
    use tinymoe::engine::optim::Schedule;
    use tinymoe::train::{fit_lm_resumable, Checkpoint, Config as TrainConfig, LmState};

    let tokens = Bytes.encode(&text::builtin());
    let (train_tokens, val_tokens) = text::split(&tokens[..6_000], 0.2);
    let seq = 16;
    let val = Windows::new(val_tokens, seq);
    let cfg = Config {
        vocab: 256,
        max_seq: seq,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        n_layers: 1,
        dropout: 0.1,
        pad_id: None,
        tie_head: true,
    };
    let train_cfg = TrainConfig {
        epochs: 3,
        batch_size: 8,
        lr: 3e-3,
        schedule: Schedule::WarmupCosine { warmup: 10, total: 90, min_lr: 0.0 },
        optimizer: Kind::adamw(0.01),
        clip: Some(1.0),
        seed: 5,
        rules: vec![],
    };
    let fresh = || lm::init::<f32>(cfg, &mut init::rng(8));
    let fit = |model: &mut lm::Params<f32>, resume: Option<LmState>, stop_at: Option<usize>, path: &std::path::Path| {
        let stop = AtomicBool::new(false);
        fit_lm_resumable(
            model,
            train_tokens,
            seq,
            &val,
            &train_cfg,
            resume,
            Some(&stop),
            &mut |p| stop.store(Some(p.step) == stop_at, Ordering::SeqCst),
            &mut |event, m, state| {
                if matches!(event, Checkpoint::Interrupted) {
                    let saved = Trained { model: m.clone(), state: Some(state.clone()) };
                    checkpoint::save(path, "transformer_lm", &m.config, &saved, serde_json::json!({}))?;
                }
                Ok(())
            },
        )
        .unwrap()
    };
    let path = std::env::temp_dir().join(format!("tinymoe-resume-{}.ckpt", std::process::id()));
    let mut straight = fresh();
    let all = fit(&mut straight, None, None, &path);
    assert!(!all.interrupted && all.epochs.len() == 3);

    // Stop in the middle of epoch 2, from a checkpoint file, then resume.
    let steps_per_epoch = all.step_losses.len() / 3;
    let stop_at = steps_per_epoch + steps_per_epoch / 2;
    let mut first = fresh();
    let part = fit(&mut first, None, Some(stop_at), &path);
    assert!(part.interrupted);
    assert_eq!(part.step_losses.len(), stop_at);
    let (_, saved): (_, Trained<lm::Params<f32>, LmState>) = checkpoint::load(&path, "transformer_lm").unwrap();
    let mut resumed = saved.model;
    let rest = fit(&mut resumed, saved.state, None, &path);
    let _ = std::fs::remove_file(&path);
    assert!(!rest.interrupted);
    assert_eq!(rest.step_losses, all.step_losses, "every step's loss, bit for bit");
    let val_losses = |h: &tinymoe::train::LmHistory| h.epochs.iter().map(|e| e.val_loss).collect::<Vec<_>>();
    assert_eq!(val_losses(&rest), val_losses(&all));
    assert_eq!(resumed, straight, "the final weights, bit for bit");
}

#[test]
fn a_non_finite_gradient_is_refused_naming_its_tensor_and_step() {
    let cfg = Config {
        vocab: 16,
        max_seq: 4,
        d_model: 8,
        n_heads: 2,
        d_ff: 8,
        n_layers: 1,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let model = lm::init::<f32>(cfg, &mut init::rng(1));
    let ids = Array2::from_shape_fn((2, 4), |(b, t)| (b + 3 * t) % 16);
    let (_, cache) = lm::forward(&model, ids.view(), ids.view(), &mut Mode::Eval);
    let mut grads = lm::backward(&model, &cache);
    assert!(tinymoe::train::check_grads(&grads, 7).is_ok());
    grads.blocks[0].attn.k.dw[[1, 2]] = f32::NAN;
    let err = tinymoe::train::check_grads(&grads, 7).unwrap_err().to_string();
    assert!(err.contains("blocks.0.attn.k.w") && err.contains("NaN") && err.contains("step 7"), "{err}");
}
