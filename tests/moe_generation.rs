//! MoE LM generation with attribution: deterministic by seed, greedy deterministic, a forced
//! expert reported for every token, the classifier's prefix probabilities equal to a direct
//! `routed` call on that prefix, the context sliding as the dense generator's does, and
//! sampling going through `generate::sample`.

mod common;

use common::rng;
use ndarray::Array2;
use tinymoe::data::tokenizer::Bytes;
use tinymoe::engine::layers::Mode;
use tinymoe::engine::ops::softmax::softmax;
use tinymoe::engine::params::Tensors;
use tinymoe::models::generate::{generate_moe, sample, Sampling};
use tinymoe::models::moe_lm::{self, Config, ExpertKind};
use tinymoe::moe::layer::{Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::{Gating, Strategy};

const PAD: usize = 12;

fn model(level: Level, strategy: Strategy, domain: bool, seed: u64) -> moe_lm::Params<f64> {
    let cfg = Config {
        vocab: 13,
        max_seq: 8,
        d_model: 12,
        n_heads: 3,
        d_ff: 20,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 4,
        expert: ExpertKind::Mlp { hidden: 16 },
        router_hidden: None,
        noisy: false,
        level,
        gating: Gating { strategy, capacity_factor: None },
        router_losses: RouterLossConfig::paper(),
        domain_loss: domain.then_some(1.0),
        bidirectional_experts: false,
    };
    let mut p: moe_lm::Params<f64> = moe_lm::init(cfg, &mut rng(seed));
    // Bigger weights than 0.02 so the logits and the routing are far from uniform.
    for (_, mut t) in p.tensors_mut() {
        if t.ndim() == 2 {
            t.mapv_inplace(|v| v * 15.0);
        }
    }
    p
}

fn token_model() -> moe_lm::Params<f64> {
    model(Level::Token, Strategy::TopK(2), false, 5)
}

fn domain_model() -> moe_lm::Params<f64> {
    model(Level::Sequence, Strategy::TopK(1), true, 7)
}

const WARM: Sampling = Sampling { temperature: 1.0, top_k: None };

#[test]
fn same_seed_gives_the_same_tokens_and_another_seed_other_tokens() {
    for p in [token_model(), domain_model()] {
        let a = generate_moe(&p, &[1, 2, 3], 20, WARM, None, &mut rng(11));
        let b = generate_moe(&p, &[1, 2, 3], 20, WARM, None, &mut rng(11));
        assert_eq!(a, b);
        assert_eq!(a.new_tokens().len(), 20);
        assert_eq!(a.experts.len(), 23);
        assert_eq!(a.gates.dim(), (23, 4));
        let others: Vec<_> = (12..16).map(|s| generate_moe(&p, &[1, 2, 3], 20, WARM, None, &mut rng(s))).collect();
        assert!(others.iter().any(|o| o.tokens != a.tokens), "sampling depends on the seed");
        assert!(a.new_tokens().iter().all(|&t| t != PAD), "the padding id is never generated");
    }
}

#[test]
fn greedy_ignores_the_seed_and_takes_the_most_likely_token() {
    let p = token_model();
    let a = generate_moe(&p, &[4, 5], 15, Sampling::GREEDY, None, &mut rng(1));
    let b = generate_moe(&p, &[4, 5], 15, Sampling::GREEDY, None, &mut rng(2));
    assert_eq!(a, b);
    // The first new token is the argmax of a direct forward's last row (padding excluded).
    let ids = ndarray::array![[4usize, 5]];
    let targets = ndarray::array![[5usize, PAD]];
    let (_, cache) = moe_lm::forward(&p, ids.view(), targets.view(), None, Route::default(), &mut Mode::Eval);
    let last = cache.probs().row(1).to_owned();
    let best = (0..PAD).max_by(|&x, &y| last[x].total_cmp(&last[y])).unwrap();
    assert_eq!(a.new_tokens()[0], best);
}

#[test]
fn sampling_goes_through_generate_sample() {
    // The first sampled token equals `sample` on ln p of the prompt's last position, with the
    // same generator state.
    let p = token_model();
    let how = Sampling { temperature: 0.7, top_k: Some(5) };
    let got = generate_moe(&p, &[3, 9, 1], 1, how, None, &mut rng(21));
    let ids = ndarray::array![[3usize, 9, 1]];
    let targets = ndarray::array![[9usize, 1, PAD]];
    let (_, cache) = moe_lm::forward(&p, ids.view(), targets.view(), None, Route::default(), &mut Mode::Eval);
    let logp = cache.probs().row(2).mapv(f64::ln);
    let mut logp = logp.to_owned();
    logp[PAD] = f64::NEG_INFINITY;
    assert_eq!(got.new_tokens()[0], sample(logp.view(), how, &mut rng(21)));
}

#[test]
fn a_forced_expert_is_reported_for_every_token() {
    for p in [token_model(), domain_model()] {
        for e in 0..4 {
            let g = generate_moe(&p, &[1, 2, 3], 12, WARM, Some(e), &mut rng(3));
            assert!(g.experts.iter().all(|&x| x == e), "forced {e}: {:?}", g.experts);
            assert!(g.gates.rows().into_iter().all(|r| r[e] == 1.0), "gate 1 on the forced expert");
        }
        // Unforced, the routing is not constant (the weights are scaled to make it vary).
        let g = generate_moe(&p, &[1, 2, 3], 12, WARM, None, &mut rng(3));
        assert!(g.gates.iter().all(|v| v.is_finite()));
    }
    let free = generate_moe(&token_model(), &[1, 2, 3], 12, WARM, None, &mut rng(3));
    assert!(free.experts.iter().any(|&e| e != free.experts[0]), "token routing varies: {:?}", free.experts);
}

#[test]
fn prefix_probabilities_equal_a_direct_routed_call_on_that_prefix() {
    let p = domain_model();
    let g = generate_moe(&p, &[6, 2, 9], 10, WARM, None, &mut rng(8));
    let probs = g.domain_probs.as_ref().expect("a domain-routed model reports the classifier");
    assert_eq!(probs.dim(), (13, 4));
    for len in 1..=8 {
        let prefix = &g.tokens[..len];
        let ids = Array2::from_shape_vec((1, len), prefix.to_vec()).unwrap();
        let mut targets = ids.clone();
        targets.fill(PAD);
        let r = moe_lm::routed(&p, ids.view(), targets.view(), None, Route::default());
        let want = softmax(r.logits.view());
        assert_eq!(probs.row(len - 1), want.row(0), "after {len} tokens");
        // Unforced, the expert is the classifier's choice for that prefix.
        assert_eq!(g.experts[len - 1], r.chosen[len - 1][0], "after {len} tokens");
        let pred = g.prediction_after(len).unwrap();
        assert_eq!(pred.domain, moe_lm::argmax_rows(r.logits.view())[0]);
        assert!((pred.confidence - want[[0, pred.domain]]).abs() < 1e-15);
    }
    let lens: Vec<usize> = g.prediction_milestones().iter().map(|m| m.len).collect();
    assert_eq!(lens, vec![1, 2, 3, 4, 8, 13], "1, 2, 4, 8, …, the prompt's end and the end");
    assert!(token_model_has_no_domain_probs());
}

fn token_model_has_no_domain_probs() -> bool {
    let g = generate_moe(&token_model(), &[1], 2, WARM, None, &mut rng(1));
    g.domain_probs.is_none() && g.prediction_milestones().is_empty()
}

#[test]
fn past_max_seq_the_context_slides_like_the_dense_generator() {
    // max_seq 8: after 8 tokens the context keeps the last 4. The token read at position 9
    // (the 10th) is attributed from the context tokens[5..10] — compare with a direct call.
    let p = domain_model();
    let g = generate_moe(&p, &[1, 2, 3, 4, 5, 6, 7], 6, WARM, None, &mut rng(4));
    assert_eq!(g.tokens.len(), 13);
    // Contexts: len 8 → [0..8]; len 9 → slides to [5..9]; len 10 → [5..10]; … len 13 → [5..13].
    for (len, start) in [(8, 0), (9, 5), (10, 5), (13, 5)] {
        let ctx = &g.tokens[start..len];
        let ids = Array2::from_shape_vec((1, ctx.len()), ctx.to_vec()).unwrap();
        let mut targets = ids.clone();
        targets.fill(PAD);
        let r = moe_lm::routed(&p, ids.view(), targets.view(), None, Route::default());
        assert_eq!(g.domain_probs.as_ref().unwrap().row(len - 1), softmax(r.logits.view()).row(0), "len {len}");
    }
    // A prompt longer than max_seq is read through its last max_seq tokens.
    let long: Vec<usize> = (0..11).map(|i| i % 12).collect();
    let g = generate_moe(&p, &long, 0, WARM, None, &mut rng(4));
    let ids = Array2::from_shape_vec((1, 8), long[3..].to_vec()).unwrap();
    let mut targets = ids.clone();
    targets.fill(PAD);
    let r = moe_lm::routed(&p, ids.view(), targets.view(), None, Route::default());
    assert_eq!(g.domain_probs.as_ref().unwrap().row(10), softmax(r.logits.view()).row(0));
    assert_eq!(g.runs().iter().map(|(_, r)| r.len()).sum::<usize>(), 11, "runs cover every token");
}

#[test]
fn an_explorer_sample_carries_each_tokens_expert_and_the_classifiers_belief() {
    use tinymoe::run::moe_explorer::explorer_sample;
    let p = domain_model();
    let g = generate_moe(&p, &[1, 2, 3], 5, WARM, Some(2), &mut rng(6));
    let s = explorer_sample(&g, &Bytes, 1, 4);
    assert_eq!(s.tokens.len(), 8);
    assert_eq!(s.domain, 1);
    assert!(s.tokens.iter().all(|t| t.expert == 2), "the forced expert");
    let probs = g.domain_probs.as_ref().unwrap();
    assert_eq!(s.tokens[4].weights, probs.row(4).to_vec(), "hover shows the prefix probabilities");
    let last = g.prediction_after(8).unwrap();
    assert_eq!(s.predicted, Some((last.domain, last.confidence)));
    assert_eq!(explorer_sample(&g, &Bytes, 1, 0).predicted, None, "a prediction outside the domains is left out");
    // Token routing: the gates are the hover weights, no prediction.
    let g = generate_moe(&token_model(), &[1, 2, 3], 2, WARM, None, &mut rng(6));
    let s = explorer_sample(&g, &Bytes, 0, 4);
    assert_eq!(s.tokens[3].weights, g.gates.row(3).to_vec());
    assert_eq!(s.predicted, None);
}
