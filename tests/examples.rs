//! Every chapter example runs, exits 0, and prints the lines its chapter promises.
//!
//! The examples are binaries, so this test runs them as a learner would, from
//! target/<profile>/examples/ next to this test's own target/<profile>/deps/. `cargo test`
//! builds them there, but `cargo test --test examples` does not, and a binary left from an
//! earlier build may be stale: so each example is first brought up to date with
//! `cargo build --example NAME` in the same profile and target directory (a no-op taking a
//! fraction of a second when it is already fresh).
//!
//! Gradient-check lines look like `ok     linear.dx   rel err 3.37e-10 at …`: every `ok` line
//! must be at most 1e-6, every `caught` line (a deliberately broken gradient) above 1e-2.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The bar for a correct gradient, as in SPEC §1.
const TOL: f64 = 1e-6;

/// target/<profile>/examples/<name>, built (or found fresh) by cargo first.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps/");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => panic!("cannot tell the build profile from {}", profile_dir.display()),
    }
    if let Some(target_dir) = profile_dir.parent() {
        cargo.arg("--target-dir").arg(target_dir);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building example {name} failed ({status})");
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing after building it", bin.display());
    bin
}

/// Runs example `name`, asserts it exits 0, and returns its stdout.
fn run(name: &str) -> String {
    let out = Command::new(example_binary(name)).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after "rel err " on a report line.
fn rel_err(line: &str) -> f64 {
    let rest = line.split("rel err ").nth(1).unwrap_or_else(|| panic!("no 'rel err' in {line:?}"));
    let number = rest.split_whitespace().next().expect("a number follows 'rel err'");
    number.parse().unwrap_or_else(|_| panic!("{number:?} in {line:?} is not a number"))
}

/// Every line starting with `tag` (then a space).
fn lines_tagged<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.split_whitespace().next() == Some(tag)).collect()
}

fn assert_contains(out: &str, needle: &str, example: &str) {
    assert!(out.contains(needle), "{example} should print {needle:?}; it printed:\n{out}");
}

/// The report line of the check named `name` (`ok     name   rel err …`).
fn report_line<'a>(out: &'a str, name: &str) -> &'a str {
    lines_tagged(out, "ok")
        .into_iter()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no passing check named {name} in:\n{out}"))
}

#[test]
fn ch01_linear_runs_and_matches_the_hand_computation() {
    let out = run("ch01_linear");
    assert_contains(&out, "same memory as x: true", "ch01");
    assert_contains(&out, "rows.to_owned(): same memory: false", "ch01");
    assert_contains(&out, "[[4.5, 2],\n [10.5, 5]]", "ch01");
    assert_contains(&out, "db = Σ_rows dy = [0, 2]", "ch01");
    assert_contains(&out, "matches the hand computation exactly: true", "ch01");
    for name in ["linear.dx", "linear.dW", "linear.db"] {
        let e = rel_err(report_line(&out, name));
        assert!(e <= TOL, "ch01 {name}: rel err {e:e} > {TOL:e}");
    }
}

#[test]
fn ch02_every_gradient_check_passes_and_every_broken_one_is_caught() {
    let out = run("ch02_gradcheck");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 40, "ch02 should run at least 40 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch02: {line}");
    }
    for name in [
        "linear.dx",
        "linear.w",
        "linear.b",
        "relu.dx",
        "gelu_erf.dx",
        "gelu_tanh.dx",
        "softmax.dx",
        "log_softmax.dx",
        "dropout.dx",
        "layer_norm.dx",
        "layer_norm.weight",
        "layer_norm.bias",
        "embedding.tok",
        "embedding.pos",
        "cross_entropy.dlogits",
        "mlp.dx",
        "mlp.layers.0.w",
        "moe.dx",
        "moe.gate.layers.0.w",
        "moe.experts.2.layers.1.w",
        "train_step.layers.0.w",
    ] {
        report_line(&out, name);
    }
    let caught = lines_tagged(&out, "caught");
    assert_eq!(caught.len(), 3, "ch02 breaks three gradients on purpose:\n{out}");
    for line in &caught {
        assert!(rel_err(line) > 1e-2, "ch02: a broken gradient got through: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    assert_contains(&out, "naive  softmax = [NaN, NaN, NaN]", "ch02");
    assert_contains(&out, "stable softmax = [0.0900, 0.2447, 0.6652]", "ch02");
    assert_contains(&out, "row sums of dlogits: [0, 0, 0, 0]", "ch02");
    assert_contains(&out, "every broken gradient was caught", "ch02");
}

#[test]
fn ch03_optimiser_steps_schedule_and_groups_behave() {
    let out = run("ch03_optimisers");
    let by_hand: Vec<&str> = out.lines().filter(|l| l.contains(" by hand ")).collect();
    assert_eq!(by_hand.len(), 3, "ch03 works SGD, momentum and Adam steps by hand:\n{out}");
    for line in by_hand {
        assert!(line.ends_with(" ok"), "ch03: the optimiser disagrees with the hand computation: {line}");
    }
    assert_contains(&out, "Δθ with bias correction        [-0.010000, -0.010000, -0.010000]", "ch03");
    let l2sp = rel_err(report_line(&out, "l2sp.dw"));
    assert!(l2sp <= TOL, "ch03: the L2-SP gradient is not 2λ(θ − θ₀): rel err {l2sp:e}");
    assert_contains(&out, "step  3  lr 1.000e-3", "ch03");
    assert_contains(&out, "step 20  lr 1.000e-5", "ch03");
    let frozen = out.lines().find(|l| l.starts_with("frozen ")).expect("a row for frozen hidden layers");
    let moved: Vec<&str> = frozen.split_whitespace().skip(1).take(2).collect();
    assert_eq!(moved, ["0.0000", "0.0000"], "ch03: frozen layers moved: {frozen}");
    assert_contains(&out, "every hand-computed step and the L2-SP gradient check agree", "ch03");
}

#[test]
fn ch04_attention_checks_pass_masks_hold_and_the_maps_are_drawn() {
    let started = std::time::SystemTime::now();
    let out = run("ch04_attention");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 50, "ch04 should run at least 50 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch04: {line}");
    }
    for name in [
        "sdpa.dQ",
        "sdpa.dK",
        "sdpa.dV",
        "attn.none.dx",
        "attn.causal.dx",
        "attn.padding.dx",
        "attn.causal+padding.dx",
        "attn.causal+padding.q.w",
        "attn.causal+padding.k.w",
        "attn.causal+padding.v.w",
        "attn.causal+padding.o.b",
        "block.dx",
        "block.attn.q.w",
        "block.mlp.layers.0.w",
    ] {
        report_line(&out, name);
    }
    let caught = lines_tagged(&out, "caught");
    assert_eq!(caught.len(), 2, "ch04 breaks two gradients on purpose:\n{out}");
    for line in &caught {
        assert!(rel_err(line) > 1e-2, "ch04: a broken gradient got through: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    assert_contains(&out, "matches the hand computation: true", "ch04");
    assert_contains(&out, "naive softmax of [−∞, −∞, −∞] = [NaN, NaN, NaN]", "ch04");
    assert_contains(
        &out,
        "query 0: P row = [0.000, 0.000, 0.000, 0.000, 0.000], row sum 0.000, y row = b_o: true",
        "ch04",
    );
    assert_contains(&out, "any NaN in y: false", "ch04");
    assert_contains(&out, "both broken gradients were caught", "ch04");

    // The √d table: at d = 1024 the unscaled softmax is nearly one-hot, the scaled one is not.
    let row = out.lines().find(|l| l.split_whitespace().next() == Some("1024")).expect("a row for d = 1024");
    let cols: Vec<f64> = row.split_whitespace().map(|v| v.parse().expect("numbers")).collect();
    let (raw_max_p, scaled_max_p) = (cols[2], cols[6]);
    assert!(raw_max_p > 0.9 && scaled_max_p < 0.3, "ch04: d = 1024 row: {row}");

    let pngs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("wrote ")).collect();
    assert_eq!(pngs.len(), 2, "ch04 draws one attention map per layer:\n{out}");
    for png in pngs {
        // The example writes relative to its working directory, which is this test's.
        let path = Path::new(png);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("ch04: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch04: {png} is not a PNG");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("an mtime");
        assert!(modified >= started - std::time::Duration::from_secs(2), "ch04: {png} was not written by this run");
    }
}

#[test]
fn ch05_block_and_lm_checks_pass_training_helps_and_the_kv_cache_equals_recompute() {
    let out = run("ch05_transformer_lm");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 100, "ch05 should run at least 100 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch05: {line}");
    }
    for name in [
        "block.dx",
        "block.attn.q.w",
        "block.mlp.layers.0.w",
        "postln.dx",
        "postln.ln1.weight",
        "lm.embed.tok",
        "lm.blocks.1.attn.o.w",
        "lm.head.w",
        "lm_tied.embed.tok",
        "lm_tied.ln_f.weight",
    ] {
        report_line(&out, name);
    }
    assert!(lines_tagged(&out, "FAIL").is_empty(), "{out}");
    assert_contains(&out, "padding targets are ignored: true", "ch05");
    assert_contains(&out, "tied dtok = lookup dtok + (head dW)ᵀ", "ch05");
    let tied = out.lines().find(|l| l.contains("tied dtok = lookup dtok")).expect("the tied-head line");
    assert!(tied.ends_with(": true"), "ch05: the tied gradient is not the sum of its two paths: {tied}");
    assert_contains(&out, "KV cache and recompute gave identical tokens: true", "ch05");

    // The loss at initialisation is close to ln 256.
    let init = out.lines().find(|l| l.contains("mean logsumexp(z)")).expect("the loss-at-init line");
    let loss: f64 = init.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a loss after 'loss'");
    assert!((loss - 256f64.ln()).abs() < 0.1, "ch05: loss at init {loss} is not ≈ ln 256: {init}");

    // Training: the held-out loss falls, and below what byte frequencies alone achieve.
    let fell = out.lines().find(|l| l.starts_with("validation loss fell: ")).expect("the training summary");
    assert!(fell.starts_with("validation loss fell: true"), "ch05: {fell}");
    let last_val: f64 =
        fell.split('→').nth(1).and_then(|r| r.trim_start().split(')').next()).and_then(|v| v.parse().ok()).expect(fell);
    let baseline = out.lines().find(|l| l.starts_with("baseline: ")).expect("the unigram baseline line");
    let unigram: f64 =
        baseline.split(" score ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).expect(baseline);
    assert!(last_val < unigram, "ch05: after training, val loss {last_val} is not below the unigram {unigram}");

    // Pre-LN vs post-LN: 12 rows of 7 numbers (block, then three columns per weight scale).
    let rows: Vec<Vec<f64>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse::<f64>()).collect::<Result<Vec<_>, _>>())
        .filter_map(|r| r.ok().filter(|cols| cols.len() == 7))
        .collect();
    assert_eq!(rows.len(), 12, "ch05 prints the gradient at each of 12 blocks:\n{out}");
    for cols in &rows {
        // Pre-LN's identity path delivers at least the top gradient to every block.
        assert!(cols[1] > 0.99 && cols[4] > 0.99, "ch05: pre-LN lost gradient at block {}: {cols:?}", cols[0]);
    }
    let block0 = rows.iter().find(|c| c[0] == 0.0).expect("a row for block 0");
    assert!(block0[6] < 0.05, "ch05: post-LN's residual-only path should fade by block 0: {block0:?}");
}
