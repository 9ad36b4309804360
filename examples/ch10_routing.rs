//! Chapter 10 — sequence-level and domain routing, and interventions
//! (notebooks-md/10-sequence-and-domain-routing-interventions.md).
//!
//! Shows, in order:
//! 1. Token-level vs sequence-level routing: the same small byte-level MoE LM trained both
//!    ways on four synthetic domains; the domain × expert tables side by side (a PNG in
//!    notebooks-md/figures/, or `$TINYMOE_FIGURES_DIR`), the specialisation index and each
//!    domain's share to its best-matching expert. Then why
//!    padding must stay out of the pooled mean: the router's input of a padded sequence
//!    equals that of the same sequence unpadded, and forgetting the mask changes it.
//! 2. Domain-classifier routing (E5): a classifier on the pooled shared output picks the
//!    expert; three teacher-forcing schedules, routing accuracy per epoch, per-domain loss,
//!    routing by the prediction vs by the label at evaluation; the LM loss does not reach the
//!    classifier; expert work per token stays constant as experts are added.
//! 3. Interventions on the trained token-level MoE: force, switch off, freeze all but one,
//!    train only the router, add an expert for a new domain (and the cold start it avoids),
//!    SteerMoE (risk difference, steering offsets at inference and during training).
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch10_routing`

#[path = "common/figures.rs"]
mod figures;
#[path = "common/tally.rs"]
mod tally;

use ndarray::{Array2, Axis};
use std::path::PathBuf;
use std::time::Instant;
use tally::Tally;
use tinymoe::data::batch::{Batches, Sampling};
use tinymoe::data::corpora::{self, Domain};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::init::{self, streams};
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::{Activation, Mode};
use tinymoe::engine::optim::{Kind, Rule, Schedule};
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::moe::expert::Expert;
use tinymoe::moe::interventions::{add_expert, freeze_all_but, train_only_expert_and_router, train_only_router};
use tinymoe::moe::layer::{self, Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::metrics;
use tinymoe::moe::routing::{Gating, Intervention, Strategy};
use tinymoe::moe::{router, steer};
use tinymoe::plot::routing::routing_heatmap;
use tinymoe::train::{self, MoeEval, MoeHistory, MoeTraining};

const PAD: usize = 256;
const SEED: u64 = 10;
/// Predicted positions per sequence (bytes); longer samples are cut.
const MAX_LEN: usize = 48;
const TRAIN_PER_DOMAIN: usize = 128;
const VAL_PER_DOMAIN: usize = 16;
const BATCH: usize = 16;
const EPOCHS: usize = 8;
const LR: f64 = 3e-3;

/// Byte-encoded sequences and their domain labels.
struct Corpus {
    seqs: Vec<Vec<usize>>,
    labels: Vec<usize>,
}

impl Corpus {
    /// `per` samples of each domain, labelled `first_label`, `first_label + 1`, …
    fn new(domains: &[Domain], first_label: usize, per: usize, seed: u64) -> Corpus {
        let (mut seqs, mut labels) = (Vec::new(), Vec::new());
        for (i, &d) in domains.iter().enumerate() {
            for text in corpora::generate(d, per, seed) {
                seqs.push(Bytes.encode(&text));
                labels.push(first_label + i);
            }
        }
        Corpus { seqs, labels }
    }
    fn join(&self, other: &Corpus) -> Corpus {
        Corpus {
            seqs: self.seqs.iter().chain(&other.seqs).cloned().collect(),
            labels: self.labels.iter().chain(&other.labels).copied().collect(),
        }
    }
    fn batches(&self) -> Batches<'_> {
        Batches::new(&self.seqs, &self.labels, MAX_LEN, PAD, BATCH).expect("valid sequences")
    }
}

/// The chapter's model: byte-level, d 32, one shared block, four MLP experts.
fn config(level: Level, gating: Gating, n_experts: usize, domain_loss: Option<f64>) -> moe_lm::Config {
    moe_lm::Config {
        vocab: 257,
        max_seq: MAX_LEN,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts,
        expert: ExpertKind::Mlp { hidden: 64 },
        router_hidden: None,
        noisy: false,
        level,
        gating,
        // Domain routing has no use for a balance loss: the labels decide the load.
        router_losses: if domain_loss.is_some() { RouterLossConfig::default() } else { RouterLossConfig::paper() },
        domain_loss,
        bidirectional_experts: false,
    }
}

/// Switch-style top-1: the gate is the chosen expert's full-softmax probability, so the
/// router learns from the LM loss (a renormalised top-1 gate would be the constant 1).
fn switch_top1() -> Gating {
    Gating { strategy: Strategy::TopKProbs(1), capacity_factor: None }
}

fn train_cfg(epochs: usize, rules: Vec<Rule>) -> train::Config {
    train::Config {
        epochs,
        batch_size: BATCH,
        lr: LR,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: Some(1.0),
        seed: SEED,
        rules,
    }
}

fn fit(
    model: &mut moe_lm::Params<f32>,
    data: &Corpus,
    val: &Corpus,
    cfg: &train::Config,
    moe: &MoeTraining,
) -> MoeHistory {
    train::fit_moe_lm(model, &data.batches(), &val.batches(), cfg, moe, &mut |_| {}, &mut |_, _| Ok(()))
        .expect("training runs")
}

fn eval(model: &moe_lm::Params<f32>, val: &Corpus, n_domains: usize, iv: Option<&Intervention>) -> MoeEval {
    train::evaluate_moe_lm(model, &val.batches(), n_domains, BATCH, iv)
}

/// Loss per domain when every sequence goes to its true domain's expert (teacher forcing).
fn eval_by_label(model: &moe_lm::Params<f32>, val: &Corpus, n_domains: usize) -> (f64, Vec<f64>) {
    let data = val.batches();
    let (mut sum, mut count) = (vec![0.0; n_domains], vec![0usize; n_domains]);
    let order = data.order(Sampling::InOrder, &mut init::rng(0));
    for rows in order.chunks(BATCH) {
        let b = data.batch(rows);
        let assigned: Vec<Option<usize>> = b.labels.iter().map(|&l| Some(l)).collect();
        let route = Route { intervention: None, assigned: Some(&assigned) };
        let r = moe_lm::routed(model, b.ids.view(), b.targets.view(), Some(&b.labels), route);
        for (i, &label) in b.labels.iter().enumerate() {
            for t in 0..b.ids.ncols() {
                if b.mask[[i, t]] == 1 {
                    sum[label] += r.token_loss[[i, t]];
                    count[label] += 1;
                }
            }
        }
    }
    let total = sum.iter().sum::<f64>() / count.iter().sum::<usize>() as f64;
    (total, sum.iter().zip(&count).map(|(s, &c)| s / c as f64).collect())
}

fn table(t: &[Vec<f64>]) -> Array2<f64> {
    Array2::from_shape_fn((t.len(), t[0].len()), |(r, c)| t[r][c])
}

/// Every permutation of 0..n (n ≤ 5 here).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// The one-to-one domain → expert matching with the largest total top-expert share.
fn best_matching(top_share: &[Vec<f64>]) -> Vec<usize> {
    let score = |p: &Vec<usize>| p.iter().enumerate().map(|(d, &e)| top_share[d][e]).sum::<f64>();
    permutations(top_share[0].len())
        .into_iter()
        .map(|p| p[..top_share.len()].to_vec())
        .max_by(|a, b| score(a).total_cmp(&score(b)))
        .expect("at least one permutation")
}

fn pct(v: &[f64]) -> String {
    v.iter().map(|s| format!("{:>6.1}%", 100.0 * s)).collect::<Vec<_>>().join(" ")
}

fn nats(v: &[f64]) -> String {
    v.iter().map(|s| format!("{s:>7.3}")).collect::<Vec<_>>().join(" ")
}

/// Names of the tensors that differ between two models.
fn changed(a: &moe_lm::Params<f32>, b: &moe_lm::Params<f32>) -> Vec<String> {
    a.tensors().into_iter().zip(b.tensors()).filter(|((_, x), (_, y))| x != y).map(|((n, _), _)| n).collect()
}

/// The tensor-name prefixes (up to `moe.experts.N` / `moe.router` / the first part) of a list.
fn groups(names: &[String]) -> String {
    let mut g: Vec<String> = names
        .iter()
        .map(|n| {
            let parts: Vec<&str> = n.split('.').collect();
            match parts.as_slice() {
                ["moe", "experts", e, ..] => format!("moe.experts.{e}"),
                ["moe", "router", ..] => "moe.router".to_string(),
                [first, ..] => first.to_string(),
                [] => String::new(),
            }
        })
        .collect();
    g.dedup();
    g.join(", ")
}

/// Prints the error and exits 1.
fn fail(e: &tinymoe::Error) -> ! {
    eprintln!("ch10: error: {e}");
    std::process::exit(1);
}

/// The path of figure `name`, its folder created (or exit 1 naming the folder).
fn figure(name: &str) -> PathBuf {
    figures::path(name).unwrap_or_else(|e| fail(&e))
}

fn main() {
    let started = Instant::now();
    let mut tally = Tally::default();
    let domains = Domain::E2;
    let names: Vec<String> = domains.iter().map(|d| d.name().to_string()).collect();
    let train_set = Corpus::new(&domains, 0, TRAIN_PER_DOMAIN, SEED);
    let val = Corpus::new(&domains, 0, VAL_PER_DOMAIN, SEED + 1_000_003);
    println!(
        "data: {} domains ({}), {} training + {} validation sequences, bytes, cut to {MAX_LEN} positions",
        names.len(),
        names.join(", "),
        train_set.seqs.len(),
        val.seqs.len()
    );
    println!(
        "model: d 32, 2 heads, 1 shared block, 4 MLP experts 32→64→32, linear router; Adam lr {LR}, batch {BATCH}, \
         {EPOCHS} epochs, clip 1.0, seed {SEED}, rayon threads {}",
        rayon::current_num_threads()
    );

    // ------------------------------------------------------------------------------------
    println!("\n== 1. Token-level vs sequence-level routing (Switch top-1, balance α 1e-2, z-loss 1e-3)");
    let mut models = Vec::new();
    let mut tables = Vec::new();
    for level in [Level::Token, Level::Sequence] {
        let cfg = config(level, switch_top1(), 4, None);
        let mut m = moe_lm::init::<f32>(cfg, &mut init::stream(SEED, streams::INIT));
        let h = fit(&mut m, &train_set, &val, &train_cfg(EPOCHS, vec![]), &MoeTraining::default());
        let e = &h.epochs.last().expect("an epoch").val;
        let matching = best_matching(&e.top_share);
        let shares = metrics::matching_share(table(&e.top_share).view(), &matching);
        let spec = metrics::specialisation_index(table(&e.top_share).view());
        println!("{level:?}-level: val loss {:.3} nats/byte (epoch 1: {:.3})", e.loss, h.epochs[0].val.loss);
        println!("   top-expert share    expert 0  expert 1  expert 2  expert 3");
        for (n, row) in names.iter().zip(&e.top_share) {
            println!("   {n:<10}      {}", pct(row));
        }
        println!("   specialisation index H(domain | expert)/ln 4 = {spec:.3}   (0 specialised … 1 mixed)");
        println!(
            "   best one-to-one matching domain→expert {matching:?}: shares {}   mean {:.1}%",
            pct(&shares),
            100.0 * shares.iter().sum::<f64>() / shares.len() as f64
        );
        tables.push(table(&e.top_share));
        models.push(m);
    }
    let side_by_side = ndarray::concatenate(Axis(1), &[tables[0].view(), tables[1].view()]).expect("same rows");
    let cols: Vec<String> =
        ["tok", "seq"].iter().flat_map(|l| (0..4).map(move |e| format!("{l} {e}"))).collect::<Vec<_>>();
    let png = figure("ch10_token_vs_sequence.png");
    routing_heatmap(
        &png,
        side_by_side.view(),
        &names,
        &cols,
        "top-expert share: token-level (left) vs sequence-level (right)",
        "domain",
    )
    .unwrap_or_else(|e| fail(&e));
    println!("wrote {}", figures::shown(&png));
    let seq_model = models.pop().expect("sequence-level model");
    let tok_model = models.pop().expect("token-level model");

    // Padding and the pooled mean.
    println!("\n-- padding must not enter the pooled mean");
    // The samples are longer than the window, so the check uses the first 31 bytes of one.
    let i = 0;
    let short = Corpus { seqs: vec![val.seqs[i][..31].to_vec()], labels: vec![val.labels[i]] };
    let s = &short.seqs[0];
    let n_real = s.len() - 1;
    let alone_ids = Array2::from_shape_fn((1, n_real), |(_, t)| s[t]);
    let alone_tg = Array2::from_shape_fn((1, n_real), |(_, t)| s[t + 1]);
    let padded = short.batches().batch(&[0]);
    let a = moe_lm::routed(&seq_model, alone_ids.view(), alone_tg.view(), None, Route::default());
    let p = moe_lm::routed(&seq_model, padded.ids.view(), padded.targets.view(), None, Route::default());
    let d_logits = (&a.logits - &p.logits).mapv(f64::abs).fold(0.0, |m: f64, &v| m.max(v));
    println!(
        "sequence {i} ({}): {n_real} real positions, padded to {MAX_LEN} with {} padding positions",
        names[val.labels[i]],
        MAX_LEN - n_real
    );
    println!("   router logits alone  {:?}", a.logits.row(0).mapv(|v| (v * 1e4).round() / 1e4).to_vec());
    println!("   router logits padded {:?}", p.logits.row(0).mapv(|v| (v * 1e4).round() / 1e4).to_vec());
    println!("   max |Δ| = {d_logits:.2e}; same expert: {}", a.chosen[0] == p.chosen[0]);
    tally.require("padded and unpadded router logits agree", d_logits < 1e-5 && a.chosen[0] == p.chosen[0]);
    // At the layer: x has real rows and junk in the padding rows (what a padding embedding
    // and the blocks leave there). The layer must pool only the real rows.
    let d = 32;
    let x = init::normal::<f32, _, _>((MAX_LEN, d), 1.0, &mut init::rng(SEED + 7));
    let mut mask = Array2::<u8>::zeros((1, MAX_LEN));
    mask.slice_mut(ndarray::s![0, ..n_real]).fill(1);
    let pooled_real = x.slice(ndarray::s![..n_real, ..]).mean_axis(Axis(0)).expect("rows").insert_axis(Axis(0));
    let (z_ref, _, _) = router::forward(&seq_model.moe.router, pooled_real.view(), &mut Mode::Eval);
    let run = |key_padding| {
        let m = Mask { causal: false, key_padding };
        let (_, c) = layer::forward(&seq_model.moe, x.view(), 1, MAX_LEN, m, Route::default(), &mut Mode::Eval);
        c.logits().clone()
    };
    let z_masked = run(Some(mask.view()));
    let z_unmasked = run(None);
    let max_diff =
        |a: &Array2<f32>, b: &Array2<f32>| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let (dm, du) = (max_diff(&z_masked, &z_ref), max_diff(&z_unmasked, &z_ref));
    println!("   layer, with the key-padding mask:  router(mean of the {n_real} real rows) − layer logits: max |Δ| = {dm:.2e}");
    println!("   layer, mask forgotten (mean of all {MAX_LEN} rows):                  max |Δ| = {du:.2e}");
    tally.require("the masked layer pools exactly the real rows", dm < 1e-5);
    tally.require("forgetting the mask changes the router input", du > 1e-3);

    // ------------------------------------------------------------------------------------
    println!("\n== 2. Domain-classifier routing (sequence-level, top-1 hard, gate 1, λ = 1.0, no balance loss)");
    // The LM loss does not reach the classifier: with λ = 0 its gradient is exactly zero.
    {
        let m0 = moe_lm::init::<f32>(config(Level::Sequence, Gating::top_k(1), 4, Some(0.0)), &mut init::rng(SEED));
        let b = train_set.batches().batch(&(0..BATCH).map(|k| k * 16).collect::<Vec<_>>());
        for assigned in [false, true] {
            let labels: Vec<Option<usize>> = b.labels.iter().map(|&l| assigned.then_some(l)).collect();
            let route = Route { intervention: None, assigned: Some(&labels) };
            let (_, c) = moe_lm::forward(
                &m0,
                b.ids.view(),
                b.targets.view(),
                Some(&b.labels),
                route,
                &mut Mode::Train(&mut init::rng(1)),
            );
            let g = moe_lm::backward(&m0, &c);
            let router_norm: f32 = g
                .tensors()
                .into_iter()
                .filter(|(n, _)| n.starts_with("moe.router"))
                .map(|(_, t)| t.iter().map(|v| v * v).sum::<f32>())
                .sum::<f32>()
                .sqrt();
            let expert_norm: f32 = g
                .tensors()
                .into_iter()
                .filter(|(n, _)| n.starts_with("moe.experts"))
                .map(|(_, t)| t.iter().map(|v| v * v).sum::<f32>())
                .sum::<f32>()
                .sqrt();
            println!(
                "λ = 0, routed by {}: ‖∂L/∂router‖ = {router_norm:.1e}, ‖∂L/∂experts‖ = {expert_norm:.2e}",
                if assigned { "label  " } else { "predict" }
            );
            tally.require("the LM loss gives the classifier no gradient", router_norm == 0.0 && expert_norm > 0.0);
        }
    }
    let mut dom_models = Vec::new();
    for (name, start, end) in
        [("teacher 1→0", 1.0, 0.0), ("teacher always", 1.0, 1.0), ("never (prediction)", 0.0, 0.0)]
    {
        let cfg = config(Level::Sequence, Gating::top_k(1), 4, Some(1.0));
        let mut m = moe_lm::init::<f32>(cfg, &mut init::stream(SEED, streams::INIT));
        let moe = MoeTraining { teacher_start: start, teacher_end: end, ..MoeTraining::default() };
        let h = fit(&mut m, &train_set, &val, &train_cfg(EPOCHS, vec![]), &moe);
        let acc: Vec<String> =
            h.epochs.iter().map(|e| format!("{:.1}%", 100.0 * e.val.domain_accuracy.unwrap_or(f64::NAN))).collect();
        let last = &h.epochs.last().expect("an epoch").val;
        let (by_label, by_label_d) = eval_by_label(&m, &val, 4);
        println!("{name:<19} routing accuracy per epoch (validation) {}", acc.join(" → "));
        println!("   routed by prediction: loss {:.3}   per domain {}", last.loss, nats(&last.domain_loss));
        println!("   routed by the label:  loss {by_label:.3}   per domain {}", nats(&by_label_d));
        dom_models.push((name, m, last.clone()));
    }
    let (_, dm0, de0) = &dom_models[0];
    println!("top-expert share under prediction routing, schedule 1→0 (rows: domains):");
    for (n, row) in names.iter().zip(&de0.top_share) {
        println!("   {n:<10} {}", pct(row));
    }
    let _ = dm0;
    println!("-- expert work per token as experts are added (one batch of {BATCH} sequences, untrained models)");
    println!("   experts  routing          experts called  expert rows  real tokens  rows per token");
    let b = val.batches().batch(&(0..BATCH).map(|k| k * 4).collect::<Vec<_>>());
    let real_tokens = b.mask.iter().filter(|&&m| m == 1).count();
    for n_experts in [4, 8, 16] {
        for (label, gating, dl) in [("domain top-1", Gating::top_k(1), Some(1.0)), ("dense", Gating::DENSE, None)] {
            let m = moe_lm::init::<f32>(config(Level::Sequence, gating, n_experts, dl), &mut init::rng(SEED));
            let r = moe_lm::routed(&m, b.ids.view(), b.targets.view(), Some(&b.labels), Route::default());
            let calls: usize = r.stats.calls.iter().sum();
            let rows: usize = r.stats.rows.iter().sum();
            println!(
                "   {n_experts:>7}  {label:<15}  {calls:>14}  {rows:>11}  {real_tokens:>11}  {:>14.2}",
                rows as f64 / real_tokens as f64
            );
            if dl.is_some() {
                tally.require("domain routing runs each real token through one expert", rows == real_tokens);
            }
        }
    }

    // ------------------------------------------------------------------------------------
    println!("\n== 3. Interventions on the trained token-level MoE of section 1");
    let base = eval(&tok_model, &val, 4, None);
    println!("-- force every token to one expert: validation loss per domain (nats/byte)");
    println!("   forced to     {}", names.iter().map(|n| format!("{n:>8}")).collect::<String>());
    println!("   (router)      {}", base.domain_loss.iter().map(|l| format!("{l:>8.3}")).collect::<String>());
    let mut force_loss = Array2::zeros((4, 4));
    for e in 0..4 {
        let iv = Intervention { force: Some(e), ..Intervention::default() };
        let r = eval(&tok_model, &val, 4, Some(&iv));
        println!("   expert {e}      {}", r.domain_loss.iter().map(|l| format!("{l:>8.3}")).collect::<String>());
        for (dd, &l) in r.domain_loss.iter().enumerate() {
            force_loss[[dd, e]] = l;
        }
        tally.require("forcing sends every token to the expert", r.top_share.iter().all(|row| row[e] == 1.0));
    }
    let png = figure("ch10_forced_expert_loss.png");
    let cols: Vec<String> = (0..4).map(|e| format!("forced {e}")).collect();
    routing_heatmap(&png, force_loss.view(), &names, &cols, "validation loss when forced to one expert", "domain")
        .unwrap_or_else(|e| fail(&e));
    println!("wrote {}", figures::shown(&png));

    println!("-- switch one expert off (the rest renormalise): Δ validation loss per domain");
    println!("   off           {}", names.iter().map(|n| format!("{n:>8}")).collect::<String>());
    for e in 0..4 {
        let iv = Intervention { disabled: vec![e], ..Intervention::default() };
        let r = eval(&tok_model, &val, 4, Some(&iv));
        let delta: Vec<f64> = r.domain_loss.iter().zip(&base.domain_loss).map(|(a, b)| a - b).collect();
        println!(
            "   expert {e}      {}   (it took {} of the tokens)",
            delta.iter().map(|l| format!("{l:>+8.3}")).collect::<String>(),
            pct(&[base.top_share.iter().map(|r| r[e]).sum::<f64>() / 4.0]).trim()
        );
        tally.require("a switched-off expert takes no token", r.top_share.iter().all(|row| row[e] == 0.0));
    }

    println!("-- freeze all but one expert, train 1 epoch");
    let keep = best_matching(&base.top_share)[0];
    let mut frozen = tok_model.clone();
    fit(&mut frozen, &train_set, &val, &train_cfg(1, freeze_all_but("moe", 4, keep)), &MoeTraining::default());
    let moved = changed(&tok_model, &frozen);
    let after = eval(&frozen, &val, 4, None);
    println!(
        "   kept trainable: expert {keep} (the one matched to {}); tensors that moved: {}",
        names[0],
        groups(&moved)
    );
    println!("   loss per domain {} → {}", nats(&base.domain_loss), nats(&after.domain_loss));
    let other_expert_moved =
        moved.iter().any(|n| n.starts_with("moe.experts.") && !n.starts_with(&format!("moe.experts.{keep}.")));
    tally.require("only the kept expert trains among the experts", !other_expert_moved);

    println!("-- train only the router, 1 epoch");
    let mut routed_only = tok_model.clone();
    fit(&mut routed_only, &train_set, &val, &train_cfg(1, train_only_router("moe")), &MoeTraining::default());
    let moved = changed(&tok_model, &routed_only);
    let after = eval(&routed_only, &val, 4, None);
    println!("   tensors that moved: {}", groups(&moved));
    println!("   loss per domain {} → {}", nats(&base.domain_loss), nats(&after.domain_loss));
    println!(
        "   specialisation index {:.3} → {:.3}",
        metrics::specialisation_index(table(&base.top_share).view()),
        metrics::specialisation_index(table(&after.top_share).view())
    );
    tally.require("router-only training moves only the router", moved.iter().all(|n| n.starts_with("moe.router")));

    println!("-- add a fifth expert for a new domain (history), train only it and the router, {EPOCHS} epochs");
    let new_train = Corpus::new(&[Domain::History], 4, TRAIN_PER_DOMAIN, SEED);
    let new_val = Corpus::new(&[Domain::History], 4, VAL_PER_DOMAIN, SEED + 1_000_003);
    let all_val = val.join(&new_val);
    for init_kind in ["mean of the trained columns (add_expert)", "fresh N(0, 0.02²) column, bias 0"] {
        let mut grown = tok_model.clone();
        let mut rng = init::rng(SEED + 11);
        let expert = Expert::mlp(&[32, 64, 32], Activation::GeluTanh, 0.0, &mut rng);
        let e = add_expert(&mut grown.moe, expert, &mut rng);
        grown.config.n_experts = 5;
        if init_kind.starts_with("fresh") {
            let last = grown.moe.router.net.layers.last_mut().expect("a router layer");
            let col = init::normal::<f32, _, _>((last.w.nrows(),), 0.02, &mut rng);
            last.w.column_mut(e).assign(&col);
            last.b[e] = 0.0;
        }
        let before = eval(&grown, &all_val, 5, None);
        // The router's mean score of each expert on history tokens, before any training.
        let hb = new_val.batches().batch(&(0..VAL_PER_DOMAIN).collect::<Vec<_>>());
        let hr = moe_lm::routed(&grown, hb.ids.view(), hb.targets.view(), None, Route::default());
        let real: Vec<usize> = (0..hr.chosen.len()).filter(|&row| !hr.chosen[row].is_empty()).collect();
        let mean_z = hr.logits.select(Axis(0), &real).mean_axis(Axis(0)).expect("real rows");
        println!("   new router column: {init_kind}");
        println!("      mean router logit on history tokens, experts 0..4: {}", nats(&mean_z.to_vec()));
        let start = grown.clone();
        let h = fit(
            &mut grown,
            &new_train,
            &new_val,
            &train_cfg(EPOCHS, train_only_expert_and_router("moe", e)),
            &MoeTraining::default(),
        );
        let after = eval(&grown, &all_val, 5, None);
        let moved = changed(&start, &grown);
        let old_same = start.moe.experts[..4] == grown.moe.experts[..4];
        println!(
            "      history tokens to expert {e}: {} → {} (after epoch 1: {})",
            pct(&[before.top_share[4][e]]).trim(),
            pct(&[after.top_share[4][e]]).trim(),
            pct(&[h.epochs[0].val.top_share[4][e]]).trim()
        );
        println!("      history loss {:.3} → {:.3}", before.domain_loss[4], after.domain_loss[4]);
        println!("      old domains' loss {} → {}", nats(&before.domain_loss[..4]), nats(&after.domain_loss[..4]));
        println!(
            "      old domains' tokens to expert {e} after: {}",
            pct(&after.top_share[..4].iter().map(|r| r[e]).collect::<Vec<_>>())
        );
        println!("      tensors that moved: {}; old experts bit-identical: {old_same}", groups(&moved));
        tally.require("add-expert training leaves the old experts as they were", old_same);
        tally.require(
            "add-expert training moves only the router and the new expert",
            moved.iter().all(|n| n.starts_with("moe.router") || n.starts_with(&format!("moe.experts.{e}."))),
        );
    }

    println!("-- SteerMoE: which experts are tied to code? (A = code tokens, B = the other domains' tokens)");
    let vb = val.batches();
    let rows: Vec<usize> = (0..vb.len()).collect();
    let b = vb.batch(&rows);
    let r = moe_lm::routed(&tok_model, b.ids.view(), b.targets.view(), None, Route::default());
    let seq = b.ids.ncols();
    let (mut chosen_a, mut chosen_b) = (Vec::new(), Vec::new());
    for (row, c) in r.chosen.iter().enumerate() {
        if c.is_empty() {
            continue; // padding
        }
        if b.labels[row / seq] == 0 {
            chosen_a.push(c.clone());
        } else {
            chosen_b.push(c.clone());
        }
    }
    let rd = steer::risk_difference(&chosen_a, &chosen_b, 4);
    let rate_a = steer::activation_rates(&chosen_a, 4);
    let rate_b = steer::activation_rates(&chosen_b, 4);
    println!("   expert   rate(code)  rate(others)   RD");
    for e in 0..4 {
        println!("   {e:>6}   {:>9.1}%  {:>11.1}%   {:+.3}", 100.0 * rate_a[e], 100.0 * rate_b[e], rd[e]);
    }
    let tied = steer::tied_experts(&rd, 1)[0];
    // How far apart the router's scores are sets the scale of a useful offset.
    let gaps: Vec<f64> = r
        .chosen
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty())
        .map(|(row, _)| {
            let mut z = r.logits.row(row).to_vec();
            z.sort_by(|a, b| b.total_cmp(a));
            z[0] - z[1]
        })
        .collect();
    println!(
        "   the router's top-two logit gap on validation tokens: mean {:.3}, max {:.3}",
        gaps.iter().sum::<f64>() / gaps.len() as f64,
        gaps.iter().copied().fold(0.0, f64::max)
    );
    println!("   most tied to code: expert {tied}");
    println!("-- steer at inference: offset o on expert {tied}'s router log-probability");
    println!("   offset  share of tokens to expert {tied} per domain        loss per domain");
    let mut last_total = -1.0;
    let mut monotone = true;
    for o in [-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0] {
        let mut offsets = vec![0.0; 4];
        offsets[tied] = o;
        let iv = Intervention { offsets: Some(offsets), ..Intervention::default() };
        let r = eval(&tok_model, &val, 4, Some(&iv));
        let shares: Vec<f64> = r.top_share.iter().map(|row| row[tied]).collect();
        let total = shares.iter().sum::<f64>();
        monotone &= total >= last_total;
        last_total = total;
        println!("   {o:>+6.1}  {}   {}", pct(&shares), nats(&r.domain_loss));
    }
    println!("   a larger offset never takes tokens away from the steered expert: {monotone}");
    tally.require("steering is monotone", monotone);
    println!("-- steer during training: 1 more epoch with offset +0.5 on expert {tied}, vs 1 more epoch without");
    for (label, o) in [("without offset", 0.0), ("with offset +0.5", 0.5)] {
        let mut m = tok_model.clone();
        let mut offsets = vec![0.0; 4];
        offsets[tied] = o;
        let moe = MoeTraining {
            intervention: Intervention { offsets: Some(offsets.clone()), ..Intervention::default() },
            ..MoeTraining::default()
        };
        fit(&mut m, &train_set, &val, &train_cfg(1, vec![]), &moe);
        let plain = eval(&m, &val, 4, None);
        let steered = eval(&m, &val, 4, Some(&Intervention { offsets: Some(offsets), ..Intervention::default() }));
        println!(
            "   {label}: share to expert {tied} evaluated without offset {}   loss {:.3}",
            pct(&plain.top_share.iter().map(|row| row[tied]).collect::<Vec<_>>()),
            plain.loss
        );
        println!(
            "   {:<width$}  evaluated with the training offset {}   loss {:.3}",
            "",
            pct(&steered.top_share.iter().map(|row| row[tied]).collect::<Vec<_>>()),
            steered.loss,
            width = label.len()
        );
    }

    if !tally.problems.is_empty() {
        for p in &tally.problems {
            println!("FAIL   {p}");
        }
        std::process::exit(1);
    }
    println!("\nevery fact above holds ({:.1} s).", started.elapsed().as_secs_f64());
}
