//! The router (gate): reads a token's (or a sequence's pooled) hidden state and scores every
//! expert.
//!
//! ```text
//!   linear gate:        z = x·W + b                          x [m, d] → z [m, E]
//!   feed-forward gate:  z = relu(x·W₁ + b₁)·W₂ + b₂           (Linear → ReLU → Linear)
//!   noisy (optional):   h = z + ε ⊙ softplus(x·W_noise + b_noise),  ε ~ N(0, 1)   training only
//! ```
//! The softmax over E that turns z into routing probabilities lives in [`crate::moe::routing`],
//! with the top-k choice, because the two are differentiated together.
//!
//! Noisy gating is Shazeer et al. 2017 ("Outrageously Large Neural Networks", eq. 4): a
//! learned, per-expert amount of Gaussian noise lets top-k routing explore experts it would
//! otherwise never pick. W_noise starts at zero (so the noise std starts at softplus(0) =
//! ln 2 ≈ 0.69) and learns how much noise helps. At evaluation there is no noise.
//!
//! Backward of the noise path, with dh = ∂L/∂h: the clean logits get dz = dh, and
//! ```text
//!   u = x·W_noise + b_noise,  s = softplus(u),  h = z + ε ⊙ s
//!   du = dh ⊙ ε ⊙ sigmoid(u)          (softplus' = sigmoid)
//! ```
//! then the usual linear backward for W_noise, b_noise and x.
//!
//! Init: the hidden layer He-normal (it feeds a ReLU), the output layer N(0, 0.02²) so every
//! expert starts almost equally likely — the scheme of the PyTorch reference `anchors/torch_ref.py`.

use crate::engine::init;
use crate::engine::layers::{linear, mlp, Activation, InputGrad, Mode};
use crate::engine::params::{prefixed, Named, NamedMut, Tensors};
use crate::engine::{Float, Rng};
use ndarray::{Array1, Array2, ArrayView2, Zip};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    /// [d, E] (linear gate) or [d, hidden, E] with ReLU (feed-forward gate).
    pub net: mlp::Params<F>,
    /// W_noise [d, E] and b_noise [E] when gating is noisy.
    pub noise: Option<linear::Params<F>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub net: mlp::Grads<F>,
    pub noise: Option<linear::Grads<F>>,
}

#[derive(Debug, Clone)]
pub struct Cache<F> {
    net: mlp::Cache<F>,
    /// The noise layer's cache, u [m, E] and ε [m, E], when noise was drawn.
    noise: Option<(linear::Cache<F>, Array2<F>, Array2<F>)>,
}

/// A router over `n_experts` experts reading `d_in` features; `hidden` = Some(h) makes it the
/// 2-layer feed-forward gate, None the linear gate.
pub fn init<F: Float>(d_in: usize, hidden: Option<usize>, n_experts: usize, noisy: bool, rng: &mut Rng) -> Params<F> {
    let sizes: Vec<usize> = match hidden {
        Some(h) => vec![d_in, h, n_experts],
        None => vec![d_in, n_experts],
    };
    let mut net = mlp::init(&sizes, Activation::Relu, 0.0, rng);
    if let Some(last) = net.layers.last_mut() {
        last.w = init::normal(last.w.raw_dim(), 0.02, rng);
    }
    let noise = noisy.then(|| linear::Params { w: Array2::zeros((d_in, n_experts)), b: Array1::zeros(n_experts) });
    Params { net, noise }
}

impl<F: Float> Params<F> {
    pub fn n_experts(&self) -> usize {
        self.net.layers.last().map_or(0, |l| l.w.ncols())
    }
    pub fn d_in(&self) -> usize {
        self.net.layers.first().map_or(0, |l| l.w.nrows())
    }
}

fn softplus<F: Float>(u: F) -> F {
    // ln(1 + eᵘ), stable for large |u|.
    if u > F::lit(20.0) {
        u
    } else {
        u.exp().ln_1p()
    }
}

fn sigmoid<F: Float>(u: F) -> F {
    F::one() / (F::one() + (-u).exp())
}

/// x [m, d] → (clean logits z [m, E], the logits routing uses h [m, E], cache).
/// h = z unless the router is noisy and `mode` is training.
pub fn forward<F: Float>(p: &Params<F>, x: ArrayView2<F>, mode: &mut Mode) -> (Array2<F>, Array2<F>, Cache<F>) {
    let (z, net) = mlp::forward(&p.net, x, &mut Mode::Eval);
    match (&p.noise, mode) {
        (Some(noise), Mode::Train(rng)) => {
            let (u, lin) = linear::forward(noise, x);
            let eps = Array2::from_shape_simple_fn(z.raw_dim(), || {
                let v: f64 = StandardNormal.sample(&mut **rng);
                F::lit(v)
            });
            let mut h = z.clone();
            Zip::from(&mut h).and(&eps).and(&u).for_each(|h, &e, &u| *h += e * softplus(u));
            (z, h, Cache { net, noise: Some((lin, u, eps)) })
        }
        _ => {
            let h = z.clone();
            (z, h, Cache { net, noise: None })
        }
    }
}

/// dz = ∂L/∂z (clean logits, e.g. from the router losses) and dh = ∂L/∂h (through the
/// routing) → (dx [m, d], grads). The clean logits feed h too, so the net sees dz + dh.
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>, dz: ArrayView2<F>, dh: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    let dnet = &dz + &dh;
    let (dx, net) = mlp::backward(&p.net, &c.net, dnet.view(), InputGrad::Need);
    let mut dx = dx.expect("asked for dx");
    let noise = match (&p.noise, &c.noise) {
        (Some(noise), Some((lin, u, eps))) => {
            let mut du = dh.to_owned();
            Zip::from(&mut du).and(eps).and(u).for_each(|d, &e, &u| *d = *d * e * sigmoid(u));
            let (dx_noise, g) = linear::backward(noise, lin, du.view());
            dx += &dx_noise;
            Some(g)
        }
        (Some(noise), None) => {
            // No noise was drawn (evaluation): W_noise did not take part.
            Some(linear::Grads { dw: Array2::zeros(noise.w.raw_dim()), db: Array1::zeros(noise.b.raw_dim()) })
        }
        _ => None,
    };
    (dx, Grads { net, noise })
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("net", self.net.tensors());
        if let Some(n) = &self.noise {
            t.extend(prefixed("noise", n.tensors()));
        }
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("net", self.net.tensors_mut());
        if let Some(n) = &mut self.noise {
            t.extend(prefixed("noise", n.tensors_mut()));
        }
        t
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        let mut t = prefixed("net", self.net.tensors());
        if let Some(n) = &self.noise {
            t.extend(prefixed("noise", n.tensors()));
        }
        t
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        let mut t = prefixed("net", self.net.tensors_mut());
        if let Some(n) = &mut self.noise {
            t.extend(prefixed("noise", n.tensors_mut()));
        }
        t
    }
}
