//! Routing metrics, SteerMoE's expert detection and the routing heatmap, against values
//! computed by hand (the arithmetic is in the comments).

use ndarray::{array, Array2};
use std::path::{Path, PathBuf};
use tinymoe::moe::metrics::{
    class_expert, load_variance, matching_share, routing_entropy, specialisation_index, token_listing, token_routes,
    top_expert, utilisation, Entropy, TokenRoute,
};
use tinymoe::moe::steer::{activation_rates, risk_difference, tied_experts};
use tinymoe::plot::routing::routing_heatmap;

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: got {a}, expected {b}");
}

fn close_all(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        close(x, y, &format!("{what}[{i}]"));
    }
}

#[test]
fn utilisation_counts_real_rows_only() {
    // Real rows 0, 1, 3, 4 went to experts 0, 1, 3, 1: shares (1/4, 2/4, 0, 1/4).
    let top = [0, 1, 1, 3, 1];
    let mask = [true, true, false, true, true];
    close_all(&utilisation(&top, 4, Some(&mask)), &[0.25, 0.5, 0.0, 0.25], "masked");
    // All five rows: (1/5, 3/5, 0, 1/5).
    close_all(&utilisation(&top, 4, None), &[0.2, 0.6, 0.0, 0.2], "unmasked");
    // No real row: no share is defined.
    assert!(utilisation(&top, 4, Some(&[false; 5])).iter().all(|u| u.is_nan()));
}

#[test]
fn load_variance_is_zero_balanced_and_three_sixteenths_collapsed() {
    close(load_variance(&[0.25; 4]), 0.0, "balanced");
    // Mean 1/4; (3/4)² + 3·(1/4)² = 12/16, over 4: 3/16 = (E − 1)/E².
    close(load_variance(&[1.0, 0.0, 0.0, 0.0]), 3.0 / 16.0, "collapsed");
    // Deviations (0, 1/4, −1/4, 0): (1/16 + 1/16)/4 = 1/32.
    close(load_variance(&[0.25, 0.5, 0.0, 0.25]), 1.0 / 32.0, "in between");
}

#[test]
fn routing_entropy_by_hand() {
    let ln2 = 2f64.ln();
    // Sure of every row, but the rows use both experts evenly: 0 per token, ln 2 of the mean.
    // The third row is padding and would change both if counted.
    let probs = array![[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]];
    let e = routing_entropy(probs.view(), Some(&[true, true, false]));
    assert_eq!(e, Entropy { mean_token: 0.0, of_mean: ln2 });
    // Counted: mean_token = (0 + 0 + ln 2)/3; p̄ is still (1/2, 1/2).
    let e = routing_entropy(probs.view(), None);
    close(e.mean_token, ln2 / 3.0, "mean_token");
    close(e.of_mean, ln2, "of_mean");
    // (1/2, 1/4, 1/4): H = 1/2 ln 2 + 2·1/4 ln 4 = 1.5 ln 2, for one row both are equal.
    let e = routing_entropy(array![[0.5, 0.25, 0.25]].view(), None);
    close(e.mean_token, 1.5 * ln2, "three experts");
    close(e.of_mean, 1.5 * ln2, "three experts, mean");
}

#[test]
fn class_expert_tables_by_hand() {
    // Rows (class): 0 (a), 1 (a), 2 (b), 3 (b, padding), 4 (a). Class c has no row.
    let probs = array![[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1]];
    let labels = [0, 0, 1, 1, 0];
    let mask = [true, true, true, false, true];
    let t = class_expert(probs.view(), &labels, 3, Some(&mask));
    assert_eq!(t.counts, vec![3, 1, 0]);
    // Class a: mean of rows 0, 1, 4 = ((0.7+0.1+0.5)/3, (0.2+0.6+0.4)/3, (0.1+0.3+0.1)/3).
    let a = [1.3 / 3.0, 1.2 / 3.0, 0.5 / 3.0];
    close_all(t.mean_gate.row(0).as_slice().expect("row-major"), &a, "mean_gate a");
    // Class b: row 2 only (row 3 is padding).
    close_all(t.mean_gate.row(1).as_slice().expect("row-major"), &[0.2, 0.2, 0.6], "mean_gate b");
    // Top experts: rows 0, 1, 4 → 0, 1, 0 (a: 2/3, 1/3, 0); row 2 → 2 (b: 0, 0, 1).
    close_all(t.top_share.row(0).as_slice().expect("row-major"), &[2.0 / 3.0, 1.0 / 3.0, 0.0], "top_share a");
    close_all(t.top_share.row(1).as_slice().expect("row-major"), &[0.0, 0.0, 1.0], "top_share b");
    // Class c is absent: undefined, NaN (drawn grey), not a fake 0.
    assert!(t.mean_gate.row(2).iter().chain(t.top_share.row(2)).all(|v| v.is_nan()));
    assert_eq!(t.top_counts(), array![[2.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]);
    // Joint table [[2,1,0],[0,0,1],[0,0,0]]: every expert sees one class → 0.
    assert_eq!(t.specialisation_index(), 0.0);
    assert_eq!(top_expert(probs.view()), vec![0, 1, 2, 0, 0]);
}

#[test]
fn specialisation_index_by_hand() {
    // Diagonal: each expert sees one class. H(class | expert) = 0.
    close(specialisation_index(Array2::<f64>::eye(4).view()), 0.0, "diagonal");
    // A permutation is just as specialised.
    close(specialisation_index(array![[0.0, 5.0], [3.0, 0.0]].view()), 0.0, "permutation");
    // Uniform: each expert sees (1/3, 1/3, 1/3): H = ln 3 for every expert, / ln 3 = 1.
    close(specialisation_index(Array2::<f64>::from_elem((3, 4), 7.0).view()), 1.0, "uniform");
    // Worked 2×2, rows = classes, columns = experts:
    //            e0  e1
    //   class 0   4   0
    //   class 1   2   2
    // Expert 0 holds 6 rows, classes (4/6, 2/6): H = ln 3 − (2/3) ln 2 = 0.636514168…
    // Expert 1 holds 2 rows, all class 1: H = 0. Loads: 6/8 and 2/8.
    // H(class | expert) = 0.75 · 0.636514168 = 0.477385626; / ln 2 = 0.688721875…
    // (= 0.75 · H₂(1/3) with H₂ the binary entropy in bits, 0.918295834.)
    let h0 = 3f64.ln() - 2.0 / 3.0 * 2f64.ln();
    let expected = 0.75 * h0 / 2f64.ln();
    assert!((expected - 0.688_721_875_540_867_7).abs() < 1e-12, "the hand value itself: {expected}");
    let joint = array![[4.0, 0.0], [2.0, 2.0]];
    close(specialisation_index(joint.view()), expected, "worked 2×2");
    // Only the proportions matter.
    close(specialisation_index((joint * 0.125).view()), expected, "scaled");
    // One class: nothing to specialise on. No rows at all: undefined.
    assert_eq!(specialisation_index(array![[3.0, 1.0]].view()), 0.0);
    assert!(specialisation_index(Array2::<f64>::zeros((2, 2)).view()).is_nan());
}

#[test]
fn matching_share_picks_each_class_s_own_expert() {
    let top_share = array![[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.0, 0.9, 0.1]];
    // Class 0 ↔ expert 0, class 1 ↔ expert 2, class 2 ↔ expert 1.
    close_all(&matching_share(top_share.view(), &[0, 2, 1]), &[0.7, 0.4, 0.9], "matching");
}

#[test]
fn token_listing_is_an_aligned_escaped_table_of_real_tokens() {
    let tokens: Vec<String> = ["def", " f\n", "\t", "<pad>"].iter().map(|s| s.to_string()).collect();
    let probs = array![[0.1, 0.2, 0.7], [0.488, 0.256, 0.256], [0.3, 0.6, 0.1], [1.0, 0.0, 0.0]];
    let mask = [true, true, true, false];
    let routes = token_routes(&tokens, probs.view(), Some(&mask));
    assert_eq!(
        routes,
        vec![
            TokenRoute { row: 0, token: "def".into(), expert: 2, gate: 0.7 },
            TokenRoute { row: 1, token: " f\n".into(), expert: 0, gate: 0.488 },
            TokenRoute { row: 2, token: "\t".into(), expert: 1, gate: 0.6 },
        ]
    );
    let listing = token_listing(&tokens, probs.view(), Some(&mask));
    let expected = "\
row  token   expert   gate
  0  \"def\"        2  0.700
  1  \" f\\n\"       0  0.488
  2  \"\\t\"         1  0.600
";
    assert_eq!(listing, expected, "got:\n{listing}");
}

#[test]
fn steer_activation_rates_and_risk_difference_by_hand() {
    // A: 4 tokens, top-2. Expert 0 in 3 of 4, expert 1 in 3, expert 2 in 1, expert 3 in 1.
    let a = vec![vec![0, 1], vec![0, 2], vec![0, 1], vec![3, 1]];
    close_all(&activation_rates(&a, 4), &[0.75, 0.75, 0.25, 0.25], "rates A");
    // B: 2 tokens. Expert 0 in 0 of 2, 1 in 1, 2 in 2, 3 in 1.
    let b = vec![vec![1, 2], vec![2, 3]];
    close_all(&activation_rates(&b, 4), &[0.0, 0.5, 1.0, 0.5], "rates B");
    // RD = rate_A − rate_B = (0.75, 0.25, −0.75, −0.25).
    let rd = risk_difference(&a, &b, 4);
    close_all(&rd, &[0.75, 0.25, -0.75, -0.25], "RD");
    assert_eq!(tied_experts(&rd, 2), vec![0, 1], "tied to A");
    let neg: Vec<f64> = rd.iter().map(|v| -v).collect();
    assert_eq!(tied_experts(&neg, 2), vec![2, 3], "tied to B");
    // A token that lists an expert twice counts once; no tokens: no rate.
    close_all(&activation_rates(&[vec![1, 1], vec![0, 1]], 2), &[0.5, 1.0], "duplicates");
    assert!(activation_rates(&[], 3).iter().all(|r| r.is_nan()));
}

#[test]
fn tied_experts_breaks_ties_by_index_and_puts_nan_last() {
    let rd = [0.5, f64::NAN, 0.5, 0.9, -0.1];
    assert_eq!(tied_experts(&rd, 10), vec![3, 0, 2, 4, 1]);
    assert_eq!(tied_experts(&rd, 2), vec![3, 0]);
    assert_eq!(tied_experts(&rd, 0), Vec::<usize>::new());
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-routing-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

/// (width, height) from the IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{}: only {} bytes", path.display(), bytes.len());
    assert_eq!(bytes[..8], PNG_SIGNATURE, "{}: not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

#[test]
fn routing_heatmap_writes_a_labelled_png() {
    let dir = out_dir("digits");
    // A digit × expert share table, with one digit absent (NaN row).
    let mut shares = Array2::from_shape_fn((10, 4), |(d, e)| if d % 4 == e { 0.7 } else { 0.1 });
    shares.row_mut(9).fill(f64::NAN);
    let digits: Vec<String> = (0..10).map(|d| format!("digit {d}")).collect();
    let experts: Vec<String> = (0..4).map(|e| format!("expert {e}")).collect();
    let path = dir.join("digits.png");
    routing_heatmap(&path, shares.view(), &digits, &experts, "top-expert share per digit", "digit").expect("draws");
    let (w, h) = png_size(&path);
    assert!((200..2000).contains(&w) && (300..2000).contains(&h), "{w}×{h}");
    // Wrong label counts are an error naming the counts, not a panic.
    let err = routing_heatmap(&dir.join("bad.png"), shares.view(), &experts, &experts, "bad", "digit")
        .expect_err("4 row labels for 10 rows");
    assert!(err.to_string().contains("4 row labels for a matrix with 10 rows"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
