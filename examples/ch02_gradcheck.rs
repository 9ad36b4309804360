//! Chapter 02 — activations, softmax, cross-entropy and the gradient check
//! (notebooks-md/02-activations-softmax-cross-entropy-gradcheck.md).
//!
//! Shows, in order:
//! 1. ReLU, exact GELU (erf) and tanh-GELU with their derivatives, at a few points.
//! 2. Why softmax subtracts the row max: the naive formula overflows to NaN.
//! 3. The softmax Jacobian written out, and that `softmax_backward` is Jᵀ·dy without it.
//! 4. Cross-entropy with an ignored padding row: the fused gradient (p − onehot) / N.
//! 5. Gradient checks in f64 of every layer and loss of the engine: Linear, the three
//!    activations, softmax, log-softmax, dropout (fixed mask seed), LayerNorm, the embedding
//!    (padding id), cross-entropy (padding rows ignored), the MLP, the dense MoE mixture and a
//!    whole classifier training step. Every one must reach a relative error ≤ 1e-6.
//! 6. Three deliberately broken gradients and the reports that catch them (no panic), and a
//!    bug that L = Σ y misses but L = Σ y ⊙ r catches.
//! 7. Why f64: the finite-difference error against ε in f32 and f64.
//!
//! Exits 1 if a check that should pass fails, or if a broken gradient is not caught.
//! Run: `cargo run --release --example ch02_gradcheck`

use ndarray::{array, s, Array2, Array3, ArrayView2, Axis};
use tinymoe::engine::gradcheck::{check_tensors, compare, numeric_grad, Options};
use tinymoe::engine::layers::{activation, dropout, embedding, layer_norm, linear, mlp, Activation, InputGrad, Mode};
use tinymoe::engine::losses::cross_entropy;
use tinymoe::engine::ops::softmax::{log_softmax, log_softmax_backward, softmax, softmax_backward};
use tinymoe::engine::{init, Float};
use tinymoe::models::classifier::{self, Classifier};
use tinymoe::moe::mixture;

#[path = "common/tally.rs"]
mod tally;
use tally::{Tally, TOL};

/// Finite-difference step.
const EPS: f64 = 1e-5;
/// The padding token id (and ignored target) used throughout.
const PAD: usize = 0;

fn main() {
    activations_table();
    softmax_stability();
    softmax_jacobian();
    cross_entropy_with_padding();

    let mut tally = Tally::default();
    println!("\n== 5. Gradient checks, f64, central differences with ε = {EPS:.0e}, bar: rel err ≤ {TOL:.0e}");
    check_linear(&mut tally);
    check_activations(&mut tally);
    check_softmax(&mut tally);
    check_dropout(&mut tally);
    check_layer_norm(&mut tally);
    check_embedding(&mut tally);
    check_cross_entropy(&mut tally);
    check_mlp(&mut tally);
    check_mixture(&mut tally);
    check_classifier_step(&mut tally);

    broken_gradients(&mut tally);
    why_f64();

    println!();
    tally.finish("every broken gradient was caught");
}

// ---------------------------------------------------------------------------------------
// 1–4: the functions themselves

fn activations_table() {
    println!("== 1. Activations and their derivatives");
    println!("    x      relu  relu'   gelu(erf)  gelu'(erf)   gelu(tanh)  gelu'(tanh)");
    for x in [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0] {
        let v = |a| activation::value::<f64>(a, x);
        let d = |a| activation::derivative::<f64>(a, x);
        println!(
            "{x:>5.1}  {:>6.2}  {:>4.1}  {:>+10.6}  {:>+10.6}  {:>+11.6}  {:>+11.6}",
            v(Activation::Relu),
            d(Activation::Relu),
            v(Activation::GeluErf),
            d(Activation::GeluErf),
            v(Activation::GeluTanh),
            d(Activation::GeluTanh)
        );
    }
    let worst = (-6000..=6000)
        .map(|i| {
            let x = i as f64 / 1000.0;
            (activation::value::<f64>(Activation::GeluErf, x) - activation::value::<f64>(Activation::GeluTanh, x)).abs()
        })
        .fold(0.0, f64::max);
    println!("largest |gelu_erf(x) − gelu_tanh(x)| on [−6, 6]: {worst:.1e}");
}

/// exp(x) for each entry, then divide by the sum: the textbook formula, unprotected.
fn naive_softmax<F: Float>(x: &[F]) -> Vec<F> {
    let e: Vec<F> = x.iter().map(|v| v.exp()).collect();
    let sum = e.iter().fold(F::zero(), |a, &b| a + b);
    e.iter().map(|&v| v / sum).collect()
}

fn softmax_stability() {
    println!("\n== 2. Softmax: why subtract the max");
    let big = [1000.0f64, 1001.0, 1002.0];
    println!("f64 logits {big:?}");
    println!("  exp(1000) = {}", 1000.0f64.exp());
    println!("  naive  softmax = {:?}", naive_softmax(&big));
    println!("  stable softmax = {:.4}", softmax(array![big].view()).row(0));
    let f32_logits = [90.0f32, 91.0, 92.0];
    println!("f32 logits {f32_logits:?} (f32 overflows past exp(88.7))");
    println!("  naive  softmax = {:?}", naive_softmax(&f32_logits));
    println!("  stable softmax = {:.4}", softmax(array![f32_logits].view()).row(0));
    let small = [0.0f64, -1000.0];
    let naive_log: Vec<f64> = naive_softmax(&small).iter().map(|p| p.ln()).collect();
    println!("log-softmax of {small:?}");
    println!("  naive  ln(softmax) = {naive_log:?}");
    println!("  stable log_softmax = {:.1}", log_softmax(array![small].view()).row(0));
}

fn softmax_jacobian() {
    println!("\n== 3. The softmax Jacobian J[i, j] = ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ)");
    let x = array![[1.0, 2.0, 0.5]];
    let y = softmax(x.view());
    let yr = y.row(0);
    let n = yr.len();
    let jac = Array2::from_shape_fn((n, n), |(i, j)| yr[i] * (if i == j { 1.0 } else { 0.0 } - yr[j]));
    println!("x = {}, y = softmax(x) = {:.6}", x.row(0), yr);
    println!("J =\n{:.6}", jac.mapv(round6));
    let dy = array![[0.3, -1.0, 2.0]];
    let dx_jacobian = jac.t().dot(&dy.row(0));
    let dx_fast = softmax_backward(y.view(), dy.view());
    println!("dy = {}", dy.row(0));
    println!("dx = Jᵀ·dy           = {:.6}", dx_jacobian.mapv(round6));
    println!("dx = y ⊙ (dy − y·dy) = {:.6}   (softmax_backward: no n×n matrix)", dx_fast.row(0).mapv(round6));
}

fn cross_entropy_with_padding() {
    println!("\n== 4. Cross-entropy with a padding row (target {PAD} is ignored)");
    let mut rng = init::rng(3);
    let logits: Array2<f64> = init::normal((4, 5), 1.0, &mut rng);
    let targets = [3, PAD, 4, 1];
    let (loss, cache) = cross_entropy::forward(logits.view(), &targets, Some(PAD));
    let unfused = cross_entropy::forward_unfused(logits.view(), &targets, Some(PAD));
    println!(
        "targets {targets:?}: {} real rows, loss {loss:.6} (fused), {unfused:.6} (log_softmax, then pick)",
        cache.n_real()
    );
    let dlogits = cross_entropy::backward(&cache);
    println!("p = softmax(logits) =\n{:.4}", cache.probs());
    println!("dlogits = (p − onehot) / N =\n{:.4}", dlogits.mapv(round4));
    println!("row sums of dlogits: {}", dlogits.sum_axis(Axis(1)).mapv(|v| round6(v) + 0.0));
}

// ---------------------------------------------------------------------------------------
// 5: gradient checks

/// Options for `check_tensors`: ε and how many coordinates of a big tensor to sample.
fn opts() -> Options {
    Options { eps: EPS, max_coords: 64, seed: 0 }
}

fn check_linear(t: &mut Tally) {
    let mut rng = init::rng(42);
    let mut p: linear::Params<f64> =
        linear::Params { w: init::normal((4, 3), 1.0, &mut rng), b: init::normal(3, 1.0, &mut rng) };
    let x: Array2<f64> = init::normal((6, 4), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 3), 1.0, &mut rng); // L = Σ y ⊙ r, so dy = r
    let (_, cache) = linear::forward(&p, x.view());
    let (dx, g) = linear::backward(&p, &cache, r.view());
    let num_dx = numeric_grad(|x| (linear::forward(&p, x.view()).0 * &r).sum(), &x, EPS);
    t.expect_pass("linear", compare("dx", &dx, &num_dx));
    let reports = check_tensors(&mut p, &g, |p| (linear::forward(p, x.view()).0 * &r).sum(), &opts());
    t.expect_pass_all("linear", reports);
}

fn check_activations(t: &mut Tally) {
    let mut rng = init::rng(5);
    // ReLU has a kink at 0: keep every input at least 0.01 away from it.
    let x: Array2<f64> =
        init::normal::<f64, _, _>((5, 7), 1.5, &mut rng).mapv(|v| if v.abs() < 0.01 { v + 0.02 } else { v });
    let r: Array2<f64> = init::normal((5, 7), 1.0, &mut rng);
    for (name, act) in
        [("relu", Activation::Relu), ("gelu_erf", Activation::GeluErf), ("gelu_tanh", Activation::GeluTanh)]
    {
        let (_, cache) = activation::forward(act, x.view());
        let dx = activation::backward(act, &cache, r.view());
        let num = numeric_grad(|x| (activation::forward(act, x.view()).0 * &r).sum(), &x, EPS);
        t.expect_pass(name, compare("dx", &dx, &num));
    }
}

fn check_softmax(t: &mut Tally) {
    let mut rng = init::rng(6);
    let x: Array2<f64> = init::normal((4, 5), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((4, 5), 1.0, &mut rng);
    let y = softmax(x.view());
    let num = numeric_grad(|x| (softmax(x.view()) * &r).sum(), &x, EPS);
    t.expect_pass("softmax", compare("dx", &softmax_backward(y.view(), r.view()), &num));
    let y = log_softmax(x.view());
    let num = numeric_grad(|x| (log_softmax(x.view()) * &r).sum(), &x, EPS);
    t.expect_pass("log_softmax", compare("dx", &log_softmax_backward(y.view(), r.view()), &num));
}

fn check_dropout(t: &mut Tally) {
    let mut rng = init::rng(8);
    let x: Array2<f64> = init::normal((6, 8), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 8), 1.0, &mut rng);
    let p = 0.3;
    const MASK_SEED: u64 = 7;
    // A fresh generator with the same seed on every call: the same units are dropped each
    // time, so L is a fixed function of x and finite differences make sense.
    let fwd = |x: &Array2<f64>| dropout::forward(x.view(), p, &mut Mode::Train(&mut init::rng(MASK_SEED)));
    let (y, cache) = fwd(&x);
    let dropped = y.iter().filter(|&&v| v == 0.0).count();
    println!(
        "dropout p = {p}, mask seed {MASK_SEED}: {dropped} of {} units dropped, kept ones scaled by 1/(1 − p) = {:.4}",
        y.len(),
        1.0 / (1.0 - p)
    );
    let dx = dropout::backward(&cache, r.view());
    let num = numeric_grad(|x| (fwd(x).0 * &r).sum(), &x, EPS);
    t.expect_pass("dropout", compare("dx", &dx, &num));
    let (y_eval, _) = dropout::forward(x.view(), p, &mut Mode::Eval);
    println!("dropout at eval is the identity: {}", y_eval == x);
}

fn check_layer_norm(t: &mut Tally) {
    let mut rng = init::rng(9);
    // Shifted and scaled rows, so normalising them does real work.
    let x: Array2<f64> = init::normal((5, 8), 3.0, &mut rng) + 2.0;
    let r: Array2<f64> = init::normal((5, 8), 1.0, &mut rng);
    let mut p: layer_norm::Params<f64> = layer_norm::Params {
        gamma: init::normal(8, 0.5, &mut rng) + 1.0,
        beta: init::normal(8, 1.0, &mut rng),
        eps: 1e-5,
    };
    let (_, cache) = layer_norm::forward(&p, x.view());
    let (dx, g) = layer_norm::backward(&p, &cache, r.view());
    let num = numeric_grad(|x| (layer_norm::forward(&p, x.view()).0 * &r).sum(), &x, EPS);
    t.expect_pass("layer_norm", compare("dx", &dx, &num));
    let reports = check_tensors(&mut p, &g, |p| (layer_norm::forward(p, x.view()).0 * &r).sum(), &opts());
    t.expect_pass_all("layer_norm", reports);
}

fn check_embedding(t: &mut Tally) {
    let mut rng = init::rng(10);
    let (vocab, max_seq, d_model) = (6, 5, 4);
    let mut p: embedding::Params<f64> = embedding::init(vocab, max_seq, d_model, Some(PAD), 1.0, &mut rng);
    // Two sequences padded to length 4; token 3 appears twice.
    let ids = array![[1, 3, 3, PAD], [2, 5, PAD, PAD]];
    // r is zero at padding positions, as the model's masks make it: nothing downstream reads
    // a padding position, so the loss does not depend on the padding row.
    let not_pad = ids.mapv(|id| if id == PAD { 0.0 } else { 1.0 });
    let r: Array3<f64> = init::normal((2, 4, d_model), 1.0, &mut rng) * &not_pad.insert_axis(Axis(2));
    let (_, cache) = embedding::forward(&p, ids.view(), Some(PAD));
    let g = embedding::backward(&p, &cache, r.view());
    let scatter = &r.slice(s![0, 1, ..]) + &r.slice(s![0, 2, ..]);
    println!(
        "embedding: token 3 is read twice, so dtok[3] = dy[0,1] + dy[0,2]: {}; padding row dtok[{PAD}] = {}",
        g.dtok.row(3) == scatter,
        g.dtok.row(PAD)
    );
    let loss = |p: &embedding::Params<f64>| (embedding::forward(p, ids.view(), Some(PAD)).0 * &r).sum();
    let reports = check_tensors(&mut p, &g, loss, &opts());
    t.expect_pass_all("embedding", reports);

    // Without the mask the forward does read the padding row, so calculus says it has a
    // gradient; the embedding returns 0 there on purpose (PyTorch's padding_idx).
    let r_all: Array3<f64> = init::normal((2, 4, d_model), 1.0, &mut rng);
    let g_all = embedding::backward(&p, &cache, r_all.view());
    let num_pad = numeric_grad(
        |tok| {
            (embedding::forward(&embedding::Params { tok: tok.clone(), pos: p.pos.clone() }, ids.view(), Some(PAD)).0
                * &r_all)
                .sum()
        },
        &p.tok,
        EPS,
    );
    println!(
        "info   unmasked r: padding row analytic {} vs numeric {}: padding gets no gradient by design",
        g_all.dtok.row(PAD).mapv(round4),
        num_pad.row(PAD).mapv(round4)
    );
}

fn check_cross_entropy(t: &mut Tally) {
    let mut rng = init::rng(11);
    let logits: Array2<f64> = init::normal((5, 6), 2.0, &mut rng);
    let targets = [3, PAD, 5, 1, PAD]; // two padding rows
    let (_, cache) = cross_entropy::forward(logits.view(), &targets, Some(PAD));
    let dlogits = cross_entropy::backward(&cache);
    // The loss is already a scalar: no r needed.
    let num = numeric_grad(|z| cross_entropy::forward(z.view(), &targets, Some(PAD)).0, &logits, EPS);
    t.expect_pass("cross_entropy", compare("dlogits", &dlogits, &num));
}

fn check_mlp(t: &mut Tally) {
    let mut rng = init::rng(12);
    let mut p: mlp::Params<f64> = mlp::init(&[5, 8, 8, 3], Activation::GeluTanh, 0.2, &mut rng);
    let x: Array2<f64> = init::normal((6, 5), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 3), 1.0, &mut rng);
    let fwd = |p: &mlp::Params<f64>, x: ArrayView2<f64>| mlp::forward(p, x, &mut Mode::Train(&mut init::rng(13)));
    let (_, cache) = fwd(&p, x.view());
    let (dx, g) = mlp::backward(&p, &cache, r.view(), InputGrad::Need);
    let dx = dx.expect("asked for dx");
    let num = numeric_grad(|x| (fwd(&p, x.view()).0 * &r).sum(), &x, EPS);
    t.expect_pass("mlp", compare("dx", &dx, &num));
    let reports = check_tensors(&mut p, &g, |p| (fwd(p, x.view()).0 * &r).sum(), &opts());
    t.expect_pass_all("mlp", reports);
}

fn check_mixture(t: &mut Tally) {
    let mut rng = init::rng(14);
    let mut p: mixture::Params<f64> = mixture::init(&[5, 8, 3], &[5, 6], 3, Activation::GeluErf, 0.1, &mut rng);
    let x: Array2<f64> = init::normal((6, 5), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 3), 1.0, &mut rng);
    let fwd =
        |p: &mixture::Params<f64>, x: ArrayView2<f64>| mixture::forward(p, x, &mut Mode::Train(&mut init::rng(15)));
    let (_, cache) = fwd(&p, x.view());
    let (dx, g) = mixture::backward(&p, &cache, r.view(), InputGrad::Need);
    let dx = dx.expect("asked for dx");
    let num = numeric_grad(|x| (fwd(&p, x.view()).0 * &r).sum(), &x, EPS);
    t.expect_pass("moe", compare("dx", &dx, &num));
    let reports = check_tensors(&mut p, &g, |p| (fwd(p, x.view()).0 * &r).sum(), &opts());
    t.expect_pass_all("moe", reports);
}

fn check_classifier_step(t: &mut Tally) {
    let mut rng = init::rng(16);
    let mut model: Classifier<f64> = classifier::init_mlp(5, &[16], 3, 0.1, &mut rng);
    let x: Array2<f64> = init::normal((8, 5), 1.0, &mut rng);
    let y = [0, 2, 1, 1, 0, 2, 2, 0];
    // The very function the training loop calls: forward, cross-entropy, backward.
    let step = |m: &Classifier<f64>| classifier::train_step(m, x.view(), &y, &mut init::rng(17));
    let grads = step(&model).grads;
    let reports = check_tensors(&mut model, &grads, |m| step(m).loss, &opts());
    t.expect_pass_all("train_step", reports);
}

// ---------------------------------------------------------------------------------------
// 6: broken gradients

fn broken_gradients(t: &mut Tally) {
    println!("\n== 6. Deliberately broken gradients, and the reports that catch them");
    let mut rng = init::rng(42);
    let mut p: linear::Params<f64> =
        linear::Params { w: init::normal((4, 3), 1.0, &mut rng), b: init::normal(3, 1.0, &mut rng) };
    let x: Array2<f64> = init::normal((6, 4), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 3), 1.0, &mut rng);
    let (_, cache) = linear::forward(&p, x.view());

    println!("(a) Linear backward that forgets db (returns zeros):");
    let (_, mut g) = linear::backward(&p, &cache, r.view());
    g.db.fill(0.0);
    let reports = check_tensors(&mut p, &g, |p| (linear::forward(p, x.view()).0 * &r).sum(), &opts());
    for rep in reports {
        if rep.name == "b" {
            t.expect_caught("linear", rep);
        } else {
            t.expect_pass("linear", rep);
        }
    }

    println!("(b) Linear backward whose dx rows come out in reverse order (a mix-up of which token is which):");
    let buggy_dx = |dy: ArrayView2<f64>| dy.slice(s![..;-1, ..]).dot(&p.w.t());
    let ones = Array2::<f64>::ones((6, 3));
    let num_sum = numeric_grad(|x| linear::forward(&p, x.view()).0.sum(), &x, EPS);
    let mut fooled = compare("linear.dx", &buggy_dx(ones.view()), &num_sum);
    fooled.name += " (L = Σ y)";
    println!("fooled {fooled}");
    println!("       with L = Σ y, dy is all ones: every row of dx is alike, so reversing them changes nothing");
    let num_r = numeric_grad(|x| (linear::forward(&p, x.view()).0 * &r).sum(), &x, EPS);
    t.expect_caught("linear", compare("dx (L = Σ y ⊙ r)", &buggy_dx(r.view()), &num_r));

    println!("(c) Cross-entropy gradient that forgets to divide by N (here N = 3 real rows):");
    let logits: Array2<f64> = init::normal((4, 5), 1.0, &mut rng);
    let targets = [3, PAD, 4, 1];
    let (_, ce) = cross_entropy::forward(logits.view(), &targets, Some(PAD));
    let not_divided = cross_entropy::backward(&ce) * ce.n_real() as f64;
    let num = numeric_grad(|z| cross_entropy::forward(z.view(), &targets, Some(PAD)).0, &logits, EPS);
    let rep = compare("dlogits", &not_divided, &num);
    println!(
        "       analytic / numeric = {:.4}: a constant ratio means a missing scale factor",
        rep.analytic / rep.numeric
    );
    t.expect_caught("cross_entropy", rep);

    println!("(d) Not a bug: a correct softmax backward, on logits 3× larger, where some gradients are tiny:");
    let mut rng = init::rng(6);
    let x: Array2<f64> = init::normal((4, 5), 3.0, &mut rng);
    let r: Array2<f64> = init::normal((4, 5), 1.0, &mut rng);
    let dx = softmax_backward(softmax(x.view()).view(), r.view());
    let num = numeric_grad(|x| (softmax(x.view()) * &r).sum(), &x, EPS);
    let rep = compare("softmax.dx", &dx, &num);
    println!("info   {rep}");
    println!(
        "       |analytic − numeric| = {:.1e}: the rounding noise of the numeric side, large only next to a gradient of {:.1e}",
        (rep.analytic - rep.numeric).abs(),
        rep.analytic.abs()
    );
    let num = numeric_grad(|x| (softmax(x.view()) * &r).sum(), &x, 1e-4);
    let rep = compare("softmax.dx (ε = 1e-4)", &dx, &num);
    println!("info   {rep}");
    println!("       the rounding noise scales like 1/ε, so a larger ε shrinks it (Options::default() uses ε = 1e-4)");
}

// ---------------------------------------------------------------------------------------
// 7: why f64

fn why_f64() {
    println!("\n== 7. Why f64: relative error of (f(x+ε) − f(x−ε)) / 2ε against the exact gelu_tanh'(0.7)");
    let x = 0.7;
    let exact = activation::derivative::<f64>(Activation::GeluTanh, x);
    println!("     ε   f32 rel err   f64 rel err");
    for k in 1..=9 {
        let eps = 10f64.powi(-k);
        let d64 = (activation::value::<f64>(Activation::GeluTanh, x + eps)
            - activation::value::<f64>(Activation::GeluTanh, x - eps))
            / (2.0 * eps);
        let (x32, e32) = (x as f32, eps as f32);
        let d32 = (activation::value::<f32>(Activation::GeluTanh, x32 + e32)
            - activation::value::<f32>(Activation::GeluTanh, x32 - e32))
            / (2.0 * e32);
        let rel = |d: f64| tinymoe::engine::gradcheck::rel_err(d, exact);
        println!("{eps:>6.0e}   {:>11}   {:>11}", format!("{:.2e}", rel(d32 as f64)), format!("{:.2e}", rel(d64)));
    }
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4 + 0.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6 + 0.0
}
