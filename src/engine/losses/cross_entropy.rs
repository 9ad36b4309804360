//! Cross-entropy over logits, with the fused softmax-CE gradient.
//!
//! For rows r with a real target tᵣ (rows whose target is the ignored id are padding):
//! ```text
//!   pᵣ = softmax(zᵣ)
//!   L  = (1/N) Σ_r −log pᵣ[tᵣ] = (1/N) Σ_r (logsumexp(zᵣ) − zᵣ[tᵣ])      N = number of real rows
//!   ∂L/∂zᵣ = (pᵣ − onehot(tᵣ)) / N,    and 0 for ignored rows
//! ```
//! The fused gradient skips the softmax Jacobian entirely: chaining log-softmax's backward
//! (dx = dy − p·Σdy) with the NLL's dy = −onehot/N collapses to p − onehot, divided by N.
//! [`forward_unfused`] computes the same loss the long way (log_softmax, then pick) as a
//! readable reference; tests compare the two.
//!
//! Shapes: logits [n, classes], targets [n] (each < classes or the ignored id).
//! A batch with no real targets has loss 0 and zero gradient, not NaN.
//!
//! ```
//! use ndarray::array;
//! use tinymoe::engine::losses::cross_entropy;
//! // Equal logits over 4 classes: p = ¼ each, L = ln 4, dlogits = p − onehot = [−¾, ¼, ¼, ¼].
//! // The second row's target is the ignored id 9: it counts neither in L nor in N.
//! let logits = array![[0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 0.0, 1.0f64]];
//! let (loss, cache) = cross_entropy::forward(logits.view(), &[0, 9], Some(9));
//! assert!((loss - 4.0f64.ln()).abs() < 1e-15);
//! let d = cross_entropy::backward(&cache);
//! assert_eq!(d, array![[-0.75, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]]);
//! ```

use crate::engine::ops::softmax::log_softmax;
use crate::engine::Float;
use ndarray::{Array2, ArrayView2, Axis, Zip};

/// The softmax probabilities and the targets, from which the gradient is p − onehot.
#[derive(Debug, Clone)]
pub struct Cache<F> {
    probs: Array2<F>,
    targets: Vec<usize>,
    ignore: Option<usize>,
    n_real: usize,
}

impl<F: Float> Cache<F> {
    /// softmax(logits) [n, classes], e.g. for accuracy or confidence plots.
    pub fn probs(&self) -> &Array2<F> {
        &self.probs
    }
    /// Number of rows that counted (targets ≠ the ignored id).
    pub fn n_real(&self) -> usize {
        self.n_real
    }
}

fn is_real(t: usize, ignore: Option<usize>) -> bool {
    Some(t) != ignore
}

/// Mean cross-entropy over the rows whose target is not `ignore`.
///
/// One pass per row computes e = exp(z − max) once and derives both the probabilities
/// (e / Σe) and the row's loss (log Σe + max − z[t] = logsumexp − z[t]). Rows are
/// independent, so they run in parallel; the per-row losses are summed in row order.
pub fn forward<F: Float>(logits: ArrayView2<F>, targets: &[usize], ignore: Option<usize>) -> (F, Cache<F>) {
    let (n, classes) = logits.dim();
    assert_eq!(targets.len(), n, "cross_entropy: {n} rows of logits, {} targets", targets.len());
    let mut probs = Array2::zeros((n, classes));
    let mut row_loss = ndarray::Array1::<F>::zeros(n);
    Zip::from(probs.rows_mut()).and(logits.rows()).and(targets).and(&mut row_loss).par_for_each(
        |mut p, z, &t, loss| {
            let max = z.fold(F::neg_infinity(), |m, &v| m.max(v));
            let mut sum = F::zero();
            Zip::from(&mut p).and(&z).for_each(|p, &z| {
                *p = (z - max).exp();
                sum += *p;
            });
            let inv = F::one() / sum;
            p.mapv_inplace(|v| v * inv);
            if is_real(t, ignore) {
                assert!(t < classes, "cross_entropy: target {t} ≥ classes {classes}");
                *loss = sum.ln() + max - z[t];
            }
        },
    );
    let n_real = targets.iter().filter(|&&t| is_real(t, ignore)).count();
    let total: F = row_loss.iter().copied().sum();
    let loss = if n_real == 0 { F::zero() } else { total / F::lit(n_real as f64) };
    (loss, Cache { probs, targets: targets.to_vec(), ignore, n_real })
}

/// ∂L/∂logits [n, classes] = (p − onehot(t)) / N on real rows, 0 on ignored rows.
pub fn backward<F: Float>(c: &Cache<F>) -> Array2<F> {
    let mut dlogits = Array2::zeros(c.probs.raw_dim());
    let scale = if c.n_real == 0 { F::zero() } else { F::one() / F::lit(c.n_real as f64) };
    Zip::from(dlogits.rows_mut()).and(c.probs.rows()).and(&c.targets).par_for_each(|mut d, p, &t| {
        if is_real(t, c.ignore) {
            Zip::from(&mut d).and(&p).for_each(|d, &p| *d = p * scale);
            d[t] -= scale;
        }
    });
    dlogits
}

/// The same loss the long way: log_softmax over each row, then −mean of the target entries.
pub fn forward_unfused<F: Float>(logits: ArrayView2<F>, targets: &[usize], ignore: Option<usize>) -> F {
    let logp = log_softmax(logits);
    let mut total = F::zero();
    let mut n_real = 0;
    for (row, &t) in logp.axis_iter(Axis(0)).zip(targets) {
        if is_real(t, ignore) {
            total -= row[t];
            n_real += 1;
        }
    }
    if n_real == 0 {
        F::zero()
    } else {
        total / F::lit(n_real as f64)
    }
}

/// Share of real rows whose arg-max logit is the target.
pub fn accuracy<F: Float>(logits: ArrayView2<F>, targets: &[usize], ignore: Option<usize>) -> f64 {
    let mut hit = 0usize;
    let mut n_real = 0usize;
    for (row, &t) in logits.axis_iter(Axis(0)).zip(targets) {
        if is_real(t, ignore) {
            n_real += 1;
            if argmax(row) == t {
                hit += 1;
            }
        }
    }
    if n_real == 0 {
        0.0
    } else {
        hit as f64 / n_real as f64
    }
}

/// Index of the largest entry (the first, on ties).
pub fn argmax<F: Float>(row: ndarray::ArrayView1<F>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
