//! Chapter 08 — Mixture of Experts and dense routing (notebooks-md/08-mixture-of-experts-dense-routing.md).
//!
//! Shows, in order:
//! 1. A mixture of two experts on one row, by hand: g = softmax(z), y = Σ gₑ·yₑ.
//! 2. Routers: the linear gate and the 2-layer feed-forward gate (their tensors and what they
//!    do at initialisation: every expert almost equally likely), and noisy gating (noise of
//!    std softplus(0) = ln 2 in training, none at evaluation).
//! 3. Dense soft routing in `moe::layer`: the output is exactly Σₑ gₑ·expertₑ(x), and every
//!    expert runs on every row.
//! 4. The gate's backward, derived step by step (dg = dy·yₑ, dz = g ⊙ (dg − Σ g dg)) and
//!    written out for a small mixture of linear experts; each step checked against finite
//!    differences, a broken version caught; then gradient checks of the library's layer
//!    (linear, feed-forward and noisy routers), of E1's dense mixture and of the MoE
//!    classifier with router losses. All in f64, bar 1e-6.
//! 5. A dense MoE trained on the three spirals: accuracy against one expert alone, the routing
//!    metrics (utilisation, load variance, entropies, specialisation index, worked by hand),
//!    the class × expert heatmap and a map of which expert takes which part of the plane
//!    (PNGs in notebooks-md/figures/, or `$TINYMOE_FIGURES_DIR`).
//!
//! Exits 1 if a gradient check fails, the broken gradient is not caught, a stated fact does
//! not hold, or a PNG cannot be written. Run: `cargo run --release --example ch08_moe`

use ndarray::{array, Array1, Array2, Axis};
use std::time::Instant;
use tinymoe::data::synthetic::spirals;
use tinymoe::engine::gradcheck::{check_tensors, compare, numeric_grad, Options};
use tinymoe::engine::init;
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::{linear, mlp, Activation, InputGrad, Mode};
use tinymoe::engine::ops::softmax::softmax;
use tinymoe::engine::params::{shapes, Tensors};
use tinymoe::models::moe_classifier::{self as mc, Config, Fit};
use tinymoe::moe::expert::{self, Expert};
use tinymoe::moe::layer::{self, Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::Gating;
use tinymoe::moe::{mixture, router};
use tinymoe::plot::regions::{region_map, RegionMap};
use tinymoe::plot::routing::routing_heatmap;

#[path = "common/figures.rs"]
mod figures;
#[path = "common/tally.rs"]
mod tally;
use tally::{Tally, TOL};

/// Finite-difference step for inputs and hand-written steps; parameter checks use the
/// checker's default 1e-4.
const EPS: f64 = 1e-5;

fn main() {
    let mut tally = Tally::default();
    by_hand(&mut tally);
    routers(&mut tally);
    dense_layer(&mut tally);
    derived_backward(&mut tally);
    library_checks(&mut tally);
    if let Err(e) = trained(&mut tally) {
        eprintln!("ch08: error: {e}");
        std::process::exit(1);
    }
    println!();
    tally.finish("the broken gradient was caught; every fact above holds");
}

/// Prints `what: holds` and records it.
fn fact(t: &mut Tally, what: &str, holds: bool) {
    println!("{what}: {holds}");
    t.require(what, holds);
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// A one-layer "MLP" (just x·W + b) as an expert or a gate, with given weights.
fn linear_net(w: Array2<f64>, b: Array1<f64>) -> mlp::Params<f64> {
    mlp::Params { layers: vec![linear::Params { w, b }], act: Activation::Relu, dropout: 0.0 }
}

// ---------------------------------------------------------------------------------------
// 1. By hand

/// Two linear experts and a linear gate on one row x = [1, 2].
fn toy() -> layer::Params<f64> {
    let expert0 = linear_net(array![[1.0, 0.0], [0.0, 1.0]], array![0.0, 0.0]); // y₀ = x
    let expert1 = linear_net(array![[0.0, 1.0], [1.0, 0.0]], array![1.0, 1.0]); // y₁ = swap(x) + 1
    let gate = linear_net(array![[0.5, -0.5], [0.25, 0.0]], array![0.0, 0.0]); // z = x·W_g
    layer::Params {
        router: router::Params { net: gate, noise: None },
        experts: vec![Expert::Mlp(expert0), Expert::Mlp(expert1)],
        config: layer::Config { level: Level::Token, gating: Gating::DENSE, passthrough: false },
    }
}

fn no_mask() -> Mask<'static> {
    Mask { causal: false, key_padding: None }
}

fn by_hand(t: &mut Tally) {
    println!("== 1. A mixture of two experts, by hand (one row x = [1, 2])");
    let x = array![[1.0, 2.0]];
    println!("expert 0: y₀ = x            = [1, 2]");
    println!("expert 1: y₁ = swap(x) + 1  = [3, 2]");
    println!("router:   z = x·W_g, W_g = [[0.5, −0.5], [0.25, 0]]  → z = [1·0.5 + 2·0.25, 1·(−0.5) + 2·0] = [1, −0.5]");
    let (e1, e2) = (1.0f64.exp(), (-0.5f64).exp());
    let g = [e1 / (e1 + e2), e2 / (e1 + e2)];
    println!(
        "gates:    g = softmax(z) = [e¹, e^−0.5] / (e¹ + e^−0.5) = [{e1:.4}, {e2:.4}] / {:.4} = [{:.4}, {:.4}]",
        e1 + e2,
        g[0],
        g[1]
    );
    let y = [g[0] * 1.0 + g[1] * 3.0, g[0] * 2.0 + g[1] * 2.0];
    println!("output:   y = g₀·y₀ + g₁·y₁ = {:.4}·[1, 2] + {:.4}·[3, 2] = [{:.4}, {:.4}]", g[0], g[1], y[0], y[1]);
    let (out, cache) = layer::forward(&toy(), x.view(), 1, 1, no_mask(), Route::default(), &mut Mode::Eval);
    println!("moe::layer::forward: y = {:.4}, gates = {:.4}", out.row(0), cache.decision().gates.row(0));
    let same = (out[[0, 0]] - y[0]).abs() < 1e-12
        && (out[[0, 1]] - y[1]).abs() < 1e-12
        && (cache.decision().gates[[0, 0]] - g[0]).abs() < 1e-12;
    fact(t, "the library's dense layer matches the hand computation", same);
}

// ---------------------------------------------------------------------------------------
// 2. Routers

fn routers(t: &mut Tally) {
    println!("\n== 2. Routers: 2 features in, 4 experts");
    let mut g = init::rng(2);
    let linear_gate: router::Params<f64> = router::init(2, None, 4, false, &mut g);
    let ff_gate: router::Params<f64> = router::init(2, Some(16), 4, false, &mut g);
    let noisy_gate: router::Params<f64> = router::init(2, None, 4, true, &mut g);
    for (name, p) in [("linear", &linear_gate), ("feed-forward", &ff_gate), ("noisy linear", &noisy_gate)] {
        let list: Vec<String> = shapes(p).into_iter().map(|(n, s)| format!("{n} {s:?}")).collect();
        println!("{name:>13} gate: {}", list.join(", "));
    }
    // At initialisation the output layer is N(0, 0.02²): every logit is near 0, so every
    // gate is near 1/E whatever the input.
    let x: Array2<f64> = init::normal((1000, 2), 1.0, &mut g);
    for (name, p) in [("linear", &linear_gate), ("feed-forward", &ff_gate)] {
        let (z, _, _) = router::forward(p, x.view(), &mut Mode::Eval);
        let gates = softmax(z.view());
        let worst = gates.iter().fold(0.0f64, |m, &v| m.max((v - 0.25).abs()));
        println!("{name:>13} gate at init, 1000 rows x ~ N(0, 1): max |g − 1/4| = {worst:.4}");
        t.require("at initialisation every gate is within 0.1 of 1/4", worst < 0.1);
    }
    // Noisy gating: h = z + ε ⊙ softplus(x·W_noise + b_noise); W_noise = 0 at init.
    let (z, h, _) = router::forward(&noisy_gate, x.view(), &mut Mode::Train(&mut init::rng(3)));
    let noise = &h - &z;
    let std = (noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64).sqrt();
    println!("noisy gate, training: std(h − z) = {std:.3}   (softplus(0) = ln 2 = {:.3})", 2f64.ln());
    t.require("the noise std starts at ln 2", (std - 2f64.ln()).abs() < 0.03);
    let (z, h, _) = router::forward(&noisy_gate, x.view(), &mut Mode::Eval);
    fact(t, "noisy gate, evaluation: h = z exactly", h == z);
}

// ---------------------------------------------------------------------------------------
// 3. Dense routing in the library

fn dense_layer(t: &mut Tally) {
    println!("\n== 3. Dense soft routing in moe::layer: y = Σₑ gₑ·expertₑ(x), 5 rows, 4 MLP experts 2 → 8 → 3");
    let mut g = init::rng(4);
    let cfg = layer::Config { level: Level::Token, gating: Gating::DENSE, passthrough: false };
    let p: layer::Params<f64> =
        layer::init(2, Some(16), false, 4, cfg, |r| Expert::mlp(&[2, 8, 3], Activation::Relu, 0.0, r), &mut g);
    let x: Array2<f64> = init::normal((5, 2), 1.0, &mut g);
    let (y, cache) = layer::forward(&p, x.view(), 5, 1, no_mask(), Route::default(), &mut Mode::Eval);
    let gates = &cache.decision().gates;
    let mut by_hand = Array2::<f64>::zeros((5, 3));
    for (e, ex) in p.experts.iter().enumerate() {
        let (ye, _) = expert::forward(ex, x.view(), 5, 1, no_mask(), &mut Mode::Eval);
        for r in 0..5 {
            by_hand.row_mut(r).scaled_add(gates[[r, e]], &ye.row(r));
        }
    }
    println!("gates g [5, 4] =\n{:.4}", gates);
    println!("max |y − Σₑ gₑ·expertₑ(x)| = {:.1e}", max_abs_diff(&y, &by_hand));
    t.require("dense output is the gate-weighted sum", max_abs_diff(&y, &by_hand) < 1e-12);
    let rows_sum_to_1 = gates.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-12);
    fact(t, "every row of g sums to 1", rows_sum_to_1);
    let s = cache.stats();
    println!("work: calls per expert {:?}, rows per expert {:?}", s.calls, s.rows);
    fact(t, "dense: every expert ran on every row", s.calls == vec![1; 4] && s.rows == vec![5; 4]);
}

// ---------------------------------------------------------------------------------------
// 4. The backward, derived and written out

/// A dense mixture of linear experts with a linear gate, written out in full:
/// z = x·W_g + b_g, g = softmax(z), yₑ = x·Wₑ + bₑ, y = Σₑ gₑ ⊙ yₑ.
#[derive(Clone)]
struct Toy {
    w_gate: Array2<f64>,        // [d_in, E]
    b_gate: Array1<f64>,        // [E]
    w_expert: Vec<Array2<f64>>, // E × [d_in, d_out]
    b_expert: Vec<Array1<f64>>, // E × [d_out]
}

struct ToyCache {
    gates: Array2<f64>,        // g [n, E]
    outputs: Vec<Array2<f64>>, // yₑ, E × [n, d_out]
}

struct ToyGrads {
    dgates: Array2<f64>,
    dz: Array2<f64>,
    dw_gate: Array2<f64>,
    db_gate: Array1<f64>,
    dw_expert: Vec<Array2<f64>>,
    db_expert: Vec<Array1<f64>>,
    dx: Array2<f64>,
}

fn toy_forward(p: &Toy, x: &Array2<f64>) -> (Array2<f64>, ToyCache) {
    let z = x.dot(&p.w_gate) + &p.b_gate;
    let gates = softmax(z.view());
    let outputs: Vec<Array2<f64>> = p.w_expert.iter().zip(&p.b_expert).map(|(w, b)| x.dot(w) + b).collect();
    let mut y = Array2::zeros(outputs[0].raw_dim());
    for (e, ye) in outputs.iter().enumerate() {
        for r in 0..x.nrows() {
            y.row_mut(r).scaled_add(gates[[r, e]], &ye.row(r));
        }
    }
    (y, ToyCache { gates, outputs })
}

/// The mixed output for given gates g [n, E] and expert outputs: y = Σₑ gₑ ⊙ yₑ.
fn mix(gates: &Array2<f64>, outputs: &[Array2<f64>]) -> Array2<f64> {
    let mut y = Array2::zeros(outputs[0].raw_dim());
    for (e, ye) in outputs.iter().enumerate() {
        for r in 0..gates.nrows() {
            y.row_mut(r).scaled_add(gates[[r, e]], &ye.row(r));
        }
    }
    y
}

/// dy [n, d_out] → every gradient, step by step as the chapter derives them. With
/// `forget_sum`, the softmax step drops its − Σ g dg term (a bug the check must catch).
fn toy_backward(p: &Toy, c: &ToyCache, x: &Array2<f64>, dy: &Array2<f64>, forget_sum: bool) -> ToyGrads {
    let (n, n_experts) = c.gates.dim();
    // Step 1. y = Σₑ gₑ·yₑ is linear in each gₑ: dg[r, e] = dy[r]·yₑ[r] (a dot product over d_out).
    let mut dgates = Array2::zeros((n, n_experts));
    for e in 0..n_experts {
        for r in 0..n {
            dgates[[r, e]] = dy.row(r).dot(&c.outputs[e].row(r));
        }
    }
    // Step 2. g = softmax(z) row by row: dz = g ⊙ (dg − Σₑ g dg).
    let mut dz = Array2::zeros((n, n_experts));
    for r in 0..n {
        let sum: f64 = if forget_sum { 0.0 } else { (0..n_experts).map(|e| c.gates[[r, e]] * dgates[[r, e]]).sum() };
        for e in 0..n_experts {
            dz[[r, e]] = c.gates[[r, e]] * (dgates[[r, e]] - sum);
        }
    }
    // Step 3. z = x·W_g + b_g: the Linear backward of chapter 01.
    let dw_gate = x.t().dot(&dz);
    let db_gate = dz.sum_axis(Axis(0));
    let mut dx = dz.dot(&p.w_gate.t());
    // Step 4. Each expert saw dy scaled by its gate: dyₑ = gₑ ⊙ dy; then its own Linear backward.
    let (mut dw_expert, mut db_expert) = (Vec::new(), Vec::new());
    for e in 0..n_experts {
        let mut dye = dy.clone();
        for r in 0..n {
            dye.row_mut(r).mapv_inplace(|v| v * c.gates[[r, e]]);
        }
        dw_expert.push(x.t().dot(&dye));
        db_expert.push(dye.sum_axis(Axis(0)));
        // x fed the gate and every expert: its gradient sums all E + 1 paths.
        dx += &dye.dot(&p.w_expert[e].t());
    }
    ToyGrads { dgates, dz, dw_gate, db_gate, dw_expert, db_expert, dx }
}

fn derived_backward(t: &mut Tally) {
    println!("\n== 4. The gate's backward, derived and written out (6 rows, d_in 3, d_out 2, 3 linear experts; f64, bar {TOL:.0e})");
    let (n, d_in, d_out, n_experts) = (6, 3, 2, 3);
    let mut g = init::rng(5);
    let p = Toy {
        w_gate: init::normal((d_in, n_experts), 1.0, &mut g),
        b_gate: init::normal(n_experts, 1.0, &mut g),
        w_expert: (0..n_experts).map(|_| init::normal((d_in, d_out), 1.0, &mut g)).collect(),
        b_expert: (0..n_experts).map(|_| init::normal(d_out, 1.0, &mut g)).collect(),
    };
    let x: Array2<f64> = init::normal((n, d_in), 1.0, &mut g);
    let r: Array2<f64> = init::normal((n, d_out), 1.0, &mut g); // L = Σ y ⊙ r, so dy = r
    let (_, c) = toy_forward(&p, &x);
    let grads = toy_backward(&p, &c, &x, &r, false);

    // Each step on its own: L as a function of the gates (experts fixed), then of the logits.
    let z = x.dot(&p.w_gate) + &p.b_gate;
    let num_dg = numeric_grad(|gates| (mix(gates, &c.outputs) * &r).sum(), &c.gates, EPS);
    let num_dz = numeric_grad(|z| (mix(&softmax(z.view()), &c.outputs) * &r).sum(), &z, EPS);
    t.expect_pass("toy", compare("dg", &grads.dgates, &num_dg));
    t.expect_pass("toy", compare("dz", &grads.dz, &num_dz));
    // And every parameter and the input, through the whole mixture.
    let loss = |p: &Toy, x: &Array2<f64>| (toy_forward(p, x).0 * &r).sum();
    t.expect_pass("toy", compare("dx", &grads.dx, &numeric_grad(|x| loss(&p, x), &x, EPS)));
    let num = numeric_grad(|w| loss(&Toy { w_gate: w.clone(), ..p.clone() }, &x), &p.w_gate, EPS);
    t.expect_pass("toy", compare("dW_gate", &grads.dw_gate, &num));
    let num = numeric_grad(|b| loss(&Toy { b_gate: b.clone(), ..p.clone() }, &x), &p.b_gate, EPS);
    t.expect_pass("toy", compare("db_gate", &grads.db_gate, &num));
    for e in 0..n_experts {
        let with_w = |w: &Array2<f64>| {
            let mut q = p.clone();
            q.w_expert[e] = w.clone();
            loss(&q, &x)
        };
        t.expect_pass(
            "toy",
            compare(&format!("dW_expert{e}"), &grads.dw_expert[e], &numeric_grad(with_w, &p.w_expert[e], EPS)),
        );
        let with_b = |b: &Array1<f64>| {
            let mut q = p.clone();
            q.b_expert[e] = b.clone();
            loss(&q, &x)
        };
        t.expect_pass(
            "toy",
            compare(&format!("db_expert{e}"), &grads.db_expert[e], &numeric_grad(with_b, &p.b_expert[e], EPS)),
        );
    }
    let worst_row_sum = grads.dz.sum_axis(Axis(1)).fold(0.0f64, |m, v| m.max(v.abs()));
    println!("       every row of dz sums to 0: max |Σₑ dz[r, e]| = {worst_row_sum:.1e}");
    t.require("rows of dz sum to 0", worst_row_sum < 1e-12);
    // If every expert gives the same output, dg is the same for every e and dz vanishes:
    // the router learns only from the differences between its experts.
    let same: Vec<Array2<f64>> = vec![c.outputs[0].clone(); n_experts];
    let same_cache = ToyCache { gates: c.gates.clone(), outputs: same };
    let dz_same = toy_backward(&p, &same_cache, &x, &r, false).dz;
    let worst = dz_same.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    println!("       experts that agree teach the router nothing: with y₀ = y₁ = y₂, max |dz| = {worst:.1e}");
    t.require("identical experts give dz = 0", worst < 1e-12);

    println!("A broken backward: the softmax step without its − Σₑ g dg term (dz = g ⊙ dg):");
    let bad = toy_backward(&p, &c, &x, &r, true);
    t.expect_caught("toy.no_sum", compare("dz", &bad.dz, &num_dz));
}

/// L = Σ y ⊙ r through `moe::layer` (train mode with a fixed generator, so noise repeats):
/// dx by central differences, every tensor with the checker.
fn check_layer(t: &mut Tally, name: &str, router_hidden: Option<usize>, noisy: bool) {
    let mut g = init::rng(6);
    let cfg = layer::Config { level: Level::Token, gating: Gating::DENSE, passthrough: false };
    let mut p: layer::Params<f64> =
        layer::init(4, router_hidden, noisy, 3, cfg, |r| Expert::mlp(&[4, 5, 3], Activation::Relu, 0.0, r), &mut g);
    // Router weights of order 1 (not 0.02) and non-zero W_noise, so every path carries gradient.
    for (n, mut w) in p.tensors_mut() {
        if n.starts_with("router.") {
            w.assign(&init::uniform(w.raw_dim(), 1.0, &mut g));
        }
    }
    let x: Array2<f64> = init::uniform((7, 4), 1.0, &mut g);
    let r: Array2<f64> = init::uniform((7, 3), 1.0, &mut g);
    let run = |p: &layer::Params<f64>, x: &Array2<f64>| {
        layer::forward(p, x.view(), 7, 1, no_mask(), Route::default(), &mut Mode::Train(&mut init::rng(9)))
    };
    let (_, cache) = run(&p, &x);
    let (dx, grads) = layer::backward(&p, &cache, r.view(), None);
    t.expect_pass(name, compare("dx", &dx, &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, EPS)));
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    t.expect_pass_all(name, reports);
}

fn library_checks(t: &mut Tally) {
    println!("\nThe library's dense MoE layer (7 rows, d_in 4, 3 MLP experts 4 → 5 → 3), L = Σ y ⊙ r:");
    check_layer(t, "layer.linear", None, false);
    check_layer(t, "layer.ff", Some(6), false);
    check_layer(t, "layer.noisy", None, true);

    println!("E1's dense mixture (moe::mixture: a 2-layer gate, 3 experts 4 → 5 → 3, dropout 0.2):");
    let mut g = init::rng(7);
    let p: mixture::Params<f64> = mixture::init(&[4, 5, 3], &[4, 6], 3, Activation::Relu, 0.2, &mut g);
    let x: Array2<f64> = init::uniform((7, 4), 1.0, &mut g);
    let r: Array2<f64> = init::uniform((7, 3), 1.0, &mut g);
    let run = |p: &mixture::Params<f64>, x: &Array2<f64>| {
        mixture::forward(p, x.view(), &mut Mode::Train(&mut init::rng(9))).0
    };
    let (_, cache) = mixture::forward(&p, x.view(), &mut Mode::Train(&mut init::rng(9)));
    let (dx, grads) = mixture::backward(&p, &cache, r.view(), InputGrad::Need);
    let dx = dx.expect("asked for dx");
    t.expect_pass("mixture", compare("dx", &dx, &numeric_grad(|x| (run(&p, x) * &r).sum(), &x, EPS)));
    let mut params = p.clone();
    t.expect_pass_all("mixture", check_tensors(&mut params, &grads, |p| (run(p, &x) * &r).sum(), &Options::default()));

    println!("The MoE classifier (models::moe_classifier), dense, L = CE + z-loss + both entropy terms:");
    let cfg = Config {
        d_in: 4,
        hidden: vec![5],
        classes: 3,
        n_experts: 3,
        router_hidden: Some(6),
        noisy: false,
        gating: Gating::DENSE,
        router_losses: RouterLossConfig { balance: 0.0, z_loss: 0.05, token_entropy: 0.2, batch_entropy: -0.1 },
        dropout: 0.0,
    };
    let mut p: mc::Params<f64> = mc::init(&cfg, &mut g);
    for (n, mut w) in p.tensors_mut() {
        if n.starts_with("moe.router.") {
            w.assign(&init::uniform(w.raw_dim(), 1.0, &mut g));
        }
    }
    let labels = [0, 2, 1, 1, 0, 2, 2];
    let run = |p: &mc::Params<f64>| mc::forward(p, x.view(), &labels, Route::default(), &mut Mode::Eval);
    let (_, cache) = run(&p);
    let grads = mc::backward(&p, &cache);
    let mut params = p.clone();
    t.expect_pass_all("classifier", check_tensors(&mut params, &grads, |p| run(p).0.total, &Options::default()));
}

// ---------------------------------------------------------------------------------------
// 5. A trained dense MoE

/// 4 experts (2 → 8 → 3) mixed densely by a feed-forward router (2 → 16 → 4).
fn spiral_config(n_experts: usize) -> Config {
    Config {
        d_in: 2,
        hidden: vec![8],
        classes: 3,
        n_experts,
        router_hidden: Some(16),
        noisy: false,
        gating: Gating::DENSE,
        router_losses: RouterLossConfig::default(),
        dropout: 0.0,
    }
}

fn trained(t: &mut Tally) -> tinymoe::Result<()> {
    println!("\n== 5. A dense MoE on the three spirals (300 points per arm to train, 200 to test)");
    let train = spirals(300, 3, 1.25, 0.2, 1);
    let test = spirals(200, 3, 1.25, 0.2, 2);
    let fit = Fit::adam(40, 32, 1e-2, 42);
    let start = Instant::now();
    let mut results = Vec::new();
    for n_experts in [1, 4] {
        let mut model: mc::Params<f32> = mc::init(&spiral_config(n_experts), &mut init::rng(42));
        mc::fit(&mut model, train.x.view(), &train.y, &fit, &mut |_, _| {})?;
        results.push((model.clone(), mc::evaluate(&model, test.x.view(), &test.y, 600)));
    }
    println!(
        "Adam 1e-2, 40 epochs, batch 32 ({:.1} s for both):\n  one expert alone (an MLP 2 → 8 → 3):                    test accuracy {:.1}%\n  4 such experts mixed densely by a router 2 → 16 → 4:   test accuracy {:.1}%",
        start.elapsed().as_secs_f64(),
        100.0 * results[0].1.accuracy,
        100.0 * results[1].1.accuracy,
    );
    t.require("the mixture beats one expert", results[1].1.accuracy > results[0].1.accuracy + 0.1);
    let (model, e) = &results[1];
    let experts: Vec<String> = (0..4).map(|e| format!("expert {e}")).collect();
    let classes: Vec<String> = (0..3).map(|c| format!("arm {c}")).collect();

    println!("\nrouting metrics on the 600 test points (E = 4 experts, 3 classes):");
    println!("utilisation (share of rows whose largest gate is e): {:.3?}", e.utilisation);
    println!("load variance Var(u) = {:.4}   (0 balanced; (E−1)/E² = 0.1875 all on one expert)", e.load_variance);
    println!(
        "entropy: mean per row H(g_r) = {:.3} nats, of the mean routing H(ḡ) = {:.3} nats   (ln 4 = {:.3})",
        e.entropy.mean_token,
        e.entropy.of_mean,
        4f64.ln()
    );
    println!("class × expert mean gate:\n{:.3}", e.class_expert.mean_gate);
    let counts = e.class_expert.top_counts();
    println!("class × expert counts of largest gate (rows: arms, columns: experts):\n{counts}");
    // The specialisation index by hand: the class mix inside each expert, its entropy,
    // weighted by the expert's load, over ln(classes).
    let total = counts.sum();
    let mut h = 0.0;
    for (k, column) in counts.columns().into_iter().enumerate() {
        let load = column.sum();
        if load == 0.0 {
            println!("  expert {k}: no rows, weight 0");
            continue;
        }
        let q: Vec<f64> = column.iter().map(|&v| v / load).collect();
        let hk = -q.iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>();
        h += load / total * hk;
        println!("  expert {k}: {load:>3} rows, class mix {q:.2?}, H = {hk:.3}, weight {:.3}", load / total);
    }
    println!(
        "specialisation index = H(class | expert) / ln 3 = {h:.3} / {:.3} = {:.3}   (moe::metrics: {:.3})",
        3f64.ln(),
        h / 3f64.ln(),
        e.specialisation
    );
    t.require(
        "the hand-computed specialisation index equals the library's",
        (h / 3f64.ln() - e.specialisation).abs() < 1e-12,
    );

    let path = figures::path("ch08_routing_heatmap.png")?;
    routing_heatmap(
        &path,
        e.class_expert.mean_gate.view(),
        &classes,
        &experts,
        "spirals, dense MoE: mean gate",
        "spiral arm (class)",
    )?;
    println!("wrote {}", figures::shown(&path));

    // Which expert has the largest gate, everywhere on the plane; the test points on top.
    let (cells, lo, hi) = (160, -1.15, 1.15);
    let step = (hi - lo) / cells as f64;
    let grid_x = Array2::from_shape_fn((cells * cells, 2), |(k, c)| {
        let (i, j) = (k / cells, k % cells);
        (lo + (if c == 0 { j } else { i }) as f64 * step + step / 2.0) as f32
    });
    let pred = mc::predict(model, grid_x.view(), Route::default());
    let grid = Array2::from_shape_fn((cells, cells), |(i, j)| pred.chosen[i * cells + j][0]);
    // Class k is drawn in palette colour k + 4, so points never share a colour with a region.
    let points: Vec<(f64, f64, usize)> =
        test.x.rows().into_iter().zip(&test.y).map(|(p, &c)| (p[0] as f64, p[1] as f64, c + 4)).collect();
    let path = figures::path("ch08_router_regions.png")?;
    let names = experts.clone();
    region_map(
        &path,
        &RegionMap {
            title: "largest gate; arms 0, 1, 2 = purple, brown, pink",
            grid: &grid,
            x_range: (lo, hi),
            y_range: (lo, hi),
            region_names: &names,
            points: &points,
        },
    )?;
    println!("wrote {}", figures::shown(&path));
    Ok(())
}
