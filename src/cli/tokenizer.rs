//! `tinymoe tokenizer train | encode | compact`: train a byte-level BPE from scratch, look at
//! how any tokeniser cuts a text, and build a compact vocabulary for a corpus.

use crate::data::bpe::{Bpe, Split};
use crate::data::compact::Compact;
use crate::data::text;
use crate::data::tokenizer::{self, Tokenizer};
use crate::error::Error;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct TokenizerArgs {
    #[command(subcommand)]
    pub command: TokenizerCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE from scratch on a text and save it as a readable file
    /// (one merge per line); use it later as --tokenizer bpe:FILE.
    Train(TrainArgs),
    /// Print a text's token ids and pieces under a tokeniser.
    Encode(EncodeArgs),
    /// Keep only the ids a corpus uses under a tokeniser, renumbered 0..n (0 padding,
    /// 1 unknown), so an LM head has thousands of rows instead of 50,257.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A UTF-8 text file to learn from (default: the built-in text, the first chapters of the
    /// tinymoe book, about 75 KB).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Ids in the result: 256 bytes + the merges + 1 padding id (so at least 257).
    #[arg(long, default_value_t = 1000)]
    pub vocab_size: usize,
    /// Cut the text into words first (merges never cross a word, as in GPT-2), or not.
    #[arg(long, default_value = "words", value_parser = ["words", "none"])]
    pub split: String,
    /// Where to write the BPE file.
    #[arg(long, default_value = "results/tokenizer.bpe")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// bytes, gpt2, bpe:FILE or compact:FILE.
    #[arg(long, default_value = "bytes")]
    pub tokenizer: String,
    /// The text to encode.
    #[arg(long)]
    pub text: String,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The tokeniser to restrict: bytes, gpt2 or bpe:FILE.
    #[arg(long, default_value = "gpt2")]
    pub tokenizer: String,
    /// The corpus, a UTF-8 text file (default: the built-in text).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Where to write the compact vocabulary.
    #[arg(long, default_value = "results/tokenizer.compact")]
    pub out: PathBuf,
}

pub fn tokenizer(a: TokenizerArgs) -> anyhow::Result<()> {
    match a.command {
        TokenizerCommand::Train(a) => train(a),
        TokenizerCommand::Encode(a) => encode(a),
        TokenizerCommand::Compact(a) => compact(a),
    }
}

/// The text of `--text FILE`, or the built-in text; and a name for it.
fn read_text(path: &Option<PathBuf>) -> anyhow::Result<(String, String)> {
    match path {
        Some(p) => Ok((std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?, p.display().to_string())),
        None => Ok((text::builtin(), "the built-in text".to_string())),
    }
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::io::create_dir(dir)?;
    }
    Ok(())
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let inputs: Vec<&Path> = a.text.iter().map(PathBuf::as_path).collect();
    crate::io::refuse_overwrite(&inputs, &a.out)?;
    let (text, source) = read_text(&a.text)?;
    let split = Split::parse(&a.split).expect("clap allows only words and none");
    let start = Instant::now();
    let bpe = Bpe::train(&text, a.vocab_size, split).with_context(|| format!("training a BPE on {source}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let n_merges = bpe.merges().len();
    println!(
        "tinymoe tokenizer train: learned {n_merges} merges from {source} ({} bytes, split {}) in {seconds:.2} s",
        text.len(),
        split.name()
    );
    if bpe.vocab_size() < a.vocab_size {
        println!(
            "  stopped early: no pair of tokens occurs twice any more (asked for vocab {}, got {})",
            a.vocab_size,
            bpe.vocab_size()
        );
    }
    let tokens = bpe.encode(&text).len();
    println!(
        "  vocab {} (bytes 0-255, merges 256-{}, padding id {}); the text is {tokens} tokens, {:.2} bytes per token",
        bpe.vocab_size(),
        255 + n_merges,
        bpe.pad_id().expect("a BPE has a padding id"),
        text.len() as f64 / tokens.max(1) as f64
    );
    println!("  first merges:");
    for (k, &(left, right)) in bpe.merges().iter().take(10).enumerate() {
        let id = 256 + k;
        println!(
            "    {id:>5} = {left:>4} + {right:<4}  {} + {} → {}",
            bpe.token_text(left),
            bpe.token_text(right),
            bpe.token_text(id)
        );
    }
    create_parent(&a.out)?;
    bpe.save(&a.out)?;
    println!("wrote {} (use it as --tokenizer bpe:{})", a.out.display(), a.out.display());
    Ok(())
}

fn encode(a: EncodeArgs) -> anyhow::Result<()> {
    let tok = tokenizer::from_spec(&a.tokenizer)?;
    let ids = tok.encode(&a.text);
    let pad = tok.pad_id().map_or("none".to_string(), |p| p.to_string());
    println!("tokenizer {}: vocab {}, padding id {pad}", a.tokenizer, tok.vocab_size());
    println!("{} bytes → {} tokens", a.text.len(), ids.len());
    let ids_text: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let pieces: Vec<String> = ids.iter().map(|&id| tok.token_text(id)).collect();
    println!("ids:    {}", ids_text.join(" "));
    println!("pieces: {}", pieces.join(" | "));
    let back = tok.decode(&ids);
    if back == a.text {
        println!("decode(encode(text)) == text: yes");
    } else {
        println!("decode(encode(text)) == text: no, it gives {back:?}");
    }
    Ok(())
}

fn compact(a: CompactArgs) -> anyhow::Result<()> {
    if a.tokenizer.starts_with("compact:") {
        return Err(
            Error::bad_value("tokenizer", &a.tokenizer, "is already compact; give the tokeniser underneath").into()
        );
    }
    let inputs: Vec<&Path> = a.text.iter().map(PathBuf::as_path).chain(tokenizer::spec_file(&a.tokenizer)).collect();
    crate::io::refuse_overwrite(&inputs, &a.out)?;
    let inner = tokenizer::from_spec(&a.tokenizer)?;
    let (text, source) = read_text(&a.text)?;
    let full = inner.vocab_size();
    let compact = Compact::build(inner, &a.tokenizer, &text);
    println!(
        "tinymoe tokenizer compact: {source} uses {} of {}'s {full} ids; compact vocab {} (0 padding, 1 unknown)",
        compact.vocab_size() - 2,
        a.tokenizer,
        compact.vocab_size()
    );
    create_parent(&a.out)?;
    compact.save(&a.out)?;
    println!("wrote {} (use it as --tokenizer compact:{})", a.out.display(), a.out.display());
    Ok(())
}
