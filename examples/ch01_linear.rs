//! Chapter 01 — arrays, shapes and the Linear layer (notebooks-md/01-arrays-shapes-linear.md).
//!
//! Shows, in order:
//! 1. ndarray shapes and strides: which operations are views (free) and which copy;
//!    folding [batch, seq, d_in] into rows [batch·seq, d_in]; `.t()` costs nothing.
//! 2. A Linear forward and backward small enough to check with pencil and paper:
//!    y = x·W + b, dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ_rows dy.
//! 3. Folding tokens into rows gives exactly what a loop over sequences would.
//! 4. He and Xavier initialisation: the std they draw, and what they do to the size of the
//!    signal after ten Linear → ReLU layers.
//! 5. A first gradient check of Linear in f64 (chapter 02 explains it); exits 1 if it fails.
//!
//! Run: `cargo run --release --example ch01_linear`

use ndarray::{array, s, Array2, Array3, Axis};
use tinymoe::engine::gradcheck::{compare, numeric_grad, Report};
use tinymoe::engine::init;
use tinymoe::engine::layers::{activation, linear, Activation};

fn main() {
    shapes_and_views();
    hand_computed_linear();
    folded_batch();
    initialisation();
    let reports = gradient_check();
    let worst = reports.iter().map(|r| r.worst_rel_err).fold(0.0, f64::max);
    if reports.iter().any(|r| r.worst_rel_err.is_nan() || r.worst_rel_err > 1e-6) {
        eprintln!("FAIL: Linear's backward disagrees with finite differences (worst rel err {worst:.2e} > 1e-6)");
        std::process::exit(1);
    }
    println!("\nLinear's backward agrees with finite differences (worst rel err {worst:.2e} ≤ 1e-6).");
}

/// Shapes, strides, views and copies.
fn shapes_and_views() {
    println!("== 1. Arrays, shapes and views");
    // NumPy: x = np.arange(24.0).reshape(2, 3, 4)
    let x = Array3::from_shape_fn((2, 3, 4), |(b, t, i)| (b * 12 + t * 4 + i) as f64);
    println!("x: shape {:?}, strides {:?}  ([batch, seq, d_in], row-major)", x.shape(), x.strides());
    println!("x[1, 2, :] = {}", x.slice(s![1, 2, ..]));

    // NumPy: rows = x.reshape(6, 4)   (a view when x is contiguous)
    let rows = x.view().into_shape_with_order((6, 4)).expect("x is contiguous, so folding is a view");
    println!(
        "folded to rows: shape {:?}, strides {:?}, same memory as x: {}",
        rows.shape(),
        rows.strides(),
        rows.as_ptr() == x.as_ptr()
    );

    // NumPy: rows.T   (a view: the strides swap, no element moves)
    let t = rows.t();
    println!(
        "rows.t(): shape {:?}, strides {:?}, same memory: {}, standard (row-major) layout: {}",
        t.shape(),
        t.strides(),
        t.as_ptr() == x.as_ptr(),
        t.is_standard_layout()
    );

    // NumPy: x[:, 1, :]   (a strided view: every second-axis step skipped)
    let middle = x.slice(s![.., 1, ..]);
    println!(
        "x[:, 1, :]: shape {:?}, strides {:?}, a view into x: {}",
        middle.shape(),
        middle.strides(),
        std::ptr::eq(middle.as_ptr(), &x[[0, 1, 0]])
    );

    // Reshaping a transposed view cannot be a view: the elements are not in row order.
    let t_rows = t.to_shape((24,)).expect("same element count");
    println!("rows.t() flattened: is a copy: {}  (NumPy: np.ravel copies here too)", t_rows.is_owned());

    // NumPy: y = x.copy()   (explicit in Rust: to_owned)
    let copy = rows.to_owned();
    println!("rows.to_owned(): same memory: {}  (a copy is always spelled out)", copy.as_ptr() == x.as_ptr());
}

/// The numbers of notebooks-md/01, worked by hand.
fn hand_computed_linear() {
    println!("\n== 2. Linear by hand: x [2, 3], W [3, 2], b [2]");
    let p = linear::Params { w: array![[1.0, -1.0], [0.0, 2.0], [1.0, 0.0]], b: array![0.5, -1.0] };
    let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let (y, cache) = linear::forward(&p, x.view());
    println!("x =\n{x}\nW =\n{}\nb = {}", p.w, p.b);
    println!("y = x·W + b =\n{y}");

    let dy = array![[1.0, 2.0], [-1.0, 0.0]];
    let (dx, g) = linear::backward(&p, &cache, dy.view());
    println!("dy =\n{dy}");
    println!("dx = dy·Wᵀ =\n{dx}");
    println!("dW = xᵀ·dy =\n{}", g.dw);
    println!("db = Σ_rows dy = {}", g.db);

    // The same numbers, computed in the chapter with pencil and paper.
    let expected_y = array![[4.5, 2.0], [10.5, 5.0]];
    let expected_dx = array![[-1.0, 4.0, 1.0], [-1.0, 0.0, -1.0]];
    let expected_dw = array![[-3.0, 2.0], [-3.0, 4.0], [-3.0, 6.0]];
    let expected_db = array![0.0, 2.0];
    let by_hand = y == expected_y && dx == expected_dx && g.dw == expected_dw && g.db == expected_db;
    println!("matches the hand computation exactly: {by_hand}");
    if !by_hand {
        eprintln!("FAIL: Linear no longer gives the hand-computed numbers");
        std::process::exit(1);
    }
}

/// [batch, seq, d_in] folded into rows gives what a loop over sequences gives.
fn folded_batch() {
    println!("\n== 3. Folding [batch, seq] into rows: one GEMM instead of batch·seq small ones");
    let (batch, seq, d_in, d_out) = (2, 3, 4, 5);
    let mut rng = init::rng(1);
    let p: linear::Params<f64> = linear::init_xavier(d_in, d_out, &mut rng);
    let x: Array3<f64> = init::normal((batch, seq, d_in), 1.0, &mut rng);

    let rows = x.view().into_shape_with_order((batch * seq, d_in)).expect("x is contiguous");
    let (y_rows, _) = linear::forward(&p, rows);
    let y = y_rows.into_shape_with_order((batch, seq, d_out)).expect("y is contiguous");
    println!(
        "x {:?} → rows {:?} → linear → {:?} → unfolded {:?}",
        x.shape(),
        [batch * seq, d_in],
        [batch * seq, d_out],
        y.shape()
    );

    // The slow way: one small matmul per sequence.
    let mut worst = 0.0f64;
    for (b, seq_x) in x.axis_iter(Axis(0)).enumerate() {
        let (y_b, _) = linear::forward(&p, seq_x);
        worst = worst.max((&y_b - &y.index_axis(Axis(0), b)).fold(0.0, |m, v: &f64| m.max(v.abs())));
    }
    println!("largest difference from a per-sequence loop: {worst:.1e}");
}

/// He vs Xavier vs N(0, 1): the std of the weights, and the RMS of h through 10 layers.
fn initialisation() {
    println!("\n== 4. Initialisation: W [256, 256]");
    let d = 256;
    let mut rng = init::rng(0);
    let he: linear::Params<f64> = linear::init_he(d, d, &mut rng);
    let xavier: linear::Params<f64> = linear::init_xavier(d, d, &mut rng);
    println!("He normal:      std(W) = {:.4}  (√(2/fan_in) = {:.4})", std(&he.w), (2.0 / d as f64).sqrt());
    println!(
        "Xavier uniform: std(W) = {:.4}  (√(2/(fan_in+fan_out)) = {:.4}; bound a = √(6/(fan_in+fan_out)) = {:.4})",
        std(&xavier.w),
        (2.0 / (2 * d) as f64).sqrt(),
        (6.0 / (2 * d) as f64).sqrt()
    );

    println!("\nRMS of h = ReLU(h·W + b) after each of 10 layers, x ~ N(0, 1) [512, 256]:");
    println!("layer   He          Xavier      N(0, 1)");
    let x: Array2<f64> = init::normal((512, d), 1.0, &mut rng);
    let mut h = [x.clone(), x.clone(), x];
    for layer in 1..=10 {
        let params: [linear::Params<f64>; 3] = [
            linear::init_he(d, d, &mut rng),
            linear::init_xavier(d, d, &mut rng),
            linear::init_normal(d, d, 1.0, &mut rng),
        ];
        for (h, p) in h.iter_mut().zip(&params) {
            let (z, _) = linear::forward(p, h.view());
            *h = activation::forward(Activation::Relu, z.view()).0;
        }
        println!("{layer:>5}   {:<10.4}  {:<10.4}  {:.3e}", rms(&h[0]), rms(&h[1]), rms(&h[2]));
    }
}

/// The check of chapter 02, on the Linear layer: L = Σ y ⊙ r, so dy = r.
fn gradient_check() -> Vec<Report> {
    println!("\n== 5. Gradient check of Linear (f64, central differences, ε = 1e-5)");
    let mut rng = init::rng(42);
    let p: linear::Params<f64> =
        linear::Params { w: init::normal((4, 3), 1.0, &mut rng), b: init::normal(3, 1.0, &mut rng) };
    let x: Array2<f64> = init::normal((6, 4), 1.0, &mut rng);
    let r: Array2<f64> = init::normal((6, 3), 1.0, &mut rng);
    let loss = |p: &linear::Params<f64>, x: &Array2<f64>| (linear::forward(p, x.view()).0 * &r).sum();

    let (_, cache) = linear::forward(&p, x.view());
    let (dx, g) = linear::backward(&p, &cache, r.view());
    let eps = 1e-5;
    let num_dx = numeric_grad(|x| loss(&p, x), &x, eps);
    let num_dw = numeric_grad(|w| loss(&linear::Params { w: w.clone(), b: p.b.clone() }, &x), &p.w, eps);
    let num_db = numeric_grad(|b| loss(&linear::Params { w: p.w.clone(), b: b.clone() }, &x), &p.b, eps);
    let reports = vec![
        compare("linear.dx", &dx, &num_dx),
        compare("linear.dW", &g.dw, &num_dw),
        compare("linear.db", &g.db, &num_db),
    ];
    for r in &reports {
        let tag = if r.worst_rel_err <= 1e-6 { "ok" } else { "FAIL" };
        println!("{tag:<4} {r}");
    }
    reports
}

fn std(a: &Array2<f64>) -> f64 {
    let mean = a.mean().expect("non-empty");
    (a.mapv(|v| (v - mean) * (v - mean)).mean().expect("non-empty")).sqrt()
}

fn rms(a: &Array2<f64>) -> f64 {
    a.mapv(|v| v * v).mean().expect("non-empty").sqrt()
}
