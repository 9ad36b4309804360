//! `tinymoe train` and `tinymoe demo`: the classifier's settings (preset < `--config` file <
//! flags, see `cli::config`), the run, and its results folder (config.toml, config.json,
//! metrics.csv, loss_curve.png, regions.png, routing.png for an MoE, and model.ckpt).
//!
//! model.ckpt (kind "classifier") is saved after every epoch, atomically: the weights, the
//! training state that continues the run bit for bit ([`train::FitState`]), and in its header
//! the model's shape ([`ModelConfig`]) and the run's settings (meta.spec). `--resume` continues
//! it with those settings; Ctrl-C finishes the current step, saves, and says how to go on.

use crate::checkpoint;
use crate::cli::config::{self, Field, Settings};
use crate::cli::interrupt;
use crate::cli::progress;
use crate::data::{self, Dataset};
use crate::engine::init::{self, streams};
use crate::engine::optim::{Kind, Schedule};
use crate::error::Error;
use crate::io::write_atomic;
use crate::models::classifier::{self, Classifier};
use crate::plot::line::{line_chart, Series};
use crate::plot::regions::{region_map, RegionMap};
use crate::train::{self, Config, FitState, History};
use anyhow::Context;
use clap::Args;
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
    /// "mlp" or "moe".
    pub model: String,
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

/// How to train, for any model: saved (flattened) in every config.json. Each field's meaning
/// and range: [`TRAINING_FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// "sgd", "adam" or "adamw".
    pub optimizer: String,
    pub momentum: f64,
    pub weight_decay: f64,
    /// "constant" or "cosine" (linear warm-up, then cosine to 0).
    pub schedule: String,
    pub warmup_steps: usize,
    pub clip: Option<f64>,
    pub seed: u64,
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

/// The training keys, shared by every kind of run.
pub const TRAINING_FIELDS: &[Field] = &[
    Field::new("epochs", "Passes over the training data; integer ≥ 1."),
    Field::new("batch_size", "Examples per optimizer step (rows, or windows of text); integer ≥ 1."),
    Field::new("lr", "Base learning rate; number > 0 (the schedule scales it)."),
    Field::new(
        "optimizer",
        "\"sgd\" (with momentum), \"adam\" (L2 weight decay) or \"adamw\" (decoupled weight decay).",
    ),
    Field::new("momentum", "SGD momentum (optimizer = \"sgd\" only); in [0, 1)."),
    Field::new("weight_decay", "Weight decay (adam: L2 added to the gradient; adamw: decoupled); number ≥ 0."),
    Field::new(
        "schedule",
        "Learning-rate schedule: \"constant\", or \"cosine\" (linear warm-up, then cosine decay to\n\
         0).",
    ),
    Field::new("warmup_steps", "Steps of linear warm-up (schedule = \"cosine\"); integer ≥ 0."),
    Field::optional("clip", "Clip the global gradient norm to this; number > 0. Unset: no clipping.", "1.0"),
    Field::new(
        "seed",
        "Seed of every random choice (init, data, shuffling, dropout); integer ≥ 0.\n\
         Same seed and thread count: bit-identical losses.",
    ),
];

impl TrainingSpec {
    /// Every value against its allowed range, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        config::at_least_one("epochs", self.epochs)?;
        config::at_least_one("batch_size", self.batch_size)?;
        config::positive("lr", self.lr, "the learning rate")?;
        config::one_of("optimizer", &self.optimizer, &["sgd", "adam", "adamw"])?;
        config::in_zero_one("momentum", self.momentum)?;
        config::non_negative("weight_decay", self.weight_decay)?;
        config::one_of("schedule", &self.schedule, &["constant", "cosine"])?;
        if let Some(c) = self.clip {
            config::positive("clip", c, "the gradient-norm cap")?;
        }
        Ok(())
    }
}

impl Spec {
    /// Every value against its allowed range, naming the first bad one: the one check for
    /// presets, config files and flags.
    pub fn validate(&self) -> Result<(), Error> {
        config::one_of("model", &self.model, &["mlp", "moe"])?;
        config::widths("hidden", &self.hidden)?;
        config::at_least_one("experts", self.experts)?;
        config::widths("gate_hidden", &self.gate_hidden)?;
        config::in_zero_one("dropout", self.dropout)?;
        if self.spiral_classes < 2 {
            return Err(Error::bad_value("spiral_classes", self.spiral_classes, "must be at least 2"));
        }
        config::at_least_one("spiral_points_per_class", self.spiral_points_per_class)?;
        config::non_negative("spiral_turns", self.spiral_turns)?;
        config::non_negative("spiral_noise", self.spiral_noise)?;
        config::in_open_unit("val_fraction", self.val_fraction)?;
        self.training.validate()
    }
}

/// A classifier preset by name (`tinymoe config list`), or an error listing them.
pub fn preset(name: &str) -> Result<Spec, Error> {
    match config::preset(name, Some(config::Command::Train))? {
        Settings::Classifier(s) => Ok(s),
        _ => Err(Error::bad_value("preset", name, "is not a classifier preset")),
    }
}

/// The `spirals-mlp` preset (see `cli::config::PRESETS`).
pub fn preset_spirals_mlp() -> Spec {
    Spec {
        preset: "spirals-mlp".into(),
        model: "mlp".into(),
        hidden: vec![128, 128],
        experts: 4,
        gate_hidden: vec![64],
        dropout: 0.0,
        training: TrainingSpec {
            epochs: 60,
            batch_size: 64,
            lr: 3e-3,
            optimizer: "adam".into(),
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: "cosine".into(),
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
    Spec { preset: "spirals-moe".into(), model: "moe".into(), hidden: vec![64, 64], ..preset_spirals_mlp() }
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true, args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    /// What to train instead of a classifier.
    #[command(subcommand)]
    pub what: Option<What>,
    /// Starting point for every setting (spirals-mlp, spirals-moe; default: the config file's
    /// `preset`, else spirals-mlp). The config file and flags override it.
    #[arg(long, conflicts_with = "resume")]
    pub preset: Option<String>,
    /// A TOML file of settings (`tinymoe config show spirals-moe > my.toml` writes one);
    /// it overrides the preset and flags override it.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Train on a CSV file instead: numeric feature columns, integer class label last.
    #[arg(long, conflicts_with = "resume")]
    pub data: Option<PathBuf>,
    /// mlp or moe (a dense soft mixture of MLP experts).
    #[arg(long, conflicts_with = "resume")]
    pub model: Option<String>,
    /// Hidden layer widths, e.g. 64,64 (of the MLP, or of each expert).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub hidden: Option<Vec<usize>>,
    /// Number of experts (moe).
    #[arg(long, conflicts_with = "resume")]
    pub experts: Option<usize>,
    /// Dropout probability after each hidden layer, in [0, 1).
    #[arg(long, conflicts_with = "resume")]
    pub dropout: Option<f64>,
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    /// Base learning rate (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// sgd, adam or adamw.
    #[arg(long, conflicts_with = "resume")]
    pub optimizer: Option<String>,
    /// Decoupled (adamw) or L2 (adam) weight decay, ≥ 0.
    #[arg(long, conflicts_with = "resume")]
    pub weight_decay: Option<f64>,
    /// constant, or cosine (linear warm-up then cosine decay).
    #[arg(long, conflicts_with = "resume")]
    pub schedule: Option<String>,
    /// Clip the global gradient norm to this (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub clip: Option<f64>,
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// Rayon threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Continue the run saved in this checkpoint (the model.ckpt of `tinymoe train` or `tinymoe
    /// demo`, saved after every epoch and on Ctrl-C) with its own settings: the losses and weights
    /// go on exactly as if it had never stopped. Only --out and --threads go with it; every flag
    /// that would change the model, the data or the training (--preset, --config, --data,
    /// --model, --epochs, --lr, …) is refused. A CSV data file is read again from its saved path.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Results folder.
    #[arg(long, default_value = "results/train")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// A byte-level causal transformer language model on built-in text (or --text FILE):
    /// validation loss and perplexity per epoch, loss curve, attention maps, a sample, and a
    /// checkpoint for `tinymoe generate`.
    Lm(crate::cli::lm::LmArgs),
    /// A Mixture-of-Experts language model on labelled synthetic domains (bytes): token,
    /// sequence or domain-classifier routing; validation loss per domain, domain × expert
    /// routing tables and heatmaps, which expert took each byte, and a resumable checkpoint.
    Moe(crate::cli::moe::MoeArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Results folder.
    #[arg(long, default_value = "results/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A few epochs only (seconds; used by the tests).
    #[arg(long)]
    pub quick: bool,
}

/// The run's settings: the preset, then the `--config` file, then the flags; validated.
fn resolve(a: &TrainArgs) -> anyhow::Result<Spec> {
    let file = a.config.as_deref().map(config::File::read).transpose()?;
    let spec = match config::start(file.as_ref(), a.preset.as_deref(), config::Command::Train)? {
        Settings::Classifier(s) => s,
        _ => return Err(Error::bad_value("preset", "(lm)", "is not a classifier preset").into()),
    };
    let spec = apply_overrides(spec, a);
    spec.validate()?;
    Ok(spec)
}

fn apply_overrides(mut s: Spec, a: &TrainArgs) -> Spec {
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = &a.$field { s.$field = v.clone(); } )* };
    }
    set!(model, hidden, experts, dropout);
    let t = &mut s.training;
    macro_rules! set_training {
        ($($field:ident),*) => { $( if let Some(v) = &a.$field { t.$field = v.clone(); } )* };
    }
    set_training!(epochs, batch_size, lr, optimizer, weight_decay, schedule, seed);
    if a.clip.is_some() {
        t.clip = a.clip;
    }
    if a.data.is_some() {
        s.data = a.data.clone();
    }
    s
}

/// Turns a spec into the engine's training config, rejecting out-of-range values.
pub(crate) fn to_config(s: &TrainingSpec, steps_per_epoch: usize) -> Result<Config, Error> {
    s.validate()?;
    let optimizer = match s.optimizer.as_str() {
        "sgd" => Kind::Sgd { momentum: s.momentum },
        "adam" => Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: s.weight_decay },
        "adamw" => Kind::adamw(s.weight_decay),
        other => {
            return Err(Error::Unknown {
                what: "optimizer".into(),
                name: other.into(),
                expected: "sgd, adam, adamw".into(),
            })
        }
    };
    let schedule = match s.schedule.as_str() {
        "constant" => Schedule::Constant,
        "cosine" => Schedule::WarmupCosine { warmup: s.warmup_steps, total: s.epochs * steps_per_epoch, min_lr: 0.0 },
        other => {
            return Err(Error::Unknown {
                what: "schedule".into(),
                name: other.into(),
                expected: "constant, cosine".into(),
            })
        }
    };
    let cfg = Config {
        epochs: s.epochs,
        batch_size: s.batch_size,
        lr: s.lr,
        schedule,
        optimizer,
        clip: s.clip,
        seed: s.seed,
        rules: vec![],
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The model of a validated spec.
fn build_model(s: &Spec, d_in: usize, classes: usize) -> Result<Classifier<f32>, Error> {
    let mut rng = init::stream(s.training.seed, streams::INIT);
    match s.model.as_str() {
        "mlp" => Ok(classifier::init_mlp(d_in, &s.hidden, classes, s.dropout, &mut rng)),
        "moe" => Ok(classifier::init_moe(d_in, &s.hidden, classes, &s.gate_hidden, s.experts, s.dropout, &mut rng)),
        other => Err(Error::Unknown { what: "model".into(), name: other.into(), expected: "mlp, moe".into() }),
    }
}

/// Loads (or generates) the data of a validated spec and splits it into train/validation, seeded.
fn load_data(s: &Spec) -> anyhow::Result<(Dataset, Dataset)> {
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
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut init::stream(s.training.seed, streams::DATA));
    let n_val = ((all.len() as f64 * s.val_fraction).round() as usize).clamp(1, all.len().saturating_sub(1).max(1));
    if all.len() < 2 {
        return Err(Error::bad_value("rows", all.len(), "need at least 2 rows (train and validation)").into());
    }
    Ok((all.select(&order[n_val..]), all.select(&order[..n_val])))
}

/// A classifier's shape, read off its weights: the header config of its checkpoint, and what
/// a resumed model must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// "mlp" or "moe".
    pub model: String,
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
                model: "mlp".into(),
                d_in,
                hidden: hidden(&p.layers),
                classes,
                experts: None,
                gate_hidden: None,
                dropout: p.dropout,
            },
            Classifier::Moe(p) => ModelConfig {
                model: "moe".into(),
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

/// A run to continue: the checkpoint it was read from, its model and its training state.
pub struct Resume {
    pub path: PathBuf,
    pub model: Classifier<f32>,
    pub state: FitState,
}

/// What `tinymoe train` saves: the model, and the state that resumes its training.
type Saved = checkpoint::Trained<Classifier<f32>, FitState>;

/// The settings, model and training state of a checkpoint to resume.
fn load_for_resume(path: &Path) -> anyhow::Result<(Spec, Resume)> {
    let (header, saved): (_, Saved) = checkpoint::load(path, KIND)?;
    let bad = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
    let spec: Spec = header
        .meta
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .ok_or_else(|| bad("it does not record the run's settings, so it cannot be resumed".into()))?;
    spec.validate().map_err(|e| bad(format!("its saved settings are not valid: {e}")))?;
    let state = saved.state.ok_or_else(|| bad("it holds weights only, no training state to resume".into()))?;
    Ok((spec, Resume { path: path.to_path_buf(), model: saved.model, state }))
}

/// A checkpoint of the model and where its training stands (atomically replacing the last).
fn save(path: &Path, model: &Classifier<f32>, spec: &Spec, state: &FitState) -> crate::Result<()> {
    let last = state.history.epochs.last();
    let meta = serde_json::json!({
        "epochs_done": last.map_or(0, |e| e.epoch),
        "step": state.step,
        "val_loss": last.map(|e| e.val_loss),
        "val_acc": last.map(|e| e.val_acc),
        "interrupted": state.history.interrupted,
        "spec": spec,
        "training": state.standing(),
    });
    let saved = checkpoint::Trained { model: model.clone(), state: Some(state.clone()) };
    checkpoint::save(path, KIND, &ModelConfig::of(model), &saved, meta)
}

/// What one run produced, for the summary line.
pub struct Outcome {
    pub history: History,
    pub model: Classifier<f32>,
    pub val: Dataset,
    pub seconds: f64,
    /// The checkpoint this run saved (after every epoch, and when interrupted).
    pub checkpoint: PathBuf,
}

/// Trains one spec (from scratch, or continuing a saved run) and writes its results folder.
/// When Ctrl-C stops it, the outcome's history says `interrupted` and only the checkpoint (and
/// the settings) are written.
pub fn run_spec(s: &Spec, out: &Path, label: &str, resume: Option<Resume>) -> anyhow::Result<Outcome> {
    s.validate()?;
    let (train_set, val) = load_data(s)?;
    let model_classes = train_set.classes.max(val.classes);
    let fresh = build_model(s, train_set.x.ncols(), model_classes)?;
    let (mut model, state, resumed_from) = match resume {
        Some(r) => {
            let (saved, expected) = (ModelConfig::of(&r.model), ModelConfig::of(&fresh));
            if saved != expected {
                return Err(Error::Checkpoint {
                    path: r.path.clone(),
                    problem: format!(
                        "its model {} does not match its own saved settings on the data as it is now, {} \
                         (did the data change since it was saved?)",
                        serde_json::to_string(&saved)?,
                        serde_json::to_string(&expected)?
                    ),
                }
                .into());
            }
            (r.model, Some(r.state), Some(r.path))
        }
        None => (fresh, None, None),
    };
    let cfg = to_config(&s.training, train_set.len().div_ceil(s.training.batch_size.max(1)))?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_atomic(&out.join("config.json"), serde_json::to_string_pretty(s)?.as_bytes())?;
    let header = "The settings of this run (preset < config file < flags, resolved).\n\
                  Run it again with: tinymoe train --config config.toml";
    write_atomic(&out.join("config.toml"), config::render(&Settings::Classifier(s.clone()), header)?.as_bytes())?;

    let ckpt = out.join("model.ckpt");
    let bar = progress::bar(cfg.epochs * train_set.len().div_ceil(cfg.batch_size), label);
    // The last checkpoint a failed run can go on from: where it started, then each epoch's.
    let mut last_good = resumed_from.zip(state.as_ref().map(|st| (st.step, st.history.epochs.len())));
    // A finished run resumed: nothing is left to train, so no epoch will save; it is saved below.
    let finished = state.clone().filter(|st| st.epoch > cfg.epochs);
    if let Some(st) = &state {
        bar.set_position(st.step as u64);
        let what = match &finished {
            Some(_) => format!("the run had finished all {} epochs; writing its results", cfg.epochs),
            None => format!("resuming at epoch {}, batch {} (step {})", st.epoch, st.batches_done, st.step),
        };
        bar.suspend(|| println!("{label}: {what}\n"));
    }
    let started = std::time::Instant::now();
    let training = interrupt::Training::start();
    let result = train::fit_resumable(
        &mut model,
        &train_set,
        &val,
        &cfg,
        state,
        Some(training.stop()),
        &mut |p| progress::update(&bar, p),
        &mut |event, m, st| {
            save(&ckpt, m, s, st)?;
            if let train::Checkpoint::Epoch(e) = event {
                last_good = Some((ckpt.clone(), (st.step, e.epoch)));
            }
            Ok(())
        },
    );
    drop(training);
    bar.finish_and_clear();
    let history = match result {
        Ok(h) => h,
        Err(e) => {
            // A setting or a resume refused before any step: no checkpoint to point at.
            let refused = matches!(e, Error::BadValue { .. });
            let e = anyhow::Error::from(e).context(format!("training {label}"));
            return Err(match last_good.filter(|_| !refused) {
                Some((path, (step, epochs))) => anyhow::anyhow!(
                    "{e:#}; the last good checkpoint is {} (step {step}, {epochs} epoch(s) finished): \
                     inspect it with: tinymoe inspect {}, continue from it with: tinymoe train --resume {} --out {}",
                    path.display(),
                    path.display(),
                    path.display(),
                    out.display()
                ),
                None => e,
            });
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(st) = &finished {
        save(&ckpt, &model, s, st)?;
    }
    if history.interrupted {
        return Ok(Outcome { history, model, val, seconds, checkpoint: ckpt });
    }

    write_metrics(&out.join("metrics.csv"), &history)?;
    let steps: Vec<(f64, f64)> = history.step_losses.iter().enumerate().map(|(i, &l)| (i as f64 + 1.0, l)).collect();
    let smooth = moving_average(&steps, 25);
    let spe = train_set.len().div_ceil(cfg.batch_size) as f64;
    let val_pts: Vec<(f64, f64)> = history.epochs.iter().map(|e| (e.epoch as f64 * spe, e.val_loss)).collect();
    line_chart(
        &out.join("loss_curve.png"),
        &format!("{label}: cross-entropy while training"),
        "step",
        "loss",
        &[
            Series { name: "train (per batch)", points: &steps },
            Series { name: "train (moving avg. 25)", points: &smooth },
            Series { name: "validation (per epoch)", points: &val_pts },
        ],
    )?;
    if train_set.x.ncols() == 2 {
        draw_maps(&model, &val, out, label)?;
    }
    Ok(Outcome { history, model, val, seconds, checkpoint: ckpt })
}

fn write_metrics(path: &Path, h: &History) -> Result<(), Error> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,seconds\n");
    for e in &h.epochs {
        csv += &format!(
            "{},{:.6},{:.4},{:.6},{:.4},{:.3}\n",
            e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.seconds
        );
    }
    write_atomic(path, csv.as_bytes())
}

pub(crate) fn moving_average(pts: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    pts.windows(w.min(pts.len()).max(1))
        .map(|win| (win[win.len() - 1].0, win.iter().map(|p| p.1).sum::<f64>() / win.len() as f64))
        .collect()
}

/// regions.png (predicted class over the plane) and, for an MoE, routing.png (top expert).
fn draw_maps(model: &Classifier<f32>, val: &Dataset, out: &Path, label: &str) -> anyhow::Result<()> {
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
        &out.join("regions.png"),
        &RegionMap {
            title: &format!("{label}: predicted class"),
            grid: &class_grid,
            x_range: (lo, hi),
            y_range: (lo, hi),
            region_names: &class_names,
            points: &points,
        },
    )?;
    if let Some(gates) = classifier::gates(model, grid.view()) {
        let experts = crate::moe::mixture::top_expert(gates.view());
        let expert_grid = Array2::from_shape_vec((N, N), experts).expect("N·N gate decisions");
        let names: Vec<String> = (0..gates.ncols()).map(|e| format!("expert {e}")).collect();
        region_map(
            &out.join("routing.png"),
            &RegionMap {
                title: &format!("{label}: which expert the gate picks"),
                grid: &expert_grid,
                x_range: (lo, hi),
                y_range: (lo, hi),
                region_names: &names,
                points: &points,
            },
        )?;
    }
    Ok(())
}

pub(crate) fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(Error::bad_value("threads", 0, "need at least 1 thread").into());
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the thread pool")?;
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    match a.what {
        Some(What::Lm(lm_args)) => return crate::cli::lm::train_lm(lm_args),
        Some(What::Moe(moe_args)) => return crate::cli::moe::train_moe(moe_args),
        None => {}
    }
    set_threads(a.threads)?;
    let (spec, resume) = match &a.resume {
        Some(path) => {
            let (spec, resume) = load_for_resume(path)?;
            (spec, Some(resume))
        }
        None => (resolve(&a)?, None),
    };
    let label = spec.data.as_ref().map_or(spec.preset.clone(), |p| p.display().to_string());
    let outcome = run_spec(&spec, &a.out, &label, resume)?;
    if outcome.history.interrupted {
        print_interrupted(&outcome, &a.out);
        return Ok(());
    }
    print_summary(&label, &spec, &outcome, &a.out);
    Ok(())
}

pub fn demo(a: DemoArgs) -> anyhow::Result<()> {
    println!("tinymoe demo: an MLP and a 4-expert mixture learn five interleaved spirals, every gradient by hand\n");
    for name in ["spirals-mlp", "spirals-moe"] {
        let mut spec = preset(name)?;
        spec.training.seed = a.seed;
        if a.quick {
            spec.training.epochs = 3;
            spec.spiral_points_per_class = 100;
        }
        let out = a.out.join(name);
        let outcome = run_spec(&spec, &out, name, None)?;
        if outcome.history.interrupted {
            print_interrupted(&outcome, &out);
            return Ok(());
        }
        print_summary(name, &spec, &outcome, &out);
    }
    println!("tinymoe demo: a token-routed MoE language model learns four synthetic domains byte by byte\n");
    crate::cli::moe::run(&crate::cli::moe::demo_spec(a.seed, a.quick), &a.out.join("moe-lm"), None, false)?;
    println!("Open the PNGs above: regions.png shows what each model learned, routing.png how the gate split the plane among its experts,");
    println!("routing_top_expert.png which expert each domain's tokens went to.");
    Ok(())
}

/// Where an interrupted run was saved, and the command that continues it.
fn print_interrupted(o: &Outcome, out: &Path) {
    let ckpt = o.checkpoint.display();
    println!(
        "\ninterrupted: saved the run at step {} in {ckpt}\ncontinue it with: tinymoe train --resume {ckpt} --out {}",
        o.history.step_losses.len(),
        out.display()
    );
}

fn print_summary(label: &str, s: &Spec, o: &Outcome, out: &Path) {
    let last = o.history.epochs.last();
    let first = o.history.epochs.first();
    println!(
        "== {label} ({} model, {} epochs, seed {}, {:.1} s)",
        s.model, s.training.epochs, s.training.seed, o.seconds
    );
    if let (Some(f), Some(l)) = (first, last) {
        println!("   validation loss      {:.4} after epoch 1 → {:.4} after epoch {}", f.val_loss, l.val_loss, l.epoch);
        println!("   validation accuracy  {:.1} % → {:.1} %", 100.0 * f.val_acc, 100.0 * l.val_acc);
    }
    if let Some(gates) = classifier::gates(&o.model, o.val.x.view()) {
        let top = crate::moe::mixture::top_expert(gates.view());
        let n = top.len().max(1) as f64;
        let shares: Vec<String> = (0..gates.ncols())
            .map(|e| format!("{:.0} %", 100.0 * top.iter().filter(|&&t| t == e).count() as f64 / n))
            .collect();
        println!("   top-expert share     {} (experts 0..{})", shares.join(" / "), gates.ncols() - 1);
    }
    let mut files = vec!["config.toml", "config.json", "metrics.csv", "loss_curve.png", "model.ckpt"];
    if o.val.x.ncols() == 2 {
        files.push("regions.png");
        if s.model == "moe" {
            files.push("routing.png");
        }
    }
    println!("   wrote {}/{{{}}}\n", out.display(), files.join(", "));
}
