//! `tinymoe train moe` and the demo's second half: an MoE language model on the synthetic
//! domains, with checkpoints every epoch, exact `--resume` and Ctrl-C.
//!
//! Byte-level tokens (256 bytes + a padding id), labelled domains (code, math, story, science
//! by default), an embedding, shared pre-LN blocks, then the MoE layer — MLP experts inside a
//! residual (Switch style) or small transformer-stack experts — routed per token, per
//! sequence, or by a domain classifier; a final LayerNorm and the head. It ends with the
//! validation loss per domain, the domain × expert routing heatmaps, a token-by-token listing
//! of one sample per domain (which expert took which byte) and `model.ckpt`.

use crate::checkpoint;
use crate::cli::config::{self, Field, Settings};
use crate::cli::interrupt;
use crate::cli::progress;
use crate::cli::train::{set_threads, to_config, TrainingSpec};
use crate::data::batch::Batches;
use crate::data::corpora::{self, Domain};
use crate::data::tokenizer::{Bytes, Tokenizer};
use crate::engine::init::{self, streams};
use crate::error::Error;
use crate::io::write_atomic;
use crate::models::moe_lm::{self, ExpertKind};
use crate::moe::layer::{Level, Route};
use crate::moe::losses::RouterLossConfig;
use crate::moe::metrics;
use crate::moe::routing::{Gating, Strategy};
use crate::plot::line::{line_chart, Series};
use crate::plot::routing::routing_heatmap;
use crate::train::{self, MoeEpoch, MoeState, MoeTraining};
use anyhow::Context;
use clap::Args;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkpoint kind of an MoE language model.
pub const KIND: &str = "moe-lm";

/// Everything that defines an MoE language-model run; saved as config.toml, config.json and in
/// the checkpoint. Each field's meaning and range: [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeLmSpec {
    pub preset: String,
    pub domains: Vec<String>,
    pub train_per_domain: usize,
    pub val_per_domain: usize,
    /// Sequences are cut to this many predicted positions (bytes).
    pub max_len: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub dropout: f64,
    pub shared_layers: usize,
    pub experts: usize,
    /// "mlp" or "stack".
    pub expert: String,
    pub expert_hidden: usize,
    pub expert_layers: usize,
    pub router_hidden: Option<usize>,
    pub noisy: bool,
    /// "token", "sequence" or "domain".
    pub routing: String,
    /// "top-k", "switch" or "dense".
    pub gating: String,
    pub top_k: usize,
    pub capacity_factor: Option<f64>,
    pub balance_loss: f64,
    pub z_loss: f64,
    pub token_entropy: f64,
    pub batch_entropy: f64,
    pub domain_loss: f64,
    pub balanced: bool,
    pub teacher_start: f64,
    pub teacher_end: f64,
    #[serde(flatten)]
    pub training: TrainingSpec,
}

/// The MoE language model's keys, as `tinymoe config show moe-lm` documents them
/// (TrainingSpec's follow).
pub const FIELDS: &[Field] = &[
    Field::new(
        "domains",
        "Synthetic domains to learn, each a label, e.g. [\"code\", \"math\"] (`tinymoe data stats`\n\
         lists them: code, math, story, science, psychology, history, medicine, business).",
    ),
    Field::new("train_per_domain", "Training samples per domain; integer ≥ 1."),
    Field::new("val_per_domain", "Validation samples per domain (generated from another seed); integer ≥ 1."),
    Field::new("max_len", "Bytes per sequence (longer samples are cut); integer ≥ 1, the model's context."),
    Field::new("d_model", "Width of the residual stream; integer ≥ 1, a multiple of n_heads."),
    Field::new("n_heads", "Attention heads per block; integer ≥ 1 that divides d_model."),
    Field::new("d_ff", "Feed-forward width of the shared blocks and of stack experts; integer ≥ 1."),
    Field::new("dropout", "Dropout probability in the blocks' and experts' MLPs; in [0, 1), 0 = off."),
    Field::new("shared_layers", "Transformer blocks every token goes through before the MoE layer; integer ≥ 0."),
    Field::new("experts", "Number of experts; integer ≥ 1 (≥ the number of domains with routing = \"domain\")."),
    Field::new(
        "expert",
        "What an expert is: \"mlp\" (d_model → expert_hidden → d_model, inside a residual, Switch\n\
         style) or \"stack\" (expert_layers transformer blocks).",
    ),
    Field::new("expert_hidden", "Hidden width of an MLP expert; integer ≥ 1."),
    Field::new("expert_layers", "Blocks in a stack expert; integer ≥ 1."),
    Field::optional(
        "router_hidden",
        "Hidden width of a 2-layer router (Linear → ReLU → Linear); integer ≥ 1. Unset: a linear router.",
        "64",
    ),
    Field::new("noisy", "Noisy gating (learned per-expert noise on the router logits while training): true or false."),
    Field::new(
        "routing",
        "\"token\" (each token routed on its own), \"sequence\" (the router reads the mean of the\n\
         sequence) or \"domain\" (a domain classifier routes each sequence, top-1, trained on the\n\
         domain labels with weight domain_loss; teacher forcing per teacher_start/teacher_end).",
    ),
    Field::new(
        "gating",
        "\"top-k\" (the k best experts, gates renormalised over them), \"switch\" (the k best,\n\
         gates = their full-softmax probabilities, so top-1 still trains the router) or \"dense\"\n\
         (every expert, softmax gates). routing = \"domain\" always routes top-1.",
    ),
    Field::new("top_k", "Experts per token (gating top-k or switch); integer in 1..=experts."),
    Field::optional(
        "capacity_factor",
        "Cap each expert at capacity_factor · k · units / experts per batch; assignments over the\n\
         cap are dropped (the token passes through the residual); number > 0. Unset: no cap.",
        "1.25",
    ),
    Field::new("balance_loss", "Weight α of the Switch load-balancing loss; number ≥ 0 (0 = off)."),
    Field::new("z_loss", "Weight β of the router z-loss (keeps router logits small); number ≥ 0."),
    Field::new(
        "token_entropy",
        "Weight of the mean per-token routing entropy; finite number (> 0 sharpens each token's\n\
         choice, < 0 softens it, 0 = off).",
    ),
    Field::new(
        "batch_entropy",
        "Weight of the entropy of the batch's mean routing distribution; finite number (< 0\n\
         spreads tokens over the experts, > 0 concentrates them, 0 = off).",
    ),
    Field::new("domain_loss", "Weight λ of the domain classifier's cross-entropy (routing = \"domain\"); number > 0."),
    Field::new("balanced", "true: every batch draws the domains equally (small ones oversampled); false: shuffled."),
    Field::new(
        "teacher_start",
        "Domain routing: probability that a sequence goes to its true domain's expert at the first\n\
         step (teacher forcing), moving linearly to teacher_end at the last; in [0, 1].",
    ),
    Field::new("teacher_end", "Domain routing: the teacher-forcing probability at the last step; in [0, 1]."),
];

impl MoeLmSpec {
    /// Every value against its allowed range, naming the first bad one: the one check for
    /// presets, config files, flags and resumed checkpoints.
    pub fn validate(&self) -> Result<(), Error> {
        self.domain_list()?;
        for (name, v) in [
            ("train_per_domain", self.train_per_domain),
            ("val_per_domain", self.val_per_domain),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("experts", self.experts),
            ("expert_hidden", self.expert_hidden),
            ("expert_layers", self.expert_layers),
        ] {
            config::at_least_one(name, v)?;
        }
        if self.d_model % self.n_heads != 0 {
            return Err(Error::bad_value(
                "n_heads",
                self.n_heads,
                &format!("must divide d_model = {} (each head gets d_model / n_heads columns)", self.d_model),
            ));
        }
        config::in_zero_one("dropout", self.dropout)?;
        config::one_of("expert", &self.expert, &["mlp", "stack"])?;
        if let Some(h) = self.router_hidden {
            config::at_least_one("router_hidden", h)?;
        }
        config::one_of("routing", &self.routing, &["token", "sequence", "domain"])?;
        config::one_of("gating", &self.gating, &["top-k", "switch", "dense"])?;
        if self.gating != "dense" && self.routing != "domain" {
            config::top_k("top_k", self.top_k, self.experts)?;
        }
        if let Some(c) = self.capacity_factor {
            config::positive("capacity_factor", c, "the capacity factor")?;
        }
        config::non_negative("balance_loss", self.balance_loss)?;
        config::non_negative("z_loss", self.z_loss)?;
        for (name, v) in [("token_entropy", self.token_entropy), ("batch_entropy", self.batch_entropy)] {
            if !v.is_finite() {
                return Err(Error::bad_value(name, v, "must be a finite number"));
            }
        }
        if self.routing == "domain" {
            config::positive("domain_loss", self.domain_loss, "the domain classifier's weight")?;
            if self.experts < self.domains.len() {
                return Err(Error::bad_value(
                    "experts",
                    self.experts,
                    &format!("routing = \"domain\" needs one expert per domain: at least {}", self.domains.len()),
                ));
            }
        }
        for (name, v) in [("teacher_start", self.teacher_start), ("teacher_end", self.teacher_end)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::bad_value(name, v, "must be a probability in [0, 1]"));
            }
        }
        self.training.validate()
    }

    /// The domains, parsed; the error names the bad one and lists the choices.
    pub fn domain_list(&self) -> Result<Vec<Domain>, Error> {
        if self.domains.is_empty() {
            return Err(Error::bad_value("domains", "[]", "name at least one domain"));
        }
        let domains = self
            .domains
            .iter()
            .map(|d| d.parse::<Domain>().map_err(|e| Error::bad_value("domains", format!("{d:?}"), &e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = domains.iter().enumerate().find_map(|(i, d)| domains[..i].contains(d).then_some(d)) {
            return Err(Error::bad_value("domains", format!("{:?}", d.name()), "is listed twice"));
        }
        Ok(domains)
    }

    /// The model's shape and routing (byte vocabulary: 256 bytes + the padding id 256).
    pub fn model_config(&self) -> Result<moe_lm::Config, Error> {
        self.validate()?;
        let domain = self.routing == "domain";
        let strategy = match (domain, self.gating.as_str()) {
            (true, _) => Strategy::TopK(1),
            (false, "dense") => Strategy::Dense,
            (false, "switch") => Strategy::TopKProbs(self.top_k),
            _ => Strategy::TopK(self.top_k),
        };
        Ok(moe_lm::Config {
            vocab: 257,
            max_seq: self.max_len,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            pad_id: Some(256),
            shared_layers: self.shared_layers,
            n_experts: self.experts,
            expert: match self.expert.as_str() {
                "stack" => ExpertKind::Stack { layers: self.expert_layers },
                _ => ExpertKind::Mlp { hidden: self.expert_hidden },
            },
            router_hidden: self.router_hidden,
            noisy: self.noisy,
            level: if self.routing == "token" { Level::Token } else { Level::Sequence },
            gating: Gating { strategy, capacity_factor: self.capacity_factor },
            router_losses: RouterLossConfig {
                balance: self.balance_loss,
                z_loss: self.z_loss,
                token_entropy: self.token_entropy,
                batch_entropy: self.batch_entropy,
            },
            domain_loss: domain.then_some(self.domain_loss),
        })
    }

    /// How the run trains beyond the optimiser: sampling and teacher forcing.
    fn moe_training(&self) -> MoeTraining {
        MoeTraining {
            balanced: self.balanced,
            teacher_start: self.teacher_start,
            teacher_end: self.teacher_end,
            ..MoeTraining::default()
        }
    }

    /// A short description of the model for the summary line.
    fn describe(&self) -> String {
        let gating = match (self.routing.as_str(), self.gating.as_str()) {
            ("domain", _) => "domain-classifier routed".to_string(),
            (level, "dense") => format!("{level}-level dense"),
            (level, g) => format!("{level}-level {g} k = {}", self.top_k),
        };
        format!("{} {} experts, {gating}", self.experts, self.expert)
    }
}

/// The `moe-lm` preset: what the demo trains (and `tinymoe train moe` with no flags).
pub fn preset_moe_lm() -> MoeLmSpec {
    MoeLmSpec {
        preset: "moe-lm".into(),
        domains: Domain::E2.iter().map(|d| d.name().to_string()).collect(),
        train_per_domain: 500,
        val_per_domain: 50,
        max_len: 128,
        d_model: 96,
        n_heads: 4,
        d_ff: 384,
        dropout: 0.0,
        shared_layers: 1,
        experts: 4,
        expert: "mlp".into(),
        expert_hidden: 256,
        expert_layers: 1,
        router_hidden: None,
        noisy: false,
        routing: "token".into(),
        gating: "top-k".into(),
        top_k: 2,
        capacity_factor: None,
        balance_loss: RouterLossConfig::paper().balance,
        z_loss: RouterLossConfig::paper().z_loss,
        token_entropy: 0.0,
        batch_entropy: 0.0,
        domain_loss: 1.0,
        balanced: false,
        teacher_start: 1.0,
        teacher_end: 0.0,
        training: TrainingSpec {
            epochs: 10,
            batch_size: 16,
            lr: 3e-3,
            optimizer: "adam".into(),
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: "cosine".into(),
            warmup_steps: 30,
            clip: Some(1.0),
            seed: 42,
        },
    }
}

/// The `moe-lm-quick` preset (`--quick`, and the quick demo): the same model on a few
/// samples for two epochs, seconds.
pub fn preset_moe_lm_quick() -> MoeLmSpec {
    let mut s = MoeLmSpec {
        preset: "moe-lm-quick".into(),
        train_per_domain: 24,
        val_per_domain: 8,
        max_len: 48,
        ..preset_moe_lm()
    };
    s.training.epochs = 2;
    s.training.warmup_steps = 2;
    s
}

/// The demo's settings: the moe-lm preset (or moe-lm-quick) with the demo's seed.
pub fn demo_spec(seed: u64, quick: bool) -> MoeLmSpec {
    let mut s = if quick { preset_moe_lm_quick() } else { preset_moe_lm() };
    s.training.seed = seed;
    s
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct MoeArgs {
    /// Starting point for every setting (moe-lm, moe-lm-quick; default: the config file's
    /// `preset`, else moe-lm). The config file and flags override it.
    #[arg(long, conflicts_with = "quick", conflicts_with = "resume")]
    pub preset: Option<String>,
    /// A TOML file of settings (`tinymoe config show moe-lm > my.toml` writes one); it
    /// overrides the preset and flags override it.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Domains to learn, e.g. `code,math,story,science` (see `tinymoe data stats`).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub domains: Option<Vec<String>>,
    /// Number of experts.
    #[arg(long, conflicts_with = "resume")]
    pub experts: Option<usize>,
    /// mlp (Switch-style, inside a residual) or stack (transformer blocks).
    #[arg(long, conflicts_with = "resume")]
    pub expert: Option<String>,
    /// token, sequence or domain (a domain classifier routes each sequence).
    #[arg(long, conflicts_with = "resume")]
    pub routing: Option<String>,
    /// top-k, switch or dense.
    #[arg(long, conflicts_with = "resume")]
    pub gating: Option<String>,
    /// Experts per token (1..=experts).
    #[arg(long, conflicts_with = "resume")]
    pub top_k: Option<usize>,
    /// Cap each expert's load (assignments over it are dropped), > 0.
    #[arg(long, conflicts_with = "resume")]
    pub capacity_factor: Option<f64>,
    /// Weight of the Switch load-balancing loss, ≥ 0.
    #[arg(long, conflicts_with = "resume")]
    pub balance_loss: Option<f64>,
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    /// Sequences per batch.
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// Rayon threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A few samples for two epochs (seconds; used by the tests): the moe-lm-quick preset.
    #[arg(long, conflicts_with = "resume")]
    pub quick: bool,
    /// Continue the run saved in this checkpoint with its own settings (flags that would change
    /// them are refused; only --out and --threads apply): the losses continue exactly as if it
    /// had never stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Results folder.
    #[arg(long, default_value = "results/moe-lm")]
    pub out: PathBuf,
}

/// The run's settings: the preset, then the `--config` file, then the flags; validated.
fn resolve(a: &MoeArgs) -> anyhow::Result<MoeLmSpec> {
    let file = a.config.as_deref().map(config::File::read).transpose()?;
    let flag_preset = if a.quick { Some("moe-lm-quick") } else { a.preset.as_deref() };
    let mut s = match config::start(file.as_ref(), flag_preset, config::Command::TrainMoe)? {
        Settings::Moe(s) => s,
        _ => return Err(Error::bad_value("preset", "(not moe)", "is not an MoE LM preset").into()),
    };
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = &a.$field { s.$field = v.clone(); } )* };
    }
    set!(domains, experts, expert, routing, gating, top_k, balance_loss);
    if a.capacity_factor.is_some() {
        s.capacity_factor = a.capacity_factor;
    }
    let t = &mut s.training;
    macro_rules! set_training {
        ($($field:ident),*) => { $( if let Some(v) = &a.$field { t.$field = v.clone(); } )* };
    }
    set_training!(epochs, batch_size, lr, seed);
    s.validate()?;
    Ok(s)
}

/// A saved MoE LM run: the model and, for a run that can continue, where it stood.
pub type Saved = checkpoint::Trained<moe_lm::Params<f32>, MoeState>;

/// The settings, model and training state of a checkpoint to resume.
fn load_for_resume(path: &Path) -> anyhow::Result<(MoeLmSpec, moe_lm::Params<f32>, MoeState)> {
    let (header, saved): (_, Saved) = checkpoint::load(path, KIND)?;
    let bad = |problem: &str| Error::Checkpoint { path: path.to_path_buf(), problem: problem.into() };
    let spec: MoeLmSpec = header
        .meta
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .ok_or_else(|| bad("it does not record the run's settings, so it cannot be resumed"))?;
    spec.validate().map_err(|e| bad(&format!("its settings are not valid: {e}")))?;
    if saved.model.config != spec.model_config()? {
        return Err(bad("its model does not match its own saved settings").into());
    }
    let state = saved.state.ok_or_else(|| bad("it holds weights only, no training state to resume"))?;
    Ok((spec, saved.model, state))
}

/// `tinymoe train moe`.
pub fn train_moe(a: MoeArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let (spec, resumed) = match &a.resume {
        Some(path) => {
            let (spec, model, state) = load_for_resume(path)?;
            (spec, Some((model, state)))
        }
        None => (resolve(&a)?, None),
    };
    println!(
        "tinymoe train moe: an MoE language model ({}) learns {} byte by byte, every gradient by hand\n",
        spec.describe(),
        spec.domains.join(", ")
    );
    run(&spec, &a.out, resumed, true)
}

/// The labelled byte sequences of the spec's domains: `per` samples each, from `seed`.
fn encode(domains: &[Domain], per: usize, seed: u64) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (label, &d) in domains.iter().enumerate() {
        for text in corpora::generate(d, per, seed) {
            seqs.push(Bytes.encode(&text));
            labels.push(label);
        }
    }
    (seqs, labels)
}

/// Trains the spec's model (from scratch, or from a saved model and state) and writes its
/// results into `out`. A `stoppable` run saves where it stands at the first Ctrl-C and returns
/// (see [`interrupt`]); otherwise Ctrl-C quits at once.
pub fn run(
    spec: &MoeLmSpec,
    out: &Path,
    resumed: Option<(moe_lm::Params<f32>, MoeState)>,
    stoppable: bool,
) -> anyhow::Result<()> {
    let model_cfg = spec.model_config()?;
    let domains = spec.domain_list()?;
    let pad = model_cfg.pad_id.context("the MoE LM needs a padding id")?;
    // Train and validation texts from different seeds: no validation sample is a training one.
    let seed = spec.training.seed;
    let (train_seqs, train_labels) = encode(&domains, spec.train_per_domain, seed);
    let (val_seqs, val_labels) = encode(&domains, spec.val_per_domain, seed.wrapping_add(1_000_003));
    let batch = spec.training.batch_size;
    let train_data = Batches::new(&train_seqs, &train_labels, spec.max_len, pad, batch)?;
    let val_data = Batches::new(&val_seqs, &val_labels, spec.max_len, pad, batch)?;
    let steps_per_epoch = train_data.len().div_ceil(batch);
    let cfg = to_config(&spec.training, steps_per_epoch)?;

    let (mut model, state) = match resumed {
        Some((model, state)) => (model, Some(state)),
        None => (moe_lm::init::<f32>(model_cfg, &mut init::stream(seed, streams::INIT)), None),
    };
    crate::io::create_dir(out)?;
    write_atomic(&out.join("config.json"), serde_json::to_string_pretty(spec)?.as_bytes())?;
    let header = "The settings of this run (preset < config file < flags, resolved).\n\
                  Run it again with: tinymoe train moe --config config.toml";
    write_atomic(&out.join("config.toml"), config::render(&Settings::Moe(spec.clone()), header)?.as_bytes())?;

    let steps = steps_per_epoch * cfg.epochs;
    let bar = progress::bar(steps, "moe lm");
    let ckpt = out.join("model.ckpt");
    if let Some(s) = &state {
        bar.set_position(s.step as u64);
        bar.suspend(|| println!("resuming at epoch {}, batch {} (step {})\n", s.epoch, s.batches_done, s.step));
    }
    let mut last_saved: Option<usize> = state.as_ref().map(|s| s.history.epochs.len());
    let started = Instant::now();
    let training = stoppable.then(interrupt::Training::start);
    let fitted = train::fit_moe_lm_resumable(
        &mut model,
        &train_data,
        &val_data,
        &cfg,
        &spec.moe_training(),
        state,
        training.as_ref().map(interrupt::Training::stop),
        &mut |p| progress::update(&bar, p),
        &mut |event, m, state| {
            if let train::Checkpoint::Epoch(e) = event {
                let line = format!(
                    "   epoch {:>2}: train {:.3}  val {:.3} nats/byte  router loss {:.4}  {:.0} tokens/s",
                    e.epoch, e.train_loss, e.val.loss, e.router_loss, e.tokens_per_s
                );
                bar.suspend(|| println!("{line}"));
            }
            save(&ckpt, m, spec, state)?;
            last_saved = Some(state.history.epochs.len());
            Ok(())
        },
    );
    drop(training);
    bar.finish_and_clear();
    let history = match (fitted, last_saved) {
        (Ok(h), _) => h,
        (Err(e), Some(epochs)) if epochs > 0 => {
            return Err(anyhow::Error::new(e).context(format!(
                "training the MoE LM stopped; the last good checkpoint is {} ({epochs} of {} epochs): \
                 resume with tinymoe train moe --resume {} --out {}",
                ckpt.display(),
                cfg.epochs,
                ckpt.display(),
                out.display()
            )))
        }
        (Err(e), _) => return Err(anyhow::Error::new(e).context("training the MoE LM")),
    };
    let seconds = started.elapsed().as_secs_f64();
    if history.interrupted {
        println!(
            "\ninterrupted: saved the run at step {} in {}\ncontinue it with: tinymoe train moe --resume {} --out {}",
            history.step_losses.len(),
            ckpt.display(),
            ckpt.display(),
            out.display()
        );
        return Ok(());
    }

    // Results: metrics, loss curve, routing heatmaps, token listing.
    let n_experts = model_cfg.n_experts;
    let last = history.epochs.last().context("no epoch ran")?;
    write_metrics(&out.join("metrics.csv"), &history.epochs, &spec.domains)?;
    let steps_pts: Vec<(f64, f64)> =
        history.step_losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect();
    let val_pts: Vec<(f64, f64)> =
        history.epochs.iter().map(|e| ((e.epoch * steps_per_epoch) as f64, e.val.loss)).collect();
    line_chart(
        &out.join("loss_curve.png"),
        "MoE LM: next-byte loss",
        "step",
        "nats per byte",
        &[Series { name: "train (per step)", points: &steps_pts }, Series { name: "validation", points: &val_pts }],
    )?;
    let rows: Vec<String> = spec.domains.clone();
    let cols: Vec<String> = (0..n_experts).map(|e| format!("expert {e}")).collect();
    let table = |t: &[Vec<f64>]| Array2::from_shape_fn((t.len(), n_experts), |(d, e)| t[d][e]);
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
    let listing = token_listing(&model, &val_seqs, &val_labels, spec)?;
    write_atomic(&out.join("tokens.txt"), listing.as_bytes())?;

    // The summary.
    let first = history.epochs.first().context("no epoch ran")?;
    println!(
        "== moe-lm (byte-level, {} over {} domains, {} epochs, seed {}, {:.1} s)",
        spec.describe(),
        spec.domains.len(),
        cfg.epochs,
        seed,
        seconds
    );
    println!(
        "   validation loss      {:.3} after epoch 1 → {:.3} nats/byte after epoch {}",
        first.val.loss, last.val.loss, last.epoch
    );
    println!("   per domain           {}", per_domain(&spec.domains, &last.val.domain_loss));
    if let Some(acc) = last.val.domain_accuracy {
        println!("   routing accuracy     {:.1} % of validation sequences go to their domain's expert", 100.0 * acc);
    }
    println!("   top-expert share per domain (rows: domains, columns: experts 0..{}):", n_experts - 1);
    for (d, shares) in spec.domains.iter().zip(&last.val.top_share) {
        let cells: Vec<String> = shares.iter().map(|s| format!("{:>5.1} %", 100.0 * s)).collect();
        println!("     {d:<10} {}", cells.join(" "));
    }
    println!("   the top expert of every byte of one validation sample per domain (tokens.txt lists every gate):");
    for line in listing.lines().filter(|l| l.starts_with("  bytes") || l.starts_with("  expert") || l.ends_with(':')) {
        println!("   {}", line.chars().take(100).collect::<String>());
    }
    println!(
        "   wrote {}/{{config.toml, config.json, metrics.csv, loss_curve.png, routing_mean_gate.png, routing_top_expert.png, tokens.txt, model.ckpt}}\n",
        out.display()
    );
    Ok(())
}

/// A checkpoint of the model and where its training stands (atomically replacing the last).
fn save(path: &Path, model: &moe_lm::Params<f32>, spec: &MoeLmSpec, state: &MoeState) -> crate::Result<()> {
    let last = state.history.epochs.last();
    let meta = serde_json::json!({
        "tokenizer": "bytes",
        "epochs_done": last.map_or(0, |e| e.epoch),
        "step": state.step,
        "val_loss": last.map(|e| e.val.loss),
        "interrupted": state.history.interrupted,
        "spec": spec,
        "training": state.standing(),
    });
    let saved = checkpoint::Trained { model: model.clone(), state: Some(state.clone()) };
    checkpoint::save(path, KIND, &model.config, &saved, meta)
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
    seqs: &[Vec<usize>],
    labels: &[usize],
    spec: &MoeLmSpec,
) -> anyhow::Result<String> {
    let pad = model.config.pad_id.unwrap_or(256);
    let mut out = String::new();
    for (d, name) in spec.domains.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == d) else { continue };
        let data = Batches::new(&seqs[i..=i], &labels[i..=i], spec.max_len, pad, 1)?;
        let batch = data.batch(&[0]);
        let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), None, Route::default());
        let n = batch.mask.iter().filter(|&&m| m == 1).count();
        let tokens: Vec<String> = batch.ids.iter().take(n).map(|&id| Bytes.token_text(id)).collect();
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
