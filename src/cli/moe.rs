//! `tinymoe train moe`: flags → settings → `run::moe_lm::run` → printed summary.

use crate::cli::progress::Terminal;
use crate::error::Error;
use crate::run::config::{self, Settings};
use crate::run::moe_lm::{self, preset_moe_lm, MoeLmSpec, Outcome};
use crate::run::settings::{set_threads, DataChoice, ExpertChoice, GatingChoice, RoutingChoice};
use clap::Args;
use std::path::PathBuf;

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
    /// synthetic (the built-in domain generators) or real (real text from data/, fetched by
    /// `bash scripts/fetch-data.sh`; without --domains: business, sports, rust-code, python-docs).
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub corpus: Option<DataChoice>,
    /// bytes, gpt2 (GPT-2's 50,257 ids), bpe:FILE or compact:FILE.
    #[arg(long, conflicts_with = "resume")]
    pub tokenizer: Option<String>,
    /// Domains to learn, e.g. `code,math,story,science` (see `tinymoe data stats`); real ones:
    /// business, entertainment, politics, sports, tech, tweets, rust-code, rust-book,
    /// rust-errors, python-docs.
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub domains: Option<Vec<String>>,
    /// Stack experts attend both ways: each position sees the token it predicts (a labelled
    /// leak, not a language-model loss). Needs --expert stack.
    #[arg(long, conflicts_with = "resume")]
    pub bidirectional: bool,
    /// Number of experts.
    #[arg(long, conflicts_with = "resume")]
    pub experts: Option<usize>,
    /// mlp (Switch-style, inside a residual) or stack (transformer blocks).
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub expert: Option<ExpertChoice>,
    /// token, sequence or domain (a domain classifier routes each sequence).
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub routing: Option<RoutingChoice>,
    /// top-k (renormalised over the k), switch (full-softmax gates) or dense.
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub gating: Option<GatingChoice>,
    /// Experts per token (1..=experts).
    #[arg(long, conflicts_with = "resume")]
    pub top_k: Option<usize>,
    /// Cap each expert's load (assignments over it are dropped), > 0.
    #[arg(long, conflicts_with = "resume")]
    pub capacity_factor: Option<f64>,
    /// Weight of the Switch load-balancing loss, ≥ 0.
    #[arg(long, conflicts_with = "resume")]
    pub balance_loss: Option<f64>,
    /// Passes over the training sequences (≥ 1).
    #[arg(long, conflicts_with = "resume")]
    pub epochs: Option<usize>,
    /// Sequences per batch.
    #[arg(long, conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    /// Base learning rate (> 0; the schedule scales it).
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// Seed of every random choice (data, init, shuffling, dropout, teacher forcing).
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

/// `--corpus real` without `--domains`: two prose and two code domains, as the synthetic
/// default's code, math, story, science.
const REAL_DEFAULT: [&str; 4] = ["business", "sports", "rust-code", "python-docs"];

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
    if let Some(c) = a.corpus {
        if c != s.corpus && a.domains.is_none() {
            s.domains = match c {
                DataChoice::Synthetic => preset_moe_lm().domains,
                DataChoice::Real => REAL_DEFAULT.iter().map(|d| d.to_string()).collect(),
            };
        }
        s.corpus = c;
    }
    set!(tokenizer, domains, experts, expert, routing, gating, top_k, balance_loss);
    if a.bidirectional {
        s.bidirectional = true;
    }
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

/// `tinymoe train moe`.
pub fn train_moe(a: MoeArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let resume = a.resume.as_deref().map(moe_lm::load_for_resume).transpose()?;
    let spec = match &resume {
        Some(r) => r.spec.clone(),
        None => resolve(&a)?,
    };
    println!(
        "tinymoe train moe: an MoE language model ({}) learns {} byte by byte, every gradient by hand\n",
        spec.describe(),
        spec.domains.join(", ")
    );
    let outcome = moe_lm::run(&spec, &a.out, resume, true, &mut Terminal::default())
        .map_err(|e| anyhow::Error::from(e).context("training the MoE LM"))?;
    print_outcome(&spec, &outcome);
    Ok(())
}

/// The summary of a finished MoE LM run, or the interrupted notice; false if interrupted.
pub fn print_outcome(spec: &MoeLmSpec, o: &Outcome) -> bool {
    if let Some(notice) = &o.interrupted {
        println!("\n{notice}");
        return false;
    }
    let (Some(first), Some(last)) = (o.history.epochs.first(), o.history.epochs.last()) else { return true };
    println!(
        "== moe-lm (byte-level, {} over {} domains, {} epochs, seed {}, {:.1} s)",
        spec.describe(),
        spec.domains.len(),
        spec.training.epochs,
        spec.training.seed,
        o.seconds
    );
    println!(
        "   validation loss      {:.3} after epoch 1 → {:.3} nats/byte after epoch {}",
        first.val.loss, last.val.loss, last.epoch
    );
    let per: Vec<String> = o.domains.iter().zip(&last.val.domain_loss).map(|(n, l)| format!("{n} {l:.3}")).collect();
    println!("   per domain           {}", per.join(" · "));
    if let Some(acc) = last.val.domain_accuracy {
        println!("   routing accuracy     {:.1} % of validation sequences go to their domain's expert", 100.0 * acc);
    }
    println!("   top-expert share per domain (rows: domains, columns: experts 0..{}):", o.n_experts - 1);
    for (d, shares) in o.domains.iter().zip(&last.val.top_share) {
        let cells: Vec<String> = shares.iter().map(|s| format!("{:>5.1} %", 100.0 * s)).collect();
        println!("     {d:<10} {}", cells.join(" "));
    }
    println!("   the top expert of every byte of one validation sample per domain (tokens.txt lists every gate):");
    for line in o.listing.lines().filter(|l| {
        l.starts_with("  bytes") || l.starts_with("  expert") || l.starts_with("  tokens") || l.ends_with(':')
    }) {
        println!("   {}", line.chars().take(100).collect::<String>());
    }
    println!("   {}", o.wrote);
    let c = o.checkpoint.display();
    println!(
        "   next: open {} in a browser   |   tinymoe generate --model {c} --prompt \"def \"\n",
        o.checkpoint.with_file_name("report.html").display()
    );
    true
}
