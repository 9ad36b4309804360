//! Generation: the KV-cached decoder computes exactly what a full forward computes, greedy and
//! sampled generation are deterministic for a seed, and sampling follows softmax(logits / T).

mod common;

use common::rng;
use ndarray::{array, s, Array2};
use tinymoe::engine::params::Tensors;
use tinymoe::models::generate::{generate, sample, Decode, Decoder, Sampling};
use tinymoe::models::transformer_lm::{self as lm, Config};

fn model(tie_head: bool, seed: u64) -> lm::Params<f64> {
    let cfg = Config {
        vocab: 13,
        max_seq: 8,
        d_model: 12,
        n_heads: 3,
        d_ff: 20,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head,
    };
    let mut p: lm::Params<f64> = lm::init(cfg, &mut rng(seed));
    // Bigger weights than GPT-2's 0.02 so the logits are far from uniform and every layer matters.
    for (_, mut t) in p.tensors_mut() {
        if t.ndim() == 2 {
            t.mapv_inplace(|v| v * 15.0);
        }
    }
    p
}

#[test]
fn kv_cache_logits_equal_a_full_forward_at_every_position() {
    for tie_head in [false, true] {
        let p = model(tie_head, 5);
        let ids = [3usize, 7, 1, 12, 0, 5, 5, 9];
        let full = lm::predict(&p, Array2::from_shape_vec((1, ids.len()), ids.to_vec()).unwrap().view());
        let mut decoder = Decoder::new(&p);
        for (t, &id) in ids.iter().enumerate() {
            let step = decoder.push(&p, id);
            let want = full.slice(s![0, t, ..]);
            let worst = step.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-12, "tied {tie_head}, position {t}: KV-cache logits differ by {worst:e}");
        }
        assert_eq!(decoder.len(), ids.len());
    }
}

#[test]
fn kv_cache_generation_equals_full_recompute_even_when_the_context_slides() {
    let p = model(false, 9);
    // 20 new tokens with max_seq 8: the context slides several times.
    for how in
        [Sampling::GREEDY, Sampling { temperature: 1.0, top_k: None }, Sampling { temperature: 0.7, top_k: Some(4) }]
    {
        let kv = generate(&p, &[1, 2, 3], 20, how, Decode::KvCache, &mut rng(77));
        let full = generate(&p, &[1, 2, 3], 20, how, Decode::Recompute, &mut rng(77));
        assert_eq!(kv, full, "{how:?}");
        assert_eq!(kv.len(), 20);
        assert!(kv.iter().all(|&t| t < 13));
    }
}

#[test]
fn generation_is_deterministic_for_a_seed_and_varies_across_seeds() {
    let p = model(true, 2);
    let how = Sampling { temperature: 1.5, top_k: None };
    let a = generate(&p, &[4], 30, how, Decode::KvCache, &mut rng(1));
    let b = generate(&p, &[4], 30, how, Decode::KvCache, &mut rng(1));
    let c = generate(&p, &[4], 30, how, Decode::KvCache, &mut rng(2));
    assert_eq!(a, b);
    assert_ne!(a, c, "two seeds gave the same 30 sampled tokens");
    // Greedy ignores the seed.
    let g1 = generate(&p, &[4], 10, Sampling::GREEDY, Decode::KvCache, &mut rng(1));
    let g2 = generate(&p, &[4], 10, Sampling::GREEDY, Decode::KvCache, &mut rng(2));
    assert_eq!(g1, g2);
    // Top-1 sampling is greedy.
    let t1 = generate(&p, &[4], 10, Sampling { temperature: 1.0, top_k: Some(1) }, Decode::KvCache, &mut rng(3));
    assert_eq!(t1, g1);
}

#[test]
fn greedy_picks_the_largest_logit_and_ties_go_to_the_lowest_id() {
    assert_eq!(sample(array![0.1, 2.0, -1.0, 2.0].view(), Sampling::GREEDY, &mut rng(0)), 1);
}

#[test]
fn sampling_frequencies_follow_softmax_of_logits_over_temperature() {
    let logits = array![1.0f64, 0.0, -1.0, 2.0];
    for (temperature, top_k) in [(1.0, None), (0.5, None), (2.0, Some(2))] {
        let kept: Vec<usize> = match top_k {
            Some(_) => vec![3, 0],
            None => (0..4).collect(),
        };
        let z: f64 = kept.iter().map(|&i| (logits[i] / temperature).exp()).sum();
        let mut counts = [0usize; 4];
        let mut g = rng(11);
        let n = 40_000;
        for _ in 0..n {
            counts[sample(logits.view(), Sampling { temperature, top_k }, &mut g)] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let p = if kept.contains(&i) { (logits[i] / temperature).exp() / z } else { 0.0 };
            let freq = c as f64 / n as f64;
            // 5 standard errors of a binomial share: fails by chance about once in 10⁶ seeds.
            let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-12;
            assert!((freq - p).abs() <= tol, "T {temperature}, top-k {top_k:?}: id {i} drawn {freq:.4}, want {p:.4}");
        }
    }
}
