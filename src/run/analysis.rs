//! The routing analysis of a classifier MoE on a labelled set: which expert's gate is largest
//! for each row, and how that breaks down by class. E1's cells and `tinymoe analyse` both
//! call it, so the tables and heatmaps of an experiment and of any saved checkpoint are the
//! same files drawn by the same code.
//!
//! ```text
//!   logits, g = model(x)  (eval mode; optionally with experts switched off)   g [n, E]
//!   top(r)    = argmaxₑ g[r, e]
//!   top_share[c, e] = share of class c's rows with top(r) = e     [classes, E], rows sum to 1
//!   mean_gate[c, e] = mean of g[r, e] over class c's rows          [classes, E], rows sum to 1
//! ```
//! Written: `top_share.csv`, `mean_gate.csv` (one row per class, one column per expert, and
//! the class's row count) and the two heatmaps `top_share.png|svg`, `mean_gate.png|svg` with
//! the value in every cell, on the fixed 0 … 1 scale so two heatmaps compare by colour.
//!
//! [`analyse_checkpoint`] is `tinymoe analyse CKPT --data …`: it loads a classifier
//! checkpoint of model `moe` (a dense soft mixture: what E1's cells and `tinymoe train
//! --model moe` save), the held-out set named by `--data`, checks that the two fit, and
//! writes the tables, heatmaps and a report.md into the output folder.

use crate::checkpoint::{self, Trained};
use crate::data::{mnist, Dataset};
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use crate::moe::metrics::{self, ClassExpert};
use crate::plot::routing::routing_heatmap;
use crate::run::classifier::{ModelConfig, KIND};
use crate::run::experiment::Preset;
use crate::run::results::{Figure, Report, Results, Table, Value};
use crate::run::settings::DataChoice;
use crate::train::FitState;
use ndarray::{s, Array2, ArrayView2};
use std::path::Path;

/// Rows per evaluation batch (eval mode keeps no activations for backward).
const BATCH: usize = 1000;

/// What a classifier MoE does with a labelled set, in eval mode.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Gates g [n, E] (0 for an expert switched off).
    pub gates: Array2<f64>,
    /// Each row's predicted class and its top expert.
    pub predicted: Vec<usize>,
    pub top: Vec<usize>,
    /// Share of rows predicted right.
    pub accuracy: f64,
    /// The class × expert tables.
    pub class_expert: ClassExpert,
}

impl Routing {
    /// Accuracy over the rows whose label `keep` accepts (NaN if none).
    pub fn accuracy_where(&self, labels: &[usize], keep: impl Fn(usize) -> bool) -> f64 {
        let (mut hits, mut n) = (0usize, 0usize);
        for (r, &y) in labels.iter().enumerate().filter(|(_, &y)| keep(y)) {
            n += 1;
            hits += usize::from(self.predicted[r] == y);
        }
        if n == 0 {
            f64::NAN
        } else {
            hits as f64 / n as f64
        }
    }

    /// Share of the rows whose label `keep` accepts that have expert `e` as their top gate
    /// (NaN if none).
    pub fn top_share_where(&self, labels: &[usize], e: usize, keep: impl Fn(usize) -> bool) -> f64 {
        let (mut hits, mut n) = (0usize, 0usize);
        for (r, _) in labels.iter().enumerate().filter(|(_, &y)| keep(y)) {
            n += 1;
            hits += usize::from(self.top[r] == e);
        }
        if n == 0 {
            f64::NAN
        } else {
            hits as f64 / n as f64
        }
    }

    /// Mean gate of expert `e` over the rows whose label `keep` accepts (NaN if none).
    pub fn mean_gate_where(&self, labels: &[usize], e: usize, keep: impl Fn(usize) -> bool) -> f64 {
        let (mut sum, mut n) = (0.0, 0usize);
        for (r, _) in labels.iter().enumerate().filter(|(_, &y)| keep(y)) {
            n += 1;
            sum += self.gates[[r, e]];
        }
        if n == 0 {
            f64::NAN
        } else {
            sum / n as f64
        }
    }

    /// Each expert's share of all rows' top gates, `[E]`.
    pub fn utilisation(&self) -> Vec<f64> {
        metrics::utilisation(&self.top, self.gates.ncols(), None)
    }
}

/// Routes x [n, d_in] (labels y, each < classes) through a classifier MoE in eval mode, in
/// batches, with the experts marked in `off` switched off. None for an MLP (no gate).
pub fn route(
    model: &Classifier<f32>,
    x: ArrayView2<f32>,
    y: &[usize],
    classes: usize,
    off: Option<&[bool]>,
) -> Option<Routing> {
    let n = x.nrows();
    assert_eq!(y.len(), n, "route: {} labels for {n} rows", y.len());
    let mut gates: Option<Array2<f64>> = None;
    let mut predicted = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let (logits, g) = classifier::moe_eval(model, x.slice(s![start..end, ..]), off)?;
        predicted.extend(metrics::top_expert(logits.view())); // the argmax of each row
        let all = gates.get_or_insert_with(|| Array2::zeros((n, g.ncols())));
        all.slice_mut(s![start..end, ..]).assign(&g.mapv(f64::from));
    }
    let gates = gates.unwrap_or_else(|| Array2::zeros((0, 0)));
    let top = metrics::top_expert(gates.view());
    let hits = predicted.iter().zip(y).filter(|(p, y)| p == y).count();
    let class_expert = metrics::class_expert(gates.view(), y, classes, None);
    Some(Routing { gates, predicted, top, accuracy: hits as f64 / n.max(1) as f64, class_expert })
}

/// A class × expert table as CSV: the class, its row count, one column per expert.
pub fn class_expert_table(m: ArrayView2<f64>, class_names: &[String], counts: &[usize]) -> Table {
    let mut columns = vec!["class".to_string(), "rows".to_string()];
    columns.extend((0..m.ncols()).map(|e| format!("expert_{e}")));
    let mut t = Table::new(&columns);
    for (c, row) in m.rows().into_iter().enumerate() {
        let mut cells: Vec<Value> = vec![class_names[c].as_str().into(), counts[c].into()];
        cells.extend(row.iter().map(|&v| Value::Num(v)));
        t.push(cells);
    }
    t
}

/// Writes `top_share.csv`, `mean_gate.csv` and their heatmaps into `out`; `what` opens the
/// titles (e.g. "transplant, seed 42"), `rows_are` names the classes ("digit"). Returns the
/// two figures (top share first).
pub fn write_routing(
    out: &mut Results,
    r: &Routing,
    class_names: &[String],
    rows_are: &str,
    what: &str,
) -> Result<[Figure; 2]> {
    let experts: Vec<String> = (0..r.gates.ncols()).map(|e| format!("expert {e}")).collect();
    let ce = &r.class_expert;
    out.table("top_share.csv", &class_expert_table(ce.top_share.view(), class_names, &ce.counts))?;
    out.table("mean_gate.csv", &class_expert_table(ce.mean_gate.view(), class_names, &ce.counts))?;
    // Short titles (a long one widens the picture); the captions say it in full.
    let (t1, t2) = (format!("{what}: top-gate share"), format!("{what}: mean gate"));
    let c1 = format!("{what}: share of each {rows_are}'s rows whose top gate is each expert");
    let c2 = format!("{what}: mean gate weight per {rows_are} and expert");
    let top = out
        .figure("top_share", &c1, |p| routing_heatmap(p, ce.top_share.view(), class_names, &experts, &t1, rows_are))?;
    let gate = out
        .figure("mean_gate", &c2, |p| routing_heatmap(p, ce.mean_gate.view(), class_names, &experts, &t2, rows_are))?;
    Ok([top, gate])
}

/// The held-out sets `tinymoe analyse --data` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnalyseData {
    /// The 10,000 MNIST test images (784 features), from data/mnist or $TINYMOE_DATA_DIR/mnist.
    Mnist,
    /// E6's synthetic 20-d sentiment features: its full preset's held-out set (1,500 rows).
    Sentiment,
    /// E6's real tweets as 64-bucket hashed bag-of-words: its full preset's held-out 20 %.
    Tweets,
}

impl AnalyseData {
    pub fn name(self) -> &'static str {
        match self {
            AnalyseData::Mnist => "mnist",
            AnalyseData::Sentiment => "sentiment",
            AnalyseData::Tweets => "tweets",
        }
    }

    /// The held-out set and its class names.
    pub fn load(self) -> Result<(Dataset, Vec<String>, &'static str)> {
        match self {
            AnalyseData::Mnist => {
                let test = mnist::load_split(&mnist::default_dir(), mnist::Split::Test)?;
                Ok((test, (0..10).map(|d| d.to_string()).collect(), "digit"))
            }
            AnalyseData::Sentiment | AnalyseData::Tweets => {
                let choice = if self == AnalyseData::Tweets { DataChoice::Real } else { DataChoice::Synthetic };
                let (_, test) = crate::run::experiments::e6::datasets(Preset::Full, choice)?;
                let names = crate::data::real_text::SENTIMENTS.iter().map(|s| s.to_string()).collect();
                Ok((test, names, "sentiment"))
            }
        }
    }
}

/// What `tinymoe analyse` found.
#[derive(Debug, Clone)]
pub struct Analysed {
    pub routing: Routing,
    pub labels: Vec<usize>,
    pub class_names: Vec<String>,
    /// Every file written, as "wrote DIR/{…}".
    pub wrote: String,
}

/// Loads the classifier MoE at `path` and the held-out set `data`, routes every row, and
/// writes the tables, heatmaps and report.md into `out_dir`. Errors (one line each) on a file
/// that is not a checkpoint, a checkpoint of another kind or of an MLP, and a model whose
/// input width or class count does not fit the data; nothing is written then.
pub fn analyse_checkpoint(path: &Path, data: AnalyseData, out_dir: &Path) -> Result<Analysed> {
    let (header, _) = checkpoint::read(path)?;
    if header.kind != KIND {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!(
                "it holds a {:?} model; `analyse` reads classifier MoEs (kind {KIND:?}, model moe: the \
                 checkpoints of `tinymoe train --model moe` and of experiment e1's cells)",
                header.kind
            ),
        });
    }
    let (_, saved): (_, Trained<Classifier<f32>, FitState>) = checkpoint::load(path, KIND)?;
    let model = saved.model;
    let cfg = ModelConfig::of(&model);
    if matches!(model, Classifier::Mlp(_)) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: "it holds a classifier MLP, which has no gate to analyse (train one with --model moe)".into(),
        });
    }
    let (set, class_names, rows_are) = data.load()?;
    if set.x.ncols() != cfg.d_in || set.classes != cfg.classes {
        return Err(Error::bad_value(
            "--data",
            data.name(),
            &format!(
                "has {} features and {} classes per row, but the model in {} reads {} features and has {} classes",
                set.x.ncols(),
                set.classes,
                path.display(),
                cfg.d_in,
                cfg.classes
            ),
        ));
    }
    let routing = route(&model, set.x.view(), &set.y, set.classes, None).expect("checked above: an MoE");
    let mut out = Results::create(out_dir)?;
    let what = format!("{} on {}", path.display(), data.name());
    let figures = write_routing(&mut out, &routing, &class_names, rows_are, &what)?;
    let mut report = Report::new(&format!("Routing of {}", path.display()));
    report.text(&format!(
        "`tinymoe analyse {} --data {}`: {} held-out rows, {} experts, accuracy {:.4}. Each expert's share of \
         all rows' top gates: {}.",
        path.display(),
        data.name(),
        set.len(),
        routing.gates.ncols(),
        routing.accuracy,
        routing.utilisation().iter().map(|u| format!("{:.3}", u)).collect::<Vec<_>>().join(", ")
    ));
    for f in &figures {
        report.figure(f);
    }
    out.report(&report)?;
    Ok(Analysed { routing, labels: set.y, class_names, wrote: out.summary() })
}
