//! What the routing does, checked on its outputs: sparse dispatch (unchosen experts do no
//! work), top-k renormalisation, capacity, padding, and every intervention's effect.

mod common;

use common::{rng, uniform};
use ndarray::{array, Array2};
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::{mlp, Activation, Mode};
use tinymoe::engine::ops::softmax::softmax;
use tinymoe::moe::expert::{self, Expert};
use tinymoe::moe::layer::{self, Config, Level, Route};
use tinymoe::moe::routing::{self, capacity, Gating, Intervention, Strategy};

fn mlp_layer(n_experts: usize, gating: Gating, seed: u64) -> layer::Params<f64> {
    let config = Config { level: Level::Token, gating, passthrough: false };
    let mut p = layer::init(
        5,
        None,
        false,
        n_experts,
        config,
        |r| Expert::mlp(&[5, 6, 5], Activation::Relu, 0.0, r),
        &mut rng(seed),
    );
    // A router with real preferences (the 0.02 init makes every expert almost equally likely).
    p.router.net.layers[0].w.mapv_inplace(|v| v * 100.0);
    p
}

fn run(p: &layer::Params<f64>, x: &Array2<f64>, iv: Option<&Intervention>) -> (Array2<f64>, layer::Cache<f64>) {
    let n = x.nrows();
    let route = Route { intervention: iv, assigned: None };
    layer::forward(p, x.view(), n, 1, Mask { causal: false, key_padding: None }, route, &mut Mode::Eval)
}

#[test]
fn unchosen_experts_do_no_work() {
    // Top-1 over 10 experts with a router forced to prefer experts 0 and 1 only: the other
    // eight are never called, and every token is computed by exactly one expert.
    let mut p = mlp_layer(10, Gating::top_k(1), 1);
    p.router.net.layers[0].b = array![5.0, 5.0, -50.0, -50.0, -50.0, -50.0, -50.0, -50.0, -50.0, -50.0];
    let x = uniform((40, 5), &mut rng(2));
    let (_, cache) = run(&p, &x, None);
    let s = cache.stats();
    assert_eq!(&s.calls[2..], &[0; 8], "experts 2–9 got no tokens and must not run");
    assert_eq!(s.calls[0] + s.calls[1], 2);
    assert_eq!(s.tokens.iter().sum::<usize>(), 40, "each token computed exactly once");
    assert_eq!(s.rows, s.tokens, "an MLP expert reads exactly its own tokens");
}

#[test]
fn top_k_output_is_the_renormalised_sum_of_the_chosen_experts() {
    let p = mlp_layer(4, Gating::top_k(2), 3);
    let x = uniform((6, 5), &mut rng(4));
    let (y, cache) = run(&p, &x, None);
    let (z, _) = mlp::forward(&p.router.net, x.view(), &mut Mode::Eval);
    let probs = softmax(z.view());
    for r in 0..6 {
        let chosen = &cache.decision().chosen[r];
        assert_eq!(chosen.len(), 2);
        // The two chosen are the two most probable.
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by(|&a, &b| probs[[r, b]].partial_cmp(&probs[[r, a]]).unwrap());
        assert_eq!(chosen, &order[..2]);
        let total = probs[[r, chosen[0]]] + probs[[r, chosen[1]]];
        let mut expected = ndarray::Array1::<f64>::zeros(5);
        for &e in chosen {
            let (ye, _) = expert::forward(
                &p.experts[e],
                x.slice(ndarray::s![r..r + 1, ..]),
                1,
                1,
                Mask { causal: false, key_padding: None },
                &mut Mode::Eval,
            );
            expected.scaled_add(probs[[r, e]] / total, &ye.row(0));
        }
        assert!((&y.row(r) - &expected).iter().all(|d| d.abs() < 1e-12));
    }
}

#[test]
fn capacity_drops_the_overflow_first_choices_first() {
    // 4 units all preferring expert 0, capacity ⌈1.0·1·4/2⌉ = 2: units 0 and 1 are served,
    // 2 and 3 are dropped (their gate stays, the expert does not run on them).
    let h = array![[3.0, 0.0], [2.0, 0.0], [4.0, 0.0], [1.0, 0.0]];
    let gating = Gating { strategy: Strategy::TopK(1), capacity_factor: Some(1.0) };
    let d = routing::decide(h.view(), &[true; 4], gating, &Intervention::none(), None);
    assert_eq!(capacity(1.0, 1, 4, 2), 2);
    assert_eq!(d.kept.column(0).to_vec(), vec![1.0, 1.0, 0.0, 0.0]);
    assert_eq!(d.dropped, 2);
    assert_eq!(d.load(), vec![2, 0]);
    // Top-2 with capacity: second choices are served after every first choice.
    let gating = Gating { strategy: Strategy::TopK(2), capacity_factor: Some(1.0) };
    let d = routing::decide(h.view(), &[true; 4], gating, &Intervention::none(), None);
    // capacity ⌈1·2·4/2⌉ = 4 each: everything fits.
    assert_eq!(d.dropped, 0);
}

#[test]
fn padding_units_choose_nothing_and_get_no_output() {
    let p = mlp_layer(3, Gating::DENSE, 5);
    let x = uniform((2 * 3, 5), &mut rng(6));
    let pad = array![[1u8, 1, 0], [1, 0, 0]];
    let (y, cache) = layer::forward(
        &p,
        x.view(),
        2,
        3,
        Mask { causal: false, key_padding: Some(pad.view()) },
        Route::default(),
        &mut Mode::Eval,
    );
    for r in [2, 4, 5] {
        assert!(cache.decision().chosen[r].is_empty());
        assert!(y.row(r).iter().all(|&v| v == 0.0));
    }
    assert_eq!(cache.stats().tokens, vec![3, 3, 3], "3 real tokens reach every expert under dense routing");
}

#[test]
fn forcing_sends_everything_to_one_expert() {
    let p = mlp_layer(4, Gating::top_k(2), 7);
    let x = uniform((10, 5), &mut rng(8));
    let iv = Intervention { force: Some(3), ..Intervention::none() };
    let (y, cache) = run(&p, &x, Some(&iv));
    assert_eq!(cache.stats().calls, vec![0, 0, 0, 1]);
    let (y3, _) = mlp::forward(
        match &p.experts[3] {
            Expert::Mlp(m) => m,
            Expert::Stack(_) => unreachable!(),
        },
        x.view(),
        &mut Mode::Eval,
    );
    assert!((&y - &y3).iter().all(|d| d.abs() < 1e-12), "gate 1 on expert 3: the output is expert 3's");
}

#[test]
fn switching_an_expert_off_renormalises_the_rest() {
    let p = mlp_layer(3, Gating::DENSE, 9);
    let x = uniform((8, 5), &mut rng(10));
    let (_, before) = run(&p, &x, None);
    let iv = Intervention { disabled: vec![1], ..Intervention::none() };
    let (_, after) = run(&p, &x, Some(&iv));
    assert_eq!(after.stats().calls[1], 0);
    for r in 0..8 {
        let g = before.decision().gates.row(r);
        let h = after.decision().gates.row(r);
        assert_eq!(h[1], 0.0);
        let rest = g[0] + g[2];
        assert!((h[0] - g[0] / rest).abs() < 1e-12 && (h[2] - g[2] / rest).abs() < 1e-12);
    }
}

#[test]
fn steering_offsets_move_routing_towards_an_expert() {
    let p = mlp_layer(4, Gating::top_k(1), 11);
    let x = uniform((200, 5), &mut rng(12));
    let share = |iv: Option<&Intervention>| run(&p, &x, iv).1.stats().tokens[2] as f64 / 200.0;
    let base = share(None);
    let up = share(Some(&Intervention { offsets: Some(vec![0.0, 0.0, 2.0, 0.0]), ..Intervention::none() }));
    let down = share(Some(&Intervention { offsets: Some(vec![0.0, 0.0, -2.0, 0.0]), ..Intervention::none() }));
    assert!(up > base && base > down, "expert 2's share: down {down}, base {base}, up {up}");
    // A large offset is a force.
    let all = share(Some(&Intervention { offsets: Some(vec![0.0, 0.0, 1e3, 0.0]), ..Intervention::none() }));
    assert_eq!(all, 1.0);
}

#[test]
fn sequence_level_routing_sends_whole_sequences() {
    let config = Config { level: Level::Sequence, gating: Gating::top_k(1), passthrough: true };
    let p = layer::init(4, Some(4), false, 3, config, |r| Expert::stack(1, 4, 2, 8, 0.0, r), &mut rng(13));
    let x = uniform((3 * 5, 4), &mut rng(14));
    let pad = array![[1u8, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]];
    let mask = Mask { causal: true, key_padding: Some(pad.view()) };
    let (_, cache) = layer::forward(&p, x.view(), 3, 5, mask, Route::default(), &mut Mode::Eval);
    assert_eq!(cache.logits().nrows(), 3, "one decision per sequence");
    // Every real token of a sequence takes its sequence's expert: 5 + 3 + 4 = 12 tokens.
    assert_eq!(cache.stats().tokens.iter().sum::<usize>(), 12);
    // Assigned routing overrides the router.
    let route = Route { intervention: None, assigned: Some(&[Some(2), Some(2), Some(0)]) };
    let (_, cache) = layer::forward(&p, x.view(), 3, 5, mask, route, &mut Mode::Eval);
    assert_eq!(cache.stats().tokens, vec![4, 0, 8]);
    assert_eq!(cache.stats().calls, vec![1, 0, 1]);
}
