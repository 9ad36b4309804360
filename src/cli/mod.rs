//! The `tinymoe` command line: parse arguments (clap), run, print. The only module that
//! prints; errors come back as `anyhow` chains and `main` prints them once.

mod analyse;
mod bench;
mod config;
mod data;
mod demo;
mod experiment;
mod export;
mod generate;
mod import;
mod inspect;
mod layer;
mod lm;
mod moe;
mod progress;
mod tokenizer;
mod train;

use clap::{Parser, Subcommand};

/// tinymoe: a from-scratch deep-learning engine for transformers and Mixture-of-Experts,
/// with every forward and backward pass written by hand.
#[derive(Debug, Parser)]
#[command(name = "tinymoe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: a domain-routed MoE language model on ten synthetic domains beside a dense
    /// model of the same compute per token (about two minutes on 2 cores); prints routing
    /// accuracy, per-domain perplexity and generated text with each byte's expert, and writes
    /// report.md, loss curves, confusion matrix, routing heatmap, attention maps and
    /// checkpoints into --out.
    Demo(demo::DemoArgs),
    /// Train a classifier (an MLP or a dense MoE of MLPs) from a preset, with any setting
    /// overridden by a flag; writes metrics.csv, config.toml, PNGs and model.ckpt (every
    /// epoch; --resume continues it, Ctrl-C saves) into --out. `train lm`: a language model;
    /// `train moe`: an MoE language model.
    Train(Box<train::TrainArgs>),
    /// Continue a prompt with a language model (`tinymoe train lm`: a KV cache makes each token
    /// O(context)) or an MoE language model (`tinymoe train moe`: each token shown with its
    /// expert, the domain classifier's belief as the text grows); greedy, temperature and top-k
    /// sampling, seeded.
    Generate(generate::GenerateArgs),
    /// Draw a trained language model's attention weights for a text: one PNG per layer,
    /// one panel per head, tokens on both axes.
    Attention(lm::AttentionArgs),
    /// Time one training step of a BENCH.md workload; prints one JSON line (the schema of
    /// ../shared/bench/compare and the PyTorch/NumPy references).
    Bench(bench::BenchArgs),
    /// Tokenisers: train a byte-level BPE from scratch, show how a text is cut into tokens,
    /// build a compact vocabulary for a corpus.
    Tokenizer(tokenizer::TokenizerArgs),
    /// Synthetic corpora: print a domain's samples with their tokens (`data show code`), or
    /// every domain's diversity figures (`data stats`).
    Data(data::DataArgs),
    /// Show what a checkpoint holds: kind, config, metadata, every tensor's shape and norms,
    /// and whether its checksum holds.
    Inspect(inspect::InspectArgs),
    /// Write any checkpoint's weights (language model, MoE language model, classifier) as
    /// safetensors, with PyTorch state_dict names and layouts (Linear weights [out, in]).
    Export(export::ExportArgs),
    /// Take weights from a safetensors file (e.g. continued in PyTorch) into a copy of a
    /// checkpoint of the same kind: all or nothing, weights only (no training state).
    Import(import::ImportArgs),
    /// Run one layer's (or loss's, or optimiser step's) forward and backward in f64 on .npy/.npz
    /// arrays made by NumPy or PyTorch, and write the output and every gradient as .npy, to
    /// compare line by line. `tinymoe layer list` shows every layer's arrays and shapes.
    Layer(Box<layer::LayerArgs>),
    /// The routing analysis of a saved classifier MoE on a held-out set: per class, each
    /// expert's share of top gates and its mean gate weight (CSV tables, heatmaps, report.md).
    Analyse(analyse::AnalyseArgs),
    /// Experiments: list them, or run one over arms × seeds (`--preset quick|full`), with a
    /// folder per cell, summary.csv (mean, std, n over seeds) and report.md.
    Experiment(experiment::ExperimentArgs),
    /// Config files: list the presets, print one as a documented TOML file to edit and pass to
    /// `train --config`, or check a file and print the settings it resolves to.
    Config(config::ConfigArgs),
}

/// Parses `std::env::args` and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return Err(invalid_choice(&e).unwrap_or_else(|| e.exit())),
    };
    match cli.command {
        Command::Demo(a) => demo::demo(a),
        Command::Train(a) => train::train(*a),
        Command::Generate(a) => generate::generate(a),
        Command::Attention(a) => lm::attention(a),
        Command::Bench(a) => bench::bench(a),
        Command::Tokenizer(a) => tokenizer::tokenizer(a),
        Command::Data(a) => data::data(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Export(a) => export::export(a),
        Command::Import(a) => import::import(a),
        Command::Layer(a) => layer::layer(*a),
        Command::Config(a) => config::config(a),
        Command::Experiment(a) => experiment::experiment(a),
        Command::Analyse(a) => analyse::analyse(a),
    }
}

/// A value outside a flag's choices (`--optimizer lion`) as the one-line error every other bad
/// value gives: `unknown optimizer "lion" (expected one of: sgd, adam, adamw)`. None for every
/// other parse outcome (help, version, a missing argument), which clap prints itself.
fn invalid_choice(e: &clap::Error) -> Option<anyhow::Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidValue {
        return None;
    }
    let text = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg)?;
    let value = text(ContextKind::InvalidValue)?;
    let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) else { return None };
    // `--optimizer <OPTIMIZER>` → optimizer; a positional `<NAME>` → name.
    let name = arg.trim_start_matches('-').split([' ', '=']).next().unwrap_or(&arg).replace('-', "_");
    let name = name.trim_start_matches('<').trim_end_matches('>').to_lowercase();
    Some(anyhow::anyhow!("unknown {name} {value:?} (expected one of: {})", valid.join(", ")))
}
