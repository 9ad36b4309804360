//! E5 (SPEC §4), the seed's own architecture: a domain-routed MoE language model. Embedding →
//! shared causal attention stack → a domain classifier on the mean of the stack's output →
//! the predicted domain's expert MLP (only that one runs) → output head, on ten synthetic
//! domains (the eight prose and code domains, and cooking and sports, added for E5).
//!
//! Arms (each over seeds 42, 43, 44):
//! ```text
//!   schedule            teacher forcing 1 → 0: early steps route by the true label, late
//!                       ones by the classifier (the main arm)
//!   teacher             always the true label while training (the classifier still learns)
//!   predicted           always the classifier's choice while training
//!   dense-active        one expert-sized MLP, no routing: equal active compute per token
//!   dense-total         one MLP ten experts wide: equal total parameters
//!   unbalanced          the schedule arm with one domain (story) 10× the others, shuffled
//!   unbalanced-sampled  the same data with balanced sampling (small domains oversampled), as
//!                       many steps as the shuffled arm (within one epoch)
//! ```
//! Every analysis runs on held-out sequences (another generator seed than training's):
//! routing accuracy, the confusion matrix and the classifier's confidence; accuracy against the
//! number of tokens seen (what generation can do); per-domain perplexity routed by the whole
//! sequence, by the prefix so far, by the true domain and to a wrong expert (misrouting); and
//! attention maps per head for one sample per domain. See [`crate::train::domain_eval`].

use crate::data::batch::Batches;
use crate::data::corpora::Domain;
use crate::data::real_corpus::RealDomain;
use crate::data::tokenizer::{Bytes, Tokenizer};
use crate::engine::params::{count, Tensors};
use crate::error::{Error, Result};
use crate::models::moe_lm as model;
use crate::plot::heatmap::attention_grid;
use crate::plot::line::{line_chart, Series};
use crate::plot::routing::routing_heatmap;
use crate::run::experiment::{Cell, Experiment, Finished, Metrics, Preset};
use crate::run::moe_lm::{self, MoeLmSpec};
use crate::run::results::{Report, Results, Table, Value};
use crate::run::settings::{
    DataChoice, ExpertChoice, GatingChoice, Optimizer, RoutingChoice, ScheduleKind, TrainingSpec,
};
use crate::train::domain_eval::{self, Routing};
use ndarray::s;

/// E5 over its arms.
pub struct E5;

/// The arms, in the report's order.
pub const ARMS: [&str; 7] =
    ["schedule", "teacher", "predicted", "dense-active", "dense-total", "unbalanced", "unbalanced-sampled"];
/// The index of the domain the unbalanced arms give ten times the others' samples: story
/// (synthetic) or politics (real).
pub const HEAVY: usize = 2;

/// E5's ten domains, in expert order: [`Domain::E5`] (synthetic) or [`RealDomain::ALL`] (real).
pub fn domain_names(data: DataChoice) -> Vec<String> {
    match data {
        DataChoice::Synthetic => Domain::E5.iter().map(|d| d.name().to_string()).collect(),
        DataChoice::Real => RealDomain::ALL.iter().map(|d| d.name().to_string()).collect(),
    }
}
/// Prefix lengths (tokens seen) at which routing accuracy is measured; those past the
/// sequence length are left out.
const PREFIXES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 96, 128];
/// Bytes of each domain's sample shown in its attention map.
const ATTENTION_BYTES: usize = 32;

/// The sizes of a run: data, model, epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub train_per_domain: usize,
    pub val_per_domain: usize,
    pub max_len: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub shared_layers: usize,
    pub expert_hidden: usize,
    pub epochs: usize,
    pub warmup_steps: usize,
}

impl Size {
    /// `--preset full`: E5's run.
    pub const FULL: Size = Size {
        train_per_domain: 200,
        val_per_domain: 50,
        max_len: 128,
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        shared_layers: 2,
        expert_hidden: 256,
        epochs: 6,
        warmup_steps: 30,
    };
    /// `--preset quick`: seconds, for tests (too short to learn the domains).
    pub const QUICK: Size = Size {
        train_per_domain: 12,
        val_per_domain: 6,
        max_len: 48,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        shared_layers: 1,
        expert_hidden: 64,
        epochs: 2,
        warmup_steps: 2,
    };
    /// The main job (`tinymoe demo`): the full model for half of its epochs.
    pub const DEMO: Size = Size { epochs: 3, ..Size::FULL };
    /// Chapter 17's example: small enough for the test suite, large enough to learn the
    /// domains.
    pub const CHAPTER: Size = Size {
        train_per_domain: 60,
        val_per_domain: 20,
        max_len: 96,
        d_model: 48,
        n_heads: 4,
        d_ff: 192,
        shared_layers: 2,
        expert_hidden: 192,
        epochs: 4,
        warmup_steps: 10,
    };

    pub fn of(preset: Preset) -> Size {
        match preset {
            Preset::Quick => Size::QUICK,
            Preset::Full => Size::FULL,
        }
    }
}

/// The settings every domain-routed arm shares, for a size, data and a seed.
pub fn base(size: Size, data: DataChoice, seed: u64) -> MoeLmSpec {
    let domains = domain_names(data);
    MoeLmSpec {
        preset: "e5".into(),
        corpus: data,
        tokenizer: "bytes".into(),
        experts: domains.len(),
        domains,
        train_per_domain: size.train_per_domain,
        domain_train: None,
        val_per_domain: size.val_per_domain,
        max_len: size.max_len,
        d_model: size.d_model,
        n_heads: size.n_heads,
        d_ff: size.d_ff,
        dropout: 0.0,
        shared_layers: size.shared_layers,
        expert: ExpertChoice::Mlp,
        expert_hidden: size.expert_hidden,
        expert_layers: 1,
        bidirectional: false,
        router_hidden: None,
        noisy: false,
        routing: RoutingChoice::Domain,
        gating: GatingChoice::TopK,
        top_k: 1,
        capacity_factor: None,
        // The classifier learns from its own cross-entropy only.
        balance_loss: 0.0,
        z_loss: 0.0,
        token_entropy: 0.0,
        batch_entropy: 0.0,
        domain_loss: 1.0,
        balanced: false,
        teacher_start: 1.0,
        teacher_end: 0.0,
        training: TrainingSpec {
            epochs: size.epochs,
            batch_size: 16,
            lr: 3e-3,
            optimizer: Optimizer::Adam,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: ScheduleKind::Cosine,
            warmup_steps: size.warmup_steps,
            clip: Some(1.0),
            seed,
        },
    }
}

/// The settings of one arm of a preset.
pub fn spec(arm: &str, preset: Preset, data: DataChoice, seed: u64) -> Result<MoeLmSpec> {
    let mut s = sized(arm, Size::of(preset), data, seed)?;
    s.preset = match data {
        DataChoice::Synthetic => format!("e5-{}-{arm}", preset.name()),
        DataChoice::Real => format!("e5-{}-real-{arm}", preset.name()),
    };
    Ok(s)
}

/// The settings of one arm at any size.
pub fn sized(arm: &str, size: Size, data: DataChoice, seed: u64) -> Result<MoeLmSpec> {
    let mut s = base(size, data, seed);
    s.preset = format!("e5-{arm}");
    let dense = |s: &mut MoeLmSpec, hidden: usize| {
        s.routing = RoutingChoice::Token;
        s.experts = 1;
        s.expert_hidden = hidden;
    };
    let unbalanced = |s: &mut MoeLmSpec| {
        let small = (s.train_per_domain / 10).max(1);
        s.domain_train =
            Some((0..s.domains.len()).map(|d| if d == HEAVY { s.train_per_domain } else { small }).collect());
    };
    match arm {
        "schedule" => {}
        "teacher" => (s.teacher_start, s.teacher_end) = (1.0, 1.0),
        "predicted" => (s.teacher_start, s.teacher_end) = (0.0, 0.0),
        "dense-active" => {
            let h = s.expert_hidden;
            dense(&mut s, h)
        }
        "dense-total" => {
            let h = s.expert_hidden * s.experts;
            dense(&mut s, h)
        }
        "unbalanced" => unbalanced(&mut s),
        "unbalanced-sampled" => {
            unbalanced(&mut s);
            s.balanced = true;
            // Balanced sampling makes an epoch `domains × largest` sequences: as many epochs
            // as give the shuffled arm's number of sequences (at least one).
            let sizes = s.train_sizes();
            let shuffled = sizes.iter().sum::<usize>() * s.training.epochs;
            let per_epoch = sizes.len() * sizes.iter().copied().max().unwrap_or(1);
            s.training.epochs = ((shuffled as f64 / per_epoch as f64).round() as usize).max(1);
        }
        other => return Err(Error::Unknown { what: "E5 arm".into(), name: other.into(), expected: ARMS.join(", ") }),
    }
    s.validate()?;
    Ok(s)
}

fn is_routed(arm: &str) -> bool {
    !arm.starts_with("dense")
}

impl Experiment for E5 {
    fn name(&self) -> &'static str {
        "e5"
    }
    fn description(&self) -> &'static str {
        "the domain-routed MoE LM: a domain classifier sends each sequence to one of 10 expert MLPs, \
         against dense models of equal active compute and equal total parameters"
    }
    fn question(&self) -> &'static str {
        "Does a language model whose shared attention stack feeds a domain classifier, which sends each \
         sequence to its domain's expert MLP (only that one runs: 10 % of the experts), reach a lower \
         per-domain perplexity than a dense model of equal active compute — and what do wrong routing \
         decisions, routing from a prefix, unbalanced domain sizes and teacher forcing cost?"
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        ARMS.iter().map(|a| a.to_string()).collect()
    }
    fn data(&self) -> Vec<DataChoice> {
        vec![DataChoice::Synthetic, DataChoice::Real]
    }
    fn prepare(&self, preset: Preset, data: DataChoice) -> Result<()> {
        for arm in ARMS {
            spec(arm, preset, data, 42)?;
        }
        if data == DataChoice::Real {
            // Every corpus is there and holds enough windows, before the first cell trains.
            for arm in ["schedule", "unbalanced"] {
                let s = spec(arm, preset, data, 42)?;
                s.train_samples()?;
                s.val_samples(s.val_per_domain)?;
            }
        }
        Ok(())
    }

    fn headline(&self) -> &'static [&'static str] {
        &["ppl_model", "ppl_prefix", "routing_accuracy", "ppl_small_domains", "params_active", "steps"]
    }

    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let spec = spec(cell.arm, cell.preset, cell.data, cell.seed)?;
        run_arm(cell, &spec)
    }

    fn report(&self, run: &Finished, out: &mut Results, report: &mut Report) -> Result<()> {
        write_report(run, Size::of(run.preset), out, report)
    }
}

/// The main job (`tinymoe demo`): E5's main arm and its dense baseline of equal active compute,
/// one seed, at `full` size ([`Demo::MAIN`]: [`Size::DEMO`]; `--preset quick`: [`Size::QUICK`],
/// for tests).
pub struct Demo {
    pub full: Size,
    /// The domains: synthetic (the main job) or real (chapter 17's real-data figure).
    pub data: DataChoice,
    /// How a user runs it (for the report), e.g. `tinymoe demo`.
    pub command: &'static str,
}

impl Demo {
    pub const ARMS: [&'static str; 2] = ["schedule", "dense-active"];
    /// `tinymoe demo`.
    pub const MAIN: Demo = Demo { full: Size::DEMO, data: DataChoice::Synthetic, command: "tinymoe demo" };

    pub fn size(&self, preset: Preset) -> Size {
        match preset {
            Preset::Quick => Size::QUICK,
            Preset::Full => self.full,
        }
    }
}

impl Experiment for Demo {
    fn name(&self) -> &'static str {
        "demo"
    }
    fn description(&self) -> &'static str {
        "a domain-routed MoE LM on ten domains beside a dense model of the same compute per token (the main job)"
    }
    fn command(&self, preset: Preset, _: crate::run::settings::DataChoice) -> String {
        match preset {
            Preset::Quick => format!("{} --quick", self.command),
            Preset::Full => self.command.to_string(),
        }
    }
    fn question(&self) -> &'static str {
        E5.question()
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        Demo::ARMS.iter().map(|a| a.to_string()).collect()
    }
    fn seeds(&self, _: Preset) -> Vec<u64> {
        vec![42]
    }
    fn data(&self) -> Vec<DataChoice> {
        vec![self.data]
    }
    fn prepare(&self, preset: Preset, data: DataChoice) -> Result<()> {
        E5.prepare(preset, data)
    }
    fn headline(&self) -> &'static [&'static str] {
        E5.headline()
    }
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let spec = sized(cell.arm, self.size(cell.preset), cell.data, cell.seed)?;
        run_arm(cell, &spec)
    }
    fn report(&self, run: &Finished, out: &mut Results, report: &mut Report) -> Result<()> {
        write_report(run, self.size(run.preset), out, report)
    }
}

/// Trains one arm's model into the cell's folder and measures it on the held-out sequences:
/// perplexity.csv (and, for the routed arms, the routing pictures and tables, the attention
/// maps and generated samples of the schedule arm).
pub fn run_arm(cell: &mut Cell, spec: &MoeLmSpec) -> Result<Metrics> {
    let o = moe_lm::run(spec, cell.out.dir(), None, false, cell.observer)?;
    let last = o.history.epochs.last().ok_or_else(|| Error::bad_value("epochs", 0, "no epoch ran"))?;
    let names: Vec<String> = spec.domains.clone();
    let nd = names.len();
    let pad = o.model.config.pad_id.unwrap_or(256);
    let (val_seqs, val_labels) = spec.val_samples(spec.val_per_domain)?;
    let batch = spec.training.batch_size;
    let val = Batches::new(&val_seqs, &val_labels, spec.max_len, pad, batch)?;
    let m = &o.model;

    let total = count(m as &dyn Tensors<f32>);
    let expert = count(&m.moe.experts[0] as &dyn Tensors<f32>);
    let active = total - (m.config.n_experts - 1) * expert;
    let mut metrics: Metrics = vec![
        ("val_loss".into(), last.val.loss),
        ("steps".into(), o.history.step_losses.len() as f64),
        ("params_total".into(), total as f64),
        ("params_active".into(), active as f64),
    ];
    // Model routing first: it is the one every arm has.
    let routings: &[Routing] = if is_routed(cell.arm) {
        &[Routing::Model, Routing::True, Routing::Prefix, Routing::Wrong]
    } else {
        &[Routing::Model]
    };
    let mut ppl_table = Table::new(
        &std::iter::once("domain".to_string())
            .chain(routings.iter().map(|r| format!("ppl_{}", r.name())))
            .chain(is_routed(cell.arm).then(|| "routing_accuracy".to_string()))
            .collect::<Vec<_>>(),
    );
    let ppl: Vec<Vec<f64>> = routings.iter().map(|&r| domain_eval::domain_perplexity(m, &val, nd, r, batch)).collect();
    let classified = is_routed(cell.arm).then(|| domain_eval::classify(m, &val, nd, batch));
    for (d, name) in names.iter().enumerate() {
        let mut row: Vec<Value> = vec![name.as_str().into()];
        row.extend(ppl.iter().map(|p| Value::Num(p[d])));
        if let Some(c) = &classified {
            row.push(c.domain_accuracy(d).into());
        }
        ppl_table.push(row);
    }
    cell.out.table("perplexity.csv", &ppl_table)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let small = |v: &[f64]| {
        let rest: Vec<f64> = v.iter().enumerate().filter(|(i, _)| *i != HEAVY).map(|(_, &x)| x).collect();
        mean(&rest)
    };
    for (r, p) in routings.iter().zip(&ppl) {
        metrics.push((format!("ppl_{}", r.name()), mean(p)));
    }
    metrics.push(("ppl_small_domains".into(), small(&ppl[0])));
    for (d, name) in names.iter().enumerate() {
        metrics.push((format!("ppl_{name}"), ppl[0][d]));
        for (r, p) in routings.iter().zip(&ppl).skip(1) {
            metrics.push((format!("ppl_{}_{name}", r.name()), p[d]));
        }
    }

    if let Some(c) = classified {
        let accs: Vec<f64> = (0..nd).map(|d| c.domain_accuracy(d)).collect();
        metrics.push(("routing_accuracy".into(), c.accuracy()));
        metrics.push(("routing_accuracy_small_domains".into(), small(&accs)));
        metrics.push(("confidence_right".into(), c.mean_confidence(true)));
        metrics.push(("confidence_wrong".into(), c.mean_confidence(false)));
        let experts: Vec<String> = (0..m.config.n_experts).map(|e| format!("{e}")).collect();
        let confusion = c.confusion(m.config.n_experts);
        routing_heatmap(
            &cell.out.path("confusion.png"),
            confusion.view(),
            &names,
            &experts,
            "routing: share of each domain's held-out sequences sent to each expert",
            "true domain",
        )?;
        cell.out.record("confusion.png");
        let hist = c.confidence_histogram(10);
        let right: Vec<(f64, f64)> = hist.iter().map(|&(x, r, _)| (x, r)).collect();
        let wrong: Vec<(f64, f64)> = hist.iter().map(|&(x, _, w)| (x, w)).collect();
        line_chart(
            &cell.out.path("confidence.png"),
            "classifier confidence (probability of the chosen domain), held-out sequences",
            "confidence (10 bins)",
            "share of the right / of the wrong routings",
            &[Series { name: "routed right", points: &right }, Series { name: "routed wrong", points: &wrong }],
        )?;
        cell.out.record("confidence.png");
        let lens: Vec<usize> = PREFIXES.iter().copied().filter(|&l| l <= spec.max_len).collect();
        let points = domain_eval::accuracy_by_prefix(m, &val, &lens, batch);
        let mut t = Table::new(&["tokens_seen", "accuracy", "confidence", "sequences"]);
        for p in &points {
            t.push(vec![p.len.into(), p.accuracy.into(), p.confidence.into(), p.sequences.into()]);
            metrics.push((format!("accuracy_after_{}", p.len), p.accuracy));
        }
        cell.out.table("prefix_accuracy.csv", &t)?;
        let acc: Vec<(f64, f64)> = points.iter().map(|p| (p.len as f64, p.accuracy)).collect();
        let conf: Vec<(f64, f64)> = points.iter().map(|p| (p.len as f64, p.confidence)).collect();
        line_chart(
            &cell.out.path("prefix_accuracy.png"),
            "routing from a prefix: the first t tokens only (as when generating)",
            "tokens seen",
            "share / probability",
            &[Series { name: "routing accuracy", points: &acc }, Series { name: "mean confidence", points: &conf }],
        )?;
        cell.out.record("prefix_accuracy.png");
        if cell.arm == "schedule" {
            draw_attention(m, &val_seqs, &val_labels, &names, cell.out)?;
        }
    }
    if cell.arm == "schedule" {
        let text = samples(m, &val_seqs, &val_labels, &names, cell.seed);
        cell.out.text("samples.md", &text)?;
    }
    Ok(metrics)
}

/// E5's own report sections, for a run at `size`.
pub fn write_report(run: &Finished, size: Size, out: &mut Results, report: &mut Report) -> Result<()> {
    let names = domain_names(run.data);
    let heavy = names[HEAVY].as_str();
    let ms = |arm: &str, metric: &str| -> Value {
        let Some(s) = run.get(arm, metric) else { return "—".into() };
        // Counts and rates as whole numbers, shares as percentages, the rest to 3 places.
        let (scale, digits, unit) = if s.mean.abs() >= 100.0 && !metric.starts_with("ppl") {
            (1.0, 0, "")
        } else if metric.contains("accuracy") || metric.starts_with("confidence") {
            (100.0, 1, " %")
        } else {
            (1.0, 3, "")
        };
        let f = |v: f64| format!("{:.*}", digits, v * scale);
        if s.n > 1 && s.std.is_finite() {
            format!("{} ± {}{unit}", f(s.mean), f(s.std)).into()
        } else {
            format!("{}{unit}", f(s.mean)).into()
        }
    };
    let s = sized("schedule", size, run.data, run.seeds[0])?;
    report.heading("Settings");
    report.text(&format!(
        "{} domains ({}), {} training and {} held-out sequences per domain ({}), bytes as tokens, {} positions per sequence. Shared stack: {} causal pre-LN block(s), d_model {}, \
         {} heads, d_ff {}. Experts: {} MLPs {} → {} → {} inside a residual; the domain classifier is a linear \
         layer on the mean of the stack's output, trained by its cross-entropy (weight {}), top-1. Adam, lr {}, \
         cosine schedule with {} warm-up steps, clip {}, batch {}, {} epochs. Dense baselines: the same model with \
         one MLP of width {} (equal active compute) or {} (equal total parameters). Unbalanced arms: {} has {} \
         sequences, every other domain {}.",
        s.domains.len(),
        s.domains.join(", "),
        s.train_per_domain,
        s.val_per_domain,
        match run.data {
            DataChoice::Synthetic => "the built-in generators; held-out sequences from another generator seed".to_string(),
            DataChoice::Real => format!(
                "real text from data/: BBC News topics, tweets, the Rust standard library's source, The Rust Book, \
                 rustc's error-code explanations and Python's library reference, cut into windows of {} bytes that \
                 start at a line; every domain's documents split once by a fixed seed, a fifth held out, so no \
                 held-out window shares a document with a training one",
                s.max_len + 1
            ),
        },
        s.max_len,
        s.shared_layers,
        s.d_model,
        s.n_heads,
        s.d_ff,
        s.experts,
        s.d_model,
        s.expert_hidden,
        s.d_model,
        s.domain_loss,
        s.training.lr,
        s.training.warmup_steps,
        s.training.clip.unwrap_or(0.0),
        s.training.batch_size,
        s.training.epochs,
        s.expert_hidden,
        s.expert_hidden * s.experts,
        heavy,
        s.train_per_domain,
        (s.train_per_domain / 10).max(1),
    ));

    let mut t = Table::new(&[
        "arm",
        "perplexity (model routing)",
        "perplexity (prefix routing)",
        "routing accuracy",
        "confidence right",
        "confidence wrong",
        "parameters",
        "active per token",
        "steps",
    ]);
    for arm in &run.arms {
        t.push(vec![
            arm.as_str().into(),
            ms(arm, "ppl_model"),
            ms(arm, "ppl_prefix"),
            ms(arm, "routing_accuracy"),
            ms(arm, "confidence_right"),
            ms(arm, "confidence_wrong"),
            ms(arm, "params_total"),
            ms(arm, "params_active"),
            ms(arm, "steps"),
        ]);
    }
    report.heading("Every arm (held-out sequences, mean ± std over seeds)");
    report.text(
        "Perplexity is exp(mean nats per byte) per domain, averaged over the domains. *Model routing* sends a \
         sequence where the classifier puts it after reading all of it (how training evaluates; the choice has \
         seen bytes after the one predicted). *Prefix routing* routes each position by the classifier's choice \
         from the bytes so far — what a model that generates can do.",
    );
    report.table(&t);
    out.table("e5_arms.csv", &t)?;

    let has = |arm: &str| run.arms.iter().any(|a| a == arm);
    let mut columns = vec!["domain", "schedule (model)", "schedule (prefix)"];
    let dense: Vec<(&str, &str)> = [("dense-active", "dense, equal active"), ("dense-total", "dense, equal total")]
        .into_iter()
        .filter(|(arm, _)| has(arm))
        .collect();
    columns.extend(dense.iter().map(|(_, c)| *c));
    let mut d = Table::new(&columns);
    for name in &names {
        let key = format!("ppl_{name}");
        let mut row = vec![name.as_str().into(), ms("schedule", &key), ms("schedule", &format!("ppl_prefix_{name}"))];
        row.extend(dense.iter().map(|(arm, _)| ms(arm, &key)));
        d.push(row);
    }
    report.heading("Per-domain perplexity against the dense baselines");
    report.table(&d);
    out.table("e5_perplexity.csv", &d)?;

    let mut mis = Table::new(&["domain", "true expert", "classifier (whole)", "classifier (prefix)", "wrong expert"]);
    for name in &names {
        let col = |r: &str| ms("schedule", &format!("ppl_{r}_{name}"));
        mis.push(vec![
            name.as_str().into(),
            col("true"),
            ms("schedule", &format!("ppl_{name}")),
            col("prefix"),
            col("wrong"),
        ]);
    }
    report.heading("Misrouting (schedule arm): per-domain perplexity by where the sequence goes");
    report.text("The wrong expert is (true domain + 1) mod 10: the expert of another domain.");
    report.table(&mis);
    out.table("e5_misrouting.csv", &mis)?;

    let lens: Vec<usize> = PREFIXES.iter().copied().filter(|&l| l <= s.max_len).collect();
    let routed: Vec<&str> = ["schedule", "teacher", "predicted"].into_iter().filter(|a| has(a)).collect();
    let mut pre = Table::new(&std::iter::once("tokens seen").chain(routed.iter().copied()).collect::<Vec<_>>());
    let mut series = Vec::new();
    for &arm in &routed {
        let pts: Vec<(f64, f64)> = lens
            .iter()
            .filter_map(|&l| run.get(arm, &format!("accuracy_after_{l}")).map(|m| (l as f64, m.mean)))
            .collect();
        series.push((arm, pts));
    }
    for &l in &lens {
        let mut row: Vec<Value> = vec![l.into()];
        for &arm in &routed {
            row.push(ms(arm, &format!("accuracy_after_{l}")));
        }
        pre.push(row);
    }
    let fig = out.figure("e5_prefix_accuracy", "routing accuracy against tokens seen", |p| {
        let ss: Vec<Series> = series.iter().map(|(n, pts)| Series { name: n, points: pts }).collect();
        line_chart(
            p,
            "routing accuracy from the first t bytes (mean over seeds)",
            "tokens seen",
            "routing accuracy",
            &ss,
        )
    })?;
    report.heading("Routing from a prefix: how soon the classifier knows");
    report.table(&pre).figure(&fig);
    out.table("e5_prefix_accuracy.csv", &pre)?;

    if has("unbalanced") || has("unbalanced-sampled") {
        let mut u = Table::new(&[
            "arm",
            "steps",
            "routing accuracy, small domains",
            "perplexity, small domains",
            format!("perplexity, {heavy}").as_str(),
        ]);
        for arm in ["schedule", "unbalanced", "unbalanced-sampled"] {
            u.push(vec![
                arm.into(),
                ms(arm, "steps"),
                ms(arm, "routing_accuracy_small_domains"),
                ms(arm, "ppl_small_domains"),
                ms(arm, &format!("ppl_{heavy}")),
            ]);
        }
        report.heading("Unbalanced domains");
        report.text(&format!(
            "{} has ten times the sequences of every other domain; *unbalanced* shuffles them, *unbalanced-sampled* \
         draws every domain equally in each batch (the small ones repeat) for about as many steps. The schedule \
         arm (all domains equal, more data in all) is the reference.",
            heavy
        ));
        report.table(&u);
    }

    if let Some(c) = run.cell("schedule", run.seeds[0]).filter(|c| c.result.is_ok()) {
        report.heading(&format!("Pictures of the schedule arm, seed {}", c.seed));
        report.text(&format!(
            "![confusion matrix]({0}/confusion.png)\n\n![confidence]({0}/confidence.png)\n\n\
             ![routing from a prefix]({0}/prefix_accuracy.png)\n\n![loss]({0}/loss_curve.png)",
            c.dir
        ));
        report
            .subheading("Attention of the last shared block, per head, first bytes of one held-out sample per domain");
        let links: Vec<String> = names.iter().map(|n| format!("![{n}]({}/attention_{n}.png)", c.dir)).collect();
        report.text(&links.join("\n\n"));
        if let Ok(samples) = std::fs::read_to_string(out.path(&format!("{}/samples.md", c.dir))) {
            report.subheading(&format!("Generated samples ([{}/samples.md]({0}/samples.md))", c.dir));
            // The file's own title is the subheading's; its domains become bold lines.
            let body: Vec<String> = samples
                .lines()
                .skip(1)
                .map(|l| l.strip_prefix("## ").map_or(l.to_string(), |d| format!("**{d}**")))
                .collect();
            report.text(body.join("\n").trim());
        }
    }

    report.heading("Verdicts");
    let verdict_text = verdicts(run);
    report.text(&verdict_text);
    if let Some(c) = run.cell("schedule", run.seeds[0]).filter(|c| c.result.is_ok()) {
        write_html(run, c, size, &verdict_text, out)?;
        report.text("A page to look at: [report.html](report.html) — the pictures and a token explorer (each held-out byte coloured by the expert it went to, the classifier's probabilities on hover).");
    }
    Ok(())
}

/// Whether `a` is below `b` beyond the seeds' spread: "lower", "higher" or "within the spread".
fn compare(run: &Finished, a: (&str, &str), b: (&str, &str)) -> Option<(f64, f64, &'static str)> {
    let (x, y) = (run.get(a.0, a.1)?, run.get(b.0, b.1)?);
    let spread = if x.std.is_finite() && y.std.is_finite() { x.std + y.std } else { 0.0 };
    let word = if x.mean + spread < y.mean {
        "lower than"
    } else if x.mean > y.mean + spread {
        "higher than"
    } else {
        "within the seeds' spread of"
    };
    Some((x.mean, y.mean, word))
}

fn verdicts(run: &Finished) -> String {
    let mut v = Vec::new();
    let n = run.seeds.len();
    let spread_note = if n > 1 {
        format!("(means over {n} seeds; \"beyond the spread\" = the means differ by more than the two stds together)")
    } else {
        "(one seed: no spread, read as a hint only)".to_string()
    };
    v.push(spread_note);
    if let (Some(t), Some(a)) = (run.get("schedule", "params_total"), run.get("schedule", "params_active")) {
        v.push(format!(
            "*Claim: only the chosen expert runs, so with 10 domains about 10 % of the experts are active per token.* \
             **Supported by construction**: every sequence runs exactly one of the 10 expert MLPs; {:.0} of the model's \
             {:.0} parameters ({:.0} %) are active for a token, the rest being the other nine experts. Whether compute \
             per token stays constant as experts are added is measured by `tinymoe bench --workload e5-2|e5-5|e5-10` \
             (chapter 17), not here.",
            a.mean,
            t.mean,
            100.0 * a.mean / t.mean
        ));
    }
    for (what, routing) in [
        ("as the classifier routes the whole sequence", "ppl_model"),
        ("routing each byte by the prefix before it (what generation can do)", "ppl_prefix"),
    ] {
        if let Some((x, y, word)) = compare(run, ("schedule", routing), ("dense-active", "ppl_model")) {
            let verdict = match word {
                "lower than" => "**supported**",
                "higher than" => "**not supported** (the dense model is better)",
                _ => "**not supported** (no difference beyond the seeds' spread)",
            };
            v.push(format!(
                "*Claim: domain experts give a lower per-domain perplexity than a dense model of equal active compute* — \
                 {what}: {verdict}: mean perplexity {x:.3} against {y:.3}, {word} the dense model's."
            ));
        }
    }
    if let Some((x, y, word)) = compare(run, ("schedule", "ppl_model"), ("dense-total", "ppl_model")) {
        v.push(format!(
            "*Against a dense model with the same total parameters* (ten experts' width in one MLP, ten times the \
             compute per token): {x:.3} against {y:.3}, {word} it."
        ));
    }
    if let Some(acc) = run.get("schedule", "routing_accuracy") {
        v.push(format!(
            "*Routing accuracy* (schedule arm, whole held-out sequences): {:.1} %{}.",
            100.0 * acc.mean,
            if acc.std.is_finite() { format!(" ± {:.1}", 100.0 * acc.std) } else { String::new() }
        ));
    }
    if let (Some((t, m, _)), Some(w)) =
        (compare(run, ("schedule", "ppl_true"), ("schedule", "ppl_model")), run.get("schedule", "ppl_wrong"))
    {
        v.push(format!(
            "*Misrouting*: sent to the true expert {t:.3}, where the classifier sends it {m:.3}, to a wrong expert \
             {:.3} (mean perplexity over domains). A wrong expert costs {:.0} % more perplexity than the right one.",
            w.mean,
            100.0 * (w.mean / t - 1.0)
        ));
    }
    if let (Some(u), Some(b)) =
        (run.get("unbalanced", "ppl_small_domains"), run.get("unbalanced-sampled", "ppl_small_domains"))
    {
        let word = if let Some((_, _, w)) =
            compare(run, ("unbalanced-sampled", "ppl_small_domains"), ("unbalanced", "ppl_small_domains"))
        {
            w
        } else {
            ""
        };
        v.push(format!(
            "*Unbalanced domains, and balanced sampling as their cure*: on the nine small domains, perplexity {:.3} \
             shuffled and {:.3} with balanced sampling ({word} the shuffled arm's); routing accuracy on them {} and {}.",
            u.mean,
            b.mean,
            run.get("unbalanced", "routing_accuracy_small_domains").map_or("—".to_string(), |s| format!("{:.1} %", 100.0 * s.mean)),
            run.get("unbalanced-sampled", "routing_accuracy_small_domains").map_or("—".to_string(), |s| format!("{:.1} %", 100.0 * s.mean)),
        ));
    }
    let line = |arm: &str| {
        format!(
            "{arm}: accuracy {}, perplexity {} (model) / {} (prefix)",
            run.get(arm, "routing_accuracy").map_or("—".to_string(), |s| format!("{:.1} %", 100.0 * s.mean)),
            run.get(arm, "ppl_model").map_or("—".to_string(), |s| format!("{:.3}", s.mean)),
            run.get(arm, "ppl_prefix").map_or("—".to_string(), |s| format!("{:.3}", s.mean)),
        )
    };
    if ["teacher", "predicted"].iter().all(|a| run.arms.iter().any(|x| x == a)) {
        v.push(format!(
            "*Teacher forcing against routing by prediction*: {}; {}; {}.",
            line("teacher"),
            line("predicted"),
            line("schedule")
        ));
    }
    v.join("\n\n")
}

/// report.html beside report.md: the schedule arm's pictures (first seed) and the token
/// explorer over two held-out samples per domain, read prefix by prefix as at generation time.
fn write_html(
    run: &Finished,
    c: &crate::run::experiment::CellOutcome,
    size: Size,
    verdicts: &str,
    out: &mut Results,
) -> Result<()> {
    let moe_lm::Loaded { model, domains: names, .. } = moe_lm::load_model(&out.path(&format!("{}/model.ckpt", c.dir)))?;
    let (seqs, labels) = sized("schedule", size, run.data, c.seed)?.val_samples(2)?;
    let explorer = crate::run::moe_explorer::moe_lm_explorer(&model, &seqs, &labels, &names, &Bytes, size.max_len, 2)?;
    let first = &names[0];
    let attention = (
        format!("attention_{first}.png"),
        format!("Attention of the last shared block, each head, on a {first} sample."),
    );
    let mut figures: Vec<(String, std::path::PathBuf)> = [
        ("confusion.png", "Where each domain's held-out sequences were routed (rows: true domain)."),
        ("prefix_accuracy.png", "Routing accuracy and confidence from the first t bytes only."),
        ("confidence.png", "The classifier's confidence on the sequences it routed right and wrong."),
        ("loss_curve.png", "Next-byte loss: every training step, and validation after each epoch."),
        (attention.0.as_str(), attention.1.as_str()),
    ]
    .iter()
    .map(|(f, cap)| (cap.to_string(), out.path(&format!("{}/{f}", c.dir))))
    .collect();
    if out.path("e5_prefix_accuracy.png").is_file() {
        figures.insert(
            1,
            (
                "Routing accuracy from a prefix, every routed arm (mean over seeds).".into(),
                out.path("e5_prefix_accuracy.png"),
            ),
        );
    }
    let plain = verdicts.replace("**", "").replace('*', "");
    let intro = format!(
        "{} ({} preset, seeds {}). The routed model of the schedule arm, seed {}: the pictures, then every byte of \
         two held-out samples per domain coloured by the expert the classifier sends it to once that byte is read.\n\n{plain}",
        run.name,
        run.preset.name(),
        run.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        c.seed
    );
    let html = crate::run::html::render_report_html(
        "E5: a domain-routed mixture-of-experts language model",
        &intro,
        &figures,
        &explorer,
    )?;
    out.write("report.html", html.as_bytes())?;
    Ok(())
}

/// Bytes of a held-out sample given as the prompt, and bytes generated after it.
const PROMPT_BYTES: usize = 24;
const GENERATED_BYTES: usize = 96;

/// samples.md: for the first held-out sample of each domain, its first bytes continued three
/// ways — by its true domain's expert, where the classifier routes it (prefix by prefix, as
/// generation goes), and by a wrong expert ((true + 1) mod domains) — each byte tagged with the
/// expert that read it. Sampling: temperature 0.8, top-k 20, seeded.
pub fn samples(m: &model::Params<f32>, seqs: &[Vec<usize>], labels: &[usize], names: &[String], seed: u64) -> String {
    use crate::models::generate::Sampling;
    use crate::models::moe_generate::{generate_moe, tagged_text};
    let how = Sampling { temperature: 0.8, top_k: Some(20) };
    let nd = names.len();
    let mut out = String::from(
        "# Generated samples under three routings\n\nEach prompt is the first bytes of a held-out sample; `[eN]` marks \
         where expert N takes over. *true*: forced to the domain's own expert; *classifier*: routed as the model \
         routes while generating (the classifier reads the text so far); *wrong*: forced to expert (true + 1) mod 10.\n",
    );
    for (d, name) in names.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == d) else { continue };
        let prompt = &seqs[i][..seqs[i].len().min(PROMPT_BYTES)];
        out += &format!("\n## {name}\n\nprompt: `{}`\n\n", Bytes.decode(prompt).replace('`', "'"));
        for (what, force) in [("true", Some(d)), ("classifier", None), ("wrong", Some((d + 1) % nd))] {
            let g = generate_moe(m, prompt, GENERATED_BYTES, how, force, &mut crate::engine::init::rng(seed));
            let text = tagged_text(&g, |ids| Bytes.decode(ids)).replace('\n', " ⏎ ").replace('`', "'");
            let said = g.prediction_after(g.tokens.len()).map_or(String::new(), |p| {
                format!(
                    " (classifier at the end: {} {:.0} %)",
                    names.get(p.domain).map_or("?", |n| n.as_str()),
                    100.0 * p.confidence
                )
            });
            out += &format!("- **{what}**{said}: `{text}`\n");
        }
    }
    out
}

/// attention_{domain}.png: each head's weights over the first bytes of the domain's first
/// held-out sample, in the last shared block.
fn draw_attention(
    m: &model::Params<f32>,
    seqs: &[Vec<usize>],
    labels: &[usize],
    names: &[String],
    out: &mut Results,
) -> Result<()> {
    let Some(layer) = m.config.shared_layers.checked_sub(1) else { return Ok(()) };
    for (d, name) in names.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == d) else { continue };
        let n = seqs[i].len().min(ATTENTION_BYTES).min(m.config.max_seq);
        let ids = ndarray::Array2::from_shape_vec((1, n), seqs[i][..n].to_vec()).expect("one row");
        let (_, cache) = model::forward(
            m,
            ids.view(),
            ids.view(),
            Some(&[d]),
            Default::default(),
            &mut crate::engine::layers::Mode::Eval,
        );
        let probs = cache.attention(layer).slice(s![0, .., .., ..]).mapv(f64::from);
        let tokens: Vec<String> = seqs[i][..n].iter().map(|&b| Bytes.token_text(b)).collect();
        let file = format!("attention_{name}.png");
        attention_grid(
            &out.path(&file),
            &format!("{name}: attention weights per head, last shared block (row: query byte, column: key byte)"),
            probs.view(),
            &tokens,
            &tokens,
        )?;
        out.record(&file);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: [DataChoice; 2] = [DataChoice::Synthetic, DataChoice::Real];

    #[test]
    fn arm_names_map_to_their_settings() {
        for (preset, data) in [Preset::Quick, Preset::Full].into_iter().flat_map(|p| DATA.map(|d| (p, d))) {
            let main = spec("schedule", preset, data, 42).unwrap();
            assert_eq!(
                (main.routing, main.experts, main.teacher_start, main.teacher_end),
                (RoutingChoice::Domain, 10, 1.0, 0.0)
            );
            let t = spec("teacher", preset, data, 42).unwrap();
            assert_eq!((t.teacher_start, t.teacher_end), (1.0, 1.0));
            let p = spec("predicted", preset, data, 42).unwrap();
            assert_eq!((p.teacher_start, p.teacher_end), (0.0, 0.0));
            let a = spec("dense-active", preset, data, 42).unwrap();
            assert_eq!((a.routing, a.experts, a.expert_hidden), (RoutingChoice::Token, 1, main.expert_hidden));
            let d = spec("dense-total", preset, data, 42).unwrap();
            assert_eq!(d.expert_hidden, 10 * main.expert_hidden);
            let u = spec("unbalanced", preset, data, 42).unwrap();
            let sizes = u.train_sizes();
            assert_eq!(main.domains, domain_names(data));
            assert_eq!(main.corpus, data);
            for (i, &n) in sizes.iter().enumerate() {
                assert_eq!(n, if i == HEAVY { main.train_per_domain } else { (main.train_per_domain / 10).max(1) });
            }
            let b = spec("unbalanced-sampled", preset, data, 42).unwrap();
            assert!(b.balanced && !u.balanced);
            assert_eq!(b.domain_train, u.domain_train);
        }
        // Full: 200 + 9 × 20 = 380 sequences × 6 epochs = 2280 against 10 × 200 per balanced
        // epoch: one epoch.
        assert_eq!(spec("unbalanced-sampled", Preset::Full, DataChoice::Synthetic, 42).unwrap().training.epochs, 1);
        assert!(spec("dense", Preset::Quick, DataChoice::Synthetic, 42).is_err());
        assert_eq!(domain_names(DataChoice::Synthetic)[HEAVY], "story");
        assert_eq!(domain_names(DataChoice::Real)[HEAVY], "politics");
    }
}
