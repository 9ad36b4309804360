//! The pre-LN transformer block against PyTorch: y, ∂L/∂x and every parameter gradient of one
//! block, matched by name to values PyTorch computed in float64.
//!
//! The fixture `tests/fixtures/block_f64.json` was written once by
//! `tests/fixtures/make_block_fixture.py` (see the README there for how to regenerate it and
//! the versions used); the test itself needs no Python. It holds x, dy, every parameter,
//! y = block(x) and, for L = Σ y ⊙ dy, dx and every parameter gradient, in our names and our
//! layout (Linear W as [d_in, d_out]). The mask is causal plus key padding (the second
//! sequence ends in two padding tokens).
//!
//! Each element must satisfy `|ours − torch| ≤ tol·max(1, |torch|)`: absolute for small
//! values (a gradient that is truly zero, like the key bias's, is 1e-16 in torch), relative
//! for large ones. tol = 1e-5 in f64 and 1e-4 in f32 (f32's unit roundoff is 6e-8, and a
//! block is a few hundred roundings deep).
//!
//! Tensors are matched by walking *our* [`Tensors`] lists, so a parameter we have and the
//! fixture lacks (or has in another shape) is a failure, never a skip.

use ndarray::{Array2, ArrayD, ArrayViewD, Dimension, IxDyn};
use serde::Deserialize;
use std::collections::BTreeMap;
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::transformer_block as block;
use tinymoe::engine::layers::{Activation, Mode};
use tinymoe::engine::{rng, Float, Tensors};

/// Compiled in, so the test reads no files at run time and reruns when the fixture changes.
const FIXTURE: &str = include_str!("fixtures/block_f64.json");

/// The block has ln1 (γ, β), attention q/k/v/o (W, b each), ln2 (γ, β), and a two-layer MLP.
const N_PARAMS: usize = 2 + 8 + 2 + 4;

/// One tensor as the script writes it: its shape and its elements in row-major order.
#[derive(Debug, Clone, Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Sizes {
    batch: usize,
    seq: usize,
    d_model: usize,
    n_heads: usize,
    d_ff: usize,
    ln_eps: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct MaskSpec {
    causal: bool,
    /// [batch, seq]: 1 = real token, 0 = padding.
    key_padding: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Fixture {
    versions: BTreeMap<String, String>,
    sizes: Sizes,
    mask: MaskSpec,
    /// x, dy [batch·seq, d_model].
    inputs: BTreeMap<String, Tensor>,
    /// Our tensor names: `ln1.weight`, `attn.q.w`, `mlp.layers.1.b`, …
    params: BTreeMap<String, Tensor>,
    /// y, dx [batch·seq, d_model].
    outputs: BTreeMap<String, Tensor>,
    /// The same names as `params`.
    grads: BTreeMap<String, Tensor>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("tests/fixtures/block_f64.json parses")
}

/// `group.name` from the fixture, as an f64 array; panics if it is missing or not `shape`.
fn lookup(group: &BTreeMap<String, Tensor>, group_name: &str, name: &str, shape: &[usize]) -> ArrayD<f64> {
    let t = group.get(name).unwrap_or_else(|| panic!("fixture: {group_name}.{name} is missing"));
    assert_eq!(t.shape, shape, "fixture: {group_name}.{name} has shape {:?}, ours is {shape:?}", t.shape);
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.data.clone()).unwrap_or_else(|e| {
        panic!("fixture: {group_name}.{name}: {} numbers for shape {:?}: {e}", t.data.len(), t.shape)
    })
}

/// Our block, with every parameter copied from the fixture (cast to F).
fn load_block<F: Float>(fx: &Fixture) -> block::Params<F> {
    let s = &fx.sizes;
    // init only fixes the architecture; every tensor is overwritten below.
    let mut p = block::init::<F>(s.d_model, s.n_heads, s.d_ff, 0.0, 1.0, &mut rng(0));
    assert_eq!(p.mlp.act, Activation::GeluTanh, "torch side uses F.gelu(approximate='tanh')");
    p.ln1.eps = s.ln_eps;
    p.ln2.eps = s.ln_eps;
    let mut ours = p.tensors_mut();
    assert_eq!(ours.len(), N_PARAMS, "our block's tensor list changed: update N_PARAMS and the script");
    assert_eq!(fx.params.len(), N_PARAMS, "fixture has {} params, our block has {N_PARAMS}", fx.params.len());
    for (name, t) in ours.iter_mut() {
        let src = lookup(&fx.params, "params", name, t.shape());
        t.assign(&src.mapv(F::lit));
    }
    p
}

/// The worst element of one tensor: err = |got − want| / max(1, |want|).
#[derive(Debug, Clone)]
struct Report {
    name: String,
    shape: Vec<usize>,
    index: Vec<usize>,
    got: f64,
    want: f64,
    err: f64,
}

fn compare<F: Float>(name: &str, got: ArrayViewD<F>, want: &ArrayD<f64>) -> Report {
    assert_eq!(got.shape(), want.shape(), "{name}: ours is {:?}, torch is {:?}", got.shape(), want.shape());
    assert!(!want.is_empty(), "{name}: empty tensor");
    let mut worst =
        Report { name: name.into(), shape: want.shape().to_vec(), index: vec![], got: 0.0, want: 0.0, err: -1.0 };
    for ((index, &w), &g) in want.indexed_iter().zip(got.iter()) {
        let g = g.to_f64().expect("a float converts to f64");
        // A NaN or ∞ on either side is the worst error there is (NaN would compare false).
        let err = if g.is_finite() && w.is_finite() { (g - w).abs() / w.abs().max(1.0) } else { f64::INFINITY };
        if err > worst.err {
            worst = Report { index: index.slice().to_vec(), got: g, want: w, err, ..worst };
        }
    }
    worst
}

/// Runs our forward and backward in precision F on the fixture's inputs and compares y, dx
/// and every parameter gradient with torch's: one report per tensor.
fn run<F: Float>(fx: &Fixture) -> Vec<Report> {
    let s = &fx.sizes;
    let (n, d) = (s.batch * s.seq, s.d_model);
    let p = load_block::<F>(fx);
    let x = lookup(&fx.inputs, "inputs", "x", &[n, d]).mapv(F::lit).into_dimensionality().expect("2-D");
    let dy: Array2<F> = lookup(&fx.inputs, "inputs", "dy", &[n, d]).mapv(F::lit).into_dimensionality().expect("2-D");
    let rows = fx.mask.key_padding.iter().flatten().copied().collect();
    let pad = Array2::from_shape_vec((fx.mask.key_padding.len(), s.seq), rows).expect("key_padding is [batch, seq]");
    assert_eq!(pad.dim(), (s.batch, s.seq), "fixture: key_padding is {:?}", pad.dim());
    let mask = Mask { causal: fx.mask.causal, key_padding: Some(pad.view()) };

    let (y, cache) = block::forward(&p, x.view(), s.batch, s.seq, mask, &mut Mode::Eval);
    let (dx, grads) = block::backward(&p, &cache, dy.view());

    let mut reports = vec![
        compare("y", y.view().into_dyn(), &lookup(&fx.outputs, "outputs", "y", &[n, d])),
        compare("dx", dx.view().into_dyn(), &lookup(&fx.outputs, "outputs", "dx", &[n, d])),
    ];
    let ours = grads.tensors();
    assert_eq!(fx.grads.len(), ours.len(), "fixture has {} grads, our block has {}", fx.grads.len(), ours.len());
    for (name, g) in ours {
        let want = lookup(&fx.grads, "grads", &name, g.shape());
        reports.push(compare(&format!("grad {name}"), g, &want));
    }
    assert_eq!(reports.len(), 2 + N_PARAMS, "y, dx and one gradient per parameter");
    reports
}

/// Prints every tensor's worst error (visible with `--nocapture`), then fails naming each
/// tensor over `tol`.
fn assert_within(precision: &str, reports: &[Report], tol: f64, fx: &Fixture) {
    println!("{precision} vs torch {} (float64), tol {tol:e}:", fx.versions.get("torch").map_or("?", |v| v));
    for r in reports {
        println!("  {:<22} {:>8} worst {:.2e} at {:?}", r.name, format!("{:?}", r.shape), r.err, r.index);
    }
    let bad: Vec<String> = reports
        .iter()
        .filter(|r| r.err > tol)
        .map(|r| {
            format!(
                "{} {:?} at {:?}: ours {:e}, torch {:e} (err {:.2e})",
                r.name, r.shape, r.index, r.got, r.want, r.err
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{precision}: {} tensor(s) differ from torch by more than {tol:e}:\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
}

#[test]
fn block_matches_pytorch_in_f64() {
    let fx = fixture();
    assert_within("f64", &run::<f64>(&fx), 1e-5, &fx);
}

#[test]
fn block_matches_pytorch_in_f32() {
    let fx = fixture();
    assert_within("f32", &run::<f32>(&fx), 1e-4, &fx);
}

/// The check itself: one gradient element moved by 1e-3 is reported under its name.
#[test]
fn a_perturbed_fixture_is_caught_by_name() {
    let mut fx = fixture();
    fx.grads.get_mut("attn.v.w").expect("attn.v.w in the fixture").data[5] += 1e-3;
    let reports = run::<f64>(&fx);
    let bad: Vec<&str> = reports.iter().filter(|r| r.err > 1e-5).map(|r| r.name.as_str()).collect();
    assert_eq!(bad, ["grad attn.v.w"]);
}

#[test]
#[should_panic(expected = "fixture: grads.ln2.bias is missing")]
fn a_missing_tensor_fails() {
    let mut fx = fixture();
    fx.grads.remove("ln2.bias");
    fx.grads.insert("ln2.bais".into(), fx.grads["ln2.weight"].clone()); // same count, wrong name
    run::<f64>(&fx);
}
