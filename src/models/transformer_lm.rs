//! A GPT-style language model: token + position embedding, a stack of pre-LN blocks, a final
//! LayerNorm, and a linear head over the vocabulary (optionally tied to the token embedding).
//!
//! ```text
//!   h₀     = tok[ids] + pos[0..seq]                 [batch·seq, d_model]
//!   h_L    = blocks(h₀)                             causal mask + key-padding mask
//!   logits = ln_f(h_L)·W_head + b_head              [batch·seq, vocab]   (tied: ln_f(h_L)·tokᵀ)
//!   L      = cross_entropy(logits, targets)         mean over targets that are not padding
//! ```
//! Backward is the same chain in reverse; with a tied head the token table collects two
//! gradients, one from the head (dtok += dlogitsᵀ·ln_f(h_L)) and one from the lookup, and adds them.

use crate::engine::layers::attention::Mask;
use crate::engine::layers::transformer_block::{self as block};
use crate::engine::layers::{embedding, layer_norm, linear, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::ops::matmul::matmul;
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The shape of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab: usize,
    pub max_seq: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub dropout: f64,
    /// The padding token: never predicted, never attended to, its embedding row never trained.
    pub pad_id: Option<usize>,
    /// Share the token table with the output head (no head bias then).
    pub tie_head: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub embed: embedding::Params<F>,
    pub blocks: Vec<block::Params<F>>,
    pub ln_f: layer_norm::Params<F>,
    /// None when the head is tied to `embed.tok`.
    pub head: Option<linear::Params<F>>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub embed: embedding::Grads<F>,
    pub blocks: Vec<block::Grads<F>>,
    pub ln_f: layer_norm::Grads<F>,
    pub head: Option<linear::Grads<F>>,
}

/// Everything backward needs.
#[derive(Debug, Clone)]
pub struct Cache<F> {
    embed: embedding::Cache,
    blocks: Vec<block::Cache<F>>,
    ln_f: layer_norm::Cache<F>,
    /// ln_f's output [batch·seq, d_model]: the head's input.
    normed: Array2<F>,
    head: Option<linear::Cache<F>>,
    ce: cross_entropy::Cache<F>,
    batch: usize,
    seq: usize,
}

impl<F: Float> Cache<F> {
    /// Attention weights of block `layer`: [batch, n_heads, seq, seq].
    pub fn attention(&self, layer: usize) -> &ndarray::Array4<F> {
        self.blocks[layer].attn.probs()
    }
}

/// GPT-2 style init: N(0, 0.02²) everywhere, LayerNorms at identity.
pub fn init<F: Float>(cfg: Config, rng: &mut Rng) -> Params<F> {
    let std = 0.02;
    let embed = embedding::init(cfg.vocab, cfg.max_seq, cfg.d_model, cfg.pad_id, std, rng);
    let blocks =
        (0..cfg.n_layers).map(|_| block::init(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, std, rng)).collect();
    let head = (!cfg.tie_head).then(|| linear::init_normal(cfg.d_model, cfg.vocab, std, rng));
    Params { embed, blocks, ln_f: layer_norm::init(cfg.d_model, 1e-5), head, config: cfg }
}

/// 1 where `ids` is a real token, 0 where it is padding: the attention key mask.
pub fn padding_mask(ids: ArrayView2<usize>, pad_id: Option<usize>) -> Option<Array2<u8>> {
    pad_id.map(|pad| ids.mapv(|id| u8::from(id != pad)))
}

/// The logits [batch·seq, vocab] for ids [batch, seq], and the cache up to the head.
fn logits<F: Float>(p: &Params<F>, ids: ArrayView2<usize>, mode: &mut Mode) -> (Array2<F>, PartialCache<F>) {
    let (batch, seq) = ids.dim();
    let d_model = p.config.d_model;
    let (h0, embed) = embedding::forward(&p.embed, ids, p.config.pad_id);
    let h0 = h0.into_shape_with_order((batch * seq, d_model)).expect("standard layout");
    let pad = padding_mask(ids, p.config.pad_id);
    let mask = Mask { causal: true, key_padding: pad.as_ref().map(|m| m.view()) };
    let (h, blocks) = block::forward_stack(&p.blocks, h0.view(), batch, seq, mask, mode);
    let (normed, ln_f) = layer_norm::forward(&p.ln_f, h.view());
    let (logits, head) = match &p.head {
        Some(head) => {
            let (l, c) = linear::forward(head, normed.view());
            (l, Some(c))
        }
        None => (matmul(normed.view(), p.embed.tok.t()), None),
    };
    (logits, PartialCache { embed, blocks, ln_f, normed, head, batch, seq })
}

struct PartialCache<F> {
    embed: embedding::Cache,
    blocks: Vec<block::Cache<F>>,
    ln_f: layer_norm::Cache<F>,
    normed: Array2<F>,
    head: Option<linear::Cache<F>>,
    batch: usize,
    seq: usize,
}

/// Eval-mode logits [batch, seq, vocab] (dropout off).
pub fn predict<F: Float>(p: &Params<F>, ids: ArrayView2<usize>) -> ndarray::Array3<F> {
    let (batch, seq) = ids.dim();
    let (l, _) = logits(p, ids, &mut Mode::Eval);
    l.into_shape_with_order((batch, seq, p.config.vocab)).expect("standard layout")
}

/// The mean next-token cross-entropy of `targets` [batch, seq] given `ids` [batch, seq];
/// targets equal to the padding id are ignored.
pub fn forward<F: Float>(
    p: &Params<F>,
    ids: ArrayView2<usize>,
    targets: ArrayView2<usize>,
    mode: &mut Mode,
) -> (F, Cache<F>) {
    assert_eq!(ids.dim(), targets.dim(), "lm: ids are {:?}, targets {:?}", ids.dim(), targets.dim());
    let (logits, c) = logits(p, ids, mode);
    let targets: Vec<usize> = targets.iter().copied().collect();
    let (loss, ce) = cross_entropy::forward(logits.view(), &targets, p.config.pad_id);
    let cache = Cache {
        embed: c.embed,
        blocks: c.blocks,
        ln_f: c.ln_f,
        normed: c.normed,
        head: c.head,
        ce,
        batch: c.batch,
        seq: c.seq,
    };
    (loss, cache)
}

/// ∂L/∂(every parameter).
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>) -> Grads<F> {
    let d_model = p.config.d_model;
    let dlogits = cross_entropy::backward(&c.ce);
    // logits = normed·W_head + b (or normed·tokᵀ when tied).
    let (dnormed, head, dtok_head) = match (&p.head, &c.head) {
        (Some(head), Some(cache)) => {
            let (d, g) = linear::backward(head, cache, dlogits.view());
            (d, Some(g), None)
        }
        _ => (matmul(dlogits.view(), p.embed.tok.view()), None, Some(matmul(dlogits.t(), c.normed.view()))),
    };
    let (dh, ln_f) = layer_norm::backward(&p.ln_f, &c.ln_f, dnormed.view());
    let (dh0, blocks) = block::backward_stack(&p.blocks, &c.blocks, dh.view());
    let dh0 = dh0.into_shape_with_order((c.batch, c.seq, d_model)).expect("standard layout");
    let mut embed = embedding::backward(&p.embed, &c.embed, dh0.view());
    if let Some(dtok) = dtok_head {
        // The tied table was used twice (lookup and head): its gradients add. The lookup gave
        // the padding row nothing, but as an output class the head still trains it, exactly as
        // PyTorch does (`padding_idx` affects only the lookup).
        embed.dtok += &dtok;
    }
    Grads { embed, blocks, ln_f, head }
}

/// Mean loss of `ids`/`targets` in eval mode, over batches of rows.
pub fn evaluate<F: Float>(p: &Params<F>, ids: ArrayView2<usize>, targets: ArrayView2<usize>, batch: usize) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    for (i, t) in ids.axis_chunks_iter(Axis(0), batch.max(1)).zip(targets.axis_chunks_iter(Axis(0), batch.max(1))) {
        let (loss, cache) = forward(p, i, t, &mut Mode::Eval);
        total += loss.to_f64().unwrap_or(f64::NAN) * cache.ce.n_real() as f64;
        count += cache.ce.n_real();
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors());
        t.extend(list("blocks", &self.blocks));
        t.extend(prefixed("ln_f", self.ln_f.tensors()));
        if let Some(h) = &self.head {
            t.extend(prefixed("head", h.tensors()));
        }
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors_mut());
        t.extend(list_mut("blocks", &mut self.blocks));
        t.extend(prefixed("ln_f", self.ln_f.tensors_mut()));
        if let Some(h) = &mut self.head {
            t.extend(prefixed("head", h.tensors_mut()));
        }
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors());
        t.extend(list("blocks", &self.blocks));
        t.extend(prefixed("ln_f", self.ln_f.tensors()));
        if let Some(h) = &self.head {
            t.extend(prefixed("head", h.tensors()));
        }
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("embed", self.embed.tensors_mut());
        t.extend(list_mut("blocks", &mut self.blocks));
        t.extend(prefixed("ln_f", self.ln_f.tensors_mut()));
        if let Some(h) = &mut self.head {
            t.extend(prefixed("head", h.tensors_mut()));
        }
        t
    }
}
