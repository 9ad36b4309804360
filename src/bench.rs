//! The benchmark workloads of BENCH.md, run the way the references in `anchors/` run them:
//! one training step = forward + backward + Adam update in f32, on one fixed random batch
//! (so the loss must fall: the sanity check), median time of the steps after a warm-up.
//!
//! Workloads so far:
//! - `mlp-moe`: dense soft MoE, 4 experts MLP 784→128→128→10 (ReLU, dropout 0.2), gate MLP
//!   784→256→128→4 + softmax, logits mixed by the gate, cross-entropy; batch 128.
//! - `block-small`: token + positional embedding (vocab 4096, d 256), 1 pre-LN block (4 heads,
//!   FF 512, GELU tanh, causal), final LN, LM head, next-token CE; batch 16 × 128.

use crate::engine::init::{self, streams};
use crate::engine::layers::Mode;
use crate::engine::optim::{Kind, Optimizer};
use crate::engine::params;
use crate::error::{Error, Result};
use crate::models::classifier;
use crate::models::transformer_lm as lm;
use ndarray::Array2;
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng as _;
use serde::Serialize;
use std::time::Instant;

/// The workloads `tinymoe bench` knows.
pub const WORKLOADS: &[&str] = &["mlp-moe", "block-small"];

/// One JSON line, in the schema shared with `anchors/torch_ref.py` and `numpy_ref.py`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub threads: usize,
    pub dtype: String,
    pub ms_per_step: f64,
    pub tokens_per_s: f64,
    pub loss_first: f64,
    #[serde(rename = "loss_after_N_steps")]
    pub loss_after_n_steps: f64,
    #[serde(rename = "N")]
    pub n: usize,
    pub n_params: usize,
    pub peak_rss_mb: f64,
}

/// How to run a workload.
#[derive(Debug, Clone)]
pub struct Options {
    pub threads: usize,
    /// Timed steps (None: the workload's default, as in the references).
    pub steps: Option<usize>,
    pub warmup: usize,
    pub seed: u64,
}

/// Runs `workload` on a rayon pool of `threads` threads.
pub fn run(workload: &str, opts: &Options) -> Result<Report> {
    if opts.threads == 0 {
        return Err(Error::bad_value("threads", 0, "need at least 1 thread"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| Error::bad_value("threads", opts.threads, &format!("could not start the thread pool: {e}")))?;
    match workload {
        "mlp-moe" => Ok(pool.install(|| mlp_moe(opts))),
        "block-small" => Ok(pool.install(|| {
            let cfg = lm::Config {
                vocab: 4096,
                max_seq: 128,
                d_model: 256,
                n_heads: 4,
                d_ff: 512,
                n_layers: 1,
                dropout: 0.0,
                pad_id: None,
                tie_head: false,
            };
            language_model("block-small", cfg, 16, opts.steps.unwrap_or(10), opts)
        })),
        _ => Err(Error::Unknown { what: "workload".into(), name: workload.into(), expected: WORKLOADS.join(", ") }),
    }
}

fn mlp_moe(opts: &Options) -> Report {
    const BATCH: usize = 128;
    let steps = opts.steps.unwrap_or(40);
    let mut rng = init::stream(opts.seed, streams::INIT);
    let mut model = classifier::init_moe::<f32>(784, &[128, 128], 10, &[256, 128], 4, 0.2, &mut rng);
    let mut data_rng = init::stream(opts.seed, streams::DATA);
    let x = Array2::from_shape_simple_fn((BATCH, 784), || {
        let v: f64 = StandardNormal.sample(&mut data_rng);
        v as f32
    });
    let y: Vec<usize> = (0..BATCH).map(|_| data_rng.gen_range(0..10)).collect();
    let mut dropout_rng = init::stream(opts.seed, streams::DROPOUT);
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let (losses, ms) = time_steps(opts.warmup + steps, opts.warmup, || {
        let out = classifier::train_step(&model, x.view(), &y, &mut dropout_rng);
        opt.step(&mut model, &out.grads, 1e-3);
        out.loss as f64
    });
    report("mlp-moe", opts, BATCH, &losses, ms, params::count(&model))
}

/// One step of a language model on a fixed batch of random tokens: ids = seq[:, :-1],
/// targets = seq[:, 1:], as the references do.
fn language_model(name: &str, cfg: lm::Config, batch: usize, steps: usize, opts: &Options) -> Report {
    let seq_len = cfg.max_seq;
    let mut rng = init::stream(opts.seed, streams::INIT);
    let mut model = lm::init::<f32>(cfg, &mut rng);
    let mut data_rng = init::stream(opts.seed, streams::DATA);
    let seq = Array2::from_shape_simple_fn((batch, seq_len + 1), || data_rng.gen_range(0..cfg.vocab));
    let ids = seq.slice(ndarray::s![.., ..seq_len]);
    let targets = seq.slice(ndarray::s![.., 1..]);
    let mut dropout_rng = init::stream(opts.seed, streams::DROPOUT);
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let (losses, ms) = time_steps(opts.warmup + steps, opts.warmup, || {
        let (loss, cache) = lm::forward(&model, ids, targets, &mut Mode::Train(&mut dropout_rng));
        let grads = lm::backward(&model, &cache);
        opt.step(&mut model, &grads, 1e-3);
        loss as f64
    });
    report(name, opts, batch * seq_len, &losses, ms, params::count(&model))
}

/// Runs `step` `total` times; returns every step's loss and the median milliseconds of the
/// steps after the first `warmup`.
fn time_steps(total: usize, warmup: usize, mut step: impl FnMut() -> f64) -> (Vec<f64>, f64) {
    let mut losses = Vec::with_capacity(total);
    let mut times = Vec::with_capacity(total);
    for i in 0..total {
        let t0 = Instant::now();
        losses.push(step());
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    (losses, median(&mut times) * 1e3)
}

/// The JSON line for one workload run; `tokens` per step (samples, for the MLP workload).
fn report(name: &str, opts: &Options, tokens: usize, losses: &[f64], ms: f64, n_params: usize) -> Report {
    Report {
        workload: name.into(),
        implementation: format!("tinymoe-{}", env!("CARGO_PKG_VERSION")),
        threads: opts.threads,
        dtype: "float32".into(),
        ms_per_step: round2(ms),
        tokens_per_s: round2(tokens as f64 / ms * 1e3),
        loss_first: round4(losses[0]),
        loss_after_n_steps: round4(*losses.last().expect("at least one step")),
        n: losses.len(),
        n_params,
        peak_rss_mb: peak_rss_mb(),
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Peak resident memory (VmHWM from /proc/self/status), in MB; 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| round2(kb / 1024.0))
}
