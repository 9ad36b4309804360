//! Linear layer: y = x·W + b.
//!
//! Shapes: x [n, d_in], W [d_in, d_out], b [d_out], y [n, d_out], where n is the number of
//! rows: a batch of samples, or batch·seq tokens folded into one axis by the caller
//! (`x.into_shape((batch * seq, d_model))` is a free view), so one big GEMM runs instead of
//! batch·seq small ones.
//!
//! Backward, with dy = ∂L/∂y [n, d_out]:
//! ```text
//!   dx = dy · Wᵀ     [n, d_in]         (yᵣ depends on xᵣ through W)
//!   dW = xᵀ · dy     [d_in, d_out]     (sum over rows of the outer products xᵣᵀ dyᵣ)
//!   db = Σ_rows dy   [d_out]           (b was broadcast over rows, so its gradient sums them)
//! ```
//! W is stored [d_in, d_out] (NumPy style), so forward is a plain x·W. PyTorch stores
//! [d_out, d_in]; io/ transposes once at that boundary, never here.
//!
//! ```
//! use ndarray::array;
//! use tinymoe::engine::layers::linear;
//! // y = x·W + b with x = [1, 2], W = [[1, 0], [2, 1]], b = [0.5, 0]: y = [1 + 4 + 0.5, 0 + 2] = [5.5, 2]
//! let p = linear::Params { w: array![[1.0, 0.0], [2.0, 1.0]], b: array![0.5, 0.0] };
//! let (y, cache) = linear::forward(&p, array![[1.0, 2.0]].view());
//! assert_eq!(y, array![[5.5, 2.0]]);
//! // dy = [1, 1]: dx = dy·Wᵀ = [1 + 0, 2 + 1] = [1, 3], dW = xᵀ·dy = [[1, 1], [2, 2]], db = dy
//! let (dx, g) = linear::backward(&p, &cache, array![[1.0, 1.0]].view());
//! assert_eq!(dx, array![[1.0, 3.0]]);
//! assert_eq!(g.dw, array![[1.0, 1.0], [2.0, 2.0]]);
//! assert_eq!(g.db, array![1.0, 1.0]);
//! ```

use crate::engine::init::{self, Rng};
use crate::engine::ops::matmul::{gemm_into, matmul};
use crate::engine::params::{Named, NamedMut, Tensors};
use crate::engine::Float;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// W [d_in, d_out] and b [d_out].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub w: Array2<F>,
    pub b: Array1<F>,
}

/// ∂L/∂W and ∂L/∂b, shaped like the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub dw: Array2<F>,
    pub db: Array1<F>,
}

/// What backward needs from forward: the input x [n, d_in].
#[derive(Debug, Clone)]
pub struct Cache<F> {
    x: Array2<F>,
}

impl<F: Float> Cache<F> {
    /// The input x the layer saw.
    pub fn input(&self) -> ArrayView2<'_, F> {
        self.x.view()
    }
}

/// He-normal W (for a layer followed by ReLU), zero b.
pub fn init_he<F: Float>(d_in: usize, d_out: usize, rng: &mut Rng) -> Params<F> {
    Params { w: init::he_normal(d_in, d_out, rng), b: Array1::zeros(d_out) }
}

/// Xavier/Glorot-uniform W (for a layer followed by softmax, tanh or nothing), zero b.
pub fn init_xavier<F: Float>(d_in: usize, d_out: usize, rng: &mut Rng) -> Params<F> {
    Params { w: init::xavier_uniform(d_in, d_out, rng), b: Array1::zeros(d_out) }
}

/// N(0, std²) W, zero b (GPT-2 style, std = 0.02).
pub fn init_normal<F: Float>(d_in: usize, d_out: usize, std: f64, rng: &mut Rng) -> Params<F> {
    Params { w: init::normal((d_in, d_out), std, rng), b: Array1::zeros(d_out) }
}

/// x [n, d_in] → y [n, d_out]. Panics if x's width is not W's d_in (a bug in the caller).
pub fn forward<F: Float>(p: &Params<F>, x: ArrayView2<F>) -> (Array2<F>, Cache<F>) {
    let (n, d_in) = x.dim();
    assert_eq!(d_in, p.w.nrows(), "linear: x is [{n}, {d_in}], W is {:?}", p.w.dim());
    // y starts as b on every row; GEMM with β = 1 then adds x·W on top, in one pass.
    let mut y = p.b.broadcast((n, p.w.ncols())).expect("b is [d_out]").to_owned();
    gemm_into(x, p.w.view(), F::one(), y.view_mut());
    (y, Cache { x: x.to_owned() })
}

/// dy [n, d_out] → (dx [n, d_in], grads), using the cache of the same forward.
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>, dy: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    let dx = matmul(dy, p.w.t()); // .t() is a strided view: no transpose is copied
    (dx, backward_params(c, dy))
}

/// Only the parameter gradients: for a first layer, whose input (the data) needs no
/// gradient. Skips the dy·Wᵀ GEMM, a third of the layer's backward work.
pub fn backward_params<F: Float>(c: &Cache<F>, dy: ArrayView2<F>) -> Grads<F> {
    assert_eq!(dy.nrows(), c.x.nrows(), "linear: dy has {} rows, the forward input had {}", dy.nrows(), c.x.nrows());
    let dw = matmul(c.x.t(), dy);
    let db = dy.sum_axis(Axis(0));
    Grads { dw, db }
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("w".into(), self.w.view().into_dyn()), ("b".into(), self.b.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("w".into(), self.w.view_mut().into_dyn()), ("b".into(), self.b.view_mut().into_dyn())]
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("w".into(), self.dw.view().into_dyn()), ("b".into(), self.db.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("w".into(), self.dw.view_mut().into_dyn()), ("b".into(), self.db.view_mut().into_dyn())]
    }
}
