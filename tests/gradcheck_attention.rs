//! Multi-head attention: gradient checks for every mask combination (none, causal, key
//! padding, both), no NaN for fully masked rows, and the masks really hide what they hide.

mod common;

use common::{rng, uniform, TOL};
use ndarray::{Array2, ArrayView2};
use tinymoe::engine::gradcheck::{assert_close, assert_reports, check_tensors, numeric_grad, Options};
use tinymoe::engine::layers::attention::{self, Mask};

const BATCH: usize = 3;
const SEQ: usize = 5;
const D_MODEL: usize = 8;
const HEADS: usize = 2;

/// Sequence 0 is full, sequence 1 has two padding tokens at the end, sequence 2 is all padding.
fn padding() -> Array2<u8> {
    ndarray::array![[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
}

fn check(causal: bool, pad: Option<ArrayView2<u8>>) {
    let mut g = rng(31);
    let p: attention::Params<f64> = attention::init(D_MODEL, HEADS, 0.5, &mut g);
    let mut p = p;
    for lin in [&mut p.q, &mut p.k, &mut p.v, &mut p.o] {
        lin.b = uniform(D_MODEL, &mut g);
    }
    let x: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let r: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let mask = Mask { causal, key_padding: pad };
    let run = |p: &attention::Params<f64>, x: &Array2<f64>| attention::forward(p, x.view(), BATCH, SEQ, mask);
    let (y, cache) = run(&p, &x);
    assert!(y.iter().all(|v| v.is_finite()), "no NaN, even for fully masked rows");
    let (dx, grads) = attention::backward(&p, &cache, r.view());
    let what = format!("attention causal={causal} padding={}", pad.is_some());
    assert_close(&format!("{what} dx"), &dx, &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, 1e-5), TOL);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    assert_eq!(reports.len(), 8);
    assert_reports(&reports, TOL);
}

#[test]
fn attention_without_mask_matches_finite_differences() {
    check(false, None);
}

#[test]
fn causal_attention_matches_finite_differences() {
    check(true, None);
}

#[test]
fn padded_attention_matches_finite_differences() {
    let pad = padding();
    check(false, Some(pad.view()));
}

#[test]
fn causal_padded_attention_matches_finite_differences() {
    let pad = padding();
    check(true, Some(pad.view()));
}

#[test]
fn masks_hide_future_and_padding_keys() {
    let mut g = rng(32);
    let p: attention::Params<f64> = attention::init(D_MODEL, HEADS, 0.5, &mut g);
    let x: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let pad = padding();
    let (_, cache) = attention::forward(&p, x.view(), BATCH, SEQ, Mask { causal: true, key_padding: Some(pad.view()) });
    let probs = cache.probs();
    for b in 0..BATCH {
        for h in 0..HEADS {
            for i in 0..SEQ {
                let row = probs.slice(ndarray::s![b, h, i, ..]);
                for j in 0..SEQ {
                    if j > i || pad[[b, j]] == 0 {
                        assert_eq!(row[j], 0.0, "b {b} h {h}: query {i} sees hidden key {j}");
                    }
                }
                let visible = (0..=i).any(|j| pad[[b, j]] == 1);
                let sum: f64 = row.sum();
                assert!((sum - if visible { 1.0 } else { 0.0 }).abs() < 1e-12, "row sum {sum}");
            }
        }
    }
}

#[test]
fn a_future_token_cannot_change_the_past_under_the_causal_mask() {
    let mut g = rng(33);
    let p: attention::Params<f64> = attention::init(D_MODEL, HEADS, 0.5, &mut g);
    let x: Array2<f64> = uniform((SEQ, D_MODEL), &mut g);
    let mut x2 = x.clone();
    x2.row_mut(SEQ - 1).mapv_inplace(|v| v + 1.0);
    let mask = Mask { causal: true, key_padding: None };
    let (y1, _) = attention::forward(&p, x.view(), 1, SEQ, mask);
    let (y2, _) = attention::forward(&p, x2.view(), 1, SEQ, mask);
    for i in 0..SEQ - 1 {
        assert_eq!(y1.row(i), y2.row(i), "position {i} changed when the last token did");
    }
    assert_ne!(y1.row(SEQ - 1), y2.row(SEQ - 1));
}

#[test]
fn one_head_one_token_by_hand() {
    // One token attends only to itself: P = [[1]], so O = V and y = (x·W_v + b_v)·W_o + b_o.
    let mut g = rng(34);
    let p: attention::Params<f64> = attention::init(4, 1, 0.5, &mut g);
    let x: Array2<f64> = uniform((1, 4), &mut g);
    let (y, _) = attention::forward(&p, x.view(), 1, 1, Mask { causal: true, key_padding: None });
    let v = x.dot(&p.v.w) + &p.v.b;
    let expected = v.dot(&p.o.w) + &p.o.b;
    assert!((&y - &expected).iter().all(|d| d.abs() < 1e-12));
}
