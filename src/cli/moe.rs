//! The demo's second half: a token-routed MoE language model on the synthetic domains.
//!
//! Byte-level tokens (256 bytes + a padding id), four domains (code, math, story, science),
//! an embedding, one shared pre-LN block, then a Switch-style MoE layer of four MLP experts
//! with a top-2 router (Switch load balancing + z-loss), a final LayerNorm and the head. It
//! ends with the validation loss per domain, the domain × expert routing heatmaps and a
//! token-by-token listing of one sample per domain: which expert took which byte.

use crate::checkpoint;
use crate::cli::progress;
use crate::data::batch::Batches;
use crate::data::corpora::{self, Domain};
use crate::data::tokenizer::{Bytes, Tokenizer};
use crate::engine::init::{self, streams};
use crate::engine::optim::{Kind, Schedule};
use crate::io::write_atomic;
use crate::models::moe_lm::{self, ExpertKind};
use crate::moe::layer::{Level, Route};
use crate::moe::losses::RouterLossConfig;
use crate::moe::metrics;
use crate::moe::routing::{Gating, Strategy};
use crate::plot::line::{line_chart, Series};
use crate::plot::routing::routing_heatmap;
use crate::train::{self, MoeEpoch, MoeTraining};
use anyhow::Context;
use ndarray::Array2;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Everything that defines the demo's MoE LM run; saved as config.json beside its results.
#[derive(Debug, Clone, Serialize)]
pub struct MoeLmSpec {
    pub domains: Vec<String>,
    pub train_per_domain: usize,
    pub val_per_domain: usize,
    /// Sequences are cut to this many predicted positions (bytes).
    pub max_len: usize,
    pub model: moe_lm::Config,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub clip: f64,
    pub seed: u64,
}

/// The demo's settings; `quick` shrinks data and epochs to seconds (tests).
pub fn demo_spec(seed: u64, quick: bool) -> MoeLmSpec {
    let pad = 256;
    let model = moe_lm::Config {
        vocab: 257,
        max_seq: 128,
        d_model: 96,
        n_heads: 4,
        d_ff: 384,
        dropout: 0.0,
        pad_id: Some(pad),
        shared_layers: 1,
        n_experts: 4,
        expert: ExpertKind::Mlp { hidden: 256 },
        router_hidden: None,
        noisy: false,
        level: Level::Token,
        gating: Gating { strategy: Strategy::TopK(2), capacity_factor: None },
        router_losses: RouterLossConfig::paper(),
        domain_loss: None,
    };
    MoeLmSpec {
        domains: Domain::E2.iter().map(|d| d.name().to_string()).collect(),
        train_per_domain: if quick { 24 } else { 500 },
        val_per_domain: if quick { 8 } else { 50 },
        max_len: if quick { 48 } else { 128 },
        model,
        epochs: if quick { 2 } else { 10 },
        batch_size: 16,
        lr: 3e-3,
        warmup_steps: if quick { 2 } else { 30 },
        clip: 1.0,
        seed,
    }
}

/// Trains the spec's model and writes its results into `out`.
pub fn run(spec: &MoeLmSpec, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the results folder {}", out.display()))?;
    let domains: Vec<Domain> = spec
        .domains
        .iter()
        .map(|d| Domain::ALL.iter().copied().find(|x| x.name() == d).context("unknown domain"))
        .collect::<anyhow::Result<_>>()?;
    let tok = Bytes;
    let pad = spec.model.pad_id.context("the MoE LM needs a padding id")?;
    // Train and validation texts from different seeds: no validation sample is a training one.
    let encode = |per: usize, seed: u64| -> (Vec<Vec<usize>>, Vec<usize>) {
        let mut seqs = Vec::new();
        let mut labels = Vec::new();
        for (label, &d) in domains.iter().enumerate() {
            for text in corpora::generate(d, per, seed) {
                seqs.push(tok.encode(&text));
                labels.push(label);
            }
        }
        (seqs, labels)
    };
    let (train_seqs, train_labels) = encode(spec.train_per_domain, spec.seed);
    let (val_seqs, val_labels) = encode(spec.val_per_domain, spec.seed.wrapping_add(1_000_003));
    let train_data = Batches::new(&train_seqs, &train_labels, spec.max_len, pad, spec.batch_size)?;
    let val_data = Batches::new(&val_seqs, &val_labels, spec.max_len, pad, spec.batch_size)?;

    let mut model = moe_lm::init::<f32>(spec.model, &mut init::stream(spec.seed, streams::INIT));
    let steps = train_data.len().div_ceil(spec.batch_size) * spec.epochs;
    let cfg = train::Config {
        epochs: spec.epochs,
        batch_size: spec.batch_size,
        lr: spec.lr,
        schedule: Schedule::WarmupCosine { warmup: spec.warmup_steps, total: steps, min_lr: 0.0 },
        optimizer: Kind::adam(),
        clip: Some(spec.clip),
        seed: spec.seed,
        rules: vec![],
    };
    write_atomic(&out.join("config.json"), serde_json::to_string_pretty(spec)?.as_bytes())?;
    let bar = progress::bar(steps, "moe lm");
    let started = Instant::now();
    let history = train::fit_moe_lm(
        &mut model,
        &train_data,
        &val_data,
        &cfg,
        &MoeTraining::default(),
        &mut |p| progress::update(&bar, p),
        &mut |e: &MoeEpoch, m| {
            let line = format!(
                "   epoch {:>2}: train {:.3}  val {:.3} nats/byte  router loss {:.4}  {:.0} tokens/s",
                e.epoch, e.train_loss, e.val.loss, e.router_loss, e.tokens_per_s
            );
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
            let meta = serde_json::json!({ "epoch": e.epoch, "val_loss": e.val.loss, "tokenizer": "bytes" });
            checkpoint::save(&out.join("model.ckpt"), "moe-lm", &spec.model, m, meta)
        },
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    // Results: metrics, loss curve, routing heatmaps, token listing.
    let last = history.epochs.last().context("no epoch ran")?;
    write_metrics(&out.join("metrics.csv"), &history.epochs, &spec.domains)?;
    let steps_pts: Vec<(f64, f64)> =
        history.step_losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect();
    let val_pts: Vec<(f64, f64)> =
        history.epochs.iter().map(|e| ((e.epoch * steps / spec.epochs) as f64, e.val.loss)).collect();
    line_chart(
        &out.join("loss_curve.png"),
        "MoE LM: next-byte loss",
        "step",
        "nats per byte",
        &[Series { name: "train (per step)", points: &steps_pts }, Series { name: "validation", points: &val_pts }],
    )?;
    let rows: Vec<String> = spec.domains.clone();
    let cols: Vec<String> = (0..spec.model.n_experts).map(|e| format!("expert {e}")).collect();
    let table = |t: &[Vec<f64>]| Array2::from_shape_fn((t.len(), spec.model.n_experts), |(d, e)| t[d][e]);
    routing_heatmap(
        &out.join("routing_mean_gate.png"),
        table(&last.val.mean_gate).view(),
        &rows,
        &cols,
        "mean gate per domain (validation tokens)",
        "domain",
    )?;
    routing_heatmap(
        &out.join("routing_top_expert.png"),
        table(&last.val.top_share).view(),
        &rows,
        &cols,
        "share of tokens whose top expert is e",
        "domain",
    )?;
    let listing = token_listing(&model, &tok, &val_seqs, &val_labels, spec)?;
    write_atomic(&out.join("tokens.txt"), listing.as_bytes())?;

    // The summary.
    let first = history.epochs.first().context("no epoch ran")?;
    println!(
        "== moe-lm (byte-level, {} experts top-2 over {} domains, {} epochs, seed {}, {:.1} s)",
        spec.model.n_experts,
        spec.domains.len(),
        spec.epochs,
        spec.seed,
        seconds
    );
    println!(
        "   validation loss      {:.3} after epoch 1 → {:.3} nats/byte after epoch {}",
        first.val.loss, last.val.loss, last.epoch
    );
    println!("   per domain           {}", per_domain(&spec.domains, &last.val.domain_loss));
    println!("   top-expert share per domain (rows: domains, columns: experts 0..{}):", spec.model.n_experts - 1);
    for (d, shares) in spec.domains.iter().zip(&last.val.top_share) {
        let cells: Vec<String> = shares.iter().map(|s| format!("{:>5.1} %", 100.0 * s)).collect();
        println!("     {d:<8} {}", cells.join(" "));
    }
    println!("   the top expert of every byte of one validation sample per domain (tokens.txt lists every gate):");
    for line in listing.lines().filter(|l| l.starts_with("  bytes") || l.starts_with("  expert") || l.ends_with(':')) {
        println!("   {}", line.chars().take(100).collect::<String>());
    }
    println!(
        "   wrote {}/{{config.json, metrics.csv, loss_curve.png, routing_mean_gate.png, routing_top_expert.png, tokens.txt, model.ckpt}}\n",
        out.display()
    );
    Ok(())
}

fn per_domain(names: &[String], losses: &[f64]) -> String {
    names.iter().zip(losses).map(|(n, l)| format!("{n} {l:.3}")).collect::<Vec<_>>().join(" · ")
}

fn write_metrics(path: &Path, epochs: &[MoeEpoch], domains: &[String]) -> anyhow::Result<()> {
    let mut csv = String::from("epoch,train_loss,val_loss,router_loss,tokens_per_s");
    for d in domains {
        write!(csv, ",val_loss_{d}")?;
    }
    csv.push('\n');
    for e in epochs {
        write!(csv, "{},{:.6},{:.6},{:.6},{:.1}", e.epoch, e.train_loss, e.val.loss, e.router_loss, e.tokens_per_s)?;
        for l in &e.val.domain_loss {
            write!(csv, ",{l:.6}")?;
        }
        csv.push('\n');
    }
    write_atomic(path, csv.as_bytes())?;
    Ok(())
}

/// For the first validation sample of each domain: the byte stream and, under it, the top
/// expert of every byte; then the per-token table.
fn token_listing(
    model: &moe_lm::Params<f32>,
    tok: &Bytes,
    seqs: &[Vec<usize>],
    labels: &[usize],
    spec: &MoeLmSpec,
) -> anyhow::Result<String> {
    let pad = spec.model.pad_id.context("the MoE LM needs a padding id")?;
    let mut out = String::new();
    for (d, name) in spec.domains.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == d) else { continue };
        let data = Batches::new(&seqs[i..=i], &labels[i..=i], spec.max_len, pad, 1)?;
        let batch = data.batch(&[0]);
        let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), None, Route::default());
        let n = batch.mask.iter().filter(|&&m| m == 1).count();
        let tokens: Vec<String> = batch.ids.iter().take(n).map(|&id| tok.token_text(id)).collect();
        let shown: String = tokens.iter().map(|t| visible(t)).collect();
        let experts: String = (0..n).map(|row| r.chosen[row].first().map_or('·', |&e| digit(e))).collect();
        writeln!(out, "{name}:")?;
        writeln!(out, "  bytes   {shown}")?;
        writeln!(out, "  expert  {experts}")?;
        writeln!(out)?;
        let probs = r.gates.slice(ndarray::s![..n, ..]).to_owned();
        write!(out, "{}", metrics::token_listing(&tokens, probs.view(), None))?;
        writeln!(out)?;
    }
    Ok(out)
}

/// One printable character per byte token, so the expert row lines up under it.
fn visible(t: &str) -> char {
    match t.chars().next() {
        Some('\n') => '⏎',
        Some('\t') => '⇥',
        Some(c) if t.chars().count() == 1 && !c.is_control() => c,
        _ => '·',
    }
}

fn digit(e: usize) -> char {
    char::from_digit(e as u32, 36).unwrap_or('?')
}
