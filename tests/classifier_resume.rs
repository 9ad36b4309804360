//! Classifier runs resume exactly: stopping (at an epoch's end or in the middle of one, through
//! a real checkpoint file) and going on gives every step's loss and every weight bit for bit as
//! the run that never stopped, for the MLP and the dense MoE with dropout. Leaving a part of the
//! saved state out makes the run differ (so the comparison can fail), and a state that does not
//! fit the model or the data is a clean error. Then the same through the binary: `tinymoe
//! train` saves model.ckpt every epoch, Ctrl-C saves and exits 0, `--resume` finishes the run,
//! and its metrics and weights equal an uninterrupted run's.

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use tinymoe::checkpoint::{self, Trained};
use tinymoe::data::synthetic::spirals;
use tinymoe::data::Dataset;
use tinymoe::engine::init::{self, streams, RngState};
use tinymoe::engine::optim::{Kind, Optimizer, Schedule};
use tinymoe::engine::params::Tensors;
use tinymoe::models::classifier::{self, Classifier};
use tinymoe::train::{fit, fit_resumable, Checkpoint, Config, FitState, History};

// ---------------------------------------------------------------------------------------------
// The library: fit_resumable and FitState.

const SEED: u64 = 5;
/// Epochs of the whole run.
const EPOCHS: usize = 4;
const KIND: &str = "classifier";

/// 180 training rows in batches of 32: 6 batches per epoch, the last one short (20 rows).
fn data() -> (Dataset, Dataset) {
    (spirals(60, 3, 1.25, 0.2, 11), spirals(20, 3, 1.25, 0.2, 12))
}

const STEPS_PER_EPOCH: usize = 6;

/// The run's settings; `epochs` may stop it early, the schedule is the whole run's either way.
fn config(epochs: usize) -> Config {
    Config {
        epochs,
        batch_size: 32,
        lr: 3e-3,
        schedule: Schedule::WarmupCosine { warmup: 5, total: EPOCHS * STEPS_PER_EPOCH, min_lr: 0.0 },
        optimizer: Kind::adamw(0.01),
        clip: Some(1.0),
        seed: SEED,
        rules: vec![],
    }
}

/// A fresh model with dropout, so the dropout generator's state matters.
fn fresh(moe: bool) -> Classifier<f32> {
    let mut rng = init::stream(SEED, streams::INIT);
    if moe {
        classifier::init_moe(2, &[16, 16], 3, &[8], 3, 0.2, &mut rng)
    } else {
        classifier::init_mlp(2, &[24, 24], 3, 0.2, &mut rng)
    }
}

fn tmp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tinymoe-classifier-resume-{name}-{}.ckpt", std::process::id()))
}

/// Trains with `cfg` from `resume` (None: from scratch), raising the stop flag after step
/// `stop_at`, and saves every checkpoint (each epoch's, and the interrupted one) to `path` as
/// `tinymoe train` does: a real checkpoint file with the model and its training state.
fn train(
    model: &mut Classifier<f32>,
    cfg: &Config,
    resume: Option<FitState>,
    stop_at: Option<usize>,
    path: &Path,
) -> tinymoe::Result<History> {
    let (train, val) = data();
    let stop = AtomicBool::new(false);
    fit_resumable(
        model,
        &train,
        &val,
        cfg,
        resume,
        Some(&stop),
        &mut |p| {
            if Some(p.step) == stop_at {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &mut |event, m, state| {
            match event {
                Checkpoint::Epoch(e) => assert_eq!((e.epoch + 1, 0), (state.epoch, state.batches_done)),
                Checkpoint::Interrupted => assert!(state.history.interrupted && state.step == stop_at.unwrap()),
            }
            let saved = Trained { model: m.clone(), state: Some(state.clone()) };
            let meta = serde_json::json!({ "training": state.standing() });
            checkpoint::save(path, KIND, &serde_json::json!({}), &saved, meta)
        },
    )
}

/// The model and training state saved in `path`.
fn load(path: &Path) -> (Classifier<f32>, FitState) {
    let (_, saved): (_, Trained<Classifier<f32>, FitState>) =
        checkpoint::load(path, KIND).expect("the checkpoint loads");
    (saved.model, saved.state.expect("the checkpoint holds a training state"))
}

/// Every weight's bits, by tensor name.
fn weight_bits(m: &Classifier<f32>) -> Vec<(String, Vec<u32>)> {
    m.tensors().into_iter().map(|(name, t)| (name, t.iter().map(|x| x.to_bits()).collect())).collect()
}

/// Every step's loss, as bits.
fn loss_bits(h: &History) -> Vec<u64> {
    h.step_losses.iter().map(|l| l.to_bits()).collect()
}

/// Every epoch's losses and accuracies (not its seconds), as bits.
fn epoch_bits(h: &History) -> Vec<[u64; 5]> {
    h.epochs
        .iter()
        .map(|e| {
            [e.epoch as u64, e.train_loss.to_bits(), e.train_acc.to_bits(), e.val_loss.to_bits(), e.val_acc.to_bits()]
        })
        .collect()
}

/// The run that never stops, through the plain `fit`.
fn straight(moe: bool) -> (Classifier<f32>, History) {
    let (train, val) = data();
    let mut model = fresh(moe);
    let h = fit(&mut model, &train, &val, &config(EPOCHS), &mut |_| {}).expect("training runs");
    assert_eq!(h.step_losses.len(), EPOCHS * STEPS_PER_EPOCH);
    assert_eq!(h.epochs.len(), EPOCHS);
    assert!(!h.interrupted);
    (model, h)
}

fn assert_same_run(what: &str, (m, h): (&Classifier<f32>, &History), (m0, h0): (&Classifier<f32>, &History)) {
    assert_eq!(loss_bits(h), loss_bits(h0), "{what}: every step's loss, bit for bit");
    assert_eq!(epoch_bits(h), epoch_bits(h0), "{what}: every epoch's losses and accuracies, bit for bit");
    assert_eq!(weight_bits(m), weight_bits(m0), "{what}: every weight, bit for bit");
    assert!(!h.interrupted, "{what}: the resumed run finished");
}

/// N epochs, a checkpoint file, N more: the same as 2N straight.
fn halves_equal_the_straight_run(moe: bool) {
    let (m0, h0) = straight(moe);
    let path = tmp_file(if moe { "halves-moe" } else { "halves-mlp" });
    let mut first = fresh(moe);
    let half = train(&mut first, &config(EPOCHS / 2), None, None, &path).unwrap();
    assert_eq!(half.epochs.len(), EPOCHS / 2);
    let (mut model, state) = load(&path);
    assert_eq!(weight_bits(&model), weight_bits(&first), "the file holds the weights exactly");
    assert_eq!((state.epoch, state.batches_done, state.step), (EPOCHS / 2 + 1, 0, EPOCHS / 2 * STEPS_PER_EPOCH));
    assert_eq!(state.standing().epochs_finished, EPOCHS / 2);
    let h = train(&mut model, &config(EPOCHS), Some(state), None, &path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_same_run(if moe { "MoE" } else { "MLP" }, (&model, &h), (&m0, &h0));
}

#[test]
fn mlp_two_halves_through_a_checkpoint_file_equal_one_straight_run() {
    halves_equal_the_straight_run(false);
}

#[test]
fn moe_two_halves_through_a_checkpoint_file_equal_one_straight_run() {
    halves_equal_the_straight_run(true);
}

/// Interrupted after `stop_at` steps (saved to a file), then resumed: the straight run.
fn interrupted_then_resumed(moe: bool, stop_at: usize, straight: (&Classifier<f32>, &History)) {
    let path = tmp_file(&format!("stop-{moe}-{stop_at}"));
    let mut model = fresh(moe);
    let part = train(&mut model, &config(EPOCHS), None, Some(stop_at), &path).unwrap();
    assert!(part.interrupted, "stopped at step {stop_at}");
    assert_eq!(part.step_losses.len(), stop_at);
    assert_eq!(loss_bits(&part)[..], loss_bits(straight.1)[..stop_at], "the same run up to the stop");
    let (mut resumed, state) = load(&path);
    let standing = state.standing();
    assert!(standing.interrupted);
    assert_eq!(standing.step, stop_at);
    assert_eq!((standing.epoch - 1) * STEPS_PER_EPOCH + standing.batches_done, stop_at);
    let rest = train(&mut resumed, &config(EPOCHS), Some(state), None, &path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_same_run(&format!("moe {moe}, stopped after step {stop_at}"), (&resumed, &rest), straight);
}

#[test]
fn an_interruption_anywhere_resumes_bit_for_bit() {
    for moe in [false, true] {
        let (m0, h0) = straight(moe);
        // The first step; mid-epoch; after an epoch's last batch (before its evaluation); the
        // very last step of the run.
        for stop_at in [1, STEPS_PER_EPOCH + STEPS_PER_EPOCH / 2, 2 * STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH] {
            interrupted_then_resumed(moe, stop_at, (&m0, &h0));
        }
    }
}

#[test]
fn two_interruptions_in_one_run_still_resume_bit_for_bit() {
    let (m0, h0) = straight(true);
    let path = tmp_file("twice");
    let mut model = fresh(true);
    let first = train(&mut model, &config(EPOCHS), None, Some(4), &path).unwrap();
    assert!(first.interrupted);
    let (mut model, state) = load(&path);
    let second = train(&mut model, &config(EPOCHS), Some(state), Some(3 * STEPS_PER_EPOCH - 1), &path).unwrap();
    assert!(second.interrupted);
    assert_eq!(second.step_losses.len(), 3 * STEPS_PER_EPOCH - 1);
    let (mut model, state) = load(&path);
    let h = train(&mut model, &config(EPOCHS), Some(state), None, &path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_same_run("stopped twice", (&model, &h), (&m0, &h0));
}

/// The comparison can fail: a resumed run missing one part of its state is another run.
#[test]
fn leaving_out_a_part_of_the_state_makes_the_run_differ() {
    let (m0, h0) = straight(true);
    let stop_at = STEPS_PER_EPOCH + 2;
    let path = tmp_file("leave-out");
    let mut model = fresh(true);
    train(&mut model, &config(EPOCHS), None, Some(stop_at), &path).unwrap();
    let cfg = config(EPOCHS);
    type Change = fn(&mut FitState, &Classifier<f32>, &Config);
    let changes: [(&str, Change); 5] = [
        ("nothing left out", |_, _, _| {}),
        ("a fresh optimiser", |s, m, cfg| s.optimizer = Optimizer::new(cfg.optimizer, &cfg.rules, m)),
        ("a fresh dropout generator", |s, _, cfg| {
            s.dropout_rng = RngState::of(&init::stream(cfg.seed, streams::DROPOUT))
        }),
        ("the first epoch's shuffle generator", |s, _, cfg| {
            s.epoch_rng = RngState::of(&init::stream(cfg.seed, streams::SHUFFLE))
        }),
        ("the epoch's running sums", |s, _, _| (s.loss_sum, s.acc_sum, s.seen) = (0.0, 0.0, 0)),
    ];
    let saved = load(&path);
    // The resumed runs save elsewhere: `path` keeps the interrupted state for every variant.
    let scratch = tmp_file("leave-out-scratch");
    for (what, change) in changes {
        let (mut resumed, mut state) = saved.clone();
        change(&mut state, &resumed, &cfg);
        let h = train(&mut resumed, &cfg, Some(state), None, &scratch).unwrap();
        if what == "nothing left out" {
            assert_same_run(what, (&resumed, &h), (&m0, &h0));
        } else if what == "the epoch's running sums" {
            // The sums only feed the epoch's summary: the steps agree, the train loss does not.
            assert_eq!(loss_bits(&h), loss_bits(&h0), "{what}");
            assert_ne!(h.epochs[1].train_loss, h0.epochs[1].train_loss, "{what}: the epoch's train loss");
        } else {
            assert_ne!(loss_bits(&h)[stop_at..], loss_bits(&h0)[stop_at..], "resuming with {what} is another run");
            assert_ne!(weight_bits(&resumed), weight_bits(&m0), "resuming with {what} ends at other weights");
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&scratch);
}

#[test]
fn a_state_that_does_not_fit_the_model_or_the_data_is_a_clean_error() {
    let path = tmp_file("misfit");
    let mut mlp = fresh(false);
    train(&mut mlp, &config(EPOCHS), None, Some(STEPS_PER_EPOCH + 1), &path).unwrap();
    let (_, state) = load(&path);
    // The MLP's optimiser state on the MoE: other tensors.
    let mut moe = fresh(true);
    let before = weight_bits(&moe);
    let err = train(&mut moe, &config(EPOCHS), Some(state.clone()), None, &path).unwrap_err().to_string();
    assert!(err.contains("optimizer state") && err.contains("other tensors"), "{err}");
    assert_eq!(weight_bits(&moe), before, "nothing trained");
    // The same model, but a batch size that cannot reach the saved position.
    let (mut model, _) = load(&path);
    let mut cfg = config(EPOCHS);
    cfg.batch_size = 64;
    let err = train(&mut model, &cfg, Some(state), None, &path).unwrap_err().to_string();
    let _ = std::fs::remove_file(&path);
    assert!(err.contains("resume") && err.contains("batches per epoch"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The binary: `tinymoe train` with model.ckpt, Ctrl-C and --resume.

/// A small spirals run (100 points per arm): a config file, as no flag sets the points.
fn small_config(dir: &Path) -> PathBuf {
    let path = dir.join("small.toml");
    std::fs::write(&path, "spiral_points_per_class = 100\nhidden = [32, 32]\n").unwrap();
    path
}

/// metrics.csv without its last column (seconds): epoch, losses and accuracies.
fn metrics_without_time(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("epoch,train_loss,train_acc,val_loss,val_acc,seconds"));
    lines.map(|l| l.rsplit_once(',').expect("6 columns").0.to_string()).collect()
}

#[test]
fn train_saves_a_checkpoint_that_inspect_reads_and_resume_rewrites() {
    let dir = tmp_dir("small");
    let config = small_config(&dir);
    let out = dir.join("out");
    let o = tinymoe(&["train", "--config", config.to_str().unwrap(), "--epochs", "4", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("model.ckpt"), "the summary lists model.ckpt: {}", stdout(&o));
    let ckpt = out.join("model.ckpt");
    let i = tinymoe(&["inspect", ckpt.to_str().unwrap()]);
    assert!(i.status.success(), "{}", stderr(&i));
    let text = stdout(&i);
    for needle in ["kind            classifier", "4 epoch(s) finished", "resumable       yes", "\"spec\"", "layers.2.w"]
    {
        assert!(text.contains(needle), "inspect shows {needle:?}: {text}");
    }
    // The header's config is the model's shape.
    let (header, _) = checkpoint::read(&ckpt).unwrap();
    assert_eq!(header.config["model"], "mlp");
    assert_eq!(header.config["hidden"], serde_json::json!([32, 32]));
    assert_eq!((header.config["d_in"].as_u64(), header.config["classes"].as_u64()), (Some(2), Some(5)));
    assert_eq!(header.meta["epochs_done"], 4);
    // Resuming a finished run trains nothing and writes the same results into another folder.
    let again = dir.join("again");
    let r = tinymoe(&["train", "--resume", ckpt.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("had finished all 4 epochs"), "{}", stdout(&r));
    assert_eq!(metrics_without_time(&again), metrics_without_time(&out));
    assert!(again.join("model.ckpt").is_file());
}

/// Ctrl-C saves where the run stands and exits 0; `--resume` finishes it; the result equals a
/// run that was never interrupted (the user-level proof of exact resume).
#[test]
fn ctrl_c_then_resume_equals_an_uninterrupted_run() {
    let dir = tmp_dir("sigint");
    // The dense MoE with dropout: ~60 ms per epoch here, so the run lasts long after the first
    // checkpoint appears.
    let settings = ["--preset", "spirals-moe", "--dropout", "0.1", "--epochs", "40", "--seed", "3"];
    let (cut, whole) = (dir.join("cut"), dir.join("whole"));
    let child = Command::new(env!("CARGO_BIN_EXE_tinymoe"))
        .args(["train"])
        .args(settings)
        .args(["--out", cut.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = cut.join("model.ckpt");
    let started = std::time::Instant::now();
    while !ckpt.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ckpt.exists(), "the first epoch's checkpoint appears");
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let text = stdout(&o);
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    let (ckpt_s, cut_s) = (ckpt.display().to_string(), cut.display().to_string());
    assert!(text.contains("interrupted: saved the run at step "), "{text}");
    assert!(text.contains(&format!(" in {ckpt_s}\n")), "{text}");
    assert!(text.contains(&format!("continue it with: tinymoe train --resume {ckpt_s} --out {cut_s}")), "{text}");
    let i = tinymoe(&["inspect", &ckpt_s]);
    assert!(stdout(&i).contains(", interrupted"), "{}", stdout(&i));

    let r = tinymoe(&["train", "--resume", &ckpt_s, "--out", &cut_s]);
    assert!(r.status.success(), "stderr: {}", stderr(&r));
    assert!(stdout(&r).contains("resuming at epoch"), "{}", stdout(&r));
    let w = tinymoe(&[&["train"], &settings[..], &["--out", whole.to_str().unwrap()]].concat());
    assert!(w.status.success(), "stderr: {}", stderr(&w));

    let (resumed, uninterrupted) = (metrics_without_time(&cut), metrics_without_time(&whole));
    assert_eq!(resumed.len(), 40, "every epoch is in metrics.csv");
    assert_eq!(resumed, uninterrupted, "the same losses and accuracies every epoch");
    let (_, a) = checkpoint::read_tensors(&ckpt, |_| true).unwrap();
    let (_, b) = checkpoint::read_tensors(&whole.join("model.ckpt"), |_| true).unwrap();
    assert!(a.0.iter().any(|(n, _)| n.starts_with("experts.3")), "the MoE's tensors");
    let bits = |t: &tinymoe::checkpoint::NamedTensors| -> Vec<(String, Vec<u32>)> {
        t.0.iter().map(|(n, v)| (n.clone(), v.iter().map(|x| x.to_bits()).collect())).collect()
    };
    assert_eq!(bits(&a), bits(&b), "the same final weights, bit for bit");
}

#[test]
fn resume_refuses_junk_files_and_flags_that_change_the_run() {
    let dir = tmp_dir("junk");
    let out = dir.join("out");
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_clean_error(
        &tinymoe(&["train", "--resume", junk.to_str().unwrap(), "--out", out.to_str().unwrap()]),
        &["junk.ckpt"],
    );
    let missing = dir.join("missing.ckpt");
    assert_clean_error(
        &tinymoe(&["train", "--resume", missing.to_str().unwrap(), "--out", out.to_str().unwrap()]),
        &["missing.ckpt"],
    );
    // A setting that would change the run is refused by the parser (a usage error).
    let o = tinymoe(&["train", "--resume", junk.to_str().unwrap(), "--lr", "0.1", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--resume") && stderr(&o).contains("--lr"), "{}", stderr(&o));
    let help = stdout(&tinymoe(&["train", "--help"]));
    assert!(help.contains("--resume"), "{help}");
}

/// A CSV file is read again from its saved path: changed since, its rows no longer fit the
/// saved run's position, and the resume says so instead of continuing differently.
#[test]
fn resume_notices_a_csv_file_that_changed() {
    let dir = tmp_dir("csv");
    let csv_path = dir.join("xor.csv");
    let xor = |rows: usize| {
        let mut csv = String::from("a,b,label\n");
        for i in 0..rows {
            let (a, b) = ((i % 2) as f64, ((i / 2) % 2) as f64);
            csv += &format!("{},{},{}\n", a + 0.01 * (i % 7) as f64, b, (a as usize) ^ (b as usize));
        }
        csv
    };
    std::fs::write(&csv_path, xor(200)).unwrap();
    let out = dir.join("out");
    let o = tinymoe(&["train", "--data", csv_path.to_str().unwrap(), "--epochs", "2", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&csv_path, xor(100)).unwrap();
    let ckpt = out.join("model.ckpt");
    let r = tinymoe(&["train", "--resume", ckpt.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(&r, &["did the training data or the batch size change"]);
    // Another width: the saved model no longer fits the data.
    std::fs::write(&csv_path, "a,b,c,label\n0,0,0,0\n1,1,1,1\n0,1,0,1\n1,0,1,0\n").unwrap();
    let r = tinymoe(&["train", "--resume", ckpt.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(&r, &["did the data change"]);
}

/// A run that blows up after some epochs names the last good checkpoint and how to go on.
#[test]
fn a_diverging_run_names_its_last_good_checkpoint() {
    let dir = tmp_dir("diverge");
    // A linear model, plain SGD with a learning rate warming up towards 3e38: the logits grow
    // every step until the loss overflows, a few epochs in.
    let config = dir.join("diverge.toml");
    std::fs::write(
        &config,
        "spiral_points_per_class = 100\nhidden = []\noptimizer = \"sgd\"\nmomentum = 0.0\n\
         schedule = \"cosine\"\nwarmup_steps = 1000\nlr = 3e38\nclip = 1e30\nepochs = 40\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = tinymoe(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let ckpt = out.join("model.ckpt").display().to_string();
    assert_clean_error(&o, &["the loss became"]);
    let err = stderr(&o);
    assert!(err.contains(&format!("the last good checkpoint is {ckpt}")), "{err}");
    assert!(err.contains(&format!("tinymoe train --resume {ckpt} --out {}", out.display())), "{err}");
    let i = tinymoe(&["inspect", &ckpt]);
    assert!(i.status.success() && stdout(&i).contains("epoch(s) finished"), "{}", stdout(&i));
}
