//! `tinymoe data show | stats`: look at the synthetic corpora before training on them.
//!
//! `show` prints samples of one domain and how a tokeniser cuts each one; `stats` prints
//! every domain's diversity figures (see `data::corpora::stats` for their definitions):
//! could a model memorise the domain in one epoch?

use crate::data::corpora::{self, stats, Domain};
use crate::data::tokenizer;
use crate::error::Error;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Print samples of one synthetic domain (code, math, story, science, psychology,
    /// history, medicine, business, sentiment) with their tokens.
    Show(ShowArgs),
    /// Print each domain's diversity: mean length, share of duplicate samples, share of
    /// 8-grams in a fresh seed's samples never seen under the first seed, vocabulary.
    Stats(StatsArgs),
    /// Write the data a checkpoint's run trained and validated on as .npy (an MoE LM's token
    /// sequences and domain labels, a classifier's features and labels), for
    /// scripts/train_torch.py.
    Export(DataExportArgs),
}

#[derive(Debug, Args)]
pub struct DataExportArgs {
    /// A checkpoint of `tinymoe train moe` (or the demo, or E5) or `tinymoe train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The folder to write (tokens.npy, labels.npy, val_*.npy, meta.json; or x.npy, y.npy, …).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The domain: code, math, story, science, psychology, history, medicine, business or
    /// sentiment.
    pub domain: String,
    /// How many samples.
    #[arg(long, default_value_t = 5)]
    pub n: usize,
    /// The corpus seed: the same seed gives the same samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// bytes, gpt2, bpe:FILE or compact:FILE.
    #[arg(long, default_value = "bytes")]
    pub tokenizer: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Samples per domain and seed.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// The reference seed; the fresh samples use seed + 1.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn data(a: DataArgs) -> anyhow::Result<()> {
    match a.command {
        DataCommand::Show(a) => show(a),
        DataCommand::Stats(a) => print_stats(a),
        DataCommand::Export(a) => {
            let wrote = crate::twin::export_data(&a.model, &a.out)?;
            println!("wrote {}/{{{}}}", a.out.display(), wrote.join(", "));
            Ok(())
        }
    }
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let domain: Domain = a.domain.parse()?;
    let tok = tokenizer::from_spec(&a.tokenizer)?;
    // Sentiment samples carry a class label as well as their domain.
    let samples: Vec<(String, Option<&str>)> = if domain == Domain::Sentiment {
        corpora::sentiment_texts(a.n, a.seed).into_iter().map(|t| (t.text, Some(t.label.name()))).collect()
    } else {
        corpora::generate(domain, a.n, a.seed).into_iter().map(|t| (t, None)).collect()
    };
    for (i, (text, label)) in samples.iter().enumerate() {
        let ids = tok.encode(text);
        let label = label.map_or(String::new(), |l| format!(" · label {l}"));
        println!(
            "── sample {} of {} · {domain}{label} · seed {} · {} bytes · {} words · {} tokens ({})",
            i + 1,
            a.n,
            a.seed,
            text.len(),
            text.split_whitespace().count(),
            ids.len(),
            a.tokenizer
        );
        println!("{text}");
        let pieces: Vec<String> = ids.iter().map(|&id| tok.token_text(id)).collect();
        println!("tokens: {}", pieces.join("|"));
        let shown: Vec<String> = ids.iter().take(32).map(|id| id.to_string()).collect();
        let more = if ids.len() > 32 { format!(" … ({} in all)", ids.len()) } else { String::new() };
        println!("ids:    {}{more}", shown.join(" "));
        println!();
    }
    Ok(())
}

fn print_stats(a: StatsArgs) -> anyhow::Result<()> {
    if a.n == 0 {
        return Err(Error::bad_value("n", a.n, "must be ≥ 1").into());
    }
    let fresh = a.seed.wrapping_add(1);
    println!("tinymoe data stats: {} samples per domain, reference seed {}, fresh seed {fresh}", a.n, a.seed);
    println!(
        "{:<11} {:>7} {:>7} {:>11} {:>15} {:>11}",
        "domain", "bytes", "words", "duplicates", "unseen 8-grams", "vocabulary"
    );
    for domain in Domain::ALL {
        let d = stats::diversity(domain, a.n, a.seed, fresh);
        println!(
            "{:<11} {:>7.1} {:>7.1} {:>10.2}% {:>14.1}% {:>11}",
            domain.name(),
            d.mean_bytes,
            d.mean_words,
            100.0 * d.duplicate_share,
            100.0 * d.unseen_8gram_share,
            d.vocab
        );
    }
    println!(
        "bytes, words: mean per sample (words = whitespace tokens); duplicates: share of samples that repeat \
         an earlier one; unseen 8-grams: share of the fresh seed's whitespace 8-grams absent from the \
         reference samples; vocabulary: distinct lower-case words."
    );
    let vocab = |d: Domain| stats::vocabulary(&corpora::generate(d, a.n, a.seed));
    let pairs =
        [(Domain::Psychology, Domain::Medicine), (Domain::History, Domain::Business), (Domain::Code, Domain::Story)];
    let overlaps: Vec<String> =
        pairs.iter().map(|&(x, y)| format!("{x}–{y} {:.3}", stats::vocabulary_overlap(&vocab(x), &vocab(y)))).collect();
    println!("vocabulary overlap (Jaccard): {}", overlaps.join(", "));
    Ok(())
}
