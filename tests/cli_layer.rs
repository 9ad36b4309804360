//! `tinymoe layer NAME`: one layer's forward and backward on .npy/.npz arrays, as a learner
//! comparing with NumPy or PyTorch meets it. Inputs are made here (ndarray-npy), the binary
//! runs, and its .npy files are read back and compared with values computed by hand (the maths
//! in the comments) or with the engine called directly. Plus: every table entry runs on arrays
//! built from its own documentation, the chapter's table is the generated one, bad input gives
//! one clean error line naming the file and the array, and (when a Python with NumPy is found)
//! tests/fixtures/layer_numpy_check.py agrees to 1e-12.

mod common;

use common::cli::{assert_clean_error, s, stderr, stdout, tinymoe, tmp_dir};
use ndarray::{array, Array, Array1, Array2, ArrayD, Dimension, IxDyn};
use ndarray_npy::{read_npy, write_npy, NpzWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tinymoe::engine::layers::{attention, layer_norm, linear};
use tinymoe::engine::ops::softmax;
use tinymoe::layer_check::{self, subst, Bundle, Flags, Loaded, Request, Slot, Values, TABLE};

/// Runs `tinymoe layer ARGS` and asserts success.
fn layer(args: &[&str]) -> Output {
    let mut all = vec!["layer"];
    all.extend_from_slice(args);
    let o = tinymoe(&all);
    assert!(o.status.success(), "tinymoe {}: {}", all.join(" "), stderr(&o));
    o
}

fn npy<D: Dimension>(dir: &Path, name: &str, a: &Array<f64, D>) -> PathBuf {
    let p = dir.join(name);
    write_npy(&p, a).unwrap();
    p
}

fn npz(dir: &Path, name: &str, arrays: &[(&str, ArrayD<f64>)]) -> PathBuf {
    let p = dir.join(name);
    let mut w = NpzWriter::new(std::fs::File::create(&p).unwrap());
    for (n, a) in arrays {
        w.add_array(*n, a).unwrap();
    }
    w.finish().unwrap();
    p
}

fn load(dir: &Path, name: &str) -> ArrayD<f64> {
    read_npy(dir.join(format!("{name}.npy"))).unwrap_or_else(|e| panic!("{name}.npy: {e}"))
}

/// |a − b| ≤ tol·max(1, |b|) everywhere, shapes equal.
fn assert_close<D: Dimension>(what: &str, a: &ArrayD<f64>, b: &Array<f64, D>, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{what}: {x} vs {y}\n{a}\nvs\n{b}");
    }
}

#[test]
fn linear_writes_y_and_every_gradient_as_computed_by_hand() {
    let dir = tmp_dir("linear");
    // x [2, 3], W [3, 2], b [2], dy [2, 2]:
    //   y  = x·W + b        = [[1·1 + 2·0 + 3·1 + 0.5, 1·2 + 2·1 + 3·0 − 1], [0 + 0 + 1 + 0.5, 0 + 1 + 0 − 1]]
    //   dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ_rows dy
    let x = array![[1.0, 2.0, 3.0], [0.0, 1.0, 1.0]];
    let w = array![[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]];
    let b = array![0.5, -1.0];
    let dy = array![[1.0, -1.0], [2.0, 0.5]];
    let p = npz(&dir, "p.npz", &[("w", w.clone().into_dyn()), ("b", b.clone().into_dyn())]);
    let out = dir.join("out");
    let o = layer(&[
        "linear",
        "--params",
        s(&p),
        "--input",
        s(&npy(&dir, "x.npy", &x)),
        "--dy",
        s(&npy(&dir, "dy.npy", &dy)),
        "--out",
        s(&out),
    ]);
    assert!(stdout(&o).contains("dw.npy") && stdout(&o).contains("[3, 2]"), "{}", stdout(&o));
    assert_close("y", &load(&out, "y"), &array![[4.5, 3.0], [1.5, 0.0]], 0.0);
    // dx[0] = [1·1 − 1·2, 1·0 − 1·1, 1·1 − 0] = [−1, −1, 1]; dx[1] = [2 + 1, 0.5, 2]
    assert_close("dx", &load(&out, "dx"), &array![[-1.0, -1.0, 1.0], [3.0, 0.5, 2.0]], 0.0);
    assert_close("dw", &load(&out, "dw"), &x.t().dot(&dy), 0.0);
    assert_close("db", &load(&out, "db"), &array![3.0, -0.5], 0.0);

    // With no --dy, dy is ones (L = Σ y): db counts the rows, dW sums x's columns.
    let out1 = dir.join("out_ones");
    let o = layer(&["linear", "--params", s(&p), "--input", s(&dir.join("x.npy")), "--out", s(&out1)]);
    assert!(stdout(&o).contains("dy = ones"), "{}", stdout(&o));
    assert_close("db (ones)", &load(&out1, "db"), &array![2.0, 2.0], 0.0);
    assert_close("dw (ones)", &load(&out1, "dw"), &array![[1.0, 1.0], [3.0, 3.0], [4.0, 4.0]], 0.0);

    // [batch, seq, d_in] is folded into rows and unfolded again.
    let x3 = x.clone().into_shape_with_order((1, 2, 3)).unwrap();
    let out3 = dir.join("out3");
    layer(&["linear", "--params", s(&p), "--input", s(&npy(&dir, "x3.npy", &x3)), "--out", s(&out3)]);
    assert_eq!(load(&out3, "y").shape(), &[1, 2, 2]);
}

#[test]
fn softmax_and_log_softmax_match_the_engine_over_the_last_axis() {
    let dir = tmp_dir("softmax");
    let mut rng = common::rng(1);
    let x = common::uniform((2, 3, 4), &mut rng) * 3.0; // [batch, seq, n]: folded into 6 rows
    let dy = common::uniform((2, 3, 4), &mut rng);
    let (xp, dyp) = (npy(&dir, "x.npy", &x), npy(&dir, "dy.npy", &dy));
    let rows = |a: &Array<f64, ndarray::Ix3>| a.clone().into_shape_with_order((6, 4)).unwrap();

    let out = dir.join("softmax");
    layer(&["softmax", "--input", s(&xp), "--dy", s(&dyp), "--out", s(&out)]);
    let y = softmax::softmax(rows(&x).view());
    let dx = softmax::softmax_backward(y.view(), rows(&dy).view());
    assert_close("softmax y", &load(&out, "y"), &y.into_shape_with_order((2, 3, 4)).unwrap(), 0.0);
    assert_close("softmax dx", &load(&out, "dx"), &dx.into_shape_with_order((2, 3, 4)).unwrap(), 0.0);
    for row in load(&out, "y").rows() {
        assert!((row.sum() - 1.0).abs() < 1e-15, "a softmax row sums to 1");
    }

    let out = dir.join("log_softmax");
    layer(&["log-softmax", "--input", s(&xp), "--dy", s(&dyp), "--out", s(&out)]);
    let y = softmax::log_softmax(rows(&x).view());
    let dx = softmax::log_softmax_backward(y.view(), rows(&dy).view());
    assert_close("log-softmax y", &load(&out, "y"), &y.into_shape_with_order((2, 3, 4)).unwrap(), 0.0);
    assert_close("log-softmax dx", &load(&out, "dx"), &dx.into_shape_with_order((2, 3, 4)).unwrap(), 0.0);
}

#[test]
fn layer_norm_matches_the_engine_with_pytorch_names() {
    let dir = tmp_dir("layer_norm");
    let mut rng = common::rng(2);
    let x: Array2<f64> = common::uniform((5, 6), &mut rng) * 2.0;
    let dy: Array2<f64> = common::uniform((5, 6), &mut rng);
    let p =
        layer_norm::Params { gamma: common::uniform(6, &mut rng) + 1.0, beta: common::uniform(6, &mut rng), eps: 1e-3 };
    let pz = npz(&dir, "ln.npz", &[("weight", p.gamma.clone().into_dyn()), ("bias", p.beta.clone().into_dyn())]);
    let out = dir.join("out");
    let (xp, dyp) = (npy(&dir, "x.npy", &x), npy(&dir, "dy.npy", &dy));
    layer(&["layer-norm", "--params", s(&pz), "--input", s(&xp), "--dy", s(&dyp), "--eps", "1e-3", "--out", s(&out)]);
    let (y, cache) = layer_norm::forward(&p, x.view());
    let (dx, g) = layer_norm::backward(&p, &cache, dy.view());
    assert_close("y", &load(&out, "y"), &y, 0.0);
    assert_close("dx", &load(&out, "dx"), &dx, 0.0);
    assert_close("dweight", &load(&out, "dweight"), &g.dgamma, 0.0);
    assert_close("dbias", &load(&out, "dbias"), &g.dbeta, 0.0);
    // The default eps is PyTorch's 1e-5, not the 1e-3 above: the outputs differ.
    let out5 = dir.join("out_default_eps");
    layer(&["layer-norm", "--params", s(&pz), "--input", s(&xp), "--out", s(&out5)]);
    let (y5, _) = layer_norm::forward(&layer_norm::Params { eps: 1e-5, ..p }, x.view());
    assert_close("y (eps 1e-5)", &load(&out5, "y"), &y5, 0.0);
}

#[test]
fn cross_entropy_is_the_mean_over_real_rows_as_computed_by_hand() {
    let dir = tmp_dir("ce");
    // Row 0: equal logits, p = ¼ each, target 0: −log ¼ = ln 4.
    // Row 1: target −100 (PyTorch's ignore_index): left out of the loss and of N.
    // Row 2: logits [0, ln 3, 0, 0]: Σ exp = 1 + 3 + 1 + 1 = 6, target 1: −log(3/6) = ln 2.
    // loss = (ln 4 + ln 2) / 2 = 1.5·ln 2;  dx = (p − onehot)/N with N = 2, 0 on the ignored row.
    let logits = array![[0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 0.0, 1.0], [0.0, 3f64.ln(), 0.0, 0.0]];
    let targets: Array1<i64> = array![0, -100, 1];
    let tp = dir.join("t.npy");
    write_npy(&tp, &targets).unwrap();
    let out = dir.join("out");
    layer(&["cross-entropy", "--input", s(&npy(&dir, "z.npy", &logits)), "--targets", s(&tp), "--out", s(&out)]);
    let loss = load(&out, "loss");
    assert_eq!(loss.ndim(), 0, "loss.npy is a 0-d array");
    assert!((loss[[]] - 1.5 * 2f64.ln()).abs() < 1e-15, "{loss}");
    let expected = array![
        [-3.0 / 8.0, 1.0 / 8.0, 1.0 / 8.0, 1.0 / 8.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0 / 12.0, -1.0 / 4.0, 1.0 / 12.0, 1.0 / 12.0]
    ];
    assert_close("dx", &load(&out, "dx"), &expected, 1e-15);

    // --ignore-index 0 ignores row 0 instead, and −100 is then an error naming the file.
    let out0 = dir.join("out0");
    let t0 = dir.join("t0.npy");
    write_npy(&t0, &array![0i64, 2, 1]).unwrap();
    layer(&[
        "cross-entropy",
        "--input",
        s(&dir.join("z.npy")),
        "--targets",
        s(&t0),
        "--ignore-index",
        "0",
        "--out",
        s(&out0),
    ]);
    assert!(load(&out0, "dx").index_axis(ndarray::Axis(0), 0).iter().all(|&v| v == 0.0), "row 0 is ignored");
    let o = tinymoe(&[
        "layer",
        "cross-entropy",
        "--input",
        s(&dir.join("z.npy")),
        "--targets",
        s(&tp),
        "--ignore-index",
        "0",
        "--out",
        s(&out0),
    ]);
    assert_clean_error(&o, &["t.npy", "target -100 at [1]", "--ignore-index 0"]);
}

#[test]
fn attention_matches_the_engine_with_causal_and_padding_masks() {
    let dir = tmp_dir("attention");
    let mut rng = common::rng(3);
    let (batch, seq, d_model, heads) = (2, 3, 4, 2);
    let proj =
        |rng: &mut _| linear::Params { w: common::uniform((d_model, d_model), rng), b: common::uniform(d_model, rng) };
    let p = attention::Params {
        q: proj(&mut rng),
        k: proj(&mut rng),
        v: proj(&mut rng),
        o: proj(&mut rng),
        n_heads: heads,
    };
    let x = common::uniform((batch, seq, d_model), &mut rng);
    let dy = common::uniform((batch, seq, d_model), &mut rng);
    let mask: Array2<i64> = array![[1, 1, 1], [1, 1, 0]]; // the second sequence ends in padding
    let mut named = Vec::new();
    for (name, l) in [("q", &p.q), ("k", &p.k), ("v", &p.v), ("o", &p.o)] {
        named.push((format!("{name}.w"), l.w.clone().into_dyn()));
        named.push((format!("{name}.b"), l.b.clone().into_dyn()));
    }
    let named: Vec<(&str, ArrayD<f64>)> = named.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
    let pz = npz(&dir, "attn.npz", &named);
    let mp = dir.join("mask.npy");
    write_npy(&mp, &mask).unwrap();
    let out = dir.join("out");
    let (xp, dyp) = (npy(&dir, "x.npy", &x), npy(&dir, "dy.npy", &dy));
    let args = ["attention", "--params", s(&pz), "--input", s(&xp), "--mask", s(&mp), "--dy", s(&dyp)];
    layer(&[&args[..], &["--heads", "2", "--causal", "--out", s(&out)]].concat());

    let key_padding = mask.mapv(|v| v as u8);
    let m = attention::Mask { causal: true, key_padding: Some(key_padding.view()) };
    let x2 = x.clone().into_shape_with_order((batch * seq, d_model)).unwrap();
    let (y, cache) = attention::forward(&p, x2.view(), batch, seq, m);
    let (dx, g) =
        attention::backward(&p, &cache, dy.clone().into_shape_with_order((batch * seq, d_model)).unwrap().view());
    assert_close("y", &load(&out, "y"), &y.into_shape_with_order((batch, seq, d_model)).unwrap(), 1e-15);
    assert_close("dx", &load(&out, "dx"), &dx.into_shape_with_order((batch, seq, d_model)).unwrap(), 1e-15);
    for (name, (gw, gb)) in
        [("q", (&g.q.dw, &g.q.db)), ("k", (&g.k.dw, &g.k.db)), ("v", (&g.v.dw, &g.v.db)), ("o", (&g.o.dw, &g.o.db))]
    {
        assert_close(&format!("d{name}.w"), &load(&out, &format!("d{name}.w")), gw, 1e-15);
        assert_close(&format!("d{name}.b"), &load(&out, &format!("d{name}.b")), gb, 1e-15);
    }

    // Without --causal the answer changes (the flag reaches the engine), and --heads is required.
    let out_nc = dir.join("out_nc");
    layer(&[&args[..], &["--heads", "2", "--out", s(&out_nc)]].concat());
    assert!((load(&out_nc, "y") - load(&out, "y")).iter().any(|d| d.abs() > 1e-6));
    let o = tinymoe(&[&["layer"][..], &args[..], &["--out", s(&out_nc)]].concat());
    assert_clean_error(&o, &["--heads", "attention needs it"]);
    let o = tinymoe(&[&["layer"][..], &args[..], &["--heads", "3", "--out", s(&out_nc)]].concat());
    assert_clean_error(&o, &["--heads = 3", "d_model = 4"]);
}

#[test]
fn adam_and_adamw_first_step_match_the_formula() {
    let dir = tmp_dir("adam");
    // Step t = 1 from zero moments: m = (1 − β₁)g, v = (1 − β₂)g², m̂ = g, v̂ = g², so
    // θ' = θ − lr·g/(|g| + eps): every coordinate moves by lr against its gradient's sign.
    // Adam adds λθ to g first; AdamW multiplies θ by (1 − lr·λ) first.
    let theta = array![[1.0, -2.0], [0.5, 3.0]];
    let g = array![[0.1, -0.2], [4.0, -0.001]];
    let (lr, wd, eps, b1, b2) = (0.1, 0.01, 1e-8, 0.9, 0.999);
    let pz = npz(&dir, "theta.npz", &[("w", theta.clone().into_dyn())]);
    let gz = npz(&dir, "grads.npz", &[("w", g.clone().into_dyn())]);

    let out = dir.join("adam");
    layer(&["adam", "--params", s(&pz), "--grads", s(&gz), "--lr", "0.1", "--weight-decay", "0.01", "--out", s(&out)]);
    let g_l2 = &g + &(&theta * wd);
    let step = g_l2.mapv(|g: f64| lr * g / (g.abs() + eps));
    assert_close("adam w", &load(&out, "w"), &(&theta - &step), 1e-15);
    assert_close("adam exp_avg.w", &load(&out, "exp_avg.w"), &(&g_l2 * (1.0 - b1)), 1e-15);
    assert_close("adam exp_avg_sq.w", &load(&out, "exp_avg_sq.w"), &(g_l2.mapv(|g| g * g) * (1.0 - b2)), 1e-15);

    let out = dir.join("adamw");
    layer(&["adamw", "--params", s(&pz), "--grads", s(&gz), "--lr", "0.1", "--out", s(&out)]);
    let decayed = &theta * (1.0 - lr * 0.01); // PyTorch's AdamW default weight_decay = 0.01
    let step = g.mapv(|g: f64| lr * g / (g.abs() + eps));
    assert_close("adamw w", &load(&out, "w"), &(&decayed - &step), 1e-15);

    // A second step from the written state is the same as the engine's optimiser run twice.
    let state =
        npz(&dir, "state.npz", &[("exp_avg.w", load(&out, "exp_avg.w")), ("exp_avg_sq.w", load(&out, "exp_avg_sq.w"))]);
    let theta1 = npz(&dir, "theta1.npz", &[("w", load(&out, "w"))]);
    let out2 = dir.join("adamw2");
    layer(&[
        "adamw",
        "--params",
        s(&theta1),
        "--grads",
        s(&gz),
        "--state",
        s(&state),
        "--step",
        "2",
        "--lr",
        "0.1",
        "--out",
        s(&out2),
    ]);
    let (mut w, mut m, mut v) = (theta.clone(), Array2::zeros((2, 2)), Array2::zeros((2, 2)));
    for t in 1..=2 {
        let h =
            tinymoe::engine::optim::adam::Hyper { lr, beta1: b1, beta2: b2, eps, weight_decay: wd, decoupled: true, t };
        tinymoe::engine::optim::adam::update(
            w.as_slice_mut().unwrap(),
            g.as_slice().unwrap(),
            m.as_slice_mut().unwrap(),
            v.as_slice_mut().unwrap(),
            h,
        );
    }
    assert_close("adamw w after 2 steps", &load(&out2, "w"), &w, 1e-15);
}

#[test]
fn top_k_and_the_router_losses_match_hand_computed_values() {
    let dir = tmp_dir("moe");
    // One unit, 4 experts, logits [0, ln 3, −1, 5], k = 2: experts 3 and 1 are chosen, and their
    // gates are the softmax over those two: g₃ = e⁵/(e⁵ + 3), g₁ = 3/(e⁵ + 3).
    // With dy = [1, 2, 3, 4]: dx_e = g_e·(dy_e − Σ_j g_j dy_j) on the chosen, 0 elsewhere.
    let z = array![[0.0, 3f64.ln(), -1.0, 5.0]];
    let dy = array![[1.0, 2.0, 3.0, 4.0]];
    let out = dir.join("top_k");
    let (zp, dyp) = (npy(&dir, "z.npy", &z), npy(&dir, "dy.npy", &dy));
    layer(&["top-k", "--input", s(&zp), "--dy", s(&dyp), "--k", "2", "--out", s(&out)]);
    let e5 = 5f64.exp();
    let (g1, g3) = (3.0 / (e5 + 3.0), e5 / (e5 + 3.0));
    assert_close("gates", &load(&out, "y"), &array![[0.0, g1, 0.0, g3]], 1e-15);
    let dot = g1 * 2.0 + g3 * 4.0;
    assert_close("dx", &load(&out, "dx"), &array![[0.0, g1 * (2.0 - dot), 0.0, g3 * (4.0 - dot)]], 1e-15);

    // z-loss of rows [0, 0] and [ln 3, ln 3] (the second is padding, mask 0):
    // loss = coef·(ln 2)², dx row 0 = 2·coef·ln 2·softmax = coef·ln 2·[1, 1], row 1 = 0.
    let z2 = array![[0.0, 0.0], [3f64.ln(), 3f64.ln()]];
    let mask = dir.join("mask.npy");
    write_npy(&mask, &array![1i64, 0]).unwrap();
    let out = dir.join("z_loss");
    let z2p = npy(&dir, "z2.npy", &z2);
    layer(&["z-loss", "--input", s(&z2p), "--mask", s(&mask), "--coef", "0.5", "--out", s(&out)]);
    let ln2 = 2f64.ln();
    assert!((load(&out, "loss")[[]] - 0.5 * ln2 * ln2).abs() < 1e-15);
    assert_close("z-loss dx", &load(&out, "dx"), &array![[0.5 * ln2, 0.5 * ln2], [0.0, 0.0]], 1e-15);

    // Switch loss at uniform routing (equal logits: P = ½ each; the tie sends both rows to
    // expert 0, so f = (1, 0)): loss = α·E·Σ f·P = α·2·½ = α.
    let out = dir.join("switch");
    let z0 = npy(&dir, "z0.npy", &Array2::<f64>::zeros((2, 2)));
    layer(&["switch-loss", "--input", s(&z0), "--coef", "0.01", "--out", s(&out)]);
    assert!((load(&out, "loss")[[]] - 0.01).abs() < 1e-15);
}

#[test]
fn bad_input_gives_one_error_line_naming_the_file_and_the_array() {
    let dir = tmp_dir("errors");
    let x = npy(&dir, "x.npy", &Array2::<f64>::ones((3, 5)));
    let w = Array2::<f64>::ones((4, 2)).into_dyn();
    let good = npz(&dir, "p.npz", &[("w", w.clone()), ("b", Array1::<f64>::zeros(2).into_dyn())]);
    let out = dir.join("out");
    let run = |args: &[&str]| tinymoe(&[&["layer"][..], args].concat());

    // A missing array: named, with everything the layer needs.
    let no_b = npz(&dir, "no_b.npz", &[("w", w.clone())]);
    let o = run(&["linear", "--params", s(&no_b), "--input", s(&x), "--out", s(&out)]);
    assert_clean_error(&o, &["no_b.npz: missing array `b` (linear needs w [d_in, d_out], b [d_out])"]);

    // A misshapen input: its shape, the spec, and which array fixed the dim.
    let o = run(&["linear", "--params", s(&good), "--input", s(&x), "--out", s(&out)]);
    assert_clean_error(&o, &["x.npy: shape [3, 5], but linear needs x [..., d_in] with d_in = 4 (from", "p.npz[w])"]);

    // A misshapen parameter.
    let bad_b = npz(&dir, "bad_b.npz", &[("w", w.clone()), ("b", Array1::<f64>::zeros(3).into_dyn())]);
    let o = run(&["linear", "--params", s(&bad_b), "--input", s(&x), "--out", s(&out)]);
    assert_clean_error(&o, &["bad_b.npz: array `b`: shape [3], but linear needs b [d_out] with d_out = 2"]);

    // An array the layer does not read (PyTorch's name beside ours) is not silently ignored.
    let extra =
        npz(&dir, "extra.npz", &[("w", w.clone()), ("b", Array1::<f64>::zeros(2).into_dyn()), ("weight", w.clone())]);
    let x4 = npy(&dir, "x4.npy", &Array2::<f64>::ones((3, 4)));
    let o = run(&["linear", "--params", s(&extra), "--input", s(&x4), "--out", s(&out)]);
    assert_clean_error(&o, &["extra.npz: array `weight`: linear does not read this array"]);

    // A missing file, and a file that is not .npy.
    let o = run(&["linear", "--params", s(&good), "--input", s(&dir.join("nope.npy")), "--out", s(&out)]);
    assert_clean_error(&o, &["nope.npy"]);
    let junk = dir.join("junk.npy");
    std::fs::write(&junk, "this is a text file, not an array saved by numpy.save, as you can see").unwrap();
    let o = run(&["linear", "--params", s(&good), "--input", s(&junk), "--out", s(&out)]);
    assert_clean_error(&o, &["junk.npy: not a .npy file"]);
    let o = run(&["linear", "--params", s(&junk), "--input", s(&x4), "--out", s(&out)]);
    assert_clean_error(&o, &["junk.npy: not an .npz archive"]);

    // Integers where floats belong, and floats where ids belong.
    let ints = dir.join("ints.npy");
    write_npy(&ints, &Array2::<i64>::ones((3, 4))).unwrap();
    let o = run(&["linear", "--params", s(&good), "--input", s(&ints), "--out", s(&out)]);
    assert_clean_error(&o, &["ints.npy: holds integers, but linear needs x as floats"]);
    let emb = npz(
        &dir,
        "emb.npz",
        &[("tok", Array2::<f64>::ones((5, 4)).into_dyn()), ("pos", Array2::<f64>::ones((3, 4)).into_dyn())],
    );
    let o = run(&["embedding", "--params", s(&emb), "--input", s(&x4), "--out", s(&out)]);
    assert_clean_error(&o, &["x4.npy: holds floats, but embedding needs ids as integers"]);
    let ids = dir.join("ids.npy");
    write_npy(&ids, &array![[1i64, 5]]).unwrap();
    let o = run(&["embedding", "--params", s(&emb), "--input", s(&ids), "--out", s(&out)]);
    assert_clean_error(&o, &["ids.npy: id 5 at [0, 1] is not in 0 … vocab − 1 (vocab = 5, from", "emb.npz[tok])"]);

    // Flags and files a layer does not take; --out missing; dy given to a loss.
    let o = run(&["linear", "--params", s(&good), "--input", s(&x4), "--heads", "2", "--out", s(&out)]);
    assert_clean_error(&o, &["--heads = 2: linear takes no such setting"]);
    let o = run(&["relu", "--params", s(&good), "--input", s(&x4), "--out", s(&out)]);
    assert_clean_error(&o, &["relu takes no --params"]);
    let o = run(&["linear", "--params", s(&good), "--input", s(&x4)]);
    assert_clean_error(&o, &["--out DIR is required"]);
    let t = dir.join("t.npy");
    write_npy(&t, &array![0i64, 1, 1]).unwrap();
    let o = run(&["cross-entropy", "--input", s(&x4), "--targets", s(&t), "--dy", s(&x4), "--out", s(&out)]);
    assert_clean_error(&o, &["cross-entropy takes no --dy"]);
    // A mask that is not 0/1.
    let mask = dir.join("mask.npy");
    write_npy(&mask, &array![[1i64, 2, 0]]).unwrap();
    let attn: Vec<(String, ArrayD<f64>)> = ["q", "k", "v", "o"]
        .iter()
        .flat_map(|n| {
            [
                (format!("{n}.w"), Array2::<f64>::eye(4).into_dyn()),
                (format!("{n}.b"), Array1::<f64>::zeros(4).into_dyn()),
            ]
        })
        .collect();
    let attn: Vec<(&str, ArrayD<f64>)> = attn.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
    let az = npz(&dir, "attn.npz", &attn);
    let x3 = npy(&dir, "x3.npy", &Array::<f64, _>::ones((1, 3, 4)));
    let o = run(&[
        "attention",
        "--params",
        s(&az),
        "--input",
        s(&x3),
        "--mask",
        s(&mask),
        "--heads",
        "2",
        "--out",
        s(&out),
    ]);
    assert_clean_error(&o, &["mask.npy: 2 at [0, 1]; a mask holds 1 (real token) or 0 (padding)"]);
    // Nothing was written by any failed run.
    assert!(!out.exists());
}

#[test]
fn list_and_help_are_generated_from_the_table() {
    let o = layer(&["list"]);
    let text = stdout(&o);
    for e in TABLE {
        assert!(text.contains(&format!("\n  {:<18}{}", e.name, e.formula)), "layer list shows {}", e.name);
        for a in e.arrays {
            assert!(text.contains(a.name), "layer list shows {}'s array {}", e.name, a.name);
        }
    }
    let o = layer(&["--help"]);
    assert!(stdout(&o).contains("list") && stdout(&o).contains("attention") && stdout(&o).contains("--dy"));
    let o = tinymoe(&["layer", "no-such-layer", "--out", "x"]);
    assert_eq!(o.status.code(), Some(1), "an unknown name is a one-line error listing the names");
    assert!(
        stderr(&o).contains("unknown name \"no-such-layer\"") && stderr(&o).contains("cross-entropy"),
        "{}",
        stderr(&o)
    );
}

/// The chapter's conventions table must be exactly what `tinymoe layer list --markdown` prints,
/// wherever in notebooks-md/ the section lives (chapter 11's last section).
#[test]
fn the_chapter_table_is_the_generated_one() {
    let table = stdout(&layer(&["list", "--markdown"]));
    assert_eq!(table.lines().count(), TABLE.len() + 2, "a header, a rule and one row per entry");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks-md");
    let heading = "Comparing with NumPy and PyTorch, layer by layer";
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(heading) {
            assert!(
                text.contains(&table),
                "{}: the conventions table differs from `tinymoe layer list --markdown`; paste its output:\n{table}",
                path.display()
            );
            found.push(path);
        }
    }
    assert!(!found.is_empty(), "no file in notebooks-md/ has the section {heading:?}");
}

/// Sizes for the dims the table uses, chosen distinct so a swapped axis cannot pass.
fn size_of(dim: &str) -> usize {
    match dim {
        "batch" => 2,
        "seq" => 3,
        "d_in" | "d_model" | "d0" | "g0" => 4,
        "d_out" | "d2" => 3,
        "d" | "classes" | "g1" => 5,
        "d_ff" | "d1" => 6,
        "vocab" => 7,
        "max_seq" => 4,
        "g2" => 2, // the gate's last size = the 2 experts below
        "n_experts" => 5,
        other => panic!("the test has no size for dim {other}"),
    }
}

/// `name` and `dims` with `{i}` over 0..2 layers and `{e}` over 0..2 experts (L = 2).
fn expand(name: &str, dims: &[&str]) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let es = if name.contains("{e}") { 0..2 } else { 0..1 };
    for e in es {
        let is = if name.contains("{i}") { 0..2 } else { 0..1 };
        for i in is {
            let vars = [("e", e), ("i", i), ("L", 2)];
            let mut shape = Vec::new();
            for d in dims {
                match *d {
                    "..." => shape.extend([2, 3]),
                    d => shape.push(size_of(&subst(d, &vars))),
                }
            }
            out.push((subst(name, &vars), shape));
        }
    }
    out
}

/// Every entry runs on arrays built from nothing but its own table entry, and writes exactly
/// the outputs it documents, with the documented shapes: the table cannot drift from the code.
#[test]
fn every_entry_runs_on_arrays_built_from_its_own_table_entry() {
    let mut rng = common::rng(4);
    for e in TABLE {
        let is_optimizer = e.arrays.iter().any(|a| a.name.contains("<name>"));
        let mut req = Request { flags: Flags { heads: Some(2), ..Flags::default() }, ..Request::default() };
        if !e.flags.iter().any(|f| f.flag == "--heads") {
            req.flags.heads = None;
        }
        if e.flags.iter().any(|f| f.flag == "--k") {
            req.flags.k = Some(2);
        }
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        let mut bundles: Vec<(Slot, Bundle)> = Vec::new();
        for a in e.arrays {
            let items = if is_optimizer {
                ["w", "b"]
                    .iter()
                    .map(|n| (a.name.replace("<name>", n), if *n == "w" { vec![3, 2] } else { vec![2] }))
                    .collect()
            } else {
                expand(a.name, a.dims)
            };
            for (name, shape) in items {
                let path = PathBuf::from(format!("{}.npy", name));
                let mut floats = || Values::Float(common::uniform(IxDyn(&shape), &mut rng));
                let loaded = |values| Loaded { path: path.clone(), member: None, values };
                match a.slot {
                    Slot::Output => expected.push((name, shape)),
                    Slot::Input if a.name == "ids" => {
                        let ids = ArrayD::from_shape_fn(IxDyn(&shape), |ix| (ix[0] * 3 + ix[1]) as i64 % 7);
                        req.input = Some(loaded(Values::Int(ids)));
                    }
                    Slot::Input => req.input = Some(loaded(floats())),
                    Slot::Dy => req.dy = Some(loaded(floats())),
                    Slot::Mask => req.mask = Some(loaded(Values::Int(ArrayD::ones(IxDyn(&shape))))),
                    Slot::Targets => {
                        let t = ArrayD::from_shape_fn(IxDyn(&shape), |ix| (ix[0] + 2 * ix[1]) as i64 % 5);
                        req.targets = Some(loaded(Values::Int(t)));
                    }
                    Slot::Params | Slot::Grads | Slot::State => {
                        let mut values = floats();
                        if let (true, Values::Float(v)) = (name.starts_with("exp_avg_sq."), &mut values) {
                            v.mapv_inplace(f64::abs); // a second moment is ≥ 0
                        }
                        let member = Loaded { path: PathBuf::from("p.npz"), member: Some(name), values };
                        match bundles.iter_mut().find(|(s, _)| *s == a.slot) {
                            Some((_, b)) => b.arrays.push(member),
                            None => {
                                bundles.push((a.slot, Bundle { path: PathBuf::from("p.npz"), arrays: vec![member] }))
                            }
                        }
                    }
                }
            }
        }
        for (slot, b) in bundles {
            match slot {
                Slot::Params => req.params = Some(b),
                Slot::Grads => req.grads = Some(b),
                _ => req.state = Some(b),
            }
        }
        let out = layer_check::run(e.name, req).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        let got: Vec<(String, Vec<usize>)> = out.0.iter().map(|(n, a)| (n.clone(), a.shape().to_vec())).collect();
        let (mut got_sorted, mut expected_sorted) = (got.clone(), expected.clone());
        got_sorted.sort();
        expected_sorted.sort();
        assert_eq!(got_sorted, expected_sorted, "{}: the outputs are the documented ones", e.name);
        for (name, a) in &out.0 {
            assert!(a.iter().all(|v| v.is_finite()), "{}: {name} is finite", e.name);
        }
    }
}

/// The first Python that can `import numpy`: `$TINYMOE_PYTHON`, CI's venv, the anchors venv,
/// then `python3` on the PATH.
fn python_with_numpy() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("TINYMOE_PYTHON").map(PathBuf::from).into_iter().collect();
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python"));
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".venv-anchors/bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    candidates
        .into_iter()
        .find(|p| Command::new(p).args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false))
}

#[test]
fn numpy_linear_layer_norm_cross_entropy_agree_to_1e_12() {
    let Some(python) = python_with_numpy() else {
        eprintln!("NOTE: skipped the NumPy cross-check: no python with numpy (set TINYMOE_PYTHON)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layer_numpy_check.py");
    let work = tmp_dir("numpy");
    let o = Command::new(&python).arg(&script).arg(env!("CARGO_BIN_EXE_tinymoe")).arg(&work).output().unwrap();
    assert!(o.status.success(), "{}: {}{}", python.display(), stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("all agree to 1e-12"), "{}", stdout(&o));
    eprintln!("{}", stdout(&o).trim());
}
