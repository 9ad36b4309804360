//! `tinymoe bench --workload NAME --threads N`: one JSON line on stdout.

use crate::bench::{self, Options};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workload name from ../shared/BENCH.md: mlp-moe, block-small, moe-e3, moe-e2, or
    /// sparse-topk-e1 / -e2 / -e4 / -e10 (tinymoe only).
    #[arg(long)]
    pub workload: String,
    /// Threads for rayon (the references use the same count for OpenMP/MKL).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed steps (default: the workload's, as in the references).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let report =
        bench::run(&a.workload, &Options { threads: a.threads, steps: a.steps, warmup: a.warmup, seed: a.seed })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
