//! Chapter 17 — E5: the domain-routed MoE language model (notebooks-md/17-e5-domain-routed-moe.md).
//!
//! Trains E5's main arm (a shared causal stack, a domain classifier, ten expert MLPs of which
//! one runs, teacher forcing moving from the true label to the classifier's choice) and the dense
//! baseline of equal active compute, at the chapter's size (`e5::Size::CHAPTER`: 60 sequences per
//! domain, 4 epochs, seed 42), through the library call `tinymoe demo` and `tinymoe experiment
//! run e5` make. Prints routing accuracy, accuracy by prefix length, per-domain perplexity of
//! both models under each routing and the verdicts, and draws the chapter's figures: the
//! confusion matrix, routing from a prefix, the classifier's confidence, and the attention of
//! the last shared block on a code and a story sample.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch17_e5`

#[path = "common/facts.rs"]
mod facts;
#[path = "common/figures.rs"]
mod figures;

use std::path::Path;
use std::time::Instant;
use tinymoe::run::experiment::{self, Options, Preset};
use tinymoe::run::experiments::e5::{Demo, Size};
use tinymoe::run::settings::DataChoice;
use tinymoe::run::Quiet;

/// Where the run's results folder goes (scratch, not part of the repository).
const OUT_DIR: &str = "target/examples-out/ch17";

fn main() -> tinymoe::Result<()> {
    let start = Instant::now();
    let mut facts = facts::Facts::default();
    let out = Path::new(OUT_DIR).to_path_buf();
    let opts = Options { preset: Preset::Full, seeds: Some(vec![42]), arms: None, data: None, out: out.clone() };
    println!("== E5 at the chapter's size, seed 42: the routed model and the dense one of equal active compute");
    let run = experiment::run(
        &Demo { full: Size::CHAPTER, data: DataChoice::Synthetic, command: "cargo run --release --example ch17_e5" },
        &opts,
        &mut Quiet,
        None,
    )?;
    print!("{}", experiment::wide_summary(&run, &[]).to_markdown());
    facts.check("both cells ran", run.cells.len() == 2 && run.failures().is_empty());
    let get = |arm: &str, m: &str| run.get(arm, m).map_or(f64::NAN, |s| s.mean);

    let acc = get("schedule", "routing_accuracy");
    println!("\nrouting accuracy (whole held-out sequences): {:.1} %", 100.0 * acc);
    facts
        .check("the classifier routes far better than chance (> 30 % of held-out sequences to their own domain; chance is 10 %)", acc > 0.3);
    let early = get("schedule", "accuracy_after_1");
    let late = get("schedule", "accuracy_after_96");
    println!("routing accuracy after 1 byte {:.1} %, after 96 bytes {:.1} %", 100.0 * early, 100.0 * late);
    facts.check("routing from the first byte is far worse than from the whole text", early + 0.2 < late);
    let (model, prefix, truth, wrong) = (
        get("schedule", "ppl_model"),
        get("schedule", "ppl_prefix"),
        get("schedule", "ppl_true"),
        get("schedule", "ppl_wrong"),
    );
    println!(
        "mean perplexity: true expert {truth:.3}, classifier {model:.3}, prefix {prefix:.3}, wrong expert {wrong:.3}"
    );
    facts.check("a wrong expert costs perplexity against the true one", wrong > truth);
    facts.check("routing from the prefix costs perplexity against routing from the whole text", prefix >= model);
    println!("dense, equal active compute: {:.3}", get("dense-active", "ppl_model"));
    facts.check(
        "the dense model has about the routed model's active parameters (within 2 %)",
        (get("dense-active", "params_total") / get("schedule", "params_active") - 1.0).abs() < 0.02,
    );

    let report = std::fs::read_to_string(out.join("report.md")).map_err(|e| tinymoe::Error::io(&out, e))?;
    println!("\n== the report's verdicts");
    for line in
        report.lines().filter(|l| l.starts_with("*Claim") || l.starts_with("*Against") || l.starts_with("*Misrouting"))
    {
        println!("{line}\n");
    }
    let cell = out.join("schedule/seed-42");
    for (from, name) in [
        ("confusion.png", "ch17_confusion.png"),
        ("prefix_accuracy.png", "ch17_prefix_accuracy.png"),
        ("confidence.png", "ch17_confidence.png"),
        ("attention_code.png", "ch17_attention_code.png"),
        ("attention_story.png", "ch17_attention_story.png"),
    ] {
        let to = figures::path(name)?;
        std::fs::copy(cell.join(from), &to).map_err(|e| tinymoe::Error::io(&to, e))?;
        println!("wrote {}", figures::shown(&to));
    }
    let samples = std::fs::read_to_string(cell.join("samples.md")).map_err(|e| tinymoe::Error::io(&cell, e))?;
    println!("\n== generated under three routings (from {})", cell.join("samples.md").display());
    for line in samples.lines().skip_while(|l| !l.starts_with("## code")).take(7) {
        println!("{line}");
    }
    real_data(&mut facts)?;
    facts.finish(Some(start.elapsed().as_secs_f64()));
    Ok(())
}

/// The main arm on the ten real domains (`--data real`), when `data/` has them
/// (`bash scripts/fetch-data.sh`): the confusion matrix of real text.
fn real_data(facts: &mut facts::Facts) -> tinymoe::Result<()> {
    let out = Path::new(OUT_DIR).join("real");
    let demo = Demo { full: Size::CHAPTER, data: DataChoice::Real, command: "cargo run --release --example ch17_e5" };
    let arms = Some(vec!["schedule".to_string()]);
    let opts =
        Options { preset: Preset::Full, seeds: Some(vec![42]), arms, data: Some(DataChoice::Real), out: out.clone() };
    if let Err(e) = tinymoe::run::experiment::Experiment::prepare(&demo, Preset::Full, DataChoice::Real) {
        println!(
            "
== the real-data arm is skipped: {e}"
        );
        return Ok(());
    }
    println!(
        "
== the main arm on ten real domains (BBC News topics, tweets, Rust and Python sources and docs)"
    );
    let run = experiment::run(&demo, &opts, &mut Quiet, None)?;
    facts.check("the real-data cell ran", run.failures().is_empty());
    let cell = out.join("schedule/seed-42");
    let csv = std::fs::read_to_string(cell.join("perplexity.csv")).map_err(|e| tinymoe::Error::io(&cell, e))?;
    let acc: Vec<(String, f64)> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.to_string(), f.last()?.parse().ok()?))
        })
        .collect();
    for (d, a) in &acc {
        println!("   {d:<14} routed to its own expert {:>5.1} %", 100.0 * a);
    }
    let mean = |v: &[(String, f64)]| v.iter().map(|(_, a)| a).sum::<f64>() / v.len().max(1) as f64;
    let (news, rest) = acc.split_at(5.min(acc.len()));
    facts.check(
        "the five news topics are told apart far less often than tweets, code and documentation (by 30 points)",
        mean(news) + 0.3 < mean(rest),
    );
    let to = figures::path("ch17_real_confusion.png")?;
    std::fs::copy(cell.join("confusion.png"), &to).map_err(|e| tinymoe::Error::io(&to, e))?;
    println!("wrote {}", figures::shown(&to));
    Ok(())
}
