//! Every layer's backward against central finite differences in f64 (relative error ≤ 1e-6),
//! each with L = Σ y ⊙ r for a fixed random r, so ∂L/∂y = r.

mod common;

use common::{rng, uniform, TOL};
use ndarray::{Array1, Array2, Array3};
use tinymoe::engine::gradcheck::{assert_close, assert_reports, check_tensors, numeric_grad, Options};
use tinymoe::engine::layers::{activation, dropout, embedding, layer_norm, linear, mlp, Activation, InputGrad, Mode};
use tinymoe::engine::ops::softmax;

const EPS: f64 = 1e-5;

#[test]
fn linear_backward_matches_finite_differences() {
    let mut g = rng(1);
    let p = linear::Params { w: uniform((4, 3), &mut g), b: uniform(3, &mut g) };
    let x: Array2<f64> = uniform((10, 4), &mut g); // [n = batch·seq, d_in]
    let r: Array2<f64> = uniform((10, 3), &mut g);
    let loss = |p: &linear::Params<f64>, x: &Array2<f64>| (linear::forward(p, x.view()).0 * &r).sum();
    let (_, cache) = linear::forward(&p, x.view());
    let (dx, grads) = linear::backward(&p, &cache, r.view());
    assert_close("dx", &dx, &numeric_grad(|x| loss(&p, x), &x, EPS), TOL);
    let dw = numeric_grad(|w| loss(&linear::Params { w: w.clone(), b: p.b.clone() }, &x), &p.w, EPS);
    assert_close("dW", &grads.dw, &dw, TOL);
    let db = numeric_grad(|b| loss(&linear::Params { w: p.w.clone(), b: b.clone() }, &x), &p.b, EPS);
    assert_close("db", &grads.db, &db, TOL);
    // backward_params (first layers) gives the same parameter gradients.
    let only = linear::backward_params(&cache, r.view());
    assert_eq!(only, grads);
}

#[test]
fn linear_forward_and_backward_by_hand() {
    // x = [[1, 2]], W = [[1, 0, -1], [2, 1, 0]], b = [0.5, 0, 0]
    // y = x·W + b = [1·1 + 2·2 + 0.5, 1·0 + 2·1, 1·(−1) + 0] = [5.5, 2, −1]
    let p = linear::Params { w: ndarray::array![[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]], b: ndarray::array![0.5, 0.0, 0.0] };
    let x = ndarray::array![[1.0, 2.0]];
    let (y, cache) = linear::forward(&p, x.view());
    assert_eq!(y, ndarray::array![[5.5, 2.0, -1.0]]);
    // dy = [1, 0, 2]: dx = dy·Wᵀ = [1·1 + 0·0 + 2·(−1), 1·2 + 0·1 + 2·0] = [−1, 2]
    // dW = xᵀ·dy = [[1, 0, 2], [2, 0, 4]],  db = dy
    let dy = ndarray::array![[1.0, 0.0, 2.0]];
    let (dx, g) = linear::backward(&p, &cache, dy.view());
    assert_eq!(dx, ndarray::array![[-1.0, 2.0]]);
    assert_eq!(g.dw, ndarray::array![[1.0, 0.0, 2.0], [2.0, 0.0, 4.0]]);
    assert_eq!(g.db, ndarray::array![1.0, 0.0, 2.0]);
}

#[test]
fn init_is_seeded_and_has_the_stated_scale() {
    let a: linear::Params<f32> = linear::init_he(400, 300, &mut rng(7));
    let b: linear::Params<f32> = linear::init_he(400, 300, &mut rng(7));
    assert_eq!(a, b, "same seed, same weights");
    let std = (a.w.mapv(|v| (v as f64).powi(2)).mean().unwrap()).sqrt();
    assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.003, "He std {std}");
    let x: linear::Params<f64> = linear::init_xavier(400, 300, &mut rng(7));
    let limit = (6.0f64 / 700.0).sqrt();
    assert!(x.w.iter().all(|v| v.abs() <= limit));
    let var = x.w.mapv(|v| v * v).mean().unwrap();
    assert!((var - limit * limit / 3.0).abs() < 0.05 * limit * limit / 3.0, "Xavier variance {var}");
}

fn check_activation(act: Activation) {
    let mut g = rng(2);
    // Keep ReLU's inputs away from its kink at 0, where the derivative does not exist.
    let x = uniform((6, 5), &mut g).mapv(|v: f64| if v.abs() < 0.05 { v + 0.1 } else { v } * 3.0);
    let r: Array2<f64> = uniform((6, 5), &mut g);
    let (_, cache) = activation::forward(act, x.view());
    let dx = activation::backward(act, &cache, r.view());
    let num = numeric_grad(|x| (activation::forward(act, x.view()).0 * &r).sum(), &x, EPS);
    assert_close(&format!("{act:?} dx"), &dx, &num, TOL);
}

#[test]
fn relu_backward_matches_finite_differences() {
    check_activation(Activation::Relu);
}

#[test]
fn gelu_erf_backward_matches_finite_differences() {
    check_activation(Activation::GeluErf);
}

#[test]
fn gelu_tanh_backward_matches_finite_differences() {
    check_activation(Activation::GeluTanh);
}

#[test]
fn activations_by_hand() {
    // GELU(x) = x·Φ(x): Φ(0) = ½ so GELU(0) = 0; Φ(1) = 0.8413447460685429.
    assert_eq!(activation::value(Activation::GeluErf, 0.0f64), 0.0);
    assert!((activation::value(Activation::GeluErf, 1.0f64) - 0.8413447460685429).abs() < 1e-15);
    // tanh form at 1: ½·(1 + tanh(√(2/π)·1.044715)) = 0.8411919906082768 (PyTorch gives the same).
    assert!((activation::value(Activation::GeluTanh, 1.0f64) - 0.8411919906082768).abs() < 1e-12);
    assert_eq!(activation::value(Activation::Relu, -2.0f64), 0.0);
    assert_eq!(activation::derivative(Activation::Relu, 0.0f64), 0.0);
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let mut g = rng(3);
    let x: Array2<f64> = uniform((4, 7), &mut g).mapv(|v| v * 4.0);
    let r: Array2<f64> = uniform((4, 7), &mut g);
    let y = softmax::softmax(x.view());
    let dx = softmax::softmax_backward(y.view(), r.view());
    let num = numeric_grad(|x| (softmax::softmax(x.view()) * &r).sum(), &x, EPS);
    assert_close("softmax dx", &dx, &num, TOL);
}

#[test]
fn log_softmax_backward_matches_finite_differences() {
    let mut g = rng(4);
    let x: Array2<f64> = uniform((4, 7), &mut g).mapv(|v| v * 4.0);
    let r: Array2<f64> = uniform((4, 7), &mut g);
    let y = softmax::log_softmax(x.view());
    let dx = softmax::log_softmax_backward(y.view(), r.view());
    let num = numeric_grad(|x| (softmax::log_softmax(x.view()) * &r).sum(), &x, EPS);
    assert_close("log_softmax dx", &dx, &num, TOL);
}

#[test]
fn softmax_by_hand_and_stable_for_huge_logits() {
    // softmax([0, ln 3]) = [1/4, 3/4]
    let y = softmax::softmax(ndarray::array![[0.0f64, 3.0f64.ln()]].view());
    assert!((y[[0, 0]] - 0.25).abs() < 1e-15 && (y[[0, 1]] - 0.75).abs() < 1e-15);
    // exp(1000) overflows; subtracting the max keeps it exact: softmax([1000, 1000]) = [½, ½].
    let y = softmax::softmax(ndarray::array![[1000.0f32, 1000.0]].view());
    assert_eq!(y, ndarray::array![[0.5f32, 0.5]]);
    let l = softmax::log_softmax(ndarray::array![[1000.0f32, 0.0]].view());
    assert!(l.iter().all(|v| v.is_finite()));
    assert_eq!(l[[0, 0]], 0.0);
    // A fully masked row (all −inf) is all zeros, not NaN.
    let y = softmax::softmax(ndarray::array![[f64::NEG_INFINITY, f64::NEG_INFINITY]].view());
    assert_eq!(y, ndarray::array![[0.0, 0.0]]);
}

#[test]
fn dropout_backward_uses_the_forward_mask() {
    let mut g = rng(5);
    let x: Array2<f64> = uniform((8, 6), &mut g);
    let r: Array2<f64> = uniform((8, 6), &mut g);
    // The same seed draws the same mask on every call, so L(x) is a fixed function of x.
    let run = |x: &Array2<f64>| dropout::forward(x.view(), 0.3, &mut Mode::Train(&mut rng(99)));
    let (y, cache) = run(&x);
    let dx = dropout::backward(&cache, r.view());
    assert_close("dropout dx", &dx, &numeric_grad(|x| (run(x).0 * &r).sum(), &x, EPS), TOL);
    // Kept units are scaled by 1/(1 − p), dropped ones are exactly 0.
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 0 && zeros < 48, "some, not all, units dropped: {zeros}");
    for (&yv, &xv) in y.iter().zip(x.iter()) {
        assert!(yv == 0.0 || (yv - xv / 0.7).abs() < 1e-12);
    }
    // Eval is the identity, and so is its backward.
    let (y, cache) = dropout::forward(x.view(), 0.3, &mut Mode::Eval);
    assert_eq!(y, x);
    assert_eq!(dropout::backward(&cache, r.view()), r);
}

#[test]
fn dropout_keeps_the_expected_value() {
    let x = Array2::<f64>::ones((200, 500));
    let (y, _) = dropout::forward(x.view(), 0.2, &mut Mode::Train(&mut rng(1)));
    let mean = y.mean().unwrap();
    assert!((mean - 1.0).abs() < 0.01, "E[y] = x under inverted dropout, got {mean}");
}

#[test]
fn embedding_backward_matches_finite_differences_and_skips_padding() {
    let mut g = rng(6);
    let pad = 0;
    let p: embedding::Params<f64> = embedding::init(7, 5, 4, Some(pad), 1.0, &mut g);
    assert!(p.tok.row(pad).iter().all(|&v| v == 0.0), "the padding row starts at zero");
    // Two sequences, the second padded at the end; token 3 appears twice (its gradient sums).
    let ids = ndarray::array![[3, 1, 3, 2], [5, 6, pad, pad]];
    let mut r: Array3<f64> = uniform((2, 4, 4), &mut g);
    // Downstream layers mask padding, so its outputs carry no gradient.
    for t in 2..4 {
        r.slice_mut(ndarray::s![1, t, ..]).fill(0.0);
    }
    let loss = |p: &embedding::Params<f64>| (embedding::forward(p, ids.view(), Some(pad)).0 * &r).sum();
    let (_, cache) = embedding::forward(&p, ids.view(), Some(pad));
    let mut grads = embedding::backward(&p, &cache, r.view());
    let mut params = p.clone();
    assert_reports(&check_tensors(&mut params, &grads, loss, &Options { max_coords: 1000, ..Options::default() }), TOL);
    // Even with a gradient at padded positions, the padding row gets none.
    let dy: Array3<f64> = uniform((2, 4, 4), &mut g);
    grads = embedding::backward(&p, &cache, dy.view());
    assert!(grads.dtok.row(pad).iter().all(|&v| v == 0.0));
    assert!(grads.dtok.row(1).iter().zip(dy.slice(ndarray::s![0, 1, ..])).all(|(a, b)| a == b));
}

#[test]
fn layer_norm_backward_matches_finite_differences() {
    let mut g = rng(7);
    let p = layer_norm::Params { gamma: uniform(6, &mut g), beta: uniform(6, &mut g), eps: 1e-5 };
    let x: Array2<f64> = uniform((5, 6), &mut g).mapv(|v| 3.0 * v + 1.0);
    let r: Array2<f64> = uniform((5, 6), &mut g);
    let loss = |p: &layer_norm::Params<f64>, x: &Array2<f64>| (layer_norm::forward(p, x.view()).0 * &r).sum();
    let (_, cache) = layer_norm::forward(&p, x.view());
    let (dx, grads) = layer_norm::backward(&p, &cache, r.view());
    assert_close("dx", &dx, &numeric_grad(|x| loss(&p, x), &x, EPS), TOL);
    let mut params = p.clone();
    assert_reports(&check_tensors(&mut params, &grads, |p| loss(p, &x), &Options::default()), TOL);
}

#[test]
fn layer_norm_by_hand() {
    // x = [1, 2, 3]: μ = 2, σ² = 2/3, x̂ = (x − 2)/√(2/3 + eps); γ = 1, β = 0.
    let p = layer_norm::init::<f64>(3, 0.0);
    let (y, _) = layer_norm::forward(&p, ndarray::array![[1.0, 2.0, 3.0]].view());
    let s = (2.0f64 / 3.0).sqrt();
    for (a, b) in y.iter().zip([-1.0 / s, 0.0, 1.0 / s]) {
        assert!((a - b).abs() < 1e-12);
    }
    // eps matters for a constant row: x̂ = 0 rather than 0/0.
    let p = layer_norm::init::<f64>(3, 1e-5);
    let (y, _) = layer_norm::forward(&p, ndarray::array![[4.0, 4.0, 4.0]].view());
    assert!(y.iter().all(|&v| v == 0.0));
}

fn check_mlp(act: Activation, p_drop: f64) {
    let mut g = rng(8);
    let p: mlp::Params<f64> = mlp::init(&[5, 7, 6, 3], act, p_drop, &mut g);
    let x: Array2<f64> = uniform((9, 5), &mut g);
    let r: Array2<f64> = uniform((9, 3), &mut g);
    // A fixed dropout seed: the same mask at every evaluation of L.
    let run = |p: &mlp::Params<f64>, x: &Array2<f64>| mlp::forward(p, x.view(), &mut Mode::Train(&mut rng(1234)));
    let (_, cache) = run(&p, &x);
    let (dx, grads) = mlp::backward(&p, &cache, r.view(), InputGrad::Need);
    let dx = dx.expect("asked for dx");
    assert_close("mlp dx", &dx, &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, EPS), TOL);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    assert_eq!(reports.len(), 6, "three layers, w and b each");
    assert_reports(&reports, TOL);
    // Skipping dx changes no parameter gradient.
    let (none, skipped) = mlp::backward(&p, &cache, r.view(), InputGrad::Skip);
    assert!(none.is_none());
    assert_eq!(skipped, grads);
}

#[test]
fn mlp_relu_backward_matches_finite_differences() {
    check_mlp(Activation::Relu, 0.0);
}

#[test]
fn mlp_gelu_with_dropout_backward_matches_finite_differences() {
    check_mlp(Activation::GeluTanh, 0.25);
    check_mlp(Activation::GeluErf, 0.25);
}

#[test]
fn gradcheck_reports_a_wrong_gradient() {
    // The checker itself must fail on a wrong backward: drop db's sum over rows.
    let mut g = rng(9);
    let p = linear::Params { w: uniform((3, 2), &mut g), b: uniform(2, &mut g) };
    let x: Array2<f64> = uniform((4, 3), &mut g);
    let r: Array2<f64> = uniform((4, 2), &mut g);
    let wrong_db: Array1<f64> = r.row(0).to_owned();
    let num = numeric_grad(
        |b| (linear::forward(&linear::Params { w: p.w.clone(), b: b.clone() }, x.view()).0 * &r).sum(),
        &p.b,
        EPS,
    );
    let report = tinymoe::engine::gradcheck::compare("db", &wrong_db, &num);
    assert!(report.worst_rel_err > 1e-2, "{report}");
}

#[test]
fn check_tensors_reports_a_nan_gradient_anywhere() {
    let mut g = rng(10);
    let p = linear::Params { w: uniform((4, 3), &mut g), b: uniform(3, &mut g) };
    let x: Array2<f64> = uniform((5, 4), &mut g);
    let r: Array2<f64> = uniform((5, 3), &mut g);
    let (_, cache) = linear::forward(&p, x.view());
    let (_, mut grads) = linear::backward(&p, &cache, r.view());
    grads.dw[[2, 1]] = f64::NAN;
    let mut params = p.clone();
    let reports =
        check_tensors(&mut params, &grads, |p| (linear::forward(p, x.view()).0 * &r).sum(), &Options::default());
    assert_eq!(reports[0].worst_rel_err, f64::INFINITY, "{}", reports[0]);
    assert_eq!(reports[0].worst_index, vec![2, 1]);
}

#[test]
fn sampled_coordinates_are_distinct() {
    let mut g = rng(11);
    let p = linear::Params { w: uniform((20, 20), &mut g), b: uniform(20, &mut g) };
    let x: Array2<f64> = uniform((3, 20), &mut g);
    let r: Array2<f64> = uniform((3, 20), &mut g);
    let (_, cache) = linear::forward(&p, x.view());
    let (_, grads) = linear::backward(&p, &cache, r.view());
    let mut params = p.clone();
    let mut evals = 0;
    let opts = Options { max_coords: 300, ..Options::default() };
    let reports = check_tensors(
        &mut params,
        &grads,
        |p| {
            evals += 1;
            (linear::forward(p, x.view()).0 * &r).sum()
        },
        &opts,
    );
    assert_eq!(reports[0].checked, 300);
    assert_eq!(evals, 2 * (300 + 20), "two evaluations per distinct coordinate");
    assert_reports(&reports, TOL);
}

#[test]
fn the_noise_floor_does_not_hide_a_small_real_error() {
    // A gradient off by 0.1 % everywhere must still fail the 1e-6 bar.
    let mut g = rng(12);
    let p = linear::Params { w: uniform((4, 3), &mut g), b: uniform(3, &mut g) };
    let x: Array2<f64> = uniform((5, 4), &mut g);
    let r: Array2<f64> = uniform((5, 3), &mut g);
    let (_, cache) = linear::forward(&p, x.view());
    let (_, mut grads) = linear::backward(&p, &cache, r.view());
    grads.dw.mapv_inplace(|v| v * 1.001);
    let mut params = p.clone();
    let reports =
        check_tensors(&mut params, &grads, |p| (linear::forward(p, x.view()).0 * &r).sum(), &Options::default());
    assert!(reports[0].worst_rel_err > 1e-4, "{}", reports[0]);
    assert_eq!(reports[0].at_noise_floor, 0);
    assert!(reports[1].worst_rel_err < TOL, "db untouched: {}", reports[1]);
}
