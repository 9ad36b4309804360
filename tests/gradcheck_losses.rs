//! Cross-entropy: gradient check with padding rows, the fused gradient against the unfused
//! reference, and hand-computed values.

mod common;

use common::{rng, uniform, TOL};
use ndarray::Array2;
use tinymoe::engine::gradcheck::{assert_close, numeric_grad};
use tinymoe::engine::losses::cross_entropy;

const PAD: usize = 9;

#[test]
fn cross_entropy_backward_matches_finite_differences_with_ignored_rows() {
    let mut g = rng(11);
    let logits: Array2<f64> = uniform((6, 5), &mut g).mapv(|v| 3.0 * v);
    let targets = [0, 4, PAD, 2, PAD, 1];
    let (_, cache) = cross_entropy::forward(logits.view(), &targets, Some(PAD));
    let d = cross_entropy::backward(&cache);
    let num = numeric_grad(|z| cross_entropy::forward(z.view(), &targets, Some(PAD)).0, &logits, 1e-5);
    assert_close("dlogits", &d, &num, TOL);
    assert!(d.row(2).iter().chain(d.row(4).iter()).all(|&v| v == 0.0), "ignored rows get no gradient");
    assert_eq!(cache.n_real(), 4);
}

#[test]
fn fused_cross_entropy_equals_log_softmax_then_nll() {
    let mut g = rng(12);
    let logits: Array2<f32> = tinymoe::engine::init::uniform((32, 11), 5.0, &mut g);
    let targets: Vec<usize> = (0..32).map(|i| if i % 5 == 0 { PAD } else { i % 11 }).collect();
    let fused = cross_entropy::forward(logits.view(), &targets, Some(PAD)).0;
    let unfused = cross_entropy::forward_unfused(logits.view(), &targets, Some(PAD));
    assert!((fused - unfused).abs() < 1e-5, "{fused} vs {unfused}");
}

#[test]
fn cross_entropy_by_hand() {
    // logits [0, 0, 0, 0] → p = ¼ each, loss = ln 4; gradient p − onehot = [¼ − 1, ¼, ¼, ¼].
    let z = ndarray::array![[0.0f64, 0.0, 0.0, 0.0]];
    let (loss, cache) = cross_entropy::forward(z.view(), &[0], None);
    assert!((loss - 4.0f64.ln()).abs() < 1e-15);
    assert_eq!(cross_entropy::backward(&cache), ndarray::array![[-0.75, 0.25, 0.25, 0.25]]);
    // Two rows: the mean halves each row's gradient.
    let z = ndarray::array![[0.0f64, 0.0], [0.0, 0.0]];
    let (loss, cache) = cross_entropy::forward(z.view(), &[0, 1], None);
    assert!((loss - 2.0f64.ln()).abs() < 1e-15);
    assert_eq!(cross_entropy::backward(&cache), ndarray::array![[-0.25, 0.25], [0.25, -0.25]]);
    // Padding rows do not change the mean: one real row gives the same loss as alone.
    let z2 = ndarray::array![[2.0f64, -1.0], [5.0, 5.0]];
    let alone = cross_entropy::forward(z2.slice(ndarray::s![0..1, ..]), &[1], None).0;
    let padded = cross_entropy::forward(z2.view(), &[1, PAD], Some(PAD)).0;
    assert_eq!(alone, padded);
}

#[test]
fn cross_entropy_with_no_real_targets_is_zero_not_nan() {
    let z = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
    let (loss, cache) = cross_entropy::forward(z.view(), &[PAD, PAD], Some(PAD));
    assert_eq!(loss, 0.0);
    assert!(cross_entropy::backward(&cache).iter().all(|&v| v == 0.0));
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let z = ndarray::array![[1000.0f32, -1000.0, 0.0]];
    let (loss, cache) = cross_entropy::forward(z.view(), &[1], None);
    assert!((loss - 2000.0).abs() < 1e-2, "{loss}");
    assert!(cross_entropy::backward(&cache).iter().all(|v| v.is_finite()));
}
