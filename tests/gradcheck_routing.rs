//! The MoE layer (src/moe/layer.rs) against central finite differences in f64, for every
//! router and routing variant: dense and top-k, noisy gating, capacity dropping, MLP and
//! transformer-stack experts, token- and sequence-level routing with padding, hard
//! (assigned) routing, and the router-loss gradient entering through the logits.
//! Top-k is checked away from ties: random weights make two equal scores improbable, and a
//! test below asserts the perturbation never changes a choice.

mod common;

use common::{rng, uniform, TOL};
use ndarray::{Array2, ArrayView2};
use tinymoe::engine::gradcheck::{assert_close, assert_reports, check_tensors, numeric_grad, Options};
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::{Activation, Mode};
use tinymoe::engine::params::Tensors;
use tinymoe::moe::expert::Expert;
use tinymoe::moe::layer::{self, Config, Level, Route};
use tinymoe::moe::routing::{Gating, Strategy};

const D: usize = 6;
const BATCH: usize = 3;
const SEQ: usize = 4;

struct Case {
    level: Level,
    gating: Gating,
    stack: bool,
    router_hidden: Option<usize>,
    noisy: bool,
    padding: bool,
    assigned: Option<Vec<Option<usize>>>,
}

fn build(c: &Case, seed: u64) -> layer::Params<f64> {
    let mut g = rng(seed);
    let config = Config { level: c.level, gating: c.gating, passthrough: c.stack };
    let mut p = layer::init(
        D,
        c.router_hidden,
        c.noisy,
        4,
        config,
        |r| if c.stack { Expert::stack(1, D, 2, 8, 0.0, r) } else { Expert::mlp(&[D, 7, D], Activation::Relu, 0.0, r) },
        &mut g,
    );
    // Make every tensor non-trivial (LayerNorm gains, biases and W_noise start at 1 or 0).
    for (_, mut t) in p.tensors_mut() {
        t.mapv_inplace(|v: f64| v + 0.3 * (v * 7.0 + 1.3).sin());
    }
    p
}

fn padding() -> Array2<u8> {
    // Sequence 1 has two padding positions, sequence 2 one.
    ndarray::array![[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
}

fn check(c: Case) {
    let p = build(&c, 5);
    let mut g = rng(6);
    let x: Array2<f64> = uniform((BATCH * SEQ, D), &mut g);
    let r: Array2<f64> = uniform((BATCH * SEQ, D), &mut g);
    let pad = padding();
    let key_padding = c.padding.then(|| pad.view());
    let causal = c.stack;
    let run = |p: &layer::Params<f64>, x: ArrayView2<f64>| {
        let route = Route { intervention: None, assigned: c.assigned.as_deref() };
        let mask = Mask { causal, key_padding };
        layer::forward(p, x, BATCH, SEQ, mask, route, &mut Mode::Train(&mut rng(99)))
    };
    let (_, cache) = run(&p, x.view());
    let m = cache.logits().nrows();
    let q: Array2<f64> = uniform((m, 4), &mut rng(7));
    // L = Σ y ⊙ r + Σ z ⊙ q: the second term stands in for a router loss with ∂L/∂z = q.
    let loss = |p: &layer::Params<f64>, x: ArrayView2<f64>| {
        let (y, c) = run(p, x);
        (y * &r).sum() + (c.logits() * &q).sum()
    };
    let (dx, grads) = layer::backward(&p, &cache, r.view(), Some(q.view()));
    assert_close("moe layer dx", &dx, &numeric_grad(|x| loss(&p, x.view()), &x, 1e-5), TOL);
    let mut params = p.clone();
    let reports =
        check_tensors(&mut params, &grads, |p| loss(p, x.view()), &Options { eps: 1e-5, ..Options::default() });
    assert_eq!(reports.len(), p.tensors().len());
    assert_reports(&reports, TOL);

    // The perturbations above did not move any choice (the check was away from ties).
    for (_, mut t) in params.tensors_mut() {
        t.mapv_inplace(|v: f64| v + 1e-5);
    }
    let (_, moved) = run(&params, x.view());
    assert_eq!(
        moved.decision().chosen,
        cache.decision().chosen,
        "a 1e-5 nudge changed the routing: too close to a tie"
    );
}

fn case(level: Level, gating: Gating, stack: bool) -> Case {
    Case { level, gating, stack, router_hidden: None, noisy: false, padding: false, assigned: None }
}

#[test]
fn dense_token_routing_with_mlp_experts() {
    check(case(Level::Token, Gating::DENSE, false));
}

#[test]
fn dense_token_routing_with_feed_forward_router_and_padding() {
    check(Case { router_hidden: Some(5), padding: true, ..case(Level::Token, Gating::DENSE, false) });
}

#[test]
fn top2_token_routing_with_noisy_gating() {
    check(Case { noisy: true, router_hidden: Some(5), ..case(Level::Token, Gating::top_k(2), false) });
}

#[test]
fn top1_token_routing_with_capacity_dropping() {
    let gating = Gating { strategy: Strategy::TopK(1), capacity_factor: Some(0.5) };
    let c = case(Level::Token, gating, false);
    let p = build(&c, 5);
    let x: Array2<f64> = uniform((BATCH * SEQ, D), &mut rng(6));
    let (_, cache) = layer::forward(
        &p,
        x.view(),
        BATCH,
        SEQ,
        Mask { causal: false, key_padding: None },
        Route::default(),
        &mut Mode::Eval,
    );
    // capacity = ⌈0.5 · 1 · 12 / 4⌉ = 2 per expert: at most 8 of 12 tokens are served.
    assert!(cache.stats().dropped >= 4, "capacity 2 × 4 experts must drop ≥ 4 of 12 tokens");
    assert!(cache.stats().tokens.iter().all(|&t| t <= 2));
    check(c);
}

#[test]
fn top2_token_routing_with_stack_experts_and_padding() {
    check(Case { padding: true, ..case(Level::Token, Gating::top_k(2), true) });
}

#[test]
fn dense_token_routing_with_stack_experts_and_padding() {
    check(Case { padding: true, router_hidden: Some(5), ..case(Level::Token, Gating::DENSE, true) });
}

#[test]
fn sequence_level_top1_with_stack_experts_pools_only_real_tokens() {
    check(Case { padding: true, ..case(Level::Sequence, Gating::top_k(1), true) });
}

#[test]
fn sequence_level_top2_with_mlp_experts_and_padding() {
    check(Case { padding: true, router_hidden: Some(5), ..case(Level::Sequence, Gating::top_k(2), false) });
}

#[test]
fn assigned_routing_sends_router_gradient_only_through_its_own_loss() {
    // Domain-classifier routing: sequences 0 and 2 go to their label's expert with gate 1
    // (teacher forcing), sequence 1 to the classifier's top-1 choice (also gate 1); the
    // router (the classifier) learns only from ∂L/∂z of its cross-entropy (q in `check`).
    check(Case {
        padding: true,
        assigned: Some(vec![Some(2), None, Some(2)]),
        ..case(Level::Sequence, Gating::top_k(1), true)
    });
}

#[test]
fn dropped_tokens_pass_through_stack_experts_and_gradients_still_match() {
    // With passthrough, a dropped assignment's share of the stream is x itself:
    // y = Σ_kept g·f(x) + (1 − Σ_kept g)·x, so ∂L/∂g of a kept expert is dy·(f(x) − x).
    let gating = Gating { strategy: Strategy::TopK(2), capacity_factor: Some(0.25) };
    let c = Case { padding: true, ..case(Level::Token, gating, true) };
    let p = build(&c, 5);
    let x: Array2<f64> = uniform((BATCH * SEQ, D), &mut rng(6));
    let pad = padding();
    let mask = Mask { causal: true, key_padding: Some(pad.view()) };
    let (y, cache) = layer::forward(&p, x.view(), BATCH, SEQ, mask, Route::default(), &mut Mode::Eval);
    assert!(cache.stats().dropped > 0);
    // A real token whose every assignment was dropped comes out unchanged.
    let d = cache.decision();
    let untouched: Vec<usize> = (0..BATCH * SEQ)
        .filter(|&r| cache.unit_mask()[r] && d.chosen[r].iter().all(|&e| d.kept[[r, e]] == 0.0))
        .collect();
    assert!(!untouched.is_empty(), "capacity 0.25 with top-2 leaves some token with no expert");
    for r in untouched {
        assert_eq!(y.row(r), x.row(r));
    }
    check(c);
}

#[test]
fn switch_style_top1_weights_by_the_full_softmax_and_trains_the_router() {
    // Gates are p = softmax over all experts, not renormalised over the one chosen: the
    // router gets a gradient from the main loss even with k = 1.
    let gating = Gating { strategy: Strategy::TopKProbs(1), capacity_factor: Some(1.0) };
    check(Case { padding: true, ..case(Level::Token, gating, false) });
    check(Case {
        noisy: true,
        ..case(Level::Token, Gating { strategy: Strategy::TopKProbs(2), capacity_factor: None }, true)
    });
}
