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
use crate::engine::init;
use crate::error::Result;
use crate::models::generate::{generate_moe, Sampling};
use crate::models::moe_lm;
use crate::moe::layer::Route;
use crate::run::html::{byte_token_texts, ExplorerSample, ExplorerToken, TokenExplorer};

/// The explorer over the first `per_domain` samples of each of `domains` (labels index them).
pub fn moe_lm_explorer(
    model: &moe_lm::Params<f32>,
    seqs: &[Vec<usize>],
    labels: &[usize],
    domains: &[String],
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
            let texts = byte_token_texts(&ids);
            let (tokens, predicted) = if domain_routed {
                // Greedy with no new tokens: the generator is never drawn from.
                let g = generate_moe(model, &ids, 0, Sampling::GREEDY, None, &mut init::rng(0));
                let probs = g.domain_probs.as_ref().expect("a domain-routed model reports its classifier");
                let tokens = texts
                    .into_iter()
                    .enumerate()
                    .map(|(t, text)| ExplorerToken { text, expert: g.experts[t], weights: probs.row(t).to_vec() })
                    .collect();
                let last = g.prediction_after(ids.len()).expect("domain routed");
                let predicted = (last.domain < domains.len()).then_some((last.domain, last.confidence));
                (tokens, predicted)
            } else {
                let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), None, Route::default());
                let tokens = texts
                    .into_iter()
                    .enumerate()
                    .map(|(t, text)| ExplorerToken {
                        text,
                        expert: *r.chosen[t].first().expect("a real token has a top expert"),
                        weights: r.gates.row(t).to_vec(),
                    })
                    .collect();
                (tokens, None)
            };
            samples.push(ExplorerSample { domain: d, predicted, tokens });
        }
    }
    Ok(TokenExplorer { experts, weights_label, weight_names, domains: domains.to_vec(), samples })
}
