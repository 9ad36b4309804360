//! Chapter 18 — past one laptop: the same model in PyTorch (notebooks-md/18-past-one-laptop.md).
//!
//! Trains a small domain-routed MoE LM, exports it for PyTorch (the weights under `state_dict`
//! names, `config.json`, and a reference batch with everything tinymoe computes on it), and —
//! when a Python with torch is there (`$TINYMOE_TORCH_PYTHON`, else `target/ci-venv/bin/python`,
//! which `.ci/run` installs) — proves `python/tinymoe_torch` computes the same, shows that a
//! broken twin fails the proof, continues the training with `torchrun` on two CPU processes,
//! imports the result back and analyses it here. Without torch it says so and stops after the
//! export.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch18_torch`

#[path = "common/facts.rs"]
mod facts;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tinymoe::run::moe_lm::{self, preset_moe_lm_quick};
use tinymoe::run::settings::RoutingChoice;
use tinymoe::run::{saved, Quiet};

/// Where everything goes (scratch, not part of the repository).
const OUT_DIR: &str = "target/examples-out/ch18";

/// The Python to run the twin with, if it has torch.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("TINYMOE_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/ci-venv/bin/python"));
    let ok = Command::new(&candidate).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(candidate)
}

/// Runs a Python script of the repository; returns (success, stdout + stderr).
fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(program)
        .args(args)
        .env("PYTHONPATH", "python")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn main() -> tinymoe::Result<()> {
    let start = Instant::now();
    let mut facts = facts::Facts::default();
    let out = Path::new(OUT_DIR);
    let _ = std::fs::remove_dir_all(out);

    println!("== 1. a domain-routed MoE LM, trained here (4 domains, 4 expert MLPs, 2 epochs)");
    let mut spec = preset_moe_lm_quick();
    spec.routing = RoutingChoice::Domain;
    spec.balance_loss = 0.0;
    spec.z_loss = 0.0;
    let trained = moe_lm::run(&spec, &out.join("run"), None, false, &mut Quiet)?;
    let ckpt = trained.checkpoint.clone();
    println!(
        "   {} — validation loss {:.4} nats/byte",
        spec.describe(),
        trained.history.epochs.last().map_or(f64::NAN, |e| e.val.loss)
    );

    println!("\n== 2. tinymoe export --out DIR: the weights for PyTorch, and a reference batch");
    let export = out.join("export");
    let done = tinymoe::twin::export(&ckpt, &export, None)?;
    for path in &done.wrote {
        println!("   wrote {}", path.display());
    }
    for m in done.mapping.iter().filter(|m| m.ours.starts_with("moe.router") || m.ours.starts_with("head")) {
        let note = if m.transposed { "  (transposed: ours is [d_in, d_out])" } else { "" };
        println!("   {:<34} ← {:<24} {:?}{note}", m.pytorch, m.ours, m.shape);
    }
    facts.check("the export folder holds the weights, config.json and the reference batch", done.wrote.len() == 3);
    let bytes = std::fs::read(export.join("reference.safetensors")).map_err(|e| tinymoe::Error::io(&export, e))?;
    let reference = safetensors::SafeTensors::deserialize(&bytes).expect("tinymoe wrote it");
    let mut names: Vec<String> = reference
        .names()
        .into_iter()
        .filter(|n| !n.contains('.') || n.starts_with("loss") || n.starts_with("routing"))
        .map(str::to_string)
        .collect();
    names.sort();
    println!("   the reference batch: {} (and grad.NAME, after_step.NAME for every parameter)", names.join(", "));
    let scalar = |name: &str| {
        let t = reference.tensor(name).expect("in the reference");
        f32::from_le_bytes(t.data()[..4].try_into().expect("4 bytes"))
    };
    println!(
        "   loss.total {:.6} = loss.lm {:.6} + loss.domain {:.6} (λ = 1)",
        scalar("loss.total"),
        scalar("loss.lm"),
        scalar("loss.domain")
    );
    facts.check(
        "the reference's total loss is its LM loss plus the domain classifier's",
        (scalar("loss.total") - scalar("loss.lm") - scalar("loss.domain")).abs() < 1e-5,
    );

    let data = out.join("data");
    let wrote = tinymoe::twin::export_data(&ckpt, &data)?;
    println!("\n   tinymoe data export: {}/{{{}}}", data.display(), wrote.join(", "));

    let Some(py) = python() else {
        println!(
            "\n== 3–5 skipped: no Python with torch (set TINYMOE_TORCH_PYTHON, or run .ci/run to make target/ci-venv)"
        );
        facts.finish(Some(start.elapsed().as_secs_f64()));
        return Ok(());
    };
    let export_s = export.to_str().expect("a UTF-8 path");
    println!("\n== 3. python python/check_equal.py {export_s}");
    let (ok, text) = run(&py, &["python/check_equal.py", export_s]);
    for line in text.lines().filter(|l| !l.starts_with("PASS  after_step.") && !l.starts_with("PASS  grad.")) {
        println!("   {line}");
    }
    facts.check("PyTorch computes what tinymoe computes (every check passes)", ok);
    let (broken, text) = run(&py, &["python/check_equal.py", export_s, "--doctor", "transpose"]);
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).take(3).collect();
    println!("   with --doctor transpose (one weight loaded transposed): {}", failed.join(" | "));
    facts.check("a twin with one matrix transposed fails the check", !broken);

    println!("\n== 4. torchrun --nproc_per_node 2 scripts/train_torch.py (DistributedDataParallel, gloo on CPU)");
    let torchrun = py.with_file_name("torchrun");
    let trained_dir = out.join("torch");
    let (ok, text) = run(
        &torchrun,
        &[
            "--standalone",
            "--nproc_per_node",
            "2",
            "scripts/train_torch.py",
            export_s,
            "--data",
            data.to_str().expect("UTF-8"),
            "--out",
            trained_dir.to_str().expect("UTF-8"),
            "--steps",
            "20",
        ],
    );
    for line in text.lines().filter(|l| {
        l.starts_with("step 1/") || l.starts_with("step 20/") || l.starts_with("loss ") || l.starts_with("ranks")
    }) {
        println!("   {line}");
    }
    facts.check("torchrun trained on two processes", ok);
    let ranks: serde_json::Value = std::fs::read(trained_dir.join("ranks.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let sums = ranks["checksums"].as_array().cloned().unwrap_or_default();
    facts.check("both ranks end with the same weights", sums.len() == 2 && sums[0] == sums[1]);

    println!("\n== 5. tinymoe import, then tinymoe analyse on the model trained in PyTorch");
    let back = out.join("back.ckpt");
    let imported = saved::import(&trained_dir.join("model.safetensors"), &ckpt, &back, false)?;
    println!("   {} of {} tensors changed in PyTorch", imported.changed.len(), imported.tensors);
    let before = moe_lm::analyse(&ckpt, &out.join("analysis-before"))?;
    let after = moe_lm::analyse(&back, &out.join("analysis-after"))?;
    println!(
        "   held-out loss: {:.4} nats/byte before, {:.4} after 20 steps in PyTorch",
        before.val.loss, after.val.loss
    );
    println!("   {}", after.wrote);
    facts.check("the model continued in PyTorch has a lower held-out loss here", after.val.loss < before.val.loss);
    facts.finish(Some(start.elapsed().as_secs_f64()));
    Ok(())
}
