//! `tinymoe train lm` and `tinymoe attention`: flags → settings → `run::lm` → printed summary.
//! (`tinymoe generate` is in `generate.rs`.)

use crate::cli::progress::Terminal;
use crate::error::Error;
use crate::run::config::{self, Settings};
use crate::run::lm::{self, LmSpec, Outcome};
use crate::run::results::Results;
use crate::run::settings::{set_threads, Optimizer};
use clap::Args;
use std::path::PathBuf;

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
    /// Width of the residual stream (a multiple of --heads).
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
    /// Passes over the training text (≥ 1).
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    /// Windows per batch.
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    /// Base learning rate (> 0; the schedule scales it).
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// sgd (with momentum), adam or adamw.
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub optimizer: Option<Optimizer>,
    /// Weight decay (adam: L2; adamw: decoupled), ≥ 0.
    #[arg(long, conflicts_with = "resume")]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm to this (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub clip: Option<f64>,
    /// Share of the text held out for validation (its end), in (0, 1).
    #[arg(long, conflicts_with = "resume")]
    pub val_fraction: Option<f64>,
    /// Seed of every random choice (init, shuffling, dropout, sampling).
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

/// `tinymoe train lm`.
pub fn train_lm(a: LmArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let resume = a.resume.as_deref().map(lm::load_for_resume).transpose()?;
    let spec = match &resume {
        Some(r) => r.spec.clone(),
        None => resolve(&a)?,
    };
    let outcome = lm::run(&spec, &a.out, resume, true, &mut Terminal::default())
        .map_err(|e| anyhow::Error::from(e).context("training the language model"))?;
    print_outcome(&spec, &outcome);
    Ok(())
}

/// The summary of a finished LM run, or the interrupted notice.
fn print_outcome(spec: &LmSpec, o: &Outcome) {
    if let Some(notice) = &o.interrupted {
        println!("\n{notice}");
        return;
    }
    let (Some(first), Some(last)) = (o.history.epochs.first(), o.history.epochs.last()) else { return };
    println!(
        "\n== LM ({} tokeniser, {} epochs, seed {}, {:.1} s)",
        spec.tokenizer, spec.training.epochs, spec.training.seed, o.seconds
    );
    let vocab = o.config.vocab;
    println!(
        "   validation loss        {:.3} → {:.3} nats/token  (uniform guess: ln {vocab} = {:.3})",
        first.val_loss,
        last.val_loss,
        (vocab as f64).ln()
    );
    println!(
        "   validation perplexity  {:.1} → {:.1}   ({:.2} bits per byte of text)",
        first.val_perplexity(),
        last.val_perplexity(),
        last.val_loss / std::f64::consts::LN_2 / o.bytes_per_token
    );
    println!("   speed                  {:.0} tokens/s (training)", last.tokens_per_s);
    println!("   sample (temperature 0.8, top-k 20, seed {}):\n", spec.training.seed);
    for line in o.sample.lines().take(12) {
        println!("   | {line}");
    }
    println!("\n   {}", o.wrote);
    let c = o.checkpoint.display();
    println!(
        "   next: tinymoe generate --model {c} --prompt \"The \"   |   tinymoe attention --model {c} --text \"...\""
    );
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
    let (model, tok) = lm::load_model(&a.model)?;
    let ids = tok.encode(&a.text);
    if ids.is_empty() || ids.len() > model.config.max_seq {
        return Err(Error::bad_value(
            "text",
            format!("{} tokens", ids.len()),
            &format!("must be 1 to {} tokens (the model's context length)", model.config.max_seq),
        )
        .into());
    }
    let mut out = Results::create(&a.out)?;
    lm::draw_attention(&model, &ids, tok.as_ref(), &mut out)?;
    println!("{}", out.summary());
    Ok(())
}
