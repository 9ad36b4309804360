//! Chapter 13 — E6: a top-2 MoE sentiment classifier with and without load balancing
//! (notebooks-md/13-e6-load-balancing.md).
//!
//! Runs the E6 experiment's `quick` preset with seed 42 through the library
//! (`tinymoe::run::experiment::run`, the same call `tinymoe experiment run e6` makes): eight
//! arms, α ∈ {0, 1e-3, 1e-2, 1e-1} × {linear gate, 2-layer gate}, and a dense MLP reference.
//! Prints the summary table, the verdicts of the report, and draws two figures: the share of
//! first choices per expert over training for the 2-layer gate without balancing and with
//! α = 0.1.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch13_e6`

#[path = "common/facts.rs"]
mod facts;
#[path = "common/figures.rs"]
mod figures;

use std::path::Path;
use std::time::Instant;
use tinymoe::run::experiment::{self, Options, Preset};
use tinymoe::run::experiments::e6::E6;
use tinymoe::run::Quiet;

/// Where the experiment's results folder goes (scratch, not part of the repository).
const OUT_DIR: &str = "target/examples-out/ch13";

fn main() -> tinymoe::Result<()> {
    let start = Instant::now();
    let mut facts = facts::Facts::default();
    let out = Path::new(OUT_DIR).to_path_buf();
    let opts = Options { preset: Preset::Quick, seeds: Some(vec![42]), arms: None, data: None, out: out.clone() };
    println!("== E6, quick preset, seed 42: `tinymoe experiment run e6 --seeds 42`");
    let run = experiment::run(&E6, &opts, &mut Quiet, None)?;
    print!("{}", experiment::wide_summary(&run, &[]).to_markdown());
    facts.check("every one of the 9 cells ran", run.cells.len() == 9 && run.failures().is_empty());

    // Each MoE cell's first-choice shares are a distribution over the four experts.
    let mut sums_to_one = true;
    for arm in run.arms.iter().filter(|a| *a != "dense") {
        let text = std::fs::read_to_string(out.join(arm).join("seed-42/epochs.csv"))
            .map_err(|e| tinymoe::Error::io(out.join(arm), e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let cols: Vec<usize> =
            (0..4).filter_map(|e| header.iter().position(|c| *c == format!("first_share_{e}"))).collect();
        for line in lines {
            let row: Vec<&str> = line.split(',').collect();
            let sum: f64 = cols.iter().map(|&c| row[c].parse::<f64>().unwrap_or(f64::NAN)).sum();
            sums_to_one &= cols.len() == 4 && (sum - 1.0).abs() < 1e-9;
        }
    }
    facts.check("every epoch's first-choice shares sum to 1 in every MoE cell", sums_to_one);

    let report = std::fs::read_to_string(out.join("report.md")).map_err(|e| tinymoe::Error::io(&out, e))?;
    println!("\n== the report's verdicts");
    for line in report.lines().filter(|l| l.starts_with("*Claim")) {
        println!("{line}\n");
    }

    for (arm, name) in [
        ("a0-2layer", "ch13_utilisation_2layer_no_balancing.png"),
        ("a1e-1-2layer", "ch13_utilisation_2layer_alpha_0.1.png"),
    ] {
        let from = out.join(arm).join("seed-42/utilisation.png");
        let to = figures::path(name)?;
        std::fs::copy(&from, &to).map_err(|e| tinymoe::Error::io(&to, e))?;
        println!("wrote {}", figures::shown(&to));
    }
    facts.finish(Some(start.elapsed().as_secs_f64()));
    Ok(())
}
