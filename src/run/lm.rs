//! A language-model run (`tinymoe train lm`): a causal transformer on built-in text, a file or
//! the synthetic domains, through any tokeniser, with a checkpoint every epoch, exact resume,
//! and a results folder (metrics, loss curve, attention maps per layer, a sampled continuation).

use crate::checkpoint::{self, Trained};
use crate::data::corpora::{self, Domain};
use crate::data::text::{self, Windows};
use crate::data::tokenizer::{self, Tokenizer};
use crate::engine::init::{self, streams};
use crate::error::{Error, Result};
use crate::models::generate::{self, Decode, Sampling};
use crate::models::transformer_lm::{self as lm, Config as LmConfig};
use crate::plot::heatmap::attention_grid;
use crate::plot::line::{line_chart, Series};
use crate::run::classifier::moving_average;
use crate::run::config::{Field, Settings};
use crate::run::results::{Results, Table};
use crate::run::session::{self, Session};
use crate::run::settings::{self as checks, Optimizer, ScheduleKind, TrainingSpec};
use crate::run::{interrupt, Observer};
use crate::train::{self, LmEpoch, LmHistory, LmState, Standing};
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
    pub fn validate(&self) -> Result<()> {
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
        checks::at_least_one("samples", self.samples)?;
        for (name, v) in [
            ("seq", self.seq),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("n_layers", self.n_layers),
        ] {
            checks::at_least_one(name, v)?;
        }
        if self.d_model % self.n_heads != 0 {
            return Err(Error::bad_value(
                "n_heads",
                self.n_heads,
                &format!("must divide d_model = {} (each head gets d_model / n_heads columns)", self.d_model),
            ));
        }
        checks::in_zero_one("dropout", self.dropout)?;
        checks::in_open_unit("val_fraction", self.val_fraction)?;
        self.training.validate()
    }

    /// The model's shape for a vocabulary of `vocab` ids, every value checked.
    pub fn model_config(&self, vocab: usize) -> Result<LmConfig> {
        self.validate()?;
        let cfg = LmConfig {
            vocab,
            max_seq: self.seq,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            n_layers: self.n_layers,
            dropout: self.dropout,
            pad_id: None,
            tie_head: self.tie_head,
        };
        cfg.check_fits(self.training.batch_size, true, crate::io::machine_memory())?;
        Ok(cfg)
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
            optimizer: Optimizer::AdamW,
            momentum: 0.9,
            weight_decay: 0.01,
            schedule: ScheduleKind::Cosine,
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

/// The language model as a [`session::Kind`].
pub struct LmRun;

impl session::Kind for LmRun {
    const KIND: &'static str = KIND;
    const COMMAND: &'static str = "train lm";
    type Spec = LmSpec;
    type Model = lm::Params<f32>;
    type State = LmState;

    fn settings(spec: &LmSpec) -> Settings {
        Settings::Lm(spec.clone())
    }
    fn validate(spec: &LmSpec) -> Result<()> {
        spec.validate()
    }
    fn header_config(model: &lm::Params<f32>) -> serde_json::Value {
        serde_json::to_value(model.config).unwrap_or_default()
    }
    fn standing(state: &LmState) -> Standing {
        state.standing()
    }
    fn meta(spec: &LmSpec, state: &LmState) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("tokenizer", spec.tokenizer.clone().into()),
            ("val_loss", state.history.epochs.last().map(|e| e.val_loss).into()),
        ]
    }
}

/// A saved LM run to continue.
pub type Resume = session::Resumed<LmRun>;

/// Reads an LM checkpoint to resume.
pub fn load_for_resume(path: &Path) -> Result<Resume> {
    Session::<LmRun>::resume(path)
}

/// What an LM run produced, for the summary.
pub struct Outcome {
    pub history: LmHistory,
    pub config: LmConfig,
    /// What it learned, in words ("the built-in text", "500 synthetic samples of code, …").
    pub source: String,
    /// Bytes of text per token (nats per token → bits per byte whatever the tokeniser).
    pub bytes_per_token: f64,
    /// The prompt from the held-out text and its sampled continuation.
    pub sample: String,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub interrupted: Option<String>,
    pub wrote: String,
}

/// What `run` says before it trains (parameter count, data sizes): one line for the user.
fn intro(spec: &LmSpec, cfg: &LmConfig, model: &lm::Params<f32>, source: &str, train: usize, val: usize) -> String {
    format!(
        "tinymoe train lm: a {}-block transformer ({} parameters, {} tokeniser, vocabulary {}) learns \
         {source} ({train} training tokens, {val} held out), every gradient by hand\n",
        cfg.n_layers,
        crate::engine::params::count(model),
        spec.tokenizer,
        cfg.vocab,
    )
}

/// Trains the spec's LM (from scratch, or continuing a saved run) and writes its results
/// into `out`. With `stoppable`, the first Ctrl-C saves the run and returns it interrupted.
pub fn run(
    spec: &LmSpec,
    out: &Path,
    resume: Option<Resume>,
    stoppable: bool,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let (text, source) = load_text(spec)?;
    let tok = tokenizer::from_spec(&spec.tokenizer)?;
    let cfg = spec.model_config(tok.vocab_size())?;
    let tokens = tok.encode(&text);
    let bytes_per_token = text.len() as f64 / tokens.len().max(1) as f64;
    let (train_tokens, val_tokens) = text::split(&tokens, spec.val_fraction);
    let val = Windows::new(val_tokens, spec.seq);
    if val.is_empty() {
        return Err(Error::bad_value(
            "val_fraction",
            spec.val_fraction,
            &format!(
                "holds out {} of {} tokens of {source}: fewer than one window of seq + 1 = {}",
                (tokens.len() as f64 * spec.val_fraction).round(),
                tokens.len(),
                spec.seq + 1
            ),
        ));
    }
    let steps_per_epoch = Windows::new(train_tokens, spec.seq).len().div_ceil(spec.training.batch_size);
    let train_cfg = spec.training.to_config(steps_per_epoch)?;
    if let Some(r) = &resume {
        if r.model.config != cfg {
            return Err(Error::Checkpoint {
                path: r.path.clone(),
                problem: "its model does not match its own saved settings".into(),
            });
        }
    }
    let mut session = Session::<LmRun>::open(out, spec, resume.as_ref())?;
    let (mut model, state) = match resume {
        Some(r) => (r.model, Some(r.state)),
        None => (lm::init::<f32>(cfg, &mut init::stream(spec.training.seed, streams::INIT)), None),
    };
    obs.note(&intro(spec, &cfg, &model, &source, train_tokens.len(), val_tokens.len()));
    obs.start("lm", train_cfg.epochs * steps_per_epoch, state.as_ref().map_or(0, |s| s.step));
    if let Some(s) = &state {
        obs.note(&format!("resuming at epoch {}, batch {} (step {})\n", s.epoch, s.batches_done, s.step));
    }
    let started = Instant::now();
    let guard = stoppable.then(interrupt::Training::start);
    let obs = std::cell::RefCell::new(obs);
    let fitted = train::fit_lm_resumable(
        &mut model,
        train_tokens,
        spec.seq,
        &val,
        &train_cfg,
        state,
        guard.as_ref().map(interrupt::Training::stop),
        &mut |p| obs.borrow_mut().step(p),
        &mut |event, m, state| {
            if let train::Checkpoint::Epoch(e) = event {
                obs.borrow_mut().note(&epoch_line(e));
            }
            session.save(m, spec, state)
        },
    );
    drop(guard);
    let obs = obs.into_inner();
    obs.finish();
    let history = fitted.map_err(|e| session.stopped(e, train_cfg.epochs))?;
    let seconds = started.elapsed().as_secs_f64();
    let checkpoint = session.checkpoint().to_path_buf();
    let interrupted = history.interrupted.then(|| session.interrupted_notice(history.step_losses.len()));
    let mut sample = String::new();
    if interrupted.is_none() {
        let out = &mut session.results;
        write_metrics(out, &history)?;
        draw_loss(out, &history, steps_per_epoch)?;
        // A sentence from the held-out text, for the attention maps; a continuation of it, sampled.
        let prompt = prompt_from(val_tokens, tok.newline_id(), spec.seq.min(48));
        draw_attention(&model, &prompt, tok.as_ref(), out)?;
        let how = Sampling { temperature: 0.8, top_k: Some(20) };
        let new = generate::generate(&model, &prompt, 200, how, Decode::KvCache, &mut init::rng(spec.training.seed));
        sample = format!("{}{}", tok.decode(&prompt), tok.decode(&new));
        out.text("sample.txt", &sample)?;
    }
    let wrote = session.results.summary();
    Ok(Outcome { history, config: cfg, source, bytes_per_token, sample, seconds, checkpoint, interrupted, wrote })
}

/// One epoch's line, as the run reports it.
pub fn epoch_line(e: &LmEpoch) -> String {
    format!(
        "epoch {:>3}  train loss {:.3}  val loss {:.3}  val perplexity {:>6.2}  {:>7.0} tokens/s  {:.1} s",
        e.epoch,
        e.train_loss,
        e.val_loss,
        e.val_perplexity(),
        e.tokens_per_s,
        e.seconds
    )
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        line: 0,
        problem: format!("not UTF-8 text (bad byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

/// The text to learn, and how to name it: a file, synthetic domains, or the built-in text.
/// The run's training and validation windows, exactly as [`run`] builds them: the text (or
/// corpus) through the tokeniser, the last `val_fraction` held out, non-overlapping windows
/// of `seq + 1` tokens. For `tinymoe data export`.
pub fn windows(spec: &LmSpec) -> Result<(Windows, Windows)> {
    let (text, _) = load_text(spec)?;
    let tokens = tokenizer::from_spec(&spec.tokenizer)?.encode(&text);
    let (train, val) = text::split(&tokens, spec.val_fraction);
    Ok((Windows::new(train, spec.seq), Windows::new(val, spec.seq)))
}

fn load_text(spec: &LmSpec) -> Result<(String, String)> {
    if let Some(path) = &spec.text {
        return Ok((read_text(path)?, path.display().to_string()));
    }
    if spec.corpus.is_empty() {
        return Ok((text::builtin(), "the built-in text".into()));
    }
    let domains = spec
        .corpus
        .iter()
        .map(|d| d.parse::<Domain>().map_err(|e| Error::bad_value("corpus", format!("{d:?}"), &e.to_string())))
        .collect::<Result<Vec<_>>>()?;
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

/// Up to `n` tokens starting after the first line break of `tokens` (so the prompt starts a
/// line); `newline` is the tokeniser's id of "\n" (None: start at the beginning).
pub fn prompt_from(tokens: &[usize], newline: Option<usize>, n: usize) -> Vec<usize> {
    let start = newline.and_then(|nl| tokens.iter().position(|&t| t == nl)).map_or(0, |i| i + 1);
    let rest = &tokens[start.min(tokens.len().saturating_sub(n))..];
    rest[..n.min(rest.len())].to_vec()
}

fn write_metrics(out: &mut Results, h: &LmHistory) -> Result<()> {
    let mut t = Table::new(&["epoch", "train_loss", "val_loss", "val_perplexity", "tokens_per_s", "seconds"]);
    for e in &h.epochs {
        t.push(vec![
            e.epoch.into(),
            e.train_loss.into(),
            e.val_loss.into(),
            e.val_perplexity().into(),
            e.tokens_per_s.round().into(),
            ((e.seconds * 1000.0).round() / 1000.0).into(),
        ]);
    }
    out.table("metrics.csv", &t)?;
    Ok(())
}

fn draw_loss(out: &mut Results, h: &LmHistory, steps_per_epoch: usize) -> Result<()> {
    let steps: Vec<(f64, f64)> = h.step_losses.iter().enumerate().map(|(i, &l)| (i as f64 + 1.0, l)).collect();
    let smooth = moving_average(&steps, 25);
    let val: Vec<(f64, f64)> = h.epochs.iter().map(|e| ((e.epoch * steps_per_epoch) as f64, e.val_loss)).collect();
    line_chart(
        &out.path("loss_curve.png"),
        "byte-level LM: next-token cross-entropy (nats)",
        "step",
        "loss",
        &[
            Series { name: "train (per batch)", points: &steps },
            Series { name: "train (moving avg. 25)", points: &smooth },
            Series { name: "validation (per epoch)", points: &val },
        ],
    )?;
    out.record("loss_curve.png");
    Ok(())
}

/// attention_layer{L}.png for every layer: one panel per head, tokens on both axes.
pub fn draw_attention(model: &lm::Params<f32>, ids: &[usize], tok: &dyn Tokenizer, out: &mut Results) -> Result<()> {
    let row = Array2::from_shape_vec((1, ids.len()), ids.to_vec()).expect("one row");
    let (_, cache) = lm::forward(model, row.view(), row.view(), &mut crate::engine::layers::Mode::Eval);
    let labels: Vec<String> = ids.iter().map(|&t| tok.token_text(t)).collect();
    for layer in 0..model.config.n_layers {
        let probs = cache.attention(layer).slice(s![0, .., .., ..]).mapv(f64::from);
        let name = format!("attention_layer{layer}.png");
        attention_grid(
            &out.path(&name),
            &format!("layer {layer}: attention weights per head (row: query token, column: key token)"),
            probs.view(),
            &labels,
            &labels,
        )?;
        out.record(&name);
    }
    Ok(())
}

/// Loads an LM checkpoint, with the tokeniser it was trained with (its spec is in the header).
pub fn load_model(path: &Path) -> Result<(lm::Params<f32>, Box<dyn Tokenizer>)> {
    let (header, saved): (_, Trained<lm::Params<f32>, LmState>) = checkpoint::load(path, KIND)?;
    let model = saved.model;
    let spec = header.meta.get("tokenizer").and_then(|t| t.as_str()).unwrap_or("bytes");
    let tok = tokenizer::from_spec(spec).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        problem: format!("loading the tokeniser the model was trained with: {e}"),
    })?;
    if tok.vocab_size() != model.config.vocab {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!(
                "the model has {} output ids but its tokeniser {spec:?} has {}",
                model.config.vocab,
                tok.vocab_size()
            ),
        });
    }
    Ok((model, tok))
}
