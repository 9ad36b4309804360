//! The MoE LM's token explorer over held-out samples, for `report.html`
//! ([`crate::run::html`]): the first `per_domain` validation samples of every domain, each byte
//! coloured by its top expert.
//!
//! - Token or sequence routing: one eval pass over the whole sample (what `tokens.txt` lists);
//!   hovering shows the token's gates.
//! - Domain-classifier routing: the sample read prefix by prefix
//!   ([`crate::models::moe_generate::generate_moe`] with no new tokens), as at generation time;
//!   each byte's expert is the classifier's choice once that byte is read, and hovering shows
//!   the classifier's probabilities at that moment. The sample's predicted domain is the
//!   classifier's after the whole sample.

use crate::data::batch::Batches;
use crate::data::tokenizer::Tokenizer;
use crate::engine::init;
use crate::error::Result;
use crate::models::generate::{generate_moe, MoeGenerated, Sampling};
use crate::models::moe_lm;
use crate::moe::layer::Route;
use crate::run::html::{byte_token_texts, ExplorerSample, ExplorerToken, TokenExplorer};

/// Each token's text for display: bytes as UTF-8 characters (a character's text on its first
/// byte, "" on the rest), any other tokeniser's ids decoded one by one.
fn token_texts(tok: &dyn Tokenizer, ids: &[usize]) -> Vec<String> {
    if tok.vocab_size() == 256 {
        byte_token_texts(ids)
    } else {
        ids.iter().map(|&id| tok.decode(&[id])).collect()
    }
}

/// The explorer over the first `per_domain` samples of each of `domains` (labels index them).
pub fn moe_lm_explorer(
    model: &moe_lm::Params<f32>,
    seqs: &[Vec<usize>],
    labels: &[usize],
    domains: &[String],
    tok: &dyn Tokenizer,
    max_len: usize,
    per_domain: usize,
) -> Result<TokenExplorer> {
    let cfg = model.config;
    let pad = cfg.pad_id.unwrap_or(cfg.vocab);
    let domain_routed = cfg.domain_loss.is_some();
    let experts: Vec<String> = (0..cfg.n_experts).map(|e| format!("expert {e}")).collect();
    let (weights_label, weight_names) = if domain_routed {
        // The classifier has one output per expert; the first ones are the domains.
        let names = (0..cfg.n_experts).map(|e| domains.get(e).cloned().unwrap_or_else(|| format!("expert {e}")));
        ("domain probabilities after the prefix ending here".to_string(), names.collect())
    } else {
        ("gates".to_string(), experts.clone())
    };
    let mut samples = Vec::new();
    for d in 0..domains.len() {
        for i in labels.iter().enumerate().filter(|(_, &l)| l == d).map(|(i, _)| i).take(per_domain) {
            let data = Batches::new(&seqs[i..=i], &labels[i..=i], max_len, pad, 1)?;
            let batch = data.batch(&[0]);
            let n = batch.mask.iter().filter(|&&m| m == 1).count();
            let ids: Vec<usize> = batch.ids.iter().take(n).copied().collect();
            if ids.is_empty() {
                continue;
            }
            let sample = if domain_routed {
                // Greedy with no new tokens: the generator is never drawn from.
                let g = generate_moe(model, &ids, 0, Sampling::GREEDY, None, &mut init::rng(0));
                explorer_sample(&g, tok, d, domains.len())
            } else {
                let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), None, Route::default());
                let tokens = token_texts(tok, &ids)
                    .into_iter()
                    .enumerate()
                    .map(|(t, text)| ExplorerToken {
                        text,
                        expert: *r.chosen[t].first().expect("a real token has a top expert"),
                        weights: r.gates.row(t).to_vec(),
                    })
                    .collect();
                ExplorerSample { domain: d, predicted: None, tokens }
            };
            samples.push(sample);
        }
    }
    Ok(TokenExplorer { experts, weights_label, weight_names, domains: domains.to_vec(), samples })
}

/// One explorer sample from an attributed generation (or a sample read with `n = 0`) of a
/// MoE LM whose true domain is `domain`: each byte's expert, its domain
/// probabilities (domain routing) or gates as the hover weights, and — domain routing — the
/// classifier's prediction after the whole text when it names one of the `n_domains` domains.
/// E5 uses it to show text generated under the true, the predicted and a wrong expert.
pub fn explorer_sample(g: &MoeGenerated, tok: &dyn Tokenizer, domain: usize, n_domains: usize) -> ExplorerSample {
    let weights = g.domain_probs.as_ref().unwrap_or(&g.gates);
    let tokens = token_texts(tok, &g.tokens)
        .into_iter()
        .enumerate()
        .map(|(t, text)| ExplorerToken { text, expert: g.experts[t], weights: weights.row(t).to_vec() })
        .collect();
    let predicted =
        g.prediction_after(g.tokens.len()).filter(|p| p.domain < n_domains).map(|p| (p.domain, p.confidence));
    ExplorerSample { domain, predicted, tokens }
}
