//! Router losses: every gradient against central differences in f64 (padding rows present,
//! a random top-2 dispatch), padding rows that change nothing, and hand-computed values.

mod common;

use common::{rng, uniform};
use ndarray::{array, s, Array1, Array2, ArrayView1};
use rand::seq::index::sample;
use tinymoe::engine::gradcheck::{assert_reports, compare, numeric_grad, BAR};
use tinymoe::moe::losses::{
    batch_entropy, switch_balance, token_entropy, total, z_loss, RouterLossConfig, RouterLossValues,
};

const N: usize = 7;
const E: usize = 5;

/// Rows 2 and 5 are padding.
fn mask() -> Array1<u8> {
    array![1, 1, 0, 1, 1, 0, 1]
}

/// Logits U(−2, 2) [N, E] and a random top-2 dispatch (two distinct experts per row, not
/// the logits' own top 2, so that f and P really differ).
fn inputs(seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut g = rng(seed);
    let logits = uniform((N, E), &mut g) * 2.0;
    let mut dispatch = Array2::zeros((N, E));
    for r in 0..N {
        for e in sample(&mut g, E, 2) {
            dispatch[[r, e]] = 1.0;
        }
    }
    (logits, dispatch)
}

/// Every loss as a function of the logits alone (dispatch, mask and coefficients fixed).
type Loss<'a> = Box<dyn Fn(&Array2<f64>) -> (f64, Array2<f64>) + 'a>;

fn all_losses<'a>(dispatch: &'a Array2<f64>, mask: Option<ArrayView1<'a, u8>>) -> Vec<(&'static str, Loss<'a>)> {
    vec![
        ("switch_balance", Box::new(move |z: &Array2<f64>| switch_balance(z.view(), dispatch.view(), mask, 0.7))),
        ("z_loss", Box::new(move |z: &Array2<f64>| z_loss(z.view(), mask, 0.3))),
        ("token_entropy", Box::new(move |z: &Array2<f64>| token_entropy(z.view(), mask, 0.9))),
        ("batch_entropy", Box::new(move |z: &Array2<f64>| batch_entropy(z.view(), mask, -1.3))),
    ]
}

#[test]
fn every_router_loss_gradient_matches_finite_differences_with_padding() {
    let (logits, dispatch) = inputs(31);
    let m = mask();
    for with_mask in [true, false] {
        let mask = with_mask.then(|| m.view());
        let reports: Vec<_> = all_losses(&dispatch, mask)
            .iter()
            .map(|(name, loss)| {
                let (_, dz) = loss(&logits);
                compare(
                    &format!("{name} dlogits (mask: {with_mask})"),
                    &dz,
                    &numeric_grad(|z| loss(z).0, &logits, 1e-5),
                )
            })
            .collect();
        assert_reports(&reports, BAR);
    }
}

#[test]
fn the_total_gradient_matches_finite_differences() {
    let (logits, dispatch) = inputs(32);
    let m = mask();
    let cfg = RouterLossConfig { balance: 0.5, z_loss: 0.2, token_entropy: 0.4, batch_entropy: -0.6 };
    let loss = |z: &Array2<f64>| total(&cfg, z.view(), dispatch.view(), Some(m.view()));
    let (_, dz) = loss(&logits);
    assert_reports(&[compare("total dlogits", &dz, &numeric_grad(|z| loss(z).0.total, &logits, 1e-5))], BAR);
}

#[test]
fn padding_rows_change_neither_value_nor_gradient() {
    let (logits, dispatch) = inputs(33);
    let m = mask();
    let real: Vec<usize> = (0..N).filter(|&r| m[r] == 1).collect();
    // The same losses on the real rows alone, with no mask: the mask must mean exactly this
    // (padding out of every mean's denominator too).
    let real_logits = logits.select(ndarray::Axis(0), &real);
    let real_dispatch = dispatch.select(ndarray::Axis(0), &real);
    let masked = all_losses(&dispatch, Some(m.view()));
    let unmasked = all_losses(&real_dispatch, None);
    for ((name, loss), (_, loss_real)) in masked.iter().zip(&unmasked) {
        let (value, dz) = loss(&logits);
        let (value_real, dz_real) = loss_real(&real_logits);
        assert!((value - value_real).abs() <= 1e-14 * value.abs().max(1.0), "{name}: {value} vs {value_real}");
        assert!((&dz.select(ndarray::Axis(0), &real) - &dz_real).iter().all(|d| d.abs() < 1e-14), "{name}");
        for &pad in &[2, 5] {
            assert!(dz.row(pad).iter().all(|&g| g == 0.0), "{name}: padding row {pad} has a gradient");
        }
        // Garbage in the padding rows (huge, or NaN) changes nothing at all, bit for bit.
        for garbage in [1e6, -3e4, f64::NAN] {
            let mut poked = logits.clone();
            poked.slice_mut(s![2, ..]).fill(garbage);
            poked[[5, 1]] = garbage;
            let (value2, dz2) = loss(&poked);
            assert_eq!(value.to_bits(), value2.to_bits(), "{name}: padding = {garbage} changed the value");
            assert!(dz.iter().zip(&dz2).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: padding changed dz");
        }
    }
}

#[test]
fn all_padding_gives_zero_loss_and_gradient() {
    let (logits, dispatch) = inputs(34);
    let none = Array1::<u8>::zeros(N);
    for (name, loss) in all_losses(&dispatch, Some(none.view())) {
        let (value, dz) = loss(&logits);
        assert_eq!(value, 0.0, "{name}");
        assert!(dz.iter().all(|&g| g == 0.0), "{name}");
    }
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{what}: got {a}, expected {b}");
}

#[test]
fn switch_balance_is_alpha_when_uniform_and_alpha_n_when_collapsed() {
    let alpha = 1e-2;
    // Uniform: equal logits give P = (1/4, …); each expert gets one of 4 top-1 rows (f = 1/4),
    // or two of 8 top-2 assignments. L = α·4·Σ (1/4)(1/4) = α.
    let zeros = Array2::<f64>::zeros((4, 4));
    close(switch_balance(zeros.view(), Array2::eye(4).view(), None, alpha).0, alpha, "uniform top-1");
    let top2 = array![[1., 1., 0., 0.], [0., 0., 1., 1.], [1., 0., 1., 0.], [0., 1., 0., 1.]];
    close(switch_balance(zeros.view(), top2.view(), None, alpha).0, alpha, "uniform top-2");
    // Collapse: z = (1000, 0, 0, 0) gives p = (1, 0, 0, 0) exactly (e^−1000 underflows), and
    // every row is sent to expert 0: f = P = e₀, L = α·4·1·1 = 4α.
    let mut collapsed = Array2::<f64>::zeros((4, 4));
    collapsed.column_mut(0).fill(1000.0);
    let mut to_zero = Array2::<f64>::zeros((4, 4));
    to_zero.column_mut(0).fill(1.0);
    close(switch_balance(collapsed.view(), to_zero.view(), None, alpha).0, 4.0 * alpha, "collapsed");
}

#[test]
fn switch_balance_by_hand() {
    // z = [[0, ln 3], [0, 0]]: p = [[1/4, 3/4], [1/2, 1/2]], P = (3/8, 5/8).
    // Both rows sent to expert 1: f = (0, 1). L = α·2·(0·3/8 + 1·5/8) = 1.25α.
    // dp = α·2·f/m = (0, α) on both rows; dz = p ⊙ (dp − p·dp):
    //   row 0: p·dp = 3α/4, dz = (1/4·(−3/4), 3/4·(1/4))α = (−3/16, 3/16)α
    //   row 1: p·dp = α/2,  dz = (1/2·(−1/2), 1/2·(1/2))α = (−1/4, 1/4)α
    let alpha = 0.1;
    let z = array![[0.0, 3f64.ln()], [0.0, 0.0]];
    let dispatch = array![[0.0, 1.0], [0.0, 1.0]];
    let (value, dz) = switch_balance(z.view(), dispatch.view(), None, alpha);
    close(value, 1.25 * alpha, "value");
    let expected = array![[-3.0 / 16.0, 3.0 / 16.0], [-0.25, 0.25]] * alpha;
    assert!((&dz - &expected).iter().all(|d| d.abs() < 1e-15), "{dz} vs {expected}");
}

#[test]
fn z_loss_by_hand_and_stable_at_logits_of_ten_thousand() {
    // Row 0 [0, 0]: lse = ln 2, softmax (1/2, 1/2). Row 1 [ln 3, 0]: lse = ln 4, softmax (3/4, 1/4).
    // L = β·((ln 2)² + (ln 4)²)/2 = 2.5·β·(ln 2)²; dz_r = (2β/2)·lse_r·softmax_r.
    // A shift of every logit by 10⁴ moves each lse by 10⁴, and the softmax not at all.
    let beta = 1e-3;
    let ln2 = 2f64.ln();
    for shift in [0.0, 1e4] {
        let z = array![[0.0, 0.0], [3f64.ln(), 0.0]] + shift;
        let (value, dz) = z_loss(z.view(), None, beta);
        let (lse0, lse1) = (shift + ln2, shift + 2.0 * ln2);
        close(value, beta * (lse0 * lse0 + lse1 * lse1) / 2.0, "value");
        let expected = array![[0.5 * lse0, 0.5 * lse0], [0.75 * lse1, 0.25 * lse1]] * beta;
        assert!((&dz - &expected).iter().all(|d| d.abs() <= 1e-12 * (1.0 + shift)), "{dz} vs {expected}");
    }
    // In f32 too: finite, and right to f32 precision (1e4 + ln 3 has an ulp of ~1e-3).
    let z32 = array![[1e4f32, 1e4], [1e4 + 3f32.ln(), 1e4]];
    let (value, dz) = z_loss(z32.view(), None, 1e-3f32);
    assert!(value.is_finite() && dz.iter().all(|g| g.is_finite()));
    let expected = 1e-3 * ((1e4 + ln2).powi(2) + (1e4 + 2.0 * ln2).powi(2)) / 2.0;
    assert!((value as f64 - expected).abs() < 1e-5 * expected, "{value} vs {expected}");
}

#[test]
fn entropies_by_hand() {
    let ln2 = 2f64.ln();
    let ln3 = 3f64.ln();
    // z = [0, ln 3] gives p = (1/4, 3/4): H = −(1/4 ln 1/4 + 3/4 ln 3/4) = 2 ln 2 − (3/4) ln 3.
    // z = [ln 3, 0] gives (3/4, 1/4), the same H. Their mean p̄ = (1/2, 1/2): H(p̄) = ln 2,
    // the maximum for E = 2 although neither row is uniform.
    let z = array![[0.0, ln3], [ln3, 0.0]];
    let h_row = 2.0 * ln2 - 0.75 * ln3;
    close(token_entropy(z.view(), None, 1.0).0, h_row, "token entropy");
    let (value, dz) = batch_entropy(z.view(), None, 1.0);
    close(value, ln2, "batch entropy");
    // At the maximum of H(p̄) the gradient vanishes: dp = −(c/m)(ln p̄ + 1) is the same for
    // both experts, and the softmax ignores a constant.
    assert!(dz.iter().all(|g| g.abs() < 1e-15), "{dz}");
    // A collapsed row (p = e₀ exactly) has zero entropy, not NaN from 0·ln 0.
    let collapsed: Array2<f64> = array![[1000.0, 0.0, 0.0, 0.0], [1000.0, 0.0, 0.0, 0.0]];
    let (h, dz) = token_entropy(collapsed.view(), None, 1.0);
    assert_eq!(h, 0.0);
    assert!(dz.iter().all(|g| g.abs() < 1e-300));
    let (h, dz) = batch_entropy(collapsed.view(), None, -1.0);
    assert_eq!(h, 0.0);
    assert!(dz.iter().all(|g| g.is_finite()));
    // Uniform rows over 4 experts: both entropies are ln 4.
    let uniform_rows = Array2::<f64>::zeros((3, 4));
    close(token_entropy(uniform_rows.view(), None, 2.0).0, 2.0 * 4f64.ln(), "uniform token entropy");
    close(batch_entropy(uniform_rows.view(), None, -1.0).0, -(4f64.ln()), "uniform batch entropy");
}

#[test]
fn total_sums_the_enabled_terms_and_skips_the_others() {
    let (logits, dispatch) = inputs(35);
    let m = mask();
    let mask = Some(m.view());
    let cfg = RouterLossConfig::paper();
    assert_eq!(cfg, RouterLossConfig { balance: 1e-2, z_loss: 1e-3, token_entropy: 0.0, batch_entropy: 0.0 });
    let (values, dz) = total(&cfg, logits.view(), dispatch.view(), mask);
    let (balance, d_balance) = switch_balance(logits.view(), dispatch.view(), mask, 1e-2);
    let (z, d_z) = z_loss(logits.view(), mask, 1e-3);
    let expected = RouterLossValues { balance, z, token_entropy: 0.0, batch_entropy: 0.0, total: balance + z };
    assert_eq!(values, expected);
    assert!((&dz - &(d_balance + d_z)).iter().all(|d| d.abs() < 1e-16));
    // All off: nothing at all.
    let (values, dz) = total(&RouterLossConfig::default(), logits.view(), dispatch.view(), mask);
    assert_eq!(values, RouterLossValues::default());
    assert!(dz.iter().all(|&g| g == 0.0));
    // The config round-trips through JSON (it is part of a run's saved configuration).
    let cfg = RouterLossConfig { balance: 0.01, z_loss: 0.001, token_entropy: 0.1, batch_entropy: -0.2 };
    let json = serde_json::to_string(&cfg).expect("serialises");
    assert_eq!(serde_json::from_str::<RouterLossConfig>(&json).expect("parses"), cfg);
}

#[test]
fn f32_agrees_with_f64() {
    let (logits, dispatch) = inputs(36);
    let m = mask();
    let cfg = RouterLossConfig { balance: 0.5, z_loss: 0.2, token_entropy: 0.4, batch_entropy: -0.6 };
    let (v64, d64) = total(&cfg, logits.view(), dispatch.view(), Some(m.view()));
    let (l32, disp32) = (logits.mapv(|v| v as f32), dispatch.mapv(|v| v as f32));
    let (v32, d32) = total(&cfg, l32.view(), disp32.view(), Some(m.view()));
    assert!((v32.total - v64.total).abs() < 1e-5 * v64.total.abs().max(1.0), "{v32:?} vs {v64:?}");
    assert!(d32.iter().zip(&d64).all(|(&a, &b)| (a as f64 - b).abs() < 1e-5), "f32 and f64 gradients differ");
}
