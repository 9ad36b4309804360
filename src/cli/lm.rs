//! `tinymoe train lm`, `tinymoe generate` and `tinymoe attention`: a byte-level causal
//! language model trained on built-in text (or a file), text sampled from it, and its
//! attention maps.
//!
//! The settings: the preset (`lm`, or `lm-quick` with `--quick`) < a `--config` TOML file <
//! flags (see `cli::config`).
//!
//! A results folder holds: config.toml, config.json, metrics.csv (per epoch: train and validation loss,
//! perplexity, tokens/s), loss_curve.png, model.ckpt (saved after every epoch, atomically),
//! sample.txt, and attention_layer{L}.png for a sentence of the text.

use crate::checkpoint;
use crate::cli::config::{self, Field, Settings};
use crate::cli::interrupt;
use crate::cli::progress;
use crate::cli::train::{moving_average, set_threads, to_config, TrainingSpec};
use crate::data::corpora::{self, Domain};
use crate::data::text::{self, Windows};
use crate::data::tokenizer::{self as tokenizer, Tokenizer};
use crate::engine::init::{self, streams};
use crate::error::Error;
use crate::io::write_atomic;
use crate::models::generate::{self, Decode, Sampling};
use crate::models::transformer_lm::{self as lm, Config as LmConfig};
use crate::plot::heatmap::attention_grid;
use crate::plot::line::{line_chart, Series};
use crate::train::{self, LmEpoch, LmHistory};
use anyhow::Context;
use clap::Args;
use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkpoint kind of a language model.
pub const KIND: &str = "transformer_lm";

/// Everything that defines an LM run; saved as config.toml, config.json and in every
/// checkpoint. Each field's meaning and range: [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmSpec {
    /// The preset it started from (`tinymoe config list`); checkpoints from before presets
    /// existed read as "lm".
    #[serde(default = "lm_preset_name")]
    pub preset: String,
    /// A UTF-8 text file; None = the built-in text (the first chapters of the tinymoe book).
    pub text: Option<PathBuf>,
    /// Synthetic domains to learn instead (samples joined by blank lines), e.g. code, math.
    pub corpus: Vec<String>,
    /// Samples per domain of `corpus`.
    pub samples: usize,
    /// A tokeniser spec: bytes, gpt2, bpe:FILE, compact:FILE.
    pub tokenizer: String,
    /// Context length: positions per training window, and the model's max_seq.
    pub seq: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub dropout: f64,
    pub tie_head: bool,
    pub val_fraction: f64,
    #[serde(flatten)]
    pub training: TrainingSpec,
}

fn lm_preset_name() -> String {
    "lm".into()
}

/// The language model's keys, as `tinymoe config show lm` documents them (TrainingSpec's follow).
pub const FIELDS: &[Field] = &[
    Field::optional(
        "text",
        "A UTF-8 text file to learn (relative to the working directory). Unset: `corpus` if it\n\
         names domains, else the built-in text (the first chapters of the tinymoe book).",
        "\"book.txt\"",
    ),
    Field::new(
        "corpus",
        "Synthetic domains to learn instead, e.g. [\"code\", \"math\"] (`tinymoe data stats` lists\n\
         them); [] = off. Not together with `text`.",
    ),
    Field::new("samples", "Samples per domain of `corpus`; integer ≥ 1."),
    Field::new("tokenizer", "\"bytes\", \"gpt2\", \"bpe:FILE\" (from `tinymoe tokenizer train`) or \"compact:FILE\"."),
    Field::new(
        "seq",
        "Context length in tokens: positions per training window, and the model's maximum;\n\
         integer ≥ 1.",
    ),
    Field::new("d_model", "Width of the residual stream (embedding size); integer ≥ 1, a multiple of n_heads."),
    Field::new("n_heads", "Attention heads per block; integer ≥ 1 that divides d_model."),
    Field::new("d_ff", "Hidden width of each block's feed-forward MLP; integer ≥ 1."),
    Field::new("n_layers", "Transformer blocks; integer ≥ 1."),
    Field::new("dropout", "Dropout probability in the blocks' MLPs; in [0, 1), 0 = off."),
    Field::new("tie_head", "true: the output head reuses the token-embedding table; false: a separate head."),
    Field::new("val_fraction", "Share of the tokens held out for validation (the end of the text); in (0, 1)."),
];

impl LmSpec {
    /// Every value against its allowed range, naming the first bad one: the one check for
    /// presets, config files, flags and resumed checkpoints.
    pub fn validate(&self) -> Result<(), Error> {
        if self.text.is_some() && !self.corpus.is_empty() {
            return Err(Error::bad_value(
                "corpus",
                format!("{:?}", self.corpus),
                "set either text or corpus, not both",
            ));
        }
        for d in &self.corpus {
            d.parse::<Domain>().map_err(|e| Error::bad_value("corpus", format!("{d:?}"), &e.to_string()))?;
        }
        config::at_least_one("samples", self.samples)?;
        for (name, v) in [
            ("seq", self.seq),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("n_layers", self.n_layers),
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
        config::in_open_unit("val_fraction", self.val_fraction)?;
        self.training.validate()
    }
}

/// The `lm` preset: what `tinymoe train lm` trains with no flags.
pub fn preset_lm() -> LmSpec {
    LmSpec {
        preset: lm_preset_name(),
        text: None,
        corpus: vec![],
        samples: 500,
        tokenizer: "bytes".into(),
        seq: 128,
        d_model: 128,
        n_heads: 4,
        d_ff: 512,
        n_layers: 2,
        dropout: 0.1,
        tie_head: true,
        val_fraction: 0.1,
        training: TrainingSpec {
            epochs: 12,
            batch_size: 16,
            lr: 2e-3,
            optimizer: "adamw".into(),
            momentum: 0.9,
            weight_decay: 0.01,
            schedule: "cosine".into(),
            warmup_steps: 30,
            clip: Some(1.0),
            seed: 42,
        },
    }
}

/// The `lm-quick` preset (`--quick`): a tiny model for one epoch, seconds.
pub fn preset_lm_quick() -> LmSpec {
    let mut s =
        LmSpec { preset: "lm-quick".into(), seq: 32, d_model: 32, n_heads: 2, d_ff: 64, n_layers: 1, ..preset_lm() };
    s.training.epochs = 1;
    s.training.warmup_steps = 5;
    s
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct LmArgs {
    /// Starting point for every setting (lm, lm-quick; default: the config file's `preset`,
    /// else lm). The config file and flags override it.
    #[arg(long, conflicts_with = "quick", conflicts_with = "resume")]
    pub preset: Option<String>,
    /// A TOML file of settings (`tinymoe config show lm > my.toml` writes one); it overrides
    /// the preset and flags override it.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// A UTF-8 text file to learn (default: the built-in text, the first chapters of the
    /// tinymoe book, about 75 KB).
    #[arg(long, conflicts_with = "corpus", conflicts_with = "resume")]
    pub text: Option<PathBuf>,
    /// Learn synthetic domain text instead, e.g. `code,math,story,science` (see `tinymoe data
    /// stats` for the domains).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub corpus: Option<Vec<String>>,
    /// Samples per domain with --corpus.
    #[arg(long, conflicts_with = "resume")]
    pub samples: Option<usize>,
    /// Tokeniser: bytes (default), gpt2, bpe:FILE (from `tinymoe tokenizer train`), compact:FILE.
    #[arg(long, conflicts_with = "resume")]
    pub tokenizer: Option<String>,
    /// Context length in tokens.
    #[arg(long, conflicts_with = "resume")]
    pub seq: Option<usize>,
    #[arg(long, conflicts_with = "resume")]
    pub d_model: Option<usize>,
    /// Attention heads (must divide d_model).
    #[arg(long, conflicts_with = "resume")]
    pub heads: Option<usize>,
    /// Feed-forward width.
    #[arg(long, conflicts_with = "resume")]
    pub d_ff: Option<usize>,
    /// Transformer blocks.
    #[arg(long, conflicts_with = "resume")]
    pub layers: Option<usize>,
    /// Dropout in the blocks' MLPs, in [0, 1).
    #[arg(long, conflicts_with = "resume")]
    pub dropout: Option<f64>,
    /// A separate output head instead of the token table (tied by default).
    #[arg(long, conflicts_with = "resume")]
    pub untied: bool,
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    /// Windows per batch.
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// sgd, adam or adamw.
    #[arg(long, conflicts_with = "resume")]
    pub optimizer: Option<String>,
    #[arg(long, conflicts_with = "resume")]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm to this (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub clip: Option<f64>,
    /// Share of the text held out for validation (its end), in (0, 1).
    #[arg(long, conflicts_with = "resume")]
    pub val_fraction: Option<f64>,
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// Rayon threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A tiny model for one epoch (seconds; used by the tests): the lm-quick preset.
    #[arg(long, conflicts_with = "resume")]
    pub quick: bool,
    /// Continue the run saved in this checkpoint with its own settings (flags that would change
    /// them are refused; only --out and --threads apply): the losses continue exactly as if it
    /// had never stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Results folder.
    #[arg(long, default_value = "results/lm")]
    pub out: PathBuf,
}

/// The run's settings: the preset, then the `--config` file, then the flags; validated.
fn resolve(a: &LmArgs) -> anyhow::Result<LmSpec> {
    let file = a.config.as_deref().map(config::File::read).transpose()?;
    let flag_preset = if a.quick { Some("lm-quick") } else { a.preset.as_deref() };
    let spec = match config::start(file.as_ref(), flag_preset, config::Command::TrainLm)? {
        Settings::Lm(s) => s,
        _ => return Err(Error::bad_value("preset", "(classifier)", "is not an LM preset").into()),
    };
    let spec = apply_flags(spec, a);
    spec.validate()?;
    Ok(spec)
}

/// Flags over the settings so far; a flag left out keeps the value.
fn apply_flags(mut s: LmSpec, a: &LmArgs) -> LmSpec {
    // --text and --corpus replace each other (a file may have set the other).
    if let Some(t) = &a.text {
        s.text = Some(t.clone());
        s.corpus.clear();
    }
    if let Some(c) = &a.corpus {
        s.corpus = c.clone();
        s.text = None;
    }
    if let Some(t) = &a.tokenizer {
        s.tokenizer = t.clone();
    }
    macro_rules! set {
        ($($arg:ident => $field:ident),*) => { $( if let Some(v) = &a.$arg { s.$field = v.clone(); } )* };
    }
    set!(seq => seq, d_model => d_model, heads => n_heads, d_ff => d_ff, layers => n_layers, dropout => dropout,
         val_fraction => val_fraction, samples => samples);
    let t = &mut s.training;
    macro_rules! set_training {
        ($($field:ident),*) => { $( if let Some(v) = &a.$field { t.$field = v.clone(); } )* };
    }
    set_training!(epochs, batch_size, lr, optimizer, weight_decay, seed);
    if a.clip.is_some() {
        t.clip = a.clip;
    }
    if a.untied {
        s.tie_head = false;
    }
    s
}

/// The model's shape from a spec, every value checked.
fn model_config(s: &LmSpec, vocab: usize) -> Result<LmConfig, Error> {
    s.validate()?;
    Ok(LmConfig {
        vocab,
        max_seq: s.seq,
        d_model: s.d_model,
        n_heads: s.n_heads,
        d_ff: s.d_ff,
        n_layers: s.n_layers,
        dropout: s.dropout,
        pad_id: None,
        tie_head: s.tie_head,
    })
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        line: 0,
        problem: format!("not UTF-8 text (bad byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

/// `tinymoe train lm`.
pub fn train_lm(a: LmArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let resumed = match &a.resume {
        Some(path) => Some(load_for_resume(path)?),
        None => None,
    };
    let spec = match &resumed {
        Some((spec, _, _)) => spec.clone(),
        None => resolve(&a)?,
    };
    let (text, source) = load_text(&spec)?;
    let tok = tokenizer::from_spec(&spec.tokenizer)?;
    let cfg = model_config(&spec, tok.vocab_size())?;
    let tokens = tok.encode(&text);
    // Bytes per token, to turn nats per token into bits per byte whatever the tokeniser.
    let bytes_per_token = text.len() as f64 / tokens.len().max(1) as f64;
    let (train_tokens, val_tokens) = text::split(&tokens, spec.val_fraction);
    let val = Windows::new(val_tokens, spec.seq);
    if val.is_empty() {
        return Err(Error::bad_value(
            "val_fraction",
            spec.val_fraction,
            &format!(
                "holds out {} of {} tokens: fewer than one window of seq + 1 = {}",
                (tokens.len() as f64 * spec.val_fraction).round(),
                tokens.len(),
                spec.seq + 1
            ),
        ))
        .with_context(|| format!("learning {source}"));
    }
    let windows_per_epoch = Windows::new(train_tokens, spec.seq).len();
    let train_cfg = to_config(&spec.training, windows_per_epoch.div_ceil(spec.training.batch_size.max(1)))?;
    let (mut model, state) = match resumed {
        Some((_, model, state)) => {
            if model.config != cfg {
                return Err(Error::bad_value(
                    "resume",
                    a.resume.as_ref().expect("resuming").display(),
                    "the checkpoint's model does not match its own saved settings",
                )
                .into());
            }
            (model, Some(state))
        }
        None => (lm::init::<f32>(cfg, &mut init::stream(spec.training.seed, streams::INIT)), None),
    };

    let out = &a.out;
    crate::io::create_dir(out)?;
    write_atomic(&out.join("config.json"), serde_json::to_string_pretty(&spec)?.as_bytes())?;
    let header = "The settings of this run (preset < config file < flags, resolved).\n\
                  Run it again with: tinymoe train lm --config config.toml";
    write_atomic(&out.join("config.toml"), config::render(&Settings::Lm(spec.clone()), header)?.as_bytes())?;
    println!(
        "tinymoe train lm: a {}-block transformer ({} parameters, {} tokeniser, vocabulary {}) learns \
         {source} ({} training tokens, {} held out), every gradient by hand\n",
        cfg.n_layers,
        crate::engine::params::count(&model),
        spec.tokenizer,
        cfg.vocab,
        train_tokens.len(),
        val_tokens.len(),
    );

    let total = train_cfg.epochs * windows_per_epoch.div_ceil(train_cfg.batch_size);
    let bar = progress::bar(total, "lm");
    let ckpt = out.join("model.ckpt");
    if let Some(s) = &state {
        bar.set_position(s.step as u64);
        println!("resuming at epoch {}, batch {} (step {})\n", s.epoch, s.batches_done, s.step);
    }
    let started = Instant::now();
    // The last checkpoint known whole on disk, and its finished epochs: the one being resumed,
    // then each epoch's save that succeeded. Named in the error if training stops.
    let mut last_good: Option<(PathBuf, usize)> =
        a.resume.clone().zip(state.as_ref().map(|s| s.history.epochs.last().map_or(0, |e| e.epoch)));
    let training = interrupt::Training::start();
    let history = train::fit_lm_resumable(
        &mut model,
        train_tokens,
        spec.seq,
        &val,
        &train_cfg,
        state,
        Some(training.stop()),
        &mut |p| progress::update(&bar, p),
        &mut |event, m, state| {
            if let train::Checkpoint::Epoch(e) = event {
                bar.suspend(|| print_epoch(e));
            }
            save(&ckpt, m, &spec, state)?;
            if let train::Checkpoint::Epoch(e) = event {
                last_good = Some((ckpt.clone(), e.epoch));
            }
            Ok(())
        },
    )
    .with_context(|| format!("training the language model on {source}"));
    drop(training);
    let history = match history {
        Ok(h) => h,
        Err(e) => return Err(with_last_good(e, last_good, train_cfg.epochs, out)),
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if history.interrupted {
        println!(
            "\ninterrupted: saved the run at step {} in {}\ncontinue it with: tinymoe train lm --resume {} --out {}",
            history.step_losses.len(),
            ckpt.display(),
            ckpt.display(),
            out.display()
        );
        return Ok(());
    }

    write_metrics(&out.join("metrics.csv"), &history)?;
    draw_loss(&out.join("loss_curve.png"), &history, windows_per_epoch.div_ceil(train_cfg.batch_size))?;
    // A sentence from the held-out text, for the attention maps; a continuation of it, sampled.
    let prompt = prompt_from(val_tokens, spec.seq.min(48));
    let maps = draw_attention(&model, &prompt, tok.as_ref(), out)?;
    let how = Sampling { temperature: 0.8, top_k: Some(20) };
    let new = generate::generate(&model, &prompt, 200, how, Decode::KvCache, &mut init::rng(spec.training.seed));
    let sample = format!("{}{}", tok.decode(&prompt), tok.decode(&new));
    write_atomic(&out.join("sample.txt"), sample.as_bytes())?;

    let (first, last) = (&history.epochs[0], history.epochs.last().expect("at least one epoch"));
    println!(
        "\n== LM ({} tokeniser, {} epochs, seed {}, {seconds:.1} s)",
        spec.tokenizer, train_cfg.epochs, spec.training.seed
    );
    println!(
        "   validation loss        {:.3} → {:.3} nats/token  (uniform guess: ln {} = {:.3})",
        first.val_loss,
        last.val_loss,
        cfg.vocab,
        (cfg.vocab as f64).ln()
    );
    println!(
        "   validation perplexity  {:.1} → {:.1}   ({:.2} bits per byte of text)",
        first.val_perplexity(),
        last.val_perplexity(),
        last.val_loss / std::f64::consts::LN_2 / bytes_per_token
    );
    println!("   speed                  {:.0} tokens/s (training)", last.tokens_per_s);
    println!("   sample (temperature 0.8, top-k 20, seed {}):\n", spec.training.seed);
    for line in sample.lines().take(12) {
        println!("   | {line}");
    }
    let mut files =
        vec!["config.toml".to_string(), "config.json".into(), "metrics.csv".into(), "loss_curve.png".into()];
    files.extend(maps);
    files.extend(["model.ckpt".into(), "sample.txt".into()]);
    println!("\n   wrote {}/{{{}}}", out.display(), files.join(", "));
    println!(
        "   next: tinymoe generate --model {} --prompt \"The \"   |   tinymoe attention --model {} --text \"...\"",
        ckpt.display(),
        ckpt.display()
    );
    Ok(())
}

/// A training error, told where the last good checkpoint is (`last_good`: its path and finished
/// epochs, if one with at least one epoch exists) and how to resume it.
fn with_last_good(e: anyhow::Error, last_good: Option<(PathBuf, usize)>, epochs: usize, out: &Path) -> anyhow::Error {
    let Some((path, done)) = last_good.filter(|&(_, done)| done > 0) else { return e };
    let diverged =
        e.chain().any(|c| matches!(c.downcast_ref(), Some(Error::NonFiniteLoss { .. } | Error::NonFiniteGrad { .. })));
    anyhow::anyhow!(
        "{e:#}; the last good checkpoint is {} (epoch {done} of {epochs}): resume with \
         `tinymoe train lm --resume {} --out {}`{}",
        path.display(),
        path.display(),
        out.display(),
        if diverged { " (with the same settings it diverges again: a lower --lr needs a new run)" } else { "" }
    )
}

/// The text to learn, and how to name it: a file, synthetic domains, or the built-in text.
fn load_text(spec: &LmSpec) -> anyhow::Result<(String, String)> {
    if let Some(path) = &spec.text {
        return Ok((read_text(path)?, path.display().to_string()));
    }
    if spec.corpus.is_empty() {
        return Ok((text::builtin(), "the built-in text".into()));
    }
    let domains = spec.corpus.iter().map(|d| d.parse::<Domain>()).collect::<Result<Vec<_>, _>>()?;
    // Interleave the domains sample by sample, so the held-out end of the stream has all of them.
    let per_domain: Vec<Vec<String>> =
        domains.iter().map(|&d| corpora::generate(d, spec.samples, spec.training.seed)).collect();
    let mut samples = Vec::with_capacity(spec.samples * domains.len());
    for i in 0..spec.samples {
        samples.extend(per_domain.iter().map(|d| d[i].as_str()));
    }
    let names: Vec<&str> = domains.iter().map(|d| d.name()).collect();
    Ok((samples.join("\n\n"), format!("{} synthetic samples of {}", samples.len(), names.join(", "))))
}

/// Up to `n` tokens starting at the first line break of `tokens` (so the prompt starts a line).
fn prompt_from(tokens: &[usize], n: usize) -> Vec<usize> {
    let start = tokens.iter().position(|&t| t == usize::from(b'\n')).map_or(0, |i| i + 1);
    let rest = &tokens[start.min(tokens.len().saturating_sub(n))..];
    rest[..n.min(rest.len())].to_vec()
}

fn print_epoch(e: &LmEpoch) {
    println!(
        "epoch {:>3}  train loss {:.3}  val loss {:.3}  val perplexity {:>6.2}  {:>7.0} tokens/s  {:.1} s",
        e.epoch,
        e.train_loss,
        e.val_loss,
        e.val_perplexity(),
        e.tokens_per_s,
        e.seconds
    );
}

/// A checkpoint of the model and where its training stands (atomically replacing the last).
fn save(path: &Path, model: &lm::Params<f32>, spec: &LmSpec, state: &train::LmState) -> crate::Result<()> {
    let last = state.history.epochs.last();
    let meta = serde_json::json!({
        "tokenizer": spec.tokenizer,
        "epochs_done": last.map_or(0, |e| e.epoch),
        "step": state.step,
        "val_loss": last.map(|e| e.val_loss),
        "interrupted": state.history.interrupted,
        "spec": spec,
        "training": state.standing(),
    });
    let saved = checkpoint::Trained { model: model.clone(), state: Some(state.clone()) };
    checkpoint::save(path, KIND, &model.config, &saved, meta)
}

type Saved = checkpoint::Trained<lm::Params<f32>, train::LmState>;

/// The settings, model and training state of a checkpoint to resume.
fn load_for_resume(path: &Path) -> anyhow::Result<(LmSpec, lm::Params<f32>, train::LmState)> {
    let (header, saved): (_, Saved) = checkpoint::load(path, KIND)?;
    let bad = |problem: &str| Error::Checkpoint { path: path.to_path_buf(), problem: problem.into() };
    let spec: LmSpec = header
        .meta
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .ok_or_else(|| bad("it does not record the run's settings, so it cannot be resumed"))?;
    let state = saved.state.ok_or_else(|| bad("it holds weights only, no training state to resume"))?;
    Ok((spec, saved.model, state))
}

fn write_metrics(path: &Path, h: &LmHistory) -> crate::Result<()> {
    let mut csv = String::from("epoch,train_loss,val_loss,val_perplexity,tokens_per_s,seconds\n");
    for e in &h.epochs {
        csv += &format!(
            "{},{:.6},{:.6},{:.4},{:.0},{:.3}\n",
            e.epoch,
            e.train_loss,
            e.val_loss,
            e.val_perplexity(),
            e.tokens_per_s,
            e.seconds
        );
    }
    write_atomic(path, csv.as_bytes())
}

fn draw_loss(path: &Path, h: &LmHistory, steps_per_epoch: usize) -> crate::Result<()> {
    let steps: Vec<(f64, f64)> = h.step_losses.iter().enumerate().map(|(i, &l)| (i as f64 + 1.0, l)).collect();
    let smooth = moving_average(&steps, 25);
    let val: Vec<(f64, f64)> = h.epochs.iter().map(|e| ((e.epoch * steps_per_epoch) as f64, e.val_loss)).collect();
    line_chart(
        path,
        "byte-level LM: next-token cross-entropy (nats)",
        "step",
        "loss",
        &[
            Series { name: "train (per batch)", points: &steps },
            Series { name: "train (moving avg. 25)", points: &smooth },
            Series { name: "validation (per epoch)", points: &val },
        ],
    )
}

/// attention_layer{L}.png for every layer: one panel per head, tokens on both axes.
fn draw_attention(
    model: &lm::Params<f32>,
    ids: &[usize],
    tok: &dyn Tokenizer,
    out: &Path,
) -> anyhow::Result<Vec<String>> {
    let row = Array2::from_shape_vec((1, ids.len()), ids.to_vec()).expect("one row");
    let (_, cache) = lm::forward(model, row.view(), row.view(), &mut crate::engine::layers::Mode::Eval);
    let labels: Vec<String> = ids.iter().map(|&t| tok.token_text(t)).collect();
    let mut files = Vec::new();
    for layer in 0..model.config.n_layers {
        let probs = cache.attention(layer).slice(s![0, .., .., ..]).mapv(f64::from);
        let name = format!("attention_layer{layer}.png");
        attention_grid(
            &out.join(&name),
            &format!("layer {layer}: attention weights per head (row: query token, column: key token)"),
            probs.view(),
            &labels,
            &labels,
        )?;
        files.push(name);
    }
    Ok(files)
}

/// Loads an LM checkpoint, with the tokeniser it was trained with (its spec is in the header).
fn load_model(path: &Path) -> anyhow::Result<(lm::Params<f32>, Box<dyn Tokenizer>)> {
    let (header, saved): (_, Saved) = checkpoint::load(path, KIND)?;
    let model = saved.model;
    let spec = header.meta.get("tokenizer").and_then(|t| t.as_str()).unwrap_or("bytes");
    let tok = tokenizer::from_spec(spec)
        .with_context(|| format!("{}: loading the tokeniser the model was trained with", path.display()))?;
    if tok.vocab_size() != model.config.vocab {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!(
                "the model has {} output ids but its tokeniser {spec:?} has {}",
                model.config.vocab,
                tok.vocab_size()
            ),
        }
        .into());
    }
    Ok((model, tok))
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A checkpoint written by `tinymoe train lm`.
    #[arg(long, default_value = "results/lm/model.ckpt")]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = "The ")]
    pub prompt: String,
    /// How many tokens to generate.
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    /// Softmax temperature (> 0); lower is more conservative.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    /// Always take the most likely token (ignores temperature, top-k and seed).
    #[arg(long)]
    pub greedy: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Recompute the whole context for every token instead of using the KV cache (slow: for
    /// comparing).
    #[arg(long)]
    pub recompute: bool,
}

/// `tinymoe generate`.
pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let (model, tok) = load_model(&a.model)?;
    if !(a.greedy || (a.temperature.is_finite() && a.temperature > 0.0)) {
        return Err(
            Error::bad_value("temperature", a.temperature, "must be a finite number > 0 (or use --greedy)").into()
        );
    }
    let prompt = tok.encode(&a.prompt);
    if prompt.is_empty() {
        return Err(Error::bad_value("prompt", "\"\"", "needs at least one character to continue").into());
    }
    let how = if a.greedy {
        Sampling::GREEDY
    } else {
        Sampling { temperature: a.temperature, top_k: (a.top_k > 0).then_some(a.top_k) }
    };
    let decode = if a.recompute { Decode::Recompute } else { Decode::KvCache };
    let started = Instant::now();
    let new = generate::generate(&model, &prompt, a.tokens, how, decode, &mut init::rng(a.seed));
    let seconds = started.elapsed().as_secs_f64();
    println!("{}{}", a.prompt, tok.decode(&new));
    eprintln!(
        "\n[{} tokens in {seconds:.2} s: {:.0} tokens/s, {}; {}]",
        new.len(),
        new.len() as f64 / seconds.max(1e-9),
        if a.recompute { "full recompute" } else { "KV cache" },
        if a.greedy {
            "greedy".to_string()
        } else {
            format!("temperature {}, top-k {}, seed {}", a.temperature, a.top_k, a.seed)
        }
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct AttentionArgs {
    /// A checkpoint written by `tinymoe train lm`.
    #[arg(long, default_value = "results/lm/model.ckpt")]
    pub model: PathBuf,
    /// The input whose attention to draw (at most the model's context length).
    #[arg(long)]
    pub text: String,
    /// Output folder for attention_layer{L}.png.
    #[arg(long, default_value = "results/attention")]
    pub out: PathBuf,
}

/// `tinymoe attention`.
pub fn attention(a: AttentionArgs) -> anyhow::Result<()> {
    let (model, tok) = load_model(&a.model)?;
    let ids = tok.encode(&a.text);
    if ids.is_empty() || ids.len() > model.config.max_seq {
        return Err(Error::bad_value(
            "text",
            format!("{} tokens", ids.len()),
            &format!("must be 1 to {} tokens (the model's context length)", model.config.max_seq),
        )
        .into());
    }
    crate::io::create_dir(&a.out)?;
    let files = draw_attention(&model, &ids, tok.as_ref(), &a.out)?;
    println!("wrote {}/{{{}}}", a.out.display(), files.join(", "));
    Ok(())
}
