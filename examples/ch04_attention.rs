//! Chapter 04 — attention (notebooks-md/04-attention.md).
//!
//! Shows, in order:
//! 1. Scaled dot-product attention on three tokens, small enough to follow by hand, and the
//!    engine's layer giving the same numbers.
//! 2. Masks: what causal and key-padding masks hide, how they combine, and a query that sees
//!    no key at all: its row of P is 0 (not NaN), its output is just b_o.
//! 3. The backward of one head, written exactly as the chapter derives it
//!    (dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K/√d, dK = dSᵀ·Q/√d),
//!    checked against finite differences, and two broken versions that the check catches.
//! 4. Gradient checks in f64 of the engine's multi-head attention under each mask combination
//!    (none, causal, padding, causal + padding) and of a pre-LN transformer block.
//! 5. Why divide by √d: for unit-variance q and k, the spread of the scores, the largest
//!    probability, the entropy and the softmax's gradient, with and without the scale.
//! 6. Attention maps: a tiny byte-level LM trained for half a second on a repeated sentence, and
//!    its attention weights drawn per head (token labels on both axes) as PNGs, into
//!    notebooks-md/figures/ (or `$TINYMOE_FIGURES_DIR`).
//!
//! Exits 1 if a gradient check fails, a broken gradient is not caught, or a PNG cannot be
//! written. Run: `cargo run --release --example ch04_attention`

use ndarray::{array, s, Array2, Axis, Zip};
use std::time::Instant;
use tinymoe::engine::gradcheck::{check_tensors, compare, numeric_grad, Options};
use tinymoe::engine::init;
use tinymoe::engine::layers::attention::{self, Mask};
use tinymoe::engine::layers::transformer_block as block;
use tinymoe::engine::layers::{linear, Mode};
use tinymoe::engine::ops::softmax::softmax_inplace;
use tinymoe::engine::optim::{Kind, Optimizer};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::plot::heatmap::attention_grid;

#[path = "common/figures.rs"]
mod figures;
#[path = "common/tally.rs"]
mod tally;
use tally::{Tally, TOL};

/// Finite-difference step for inputs (dx, dQ, …); the parameter checks use the checker's
/// default, 1e-4, as whole-model checks do (chapter 02).
const EPS: f64 = 1e-5;

fn main() {
    by_hand();
    masks();
    let mut tally = Tally::default();
    one_head_backward(&mut tally);
    engine_checks(&mut tally);
    why_sqrt_d();
    if let Err(e) = attention_maps() {
        eprintln!("ch04: error: {e}");
        std::process::exit(1);
    }
    println!();
    tally.finish("both broken gradients were caught");
}

// ---------------------------------------------------------------------------------------
// 1. By hand

/// A linear layer that passes its input through: W = I, b = 0.
fn identity(d: usize) -> linear::Params<f64> {
    linear::Params { w: Array2::eye(d), b: ndarray::Array1::zeros(d) }
}

fn by_hand() {
    println!("== 1. Attention on three tokens, by hand (one head, d = 2, Q = K = V = x)");
    let x = array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let d = 2.0f64;
    let scores = x.dot(&x.t()) / d.sqrt();
    println!("x =\n{x}");
    println!("S = Q·Kᵀ/√2 =\n{:.4}", scores);
    let mut p = scores.clone();
    softmax_inplace(&mut p);
    println!("P = softmax(S), row by row =\n{:.4}", p);
    let o = p.dot(&x);
    println!("O = P·V =\n{:.4}", o);
    let e = (1.0 / d.sqrt()).exp();
    println!(
        "row 0 by hand: e^(1/√2) = {e:.4} and e^0 = 1, so P[0] = [{e:.4}, 1, {e:.4}] / {:.4} = [{:.4}, {:.4}, {:.4}]",
        2.0 * e + 1.0,
        e / (2.0 * e + 1.0),
        1.0 / (2.0 * e + 1.0),
        e / (2.0 * e + 1.0)
    );

    // The engine's layer with every projection the identity computes the same O.
    let params = attention::Params { q: identity(2), k: identity(2), v: identity(2), o: identity(2), n_heads: 1 };
    let (y, cache) = attention::forward(&params, x.view(), 1, 3, Mask { causal: false, key_padding: None });
    let same = (&y - &o).iter().all(|e| e.abs() < 1e-12)
        && (&cache.probs().slice(s![0, 0, .., ..]) - &p).iter().all(|e| e.abs() < 1e-12);
    println!("attention::forward with identity projections matches the hand computation: {same}");
}

// ---------------------------------------------------------------------------------------
// 2. Masks

const BATCH: usize = 3;
const SEQ: usize = 5;
const D_MODEL: usize = 8;
const HEADS: usize = 2;

/// Sequence 0 is full, sequence 1 is padded on the right, sequence 2 on the left.
fn padding() -> Array2<u8> {
    array![[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]]
}

/// The four mask combinations, by name.
fn combinations(pad: &Array2<u8>) -> [(&'static str, Mask<'_>); 4] {
    [
        ("none", Mask { causal: false, key_padding: None }),
        ("causal", Mask { causal: true, key_padding: None }),
        ("padding", Mask { causal: false, key_padding: Some(pad.view()) }),
        ("causal+padding", Mask { causal: true, key_padding: Some(pad.view()) }),
    ]
}

fn masks() {
    println!("\n== 2. Masks: which keys (columns) each query (row) may see");
    let pad = padding();
    println!("padding mask [batch, seq] (1 = real token):\n{pad}");
    let mut g = init::rng(2);
    let p: attention::Params<f64> = attention::init(D_MODEL, HEADS, 0.5, &mut g);
    let x: Array2<f64> = init::normal((BATCH * SEQ, D_MODEL), 1.0, &mut g);
    for b in [1, 2] {
        println!("sequence {b} (■ visible, · hidden), one block per combination:");
        let mut lines = vec![String::new(); SEQ];
        for (name, mask) in combinations(&pad) {
            let (_, cache) = attention::forward(&p, x.view(), BATCH, SEQ, mask);
            let probs = cache.probs();
            for (i, line) in lines.iter_mut().enumerate() {
                let cells: String = (0..SEQ).map(|j| if probs[[b, 0, i, j]] > 0.0 { '■' } else { '·' }).collect();
                line.push_str(&format!("  {cells:<w$}", w = name.len().max(SEQ)));
            }
        }
        let header: String =
            combinations(&pad).iter().map(|(n, _)| format!("  {n:<w$}", w = n.len().max(SEQ))).collect();
        println!("{}", header.trim_end());
        for line in lines {
            println!("{}", line.trim_end());
        }
    }

    println!("\nA query with no visible key: sequence 2 under causal+padding, queries 0 and 1");
    let naive: Vec<f64> = {
        let row = [f64::NEG_INFINITY; 3];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    };
    println!("  naive softmax of [−∞, −∞, −∞] = {naive:?}   (−∞ − (−∞) = NaN)");
    let (y, cache) = attention::forward(&p, x.view(), BATCH, SEQ, combinations(&pad)[3].1);
    for i in 0..3 {
        let row = cache.probs().slice(s![2, 0, i, ..]).to_owned();
        let y_row = y.row(2 * SEQ + i);
        let is_bias = (&y_row - &p.o.b).iter().all(|e| e.abs() < 1e-12);
        println!("  query {i}: P row = {:.3}, row sum {:.3}, y row = b_o: {is_bias}", row, row.sum());
    }
    let any_nan = y.iter().any(|v| v.is_nan());
    println!("  any NaN in y: {any_nan}");
}

// ---------------------------------------------------------------------------------------
// 3. One head, its backward written as derived

/// Scaled dot-product attention for one head, no projections: q, k, v [seq, d];
/// `visible[[i, j]]` says whether query i may see key j. Returns O [seq, d] and P [seq, seq].
fn sdpa(q: &Array2<f64>, k: &Array2<f64>, v: &Array2<f64>, visible: &Array2<bool>) -> (Array2<f64>, Array2<f64>) {
    let scale = 1.0 / (q.ncols() as f64).sqrt();
    let mut p = q.dot(&k.t()) * scale; // S = Q·Kᵀ/√d  [seq, seq]
    Zip::from(&mut p).and(visible).for_each(|s, &vis| {
        if !vis {
            *s = f64::NEG_INFINITY;
        }
    });
    softmax_inplace(&mut p); // P = softmax(S) row by row; a row with no visible key is 0
    (p.dot(v), p) // O = P·V
}

/// Which bug to plant in the backward (section 3 shows that the check catches both).
#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    /// Forget the 1/√d of the forward's scale.
    NoScale,
    /// Softmax backward as if P did not depend on the whole row: dS = P ⊙ dP.
    NoRowSum,
}

/// dO [seq, d] → (dQ, dK, dV) [seq, d], step by step as the chapter derives it; and dS
/// [seq, seq], to look at.
fn sdpa_backward(
    q: &Array2<f64>,
    k: &Array2<f64>,
    v: &Array2<f64>,
    p: &Array2<f64>,
    d_o: &Array2<f64>,
    bug: Bug,
) -> (Array2<f64>, Array2<f64>, Array2<f64>, Array2<f64>) {
    let scale = if bug == Bug::NoScale { 1.0 } else { 1.0 / (q.ncols() as f64).sqrt() };
    // O = P·V: so dV = Pᵀ·dO and dP = dO·Vᵀ.
    let dv = p.t().dot(d_o);
    let dp = d_o.dot(&v.t());
    // P = softmax(S), row by row: dS = P ⊙ (dP − Σ_j dP ⊙ P).
    let mut ds = Array2::zeros(p.raw_dim());
    for i in 0..p.nrows() {
        let row_sum: f64 =
            if bug == Bug::NoRowSum { 0.0 } else { (0..p.ncols()).map(|j| dp[[i, j]] * p[[i, j]]).sum() };
        for j in 0..p.ncols() {
            ds[[i, j]] = p[[i, j]] * (dp[[i, j]] - row_sum);
        }
    }
    // S = Q·Kᵀ/√d: so dQ = dS·K/√d and dK = dSᵀ·Q/√d.
    let dq = ds.dot(k) * scale;
    let dk = ds.t().dot(q) * scale;
    (dq, dk, dv, ds)
}

fn one_head_backward(t: &mut Tally) {
    println!("\n== 3. One head's backward, as derived; gradient checks in f64 (ε = {EPS:.0e}, bar {TOL:.0e})");
    let (seq, d) = (5, 4);
    let mut g = init::rng(3);
    let q: Array2<f64> = init::normal((seq, d), 1.0, &mut g);
    let k: Array2<f64> = init::normal((seq, d), 1.0, &mut g);
    let v: Array2<f64> = init::normal((seq, d), 1.0, &mut g);
    let r: Array2<f64> = init::normal((seq, d), 1.0, &mut g); // L = Σ O ⊙ r, so dO = r
                                                              // Causal, and key 0 is padding: query 0 sees nothing, the others see keys 1..=i.
    let visible = Array2::from_shape_fn((seq, seq), |(i, j)| j <= i && j != 0);
    let (_, p) = sdpa(&q, &k, &v, &visible);
    let loss = |q: &Array2<f64>, k: &Array2<f64>, v: &Array2<f64>| (sdpa(q, k, v, &visible).0 * &r).sum();
    let num_dq = numeric_grad(|q| loss(q, &k, &v), &q, EPS);
    let num_dk = numeric_grad(|k| loss(&q, k, &v), &k, EPS);
    let num_dv = numeric_grad(|v| loss(&q, &k, v), &v, EPS);
    let (dq, dk, dv, ds) = sdpa_backward(&q, &k, &v, &p, &r, Bug::None);
    t.expect_pass("sdpa", compare("dQ", &dq, &num_dq));
    t.expect_pass("sdpa", compare("dK", &dk, &num_dk));
    t.expect_pass("sdpa", compare("dV", &dv, &num_dv));
    println!("       query 0 sees no key: P[0] = {:.1}, dQ[0] = {:.1}", p.row(0), dq.row(0));
    let worst_row_sum = ds.sum_axis(Axis(1)).fold(0.0f64, |m, v| m.max(v.abs()));
    println!("       every row of dS sums to 0: max |Σ_j dS[i, j]| = {worst_row_sum:.1e}");

    println!("Two broken backward passes:");
    let (dq_bad, _, _, _) = sdpa_backward(&q, &k, &v, &p, &r, Bug::NoScale);
    let ratio = dq_bad[[2, 1]] / num_dq[[2, 1]];
    println!("(a) forgets the 1/√d of the scale: analytic / numeric = {ratio:.4} = √{d} at every coordinate");
    t.expect_caught("sdpa.no_scale", compare("dQ", &dq_bad, &num_dq));
    let (dq_bad, _, _, _) = sdpa_backward(&q, &k, &v, &p, &r, Bug::NoRowSum);
    println!("(b) drops the − rowsum(dP ⊙ P) term of the softmax backward:");
    t.expect_caught("sdpa.no_rowsum", compare("dQ", &dq_bad, &num_dq));
}

// ---------------------------------------------------------------------------------------
// 4. The engine's attention layer and block

fn engine_checks(t: &mut Tally) {
    println!(
        "\n== 4. The engine's multi-head attention ([{BATCH}·{SEQ}, {D_MODEL}], {HEADS} heads), every mask combination"
    );
    let pad = padding();
    let mut g = init::rng(4);
    let mut p: attention::Params<f64> = attention::init(D_MODEL, HEADS, 0.5, &mut g);
    // Non-zero biases, so their gradients are tested too.
    for lin in [&mut p.q, &mut p.k, &mut p.v, &mut p.o] {
        lin.b = init::uniform(D_MODEL, 1.0, &mut g);
    }
    let x: Array2<f64> = init::uniform((BATCH * SEQ, D_MODEL), 1.0, &mut g);
    let r: Array2<f64> = init::uniform((BATCH * SEQ, D_MODEL), 1.0, &mut g);
    for (name, mask) in combinations(&pad) {
        let run = |p: &attention::Params<f64>, x: &Array2<f64>| attention::forward(p, x.view(), BATCH, SEQ, mask).0;
        let (_, cache) = attention::forward(&p, x.view(), BATCH, SEQ, mask);
        let (dx, grads) = attention::backward(&p, &cache, r.view());
        let prefix = format!("attn.{name}");
        t.expect_pass(&prefix, compare("dx", &dx, &numeric_grad(|x| (run(&p, x) * &r).sum(), &x, EPS)));
        let mut params = p.clone();
        let reports = check_tensors(&mut params, &grads, |p| (run(p, &x) * &r).sum(), &Options::default());
        t.expect_pass_all(&prefix, reports);
    }

    println!("A pre-LN transformer block (h = x + attn(ln1(x)), y = h + mlp(ln2(h))), causal+padding, dropout 0.1:");
    let mut bp: block::Params<f64> = block::init(D_MODEL, HEADS, 16, 0.1, 0.3, &mut g);
    bp.ln1.gamma = init::normal(D_MODEL, 0.3, &mut g) + 1.0;
    bp.ln2.beta = init::normal(D_MODEL, 0.3, &mut g);
    let mask = combinations(&pad)[3].1;
    // The same dropout mask on every call: a fresh generator with a fixed seed.
    let run = |p: &block::Params<f64>, x: &Array2<f64>| {
        block::forward(p, x.view(), BATCH, SEQ, mask, &mut Mode::Train(&mut init::rng(9))).0
    };
    let (_, cache) = block::forward(&bp, x.view(), BATCH, SEQ, mask, &mut Mode::Train(&mut init::rng(9)));
    let (dx, grads) = block::backward(&bp, &cache, r.view());
    t.expect_pass("block", compare("dx", &dx, &numeric_grad(|x| (run(&bp, x) * &r).sum(), &x, EPS)));
    let mut params = bp.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x) * &r).sum(), &Options::default());
    t.expect_pass_all("block", reports);
}

// ---------------------------------------------------------------------------------------
// 5. Why √d

/// Mean statistics of softmax rows: (std of the scores, max p, entropy, Σ p(1 − p)).
fn row_stats(scores: &Array2<f64>) -> (f64, f64, f64, f64) {
    let n = scores.len() as f64;
    let mean = scores.sum() / n;
    let std = (scores.mapv(|s| (s - mean).powi(2)).sum() / n).sqrt();
    let mut p = scores.clone();
    softmax_inplace(&mut p);
    let rows = p.nrows() as f64;
    let (mut max_p, mut entropy, mut trace) = (0.0, 0.0, 0.0);
    for row in p.axis_iter(Axis(0)) {
        max_p += row.fold(0.0, |m: f64, &v| m.max(v));
        entropy -= row.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>();
        trace += row.iter().map(|&v| v * (1.0 - v)).sum::<f64>();
    }
    (std, max_p / rows, entropy / rows, trace / rows)
}

fn why_sqrt_d() {
    let (queries, keys) = (256, 32);
    println!("\n== 5. Why divide by √d: {queries} queries, {keys} keys, q and k ~ N(0, 1) in d dimensions");
    println!(
        "uniform over {keys} keys: max p = {:.3}, entropy = ln {keys} = {:.3}, Σ p(1−p) = {:.3}",
        1.0 / keys as f64,
        (keys as f64).ln(),
        1.0 - 1.0 / keys as f64
    );
    println!("          ----------- S = q·k -----------    --------- S = q·k / √d ---------");
    println!("     d    std(S)  max p  entropy  Σ p(1−p)    std(S)  max p  entropy  Σ p(1−p)");
    let mut g = init::rng(5);
    for d in [1, 4, 16, 64, 256, 1024] {
        let q: Array2<f64> = init::normal((queries, d), 1.0, &mut g);
        let k: Array2<f64> = init::normal((keys, d), 1.0, &mut g);
        let raw = q.dot(&k.t());
        let scaled = &raw / (d as f64).sqrt();
        let (a, b) = (row_stats(&raw), row_stats(&scaled));
        println!(
            "{d:>6}  {:>8.2}  {:>5.3}  {:>7.3}  {:>8.3}  {:>8.2}  {:>5.3}  {:>7.3}  {:>8.3}",
            a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Attention maps

/// A token as a label: the byte as a character, with a visible space.
fn label(byte: u8) -> String {
    match byte {
        b' ' => "␣".to_string(),
        b'\n' => "↵".to_string(),
        b => (b as char).to_string(),
    }
}

fn attention_maps() -> tinymoe::Result<()> {
    println!("\n== 6. Attention maps of a tiny byte-level LM");
    let text = b"the cat sat on the mat. the dog sat on the log. ".repeat(4);
    let (batch, seq) = (8, 24);
    let cfg = Config {
        vocab: 256,
        max_seq: seq,
        d_model: 32,
        n_heads: 4,
        d_ff: 64,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let (steps, lr) = (300, 3e-3);
    let window = |o: usize| -> (Vec<usize>, Vec<usize>) {
        ((o..o + seq).map(|t| text[t] as usize).collect(), (o + 1..o + seq + 1).map(|t| text[t] as usize).collect())
    };
    let batch_at = |offsets: &[usize]| {
        let mut ids = Array2::zeros((offsets.len(), seq));
        let mut targets = Array2::zeros((offsets.len(), seq));
        for (b, &o) in offsets.iter().enumerate() {
            let (i, t) = window(o);
            ids.row_mut(b).assign(&ndarray::Array1::from(i));
            targets.row_mut(b).assign(&ndarray::Array1::from(t));
        }
        (ids, targets)
    };
    let all: Vec<usize> = (0..48).collect();
    let (ids, targets) = batch_at(&all);
    let mut model = lm::init::<f32>(cfg, &mut init::rng(1));

    // At initialisation (weights ~ N(0, 0.02²)) every score is ≈ 0, so each row of P is
    // uniform over the keys the causal mask leaves: 1/(i+1).
    let (_, cache) = lm::forward(&model, ids.view(), targets.view(), &mut Mode::Eval);
    let p0 = cache.attention(0);
    let mut worst = 0.0f64;
    for ((_, _, i, j), &v) in p0.indexed_iter() {
        let uniform = if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 };
        worst = worst.max((v as f64 - uniform).abs());
    }
    println!("untrained: max |P[i, j] − 1/(i+1)| over layer 0 = {worst:.1e} (each row uniform over keys 0..=i)");

    let start = Instant::now();
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let mut rng = init::rng(2);
    let first = lm::evaluate(&model, ids.view(), targets.view(), 48);
    for _ in 0..steps {
        let offsets: Vec<usize> = (0..batch).map(|_| rand::Rng::gen_range(&mut rng, 0..48)).collect();
        let (ids, targets) = batch_at(&offsets);
        let (_, cache) = lm::forward(&model, ids.view(), targets.view(), &mut Mode::Train(&mut rng));
        let grads = lm::backward(&model, &cache);
        opt.step(&mut model, &grads, lr);
    }
    let last = lm::evaluate(&model, ids.view(), targets.view(), 48);
    println!(
        "trained {steps} Adam steps (lr {lr}) on {batch} windows of {seq} bytes in {:.2} s: loss {first:.3} (ln 256 = {:.3}) → {last:.3}",
        start.elapsed().as_secs_f64(),
        256f64.ln()
    );

    let (_, cache) = lm::forward(&model, ids.view(), targets.view(), &mut Mode::Eval);
    let tokens: Vec<String> = text[..seq].iter().map(|&b| label(b)).collect();
    println!("window 0: {:?}", String::from_utf8_lossy(&text[..seq]));
    println!(
        "per head: the mean weight on the previous token, and the key that receives most weight from later queries"
    );
    for layer in 0..cfg.n_layers {
        // [n_heads, seq(query), seq(key)] of window 0, in f64 for plotting.
        let probs = cache.attention(layer).index_axis(Axis(0), 0).mapv(|v| v as f64);
        for h in 0..cfg.n_heads {
            let p = probs.index_axis(Axis(0), h);
            let prev = (1..seq).map(|i| p[[i, i - 1]]).sum::<f64>() / (seq - 1) as f64;
            // For key j, the weight it receives from the queries after it: Σ_{i > j} P[i, j],
            // out of a possible seq − 1 − j (a uniform causal head gives key 0 about 2.8).
            let received = |j: usize| (j + 1..seq).map(|i| p[[i, j]]).sum::<f64>();
            let (top, total) =
                (0..seq - 1)
                    .map(|j| (j, received(j)))
                    .fold((0, f64::MIN), |best, (j, w)| if w > best.1 { (j, w) } else { best });
            println!(
                "  layer {layer} head {h}: previous token {prev:.2}   most attended key {top} {:?}: {total:.1} of {} later queries",
                tokens[top],
                seq - 1 - top
            );
        }
        let path = figures::path(&format!("ch04_attention_layer{layer}.png"))?;
        let title = format!("trained byte-level LM, layer {layer}: P = softmax(Q·Kᵀ/√d) per head");
        attention_grid(&path, &title, probs.view(), &tokens, &tokens)?;
        println!("wrote {}", figures::shown(&path));
    }
    Ok(())
}
