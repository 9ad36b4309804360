//! Text generation from a trained language model: a KV-cached decoder, and sampling
//! (greedy, temperature, top-k), seeded.
//!
//! ```text
//!   context = prompt
//!   repeat n times:
//!     logits = LM(context)[last position]          [vocab]
//!     next   = sample(logits / temperature, keeping the top k)
//!     context.push(next)
//! ```
//! Computing `LM(context)` from scratch each time costs O(t²) for a context of t tokens
//! (attention over every pair). The [`Decoder`] keeps each layer's keys and values
//! ([`attention::KvCache`]), so a new token costs O(t): one row through every layer,
//! attending over the stored rows. [`Decode::Recompute`] is the slow, obviously-right path
//! the tests compare it with.
//!
//! A context that reaches `max_seq` (the position table's length) slides: the decoder keeps
//! the last `max_seq / 2` tokens, re-reads them from position 0, and goes on. Both decode paths
//! slide at the same moments, so they stay comparable.

use crate::engine::layers::attention::KvCache;
use crate::engine::layers::{layer_norm, linear, transformer_block as block};
use crate::engine::Float;
use crate::engine::Rng;
use crate::models::transformer_lm::{self as lm, Params};
use ndarray::{s, Array1, Array2};
use rand::Rng as _;

/// MoE LM generation with attribution lives beside this file; reachable from here too.
pub use crate::models::moe_generate::{generate_moe, MoeGenerated};

/// How to pick the next token from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 = greedy (always the most likely token); otherwise sample from softmax(logits / T):
    /// T < 1 sharpens the distribution, T > 1 flattens it.
    pub temperature: f64,
    /// Sample only among the k most likely tokens (None: all of them).
    pub top_k: Option<usize>,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_k: None };
}

/// Which way to compute each step's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Keep every layer's keys and values: O(context) per token.
    KvCache,
    /// Run the whole context through the model again: O(context²) per token.
    Recompute,
}

/// The incremental decoder: one KV cache per block, and the next position.
#[derive(Debug, Clone)]
pub struct Decoder<F> {
    kv: Vec<KvCache<F>>,
}

impl<F: Float> Decoder<F> {
    pub fn new(p: &Params<F>) -> Self {
        let c = p.config;
        Decoder { kv: (0..c.n_layers).map(|_| KvCache::new(c.max_seq, c.d_model)).collect() }
    }

    /// Tokens read so far (the position of the next one).
    pub fn len(&self) -> usize {
        self.kv.first().map_or(0, KvCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the context.
    pub fn clear(&mut self) {
        self.kv.iter_mut().for_each(KvCache::clear);
    }

    /// Reads token `id` at the next position and returns the logits [vocab] for the token after it.
    pub fn push(&mut self, p: &Params<F>, id: usize) -> Array1<F> {
        let pos = self.len();
        assert!(pos < p.config.max_seq, "decoder: context is full ({} tokens)", p.config.max_seq);
        assert!(id < p.config.vocab, "decoder: token id {id} is outside the vocabulary of {}", p.config.vocab);
        let mut h: Array2<F> = (&p.embed.tok.row(id) + &p.embed.pos.row(pos)).insert_axis(ndarray::Axis(0));
        for (block, kv) in p.blocks.iter().zip(&mut self.kv) {
            h = block::forward_step(block, h.view(), kv);
        }
        let (normed, _) = layer_norm::forward(&p.ln_f, h.view());
        let logits = match &p.head {
            Some(head) => linear::forward(head, normed.view()).0,
            None => normed.dot(&p.embed.tok.t()),
        };
        logits.row(0).to_owned()
    }
}

/// Picks a token from `logits` (greedy when the temperature is 0; ties go to the lowest id).
pub fn sample<F: Float>(logits: ndarray::ArrayView1<F>, how: Sampling, rng: &mut Rng) -> usize {
    let logits: Vec<f64> = logits.iter().map(|l| l.to_f64().unwrap_or(f64::NAN)).collect();
    let argmax = |v: &[f64]| (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best });
    if how.temperature <= 0.0 {
        return argmax(&logits);
    }
    // Candidates: every id, or the k most likely (stable order: ties keep the lower id).
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    if let Some(k) = how.top_k {
        ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        ids.truncate(k.max(1));
    }
    // softmax(logits / T) over the candidates, shifted by the max for stability.
    let max = ids.iter().map(|&i| logits[i]).fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = ids.iter().map(|&i| ((logits[i] - max) / how.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (&id, w) in ids.iter().zip(&weights) {
        if u < *w {
            return id;
        }
        u -= w;
    }
    *ids.last().expect("at least one candidate")
}

/// Continues `prompt` by `n` tokens; returns only the new tokens. The same model, prompt,
/// sampling and `rng` state give the same tokens, whichever `decode` path is used (up to
/// rounding: the two paths add in different orders, so a near-tie between two logits could
/// in principle break differently).
pub fn generate<F: Float>(
    p: &Params<F>,
    prompt: &[usize],
    n: usize,
    how: Sampling,
    decode: Decode,
    rng: &mut Rng,
) -> Vec<usize> {
    assert!(!prompt.is_empty(), "generate: the prompt needs at least one token");
    let max_seq = p.config.max_seq;
    let keep = (max_seq / 2).max(1);
    let mut tokens = prompt.to_vec();
    // The context the model sees is tokens[start..]; it slides when it would pass max_seq.
    let mut start = tokens.len().saturating_sub(max_seq);
    let mut decoder = Decoder::new(p);
    let mut logits = None;
    let refill = |decoder: &mut Decoder<F>, context: &[usize]| {
        decoder.clear();
        context.iter().map(|&id| decoder.push(p, id)).last()
    };
    if decode == Decode::KvCache {
        logits = refill(&mut decoder, &tokens[start..]);
    }
    for _ in 0..n {
        let next_logits = match decode {
            Decode::KvCache => logits.take().expect("the decoder has read the context"),
            Decode::Recompute => {
                let context = &tokens[start..];
                let ids = Array2::from_shape_vec((1, context.len()), context.to_vec()).expect("one row");
                let all = lm::predict(p, ids.view());
                all.slice(s![0, context.len() - 1, ..]).to_owned()
            }
        };
        let next = sample(next_logits.view(), how, rng);
        tokens.push(next);
        if tokens.len() - start > max_seq {
            start = tokens.len() - keep;
            if decode == Decode::KvCache {
                logits = refill(&mut decoder, &tokens[start..]);
            }
        } else if decode == Decode::KvCache {
            logits = Some(decoder.push(p, next));
        }
    }
    tokens.split_off(prompt.len())
}
