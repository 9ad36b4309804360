//! The PyTorch twin (`python/tinymoe_torch`) computes what tinymoe computes: for a checkpoint
//! of every kind and routing, `tinymoe export --out DIR` writes the weights and a reference
//! batch, and `python/check_equal.py DIR` must find PyTorch's logits, losses, routing and the
//! weights after one Adam step equal — and must fail when a weight is doctored, a matrix
//! transposed or a routing setting changed. Then `torchrun` trains an export on two CPU
//! processes and `tinymoe import` takes the result back.
//!
//! Needs a Python with torch, numpy and safetensors: `$TINYMOE_TORCH_PYTHON`, else
//! `target/ci-venv/bin/python` (which `.ci/run` installs). Without one the tests say so and
//! pass; with `TINYMOE_REQUIRE_TORCH=1` (set by `.ci/run` when its install worked) they fail.

mod common;

use common::cli::{s, stderr, stdout, tinymoe, tmp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python to run the twin with, or None (after saying why) when there is none.
fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidate = std::env::var_os("TINYMOE_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/ci-venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import torch, numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    let msg = format!(
        "no Python with torch, numpy and safetensors at {} (set TINYMOE_TORCH_PYTHON, or run .ci/run): \
         the PyTorch twin is NOT checked",
        candidate.display()
    );
    assert!(std::env::var_os("TINYMOE_REQUIRE_TORCH").is_none(), "{msg}");
    println!("note: {msg}");
    None
}

fn run_python(py: &Path, args: &[&str]) -> std::process::Output {
    Command::new(py)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("python"))
        .output()
        .expect("python runs")
}

fn train(args: &[&str], out: &Path) -> PathBuf {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--threads", "1", "--out", s(out)]);
    let o = tinymoe(&all);
    assert!(o.status.success(), "tinymoe {args:?}: {}", stderr(&o));
    out.join("model.ckpt")
}

fn export(ckpt: &Path, dir: &Path) {
    let o = tinymoe(&["export", "--model", s(ckpt), "--out", s(dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["model.safetensors", "config.json", "reference.safetensors"] {
        assert!(dir.join(f).is_file(), "export wrote no {f}");
    }
}

/// Every checkpoint kind and routing the twin covers: (name, tinymoe arguments).
const CASES: &[(&str, &[&str])] = &[
    ("lm", &["train", "lm", "--quick", "--epochs", "1"]),
    ("moe-token-topk", &["train", "moe", "--quick", "--epochs", "1"]),
    (
        "moe-token-switch-capacity",
        &["train", "moe", "--quick", "--epochs", "1", "--gating", "switch", "--top-k", "1", "--capacity-factor", "1.0"],
    ),
    ("moe-token-dense", &["train", "moe", "--quick", "--epochs", "1", "--gating", "dense"]),
    ("moe-sequence", &["train", "moe", "--quick", "--epochs", "1", "--routing", "sequence", "--top-k", "1"]),
    ("moe-domain", &["train", "moe", "--quick", "--epochs", "1", "--routing", "domain"]),
    ("moe-stack", &["train", "moe", "--quick", "--epochs", "1", "--expert", "stack"]),
    ("moe-stack-bidirectional", &["train", "moe", "--quick", "--epochs", "1", "--expert", "stack", "--bidirectional"]),
    ("classifier-mlp", &["train", "--preset", "spirals-mlp", "--epochs", "1"]),
    ("classifier-moe", &["train", "--preset", "spirals-moe", "--epochs", "1"]),
];

#[test]
fn pytorch_computes_what_tinymoe_computes_for_every_kind() {
    let Some(py) = python() else { return };
    let root = tmp_dir("twin-equal");
    // Settings no flag reaches: a noisy two-layer router with both entropy terms, from a file.
    let toml = root.join("noisy.toml");
    std::fs::write(
        &toml,
        "preset = \"moe-lm-quick\"\nnoisy = true\nrouter_hidden = 16\ntoken_entropy = 0.01\nbatch_entropy = -0.01\n",
    )
    .unwrap();
    let noisy: Vec<&str> = vec!["train", "moe", "--config", s(&toml), "--epochs", "1"];
    let mut failures = Vec::new();
    for (name, args) in CASES.iter().copied().chain([("moe-noisy-ff-router-entropies", noisy.as_slice())]) {
        let ckpt = train(args, &root.join(name));
        let dir = root.join(format!("{name}-export"));
        export(&ckpt, &dir);
        let o = run_python(&py, &["python/check_equal.py", s(&dir)]);
        println!("== {name}\n{}", stdout(&o));
        if !o.status.success() {
            failures.push(format!("{name}: {}{}", stdout(&o), stderr(&o)));
        }
    }
    assert!(failures.is_empty(), "PyTorch differs from tinymoe:\n{}", failures.join("\n"));
}

#[test]
fn the_equality_check_fails_on_a_doctored_model() {
    let Some(py) = python() else { return };
    let root = tmp_dir("twin-doctor");
    let ckpt = train(&["train", "moe", "--quick", "--epochs", "1"], &root.join("moe"));
    let dir = root.join("export");
    export(&ckpt, &dir);
    for doctor in ["weight", "transpose", "routing"] {
        let o = run_python(&py, &["python/check_equal.py", s(&dir), "--doctor", doctor]);
        assert!(
            !o.status.success(),
            "--doctor {doctor}: the check passed a broken model:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(
            !stderr(&o).contains("Traceback"),
            "--doctor {doctor} crashed instead of failing a check: {}",
            stderr(&o)
        );
    }
}

#[test]
fn torchrun_continues_an_export_on_two_processes_and_it_imports_back() {
    let Some(py) = python() else { return };
    let torchrun = py.with_file_name("torchrun");
    if !torchrun.is_file() {
        assert!(std::env::var_os("TINYMOE_REQUIRE_TORCH").is_none(), "no torchrun beside {}", py.display());
        println!("note: no torchrun beside {}: the distributed run is NOT checked", py.display());
        return;
    }
    let root = tmp_dir("twin-torchrun");
    let ckpt = train(&["train", "moe", "--quick", "--epochs", "1"], &root.join("moe"));
    let dir = root.join("export");
    export(&ckpt, &dir);
    let data = root.join("data");
    let o = tinymoe(&["data", "export", "--model", s(&ckpt), "--out", s(&data)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = root.join("torch");
    let o = Command::new(&torchrun)
        .args(["--standalone", "--nproc_per_node", "2", "scripts/train_torch.py", s(&dir)])
        .args(["--data", s(&data), "--out", s(&out), "--steps", "20"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("python"))
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let log = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "torchrun failed:\n{log}");
    // Both ranks hold the same weights at the end.
    let ranks: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("ranks.json")).unwrap()).unwrap();
    let sums: Vec<String> = ranks["checksums"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    assert_eq!(sums.len(), 2, "{ranks}");
    assert_eq!(sums[0], sums[1], "the two ranks' weights differ: {ranks}");
    // The loss fell: the first and last steps rank 0 printed.
    let losses = ranks["losses"].as_array().unwrap();
    let (first, last) = (losses[0].as_f64().unwrap(), losses[losses.len() - 1].as_f64().unwrap());
    assert!(last < first, "loss did not fall: {first} → {last}\n{log}");
    // And the weights come back into a checkpoint that tinymoe reads.
    let back = root.join("back.ckpt");
    let o = tinymoe(&["import", "--weights", s(&out.join("model.safetensors")), "--into", s(&ckpt), "--out", s(&back)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tinymoe(&["generate", "--model", s(&back), "--prompt", "def ", "--tokens", "8", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The routing analysis runs on the model trained elsewhere, and sees its new weights: its
    // held-out loss is not the exported model's.
    let analysed = |ckpt: &Path, name: &str| {
        let dir = root.join(name);
        let o = tinymoe(&["analyse", s(ckpt), "--out", s(&dir)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(dir.join("routing_top_expert.png").is_file() && dir.join("report.md").is_file());
        std::fs::read_to_string(dir.join("routing.csv")).unwrap()
    };
    assert_ne!(analysed(&ckpt, "analysis-before"), analysed(&back, "analysis-after"));
}
