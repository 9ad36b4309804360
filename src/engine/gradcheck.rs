//! The gradient checker: every hand-written backward pass is compared with central finite
//! differences in f64.
//!
//! For a scalar loss L(θ) and one coordinate θᵢ:
//!
//! ```text
//!   ∂L/∂θᵢ ≈ (L(θ + ε·eᵢ) − L(θ − ε·eᵢ)) / 2ε        error O(ε²)
//! ```
//!
//! and the agreement is measured by the relative error
//! `|a − n| / max(|a| + |n|, 1e-8)` (a = analytic, n = numeric). In f64 with ε = 1e-5 a
//! correct backward agrees to about 1e-8…1e-10; a wrong one (a missing term, a transposed
//! matrix) is off by 1e-2 or more, so the tests hold every layer to 1e-6.
//!
//! The loss to differentiate is usually `L = Σ y ⊙ r` for a fixed random `r`, so that
//! ∂L/∂y = r: with `L = Σ y` the upstream gradient would be all ones, and a transposed or
//! permuted gradient could still pass.
//!
//! Choosing eps: the numeric derivative has truncation error O(eps^2) and roundoff error
//! about u·|L|/eps (u = 1.1e-16, f64's unit roundoff). Roundoff is *absolute*, so it is the
//! tiny gradient coordinates (1e-6 of the loss scale) that fail a relative test first; a
//! larger eps shrinks it. Whole-model checks use eps = 1e-4 ([`Options::default`]), where
//! truncation is still ~1e-8 relative for these smooth or piecewise-linear layers.
//!
//! A gradient that is truly zero (e.g. the attention key bias: adding one vector to every key
//! shifts each score row by a constant, which softmax ignores) has no meaningful relative
//! error: both sides are roundoff. [`check_tensors`] therefore excuses a coordinate whose
//! relative error misses the 1e-6 bar when |a − n| is below the finite-difference noise floor
//! `1000·u·max(|L(θ+ε)|, |L(θ−ε)|, 1) / 2ε` (about 1e-9 for L ~ 1 at ε = 1e-4), and reports how
//! many coordinates were excused. Every other coordinate reports its true relative error. A
//! real bug moves a gradient by far more than the floor.
//!
//! Two entry points:
//! - [`numeric_grad`] + [`assert_close`] for one tensor (an input, one weight);
//! - [`check_tensors`] for every tensor of a params struct at once, on sampled
//!   coordinates for big tensors, returning one [`Report`] per tensor.

use crate::engine::params::Tensors;
use ndarray::{Array, ArrayD, Dimension};

/// The bar a correct gradient meets (SPEC §1): relative error at most 1e-6 in f64.
pub const BAR: f64 = 1e-6;

/// The relative error used everywhere: |a − n| / max(|a| + |n|, 1e-8).
pub fn rel_err(a: f64, n: f64) -> f64 {
    (a - n).abs() / (a.abs() + n.abs()).max(1e-8)
}

/// Central differences of `f` at `at`, one element at a time: the full numeric gradient.
pub fn numeric_grad<D: Dimension>(
    mut f: impl FnMut(&Array<f64, D>) -> f64,
    at: &Array<f64, D>,
    eps: f64,
) -> Array<f64, D> {
    let mut x = at.as_standard_layout().into_owned();
    let mut grad = Array::zeros(at.raw_dim());
    let grad_flat = grad.as_slice_mut().expect("zeros() is in standard layout");
    for (k, g) in grad_flat.iter_mut().enumerate() {
        let orig = x.as_slice().expect("standard layout")[k];
        x.as_slice_mut().expect("standard layout")[k] = orig + eps;
        let plus = f(&x);
        x.as_slice_mut().expect("standard layout")[k] = orig - eps;
        let minus = f(&x);
        x.as_slice_mut().expect("standard layout")[k] = orig;
        *g = (plus - minus) / (2.0 * eps);
    }
    grad
}

/// The worst disagreement found in one tensor.
#[derive(Debug, Clone)]
pub struct Report {
    /// Tensor name, e.g. `"dx"` or `"layers.0.w"`.
    pub name: String,
    /// Largest relative error over the checked coordinates.
    pub worst_rel_err: f64,
    /// Where it was (multi-index into the tensor).
    pub worst_index: Vec<usize>,
    /// Analytic and numeric values at that coordinate.
    pub analytic: f64,
    pub numeric: f64,
    /// How many coordinates were compared.
    pub checked: usize,
    /// How many of them missed the [`BAR`] but by less than the finite-difference noise floor,
    /// and were excused as roundoff (typically a gradient that is truly zero).
    pub at_noise_floor: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<24} rel err {:.2e} at {:?} (analytic {:+.6e}, numeric {:+.6e}; {} coords, {} excused at noise floor)",
            self.name,
            self.worst_rel_err,
            self.worst_index,
            self.analytic,
            self.numeric,
            self.checked,
            self.at_noise_floor
        )
    }
}

/// Compares two tensors of one shape coordinate by coordinate.
pub fn compare<D: Dimension>(name: &str, analytic: &Array<f64, D>, numeric: &Array<f64, D>) -> Report {
    assert_eq!(analytic.shape(), numeric.shape(), "gradcheck {name}: shapes differ");
    let a = analytic.as_standard_layout();
    let n = numeric.as_standard_layout();
    let (a, n) = (a.as_slice().expect("standard layout"), n.as_slice().expect("standard layout"));
    let mut r = Report {
        name: name.to_string(),
        worst_rel_err: 0.0,
        worst_index: vec![],
        analytic: 0.0,
        numeric: 0.0,
        checked: a.len(),
        at_noise_floor: 0,
    };
    for (k, (&a, &n)) in a.iter().zip(n).enumerate() {
        let e = rel_err(a, n);
        if e > r.worst_rel_err || r.worst_index.is_empty() || e.is_nan() {
            r.worst_rel_err = if e.is_nan() { f64::INFINITY } else { e };
            r.worst_index = unravel(k, analytic.shape());
            r.analytic = a;
            r.numeric = n;
        }
    }
    r
}

/// Panics, naming the tensor and the worst coordinate, if `analytic` and `numeric`
/// disagree by more than `tol` in relative error anywhere.
pub fn assert_close<D: Dimension>(name: &str, analytic: &Array<f64, D>, numeric: &Array<f64, D>, tol: f64) {
    let r = compare(name, analytic, numeric);
    assert!(r.worst_rel_err <= tol, "gradient check failed (tolerance {tol:.0e}): {r}");
}

/// Options for [`check_tensors`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Finite-difference step.
    pub eps: f64,
    /// Tensors with more elements than this are checked on this many random coordinates.
    pub max_coords: usize,
    /// Seed for choosing the sampled coordinates.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { eps: 1e-4, max_coords: 64, seed: 0 }
    }
}

/// Checks every tensor of `params` against `grads` (same names, same order): for each
/// tensor, perturbs coordinates of `params` in place, calls `loss`, and restores them.
/// Returns one report per tensor; `grads` must hold ∂loss/∂params at the current `params`.
pub fn check_tensors<P: Tensors<f64>>(
    params: &mut P,
    grads: &dyn Tensors<f64>,
    mut loss: impl FnMut(&P) -> f64,
    opts: &Options,
) -> Vec<Report> {
    let analytic: Vec<(String, ArrayD<f64>)> =
        grads.tensors().into_iter().map(|(name, g)| (name, g.as_standard_layout().into_owned())).collect();
    let mut rng = crate::engine::init::rng(opts.seed);
    let mut reports = Vec::new();
    for (t, (name, a)) in analytic.iter().enumerate() {
        let a_flat = a.as_slice().expect("standard layout was just made");
        let n = a_flat.len();
        let coords: Vec<usize> = if n <= opts.max_coords {
            (0..n).collect()
        } else {
            // Distinct coordinates, sorted: `checked` then counts what was really compared.
            let mut c = rand::seq::index::sample(&mut rng, n, opts.max_coords).into_vec();
            c.sort_unstable();
            c
        };
        let mut report = Report {
            name: name.clone(),
            worst_rel_err: 0.0,
            worst_index: vec![],
            analytic: 0.0,
            numeric: 0.0,
            checked: coords.len(),
            at_noise_floor: 0,
        };
        for &k in &coords {
            let orig = coord(params, t, k, None);
            coord(params, t, k, Some(orig + opts.eps));
            let plus = loss(params);
            coord(params, t, k, Some(orig - opts.eps));
            let minus = loss(params);
            coord(params, t, k, Some(orig));
            let numeric = (plus - minus) / (2.0 * opts.eps);
            let noise = 1e3 * f64::EPSILON * plus.abs().max(minus.abs()).max(1.0) / (2.0 * opts.eps);
            // The true relative error is reported whenever it passes the bar; one that fails it
            // only by less than the noise floor is excused (and counted), never hidden silently.
            let raw = rel_err(a_flat[k], numeric);
            let e = if raw > BAR && (a_flat[k] - numeric).abs() <= noise {
                report.at_noise_floor += 1;
                0.0
            } else {
                raw
            };
            // A NaN anywhere is the worst possible disagreement (NaN > x is always false).
            if e.is_nan() || e > report.worst_rel_err || report.worst_index.is_empty() {
                report.worst_rel_err = if e.is_nan() { f64::INFINITY } else { e };
                report.worst_index = unravel(k, a.shape());
                report.analytic = a_flat[k];
                report.numeric = numeric;
            }
        }
        reports.push(report);
    }
    reports
}

/// Panics with every failing report if any tensor's worst relative error exceeds `tol`.
pub fn assert_reports(reports: &[Report], tol: f64) {
    let bad: Vec<String> =
        reports.iter().filter(|r| r.worst_rel_err.is_nan() || r.worst_rel_err > tol).map(|r| r.to_string()).collect();
    assert!(bad.is_empty(), "gradient check failed (tolerance {tol:.0e}):\n  {}", bad.join("\n  "));
}

/// Reads (`value == None`) or writes element `k` (row-major order) of the `t`-th tensor.
fn coord<P: Tensors<f64>>(params: &mut P, t: usize, k: usize, value: Option<f64>) -> f64 {
    let mut tensors = params.tensors_mut();
    let view = &mut tensors[t].1;
    let slot = match view.as_slice_mut() {
        Some(s) => &mut s[k],
        None => view.iter_mut().nth(k).expect("k < tensor length"),
    };
    if let Some(v) = value {
        *slot = v;
    }
    *slot
}

/// Row-major flat index → multi-index.
fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    idx
}
