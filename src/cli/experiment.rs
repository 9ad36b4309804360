//! `tinymoe experiment list|run`: the registered experiments, run over arms × seeds.

use crate::cli::progress::Terminal;
use crate::run::experiment::{self, Options, Preset};
use crate::run::settings::{set_threads, DataChoice};
use crate::run::{experiments, interrupt, Observer};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    pub what: ExperimentCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// List the experiments, one line each.
    List,
    /// Run an experiment: every arm × seed into its own folder under --out, then summary.csv
    /// (mean, std and n per metric over seeds), cells.csv and report.md.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment (see `tinymoe experiment list`).
    pub name: String,
    /// quick: minutes on 2 cores (tests, chapters); full: the configuration of SPEC §4.
    #[arg(long, value_enum, default_value = "quick")]
    pub preset: Preset,
    /// Seeds to run each arm with, e.g. 42,43,44 (default: the experiment's own, usually those).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Only these arms, e.g. transplant,control (default: all).
    #[arg(long, value_delimiter = ',')]
    pub arms: Option<Vec<String>>,
    /// synthetic: built-in data, no download; real: the data sets `scripts/fetch-data.sh`
    /// puts in data/ (default: the experiment's own, see `experiment list`).
    #[arg(long, value_enum)]
    pub data: Option<DataChoice>,
    /// Rayon threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Results folder (default: results/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinymoe experiment`.
pub fn experiment(a: ExperimentArgs) -> anyhow::Result<()> {
    match a.what {
        ExperimentCommand::List => {
            for e in experiments::all() {
                let data: Vec<&str> = e.data().iter().map(|d| d.as_str()).collect();
                println!("{:<10} {}  [--data {}]", e.name(), e.description(), data.join("|"));
            }
            println!("\nrun one: tinymoe experiment run NAME [--preset quick|full] [--seeds 42,43,44] [--data synthetic|real] [--out DIR]");
            Ok(())
        }
        ExperimentCommand::Run(r) => run(r),
    }
}

fn run(r: RunArgs) -> anyhow::Result<()> {
    set_threads(r.threads)?;
    let exp = experiments::find(&r.name)?;
    // Another data choice than the default gets its own folder, so it never overwrites the
    // default's results: results/e5 and results/e5-real.
    let folder = match r.data {
        Some(d) if d != exp.data()[0] => format!("{}-{}", exp.name(), d.as_str()),
        _ => exp.name().to_string(),
    };
    let out = r.out.unwrap_or_else(|| PathBuf::from("results").join(folder));
    let opts = Options { preset: r.preset, seeds: r.seeds, arms: r.arms, data: r.data, out: out.clone() };
    let mut term = Terminal::default();
    let guard = interrupt::Training::start();
    let finished = experiment::run(exp, &opts, &mut term, Some(guard.stop()))?;
    drop(guard);
    term.finish();
    println!("\n== {} ({}, {:.1} s): mean ± std over seeds", exp.name(), r.preset.name(), finished.seconds);
    print!("{}", experiment::wide_summary(&finished, exp.headline()).to_markdown());
    let failures = finished.failures();
    for (arm, seed, e) in &failures {
        println!("   FAILED {arm} · seed {seed}: {e}");
    }
    println!("   wrote {}/{{report.md, summary.csv, cells.csv, ARM/seed-N/…}}", out.display());
    if finished.interrupted {
        println!("interrupted: the cells above ran; run the command again to run them all");
    }
    if !failures.is_empty() {
        anyhow::bail!("{} of {} cells failed (see {}/report.md)", failures.len(), finished.cells.len(), out.display());
    }
    Ok(())
}
