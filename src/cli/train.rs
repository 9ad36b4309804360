//! `tinymoe train` and `tinymoe demo`: flags → settings → `run::classifier::run` → printed
//! summary. The run itself (data, model, training, results folder) is library code.

use crate::cli::progress::Terminal;
use crate::error::Error;
use crate::run::classifier::{self, Outcome, Spec};
use crate::run::config::{self, Settings};
use crate::run::settings::{set_threads, ClassifierModel, Optimizer, ScheduleKind};
use clap::Args;
use std::path::PathBuf;

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
    /// mlp, or moe (a dense soft mixture of MLP experts).
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub model: Option<ClassifierModel>,
    /// Hidden layer widths, e.g. 64,64 (of the MLP, or of each expert).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub hidden: Option<Vec<usize>>,
    /// Number of experts (moe).
    #[arg(long, conflicts_with = "resume")]
    pub experts: Option<usize>,
    /// Dropout probability after each hidden layer, in [0, 1).
    #[arg(long, conflicts_with = "resume")]
    pub dropout: Option<f64>,
    /// Passes over the training data (≥ 1).
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    /// Rows per optimiser step (≥ 1).
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    /// Base learning rate (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// sgd (with momentum), adam or adamw.
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub optimizer: Option<Optimizer>,
    /// Decoupled (adamw) or L2 (adam) weight decay, ≥ 0.
    #[arg(long, conflicts_with = "resume")]
    pub weight_decay: Option<f64>,
    /// constant, or cosine (linear warm-up then cosine decay).
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub schedule: Option<ScheduleKind>,
    /// Clip the global gradient norm to this (> 0).
    #[arg(long, conflicts_with = "resume")]
    pub clip: Option<f64>,
    /// Seed of every random choice (init, data split, shuffling, dropout).
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

pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    match a.what {
        Some(What::Lm(lm_args)) => return crate::cli::lm::train_lm(lm_args),
        Some(What::Moe(moe_args)) => return crate::cli::moe::train_moe(moe_args),
        None => {}
    }
    set_threads(a.threads)?;
    let (spec, resume) = match &a.resume {
        Some(path) => {
            let resume = classifier::load_for_resume(path)?;
            (resume.spec.clone(), Some(resume))
        }
        None => (resolve(&a)?, None),
    };
    let label = spec.label();
    let outcome = classifier::run(&spec, &a.out, resume, true, &mut Terminal::default())
        .map_err(|e| anyhow::Error::from(e).context(format!("training {label}")))?;
    print_outcome(&label, &spec, &outcome);
    Ok(())
}

/// The summary of a finished run, or the interrupted notice; false if it was interrupted.
fn print_outcome(label: &str, s: &Spec, o: &Outcome) -> bool {
    if let Some(notice) = &o.interrupted {
        println!("\n{notice}");
        return false;
    }
    let (first, last) = (o.history.epochs.first(), o.history.epochs.last());
    println!(
        "== {label} ({} model, {} epochs, seed {}, {:.1} s)",
        s.model, s.training.epochs, s.training.seed, o.seconds
    );
    if let (Some(f), Some(l)) = (first, last) {
        println!("   validation loss      {:.4} after epoch 1 → {:.4} after epoch {}", f.val_loss, l.val_loss, l.epoch);
        println!("   validation accuracy  {:.1} % → {:.1} %", 100.0 * f.val_acc, 100.0 * l.val_acc);
    }
    if let Some(shares) = classifier::top_expert_shares(&o.model, &o.val) {
        let cells: Vec<String> = shares.iter().map(|s| format!("{:.0} %", 100.0 * s)).collect();
        println!("   top-expert share     {} (experts 0..{})", cells.join(" / "), shares.len() - 1);
    }
    println!("   {}\n", o.wrote);
    true
}
