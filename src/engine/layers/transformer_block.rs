//! The pre-LN transformer block (GPT-2 / nanoGPT `Block`), and a stack of them.
//!
//! ```text
//!   h = x + attn(ln1(x))          the attention sub-layer, residual around it
//!   y = h + mlp(ln2(h))           the feed-forward sub-layer (Linear → GELU → dropout → Linear)
//! ```
//! Shapes: x, h, y [batch·seq, d_model]; the MLP is [d_model, d_ff, d_model].
//!
//! Backward walks the two equations in reverse. At each residual the gradient takes both
//! paths and they add:
//! ```text
//!   dh = dy + ln2_backward(mlp_backward(dy))      (y = h + f(h): ∂y/∂h = I + f'(h))
//!   dx = dh + ln1_backward(attn_backward(dh))
//! ```
//! Pre-LN (normalise the input of each sub-layer, not its output) keeps an identity path from
//! the last block's output to the embedding, so gradients reach early blocks undiminished and
//! training is stable without warm-up tricks (Xiong et al. 2020).

use crate::engine::layers::attention::{self, Mask};
use crate::engine::layers::{layer_norm, mlp, Activation, InputGrad, Mode};
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub ln1: layer_norm::Params<F>,
    pub attn: attention::Params<F>,
    pub ln2: layer_norm::Params<F>,
    pub mlp: mlp::Params<F>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub ln1: layer_norm::Grads<F>,
    pub attn: attention::Grads<F>,
    pub ln2: layer_norm::Grads<F>,
    pub mlp: mlp::Grads<F>,
}

#[derive(Debug, Clone)]
pub struct Cache<F> {
    pub ln1: layer_norm::Cache<F>,
    pub attn: attention::Cache<F>,
    pub ln2: layer_norm::Cache<F>,
    pub mlp: mlp::Cache<F>,
}

/// GPT-2 style: LayerNorms at identity (eps 1e-5), projections N(0, std²), GELU (tanh).
pub fn init<F: Float>(d_model: usize, n_heads: usize, d_ff: usize, dropout: f64, std: f64, rng: &mut Rng) -> Params<F> {
    let attn = attention::init(d_model, n_heads, std, rng);
    let mut ff = mlp::init(&[d_model, d_ff, d_model], Activation::GeluTanh, dropout, rng);
    for layer in &mut ff.layers {
        layer.w = crate::engine::init::normal(layer.w.raw_dim(), std, rng);
    }
    Params { ln1: layer_norm::init(d_model, 1e-5), attn, ln2: layer_norm::init(d_model, 1e-5), mlp: ff }
}

/// x [batch·seq, d_model] → y [batch·seq, d_model].
pub fn forward<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    batch: usize,
    seq: usize,
    mask: Mask,
    mode: &mut Mode,
) -> (Array2<F>, Cache<F>) {
    let (a, ln1) = layer_norm::forward(&p.ln1, x);
    let (a, attn) = attention::forward(&p.attn, a.view(), batch, seq, mask);
    let h = &x + &a;
    let (m, ln2) = layer_norm::forward(&p.ln2, h.view());
    let (m, mlp_cache) = mlp::forward(&p.mlp, m.view(), mode);
    let y = h + &m;
    (y, Cache { ln1, attn, ln2, mlp: mlp_cache })
}

/// dy [batch·seq, d_model] → (dx, grads).
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>, dy: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    // y = h + mlp(ln2(h)): dy flows straight to h, and through the MLP branch.
    let (dm, g_mlp) = mlp::backward(&p.mlp, &c.mlp, dy, InputGrad::Need);
    let (dh_branch, g_ln2) = layer_norm::backward(&p.ln2, &c.ln2, dm.expect("asked for dx").view());
    let dh = &dy + &dh_branch;
    // h = x + attn(ln1(x)): the same again.
    let (da, g_attn) = attention::backward(&p.attn, &c.attn, dh.view());
    let (dx_branch, g_ln1) = layer_norm::backward(&p.ln1, &c.ln1, da.view());
    let dx = dh + &dx_branch;
    (dx, Grads { ln1: g_ln1, attn: g_attn, ln2: g_ln2, mlp: g_mlp })
}

/// A stack of blocks applied in order: x → block₀ → block₁ → … .
pub fn forward_stack<F: Float>(
    blocks: &[Params<F>],
    x: ArrayView2<F>,
    batch: usize,
    seq: usize,
    mask: Mask,
    mode: &mut Mode,
) -> (Array2<F>, Vec<Cache<F>>) {
    let mut h = x.to_owned();
    let mut caches = Vec::with_capacity(blocks.len());
    for block in blocks {
        let (y, c) = forward(block, h.view(), batch, seq, mask, mode);
        caches.push(c);
        h = y;
    }
    (h, caches)
}

/// Backward through the stack, last block first.
pub fn backward_stack<F: Float>(
    blocks: &[Params<F>],
    caches: &[Cache<F>],
    dy: ArrayView2<F>,
) -> (Array2<F>, Vec<Grads<F>>) {
    let mut dh = dy.to_owned();
    let mut grads = Vec::with_capacity(blocks.len());
    for (block, cache) in blocks.iter().zip(caches).rev() {
        let (dx, g) = backward(block, cache, dh.view());
        grads.push(g);
        dh = dx;
    }
    grads.reverse();
    (dh, grads)
}

/// One new token x [1, D] through the block in eval mode, reading and extending its
/// attention's KV cache: the incremental twin of [`forward`] for generation.
pub fn forward_step<F: Float>(p: &Params<F>, x: ArrayView2<F>, kv: &mut attention::KvCache<F>) -> Array2<F> {
    let (a, _) = layer_norm::forward(&p.ln1, x);
    let h = &x + &attention::forward_step(&p.attn, a.view(), kv);
    let (m, _) = layer_norm::forward(&p.ln2, h.view());
    let (m, _) = mlp::forward(&p.mlp, m.view(), &mut Mode::Eval);
    h + &m
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("ln1", self.ln1.tensors());
        t.extend(prefixed("attn", self.attn.tensors()));
        t.extend(prefixed("ln2", self.ln2.tensors()));
        t.extend(prefixed("mlp", self.mlp.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("ln1", self.ln1.tensors_mut());
        t.extend(prefixed("attn", self.attn.tensors_mut()));
        t.extend(prefixed("ln2", self.ln2.tensors_mut()));
        t.extend(prefixed("mlp", self.mlp.tensors_mut()));
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("ln1", self.ln1.tensors());
        t.extend(prefixed("attn", self.attn.tensors()));
        t.extend(prefixed("ln2", self.ln2.tensors()));
        t.extend(prefixed("mlp", self.mlp.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("ln1", self.ln1.tensors_mut());
        t.extend(prefixed("attn", self.attn.tensors_mut()));
        t.extend(prefixed("ln2", self.ln2.tensors_mut()));
        t.extend(prefixed("mlp", self.mlp.tensors_mut()));
        t
    }
}

/// A stack's tensors are named `blocks.0.…`, `blocks.1.…`.
pub fn stack_tensors<F: Float>(blocks: &[Params<F>]) -> Vec<Named<'_, F>> {
    list("blocks", blocks)
}

/// Writable twin of [`stack_tensors`].
pub fn stack_tensors_mut<F: Float>(blocks: &mut [Params<F>]) -> Vec<NamedMut<'_, F>> {
    list_mut("blocks", blocks)
}
