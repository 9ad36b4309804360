//! `tinymoe generate`: continue a prompt with a language model or an MoE language model, the
//! kind read from the checkpoint's header.
//!
//! For an MoE LM every token is shown with its expert (the one that read it,
//! [`crate::models::moe_generate`]): in colour, with a legend, when stdout is a terminal, and
//! as `[e2]` tags (one where the expert changes) when it is piped; for a domain-routed model,
//! then the classifier's predicted domain and its confidence after 1, 2, 4, 8, … tokens, at the
//! end of the prompt and at the end. The library computes all of it; this file only prints.

use crate::checkpoint;
use crate::data::tokenizer::Tokenizer;
use crate::engine::init;
use crate::error::Error;
use crate::models::generate::{self, generate_moe, Decode, MoeGenerated, Sampling};
use crate::run::{lm, moe_lm};
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A checkpoint written by `tinymoe train lm` or `tinymoe train moe`.
    #[arg(long, visible_alias = "checkpoint", default_value = "results/lm/model.ckpt")]
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
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Recompute the whole context for every token instead of using the KV cache (slow: for
    /// comparing). An MoE LM always recomputes (its routing reads the whole prefix).
    #[arg(long)]
    pub recompute: bool,
    /// MoE LM only: send every token (every sequence) to this expert instead of the router's
    /// or classifier's choice.
    #[arg(long, value_name = "N")]
    pub expert: Option<usize>,
    /// MoE LM only: colour each token by its expert (auto: when stdout is a terminal; never:
    /// `[eN]` tags instead).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// `tinymoe generate`.
pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    if !(a.greedy || (a.temperature.is_finite() && a.temperature > 0.0)) {
        return Err(
            Error::bad_value("temperature", a.temperature, "must be a finite number > 0 (or use --greedy)").into()
        );
    }
    if a.prompt.is_empty() {
        return Err(Error::bad_value("prompt", "\"\"", "needs at least one character to continue").into());
    }
    let (header, _) = checkpoint::read(&a.model)?;
    match header.kind.as_str() {
        moe_lm::KIND => generate_with_experts(&a),
        lm::KIND => generate_dense(&a),
        other => Err(Error::Checkpoint {
            path: a.model.clone(),
            problem: format!(
                "it is a {other:?} checkpoint, and generate needs a language model ({:?}, from `tinymoe train lm`) or an \
                 MoE language model ({:?}, from `tinymoe train moe`)",
                lm::KIND,
                moe_lm::KIND
            ),
        }
        .into()),
    }
}

fn sampling(a: &GenerateArgs) -> Sampling {
    if a.greedy {
        Sampling::GREEDY
    } else {
        Sampling { temperature: a.temperature, top_k: (a.top_k > 0).then_some(a.top_k) }
    }
}

fn sampling_text(a: &GenerateArgs) -> String {
    if a.greedy {
        "greedy".to_string()
    } else {
        format!("temperature {}, top-k {}, seed {}", a.temperature, a.top_k, a.seed)
    }
}

/// A dense language model: the text, then the speed on stderr.
fn generate_dense(a: &GenerateArgs) -> anyhow::Result<()> {
    if let Some(e) = a.expert {
        return Err(Error::bad_value(
            "expert",
            e,
            &format!("applies to MoE LM checkpoints only; {} is a dense language model", a.model.display()),
        )
        .into());
    }
    let (model, tok) = lm::load_model(&a.model)?;
    let prompt = tok.encode(&a.prompt);
    if prompt.is_empty() {
        return Err(Error::bad_value("prompt", "\"\"", "needs at least one character to continue").into());
    }
    let decode = if a.recompute { Decode::Recompute } else { Decode::KvCache };
    let started = Instant::now();
    let new = generate::generate(&model, &prompt, a.tokens, sampling(a), decode, &mut init::rng(a.seed));
    let seconds = started.elapsed().as_secs_f64();
    println!("{}{}", a.prompt, tok.decode(&new));
    eprintln!(
        "\n[{} tokens in {seconds:.2} s: {:.0} tokens/s, {}; {}]",
        new.len(),
        new.len() as f64 / seconds.max(1e-9),
        if a.recompute { "full recompute" } else { "KV cache" },
        sampling_text(a)
    );
    Ok(())
}

/// An MoE language model: the legend, the text with each token's expert, the classifier's
/// belief as the text grows (domain routing), then the speed on stderr.
fn generate_with_experts(a: &GenerateArgs) -> anyhow::Result<()> {
    let moe_lm::Loaded { model, domains, tokenizer: tok } = moe_lm::load_model(&a.model)?;
    let n_experts = model.config.n_experts;
    if let Some(e) = a.expert {
        if e >= n_experts {
            return Err(Error::bad_value(
                "expert",
                e,
                &format!("must be in 0..={} ({} has {n_experts} experts)", n_experts - 1, a.model.display()),
            )
            .into());
        }
    }
    let prompt = tok.encode(&a.prompt);
    let cfg = model.config;
    if let Some(&id) = prompt.iter().find(|&&id| id >= cfg.vocab || Some(id) == cfg.pad_id) {
        return Err(Error::Checkpoint {
            path: a.model.clone(),
            problem: format!(
                "its model cannot read the prompt's byte {id} (vocabulary {}, padding id {:?})",
                cfg.vocab, cfg.pad_id
            ),
        }
        .into());
    }
    let started = Instant::now();
    let g = generate_moe(&model, &prompt, a.tokens, sampling(a), a.expert, &mut init::rng(a.seed));
    let seconds = started.elapsed().as_secs_f64();
    let colour = match a.color {
        Color::Auto => std::io::stdout().is_terminal(),
        Color::Always => true,
        Color::Never => false,
    };
    println!("{}", legend(n_experts, colour, a.expert));
    println!("{}", attributed_text(&g, &*tok, colour));
    let milestones = g.prediction_milestones();
    if !milestones.is_empty() {
        println!("\ndomain classifier as the text grows (predicted domain, its probability):");
        let name = |d: usize| domains.get(d).cloned().unwrap_or_else(|| format!("domain {d}"));
        let width = (0..n_experts).map(|d| name(d).chars().count()).max().unwrap_or(0);
        for m in milestones {
            let note = match (m.len == g.prompt_len, m.len == g.tokens.len()) {
                (true, true) => "   (end of the prompt and of the text)",
                (true, false) => "   (end of the prompt)",
                (false, true) => "   (end)",
                _ => "",
            };
            let unit = if m.len == 1 { "token " } else { "tokens" };
            println!("  after {:>4} {unit}  {:<width$}  {:5.1} %{note}", m.len, name(m.domain), 100.0 * m.confidence);
        }
    }
    let new = g.new_tokens().len();
    eprintln!(
        "\n[{new} tokens in {seconds:.2} s: {:.0} tokens/s, full recompute (routing reads the whole prefix); {}]",
        new as f64 / seconds.max(1e-9),
        sampling_text(a)
    );
    Ok(())
}

/// One terminal colour per expert (256-colour palette, well apart; it repeats past 12 experts).
const PALETTE: [u8; 12] = [203, 77, 75, 221, 177, 80, 215, 147, 114, 210, 117, 229];
const RESET: &str = "\x1b[0m";

fn paint(e: usize) -> String {
    format!("\x1b[38;5;{}m", PALETTE[e % PALETTE.len()])
}

/// The line that says how to read the text.
fn legend(n_experts: usize, colour: bool, forced: Option<usize>) -> String {
    let what = match forced {
        Some(e) => format!("every token forced to expert {e} by --expert"),
        None => "each token shown with the expert that read it".to_string(),
    };
    if colour {
        let keys: Vec<String> = (0..n_experts).map(|e| format!("{}■ e{e}{RESET}", paint(e))).collect();
        format!("experts: {}   ({what}; the prompt is underlined)", keys.join("  "))
    } else {
        format!("experts: [e0]..[e{}]   ({what}; a tag marks where that expert takes over)", n_experts - 1)
    }
}

/// The text, one colour (or one `[eN]` tag) per run of tokens with the same expert.
fn attributed_text(g: &MoeGenerated, tok: &dyn Tokenizer, colour: bool) -> String {
    let mut out = String::new();
    for (e, range) in g.runs() {
        if colour {
            // The prompt part of a run is underlined, so the reader sees where generation begins.
            let split = range.end.min(g.prompt_len).max(range.start);
            out += &paint(e);
            if split > range.start {
                out += &format!("\x1b[4m{}\x1b[24m", tok.decode(&g.tokens[range.start..split]));
            }
            out += &tok.decode(&g.tokens[split..range.end]);
            out += RESET;
        } else {
            out += &format!("[e{e}]{}", tok.decode(&g.tokens[range]));
        }
    }
    out
}
