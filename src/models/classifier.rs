//! Classifiers over feature vectors: a plain MLP, or a dense soft mixture of MLP experts.
//!
//! ```text
//!   logits = net(x)                       x [batch, d_in], logits [batch, classes]
//!   L      = cross_entropy(logits, y)     mean over the batch
//! ```
//! [`train_step`] is one forward and one backward pass: it returns the loss and
//! ∂L/∂(every parameter). The input is data, so its gradient is skipped
//! ([`InputGrad::Skip`]).

use crate::engine::layers::{mlp, Activation, InputGrad, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::params::{Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use crate::moe::mixture;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// A classifier's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Classifier<F> {
    Mlp(mlp::Params<F>),
    Moe(mixture::Params<F>),
}

/// Its gradients, the same variant as the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Grads<F> {
    Mlp(mlp::Grads<F>),
    Moe(mixture::Grads<F>),
}

/// What one training step produced.
#[derive(Debug, Clone)]
pub struct Step<F> {
    pub loss: F,
    pub accuracy: f64,
    pub grads: Grads<F>,
}

/// An MLP classifier `d_in → hidden… → classes` (ReLU, dropout), He-initialised.
pub fn init_mlp<F: Float>(d_in: usize, hidden: &[usize], classes: usize, dropout: f64, rng: &mut Rng) -> Classifier<F> {
    let sizes: Vec<usize> =
        std::iter::once(d_in).chain(hidden.iter().copied()).chain(std::iter::once(classes)).collect();
    Classifier::Mlp(mlp::init(&sizes, Activation::Relu, dropout, rng))
}

/// A dense MoE classifier: `n_experts` experts `d_in → hidden… → classes` and a gate
/// `d_in → gate_hidden… → n_experts`, softmax-mixed.
pub fn init_moe<F: Float>(
    d_in: usize,
    hidden: &[usize],
    classes: usize,
    gate_hidden: &[usize],
    n_experts: usize,
    dropout: f64,
    rng: &mut Rng,
) -> Classifier<F> {
    let expert: Vec<usize> =
        std::iter::once(d_in).chain(hidden.iter().copied()).chain(std::iter::once(classes)).collect();
    let gate: Vec<usize> = std::iter::once(d_in).chain(gate_hidden.iter().copied()).collect();
    Classifier::Moe(mixture::init(&expert, &gate, n_experts, Activation::Relu, dropout, rng))
}

/// Forward (training mode, dropout on), cross-entropy, backward: loss and every gradient.
pub fn train_step<F: Float>(model: &Classifier<F>, x: ArrayView2<F>, y: &[usize], rng: &mut Rng) -> Step<F> {
    let mut mode = Mode::Train(rng);
    match model {
        Classifier::Mlp(p) => {
            let (logits, cache) = mlp::forward(p, x, &mut mode);
            let (loss, ce) = cross_entropy::forward(logits.view(), y, None);
            let (_, g) = mlp::backward(p, &cache, cross_entropy::backward(&ce).view(), InputGrad::Skip);
            Step { loss, accuracy: cross_entropy::accuracy(logits.view(), y, None), grads: Grads::Mlp(g) }
        }
        Classifier::Moe(p) => {
            let (logits, cache) = mixture::forward(p, x, &mut mode);
            let (loss, ce) = cross_entropy::forward(logits.view(), y, None);
            let (_, g) = mixture::backward(p, &cache, cross_entropy::backward(&ce).view(), InputGrad::Skip);
            Step { loss, accuracy: cross_entropy::accuracy(logits.view(), y, None), grads: Grads::Moe(g) }
        }
    }
}

/// Evaluation-mode logits [batch, classes] (dropout off).
pub fn logits<F: Float>(model: &Classifier<F>, x: ArrayView2<F>) -> Array2<F> {
    match model {
        Classifier::Mlp(p) => mlp::forward(p, x, &mut Mode::Eval).0,
        Classifier::Moe(p) => mixture::forward(p, x, &mut Mode::Eval).0,
    }
}

/// Evaluation-mode gate probabilities [batch, n_experts], for an MoE; `None` for an MLP.
pub fn gates<F: Float>(model: &Classifier<F>, x: ArrayView2<F>) -> Option<Array2<F>> {
    match model {
        Classifier::Mlp(_) => None,
        Classifier::Moe(p) => Some(mixture::forward(p, x, &mut Mode::Eval).1.gates().clone()),
    }
}

/// Evaluation-mode logits [batch, classes] and gates [batch, n_experts] of an MoE, with the
/// experts marked in `off` switched off (their gate 0, the others renormalised; see
/// [`mixture::forward_with_off`]); `None` for an MLP.
pub fn moe_eval<F: Float>(
    model: &Classifier<F>,
    x: ArrayView2<F>,
    off: Option<&[bool]>,
) -> Option<(Array2<F>, Array2<F>)> {
    match model {
        Classifier::Mlp(_) => None,
        Classifier::Moe(p) => {
            let (logits, cache) = mixture::forward_with_off(p, x, off, &mut Mode::Eval);
            Some((logits, cache.gates().clone()))
        }
    }
}

/// Mean loss and accuracy in evaluation mode, over batches of `batch` rows.
pub fn evaluate<F: Float>(model: &Classifier<F>, x: ArrayView2<F>, y: &[usize], batch: usize) -> (f64, f64) {
    let n = x.nrows();
    let (mut loss, mut hits) = (0.0, 0.0);
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let xb = x.slice(ndarray::s![start..end, ..]);
        let out = logits(model, xb);
        let (l, _) = cross_entropy::forward(out.view(), &y[start..end], None);
        let rows = (end - start) as f64;
        loss += l.to_f64().unwrap_or(f64::NAN) * rows;
        hits += cross_entropy::accuracy(out.view(), &y[start..end], None) * rows;
    }
    (loss / n.max(1) as f64, hits / n.max(1) as f64)
}

impl<F: Float> Tensors<F> for Classifier<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        match self {
            Classifier::Mlp(p) => p.tensors(),
            Classifier::Moe(p) => p.tensors(),
        }
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        match self {
            Classifier::Mlp(p) => p.tensors_mut(),
            Classifier::Moe(p) => p.tensors_mut(),
        }
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        match self {
            Grads::Mlp(g) => g.tensors(),
            Grads::Moe(g) => g.tensors(),
        }
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        match self {
            Grads::Mlp(g) => g.tensors_mut(),
            Grads::Moe(g) => g.tensors_mut(),
        }
    }
}

impl<F: Float> Classifier<F> {
    /// (d_in, classes): the input width and the number of output logits.
    pub fn dims(&self) -> (usize, usize) {
        let layers = match self {
            Classifier::Mlp(p) => &p.layers,
            Classifier::Moe(p) => &p.experts[0].layers,
        };
        let first = layers.first().expect("an MLP has at least one layer");
        let last = layers.last().expect("an MLP has at least one layer");
        (first.w.nrows(), last.w.ncols())
    }
}
