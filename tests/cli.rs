//! The `tinymoe` binary as a user meets it: --help, the demo, and one-line errors with a
//! non-zero exit on bad input (never a panic or a backtrace).

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn help_explains_every_subcommand() {
    let o = tinymoe(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for cmd in ["demo", "train", "generate", "attention", "bench"] {
        assert!(out.contains(cmd), "--help lists {cmd}: {out}");
    }
    let o = tinymoe(&["train", "--help"]);
    assert!(stdout(&o).contains("--lr") && stdout(&o).contains("--preset"));
}

#[test]
fn unknown_preset_names_the_value_and_the_choices() {
    let out = tmp_dir("preset");
    let o = tinymoe(&["train", "--preset", "nope", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["unknown preset \"nope\""]);
    assert!(stderr(&o).contains("spirals-mlp"));
}

#[test]
fn negative_learning_rate_is_rejected() {
    let out = tmp_dir("lr");
    let o = tinymoe(&["train", "--lr", "-0.1", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["lr = -0.1"]);
}

#[test]
fn dropout_of_one_is_rejected() {
    let out = tmp_dir("dropout");
    let o = tinymoe(&["train", "--dropout", "1", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["dropout = 1"]);
}

#[test]
fn missing_data_file_names_the_file() {
    let out = tmp_dir("missing");
    let o = tinymoe(&["train", "--data", "/no/such/file.csv", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["/no/such/file.csv"]);
}

#[test]
fn malformed_csv_names_the_file_and_line() {
    let dir = tmp_dir("csv");
    let path = dir.join("bad.csv");
    std::fs::write(&path, "x1,x2,label\n0.1,0.2,0\n0.3,oops,1\n").unwrap();
    let o = tinymoe(&["train", "--data", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
    assert_clean_error(&o, &["bad.csv:3: column 2: \"oops\" is not a number"]);
    std::fs::write(&path, "0.1,0.2,0\n0.3,1\n").unwrap();
    let o = tinymoe(&["train", "--data", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
    assert_clean_error(&o, &["bad.csv:2: 2 columns, but earlier lines have 3"]);
    std::fs::write(&path, "0.1,0.2,-1\n").unwrap();
    let o = tinymoe(&["train", "--data", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
    assert_clean_error(&o, &["bad.csv:1: label \"-1\""]);
}

#[test]
fn train_on_a_csv_file_writes_results() {
    let dir = tmp_dir("train");
    let path = dir.join("xor.csv");
    let mut csv = String::from("a,b,label\n");
    for i in 0..200 {
        let (a, b) = ((i % 2) as f64, ((i / 2) % 2) as f64);
        csv +=
            &format!("{},{},{}\n", a + 0.01 * (i % 7) as f64, b - 0.01 * (i % 5) as f64, (a as usize) ^ (b as usize));
    }
    std::fs::write(&path, csv).unwrap();
    let out = dir.join("out");
    let o = tinymoe(&["train", "--data", path.to_str().unwrap(), "--epochs", "30", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("validation accuracy"));
    for f in ["config.json", "metrics.csv", "loss_curve.png", "regions.png"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 31, "a header and one line per epoch");
    let last_acc: f64 = metrics.lines().last().unwrap().split(',').nth(4).unwrap().parse().unwrap();
    assert!(last_acc > 0.95, "XOR learned: {last_acc}");
}

#[test]
fn quick_demo_ends_with_numbers_and_pictures() {
    let out = tmp_dir("demo");
    let o = tinymoe(&["demo", "--quick", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("validation accuracy") && text.contains("top-expert share"), "{text}");
    for f in [
        "spirals-mlp/loss_curve.png",
        "spirals-mlp/regions.png",
        "spirals-moe/routing.png",
        "moe-lm/routing_top_expert.png",
        "moe-lm/routing_mean_gate.png",
        "moe-lm/loss_curve.png",
    ] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{f} is a PNG");
    }
    // The MoE LM part: per-domain loss, the domain × expert table, a token listing per domain.
    assert!(text.contains("per domain") && text.contains("code") && text.contains("science"), "{text}");
    let tokens = std::fs::read_to_string(out.join("moe-lm/tokens.txt")).unwrap();
    for domain in ["code:", "math:", "story:", "science:"] {
        assert!(tokens.contains(domain), "tokens.txt lists a {domain} sample");
    }
    assert!(tokens.contains("  expert  "));
    // Every epoch saved a checkpoint that `inspect` reads and validates.
    let o = tinymoe(&["inspect", out.join("moe-lm/model.ckpt").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("moe.experts.3"), "{}", stdout(&o));
}

#[test]
fn bench_prints_one_json_line_in_the_shared_schema() {
    let o = tinymoe(&["bench", "--workload", "mlp-moe", "--threads", "1", "--steps", "3", "--warmup", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    for key in [
        "workload",
        "impl",
        "threads",
        "ms_per_step",
        "tokens_per_s",
        "loss_first",
        "loss_after_N_steps",
        "N",
        "n_params",
        "peak_rss_mb",
    ] {
        assert!(v.get(key).is_some(), "{key} in {line}");
    }
    assert_eq!(v["n_params"], 707500, "the same model as the PyTorch reference");
    assert_eq!(v["N"], 4);
}

#[test]
fn block_small_bench_builds_the_reference_model() {
    let o = tinymoe(&["bench", "--workload", "block-small", "--threads", "1", "--steps", "1", "--warmup", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON line");
    assert_eq!(v["n_params"], 2661632, "the same model as anchors/torch_ref.py");
    let loss = v["loss_first"].as_f64().unwrap();
    assert!((loss - (4096f64).ln()).abs() < 0.5, "random tokens start near ln 4096: {loss}");
}

#[test]
fn bench_unknown_workload_is_a_clean_error() {
    let o = tinymoe(&["bench", "--workload", "huge", "--threads", "1"]);
    assert_clean_error(&o, &["unknown workload \"huge\""]);
}

#[test]
fn unknown_optimizer_is_a_clean_error() {
    let out = tmp_dir("opt");
    let o = tinymoe(&["train", "--optimizer", "lion", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["unknown optimizer \"lion\""]);
}

/// Trains the quick LM once per test binary run into `dir` and returns the checkpoint.
fn quick_lm(dir: &std::path::Path) -> PathBuf {
    let o = tinymoe(&["train", "lm", "--quick", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("validation perplexity"), "{out}");
    for f in ["config.json", "metrics.csv", "loss_curve.png", "attention_layer0.png", "model.ckpt", "sample.txt"] {
        assert!(dir.join(f).exists(), "train lm wrote {f}");
    }
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("epoch,train_loss,val_loss,val_perplexity,tokens_per_s"), "{metrics}");
    dir.join("model.ckpt")
}

#[test]
fn train_lm_then_generate_and_draw_attention() {
    let dir = tmp_dir("lm");
    let ckpt = quick_lm(&dir);
    let ckpt = ckpt.to_str().unwrap();
    // Same seed: same text; the KV cache and full recompute agree.
    let args = ["generate", "--model", ckpt, "--prompt", "The model ", "--tokens", "40", "--seed", "5"];
    let a = tinymoe(&args);
    assert!(a.status.success(), "stderr: {}", stderr(&a));
    assert!(stdout(&a).starts_with("The model "), "{}", stdout(&a));
    assert_eq!(stdout(&a), stdout(&tinymoe(&args)), "same seed, same text");
    let recompute = tinymoe(&[&args[..], &["--recompute"]].concat());
    assert_eq!(stdout(&a), stdout(&recompute), "KV cache and full recompute agree");
    assert!(stderr(&a).contains("tokens/s"), "{}", stderr(&a));
    let other = tinymoe(&["generate", "--model", ckpt, "--prompt", "The model ", "--tokens", "40", "--seed", "6"]);
    assert_ne!(stdout(&a), stdout(&other), "another seed, another text");
    // Attention maps for a given input.
    let maps = dir.join("maps");
    let o = tinymoe(&["attention", "--model", ckpt, "--text", "the cat sat", "--out", maps.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(maps.join("attention_layer0.png").exists());
    // Bad requests.
    assert_clean_error(&tinymoe(&["generate", "--model", ckpt, "--temperature", "0"]), &["temperature"]);
    assert_clean_error(&tinymoe(&["generate", "--model", ckpt, "--prompt", ""]), &["prompt"]);
    let long = "x".repeat(100);
    assert_clean_error(&tinymoe(&["attention", "--model", ckpt, "--text", &long]), &["context length"]);
}

#[test]
fn generate_from_a_missing_or_broken_checkpoint_is_a_clean_error() {
    let dir = tmp_dir("badckpt");
    let missing = dir.join("missing.ckpt");
    assert_clean_error(&tinymoe(&["generate", "--model", missing.to_str().unwrap()]), &["missing.ckpt"]);
    let broken = dir.join("broken.ckpt");
    std::fs::write(&broken, b"TINYMOE\0 and then nothing useful").unwrap();
    assert_clean_error(&tinymoe(&["generate", "--model", broken.to_str().unwrap()]), &["broken.ckpt"]);
}

#[test]
fn train_lm_rejects_bad_shapes_and_files() {
    let dir = tmp_dir("lmbad");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    assert_clean_error(&tinymoe(&["train", "lm", "--quick", "--heads", "5", "--out", out]), &["heads = 5"]);
    assert_clean_error(&tinymoe(&["train", "lm", "--quick", "--seq", "0", "--out", out]), &["seq = 0"]);
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    assert_clean_error(
        &tinymoe(&["train", "lm", "--quick", "--text", latin1.to_str().unwrap(), "--out", out]),
        &["UTF-8"],
    );
    let short = dir.join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    assert_clean_error(
        &tinymoe(&["train", "lm", "--quick", "--text", short.to_str().unwrap(), "--out", out]),
        &["short.txt"],
    );
}

#[test]
fn train_lm_on_synthetic_domains_with_a_named_tokenizer() {
    let dir = tmp_dir("lmcorpus");
    let out = dir.to_str().unwrap();
    let o = tinymoe(&["train", "lm", "--quick", "--corpus", "code,math", "--samples", "60", "--out", out]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(stdout(&o).contains("synthetic samples of code, math"), "{}", stdout(&o));
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"corpus\"") && config.contains("\"tokenizer\": \"bytes\""), "{config}");
    let g = tinymoe(&[
        "generate",
        "--model",
        dir.join("model.ckpt").to_str().unwrap(),
        "--prompt",
        "def ",
        "--tokens",
        "5",
    ]);
    assert!(g.status.success(), "stderr: {}", stderr(&g));
    assert_clean_error(&tinymoe(&["train", "lm", "--quick", "--corpus", "poetry", "--out", out]), &["poetry"]);
    assert_clean_error(&tinymoe(&["train", "lm", "--quick", "--tokenizer", "morse", "--out", out]), &["morse"]);
}

/// Ctrl-C saves where the run stands and exits cleanly; `--resume` carries on from there.
#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run() {
    let dir = tmp_dir("sigint");
    let out = dir.to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tinymoe"))
        .args(["train", "lm", "--quick", "--epochs", "12", "--out", out])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = dir.join("model.ckpt");
    let started = std::time::Instant::now();
    while !ckpt.exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ckpt.exists(), "the first epoch's checkpoint appears");
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("interrupted: saved the run"), "{text}");
    let r = tinymoe(&["train", "lm", "--resume", ckpt.to_str().unwrap(), "--out", out]);
    assert!(r.status.success(), "stderr: {}", stderr(&r));
    assert!(stdout(&r).contains("resuming at epoch"), "{}", stdout(&r));
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 12, "all 12 epochs are in the metrics: {metrics}");
    // A resumed run keeps its saved settings: a flag that would change them is refused, named.
    let o = tinymoe(&["train", "lm", "--resume", ckpt.to_str().unwrap(), "--lr", "1", "--out", out]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("'--resume <RESUME>' cannot be used with '--lr <LR>'"), "{}", stderr(&o));
    // A weights-only or foreign file cannot be resumed.
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_clean_error(&tinymoe(&["train", "lm", "--resume", junk.to_str().unwrap(), "--out", out]), &["junk.ckpt"]);
}

/// `tinymoe data show … | head -1`: the reader closing the pipe early is not a crash.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tinymoe"))
        .args(["data", "show", "story", "--n", "400"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.status.success(), "{:?}: {err}", o.status);
}
