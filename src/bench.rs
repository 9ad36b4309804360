//! The benchmark workloads of BENCH.md, run the way the references in `anchors/` run them:
//! one training step = forward + backward + Adam update in f32, on one fixed random batch
//! (so the loss must fall: the sanity check), median time of the steps after a warm-up.
//!
//! Workloads so far:
//! - `mlp-moe`: dense soft MoE, 4 experts MLP 784→128→128→10 (ReLU, dropout 0.2), gate MLP
//!   784→256→128→4 + softmax, logits mixed by the gate, cross-entropy; batch 128.
//! - `block-small`: token + positional embedding (vocab 4096, d 256), 1 pre-LN block (4 heads,
//!   FF 512, GELU tanh, causal), final LN, LM head, next-token CE; batch 16 × 128.
//! - `moe-e3`: token + positional embedding (vocab 4096, d 256), token-level feed-forward
//!   router 256→256→4 (ReLU, softmax) reading the embedding, 4 experts each a 1-block pre-LN
//!   encoder (4 heads, FF 512) run densely and mixed per token by the router's weights, final
//!   LN, LM head, next-token CE; batch 16 × 128. The [`moe_lm`] model with no shared blocks,
//!   `ExpertKind::Stack`, `Gating::DENSE` and no router losses.
//! - `moe-e2`: as `moe-e3` with experts of 2 blocks, d 768, 8 heads, FF 3072 (router
//!   768→768→4); batch 8 × 128.
//! - `moe-e3-gpt2`, `moe-e2-gpt2`: the same with GPT-2's 50,257-token vocabulary (E3's and
//!   E2's real shape; the 50,257-wide head and its cross-entropy dominate).
//! - `sparse-topk-e1`, `-e2`, `-e4`, `-e10` (tinymoe only): one token-level top-1 MoE layer
//!   ([`crate::moe::layer`], linear router) of E MLP experts 256 → 1024 → 256 (GELU tanh)
//!   on 16 × 128 = 2048 rows of N(0, 1) input, loss = mean squared error to a fixed N(0, 1)
//!   target; 10 timed steps. Every E sees the same tokens and each token runs exactly one expert, so the
//!   compute per step is constant: the time with E = 10 against E = 1 measures what sparse
//!   dispatch costs (gather, scatter, smaller GEMMs, E× the parameters for Adam). The JSON
//!   line adds `max_expert_load` (the most tokens any expert got at the last step).

use crate::engine::init::{self, streams};
use crate::engine::layers::attention::Mask;
use crate::engine::layers::Activation;
use crate::engine::layers::Mode;
use crate::engine::optim::{Kind, Optimizer};
use crate::engine::params;
use crate::error::{Error, Result};
use crate::models::transformer_lm as lm;
use crate::models::{classifier, moe_lm};
use crate::moe::expert::Expert;
use crate::moe::layer::{self, Level, Route};
use crate::moe::losses::RouterLossConfig;
use crate::moe::routing::Gating;
use ndarray::Array2;
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng as _;
use serde::Serialize;
use std::time::Instant;

/// The workloads `tinymoe bench` knows.
pub const WORKLOADS: &[&str] = &[
    "mlp-moe",
    "block-small",
    "moe-e3",
    "moe-e2",
    "moe-e3-gpt2",
    "moe-e2-gpt2",
    "sparse-topk-e1",
    "sparse-topk-e2",
    "sparse-topk-e4",
    "sparse-topk-e10",
    "e5-2",
    "e5-5",
    "e5-10",
];

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
    /// sparse-topk only: the most tokens one expert received (at the last step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expert_load: Option<usize>,
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
        "moe-e3" => Ok(pool.install(|| moe_language_model("moe-e3", moe_config(4096, 256, 4, 512, 1), 16, 8, opts))),
        "moe-e2" => Ok(pool.install(|| moe_language_model("moe-e2", moe_config(4096, 768, 8, 3072, 2), 8, 5, opts))),
        "moe-e3-gpt2" => {
            Ok(pool.install(|| moe_language_model("moe-e3-gpt2", moe_config(GPT2, 256, 4, 512, 1), 16, 5, opts)))
        }
        "moe-e2-gpt2" => {
            Ok(pool.install(|| moe_language_model("moe-e2-gpt2", moe_config(GPT2, 768, 8, 3072, 2), 8, 3, opts)))
        }
        "sparse-topk-e1" => Ok(pool.install(|| sparse_topk(1, opts))),
        "sparse-topk-e2" => Ok(pool.install(|| sparse_topk(2, opts))),
        "sparse-topk-e4" => Ok(pool.install(|| sparse_topk(4, opts))),
        "sparse-topk-e10" => Ok(pool.install(|| sparse_topk(10, opts))),
        "e5-2" => Ok(pool.install(|| e5(2, opts))),
        "e5-5" => Ok(pool.install(|| e5(5, opts))),
        "e5-10" => Ok(pool.install(|| e5(10, opts))),
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

/// GPT-2's vocabulary, the experiments' real shape (`moe-e3-gpt2`, `moe-e2-gpt2`).
const GPT2: usize = 50_257;

/// The moe-e3 / moe-e2 model: embedding → token-level dense MoE of 4 block stacks, routed
/// by a d → d → 4 ReLU router reading the embedding → final LN → head (as `torch_ref.py`).
fn moe_config(vocab: usize, d_model: usize, n_heads: usize, d_ff: usize, layers: usize) -> moe_lm::Config {
    moe_lm::Config {
        vocab,
        max_seq: 128,
        d_model,
        n_heads,
        d_ff,
        dropout: 0.0,
        pad_id: None,
        shared_layers: 0,
        n_experts: 4,
        expert: moe_lm::ExpertKind::Stack { layers },
        router_hidden: Some(d_model),
        noisy: false,
        level: Level::Token,
        gating: Gating::DENSE,
        router_losses: RouterLossConfig::default(),
        domain_loss: None,
        bidirectional_experts: false,
    }
}

/// [`language_model`] for the MoE language model.
fn moe_language_model(name: &str, cfg: moe_lm::Config, batch: usize, steps: usize, opts: &Options) -> Report {
    let steps = opts.steps.unwrap_or(steps);
    let seq_len = cfg.max_seq;
    let mut rng = init::stream(opts.seed, streams::INIT);
    let mut model = moe_lm::init::<f32>(cfg, &mut rng);
    let mut data_rng = init::stream(opts.seed, streams::DATA);
    let seq = Array2::from_shape_simple_fn((batch, seq_len + 1), || data_rng.gen_range(0..cfg.vocab));
    let ids = seq.slice(ndarray::s![.., ..seq_len]);
    let targets = seq.slice(ndarray::s![.., 1..]);
    let mut dropout_rng = init::stream(opts.seed, streams::DROPOUT);
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let (losses, ms) = time_steps(opts.warmup + steps, opts.warmup, || {
        let (loss, cache) =
            moe_lm::forward(&model, ids, targets, None, Route::default(), &mut Mode::Train(&mut dropout_rng));
        let grads = moe_lm::backward(&model, &cache);
        opt.step(&mut model, &grads, 1e-3);
        loss.total
    });
    report(name, opts, batch * seq_len, &losses, ms, params::count(&model))
}

/// E5's model (`experiment run e5 --preset full`: bytes, 128 positions, d_model 64, 2 shared
/// blocks, MLP experts 64 → 256 → 64, a domain classifier routing top-1) with `n_experts`
/// domains, batch 16, the sequences' labels spread evenly over the domains and routed by them
/// (teacher forcing), so every expert gets its share: compute per token should not grow with
/// the number of experts, only the parameters.
fn e5(n_experts: usize, opts: &Options) -> Report {
    const BATCH: usize = 16;
    let steps = opts.steps.unwrap_or(10);
    let cfg = moe_lm::Config {
        vocab: 257,
        max_seq: 128,
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        dropout: 0.0,
        pad_id: Some(256),
        shared_layers: 2,
        n_experts,
        expert: moe_lm::ExpertKind::Mlp { hidden: 256 },
        router_hidden: None,
        noisy: false,
        level: Level::Sequence,
        gating: Gating::top_k(1),
        router_losses: RouterLossConfig { balance: 0.0, z_loss: 0.0, token_entropy: 0.0, batch_entropy: 0.0 },
        domain_loss: Some(1.0),
        bidirectional_experts: false,
    };
    let mut model = moe_lm::init::<f32>(cfg, &mut init::stream(opts.seed, streams::INIT));
    let mut data_rng = init::stream(opts.seed, streams::DATA);
    let seq = Array2::from_shape_simple_fn((BATCH, cfg.max_seq + 1), || data_rng.gen_range(0..256));
    let (ids, targets) = (seq.slice(ndarray::s![.., ..cfg.max_seq]), seq.slice(ndarray::s![.., 1..]));
    let labels: Vec<usize> = (0..BATCH).map(|b| b % n_experts).collect();
    let assigned: Vec<Option<usize>> = labels.iter().map(|&l| Some(l)).collect();
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let (losses, ms) = time_steps(opts.warmup + steps, opts.warmup, || {
        let route = Route { intervention: None, assigned: Some(&assigned) };
        let (loss, cache) = moe_lm::forward(&model, ids, targets, Some(&labels), route, &mut Mode::Eval);
        let grads = moe_lm::backward(&model, &cache);
        opt.step(&mut model, &grads, 1e-3);
        loss.total
    });
    report(&format!("e5-{n_experts}"), opts, BATCH * cfg.max_seq, &losses, ms, params::count(&model))
}

/// One top-1 MoE layer of `n_experts` MLP experts 256 → 1024 → 256 on 2048 random rows,
/// trained to a fixed random target by mean squared error (see the module doc).
fn sparse_topk(n_experts: usize, opts: &Options) -> Report {
    const BATCH: usize = 16;
    const SEQ: usize = 128;
    const D: usize = 256;
    const HIDDEN: usize = 1024;
    let steps = opts.steps.unwrap_or(10);
    let n = BATCH * SEQ;
    let mut rng = init::stream(opts.seed, streams::INIT);
    let cfg = layer::Config { level: Level::Token, gating: Gating::top_k(1), passthrough: false };
    // The router is moe::router's linear gate, N(0, 0.02²): on N(0, 1) rows its E logits are
    // near-independent Gaussians of equal scale, so the argmax spreads tokens evenly. Top-1
    // gates are the constant 1, so the router gets no gradient and the spread stays.
    let mut model = layer::init(
        D,
        None,
        false,
        n_experts,
        cfg,
        |r| Expert::mlp(&[D, HIDDEN, D], Activation::GeluTanh, 0.0, r),
        &mut rng,
    );
    let mut data_rng = init::stream(opts.seed, streams::DATA);
    let mut normal = || {
        let v: f64 = StandardNormal.sample(&mut data_rng);
        v as f32
    };
    let x = Array2::from_shape_simple_fn((n, D), &mut normal);
    let target = Array2::from_shape_simple_fn((n, D), &mut normal);
    let mask = Mask { causal: false, key_padding: None };
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let mut dropout_rng = init::stream(opts.seed, streams::DROPOUT);
    let mut max_load = 0;
    let (losses, ms) = time_steps(opts.warmup + steps, opts.warmup, || {
        let mode = &mut Mode::Train(&mut dropout_rng);
        let (y, cache) = layer::forward(&model, x.view(), BATCH, SEQ, mask, Route::default(), mode);
        // L = mean((y − t)²) over all n·D entries: dL/dy = 2(y − t)/(n·D).
        let mut dy = y - &target;
        let loss = dy.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / (n * D) as f64;
        let scale = 2.0 / (n * D) as f32;
        dy.mapv_inplace(|v| v * scale);
        let (_, grads) = layer::backward(&model, &cache, dy.view(), None);
        opt.step(&mut model, &grads, 1e-3);
        max_load = cache.stats().tokens.iter().copied().max().unwrap_or(0);
        loss
    });
    let name = format!("sparse-topk-e{n_experts}");
    let mut r = report(&name, opts, n, &losses, ms, params::count(&model));
    r.max_expert_load = Some(max_load);
    r
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
        max_expert_load: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(threads: usize) -> Options {
        Options { threads, steps: Some(2), warmup: 0, seed: 42 }
    }

    #[test]
    fn moe_models_have_the_references_parameter_counts() {
        // n_params printed by `anchors/torch_ref.py --workload moe-e3 / moe-e2 / moe-e3-gpt2 / moe-e2-gpt2`.
        for (cfg, expected) in
            [(moe_config(4096, 256, 4, 512, 1), 4_309_764), (moe_config(4096, 768, 8, 3072, 2), 63_692_036)]
                .into_iter()
                // GPT-2's vocabulary (`--workload moe-e3-gpt2 / moe-e2-gpt2`).
                .chain([
                    (moe_config(GPT2, 256, 4, 512, 1), 27_990_357),
                    (moe_config(GPT2, 768, 8, 3072, 2), 134_641_493),
                ])
        {
            let model = moe_lm::init::<f32>(cfg, &mut init::rng(0));
            assert_eq!(params::count(&model), expected, "{cfg:?}");
        }
    }

    #[test]
    fn moe_e3_starts_at_ln_vocab_and_learns() {
        let r = run("moe-e3", &quick(2)).unwrap();
        assert!((r.loss_first - (4096f64).ln()).abs() < 0.1, "{r:?}");
        assert!(r.loss_after_n_steps < r.loss_first, "{r:?}");
    }

    #[test]
    fn sparse_topk_spreads_tokens_and_learns_identically_on_any_thread_count() {
        let one = run("sparse-topk-e4", &quick(1)).unwrap();
        let two = run("sparse-topk-e4", &quick(2)).unwrap();
        assert!(one.loss_after_n_steps < one.loss_first, "{one:?}");
        assert_eq!((one.loss_first, one.loss_after_n_steps), (two.loss_first, two.loss_after_n_steps));
        let load = one.max_expert_load.unwrap();
        assert!((512..2048 * 3 / 10).contains(&load), "max load {load} of 2048 tokens over 4 experts");
    }
}
