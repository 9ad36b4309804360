//! Token + learned positional embedding.
//!
//! ```text
//!   y[b, t, :] = tok[ids[b, t], :] + pos[t, :]
//! ```
//! Shapes: ids [batch, seq] (token ids < vocab), tok [vocab, d_model], pos [max_seq, d_model],
//! y [batch, seq, d_model], seq ≤ max_seq.
//!
//! Backward is a scatter-add: each token's row of dy lands in the row of `tok` it was read
//! from (a token seen five times collects five contributions), and `pos` row t collects the
//! sum over the batch:
//! ```text
//!   dtok[v, :] = Σ_{(b,t): ids[b,t] = v} dy[b, t, :]       for v ≠ pad_id
//!   dpos[t, :] = Σ_b dy[b, t, :]
//! ```
//! The padding id's row receives no gradient and is initialised to zero (PyTorch's
//! `padding_idx`), so padding contributes only its position to the hidden state and
//! training never moves it.

use crate::engine::init::{self, Rng};
use crate::engine::params::{Named, NamedMut, Tensors};
use crate::engine::Float;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

/// tok [vocab, d_model], pos [max_seq, d_model].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub tok: Array2<F>,
    pub pos: Array2<F>,
}

/// ∂L/∂tok and ∂L/∂pos.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub dtok: Array2<F>,
    pub dpos: Array2<F>,
}

/// The ids read in forward, and which one is padding.
#[derive(Debug, Clone)]
pub struct Cache {
    ids: Array2<usize>,
    pad_id: Option<usize>,
}

/// N(0, std²) tables (GPT-2 uses std 0.02), with the padding row zeroed.
pub fn init<F: Float>(
    vocab: usize,
    max_seq: usize,
    d_model: usize,
    pad_id: Option<usize>,
    std: f64,
    rng: &mut Rng,
) -> Params<F> {
    let mut tok: Array2<F> = init::normal((vocab, d_model), std, rng);
    if let Some(pad) = pad_id {
        tok.row_mut(pad).fill(F::zero());
    }
    Params { tok, pos: init::normal((max_seq, d_model), std, rng) }
}

/// ids [batch, seq] → y [batch, seq, d_model]. Panics on an id ≥ vocab or seq > max_seq:
/// ids are validated where they enter (the data and CLI boundary), so here that is a bug.
pub fn forward<F: Float>(p: &Params<F>, ids: ArrayView2<usize>, pad_id: Option<usize>) -> (Array3<F>, Cache) {
    let (batch, seq) = ids.dim();
    let (vocab, d_model) = p.tok.dim();
    assert!(seq <= p.pos.nrows(), "embedding: seq {seq} > max_seq {}", p.pos.nrows());
    let mut y = Array3::zeros((batch, seq, d_model));
    for b in 0..batch {
        for t in 0..seq {
            let id = ids[[b, t]];
            assert!(id < vocab, "embedding: token id {id} ≥ vocab {vocab}");
            let mut row = y.slice_mut(s![b, t, ..]);
            row.assign(&p.tok.row(id));
            row += &p.pos.row(t);
        }
    }
    (y, Cache { ids: ids.to_owned(), pad_id })
}

/// dy [batch, seq, d_model] → grads (ids are not differentiable, so there is no dx).
pub fn backward<F: Float>(p: &Params<F>, c: &Cache, dy: ArrayView3<F>) -> Grads<F> {
    let (batch, seq, _) = dy.dim();
    assert_eq!((batch, seq), c.ids.dim(), "embedding: dy is {:?}, ids were {:?}", dy.dim(), c.ids.dim());
    let mut dtok = Array2::zeros(p.tok.raw_dim());
    let mut dpos = Array2::zeros(p.pos.raw_dim());
    for b in 0..batch {
        for t in 0..seq {
            let id = c.ids[[b, t]];
            if Some(id) != c.pad_id {
                let mut row = dtok.row_mut(id);
                row += &dy.slice(s![b, t, ..]);
            }
        }
    }
    // pos[t] was added to every sequence of the batch: its gradient sums over the batch.
    dpos.slice_mut(s![..seq, ..]).assign(&dy.sum_axis(Axis(0)));
    Grads { dtok, dpos }
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("tok".into(), self.tok.view().into_dyn()), ("pos".into(), self.pos.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("tok".into(), self.tok.view_mut().into_dyn()), ("pos".into(), self.pos.view_mut().into_dyn())]
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("tok".into(), self.dtok.view().into_dyn()), ("pos".into(), self.dpos.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("tok".into(), self.dtok.view_mut().into_dyn()), ("pos".into(), self.dpos.view_mut().into_dyn())]
    }
}
