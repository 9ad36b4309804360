//! Layer normalisation (Ba, Kiros & Hinton 2016), per token over the feature axis.
//!
//! ```text
//!   μ = mean(x),  σ² = mean((x − μ)²),  rstd = 1/√(σ² + eps)
//!   x̂ = (x − μ)·rstd,   y = γ ⊙ x̂ + β
//! ```
//! Shapes: x, y [n, d]; γ, β [d]; per row: μ, rstd scalars.
//!
//! Backward, per row, with dy = ∂L/∂y and mean() over the d features:
//! ```text
//!   dβ = Σ_rows dy,   dγ = Σ_rows dy ⊙ x̂           (γ, β were shared by every row)
//!   dx̂ = dy ⊙ γ
//!   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂))
//! ```
//! The last line is the chain rule through μ and σ² (both depend on every xⱼ of the row):
//! shifting all of x changes nothing (hence − mean(dx̂)), and scaling it changes nothing
//! (hence the − x̂·mean(dx̂ ⊙ x̂) term). Like llm.c, forward keeps exactly x̂'s
//! ingredients: here x̂ itself and rstd.

use crate::engine::params::{Named, NamedMut, Tensors};
use crate::engine::Float;
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

/// γ (gain) and β (bias), both [d]; eps is added to the variance (PyTorch default 1e-5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params<F> {
    pub gamma: Array1<F>,
    pub beta: Array1<F>,
    pub eps: f64,
}

/// ∂L/∂γ and ∂L/∂β.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<F> {
    pub dgamma: Array1<F>,
    pub dbeta: Array1<F>,
}

/// x̂ [n, d] and rstd [n].
#[derive(Debug, Clone)]
pub struct Cache<F> {
    xhat: Array2<F>,
    rstd: Array1<F>,
}

/// γ = 1, β = 0: the identity on normalised rows.
pub fn init<F: Float>(d: usize, eps: f64) -> Params<F> {
    Params { gamma: Array1::ones(d), beta: Array1::zeros(d), eps }
}

/// x [n, d] → y [n, d].
pub fn forward<F: Float>(p: &Params<F>, x: ArrayView2<F>) -> (Array2<F>, Cache<F>) {
    let (n, d) = x.dim();
    assert_eq!(d, p.gamma.len(), "layer_norm: x is [{n}, {d}], γ is [{}]", p.gamma.len());
    let inv_d = F::lit(1.0 / d as f64);
    let eps = F::lit(p.eps);
    let mut xhat = x.to_owned();
    let mut rstd = Array1::zeros(n);
    let mut y = Array2::zeros((n, d));
    Zip::from(xhat.rows_mut()).and(&mut rstd).and(y.rows_mut()).for_each(|mut row, rstd, mut y| {
        let mean = row.sum() * inv_d;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<F>() * inv_d;
        *rstd = F::one() / (var + eps).sqrt();
        let r = *rstd;
        row.mapv_inplace(|v| (v - mean) * r);
        Zip::from(&mut y).and(&row).and(&p.gamma).and(&p.beta).for_each(|y, &xh, &g, &b| *y = g * xh + b);
    });
    (y, Cache { xhat, rstd })
}

/// dy [n, d] → (dx [n, d], grads).
pub fn backward<F: Float>(p: &Params<F>, c: &Cache<F>, dy: ArrayView2<F>) -> (Array2<F>, Grads<F>) {
    assert_eq!(dy.dim(), c.xhat.dim(), "layer_norm: dy is {:?}, x was {:?}", dy.dim(), c.xhat.dim());
    let d = dy.ncols();
    let inv_d = F::lit(1.0 / d as f64);
    let dbeta = dy.sum_axis(Axis(0));
    let dgamma = (&dy * &c.xhat).sum_axis(Axis(0));
    let mut dx = Array2::zeros(dy.raw_dim());
    Zip::from(dx.rows_mut()).and(dy.rows()).and(c.xhat.rows()).and(&c.rstd).for_each(|mut dx, dy, xhat, &rstd| {
        // dx̂ = dy ⊙ γ, needed twice: as its mean and as its projection on x̂.
        let mut mean_dxhat = F::zero();
        let mut mean_dxhat_xhat = F::zero();
        for j in 0..d {
            let dxh = dy[j] * p.gamma[j];
            mean_dxhat += dxh;
            mean_dxhat_xhat += dxh * xhat[j];
        }
        mean_dxhat *= inv_d;
        mean_dxhat_xhat *= inv_d;
        for j in 0..d {
            let dxh = dy[j] * p.gamma[j];
            dx[j] = rstd * (dxh - mean_dxhat - xhat[j] * mean_dxhat_xhat);
        }
    });
    (dx, Grads { dgamma, dbeta })
}

impl<F: Float> Tensors<F> for Params<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("weight".into(), self.gamma.view().into_dyn()), ("bias".into(), self.beta.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("weight".into(), self.gamma.view_mut().into_dyn()), ("bias".into(), self.beta.view_mut().into_dyn())]
    }
}

impl<F: Float> Tensors<F> for Grads<F> {
    fn tensors(&self) -> Vec<Named<'_, F>> {
        vec![("weight".into(), self.dgamma.view().into_dyn()), ("bias".into(), self.dbeta.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>> {
        vec![("weight".into(), self.dgamma.view_mut().into_dyn()), ("bias".into(), self.dbeta.view_mut().into_dyn())]
    }
}
