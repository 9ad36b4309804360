//! Chapter 09 — top-k routing, capacity and load balancing
//! (notebooks-md/09-top-k-capacity-load-balancing.md).
//!
//! Shows, in order:
//! 1. Top-k by hand: the k largest logits, gates renormalised over them; top-1's gate is the
//!    constant 1.
//! 2. The backward: the choice is a constant, only the softmax over the chosen k is
//!    differentiated; gradient checks of the routing step, of `moe::layer` with top-2 and of
//!    the MoE classifier with every router loss (f64, bar 1e-6); and what a tie does to a
//!    finite difference.
//! 3. Sparse dispatch: gather → run each expert once on its rows → scatter; `Stats` shows an
//!    unchosen expert doing no work, and top-k with k = E equals dense.
//! 4. Capacity factor: each expert's capacity ⌈c·k·m/E⌉ and the assignments dropped.
//! 5. Router losses by hand: the Switch loss (α under uniform routing, α·N under collapse,
//!    0.9α with an expert starved: α is not its minimum), the z-loss, and the two entropy
//!    regularisers with the sign of each, shown by descending each alone on free logits;
//!    gradient checks of all four.
//! 6. Collapse and its cure: E6 (4 experts 20 → 64 → 32 → 3, top-2, 20-d sentiment features)
//!    trained twice from one seed, without and with the Switch loss, first at E6's own
//!    settings, then with the one setting changed that makes it collapse; utilisation over
//!    training and class × expert heatmaps as PNGs (in notebooks-md/figures/, or
//!    `$TINYMOE_FIGURES_DIR`).
//!
//! `--seeds` adds a table of seeds 42, 1 and 2 for each setting (about 10 s more).
//!
//! Exits 1 if a gradient check fails, a stated fact does not hold, or a PNG cannot be written.
//! Run: `cargo run --release --example ch09_topk`

use ndarray::{array, Array1, Array2, ArrayView2, Axis};
use std::time::Instant;
use tinymoe::data::corpora;
use tinymoe::data::Dataset;
use tinymoe::engine::gradcheck::{check_tensors, compare, numeric_grad, Options};
use tinymoe::engine::init;
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::{Activation, Mode};
use tinymoe::engine::ops::softmax::softmax;
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_classifier::{self as mc, Config, Fit};
use tinymoe::moe::expert::{self, Expert};
use tinymoe::moe::layer::{self, Level, Route};
use tinymoe::moe::losses::{self, RouterLossConfig};
use tinymoe::moe::metrics::{load_variance, routing_entropy};
use tinymoe::moe::routing::{self, Gating, Intervention, Strategy};
use tinymoe::plot::heatmap::{heatmap_grid, Heatmap};
use tinymoe::plot::line::{line_chart, Series};

#[path = "common/figures.rs"]
mod figures;
#[path = "common/tally.rs"]
mod tally;
use tally::{Tally, TOL};

const EPS: f64 = 1e-5;

fn main() {
    let seeds = std::env::args().any(|a| a == "--seeds");
    let mut t = Tally::default();
    by_hand(&mut t);
    backward_and_ties(&mut t);
    dispatch(&mut t);
    capacity(&mut t);
    router_losses(&mut t);
    if let Err(e) = collapse(&mut t, seeds) {
        eprintln!("ch09: error: {e}");
        std::process::exit(1);
    }
    println!();
    t.finish("every fact above holds");
}

/// Prints `what: holds` and records it.
fn fact(t: &mut Tally, what: &str, holds: bool) {
    println!("{what}: {holds}");
    t.require(what, holds);
}

fn no_mask() -> Mask<'static> {
    Mask { causal: false, key_padding: None }
}

fn decide(h: &Array2<f64>, gating: Gating) -> routing::Decision<f64> {
    routing::decide(h.view(), &vec![true; h.nrows()], gating, &Intervention::none(), None)
}

// ---------------------------------------------------------------------------------------
// 1. By hand

fn by_hand(t: &mut Tally) {
    println!("== 1. Top-k by hand: one row, logits h = [2, 1, 0.5, −1], 4 experts");
    let h = array![[2.0, 1.0, 0.5, -1.0]];
    let p = softmax(h.view());
    println!("softmax over all 4:           p = {:.4}", p.row(0));
    let (e2, e1) = (2f64.exp(), 1f64.exp());
    println!(
        "top-2 keeps experts 0 and 1;  g = [e², e¹] / (e² + e¹) = [{:.4}, {:.4}]   (p₀ + p₁ = {:.4}: renormalised to 1)",
        e2 / (e2 + e1),
        e1 / (e2 + e1),
        p[[0, 0]] + p[[0, 1]]
    );
    let d = decide(&h, Gating::top_k(2));
    println!("routing::decide, top-2: chosen {:?}, gates {:.4}", d.chosen[0], d.gates.row(0));
    let same = d.chosen[0] == vec![0, 1] && (d.gates[[0, 0]] - e2 / (e2 + e1)).abs() < 1e-12;
    fact(t, "the library's top-2 matches the hand computation", same);
    let d1 = decide(&h, Gating::top_k(1));
    println!("routing::decide, top-1: chosen {:?}, gates {:.4}", d1.chosen[0], d1.gates.row(0));
    let d4 = decide(&h, Gating::top_k(4));
    let dense = decide(&h, Gating::DENSE);
    fact(
        t,
        "top-4 of 4 gives the dense gates (the full softmax)",
        (&d4.gates - &dense.gates).iter().all(|v| v.abs() < 1e-15),
    );
}

// ---------------------------------------------------------------------------------------
// 2. Backward and ties

/// L(h) = Σ_u Σ_e g[u, e](h)·R[u, e]: the routing step alone, with R standing in for
/// ∂L/∂g (in the layer, dg[u, e] = dy[u]·yₑ[u]).
fn routed_sum(h: &Array2<f64>, r: &Array2<f64>, k: usize) -> f64 {
    (decide(h, Gating::top_k(k)).gates * r).sum()
}

/// Top-2 through `moe::layer` (train mode, fixed generator): dx and every tensor.
fn check_layer(t: &mut Tally, name: &str, router_hidden: Option<usize>, noisy: bool) {
    let mut g = init::rng(21);
    let cfg = layer::Config { level: Level::Token, gating: Gating::top_k(2), passthrough: false };
    let mut p: layer::Params<f64> =
        layer::init(4, router_hidden, noisy, 4, cfg, |r| Expert::mlp(&[4, 5, 3], Activation::Relu, 0.0, r), &mut g);
    // Router weights of order 1, so a row's logits are far apart (no near-ties).
    for (n, mut w) in p.tensors_mut() {
        if n.starts_with("router.") {
            w.assign(&init::uniform(w.raw_dim(), 1.0, &mut g));
        }
    }
    let x: Array2<f64> = init::uniform((8, 4), 1.0, &mut g);
    let r: Array2<f64> = init::uniform((8, 3), 1.0, &mut g);
    let run = |p: &layer::Params<f64>, x: &Array2<f64>| {
        layer::forward(p, x.view(), 8, 1, no_mask(), Route::default(), &mut Mode::Train(&mut init::rng(9)))
    };
    let (_, cache) = run(&p, &x);
    t.require("every expert takes part in the layer check", cache.stats().calls == vec![1; 4]);
    let (dx, grads) = layer::backward(&p, &cache, r.view(), None);
    t.expect_pass(name, compare("dx", &dx, &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, EPS)));
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    t.expect_pass_all(name, reports);
}

fn backward_and_ties(t: &mut Tally) {
    println!("\n== 2. Top-k backward: the choice is a constant; gradient checks in f64 (bar {TOL:.0e})");
    let mut g = init::rng(20);
    let h: Array2<f64> = init::normal((6, 4), 1.0, &mut g);
    let r: Array2<f64> = init::normal((6, 4), 1.0, &mut g);
    for k in [1, 2, 3] {
        let d = decide(&h, Gating::top_k(k));
        let dh = routing::backward(&d, r.view());
        let num = numeric_grad(|h| routed_sum(h, &r, k), &h, EPS);
        t.expect_pass("routing", compare(&format!("top{k}.dh"), &dh, &num));
        if k == 1 {
            let worst = dh.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            println!("       top-1: the gate is the constant 1, so dh = 1·(dg − 1·dg) = 0: max |dh| = {worst:.1e}");
            t.require("top-1 gives the router no gradient", worst == 0.0);
        }
        if k == 2 {
            let off: f64 = (0..6)
                .flat_map(|u| (0..4).map(move |e| (u, e)))
                .filter(|&(u, e)| !d.chosen[u].contains(&e))
                .map(|(u, e)| dh[[u, e]].abs())
                .fold(0.0, f64::max);
            println!("       top-2: an unchosen expert's logit gets exactly 0: max |dh| off the chosen = {off:.1e}");
            t.require("unchosen logits get zero gradient", off == 0.0);
        }
    }
    println!("moe::layer with top-2 (8 rows, d_in 4, 4 MLP experts 4 → 5 → 3), L = Σ y ⊙ r:");
    check_layer(t, "top2.linear", None, false);
    check_layer(t, "top2.ff_noisy", Some(6), true);

    println!("The MoE classifier, top-2, L = CE + Switch + z-loss + token entropy + batch entropy:");
    let cfg = Config {
        d_in: 4,
        hidden: vec![5],
        classes: 3,
        n_experts: 4,
        router_hidden: None,
        noisy: false,
        gating: Gating::top_k(2),
        router_losses: RouterLossConfig { balance: 0.3, z_loss: 0.05, token_entropy: 0.2, batch_entropy: -0.1 },
        dropout: 0.0,
    };
    let mut p: mc::Params<f64> = mc::init(&cfg, &mut g);
    for (n, mut w) in p.tensors_mut() {
        if n.starts_with("moe.router.") {
            w.assign(&init::uniform(w.raw_dim(), 1.0, &mut g));
        }
    }
    // Small router biases, so the input (not the bias) decides and every expert gets rows.
    p.moe.router.net.layers[0].b.mapv_inplace(|b| 0.1 * b);
    let x: Array2<f64> = init::uniform((12, 4), 1.0, &mut g);
    let labels = [0, 2, 1, 1, 0, 2, 2, 1, 0, 1, 2, 0];
    let run = |p: &mc::Params<f64>| mc::forward(p, x.view(), &labels, Route::default(), &mut Mode::Eval);
    let (_, cache) = run(&p);
    println!(
        "       rows per expert: {:?} (every expert takes part, so every gradient is tested)",
        cache.moe().stats().rows
    );
    t.require("every expert takes part in the classifier check", cache.moe().stats().calls == vec![1; 4]);
    let grads = mc::backward(&p, &cache);
    let mut params = p.clone();
    t.expect_pass_all("classifier", check_tensors(&mut params, &grads, |p| run(p).0.total, &Options::default()));

    println!("A tie: h = [1, 0.5, 0.5, −1], top-2; experts 1 and 2 tie for second place");
    let h = array![[1.0, 0.5, 0.5, -1.0]];
    let r = array![[0.3, -0.7, 0.9, 0.1]];
    let d = decide(&h, Gating::top_k(2));
    println!("  chosen {:?} (a tie goes to the lower index, so the choice is stable)", d.chosen[0]);
    let analytic = routing::backward(&d, r.view());
    for e in [1, 2] {
        let at = |delta: f64| {
            let mut h2 = h.clone();
            h2[[0, e]] += delta;
            routed_sum(&h2, &r, 2)
        };
        let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
        println!(
            "  ∂L/∂h[{e}]: numeric (L(+ε) − L(−ε))/2ε = {numeric:+.4e}, analytic {:+.4e}   (h[{e}] ± ε swaps expert 1 and 2)",
            analytic[[0, e]]
        );
        t.require("a tie makes the finite difference jump", numeric.abs() > 1e3);
    }
}

// ---------------------------------------------------------------------------------------
// 3. Sparse dispatch

fn dispatch(t: &mut Tally) {
    println!("\n== 3. Sparse dispatch: 8 rows, 4 MLP experts 4 → 8 → 3, top-2; expert 3's router bias −10");
    let mut g = init::rng(30);
    let make = |gating: Gating, g: &mut init::Rng| -> layer::Params<f64> {
        let cfg = layer::Config { level: Level::Token, gating, passthrough: false };
        layer::init(4, None, false, 4, cfg, |r| Expert::mlp(&[4, 8, 3], Activation::Relu, 0.0, r), g)
    };
    let mut p = make(Gating::top_k(2), &mut g);
    p.router.net.layers[0].w = init::normal((4, 4), 1.0, &mut g);
    p.router.net.layers[0].b[3] = -10.0;
    let x: Array2<f64> = init::normal((8, 4), 1.0, &mut g);
    let (y, cache) = layer::forward(&p, x.view(), 8, 1, no_mask(), Route::default(), &mut Mode::Eval);
    let d = cache.decision();
    for e in 0..4 {
        let rows: Vec<usize> = (0..8).filter(|&u| d.chosen[u].contains(&e)).collect();
        println!("  expert {e} gathers rows {rows:?}");
    }
    let s = cache.stats();
    println!("Stats: calls {:?}, rows {:?}, tokens {:?}", s.calls, s.rows, s.tokens);
    fact(t, "expert 3 was never chosen and never called", s.calls[3] == 0 && s.rows[3] == 0);
    let total: usize = s.rows.iter().sum();
    println!("expert rows run: {total} = k·n = 2·8   (dense would run 4·8 = 32)");
    t.require("top-2 runs exactly 2 rows per row", total == 16);
    // Scatter: y[r] = Σ over the chosen e of g[r, e]·expertₑ(x[r]).
    let mut by_hand = Array2::<f64>::zeros((8, 3));
    for (e, ex) in p.experts.iter().enumerate() {
        let (ye, _) = expert::forward(ex, x.view(), 8, 1, no_mask(), &mut Mode::Eval);
        for u in 0..8 {
            if d.chosen[u].contains(&e) {
                by_hand.row_mut(u).scaled_add(d.gates[[u, e]], &ye.row(u));
            }
        }
    }
    let diff = (&y - &by_hand).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    fact(t, "gather → run → scatter equals Σ over the chosen of g·expert(x)", diff < 1e-12);
    let mut all = p.clone();
    all.config.gating = Gating::top_k(4);
    let mut dense = p.clone();
    dense.config.gating = Gating::DENSE;
    let (y_all, _) = layer::forward(&all, x.view(), 8, 1, no_mask(), Route::default(), &mut Mode::Eval);
    let (y_dense, _) = layer::forward(&dense, x.view(), 8, 1, no_mask(), Route::default(), &mut Mode::Eval);
    let diff = (&y_all - &y_dense).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    fact(t, "top-k with k = E equals dense", diff < 1e-12);
}

// ---------------------------------------------------------------------------------------
// 4. Capacity

fn capacity(t: &mut Tally) {
    println!("\n== 4. Capacity: 64 rows, 4 experts, top-1, a router that favours expert 0");
    let mut g = init::rng(40);
    let cfg = layer::Config { level: Level::Token, gating: Gating::top_k(1), passthrough: false };
    let mut p: layer::Params<f64> =
        layer::init(4, None, false, 4, cfg, |r| Expert::mlp(&[4, 8, 3], Activation::Relu, 0.0, r), &mut g);
    p.router.net.layers[0].w = init::normal((4, 4), 1.0, &mut g);
    p.router.net.layers[0].b[0] = 1.5;
    let x: Array2<f64> = init::normal((64, 4), 1.0, &mut g);
    println!("capacity = ⌈c · k · m / E⌉ = ⌈c · 1 · 64 / 4⌉ = ⌈16·c⌉");
    println!("  factor  capacity  rows served per expert   dropped");
    let mut note = String::new();
    for c in [None, Some(2.0), Some(1.25), Some(1.0), Some(0.5)] {
        p.config.gating = Gating { strategy: Strategy::TopK(1), capacity_factor: c };
        let (y, cache) = layer::forward(&p, x.view(), 64, 1, no_mask(), Route::default(), &mut Mode::Eval);
        let d = cache.decision();
        let cap = c.map_or("∞".to_string(), |c| routing::capacity(c, 1, 64, 4).to_string());
        let label = c.map_or("none".to_string(), |c| format!("{c}"));
        println!("  {label:>6}  {cap:>8}  {:<23}  {:>7}", format!("{:?}", d.load()), d.dropped);
        let served: usize = d.load().iter().sum();
        t.require("served + dropped = one assignment per row", served + d.dropped == 64);
        if c == Some(1.0) {
            // A dropped row: chosen, but its expert was full; the MLP expert did not run on
            // it, so its output is all zeros (no passthrough: y = Σ over *kept* g·expert).
            let dropped_row = (0..64).find(|&u| d.kept.row(u).sum() == 0.0).expect("some row was dropped");
            note = format!(
                "with c = 1: row {dropped_row} chose expert {:?} but was dropped: y[{dropped_row}] = {:.1}",
                d.chosen[dropped_row],
                y.row(dropped_row)
            );
            t.require("a dropped row's output is zero", y.row(dropped_row).iter().all(|&v| v == 0.0));
        }
    }
    println!("{note}");
}

// ---------------------------------------------------------------------------------------
// 5. Router losses

/// Plain gradient descent on free logits z [32, 4] with one router loss: z ← z − lr·∂L/∂z.
fn descend(z: &Array2<f64>, step: impl Fn(ArrayView2<f64>) -> Array2<f64>) -> Array2<f64> {
    let mut z = z.clone();
    for _ in 0..300 {
        let dz = step(z.view());
        z.scaled_add(-(z.nrows() as f64), &dz); // lr = n: each loss is a mean over n rows
    }
    z
}

fn router_losses(t: &mut Tally) {
    println!("\n== 5. Router losses by hand (N = 4 experts, 8 rows)");
    let alpha = 0.01;
    let n_experts = 4.0;
    // Uniform: z = 0 (P = 1/4 each), rows dispatched round-robin (f = 1/4 each).
    let z = Array2::<f64>::zeros((8, 4));
    let round_robin = Array2::from_shape_fn((8, 4), |(r, e)| if r % 4 == e { 1.0 } else { 0.0 });
    let (uniform, dz_uniform) = losses::switch_balance(z.view(), round_robin.view(), None, alpha);
    println!(
        "Switch, uniform:  f = P = [¼, ¼, ¼, ¼]:  α·N·Σ fᵢPᵢ = 0.01·4·(4·1/16) = α = {:.4};  computed {uniform:.4}, max |dz| = {:.0e}",
        alpha,
        dz_uniform.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    );
    // Collapse: every row to expert 0, with probability ≈ 1.
    let mut z_col = Array2::<f64>::zeros((8, 4));
    z_col.column_mut(0).fill(20.0);
    let all_to_0 = Array2::from_shape_fn((8, 4), |(_, e)| if e == 0 { 1.0 } else { 0.0 });
    let (collapsed, _) = losses::switch_balance(z_col.view(), all_to_0.view(), None, alpha);
    println!(
        "Switch, collapse: f = P = [1, 0, 0, 0]:  α·N·1·1 = α·N = {:.4};  computed {collapsed:.4}",
        alpha * n_experts
    );
    t.require(
        "Switch loss: α under uniform, α·N under collapse",
        (uniform - alpha).abs() < 1e-15 && (collapsed - 0.04).abs() < 1e-9,
    );
    // Less extreme: z₀ = 2, so P₀ ≈ 0.71 and gradient descent can still move it.
    let mut z_half = Array2::<f64>::zeros((8, 4));
    z_half.column_mut(0).fill(2.0);
    let (_, dz_half) = losses::switch_balance(z_half.view(), all_to_0.view(), None, alpha);
    println!(
        "  its gradient at z₀ = 2 (P₀ = {:.2}): dz[r] = {:.5}   (+ on the overloaded expert: descent lowers its logit)",
        softmax(z_half.view())[[0, 0]],
        dz_half.row(0)
    );
    t.require("the Switch gradient pushes the overloaded expert down", dz_half[[0, 0]] > 0.0);
    let dense = Array2::<f64>::ones((8, 4));
    let z_rand: Array2<f64> = init::normal((8, 4), 1.0, &mut init::rng(50));
    let (dense_loss, dz_dense) = losses::switch_balance(z_rand.view(), dense.view(), None, alpha);
    println!(
        "Switch, dense routing (every row to every expert, f = ¼ whatever P): {dense_loss:.4} = α, max |dz| = {:.0e}",
        dz_dense.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    );
    // α is not the minimum: N = 3, top-1, half the rows p = (0.45, 0.15, 0.40), half
    // (0.15, 0.45, 0.40). Every row's argmax is expert 0 or 1, so f = (½, ½, 0) and expert 2
    // gets no token, yet it holds the most probability: P = (0.3, 0.3, 0.4).
    let p_rows = Array2::from_shape_fn((8, 3), |(r, e)| match (r % 2, e) {
        (_, 2) => 0.40,
        (0, 0) | (1, 1) => 0.45,
        _ => 0.15,
    });
    let z_starved = p_rows.mapv(f64::ln); // softmax(ln p) = p
    let top1 = Array2::from_shape_fn((8, 3), |(r, e)| f64::from(u8::from(e == r % 2)));
    let (starved, _) = losses::switch_balance(z_starved.view(), top1.view(), None, alpha);
    // L = α·(1 + N·Σᵢ (fᵢ − 1/N)·(Pᵢ − 1/N)): below α exactly when that sum is negative.
    let deviations: f64 =
        [(0.5, 0.3), (0.5, 0.3), (0.0, 0.4)].iter().map(|(f, p)| (f - 1.0 / 3.0) * (p - 1.0 / 3.0)).sum();
    println!(
        "Switch, one expert starved (N = 3, top-1): rows p = [0.45, 0.15, 0.40] and [0.15, 0.45, 0.40] → f = [½, ½, 0], P = [0.3, 0.3, 0.4]:\n  \
         α·3·(½·0.3 + ½·0.3) = 0.9α = {:.4};  computed {starved:.4};  α·(1 + N·Σ (fᵢ − 1/N)(Pᵢ − 1/N)) = {:.4}",
        0.9 * alpha,
        alpha * (1.0 + 3.0 * deviations)
    );
    t.require(
        "the Switch loss goes below α with an expert starved: α is not its minimum",
        (starved - 0.9 * alpha).abs() < 1e-12 && (alpha * (1.0 + 3.0 * deviations) - starved).abs() < 1e-12,
    );

    let beta = 1e-3;
    let (z0, _) = losses::z_loss(z.view(), None, beta);
    let big = array![[10.0, 0.0, 0.0, 0.0]];
    let (z10, _) = losses::z_loss(big.view(), None, beta);
    println!(
        "z-loss β·mean (logsumexp z)²: z = 0 → β·(ln 4)² = {:.5}, computed {z0:.5};  z = [10, 0, 0, 0] → {z10:.5}",
        beta * 4f64.ln().powi(2)
    );

    println!("Gradient checks of the four losses at random logits (8 rows; top-2 dispatch for Switch):");
    let mut g = init::rng(51);
    let zr: Array2<f64> = init::normal((8, 4), 1.5, &mut g);
    let top2 = decide(&zr, Gating::top_k(2));
    let disp = top2.gates.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    type LossFn<'a> = Box<dyn Fn(ArrayView2<f64>) -> (f64, Array2<f64>) + 'a>;
    let checks: [(&str, LossFn); 4] = [
        ("switch", Box::new(|z| losses::switch_balance(z, disp.view(), None, 0.3))),
        ("z_loss", Box::new(|z| losses::z_loss(z, None, 0.05))),
        ("token_entropy", Box::new(|z| losses::token_entropy(z, None, 0.2))),
        ("batch_entropy", Box::new(|z| losses::batch_entropy(z, None, -0.1))),
    ];
    for (name, f) in &checks {
        let (_, dz) = f(zr.view());
        t.expect_pass("loss", compare(&format!("{name}.dz"), &dz, &numeric_grad(|z| f(z.view()).0, &zr, EPS)));
    }

    println!("The signs: each entropy term alone, 300 steps of gradient descent on free logits z [32, 4] ~ U(−1, 1)");
    let start: Array2<f64> = init::uniform((32, 4), 1.0, &mut init::rng(52));
    let entropies = |z: &Array2<f64>| routing_entropy(softmax(z.view()).view(), None);
    let h0 = entropies(&start);
    println!("  term                     coef   H per row   H of the mean   (ln 4 = {:.3})", 4f64.ln());
    println!("  start                             {:.3}       {:.3}", h0.mean_token, h0.of_mean);
    let runs: [(&str, f64, bool); 4] = [
        ("token entropy", 1.0, true),
        ("token entropy", -1.0, true),
        ("batch entropy", -1.0, false),
        ("batch entropy", 1.0, false),
    ];
    for (name, c, token) in runs {
        let z = descend(&start, |z| {
            if token {
                losses::token_entropy(z, None, c).1
            } else {
                losses::batch_entropy(z, None, c).1
            }
        });
        let h = entropies(&z);
        let effect = match (token, c > 0.0) {
            (true, true) => "sharpens each row",
            (true, false) => "flattens each row",
            (false, false) => "spreads the load",
            (false, true) => "collapses the load",
        };
        println!("  {name:<22} {c:>+5.1}   {:.3}       {:.3}          {effect}", h.mean_token, h.of_mean);
        let holds = match (token, c > 0.0) {
            (true, true) => h.mean_token < 0.1,
            (true, false) => h.mean_token > 1.38,
            (false, false) => h.of_mean > 1.38,
            (false, true) => h.of_mean < 0.1,
        };
        t.require(&format!("{name} with coefficient {c:+} {effect}"), holds);
    }
}

// ---------------------------------------------------------------------------------------
// 6. Collapse and its cure

/// One E6 setting: what differs from `Config::e6()` and the learning rate.
struct Setting {
    name: &'static str,
    router_hidden: Option<usize>,
    lr: f64,
}

const SETTINGS: [Setting; 2] = [
    Setting { name: "E6 as specified (linear router, lr 1e-3)", router_hidden: None, lr: 1e-3 },
    Setting { name: "2-layer router 20 → 32 → 4, lr 3e-3", router_hidden: Some(32), lr: 3e-3 },
];
const EPOCHS: usize = 20;
const BATCH: usize = 64;
const ALPHA: f64 = 1e-2;

fn e6_config(s: &Setting, alpha: f64) -> Config {
    let mut cfg = Config::e6();
    cfg.router_hidden = s.router_hidden;
    cfg.router_losses = RouterLossConfig { balance: alpha, ..RouterLossConfig::default() };
    cfg
}

/// Trains one model; with `track`, evaluates on `test` before training and after every epoch.
fn train_e6(
    cfg: &Config,
    lr: f64,
    seed: u64,
    train: &Dataset,
    test: &Dataset,
    track: bool,
) -> tinymoe::Result<Vec<mc::Eval>> {
    let mut model: mc::Params<f32> = mc::init(cfg, &mut init::rng(seed));
    let per_epoch = train.len().div_ceil(BATCH);
    let mut evals = Vec::new();
    if track {
        evals.push(mc::evaluate(&model, test.x.view(), &test.y, 500));
    }
    mc::fit(&mut model, train.x.view(), &train.y, &Fit::adam(EPOCHS, BATCH, lr, seed), &mut |log, m| {
        if track && log.step % per_epoch == 0 && log.step < EPOCHS * per_epoch {
            evals.push(mc::evaluate(m, test.x.view(), &test.y, 500));
        }
    })?;
    evals.push(mc::evaluate(&model, test.x.view(), &test.y, 500));
    Ok(evals)
}

/// At initialisation: each expert's mean router logit over the test rows (centred over experts)
/// and the typical (rms) deviation of a row's centred logits from those means.
fn init_logits(cfg: &Config, test: &Dataset) -> (Array1<f64>, f64) {
    let model: mc::Params<f32> = mc::init(cfg, &mut init::rng(42));
    let pred = mc::predict(&model, test.x.view(), Route::default());
    // ln p = z − logsumexp(z): centring ln p over the experts recovers the centred logits.
    let mut z = pred.router_probs.mapv(f64::ln);
    for mut row in z.rows_mut() {
        let mean = row.mean().expect("E > 0");
        row.mapv_inplace(|v| v - mean);
    }
    let offsets = z.mean_axis(Axis(0)).expect("rows > 0");
    let spread = ((&z - &offsets).mapv(|v| v * v).mean().expect("rows > 0")).sqrt();
    (offsets, spread)
}

fn fmt_shares(v: &[f64]) -> String {
    let cells: Vec<String> = v.iter().map(|s| format!("{s:.2}")).collect();
    format!("[{}]", cells.join(" "))
}

fn print_pair(runs: &[mc::Eval; 2]) {
    println!("                                     no balancing              Switch loss α = {ALPHA}");
    let row = |label: &str, f: &dyn Fn(&mc::Eval) -> String| {
        println!("  {label:<34} {:<25} {}", f(&runs[0]), f(&runs[1]));
    };
    row("test accuracy", &|e| format!("{:.1}%", 100.0 * e.accuracy));
    row("share of assignments (load)", &|e| fmt_shares(&e.load));
    row("Var(load)", &|e| format!("{:.4}", load_variance(&e.load)));
    row("first-choice utilisation", &|e| fmt_shares(&e.utilisation));
    row("Var(utilisation) (load variance)", &|e| format!("{:.4}", e.load_variance));
    row("router entropy: per row / of mean", &|e| format!("{:.3} / {:.3}", e.entropy.mean_token, e.entropy.of_mean));
    row("specialisation index", &|e| format!("{:.3}", e.specialisation));
}

fn collapse(t: &mut Tally, seeds: bool) -> tinymoe::Result<()> {
    println!("\n== 6. Collapse and its cure: E6, 3,000 training rows of the 20-d sentiment features, 1,500 to test");
    println!("4 experts 20 → 64 → 32 → 3, top-2, Adam, batch {BATCH}, {EPOCHS} epochs, seed 42; each setting trained twice, α = 0 and α = {ALPHA}");
    let train = corpora::sentiment_features(3000, 1);
    let test = corpora::sentiment_features(1500, 2);
    let start = Instant::now();
    let mut histories: Vec<[Vec<mc::Eval>; 2]> = Vec::new();
    for s in &SETTINGS {
        let without = train_e6(&e6_config(s, 0.0), s.lr, 42, &train, &test, true)?;
        let with = train_e6(&e6_config(s, ALPHA), s.lr, 42, &train, &test, true)?;
        println!("\n{}:", s.name);
        println!(
            "  share of assignments at initialisation (both runs start from the same weights): {}",
            fmt_shares(&without[0].load)
        );
        let (offsets, spread) = init_logits(&e6_config(s, 0.0), &test);
        println!(
            "  router logits at initialisation: mean per expert (centred) {offsets:+.4}, typical row-to-row spread {spread:.4}"
        );
        let last = |h: &[mc::Eval]| h.last().expect("a final evaluation").clone();
        print_pair(&[last(&without), last(&with)]);
        histories.push([without, with]);
    }
    println!("(four runs with per-epoch evaluation in {:.1} s)", start.elapsed().as_secs_f64());
    let final_of = |s: usize, run: usize| histories[s][run].last().expect("a final evaluation");
    let min_load = |e: &mc::Eval| e.load.iter().copied().fold(f64::INFINITY, f64::min);
    t.require("E6 as specified does not collapse", min_load(final_of(0, 0)) > 0.15);
    t.require("the 2-layer router collapses without balancing", min_load(final_of(1, 0)) < 0.1);
    t.require("the Switch loss revives the starved expert", min_load(final_of(1, 1)) > 2.0 * min_load(final_of(1, 0)));

    // Utilisation over training, one chart per run, on the same axes: the lines at 0, ¼ and
    // ½ are unused, uniform, and the most one expert can take under top-2.
    for (run, label, file) in
        [(0, "no balancing", "ch09_load_no_balancing.png"), (1, "Switch loss α = 0.01", "ch09_load_switch.png")]
    {
        let h = &histories[1][run];
        let series_points: Vec<Vec<(f64, f64)>> =
            (0..4).map(|e| h.iter().enumerate().map(|(ep, ev)| (ep as f64, ev.load[e])).collect()).collect();
        let names: Vec<String> = (0..4).map(|e| format!("expert {e}")).collect();
        let flat = |y: f64| vec![(0.0, y), (EPOCHS as f64, y)];
        let (zero, quarter, half) = (flat(0.0), flat(0.25), flat(0.5));
        let mut series: Vec<Series> =
            names.iter().zip(&series_points).map(|(n, p)| Series { name: n, points: p }).collect();
        series.push(Series { name: "unused (0)", points: &zero });
        series.push(Series { name: "uniform (1/4)", points: &quarter });
        series.push(Series { name: "top-2 ceiling (1/2)", points: &half });
        let path = figures::path(file)?;
        let title = format!("share of top-2 assignments, {label} (2-layer router, lr 3e-3)");
        line_chart(&path, &title, "epoch", "share of assignments (test set)", &series)?;
        println!("wrote {}", figures::shown(&path));
    }

    // Class × expert mean gates, the four runs side by side on one colour scale.
    let classes: Vec<String> = ["negative", "neutral", "positive"].iter().map(|s| s.to_string()).collect();
    let experts: Vec<String> = (0..4).map(|e| format!("{e}")).collect();
    let tables: Vec<Array2<f64>> = (0..2)
        .flat_map(|s| (0..2).map(move |r| (s, r)))
        .map(|(s, r)| final_of(s, r).class_expert.mean_gate.clone())
        .collect();
    let titles =
        ["E6 as specified, α = 0", "E6 as specified, α = 0.01", "2-layer router, α = 0", "2-layer router, α = 0.01"];
    let panels: Vec<Heatmap> = tables
        .iter()
        .zip(titles)
        .map(|(m, title)| Heatmap {
            x_desc: "expert",
            y_desc: "sentiment",
            range: Some((0.0, 1.0)),
            ..Heatmap::new(title, m.view(), &classes, &experts)
        })
        .collect();
    let path = figures::path("ch09_heatmaps.png")?;
    heatmap_grid(&path, "mean gate per sentiment and expert (test set)", &panels, 2)?;
    println!("wrote {}", figures::shown(&path));

    if seeds {
        seed_table(&train, &test)?;
    }
    Ok(())
}

/// Seeds 42, 1, 2 for each setting (and the 2-layer router at E6's own lr): the smallest
/// expert's share of assignments, Var(load) and accuracy, without and with the Switch loss.
fn seed_table(train: &Dataset, test: &Dataset) -> tinymoe::Result<()> {
    println!("\nSeeds: the smallest expert's share of assignments at initialisation; then after training");
    println!("(smallest share, Var(load), accuracy) with α = 0 → with α = {ALPHA}:");
    let extra = Setting { name: "2-layer router 20 → 32 → 4, lr 1e-3", router_hidden: Some(32), lr: 1e-3 };
    for s in SETTINGS.iter().chain(std::iter::once(&extra)) {
        println!("  {}", s.name);
        for seed in [42u64, 1, 2] {
            let a = train_e6(&e6_config(s, 0.0), s.lr, seed, train, test, false)?.pop().expect("final");
            let b = train_e6(&e6_config(s, ALPHA), s.lr, seed, train, test, false)?.pop().expect("final");
            let untrained: mc::Params<f32> = mc::init(&e6_config(s, 0.0), &mut init::rng(seed));
            let start = mc::evaluate(&untrained, test.x.view(), &test.y, 500);
            let min = |e: &mc::Eval| e.load.iter().copied().fold(f64::INFINITY, f64::min);
            let summary =
                |e: &mc::Eval| format!("{:.2}, {:.4}, {:.1}%", min(e), load_variance(&e.load), 100.0 * e.accuracy);
            println!("    seed {seed:>2}: init {:.2} | {:<22} → {}", min(&start), summary(&a), summary(&b));
        }
    }
    Ok(())
}
