//! A classifier run (`tinymoe train`, the `spirals` experiment): an MLP or a dense mixture of MLP
//! experts on the built-in spirals or a CSV file, with a checkpoint every epoch, exact resume,
//! and a results folder (metrics, loss curve, and for 2-D data the region and routing maps).

use crate::data::{self, Dataset};
use crate::engine::init::{self, streams};
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use crate::models::validate::ClassifierSizes;
use crate::plot::line::{line_chart, Series};
use crate::plot::regions::{region_map, RegionMap};
use crate::run::config::{self, Field, Settings};
use crate::run::results::{Table, Value};
use crate::run::session::{self, Resumed, Session};
use crate::run::settings::{self as checks, ClassifierModel, Optimizer, ScheduleKind, TrainingSpec};
use crate::run::{interrupt, Observer};
use crate::train::{self, FitState, History, Standing};
use ndarray::Array2;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The checkpoint kind of a classifier (an MLP or a dense MoE of MLPs).
pub const KIND: &str = "classifier";

/// Everything that defines a training run; saved as config.toml (and config.json) beside its
/// results. Each field's meaning and range: [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub preset: String,
    pub model: ClassifierModel,
    pub hidden: Vec<usize>,
    pub experts: usize,
    pub gate_hidden: Vec<usize>,
    pub dropout: f64,
    #[serde(flatten)]
    pub training: TrainingSpec,
    /// A CSV file (features…, label); None = the built-in spirals.
    pub data: Option<PathBuf>,
    pub spiral_classes: usize,
    pub spiral_points_per_class: usize,
    /// How many times each arm winds around the centre (more turns: a harder problem).
    pub spiral_turns: f64,
    /// Std of the angular noise, in radians.
    pub spiral_noise: f64,
    pub val_fraction: f64,
}

/// The classifier's keys, as `tinymoe config show` documents them (TrainingSpec's follow).
pub const FIELDS: &[Field] = &[
    Field::new(
        "model",
        "Which classifier: \"mlp\" (one MLP) or \"moe\" (a dense soft mixture of MLP experts,\n\
         weighted by a softmax gate).",
    ),
    Field::new("hidden", "Hidden layer widths of the MLP, or of each expert; integers ≥ 1, e.g. [64, 64]."),
    Field::new("experts", "Number of experts (model = \"moe\"); integer ≥ 1."),
    Field::new(
        "gate_hidden",
        "Hidden layer widths of the gate's MLP (model = \"moe\"); integers ≥ 1, [] for a linear gate.",
    ),
    Field::new("dropout", "Dropout probability after each hidden layer; in [0, 1), 0 = off."),
    Field::optional(
        "data",
        "A CSV file to learn instead of the spirals: numeric feature columns, integer class label\n\
         last (relative to the working directory). Unset: the built-in spirals below.",
        "\"points.csv\"",
    ),
    Field::new("spiral_classes", "Spirals: number of arms (classes); integer ≥ 2."),
    Field::new("spiral_points_per_class", "Spirals: points per arm; integer ≥ 1."),
    Field::new("spiral_turns", "Spirals: turns of each arm around the centre (more: a harder problem); number ≥ 0."),
    Field::new("spiral_noise", "Spirals: standard deviation of the angular noise, in radians; number ≥ 0."),
    Field::new("val_fraction", "Share of the rows held out for validation (seeded shuffle); in (0, 1)."),
];

impl Spec {
    /// Every value against its allowed range, naming the first bad one: the one check for
    /// presets, config files and flags.
    pub fn validate(&self) -> Result<()> {
        checks::widths("hidden", &self.hidden)?;
        checks::at_least_one("experts", self.experts)?;
        checks::widths("gate_hidden", &self.gate_hidden)?;
        checks::in_zero_one("dropout", self.dropout)?;
        if self.spiral_classes < 2 {
            return Err(Error::bad_value("spiral_classes", self.spiral_classes, "must be at least 2"));
        }
        checks::at_least_one("spiral_points_per_class", self.spiral_points_per_class)?;
        checks::non_negative("spiral_turns", self.spiral_turns)?;
        checks::non_negative("spiral_noise", self.spiral_noise)?;
        checks::in_open_unit("val_fraction", self.val_fraction)?;
        crate::io::check_count("spiral_points_per_class", self.spiral_points_per_class, "")?;
        self.training.validate()?;
        // The spirals are 2-D; a CSV's width is checked again when the model is built from it.
        let moe = (self.model == ClassifierModel::Moe).then_some((self.experts, self.gate_hidden.as_slice()));
        ClassifierSizes { d_in: 2, hidden: &self.hidden, classes: self.spiral_classes, moe }.check_fits(
            self.training.batch_size,
            true,
            crate::io::machine_memory(),
        )
    }

    /// The name a run of this spec goes by: its data file, else its preset.
    pub fn label(&self) -> String {
        self.data.as_ref().map_or(self.preset.clone(), |p| p.display().to_string())
    }
}

/// A classifier preset by name (`tinymoe config list`), or an error listing them.
pub fn preset(name: &str) -> Result<Spec> {
    match config::preset(name, Some(config::Command::Train))? {
        Settings::Classifier(s) => Ok(s),
        _ => Err(Error::bad_value("preset", name, "is not a classifier preset")),
    }
}

/// The `spirals-mlp` preset (see `run::config::PRESETS`).
pub fn preset_spirals_mlp() -> Spec {
    Spec {
        preset: "spirals-mlp".into(),
        model: ClassifierModel::Mlp,
        hidden: vec![128, 128],
        experts: 4,
        gate_hidden: vec![64],
        dropout: 0.0,
        training: TrainingSpec {
            epochs: 60,
            batch_size: 64,
            lr: 3e-3,
            optimizer: Optimizer::Adam,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 50,
            clip: Some(5.0),
            seed: 42,
        },
        data: None,
        spiral_classes: 5,
        spiral_points_per_class: 1000,
        spiral_turns: 1.5,
        spiral_noise: 0.15,
        val_fraction: 0.2,
    }
}

/// The `spirals-moe` preset: 4 experts of (64, 64) instead of one MLP of (128, 128).
pub fn preset_spirals_moe() -> Spec {
    Spec { preset: "spirals-moe".into(), model: ClassifierModel::Moe, hidden: vec![64, 64], ..preset_spirals_mlp() }
}

/// The demo's settings for a spirals preset: its seed, and with `quick` 3 epochs on 100
/// points per arm.
pub fn demo_spec(name: &str, seed: u64, quick: bool) -> Result<Spec> {
    let mut spec = preset(name)?;
    spec.training.seed = seed;
    if quick {
        spec.training.epochs = 3;
        spec.spiral_points_per_class = 100;
    }
    Ok(spec)
}

/// The model of a validated spec.
fn build_model(s: &Spec, d_in: usize, classes: usize) -> Classifier<f32> {
    let mut rng = init::stream(s.training.seed, streams::INIT);
    match s.model {
        ClassifierModel::Mlp => classifier::init_mlp(d_in, &s.hidden, classes, s.dropout, &mut rng),
        ClassifierModel::Moe => {
            classifier::init_moe(d_in, &s.hidden, classes, &s.gate_hidden, s.experts, s.dropout, &mut rng)
        }
    }
}

/// Loads (or generates) the data of a validated spec and splits it into train/validation, seeded.
pub fn load_data(s: &Spec) -> Result<(Dataset, Dataset)> {
    let all = match &s.data {
        Some(path) => data::csv::load(path)?,
        None => data::synthetic::spirals(
            s.spiral_points_per_class,
            s.spiral_classes,
            s.spiral_turns,
            s.spiral_noise,
            s.training.seed,
        ),
    };
    if all.len() < 2 {
        return Err(Error::bad_value("rows", all.len(), "need at least 2 rows (train and validation)"));
    }
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut init::stream(s.training.seed, streams::DATA));
    let n_val = ((all.len() as f64 * s.val_fraction).round() as usize).clamp(1, all.len() - 1);
    Ok((all.select(&order[n_val..]), all.select(&order[..n_val])))
}

/// A classifier's shape, read off its weights: the header config of its checkpoint, and what
/// a resumed model must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// "mlp" or "moe".
    pub model: ClassifierModel,
    pub d_in: usize,
    /// Hidden widths of the MLP, or of each expert.
    pub hidden: Vec<usize>,
    pub classes: usize,
    /// The MoE's expert count and gate hidden widths (None for an MLP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_hidden: Option<Vec<usize>>,
    pub dropout: f64,
}

impl ModelConfig {
    pub fn of(model: &Classifier<f32>) -> ModelConfig {
        let hidden = |layers: &[crate::engine::layers::linear::Params<f32>]| -> Vec<usize> {
            layers[..layers.len().saturating_sub(1)].iter().map(|l| l.w.ncols()).collect()
        };
        let (d_in, classes) = model.dims();
        match model {
            Classifier::Mlp(p) => ModelConfig {
                model: ClassifierModel::Mlp,
                d_in,
                hidden: hidden(&p.layers),
                classes,
                experts: None,
                gate_hidden: None,
                dropout: p.dropout,
            },
            Classifier::Moe(p) => ModelConfig {
                model: ClassifierModel::Moe,
                d_in,
                hidden: hidden(&p.experts[0].layers),
                classes,
                experts: Some(p.experts.len()),
                gate_hidden: Some(hidden(&p.gate.layers)),
                dropout: p.experts[0].dropout,
            },
        }
    }
}

/// The classifier as a [`session::Kind`]: what its checkpoints hold.
pub struct ClassifierRun;

impl session::Kind for ClassifierRun {
    const KIND: &'static str = KIND;
    const COMMAND: &'static str = "train";
    type Spec = Spec;
    type Model = Classifier<f32>;
    type State = FitState;

    fn settings(spec: &Spec) -> Settings {
        Settings::Classifier(spec.clone())
    }
    fn validate(spec: &Spec) -> Result<()> {
        spec.validate()
    }
    fn header_config(model: &Classifier<f32>) -> serde_json::Value {
        serde_json::to_value(ModelConfig::of(model)).unwrap_or_default()
    }
    fn standing(state: &FitState) -> Standing {
        state.standing()
    }
    fn meta(_: &Spec, state: &FitState) -> Vec<(&'static str, serde_json::Value)> {
        let last = state.history.epochs.last();
        vec![("val_loss", last.map(|e| e.val_loss).into()), ("val_acc", last.map(|e| e.val_acc).into())]
    }
}

/// A saved classifier run to continue.
pub type Resume = Resumed<ClassifierRun>;

/// Reads a classifier checkpoint to resume.
pub fn load_for_resume(path: &Path) -> Result<Resume> {
    Session::<ClassifierRun>::resume(path)
}

/// What one run produced.
pub struct Outcome {
    pub history: History,
    pub model: Classifier<f32>,
    pub val: Dataset,
    pub seconds: f64,
    /// The notice to show when Ctrl-C stopped the run (it was saved; nothing else written).
    pub interrupted: Option<String>,
    /// Every file written, as "wrote DIR/{…}".
    pub wrote: String,
}

/// Trains one spec (from scratch, or continuing a saved run) and writes its results folder.
/// With `stoppable`, the first Ctrl-C saves the run and returns it with `interrupted` set;
/// only the checkpoint and the settings are written then.
pub fn run(s: &Spec, out: &Path, resume: Option<Resume>, stoppable: bool, obs: &mut dyn Observer) -> Result<Outcome> {
    s.validate()?;
    let label = s.label();
    let (train_set, val) = load_data(s)?;
    let fresh = build_model(s, train_set.x.ncols(), train_set.classes.max(val.classes));
    if let Some(r) = &resume {
        let (saved, expected) = (ModelConfig::of(&r.model), ModelConfig::of(&fresh));
        if saved != expected {
            return Err(Error::Checkpoint {
                path: r.path.clone(),
                problem: format!(
                    "its model {} does not match its own saved settings on the data as it is now, {} \
                     (did the data change since it was saved?)",
                    serde_json::to_string(&saved).unwrap_or_default(),
                    serde_json::to_string(&expected).unwrap_or_default()
                ),
            });
        }
    }
    let steps_per_epoch = train_set.len().div_ceil(s.training.batch_size);
    let cfg = s.training.to_config(steps_per_epoch)?;
    let mut session = Session::<ClassifierRun>::open(out, s, resume.as_ref())?;
    let (mut model, state) = match resume {
        Some(r) => (r.model, Some(r.state)),
        None => (fresh, None),
    };
    // A finished run resumed: nothing is left to train, so no epoch will save; it is saved below.
    let finished = state.clone().filter(|st| st.epoch > cfg.epochs);
    obs.start(&label, cfg.epochs * steps_per_epoch, state.as_ref().map_or(0, |st| st.step));
    if let Some(st) = &state {
        obs.note(&match &finished {
            Some(_) => format!("{label}: the run had finished all {} epochs; writing its results\n", cfg.epochs),
            None => format!("{label}: resuming at epoch {}, batch {} (step {})\n", st.epoch, st.batches_done, st.step),
        });
    }
    let started = std::time::Instant::now();
    let guard = stoppable.then(interrupt::Training::start);
    let result = train::fit_resumable(
        &mut model,
        &train_set,
        &val,
        &cfg,
        state,
        guard.as_ref().map(interrupt::Training::stop),
        &mut |p| obs.step(p),
        &mut |_, m, st| session.save(m, s, st),
    );
    drop(guard);
    obs.finish();
    let history = result.map_err(|e| session.stopped(e, cfg.epochs))?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(st) = &finished {
        session.save(&model, s, st)?;
    }
    let interrupted = history.interrupted.then(|| session.interrupted_notice(history.step_losses.len()));
    if interrupted.is_none() {
        write_results(&mut session, &history, &model, &val, &label, steps_per_epoch)?;
    }
    Ok(Outcome { history, model, val, seconds, interrupted, wrote: session.results.summary() })
}

/// metrics.csv, loss_curve.png and, for 2-D data, regions.png and routing.png.
fn write_results(
    session: &mut Session<ClassifierRun>,
    history: &History,
    model: &Classifier<f32>,
    val: &Dataset,
    label: &str,
    steps_per_epoch: usize,
) -> Result<()> {
    let out = &mut session.results;
    let mut t = Table::new(&["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]);
    for e in &history.epochs {
        t.push(vec![
            e.epoch.into(),
            e.train_loss.into(),
            e.train_acc.into(),
            e.val_loss.into(),
            e.val_acc.into(),
            Value::Num((e.seconds * 1000.0).round() / 1000.0),
        ]);
    }
    out.table("metrics.csv", &t)?;
    let steps: Vec<(f64, f64)> = history.step_losses.iter().enumerate().map(|(i, &l)| (i as f64 + 1.0, l)).collect();
    let smooth = moving_average(&steps, 25);
    let val_pts: Vec<(f64, f64)> =
        history.epochs.iter().map(|e| ((e.epoch * steps_per_epoch) as f64, e.val_loss)).collect();
    let title = format!("{label}: cross-entropy while training");
    line_chart(
        &out.path("loss_curve.png"),
        &title,
        "step",
        "loss",
        &[
            Series { name: "train (per batch)", points: &steps },
            Series { name: "train (moving avg. 25)", points: &smooth },
            Series { name: "validation (per epoch)", points: &val_pts },
        ],
    )?;
    out.record("loss_curve.png");
    if val.x.ncols() == 2 {
        draw_maps(model, val, out, label)?;
    }
    Ok(())
}

/// The mean of each window of `w` points (fewer at the start), at the window's last x.
pub fn moving_average(pts: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    pts.windows(w.min(pts.len()).max(1))
        .map(|win| (win[win.len() - 1].0, win.iter().map(|p| p.1).sum::<f64>() / win.len() as f64))
        .collect()
}

/// regions.png (predicted class over the plane) and, for an MoE, routing.png (top expert).
fn draw_maps(
    model: &Classifier<f32>,
    val: &Dataset,
    out: &mut crate::run::results::Results,
    label: &str,
) -> Result<()> {
    const N: usize = 160;
    let (lo, hi) = (-1.2, 1.2);
    let step = (hi - lo) / N as f64;
    // Grid row i is y = lo + (i + ½)·step, column j is x = lo + (j + ½)·step.
    let grid = Array2::from_shape_fn((N * N, 2), |(r, c)| {
        let (i, j) = (r / N, r % N);
        (lo + ((if c == 0 { j } else { i }) as f64 + 0.5) * step) as f32
    });
    let points: Vec<(f64, f64, usize)> =
        val.x.rows().into_iter().zip(&val.y).map(|(r, &y)| (r[0] as f64, r[1] as f64, y)).collect();
    let logits = classifier::logits(model, grid.view());
    let classes = crate::moe::mixture::top_expert(logits.view());
    let class_grid = Array2::from_shape_vec((N, N), classes).expect("N·N predictions");
    let class_names: Vec<String> = (0..val.classes).map(|k| format!("class {k}")).collect();
    region_map(
        &out.path("regions.png"),
        &RegionMap {
            title: &format!("{label}: predicted class"),
            grid: &class_grid,
            x_range: (lo, hi),
            y_range: (lo, hi),
            region_names: &class_names,
            points: &points,
        },
    )?;
    out.record("regions.png");
    if let Some(gates) = classifier::gates(model, grid.view()) {
        let experts = crate::moe::mixture::top_expert(gates.view());
        let expert_grid = Array2::from_shape_vec((N, N), experts).expect("N·N gate decisions");
        let names: Vec<String> = (0..gates.ncols()).map(|e| format!("expert {e}")).collect();
        region_map(
            &out.path("routing.png"),
            &RegionMap {
                title: &format!("{label}: which expert the gate picks"),
                grid: &expert_grid,
                x_range: (lo, hi),
                y_range: (lo, hi),
                region_names: &names,
                points: &points,
            },
        )?;
        out.record("routing.png");
    }
    Ok(())
}

/// Each expert's share of the validation rows' top gate, for an MoE (None for an MLP).
pub fn top_expert_shares(model: &Classifier<f32>, val: &Dataset) -> Option<Vec<f64>> {
    let gates = classifier::gates(model, val.x.view())?;
    let top = crate::moe::mixture::top_expert(gates.view());
    let n = top.len().max(1) as f64;
    Some((0..gates.ncols()).map(|e| top.iter().filter(|&&t| t == e).count() as f64 / n).collect())
}
