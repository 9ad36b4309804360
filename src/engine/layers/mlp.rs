//! The multi-layer perceptron: Linear → act → dropout, repeated, then a final Linear.
//!
//! ```text
//!   h₀ = x
//!   hᵢ = dropout(act(hᵢ₋₁·Wᵢ + bᵢ))     for the hidden layers i = 1 … L−1
//!   y  = h_{L−1}·W_L + b_L              (no activation: logits, or a residual branch)
//! ```
//! `sizes = [d_in, d_hidden…, d_out]`. With `sizes = [d_model, d_ff, d_model]` this is the
//! transformer's feed-forward block; with `[784, 128, 128, 10]` it is E1's MNIST expert;
//! in an MoE it is "an expert". One piece of code for all three.
//!
//! Backward walks the layers in reverse, each layer's backward in turn:
//! dropout (same mask), activation (act'(pre-activation)), linear (dx = dy·Wᵀ, dW = hᵀ·dy).
//! Shapes: x [n, d_in], y [n, d_out].

use crate::engine::init::Rng;
use crate::engine::layers::{activation, dropout, linear, Activation, Mode};
use crate::engine::params::{list, list_mut, Named, NamedMut, Tensors};
use crate::engine::Float;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The linear layers, plus the hidden activation and dropout probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub layers: Vec<linear::Params<F>>,
    pub act: Activation,
    pub dropout: f64,
}

/// One `linear::Grads` per layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub layers: Vec<linear::Grads<F>>,
}

/// Per hidden layer: its linear, activation and dropout caches; then the last linear's.
#[derive(Debug, Clone)]
pub struct Cache<F> {
    hidden: Vec<(linear::Cache<F>, activation::Cache<F>, dropout::Cache<F>)>,
    last: linear::Cache<F>,
}

/// Does the caller need ∂L/∂x? Not when x is the data itself: skipping it saves the
/// first layer's dy·Wᵀ GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputGrad {
    Need,
    Skip,
}

/// He-normal weights (std √(2/fan_in)) and zero biases for every layer, as PyTorch
/// references in `anchors/` do. Panics if fewer than two sizes are given.
pub fn init<F: Float>(sizes: &[usize], act: Activation, dropout: f64, rng: &mut Rng) -> Params<F> {
    assert!(sizes.len() >= 2, "mlp: need at least [d_in, d_out], got {sizes:?}");
    let layers = sizes.windows(2).map(|w| linear::init_he(w[0], w[1], rng)).collect();
    Params { layers, act, dropout }
}

/// x [n, d_in] → y [n, d_out].
pub fn forward<F: Float>(p: &Params<F>, x: ArrayView2<F>, mode: &mut Mode) -> (Array2<F>, Cache<F>) {
    let (last_layer, hidden_layers) = p.layers.split_last().expect("an MLP has at least one layer");
    let mut hidden = Vec::with_capacity(hidden_layers.len());
    let mut h = x.to_owned();
    for layer in hidden_layers {
        let (z, lin) = linear::forward(layer, h.view());
        let (a, act) = activation::forward(p.act, z.view());
        let (d, drop) = dropout::forward(a.view(), p.dropout, mode);
        hidden.push((lin, act, drop));
        h = d;
    }
    let (y, last) = linear::forward(last_layer, h.view());
    (y, Cache { hidden, last })
}

/// dy [n, d_out] → (dx [n, d_in] if asked for, grads).
pub fn backward<F: Float>(
    p: &Params<F>,
    c: &Cache<F>,
    dy: ArrayView2<F>,
    input_grad: InputGrad,
) -> (Option<Array2<F>>, Grads<F>) {
    let n_layers = p.layers.len();
    let mut grads = Vec::with_capacity(n_layers);
    // The last linear first; then, in reverse, dropout → activation → linear.
    let (mut dh, g) = linear::backward(&p.layers[n_layers - 1], &c.last, dy);
    grads.push(g);
    for (i, (lin, act, drop)) in c.hidden.iter().enumerate().rev() {
        let da = dropout::backward(drop, dh.view());
        let dz = activation::backward(p.act, act, da.view());
        if i == 0 && input_grad == InputGrad::Skip {
            grads.push(linear::backward_params(lin, dz.view()));
            grads.reverse();
            return (None, Grads { layers: grads });
        }
        let (dx, g) = linear::backward(&p.layers[i], lin, dz.view());
        grads.push(g);
        dh = dx;
    }
    grads.reverse();
    (Some(dh), Grads { layers: grads })
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        list("layers", &self.layers)
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        list_mut("layers", &mut self.layers)
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        list("layers", &self.layers)
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        list_mut("layers", &mut self.layers)
    }
}
