//! The dense soft mixture of MLP experts: every parameter's and the input's gradient
//! against finite differences, dropout included; and the mixture's defining identities.

mod common;

use common::{rng, uniform, TOL};
use ndarray::Array2;
use tinymoe::engine::gradcheck::{assert_close, assert_reports, check_tensors, numeric_grad, Options};
use tinymoe::engine::layers::{mlp, Activation, InputGrad, Mode};
use tinymoe::moe::mixture;

fn check(p_drop: f64) {
    let mut g = rng(21);
    let p: mixture::Params<f64> = mixture::init(&[6, 8, 4], &[6, 5], 3, Activation::Relu, p_drop, &mut g);
    let x: Array2<f64> = uniform((7, 6), &mut g);
    let r: Array2<f64> = uniform((7, 4), &mut g);
    let run = |p: &mixture::Params<f64>, x: &Array2<f64>| mixture::forward(p, x.view(), &mut Mode::Train(&mut rng(77)));
    let (_, cache) = run(&p, &x);
    let (dx, grads) = mixture::backward(&p, &cache, r.view(), InputGrad::Need);
    assert_close("mixture dx", &dx.unwrap(), &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, 1e-5), TOL);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    // gate: 2 layers, experts: 3 × 2 layers; w and b each.
    assert_eq!(reports.len(), 2 * 2 + 3 * 2 * 2);
    assert_reports(&reports, TOL);
}

#[test]
fn mixture_backward_matches_finite_differences() {
    check(0.0);
}

#[test]
fn mixture_with_dropout_backward_matches_finite_differences() {
    check(0.2);
}

/// Expert 1 of 3 switched off (E1's ablation): its gate logit is −∞, so the others
/// renormalise; the gradient still matches finite differences, and the expert that is off
/// gets exactly zero gradient.
#[test]
fn mixture_with_an_expert_switched_off_backward_matches_finite_differences() {
    let mut g = rng(23);
    let p: mixture::Params<f64> = mixture::init(&[6, 8, 4], &[6, 5], 3, Activation::Relu, 0.2, &mut g);
    let x: Array2<f64> = uniform((7, 6), &mut g);
    let r: Array2<f64> = uniform((7, 4), &mut g);
    let off = [false, true, false];
    let run = |p: &mixture::Params<f64>, x: &Array2<f64>| {
        mixture::forward_with_off(p, x.view(), Some(&off), &mut Mode::Train(&mut rng(78)))
    };
    let (_, cache) = run(&p, &x);
    let gates = cache.gates();
    for row in gates.rows() {
        // g₁ = 0 exactly; g₀ + g₂ = 1: renormalised over the experts left on.
        assert_eq!(row[1], 0.0);
        assert!((row[0] + row[2] - 1.0).abs() < 1e-12, "{row}");
    }
    let (dx, grads) = mixture::backward(&p, &cache, r.view(), InputGrad::Need);
    assert!(grads.experts[1].layers.iter().all(|l| l.dw.iter().chain(l.db.iter()).all(|&v| v == 0.0)));
    assert_close("mixture(off) dx", &dx.unwrap(), &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, 1e-5), TOL);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    assert_eq!(reports.len(), 2 * 2 + 3 * 2 * 2);
    assert_reports(&reports, TOL);
}

#[test]
fn mixture_output_is_the_gate_weighted_sum_of_experts() {
    let mut g = rng(22);
    let p: mixture::Params<f64> = mixture::init(&[5, 6, 3], &[5, 4], 4, Activation::Relu, 0.0, &mut g);
    let x: Array2<f64> = uniform((3, 5), &mut g);
    let (y, cache) = mixture::forward(&p, x.view(), &mut Mode::Eval);
    let gates = cache.gates();
    for row in gates.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12, "gates are a distribution");
    }
    let mut expected = Array2::<f64>::zeros((3, 3));
    for (e, expert) in p.experts.iter().enumerate() {
        let (ye, _) = mlp::forward(expert, x.view(), &mut Mode::Eval);
        for r in 0..3 {
            for c in 0..3 {
                expected[[r, c]] += gates[[r, e]] * ye[[r, c]];
            }
        }
    }
    assert!((&y - &expected).iter().all(|d| d.abs() < 1e-12));
}

#[test]
fn one_expert_mixture_is_that_expert() {
    // With E = 1 the softmax gate is exactly 1: the mixture is the expert, and the gate
    // gets zero gradient.
    let mut g = rng(23);
    let p: mixture::Params<f64> = mixture::init(&[4, 5, 2], &[4, 3], 1, Activation::Relu, 0.0, &mut g);
    let x: Array2<f64> = uniform((6, 4), &mut g);
    let (y, cache) = mixture::forward(&p, x.view(), &mut Mode::Eval);
    let (ye, _) = mlp::forward(&p.experts[0], x.view(), &mut Mode::Eval);
    assert_eq!(y, ye);
    let (_, grads) = mixture::backward(&p, &cache, Array2::ones((6, 2)).view(), InputGrad::Skip);
    let gate_norm: f64 =
        grads.gate.layers.iter().map(|l| l.dw.iter().chain(l.db.iter()).map(|v| v.abs()).sum::<f64>()).sum();
    assert!(gate_norm < 1e-12);
}
