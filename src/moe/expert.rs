//! An expert: the network a router sends tokens (or whole sequences) to.
//!
//! Two kinds behind one interface, each owning its parameters (so one expert can be saved,
//! loaded, frozen or added on its own — its tensors are named `experts.{e}.…`):
//!
//! ```text
//!   Mlp:    y = W₂·act(W₁·x + b₁) + b₂        row by row: x [n, d_in] → y [n, d_out]
//!   Stack:  y = blockₗ(… block₁(x))           pre-LN transformer blocks over whole sequences:
//!                                              x [batch·seq, d] → y [batch·seq, d], with masks
//! ```
//! An MLP expert looks at one row at a time, so a router may hand it any set of tokens.
//! A stack expert attends across positions, so it must receive whole sequences: `batch` and
//! `seq` say how the rows fold into sequences, and the key-padding mask travels with them.
//! An MLP expert ignores `batch`, `seq` and the mask (each row is independent).

use crate::engine::layers::attention::Mask;
use crate::engine::layers::transformer_block::{self as block};
use crate::engine::layers::{mlp, Activation, InputGrad, Mode};
use crate::engine::params::{list, list_mut, prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expert<F> {
    /// A row-wise MLP (E1, E6, the Switch-style feed-forward experts of E5 and the demo).
    Mlp(mlp::Params<F>),
    /// A stack of pre-LN transformer blocks (E2, E3, E4: each expert a small encoder).
    Stack(Vec<block::Params<F>>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Grads<F> {
    Mlp(mlp::Grads<F>),
    Stack(Vec<block::Grads<F>>),
}

#[derive(Debug, Clone)]
pub enum Cache<F> {
    Mlp(mlp::Cache<F>),
    Stack(Vec<block::Cache<F>>),
}

impl<F: Float> Expert<F> {
    /// An MLP expert with `sizes` = [d_in, hidden…, d_out] (He init).
    pub fn mlp(sizes: &[usize], act: Activation, dropout: f64, rng: &mut Rng) -> Self {
        Expert::Mlp(mlp::init(sizes, act, dropout, rng))
    }

    /// A stack of `layers` pre-LN blocks (GPT-2 init, std 0.02).
    pub fn stack(layers: usize, d_model: usize, n_heads: usize, d_ff: usize, dropout: f64, rng: &mut Rng) -> Self {
        Expert::Stack((0..layers).map(|_| block::init(d_model, n_heads, d_ff, dropout, 0.02, rng)).collect())
    }

    /// Whether the expert needs whole sequences (it attends across positions).
    pub fn needs_sequences(&self) -> bool {
        matches!(self, Expert::Stack(_))
    }

    /// (d_in, d_out).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Expert::Mlp(p) => (p.layers[0].w.nrows(), p.layers[p.layers.len() - 1].w.ncols()),
            Expert::Stack(blocks) => {
                let d = blocks.first().map_or(0, |b| b.ln1.gamma.len());
                (d, d)
            }
        }
    }
}

/// x [batch·seq, d_in] → y [batch·seq, d_out]. `batch`, `seq` and `mask` matter only to a
/// stack expert.
pub fn forward<F: Float>(
    p: &Expert<F>,
    x: ArrayView2<F>,
    batch: usize,
    seq: usize,
    mask: Mask,
    mode: &mut Mode,
) -> (Array2<F>, Cache<F>) {
    match p {
        Expert::Mlp(m) => {
            let (y, c) = mlp::forward(m, x, mode);
            (y, Cache::Mlp(c))
        }
        Expert::Stack(blocks) => {
            let (y, c) = block::forward_stack(blocks, x, batch, seq, mask, mode);
            (y, Cache::Stack(c))
        }
    }
}

/// dy [batch·seq, d_out] → (dx, grads).
pub fn backward<F: Float>(p: &Expert<F>, c: &Cache<F>, dy: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    match (p, c) {
        (Expert::Mlp(m), Cache::Mlp(c)) => {
            let (dx, g) = mlp::backward(m, c, dy, InputGrad::Need);
            (dx.expect("asked for dx"), Grads::Mlp(g))
        }
        (Expert::Stack(blocks), Cache::Stack(c)) => {
            let (dx, g) = block::backward_stack(blocks, c, dy);
            (dx, Grads::Stack(g))
        }
        _ => unreachable!("an expert's cache always comes from the same expert's forward"),
    }
}

/// Zero gradients shaped like `p`: what an expert that received no tokens contributes.
pub fn zero_grads<F: Float>(p: &Expert<F>) -> Grads<F> {
    let zero_linear = |l: &crate::engine::layers::linear::Params<F>| crate::engine::layers::linear::Grads {
        dw: Array2::zeros(l.w.raw_dim()),
        db: ndarray::Array1::zeros(l.b.raw_dim()),
    };
    let zero_mlp = |m: &mlp::Params<F>| mlp::Grads { layers: m.layers.iter().map(zero_linear).collect() };
    match p {
        Expert::Mlp(m) => Grads::Mlp(zero_mlp(m)),
        Expert::Stack(blocks) => Grads::Stack(
            blocks
                .iter()
                .map(|b| {
                    let zero_ln =
                        |l: &crate::engine::layers::layer_norm::Params<F>| crate::engine::layers::layer_norm::Grads {
                            dgamma: ndarray::Array1::zeros(l.gamma.raw_dim()),
                            dbeta: ndarray::Array1::zeros(l.beta.raw_dim()),
                        };
                    block::Grads {
                        ln1: zero_ln(&b.ln1),
                        attn: crate::engine::layers::attention::Grads {
                            q: zero_linear(&b.attn.q),
                            k: zero_linear(&b.attn.k),
                            v: zero_linear(&b.attn.v),
                            o: zero_linear(&b.attn.o),
                        },
                        ln2: zero_ln(&b.ln2),
                        mlp: zero_mlp(&b.mlp),
                    }
                })
                .collect(),
        ),
    }
}

impl<F: Float> Tensors<F> for Expert<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        match self {
            Expert::Mlp(m) => prefixed("mlp", m.tensors()),
            Expert::Stack(b) => list("blocks", b),
        }
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        match self {
            Expert::Mlp(m) => prefixed("mlp", m.tensors_mut()),
            Expert::Stack(b) => list_mut("blocks", b),
        }
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        match self {
            Grads::Mlp(m) => prefixed("mlp", m.tensors()),
            Grads::Stack(b) => list("blocks", b),
        }
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        match self {
            Grads::Mlp(m) => prefixed("mlp", m.tensors_mut()),
            Grads::Stack(b) => list_mut("blocks", b),
        }
    }
}
