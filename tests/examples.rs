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

/// The first line that contains `needle`.
fn line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// The number right after `label` in `line`, with a trailing `%` or `,` dropped.
fn number_after(line: &str, label: &str) -> f64 {
    let rest = line.split(label).nth(1).unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    let word = rest.split_whitespace().next().expect("a number follows");
    word.trim_end_matches(['%', ',', ':']).parse().unwrap_or_else(|_| panic!("{word:?} in {line:?} is not a number"))
}

/// The whitespace-separated fields of `line`.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
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

fn assert_contains_ch06(out: &str, needle: &str) {
    assert_contains(out, needle, "ch06");
}

#[test]
fn ch06_builds_a_bpe_step_by_step_and_compares_it_with_gpt2() {
    let out = run("ch06_tokenisation");
    // Bytes and the hand-worked BPE.
    assert_contains_ch06(&out, "'😀' U+1F600 → UTF-8 [240, 159, 152, 128] (4 bytes)");
    assert_contains_ch06(&out, "merge 256 = a + a = \"aa\" (seen 4 times) → ZabdZabac");
    assert_contains_ch06(&out, "merge 257 = a + b = \"ab\" (seen 2 times) → ZYdZYac");
    assert_contains_ch06(&out, "merge 258 = Z + Y = \"aaab\" (seen 2 times) → XdXac");
    assert_contains_ch06(&out, "encode(\"aaabdaaabac\") = [258, 100, 258, 97, 99]");
    // The built-in text (the book's first chapters, which change as the book is edited, so only
    // the shape is pinned here): a word is cut into fewer pieces as merges are learned.
    assert_contains_ch06(&out, "0 merges (vocab  257): ␣ | g | r | a | d | i | e | n | t | s");
    let pieces: Vec<usize> =
        out.lines().filter(|l| l.contains(" merges (vocab ")).map(|l| l.matches(" | ").count() + 1).collect();
    assert_eq!(pieces.len(), 6, "six vocabulary sizes:\n{out}");
    assert!(pieces.windows(2).all(|w| w[1] <= w[0]), "more merges never mean more pieces: {pieces:?}");
    assert!(pieces[5] <= 2, "at vocab 1000, \" gradients\" is at most two tokens: {pieces:?}");
    // GPT-2's ids.
    assert_contains_ch06(&out, "gpt2 ids: [15496, 995, 11, 825, 277, 7, 87, 2599, 1441, 2124]");
    // Nothing unknown, exact round trips, a compact vocabulary, a file that loads back.
    for name in ["bytes", "bpe", "gpt2"] {
        assert_contains_ch06(&out, &format!("random Unicode strings that {name} round-trips exactly: 1000 of 1000"));
    }
    assert_contains_ch06(&out, "(0 padding, 1 unknown)");
    assert_contains_ch06(&out, "loaded back, it encodes the text to the same ids: true");
    assert!(!out.contains(": false"), "every fact holds:\n{out}");
    assert_contains_ch06(&out, "every fact above holds.");
}

fn assert_contains_ch07(out: &str, needle: &str) {
    assert_contains(out, needle, "ch07");
}

#[test]
fn ch07_batches_pad_and_mask_and_padding_never_counts() {
    let started = std::time::SystemTime::now();
    let out = run("ch07_data");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch07: a stated fact does not hold:\n{out}");
    assert_contains_ch07(&out, "every fact above holds");

    // 2. Diversity: every domain has no duplicates among 1,000 and mostly unseen 8-grams;
    // the toy template repeats itself, and with frozen slots it is one sentence.
    for name in ["code", "math", "story", "science", "psychology", "history", "medicine", "business", "sentiment"] {
        let row = out
            .lines()
            .find(|l| fields(l).first() == Some(&name) && fields(l).len() == 5)
            .unwrap_or_else(|| panic!("no diversity row for {name}:\n{out}"));
        let f = fields(row);
        let duplicates: f64 = f[3].trim_end_matches('%').parse().expect("a share");
        let unseen: f64 = f[4].trim_end_matches('%').parse().expect("a share");
        assert!(duplicates < 1.0 && unseen > 50.0, "ch07: {name} is not diverse enough: {row}");
    }
    let toy = fields(line(&out, "toy template, random slots"));
    let toy_duplicates: f64 = toy[6].trim_end_matches('%').parse().expect("a share");
    assert!((20.0..40.0).contains(&toy_duplicates), "ch07: 1,000 draws of 1,248 sentences repeat ~30 %: {toy:?}");
    let frozen = fields(line(&out, "toy template, slots frozen"));
    assert_eq!(&frozen[6..], ["99.90%", "0.0%"], "ch07: a frozen template is one sentence");

    // 4. The batch: each row's real positions are its tokens − 1 (one is only a target), at most
    // 128, and the rest of the 128 are padding.
    let table = out.split("row  domain      tokens  real positions  padding").nth(1).expect("the batch table");
    let rows: Vec<Vec<usize>> = table
        .lines()
        .skip(1)
        .take(9)
        .map(|l| {
            let f = fields(l);
            [f[2], f[3], f[4]].iter().map(|v| v.parse().expect("counts")).collect()
        })
        .collect();
    assert_eq!(rows.len(), 9, "one row per domain");
    for r in &rows {
        let (tokens, real, padding) = (r[0], r[1], r[2]);
        assert_eq!(real, (tokens - 1).min(128), "ch07: {r:?}");
        assert_eq!(real + padding, 128, "ch07: {r:?}");
    }
    assert!(rows.iter().any(|r| r[2] > 0), "ch07: the batch should hold some padding");
    let padding_share = number_after(line(&out, "real positions of 1152"), ": ");

    // 5. Padding does not count: the loss and gradient equal the unpadded ones.
    let delta = line(&out, "|Δ loss| = ");
    assert!(number_after(delta, "|Δ loss| = ") < 1e-12, "ch07: {delta}");
    assert!(number_after(delta, "every gradient entry = ") < 1e-12, "ch07: {delta}");
    let accuracy = line(&out, "padding counted ");
    assert_eq!(number_after(accuracy, "padding counted "), padding_share, "the always-pad score is the padding share");
    assert_eq!(number_after(accuracy, "padding ignored "), 0.0);
    let attention: Vec<Vec<&str>> =
        out.lines().map(fields).filter(|f| f.len() == 3 && (f[0] == "bidirectional" || f[0] == "causal")).collect();
    assert_eq!(attention.len(), 4, "ch07: two kinds of attention, with and without the key mask:\n{out}");
    for f in &attention {
        let d: f64 = f[2].parse().expect("a difference");
        if f[..2] == ["bidirectional", "no"] {
            assert!(d > 1e-3, "ch07: unmasked bidirectional attention should read the padding: {f:?}");
        } else {
            assert!(d < 1e-12, "ch07: {f:?}");
        }
    }

    // 6. Balanced sampling: 2 of each of 4 domains per batch of 8; shuffled leaves gaps.
    let balanced = out.split("balanced: 384 sequences drawn, 48 batches").nth(1).expect("the balanced epoch");
    for l in balanced.lines().skip(2).take(5) {
        assert_eq!(&fields(l)[1..], ["2", "2", "2", "2"], "ch07: {l}");
    }
    assert_contains_ch07(&out, "batches with no business sequence: 0 of 48");
    assert_contains_ch07(&out, "business 96 (12)");

    // 7. IDX, written and read back; the normalisation; errors naming the file.
    assert_contains_ch07(&out, "header 00 00 08 03 00 00 00 03 00 00 00 1c 00 00 00 1c");
    assert_contains_ch07(&out, "header 00 00 08 01 00 00 00 03   (magic 0x00000801, dim 3), data 01 00 07");
    assert_contains_ch07(&out, "x (3, 784), labels [1, 0, 7]");
    assert_contains_ch07(&out, "pixel 0 → -0.4242   pixel 33 → -0.0042   pixel 255 → 2.8215");
    assert_contains_ch07(&out, "wrong-magic-idx3-ubyte: wrong magic number 0x00000801");
    assert_contains_ch07(&out, "truncated-idx3-ubyte: truncated: the header says [3, 28, 28] = 2352 bytes");
    assert_contains_ch07(&out, "2 labels, but");

    // 8. .npy round trip.
    assert_contains_ch07(&out, "{'descr': '|u1', 'fortran_order': False, 'shape': (9, 128)}");
    assert_contains_ch07(&out, "ids, mask and images read back from .npy exactly: true");

    // The pictures: written by this run, and PNGs.
    let pngs: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("wrote ")).filter(|p| p.ends_with(".png")).collect();
    assert_eq!(pngs.len(), 4, "ch07 draws the overlap, the batch ids, its mask and the attention masks:\n{out}");
    for png in pngs {
        // The example writes relative to its working directory, which is this test's.
        let path = Path::new(png);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("ch07: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch07: {png} is not a PNG");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("an mtime");
        assert!(modified >= started - std::time::Duration::from_secs(2), "ch07: {png} was not written by this run");
    }
}

#[test]
fn ch11_resume_is_exact_saves_are_atomic_and_parts_load_by_name() {
    let out = run("ch11_checkpoints");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch11: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch11");
    // 1. The layout.
    assert_contains(&out, "54 49 4e 59 4d 4f 45 00  magic \"TINYMOE\\0\"", "ch11");
    assert_contains(&out, "01 00 00 00              format version 1", "ch11");
    assert_contains(&out, "embed.tok              shape [256, 32]  offset 25", "ch11");
    // 3. Exact resume: every row of the side-by-side table has the same bits.
    let steps = number_after(line(&out, "== 3. Exact resume: "), "== 3. Exact resume: ") as usize;
    let rows: Vec<Vec<&str>> = out
        .split(" step   straight through")
        .nth(1)
        .expect("the side-by-side table")
        .lines()
        .skip(1)
        .take(6)
        .map(fields)
        .collect();
    assert_eq!(rows.last().map(|r| r[0]), Some(steps.to_string().as_str()), "ch11: the table ends at the last step");
    for r in &rows {
        assert_eq!((r[1], r[3]), (r[2], "true"), "ch11: a resumed loss differs: {r:?}");
    }
    assert_contains(&out, &format!("all {steps} step losses bit-identical: true"), "ch11");
    // Each piece of the state matters: leaving one out changes the run from a given step.
    let n = steps / 2;
    for (what, step) in [
        ("(nothing: the full state)", "none".to_string()),
        ("the optimiser (fresh Adam moments", format!("step {}", n + 2)),
        ("the dropout generator (re-seeded)", format!("step {}", n + 1)),
        ("the data order (epoch generator re-seeded)", format!("step {}", n + 1)),
    ] {
        assert!(line(&out, what).contains(&format!(" {step} ")), "ch11: {what}: {}", line(&out, what));
    }
    // 4–6.
    assert_contains(
        &out,
        "tensor blocks.0.attn.q.w has shape [32, 32], the model's blocks.1.attn.q.w is [64, 64]",
        "ch11",
    );
    assert_contains(&out, "(it has: embed, blocks.0, blocks.1, ln_f)", "ch11");
    assert_contains(&out, "the same seed on 1 and 4 threads gives bit-identical losses: true", "ch11");
    assert_contains(&out, "the gradient of blocks.1.attn.v.w became NaN at step ", "ch11");
}

#[test]
fn ch10_sequence_and_domain_routing_and_interventions() {
    let out = run("ch10_routing");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch10: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch10");
    // Padding stays out of the pooled mean; forgetting the mask changes the router input.
    assert!(number_after(line(&out, "router(mean of the"), "max |Δ| = ") < 1e-5, "ch10:\n{out}");
    assert!(number_after(line(&out, "mask forgotten"), "max |Δ| = ") > 1e-3, "ch10:\n{out}");
    // Domain routing: one expert row per real token at every expert count; dense grows with E.
    let work: Vec<Vec<&str>> = out.lines().map(fields).filter(|f| f.len() == 7 && f[1] == "domain").collect();
    assert_eq!(work.len(), 3, "ch10: three expert counts:\n{out}");
    assert!(work.iter().all(|f| f[6] == "1.00"), "ch10: {work:?}");
    // The PNGs are PNGs.
    let pngs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("wrote ")).collect();
    assert_eq!(pngs.len(), 2, "ch10:\n{out}");
    for png in pngs {
        let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("ch10: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch10: {png} is not a PNG");
    }
}

/// Every PNG a run announced (`wrote PATH`) is a PNG written by that run.
fn assert_fresh_pngs(out: &str, expected: usize, started: std::time::SystemTime, example: &str) {
    let pngs: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("wrote ")).filter(|p| p.ends_with(".png")).collect();
    assert_eq!(pngs.len(), expected, "{example} draws {expected} pictures:\n{out}");
    for png in pngs {
        let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{example}: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{example}: {png} is not a PNG");
        let modified = std::fs::metadata(png).and_then(|m| m.modified()).expect("an mtime");
        assert!(
            modified >= started - std::time::Duration::from_secs(2),
            "{example}: {png} was not written by this run"
        );
    }
}

#[test]
fn ch08_dense_moe_backward_checks_pass_and_the_mixture_beats_one_expert() {
    let started = std::time::SystemTime::now();
    let out = run("ch08_moe");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 90, "ch08 should run at least 90 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch08: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    for name in [
        "toy.dg",
        "toy.dz",
        "toy.dW_gate",
        "layer.noisy.router.noise.w",
        "mixture.dx",
        "classifier.moe.router.net.layers.1.w",
    ] {
        report_line(&out, name);
    }
    assert!(rel_err(line(&out, "caught toy.no_sum.dz")) > 1e-2, "ch08: the broken softmax step is caught");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch08: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch08");
    assert_contains(&out, "moe::layer::forward: y = [1.3649, 2.0000], gates = [0.8176, 0.1824]", "ch08");
    // The trained mixture: far better than one of its experts, and the metrics are in range.
    let alone = number_after(line(&out, "one expert alone"), "test accuracy ");
    let mixed = number_after(line(&out, "4 such experts mixed"), "test accuracy ");
    assert!(mixed > 90.0 && mixed > alone + 10.0, "ch08: one expert {alone}%, the mixture {mixed}%");
    let spec_line = line(&out, "specialisation index = ");
    let spec: f64 = spec_line.rsplit(": ").next().and_then(|v| v.trim_end_matches(')').parse().ok()).expect(spec_line);
    assert!((0.0..=1.0).contains(&spec), "ch08: specialisation index {spec}");
    assert_fresh_pngs(&out, 2, started, "ch08");
}

#[test]
fn ch09_topk_dispatch_capacity_losses_and_collapse_with_its_cure() {
    let started = std::time::SystemTime::now();
    let out = run("ch09_topk");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 60, "ch09 should run at least 60 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch09: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty(), "{out}");
    for name in
        ["routing.top2.dh", "top2.ff_noisy.router.noise.w", "classifier.moe.router.net.layers.0.w", "loss.switch.dz"]
    {
        report_line(&out, name);
    }
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch09: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch09");
    assert_contains(&out, "chosen [0, 1], gates [0.7311, 0.2689, 0.0000, 0.0000]", "ch09");
    assert_contains(&out, "Stats: calls [1, 1, 1, 0]", "ch09");
    // Capacity ⌈16·c⌉: every row is served or dropped, and a smaller factor never drops fewer.
    let table: Vec<Vec<&str>> = out
        .lines()
        .map(fields)
        .filter(|f| f.len() >= 4 && ["none", "2", "1.25", "1", "0.5"].contains(&f[0]) && f.last() != Some(&"="))
        .collect();
    assert_eq!(table.len(), 5, "ch09: five capacity factors:\n{out}");
    let dropped: Vec<usize> = table.iter().map(|f| f.last().and_then(|d| d.parse().ok()).expect("a count")).collect();
    assert!(dropped.windows(2).all(|w| w[0] <= w[1]) && dropped[0] == 0, "ch09: dropped {dropped:?}");
    // The Switch loss by hand.
    assert_contains(&out, "= α = 0.0100;  computed 0.0100", "ch09");
    assert_contains(&out, "= α·N = 0.0400;  computed 0.0400", "ch09");
    // Collapse and cure: the smallest expert's share of assignments in the 2-layer-router runs.
    let loads: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("share of assignments (load)")).collect();
    assert_eq!(loads.len(), 2, "ch09: two settings:\n{out}");
    let min_share = |cells: &str| -> f64 {
        cells.split_whitespace().map(|v| v.parse::<f64>().expect("a share")).fold(f64::INFINITY, f64::min)
    };
    let runs: Vec<f64> = loads[1].split('[').skip(1).map(|c| min_share(c.split(']').next().expect("cells"))).collect();
    assert!(runs[0] < 0.1 && runs[1] > 0.15, "ch09: no collapse-and-cure in {}", loads[1]);
    assert_fresh_pngs(&out, 3, started, "ch09");
}
