//! Softmax and log-softmax over the last axis, numerically stable, with their backward.
//!
//! ```text
//!   softmax(x)ᵢ     = exp(xᵢ − m) / Σⱼ exp(xⱼ − m)          m = maxⱼ xⱼ
//!   log_softmax(x)ᵢ = xᵢ − m − log Σⱼ exp(xⱼ − m)
//! ```
//! Subtracting the row max changes nothing mathematically (it cancels between numerator and
//! denominator) but keeps every exp() ≤ 1, so logits of 1000 do not overflow to inf.
//!
//! Backward, per row, with y the forward output and dy = ∂L/∂y:
//! ```text
//!   softmax:      ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ)   ⇒  dxⱼ = yⱼ · (dyⱼ − Σᵢ dyᵢ yᵢ)
//!   log_softmax:  ∂yᵢ/∂xⱼ = δᵢⱼ − softmaxⱼ ⇒  dxⱼ = dyⱼ − softmaxⱼ · Σᵢ dyᵢ
//! ```
//! Shapes: x, y, dy, dx are all [rows, n]; each row is independent.
//!
//! ```
//! use ndarray::array;
//! use tinymoe::engine::ops::softmax::{softmax, log_softmax};
//! // softmax([0, ln 3]) = [1, 3] / 4; and a shift by 1000 changes nothing (no overflow).
//! let y = softmax(array![[1000.0, 1000.0 + 3.0f64.ln()]].view());
//! assert!((y[[0, 0]] - 0.25).abs() < 1e-12 && (y[[0, 1]] - 0.75).abs() < 1e-12);
//! let l = log_softmax(array![[0.0, 0.0f64]].view());
//! assert!((l[[0, 0]] + 2.0f64.ln()).abs() < 1e-15);
//! ```

use crate::engine::Float;
use ndarray::{Array2, ArrayView2, Axis, Zip};

/// softmax over each row of x [rows, n] → y [rows, n], every row summing to 1.
pub fn softmax<F: Float>(x: ArrayView2<F>) -> Array2<F> {
    let mut y = x.to_owned();
    softmax_inplace(&mut y);
    y
}

/// Softmax of each row, in place.
pub fn softmax_inplace<F: Float>(x: &mut Array2<F>) {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let max = row.fold(F::neg_infinity(), |m, &v| m.max(v));
        // A row of all −inf (every entry masked) would give exp(NaN); such a row has no
        // meaningful distribution, so it is defined here as all zeros.
        if max == F::neg_infinity() {
            row.fill(F::zero());
            continue;
        }
        let mut sum = F::zero();
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = F::one() / sum;
        row.mapv_inplace(|v| v * inv);
    }
}

/// dx [rows, n] from the softmax output y and dy, both [rows, n].
pub fn softmax_backward<F: Float>(y: ArrayView2<F>, dy: ArrayView2<F>) -> Array2<F> {
    assert_eq!(y.dim(), dy.dim(), "softmax backward: y is {:?}, dy is {:?}", y.dim(), dy.dim());
    let mut dx = Array2::zeros(y.raw_dim());
    Zip::from(dx.rows_mut()).and(y.rows()).and(dy.rows()).for_each(|mut dx, y, dy| {
        let dot: F = y.iter().zip(dy.iter()).map(|(&a, &b)| a * b).sum();
        Zip::from(&mut dx).and(&y).and(&dy).for_each(|dx, &y, &dy| *dx = y * (dy - dot));
    });
    dx
}

/// log_softmax over each row of x [rows, n] → y [rows, n].
pub fn log_softmax<F: Float>(x: ArrayView2<F>) -> Array2<F> {
    let mut y = x.to_owned();
    for mut row in y.axis_iter_mut(Axis(0)) {
        let lse = logsumexp(row.view());
        row.mapv_inplace(|v| v - lse);
    }
    y
}

/// dx [rows, n] from the log-softmax output y and dy: dx = dy − exp(y) · Σ dy.
pub fn log_softmax_backward<F: Float>(y: ArrayView2<F>, dy: ArrayView2<F>) -> Array2<F> {
    assert_eq!(y.dim(), dy.dim(), "log_softmax backward: y is {:?}, dy is {:?}", y.dim(), dy.dim());
    let mut dx = Array2::zeros(y.raw_dim());
    Zip::from(dx.rows_mut()).and(y.rows()).and(dy.rows()).for_each(|mut dx, y, dy| {
        let sum_dy: F = dy.sum();
        // exp(log_softmax) is the softmax itself.
        Zip::from(&mut dx).and(&y).and(&dy).for_each(|dx, &y, &dy| *dx = dy - y.exp() * sum_dy);
    });
    dx
}

/// log Σⱼ exp(xⱼ) of one row, stable: m + log Σⱼ exp(xⱼ − m).
pub fn logsumexp<F: Float>(row: ndarray::ArrayView1<F>) -> F {
    let max = row.fold(F::neg_infinity(), |m, &v| m.max(v));
    if max == F::neg_infinity() {
        return max;
    }
    let sum: F = row.iter().map(|&v| (v - max).exp()).sum();
    max + sum.ln()
}
