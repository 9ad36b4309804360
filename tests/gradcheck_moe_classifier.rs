//! The MoE classifier (src/models/moe_classifier.rs): every parameter's gradient of the whole
//! loss (cross-entropy + router losses) against central finite differences in f64, for top-2
//! routing (linear and feed-forward routers, noise, dropout), dense routing and top-1 with
//! capacity dropping; plus the facts the chapters rely on, and the training loop's contract.
//!
//! Top-k is checked away from ties: the weights are scaled so that the logits of a row are
//! well apart, and each check asserts that no row's k-th and (k+1)-th logits are within
//! `MARGIN` of each other (a finite-difference step of 1e-4 moves a logit by far less).

mod common;

use common::{rng, uniform, TOL};
use ndarray::{Array2, ArrayView2};
use tinymoe::engine::gradcheck::{assert_reports, check_tensors, Options};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_classifier::{self as mc, Config, Fit};
use tinymoe::moe::layer::Route;
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::{Gating, Strategy};
use tinymoe::Error;

const ROWS: usize = 9;
const D_IN: usize = 5;
const CLASSES: usize = 3;
const N_EXPERTS: usize = 4;
/// The smallest allowed gap between a row's last chosen and first unchosen logit.
const MARGIN: f64 = 1e-2;

/// Every router loss on, with coefficients large enough to matter next to the cross-entropy.
fn all_router_losses() -> RouterLossConfig {
    RouterLossConfig { balance: 0.3, z_loss: 0.05, token_entropy: 0.2, batch_entropy: -0.1 }
}

fn config(gating: Gating, router_hidden: Option<usize>, noisy: bool, dropout: f64) -> Config {
    Config {
        d_in: D_IN,
        hidden: vec![7],
        classes: CLASSES,
        n_experts: N_EXPERTS,
        router_hidden,
        noisy,
        gating,
        router_losses: all_router_losses(),
        dropout,
    }
}

/// A model whose every tensor is non-trivial: zero biases and W_noise get values, and the
/// router's weights are redrawn U(−1, 1) (biases U(−0.1, 0.1)), so a row's logits are far
/// apart (its N(0, 0.02²) output layer would make every expert almost equally likely:
/// near-ties everywhere).
fn build(cfg: &Config, seed: u64) -> mc::Params<f64> {
    let mut g = rng(seed);
    let mut p: mc::Params<f64> = mc::init(cfg, &mut g);
    for (name, mut t) in p.tensors_mut() {
        if name.starts_with("moe.router.") {
            // Small biases: the input, not a bias, decides the route, so every expert gets rows.
            let a = if name.ends_with(".b") { 0.1 } else { 1.0 };
            t.assign(&tinymoe::engine::init::uniform(t.raw_dim(), a, &mut g));
        } else {
            t.mapv_inplace(|v: f64| v + 0.3 * (v * 7.0 + 1.3).sin());
        }
    }
    p
}

/// The smallest gap, over rows, between the k-th and (k+1)-th largest router logits.
fn tie_gap(logits: ArrayView2<f64>, k: usize) -> f64 {
    logits
        .rows()
        .into_iter()
        .map(|row| {
            let mut v: Vec<f64> = row.to_vec();
            v.sort_by(|a, b| b.partial_cmp(a).expect("finite logits"));
            if k < v.len() {
                v[k - 1] - v[k]
            } else {
                f64::INFINITY
            }
        })
        .fold(f64::INFINITY, f64::min)
}

fn data(seed: u64) -> (Array2<f64>, Vec<usize>) {
    let x: Array2<f64> = uniform((ROWS, D_IN), &mut rng(seed));
    let y = (0..ROWS).map(|r| (r * 7 + 1) % CLASSES).collect();
    (x, y)
}

/// Checks every tensor of the model; returns the forward's stats for further assertions.
fn check(cfg: Config) -> tinymoe::moe::layer::Stats {
    let p = build(&cfg, 11);
    let (x, y) = data(12);
    // One fixed generator per call: the same dropout masks and the same noise every time.
    let run = |p: &mc::Params<f64>| mc::forward(p, x.view(), &y, Route::default(), &mut Mode::Train(&mut rng(99)));
    let (losses, cache) = run(&p);
    assert!(losses.router.total.abs() > 1e-3, "the router losses take part: {:?}", losses.router);
    if let Strategy::TopK(k) = cfg.gating.strategy {
        let gap = tie_gap(cache.moe().logits().view(), k);
        assert!(gap > MARGIN, "a near-tie (gap {gap:.2e}) would make the check meaningless");
    }
    // Every expert takes part, so no expert's check compares zeros with zeros.
    assert_eq!(cache.moe().stats().calls, vec![1; N_EXPERTS], "{:?}", cache.moe().stats());
    let grads = mc::backward(&p, &cache);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| run(p).0.total, &Options::default());
    assert!(!reports.is_empty());
    assert_reports(&reports, TOL);
    cache.moe().stats().clone()
}

#[test]
fn top2_linear_router_with_every_router_loss_matches_finite_differences() {
    let stats = check(config(Gating::top_k(2), None, false, 0.0));
    assert_eq!(stats.dropped, 0);
}

#[test]
fn top2_feed_forward_noisy_router_with_dropout_matches_finite_differences() {
    check(config(Gating::top_k(2), Some(6), true, 0.2));
}

#[test]
fn dense_feed_forward_router_matches_finite_differences() {
    let stats = check(config(Gating::DENSE, Some(6), false, 0.0));
    assert_eq!(stats.tokens, vec![ROWS; N_EXPERTS], "dense: every expert runs on every row");
}

#[test]
fn top1_with_capacity_dropping_matches_finite_differences() {
    let gating = Gating { strategy: Strategy::TopK(1), capacity_factor: Some(0.5) };
    let stats = check(config(gating, None, false, 0.0));
    assert!(stats.dropped > 0, "capacity ⌈0.5·9/4⌉ = 2 per expert should drop something: {stats:?}");
}

#[test]
fn an_expert_no_row_chose_is_not_called_and_gets_zero_gradient() {
    let cfg = config(Gating::top_k(1), None, false, 0.0);
    let mut p = build(&cfg, 13);
    // A large negative bias: expert 3 is never in anyone's top 1.
    p.moe.router.net.layers[0].b[3] = -1e3;
    let (x, y) = data(14);
    let (_, cache) = mc::forward(&p, x.view(), &y, Route::default(), &mut Mode::Eval);
    assert_eq!(cache.moe().stats().calls[3], 0);
    let grads = mc::backward(&p, &cache);
    for (name, g) in grads.tensors() {
        if name.starts_with("moe.experts.3.") {
            assert!(g.iter().all(|&v| v == 0.0), "{name} should be zero");
        }
    }
}

#[test]
fn under_dense_routing_the_switch_loss_is_the_constant_alpha() {
    // Dense: every row dispatches to every expert, f = 1/E, so L = α·E·Σ (1/E)·Pᵢ = α.
    let mut cfg = config(Gating::DENSE, None, false, 0.0);
    cfg.router_losses = RouterLossConfig { balance: 0.01, ..RouterLossConfig::default() };
    let p = build(&cfg, 15);
    let (x, y) = data(16);
    let (losses, _) = mc::forward(&p, x.view(), &y, Route::default(), &mut Mode::Eval);
    assert!((losses.router.balance - 0.01).abs() < 1e-15, "{:?}", losses.router);
}

fn sentiment_like(n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    // Three Gaussian blobs in 5-d: enough for a quick training check.
    let mut g = rng(seed);
    let y: Vec<usize> = (0..n).map(|r| r % CLASSES).collect();
    let noise: Array2<f32> = tinymoe::engine::init::normal((n, D_IN), 1.0, &mut g);
    let x = Array2::from_shape_fn((n, D_IN), |(r, c)| noise[[r, c]] + if c == y[r] { 2.5 } else { 0.0 });
    (x, y)
}

#[test]
fn fit_learns_is_seeded_and_reports_every_step() {
    let mut cfg = config(Gating::top_k(2), None, false, 0.0);
    cfg.router_losses = RouterLossConfig::paper();
    let (x, y) = sentiment_like(300, 17);
    let train = |seed: u64| {
        let mut p: mc::Params<f32> = mc::init(&cfg, &mut rng(18));
        let mut seen = 0;
        let logs = mc::fit(&mut p, x.view(), &y, &Fit::adam(5, 32, 1e-2, seed), &mut |_, _| seen += 1).expect("trains");
        assert_eq!(seen, logs.len());
        (p, logs)
    };
    let (p, a) = train(1);
    let (_, b) = train(1);
    let (_, c) = train(2);
    assert_eq!(a.len(), 5 * 300usize.div_ceil(32));
    let losses = |l: &[mc::StepLog]| l.iter().map(|s| s.losses.total).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b), "the same seed gives the same losses");
    assert_ne!(losses(&a), losses(&c), "another seed shuffles differently");
    for log in &a {
        assert!((log.utilisation.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let e = mc::evaluate(&p, x.view(), &y, 64);
    assert!(e.accuracy > 0.85, "accuracy {}", e.accuracy);
    assert!((e.load.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!((0.0..=1.0).contains(&e.specialisation));
}

#[test]
fn fit_rejects_data_that_does_not_fit_the_model() {
    let cfg = config(Gating::top_k(2), None, false, 0.0);
    let mut p: mc::Params<f32> = mc::init(&cfg, &mut rng(19));
    let (x, mut y) = sentiment_like(30, 20);
    let fit = Fit::adam(1, 8, 1e-3, 0);
    let wide = Array2::<f32>::zeros((30, D_IN + 1));
    let err = mc::fit(&mut p, wide.view(), &y, &fit, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::BadValue { .. }) && err.to_string().contains("reads 5 features"), "{err}");
    y[4] = CLASSES;
    let err = mc::fit(&mut p, x.view(), &y, &fit, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("label = 3"), "{err}");
    let mut bad = cfg.clone();
    bad.gating = Gating::top_k(5);
    assert!(bad.validate().unwrap_err().to_string().contains("top_k = 5"));
}
