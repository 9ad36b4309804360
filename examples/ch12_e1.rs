//! Chapter 12 — E1: an MNIST "0 or 7" expert transplanted into a 4-expert dense mixture
//! (notebooks-md/12-e1-mnist-transplant.md).
//!
//! Runs the E1 experiment's `quick` preset with seed 42 through the library
//! (`tinymoe::run::experiment::run`, the same call `tinymoe experiment run e1` makes): the
//! transplant, control (no transplant), slot3 (the expert in slot 3), selectivity (a "1 or 8"
//! expert) and dense arms. Prints the summary table and the report's verdicts, and copies the
//! transplant cell's pictures (framed digits, the two routing heatmaps, the share per epoch)
//! and the control's framed digits into the chapter's figures.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs real MNIST in data/mnist
//! (`bash scripts/fetch-data.sh`).
//! Run: `cargo run --release --example ch12_e1`

#[path = "common/facts.rs"]
mod facts;
#[path = "common/figures.rs"]
mod figures;

use std::path::Path;
use std::time::Instant;
use tinymoe::run::experiment::{self, Options, Preset};
use tinymoe::run::experiments::e1::E1;
use tinymoe::run::Quiet;

/// Where the experiment's results folder goes (scratch, not part of the repository).
const OUT_DIR: &str = "target/examples-out/ch12";

/// The rows of a CSV after its header, split on commas.
fn rows(path: &Path) -> tinymoe::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| tinymoe::Error::io(path, e))?;
    Ok(text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect())
}

fn main() -> tinymoe::Result<()> {
    let start = Instant::now();
    let mut facts = facts::Facts::default();
    let out = Path::new(OUT_DIR).to_path_buf();
    let opts = Options { preset: Preset::Quick, seeds: Some(vec![42]), arms: None, data: None, out: out.clone() };
    println!("== E1, quick preset, seed 42: `tinymoe experiment run e1 --seeds 42`");
    let run = experiment::run(&E1, &opts, &mut Quiet, None)?;
    print!("{}", experiment::wide_summary(&run, &[]).to_markdown());
    facts.check("every one of the 5 cells ran", run.cells.len() == 5 && run.failures().is_empty());

    // Every digit's top-gate shares are a distribution over the four experts.
    let mut sums_to_one = true;
    for arm in ["transplant", "control", "slot3", "selectivity"] {
        for r in rows(&out.join(arm).join("seed-42/top_share.csv"))? {
            let sum: f64 = r[2..].iter().map(|v| v.parse::<f64>().unwrap_or(f64::NAN)).sum();
            sums_to_one &= r.len() == 6 && (sum - 1.0).abs() < 1e-9;
        }
    }
    facts.check("each digit's top-gate shares sum to 1 in every mixture", sums_to_one);
    let get = |arm: &str, m: &str| run.get(arm, m).map_or(f64::NAN, |s| s.mean);
    facts.check(
        "switching the transplanted expert off costs more accuracy on 0s and 7s than on the rest",
        get("transplant", "acc_pair") - get("transplant", "off_acc_pair")
            > get("transplant", "acc_rest") - get("transplant", "off_acc_rest"),
    );

    let report = std::fs::read_to_string(out.join("report.md")).map_err(|e| tinymoe::Error::io(&out, e))?;
    println!("\n== the report's verdicts");
    for line in report.lines().filter(|l| l.starts_with("*Claim") || l.starts_with("*Is ") || l.starts_with("*Does ")) {
        println!("{line}\n");
    }

    for (arm, file, name) in [
        ("transplant", "digits.png", "ch12_digits_transplant.png"),
        ("transplant", "top_share.png", "ch12_top_share_transplant.png"),
        ("transplant", "mean_gate.png", "ch12_mean_gate_transplant.png"),
        ("transplant", "share_by_epoch.png", "ch12_share_by_epoch_transplant.png"),
        ("control", "digits.png", "ch12_digits_control.png"),
    ] {
        let from = out.join(arm).join("seed-42").join(file);
        let to = figures::path(name)?;
        std::fs::copy(&from, &to).map_err(|e| tinymoe::Error::io(&to, e))?;
        println!("wrote {}", figures::shown(&to));
    }
    facts.finish(Some(start.elapsed().as_secs_f64()));
    Ok(())
}
