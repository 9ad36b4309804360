//! `tinymoe train moe` as a user meets it: a quick run writes its results and a checkpoint
//! that `inspect` reads; Ctrl-C saves, `--resume` finishes, and the metrics equal those of a
//! run that was never stopped; bad settings are one-line errors naming the key and range.

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::path::Path;
use std::process::{Command, Stdio};

/// metrics.csv without the speed column (timings differ between runs; losses must not).
fn losses(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let speed = header.iter().position(|h| *h == "tokens_per_s").unwrap();
    lines
        .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != speed).map(|(_, v)| v).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn quick_run_writes_results_and_a_checkpoint_inspect_reads() {
    let dir = tmp_dir("quick");
    let out = dir.to_str().unwrap();
    let o = tinymoe(&["train", "moe", "--quick", "--threads", "1", "--out", out]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("validation loss") && text.contains("top-expert share"), "{text}");
    for f in [
        "config.toml",
        "config.json",
        "metrics.csv",
        "loss_curve.png",
        "routing_mean_gate.png",
        "routing_top_expert.png",
        "tokens.txt",
        "model.ckpt",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert_eq!(losses(&dir).len(), 2, "two epochs");
    let i = tinymoe(&["inspect", dir.join("model.ckpt").to_str().unwrap()]);
    assert!(i.status.success(), "{}", stderr(&i));
    let shown = stdout(&i);
    assert!(shown.contains("kind            moe-lm"), "{shown}");
    assert!(shown.contains("2 epoch(s) finished"), "{shown}");
    assert!(shown.contains("moe.experts.3."), "{shown}");
    // The saved config.toml runs the same settings again.
    let again = dir.join("again");
    let o = tinymoe(&[
        "train",
        "moe",
        "--config",
        dir.join("config.toml").to_str().unwrap(),
        "--threads",
        "1",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(losses(&again), losses(&dir), "config.toml reproduces the run");
}

#[test]
fn ctrl_c_then_resume_equals_a_run_never_stopped() {
    let dir = tmp_dir("sigint");
    let stopped = dir.join("stopped");
    let args = |out: &Path| -> Vec<String> {
        ["train", "moe", "--quick", "--epochs", "40", "--threads", "1", "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_tinymoe"))
        .args(args(&stopped))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = stopped.join("model.ckpt");
    let started = std::time::Instant::now();
    while !ckpt.exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ckpt.exists(), "the first epoch's checkpoint appears");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert!(stdout(&o).contains("interrupted: saved the run"), "{}", stdout(&o));
    let shown = stdout(&tinymoe(&["inspect", ckpt.to_str().unwrap()]));
    assert!(shown.contains(", interrupted"), "{shown}");

    let r = tinymoe(&[
        "train",
        "moe",
        "--resume",
        ckpt.to_str().unwrap(),
        "--threads",
        "1",
        "--out",
        stopped.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "stderr: {}", stderr(&r));
    assert!(stdout(&r).contains("resuming at epoch"), "{}", stdout(&r));

    let whole = dir.join("whole");
    let w = tinymoe(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(w.status.success(), "{}", stderr(&w));
    assert_eq!(losses(&stopped).len(), 40);
    assert_eq!(losses(&stopped), losses(&whole), "interrupted + resumed = never stopped, every epoch's losses");
}

#[test]
fn bad_settings_are_one_line_errors_naming_the_key() {
    let dir = tmp_dir("bad");
    let out = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "moe", "--quick", "--out", out];
        args.extend_from_slice(extra);
        tinymoe(&args)
    };
    assert_clean_error(&run(&["--top-k", "5"]), &["top_k = 5: must be in 1..=4"]);
    assert_clean_error(&run(&["--top-k", "0"]), &["top_k = 0"]);
    assert_clean_error(&run(&["--routing", "random"]), &["routing"]);
    assert_clean_error(&run(&["--domains", "code,poetry"]), &["poetry"]);
    assert_clean_error(&run(&["--domains", "code,code"]), &["listed twice"]);
    assert_clean_error(&run(&["--routing", "domain", "--experts", "3"]), &["one expert per domain"]);
    assert_clean_error(&run(&["--lr", "-1"]), &["lr = -1"]);
    assert_clean_error(&run(&["--capacity-factor", "0"]), &["capacity_factor"]);

    // A config file: the error names the file, the line and the range.
    let file = dir.join("bad.toml");
    std::fs::write(&file, "preset = \"moe-lm-quick\"\nexperts = 2\ntop_k = 3\n").unwrap();
    let o = tinymoe(&["train", "moe", "--config", file.to_str().unwrap(), "--out", out]);
    assert_clean_error(&o, &["bad.toml"]);
    assert!(stderr(&o).contains("top_k = 3: must be in 1..=2"), "{}", stderr(&o));
    let check = tinymoe(&["config", "check", file.to_str().unwrap()]);
    assert_clean_error(&check, &["top_k = 3"]);
    std::fs::write(&file, "experts = 8\ntop_k = 3\nrouting = \"sequence\"\n").unwrap();
    let check = tinymoe(&["config", "check", file.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("`tinymoe train moe`"), "{}", stdout(&check));

    // A resumed run keeps its settings: flags that would change them are refused by the parser.
    let q = tinymoe(&["train", "moe", "--quick", "--threads", "1", "--out", out]);
    assert!(q.status.success(), "{}", stderr(&q));
    let ckpt = dir.join("model.ckpt");
    let o = tinymoe(&["train", "moe", "--resume", ckpt.to_str().unwrap(), "--top-k", "1", "--out", out]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("'--resume <RESUME>' cannot be used with '--top-k <TOP_K>'"), "{}", stderr(&o));
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_clean_error(&tinymoe(&["train", "moe", "--resume", junk.to_str().unwrap(), "--out", out]), &["junk.ckpt"]);
    // A language model's checkpoint is not an MoE LM's.
    let lm = dir.join("lm");
    assert!(tinymoe(&["train", "lm", "--quick", "--out", lm.to_str().unwrap()]).status.success());
    assert_clean_error(
        &tinymoe(&["train", "moe", "--resume", lm.join("model.ckpt").to_str().unwrap(), "--out", out]),
        &["model.ckpt"],
    );
}

#[test]
fn analyse_routes_the_runs_own_held_out_data_and_agrees_with_its_last_epoch() {
    let dir = tmp_dir("analyse");
    let run = dir.join("run");
    let o = tinymoe(&["train", "moe", "--quick", "--threads", "1", "--out", run.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let ckpt = run.join("model.ckpt");
    let out = dir.join("analysis");
    let o = tinymoe(&["analyse", ckpt.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    // The per-domain loss of the analysis is the last epoch's validation loss: the same
    // held-out sequences, the same evaluation.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    let routing = std::fs::read_to_string(out.join("routing.csv")).unwrap();
    let mut rows = 0;
    for line in routing.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let col = header.iter().position(|h| *h == format!("val_loss_{}", f[0])).unwrap();
        let (a, b): (f64, f64) = (f[1].parse().unwrap(), last[col].parse().unwrap());
        assert!((a - b).abs() < 1e-9, "{}: analyse {a} vs the run's {b}", f[0]);
        rows += 1;
    }
    assert_eq!(rows, 4, "{routing}");
    assert!(out.join("routing_top_expert.png").is_file() && out.join("report.md").is_file());
    // A classifier still needs its held-out set named.
    let cls = dir.join("cls");
    let o = tinymoe(&["train", "--preset", "spirals-moe", "--epochs", "1", "--out", cls.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_clean_error(&tinymoe(&["analyse", cls.join("model.ckpt").to_str().unwrap()]), &["--data", "classifier"]);
}

#[test]
fn bidirectional_experts_leak_the_target_and_need_stack_experts() {
    let dir = tmp_dir("bidirectional");
    assert_clean_error(
        &tinymoe(&["train", "moe", "--quick", "--bidirectional", "--out", dir.join("x").to_str().unwrap()]),
        &["bidirectional", "stack"],
    );
    // A run records the arm in its settings (and its checkpoint's model config), so a report
    // or a resumed run cannot mistake it for a causal one; what the flag changes in the model is
    // tested against the logits in tests/gradcheck_moe_lm.rs.
    let out = dir.join("leaking");
    let o = tinymoe(&[
        "train",
        "moe",
        "--quick",
        "--expert",
        "stack",
        "--bidirectional",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let toml = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(toml.lines().any(|l| l.trim() == "bidirectional = true"), "{toml}");
    let o = tinymoe(&["inspect", out.join("model.ckpt").to_str().unwrap()]);
    assert!(
        stdout(&o).contains("\"bidirectional_experts\":true")
            || stdout(&o).contains("bidirectional_experts: true")
            || stdout(&o).contains("bidirectional_experts"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_moe_lm_on_gpt2_tokens_has_gpt2s_vocabulary_plus_padding_and_generates_text() {
    let dir = tmp_dir("gpt2");
    let out = dir.join("run");
    let o = tinymoe(&[
        "train",
        "moe",
        "--quick",
        "--epochs",
        "1",
        "--tokenizer",
        "gpt2",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let o = tinymoe(&["inspect", out.join("model.ckpt").to_str().unwrap()]);
    let text = stdout(&o);
    assert!(text.contains("\"vocab\": 50258") && text.contains("\"pad_id\": 50257"), "{text}");
    // The listing shows whole GPT-2 tokens, each with its expert.
    let listing = std::fs::read_to_string(out.join("tokens.txt")).unwrap();
    assert!(listing.lines().any(|l| l.starts_with("  tokens  ") && l.contains("def[")), "{listing}");
    let o = tinymoe(&[
        "generate",
        "--model",
        out.join("model.ckpt").to_str().unwrap(),
        "--prompt",
        "def load",
        "--tokens",
        "5",
        "--color",
        "never",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    // Without the `[eN]` tags, the text starts with the prompt.
    let text = stdout(&o);
    let mut plain = String::new();
    let mut rest = text.lines().nth(1).unwrap_or_default();
    while let Some(i) = rest.find("[e") {
        plain += &rest[..i];
        rest = rest[i..].split_once(']').map_or("", |(_, r)| r);
    }
    plain += rest;
    assert!(plain.starts_with("def load"), "{text}");
    // A tokeniser that does not exist is refused before anything trains.
    assert_clean_error(
        &tinymoe(&["train", "moe", "--quick", "--tokenizer", "gpt3", "--out", dir.join("x").to_str().unwrap()]),
        &["tokenizer", "gpt3"],
    );
}
