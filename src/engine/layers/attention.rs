//! Multi-head scaled dot-product attention (Vaswani et al. 2017, §3.2), with causal and
//! key-padding masks, and its full hand-written backward.
//!
//! Letters: B batch, T seq, D d_model, H n_heads, Dh = D/H d_head; rows are tokens,
//! n = B·T. The heads are column blocks of Q, K, V: head h of sequence b is the strided view
//! `Q[b·T .. (b+1)·T, h·Dh .. (h+1)·Dh]` — split and merged without a copy.
//!
//! ```text
//!   Q = x·W_q + b_q,  K = x·W_k + b_k,  V = x·W_v + b_v          [n, D]
//!   per (b, h):  S = Q_bh·K_bhᵀ / √Dh                              [T, T]
//!                S[i, j] = −∞ where j > i (causal) or key j is padding
//!                P = softmax(S) row by row                         [T, T]
//!                O_bh = P·V_bh                                     [T, Dh]
//!   y = O·W_o + b_o                                                [n, D]
//! ```
//! Why √Dh: with unit-variance q and k, q·k has variance Dh; dividing by √Dh keeps the
//! scores at unit scale, so softmax does not saturate into a one-hot with vanishing gradient.
//!
//! Backward per (b, h), with dO_bh from the output projection's backward:
//! ```text
//!   dV_bh = Pᵀ·dO_bh                   (O = P·V)
//!   dP    = dO_bh·V_bhᵀ
//!   dS    = P ⊙ (dP − Σ_j dP ⊙ P)      (softmax backward, row by row; masked entries have P = 0)
//!   dQ_bh = dS·K_bh / √Dh,   dK_bh = dSᵀ·Q_bh / √Dh
//! ```
//! then dx = dQ·W_qᵀ + dK·W_kᵀ + dV·W_vᵀ (x fed all three projections).
//!
//! A query row whose keys are all masked (a padding token under a padding mask) has
//! P = 0 — no NaN — so its output is just b_o, and it passes no gradient to any key.

use crate::engine::layers::linear;
use crate::engine::ops::softmax::{softmax_backward, softmax_inplace};
use crate::engine::params::{prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use ndarray::{s, Array2, Array4, ArrayView2, Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The four projections, each [D, D], and the number of heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub q: linear::Params<F>,
    pub k: linear::Params<F>,
    pub v: linear::Params<F>,
    pub o: linear::Params<F>,
    pub n_heads: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub q: linear::Grads<F>,
    pub k: linear::Grads<F>,
    pub v: linear::Grads<F>,
    pub o: linear::Grads<F>,
}

/// Which keys each query may see.
#[derive(Debug, Clone, Copy)]
pub struct Mask<'a> {
    /// Query i sees only keys j ≤ i (decoder / language model).
    pub causal: bool,
    /// [batch, seq]: 1 = real token, 0 = padding (keys that are padding are hidden).
    pub key_padding: Option<ArrayView2<'a, u8>>,
}

/// What backward needs: the projection caches, Q, K, V [n, D] and every head's P [B, H, T, T].
#[derive(Debug, Clone)]
pub struct Cache<F> {
    q: linear::Cache<F>,
    k: linear::Cache<F>,
    v: linear::Cache<F>,
    o: linear::Cache<F>,
    queries: Array2<F>,
    keys: Array2<F>,
    values: Array2<F>,
    probs: Array4<F>,
    batch: usize,
    seq: usize,
}

impl<F: Float> Cache<F> {
    /// The attention weights P [batch, n_heads, seq(query), seq(key)], for attention maps.
    pub fn probs(&self) -> &Array4<F> {
        &self.probs
    }
}

/// GPT-2 style init: every projection N(0, std²), zero biases.
pub fn init<F: Float>(d_model: usize, n_heads: usize, std: f64, rng: &mut Rng) -> Params<F> {
    assert!(
        n_heads > 0 && d_model % n_heads == 0,
        "attention: d_model {d_model} is not divisible by n_heads {n_heads}"
    );
    Params {
        q: linear::init_normal(d_model, d_model, std, rng),
        k: linear::init_normal(d_model, d_model, std, rng),
        v: linear::init_normal(d_model, d_model, std, rng),
        o: linear::init_normal(d_model, d_model, std, rng),
        n_heads,
    }
}

/// Is key j hidden from query i of sequence b?
fn masked(mask: &Mask, b: usize, i: usize, j: usize) -> bool {
    (mask.causal && j > i) || mask.key_padding.is_some_and(|m| m[[b, j]] == 0)
}

/// x [batch·seq, d_model] (rows grouped by sequence) → y [batch·seq, d_model].
pub fn forward<F: Float>(
    p: &Params<F>,
    x: ArrayView2<F>,
    batch: usize,
    seq: usize,
    mask: Mask,
) -> (Array2<F>, Cache<F>) {
    let (n, d_model) = x.dim();
    assert_eq!(n, batch * seq, "attention: x has {n} rows, batch·seq = {batch}·{seq}");
    if let Some(m) = mask.key_padding {
        assert_eq!(m.dim(), (batch, seq), "attention: padding mask is {:?}, expected [{batch}, {seq}]", m.dim());
    }
    let heads = p.n_heads;
    let d_head = d_model / heads;
    let scale = F::lit(1.0 / (d_head as f64).sqrt());
    let (queries, q_cache) = linear::forward(&p.q, x);
    let (keys, k_cache) = linear::forward(&p.k, x);
    let (values, v_cache) = linear::forward(&p.v, x);

    let mut probs = Array4::<F>::zeros((batch, heads, seq, seq));
    let mut out = Array2::<F>::zeros((n, d_model));
    // One task per sequence; each writes its own rows of `out` and its own block of P.
    probs.axis_iter_mut(Axis(0)).into_par_iter().zip(out.axis_chunks_iter_mut(Axis(0), seq)).enumerate().for_each(
        |(b, (mut probs_b, mut out_b))| {
            let rows = s![b * seq..(b + 1) * seq, ..];
            let (q_b, k_b, v_b) = (queries.slice(rows), keys.slice(rows), values.slice(rows));
            for h in 0..heads {
                let cols = s![.., h * d_head..(h + 1) * d_head];
                let (q, k, v) = (q_b.slice(cols), k_b.slice(cols), v_b.slice(cols));
                // S = Q·Kᵀ/√Dh, masked entries −∞, then softmax row by row.
                let mut scores = q.dot(&k.t());
                for ((i, j), s) in scores.indexed_iter_mut() {
                    *s = if masked(&mask, b, i, j) { F::neg_infinity() } else { *s * scale };
                }
                softmax_inplace(&mut scores);
                let o = scores.dot(&v); // [T, Dh]
                out_b.slice_mut(cols).assign(&o);
                probs_b.index_axis_mut(Axis(0), h).assign(&scores);
            }
        },
    );
    let (y, o_cache) = linear::forward(&p.o, out.view());
    let cache = Cache { q: q_cache, k: k_cache, v: v_cache, o: o_cache, queries, keys, values, probs, batch, seq };
    (y, cache)
}

/// dy [batch·seq, d_model] → (dx [batch·seq, d_model], grads).
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>, dy: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    let (n, d_model) = dy.dim();
    let (batch, seq) = (c.batch, c.seq);
    assert_eq!(n, batch * seq, "attention: dy has {n} rows, the forward had {batch}·{seq}");
    let heads = p.n_heads;
    let d_head = d_model / heads;
    let scale = F::lit(1.0 / (d_head as f64).sqrt());
    // In forward, y = O·W_o + b_o: so dO = dy·W_oᵀ.
    let (d_out, go) = linear::backward(&p.o, &c.o, dy);

    let mut dq = Array2::<F>::zeros((n, d_model));
    let mut dk = Array2::<F>::zeros((n, d_model));
    let mut dv = Array2::<F>::zeros((n, d_model));
    dq.axis_chunks_iter_mut(Axis(0), seq)
        .into_par_iter()
        .zip(dk.axis_chunks_iter_mut(Axis(0), seq))
        .zip(dv.axis_chunks_iter_mut(Axis(0), seq))
        .enumerate()
        .for_each(|(b, ((mut dq_b, mut dk_b), mut dv_b))| {
            let rows = s![b * seq..(b + 1) * seq, ..];
            let (q_b, k_b, v_b, do_b) =
                (c.queries.slice(rows), c.keys.slice(rows), c.values.slice(rows), d_out.slice(rows));
            for h in 0..heads {
                let cols = s![.., h * d_head..(h + 1) * d_head];
                let (q, k, v, d_o) = (q_b.slice(cols), k_b.slice(cols), v_b.slice(cols), do_b.slice(cols));
                let prob = c.probs.slice(s![b, h, .., ..]);
                // In forward, O = P·V: so dV = Pᵀ·dO and dP = dO·Vᵀ.
                dv_b.slice_mut(cols).assign(&prob.t().dot(&d_o));
                let dprob = d_o.dot(&v.t());
                // Through the softmax, then the 1/√Dh scale (masked entries have P = 0, so dS = 0).
                let mut dscores = softmax_backward(prob, dprob.view());
                dscores.mapv_inplace(|v| v * scale);
                // S = Q·Kᵀ: so dQ = dS·K and dK = dSᵀ·Q.
                dq_b.slice_mut(cols).assign(&dscores.dot(&k));
                dk_b.slice_mut(cols).assign(&dscores.t().dot(&q));
            }
        });
    let (mut dx, gq) = linear::backward(&p.q, &c.q, dq.view());
    let (dx_k, gk) = linear::backward(&p.k, &c.k, dk.view());
    let (dx_v, gv) = linear::backward(&p.v, &c.v, dv.view());
    // x fed Q, K and V: its gradient is the sum of the three paths.
    Zip::from(&mut dx).and(&dx_k).and(&dx_v).for_each(|d, &a, &b| *d += a + b);
    (dx, Grads { q: gq, k: gk, v: gv, o: go })
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("q", self.q.tensors());
        t.extend(prefixed("k", self.k.tensors()));
        t.extend(prefixed("v", self.v.tensors()));
        t.extend(prefixed("o", self.o.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("q", self.q.tensors_mut());
        t.extend(prefixed("k", self.k.tensors_mut()));
        t.extend(prefixed("v", self.v.tensors_mut()));
        t.extend(prefixed("o", self.o.tensors_mut()));
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("q", self.q.tensors());
        t.extend(prefixed("k", self.k.tensors()));
        t.extend(prefixed("v", self.v.tensors()));
        t.extend(prefixed("o", self.o.tensors()));
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("q", self.q.tensors_mut());
        t.extend(prefixed("k", self.k.tensors_mut()));
        t.extend(prefixed("v", self.v.tensors_mut()));
        t.extend(prefixed("o", self.o.tensors_mut()));
        t
    }
}

/// The keys and values of the tokens seen so far, for decoding one token at a time.
///
/// Generating token t with a full forward recomputes K and V of all t earlier tokens: O(t²)
/// work per token. But under a causal mask a token's K and V never change once computed (it
/// sees only its past), so they can be kept: each new token computes its own q, k, v, appends
/// k and v here, and attends over the stored rows — O(t·D) per token.
#[derive(Debug, Clone)]
pub struct KvCache<F> {
    /// [capacity, D]; rows 0..len are filled.
    keys: Array2<F>,
    values: Array2<F>,
    len: usize,
}

impl<F: Float> KvCache<F> {
    /// Room for `capacity` tokens (the model's max_seq) of width `d_model`.
    pub fn new(capacity: usize, d_model: usize) -> Self {
        KvCache { keys: Array2::zeros((capacity, d_model)), values: Array2::zeros((capacity, d_model)), len: 0 }
    }
    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Forgets every token (the buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// One new token x [1, D] at position `kv.len()` attends to itself and every stored token
/// (the causal mask, implicitly): returns y [1, D] and appends the token's k and v to `kv`.
/// Equal, up to rounding, to the last row of `forward` over the whole sequence.
pub fn forward_step<F: Float>(p: &Params<F>, x: ArrayView2<F>, kv: &mut KvCache<F>) -> Array2<F> {
    let d_model = x.ncols();
    assert_eq!(x.nrows(), 1, "attention step: x has {} rows, expected one token", x.nrows());
    let t = kv.len;
    assert!(t < kv.keys.nrows(), "attention step: the KV cache is full ({} tokens)", kv.keys.nrows());
    let heads = p.n_heads;
    let d_head = d_model / heads;
    let scale = F::lit(1.0 / (d_head as f64).sqrt());
    let (q, _) = linear::forward(&p.q, x);
    let (k, _) = linear::forward(&p.k, x);
    let (v, _) = linear::forward(&p.v, x);
    kv.keys.row_mut(t).assign(&k.row(0));
    kv.values.row_mut(t).assign(&v.row(0));
    kv.len += 1;
    let (keys, values) = (kv.keys.slice(s![..=t, ..]), kv.values.slice(s![..=t, ..]));
    let mut out = Array2::<F>::zeros((1, d_model));
    for h in 0..heads {
        let cols = h * d_head..(h + 1) * d_head;
        // s_j = q·k_j/√Dh for j ≤ t, softmax, o = Σ_j p_j·v_j.
        let k_h = keys.slice(s![.., cols.clone()]);
        let scores: ndarray::Array1<F> = k_h.dot(&q.slice(s![0, cols.clone()]));
        let mut scores = scores.mapv(|s| s * scale).insert_axis(Axis(0));
        softmax_inplace(&mut scores);
        let o = scores.row(0).dot(&values.slice(s![.., cols.clone()]));
        out.slice_mut(s![0, cols]).assign(&o);
    }
    linear::forward(&p.o, out.view()).0
}
