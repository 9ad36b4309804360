//! Generation from the MoE language model, with attribution: which expert read every token,
//! with which gates, and — for a domain-routed model — what the domain classifier believes
//! after each prefix.
//!
//! ```text
//!   context = prompt
//!   for every prefix of the prompt, then n times:
//!     routed = MoE-LM(context)                       one eval-mode pass over the whole context
//!     expert[last], gates[last] = routed's route of the last position   [E]
//!     domain_probs[last]        = softmax(classifier logits)            [E] (domain routing)
//!     next = sample(ln p(· | context)[last], temperature, top-k)        (new tokens only)
//!     context.push(next)
//! ```
//! The whole context is recomputed at every step (no KV cache): sequence-level and domain
//! routing read the mean of the whole prefix, so a new token can change the expert every
//! position goes to. Each token's expert is the one chosen **when that token was the last
//! one read** (from the prefix ending at it) — for domain routing, the classifier's choice at
//! that moment; the next token is predicted from that expert's output. The context slides as
//! in [`crate::models::generate::generate`]: a prompt longer than `max_seq` is read through its
//! last `max_seq` tokens, and a context that outgrows `max_seq` keeps its last `max_seq / 2`.
//!
//! The padding id is never sampled (its probability is set to 0): it would be masked as padding
//! when read back. `force: Some(e)` sends every unit to expert e (`Route::assigned`, gate 1) —
//! the classifier still runs, so `domain_probs` still shows what it would have chosen.

use crate::engine::layers::Mode;
use crate::engine::ops::softmax::softmax;
use crate::engine::{Float, Rng};
use crate::models::generate::{sample, Sampling};
use crate::models::moe_lm::{self, Params};
use crate::moe::layer::{self, Level, Route};
use ndarray::{Array1, Array2};

/// A generated text and its attribution, one entry per token (prompt first, then the new ones).
#[derive(Debug, Clone, PartialEq)]
pub struct MoeGenerated {
    /// The prompt followed by the new tokens.
    pub tokens: Vec<usize>,
    /// How many of `tokens` are the prompt.
    pub prompt_len: usize,
    /// Each token's top expert, chosen when it was the last token read.
    pub experts: Vec<usize>,
    /// Each token's gates at that moment [tokens, E].
    pub gates: Array2<f64>,
    /// Domain-classifier routing only: softmax of the classifier's logits after the prefix
    /// ending at each token [tokens, E] (row t: after t + 1 tokens).
    pub domain_probs: Option<Array2<f64>>,
}

/// What the domain classifier predicts after a prefix: its argmax and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixPrediction {
    /// Tokens read (the prefix length).
    pub len: usize,
    pub domain: usize,
    pub confidence: f64,
}

impl MoeGenerated {
    /// The tokens after the prompt.
    pub fn new_tokens(&self) -> &[usize] {
        &self.tokens[self.prompt_len..]
    }

    /// Maximal runs of consecutive tokens with the same top expert: (expert, start..end).
    pub fn runs(&self) -> Vec<(usize, std::ops::Range<usize>)> {
        let mut runs: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        for (t, &e) in self.experts.iter().enumerate() {
            match runs.last_mut() {
                Some((last, range)) if *last == e => range.end = t + 1,
                _ => runs.push((e, t..t + 1)),
            }
        }
        runs
    }

    /// The classifier's prediction after a prefix of `len` tokens (1 ≤ len ≤ tokens); None
    /// unless the model is domain-routed.
    pub fn prediction_after(&self, len: usize) -> Option<PrefixPrediction> {
        let probs = self.domain_probs.as_ref()?;
        assert!((1..=probs.nrows()).contains(&len), "prediction_after: {len} is not a prefix length");
        let row = probs.row(len - 1);
        let domain = crate::engine::losses::cross_entropy::argmax(row);
        Some(PrefixPrediction { len, domain, confidence: row[domain] })
    }

    /// The predictions after 1, 2, 4, 8, … tokens, at the end of the prompt and at the end of
    /// the text (in order, no length twice); empty unless the model is domain-routed.
    pub fn prediction_milestones(&self) -> Vec<PrefixPrediction> {
        let n = self.tokens.len();
        let mut lens: Vec<usize> =
            std::iter::successors(Some(1usize), |l| l.checked_mul(2)).take_while(|&l| l < n).collect();
        lens.extend([self.prompt_len, n]);
        lens.sort_unstable();
        lens.dedup();
        lens.into_iter().filter(|&l| l >= 1).filter_map(|l| self.prediction_after(l)).collect()
    }
}

/// Continues `prompt` by `n` tokens with the MoE LM, recording every token's expert, gates and
/// (domain routing) the classifier's probabilities after every prefix. `n = 0` attributes the
/// prompt alone (a held-out sample, say). The same model, prompt, sampling, `force` and `rng`
/// state give the same result. Panics on an empty prompt, a token id outside the vocabulary or
/// the padding id in it, or `force` ≥ the number of experts: callers validate user input.
pub fn generate_moe<F: Float>(
    p: &Params<F>,
    prompt: &[usize],
    n: usize,
    how: Sampling,
    force: Option<usize>,
    rng: &mut Rng,
) -> MoeGenerated {
    let cfg = p.config;
    assert!(!prompt.is_empty(), "generate_moe: the prompt needs at least one token");
    for &id in prompt {
        assert!(id < cfg.vocab && Some(id) != cfg.pad_id, "generate_moe: token id {id} is not a real token");
    }
    if let Some(e) = force {
        assert!(e < cfg.n_experts, "generate_moe: expert {e} forced, the model has {}", cfg.n_experts);
    }
    let max_seq = cfg.max_seq;
    let keep = (max_seq / 2).max(1);
    let n_experts = cfg.n_experts;
    let total = prompt.len() + n;
    let mut out = MoeGenerated {
        tokens: prompt.to_vec(),
        prompt_len: prompt.len(),
        experts: Vec::with_capacity(total),
        gates: Array2::zeros((total, n_experts)),
        domain_probs: cfg.domain_loss.map(|_| Array2::zeros((total, n_experts))),
    };
    // The prompt's prefixes, each read through its last max_seq tokens.
    let mut next_logp = None;
    for len in 1..=prompt.len() {
        let start = len.saturating_sub(max_seq);
        let read = read_last(p, &out.tokens[start..len], force);
        next_logp = Some(out.record(len - 1, read));
    }
    // The context the model sees is tokens[start..]; it slides when it would pass max_seq.
    let mut start = prompt.len().saturating_sub(max_seq);
    for _ in 0..n {
        let logp = next_logp.take().expect("the context has been read");
        let next = sample(logp.view(), how, rng);
        out.tokens.push(next);
        let len = out.tokens.len();
        if len - start > max_seq {
            start = len - keep;
        }
        let read = read_last(p, &out.tokens[start..len], force);
        next_logp = Some(out.record(len - 1, read));
    }
    out
}

/// What one pass tells about the last position of its context.
struct Read {
    expert: usize,
    /// [E]
    gates: Array1<f64>,
    /// softmax of the router's (classifier's) logits for the last position's unit [E].
    router_probs: Array1<f64>,
    /// ln p(next token | context) [vocab], the padding id at −∞.
    logp: Array1<f64>,
}

impl MoeGenerated {
    /// Stores token `t`'s route; hands back the next-token log-probabilities.
    fn record(&mut self, t: usize, read: Read) -> Array1<f64> {
        self.experts.push(read.expert);
        self.gates.row_mut(t).assign(&read.gates);
        if let Some(probs) = &mut self.domain_probs {
            probs.row_mut(t).assign(&read.router_probs);
        }
        read.logp
    }
}

/// One eval-mode pass over `context`: the route of its last position and what comes next.
fn read_last<F: Float>(p: &Params<F>, context: &[usize], force: Option<usize>) -> Read {
    let cfg = p.config;
    let seq = context.len();
    let ids = Array2::from_shape_vec((1, seq), context.to_vec()).expect("one row");
    // Targets only feed the loss, which generation ignores: the next id, padding at the end.
    let fill = cfg.pad_id.unwrap_or(0);
    let targets = Array2::from_shape_fn((1, seq), |(_, i)| context.get(i + 1).copied().unwrap_or(fill));
    let units = match cfg.level {
        Level::Token => seq,
        Level::Sequence => 1,
    };
    let assigned = force.map(|e| vec![Some(e); units]);
    let route = Route { intervention: None, assigned: assigned.as_deref() };
    // The same pass as `moe_lm::routed`, keeping the cache for the next-token probabilities.
    let (_, cache) = moe_lm::forward(p, ids.view(), targets.view(), None, route, &mut Mode::Eval);
    let last = seq - 1;
    let gates = layer::row_gates(cache.moe()).row(last).mapv(|g| g.to_f64().unwrap_or(f64::NAN));
    let chosen = &cache.moe().decision().chosen[cache.moe().unit_of_row(last)];
    let top = chosen.first().copied().unwrap_or_else(|| crate::engine::losses::cross_entropy::argmax(gates.view()));
    let unit = cache.moe().unit_of_row(last);
    let z = cache.moe().logits().slice(ndarray::s![unit..=unit, ..]).to_owned();
    let router_probs = softmax(z.view()).row(0).mapv(|v| v.to_f64().unwrap_or(f64::NAN));
    let logp = cache
        .probs()
        .row(last)
        .indexed_iter()
        .map(|(id, &q)| if Some(id) == cfg.pad_id { f64::NEG_INFINITY } else { q.to_f64().unwrap_or(f64::NAN).ln() })
        .collect();
    Read { expert: top, gates, router_probs, logp }
}

/// The text with an `[eN]` tag wherever another expert takes over (the first token's expert
/// opens it): the plain-text attribution of files and pipes. `decode` turns token ids into text.
pub fn tagged_text(g: &MoeGenerated, decode: impl Fn(&[usize]) -> String) -> String {
    g.runs().into_iter().map(|(e, range)| format!("[e{e}]{}", decode(&g.tokens[range]))).collect()
}
