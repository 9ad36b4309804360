//! Routing metrics shared by every experiment: who took which rows, how evenly, how sure.
//!
//! Inputs are plain arrays: the routing probabilities `probs` [n, E] (n rows = tokens,
//! sequences or images; E = n_experts; each row sums to 1), the top expert of each row, class
//! labels (one per row), and an optional row mask (one per row: true = real row, false =
//! padding, left out of every count and every denominator).
//! ```text
//!   utilisation     u_e = #{real r : top(r) = e} / m                         [E], Σ u = 1
//!   load_variance   Var(u) = (1/E) Σ_e (u_e − ū)²,  ū = 1/E        0 balanced … (E−1)/E² collapsed
//!   routing_entropy mean_token = (1/m) Σ_real H(p_r),   of_mean = H(p̄)        in nats, 0 … ln E
//!   class_expert    mean_gate[c, e] = mean of p[r, e] over real rows of class c   [classes, E]
//!                   top_share[c, e] = share of class c's real rows with top(r) = e [classes, E]
//!   specialisation  H(class | expert) / ln(n_classes)                 0 specialised … 1 mixed
//! ```
//! with m the number of real rows and H(p) = −Σ pᵢ ln pᵢ (0·ln 0 = 0). By Jensen,
//! `of_mean ≥ mean_token`: a router can be sure of every token (mean_token ≈ 0) while using
//! all experts evenly (of_mean ≈ ln E); that is specialised, balanced routing. of_mean ≈ 0
//! is collapse onto one expert.
//!
//! A mean or share over no rows (no real row at all, a class absent from the batch) is NaN,
//! not 0: it is undefined, and a heatmap draws it grey.
//!
//! The PNG heatmap of a class × expert matrix is in the plot module (plot/routing.rs):
//! `moe` does no IO.

use ndarray::{Array1, Array2, ArrayView2};
use std::fmt::Write;

/// The index of each row's largest probability: which expert "took" the row.
pub use super::mixture::top_expert;

/// Whether row r is real; every row is without a mask. Panics if the mask does not fit.
fn is_real<'a>(mask: Option<&'a [bool]>, n: usize, what: &str) -> impl Fn(usize) -> bool + 'a {
    if let Some(m) = mask {
        assert_eq!(m.len(), n, "{what}: the mask has {} entries for {n} rows", m.len());
    }
    move |r| mask.is_none_or(|m| m[r])
}

/// −Σ pᵢ ln pᵢ in nats, with 0·ln 0 = 0.
fn entropy<'a>(p: impl IntoIterator<Item = &'a f64>) -> f64 {
    -p.into_iter().filter(|&&q| q > 0.0).map(|&q| q * q.ln()).sum::<f64>()
}

/// u_e = share of the real rows whose top expert is e, for e in 0..n_experts (NaN: no real row).
pub fn utilisation(top: &[usize], n_experts: usize, mask: Option<&[bool]>) -> Vec<f64> {
    let real = is_real(mask, top.len(), "utilisation");
    let mut counts = vec![0usize; n_experts];
    let mut m = 0;
    for (r, &e) in top.iter().enumerate().filter(|&(r, _)| real(r)) {
        assert!(e < n_experts, "utilisation: row {r} went to expert {e}, but there are {n_experts}");
        counts[e] += 1;
        m += 1;
    }
    counts.iter().map(|&c| if m == 0 { f64::NAN } else { c as f64 / m as f64 }).collect()
}

/// The population variance of the utilisation shares: 0 when every expert takes 1/E of the
/// rows, (E−1)/E² when one expert takes all of them.
pub fn load_variance(util: &[f64]) -> f64 {
    let n = util.len() as f64;
    let mean = util.iter().sum::<f64>() / n;
    util.iter().map(|u| (u - mean) * (u - mean)).sum::<f64>() / n
}

/// Routing entropies in nats; both lie in [0, ln E] (ln 4 ≈ 1.386 for four experts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entropy {
    /// (1/m) Σ_real H(p_r): how unsure the router is about each row (0 = one-hot rows).
    pub mean_token: f64,
    /// H(p̄): how evenly the average routing uses the experts (ln E = perfectly even).
    pub of_mean: f64,
}

/// Mean per-row entropy and entropy of the mean row of `probs` [n, E] over the real rows.
pub fn routing_entropy(probs: ArrayView2<f64>, mask: Option<&[bool]>) -> Entropy {
    let (n, n_experts) = probs.dim();
    let real = is_real(mask, n, "routing_entropy");
    let mut p_mean = Array1::<f64>::zeros(n_experts);
    let (mut h_sum, mut m) = (0.0, 0);
    for (_, p) in probs.rows().into_iter().enumerate().filter(|&(r, _)| real(r)) {
        h_sum += entropy(p);
        p_mean += &p;
        m += 1;
    }
    if m == 0 {
        return Entropy { mean_token: f64::NAN, of_mean: f64::NAN };
    }
    p_mean /= m as f64;
    Entropy { mean_token: h_sum / m as f64, of_mean: entropy(&p_mean) }
}

/// Routing broken down by class (digit, domain, sentiment): the class × expert tables.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassExpert {
    /// [classes, E]: mean routing weight of each expert over the real rows of each class.
    pub mean_gate: Array2<f64>,
    /// [classes, E]: share of each class's real rows whose top expert is e (rows sum to 1).
    pub top_share: Array2<f64>,
    /// The number of real rows of each class.
    pub counts: Vec<usize>,
}

impl ClassExpert {
    /// The joint count table [classes, E]: rows of class c whose top expert is e.
    pub fn top_counts(&self) -> Array2<f64> {
        let mut t = self.top_share.clone();
        for (mut row, &c) in t.rows_mut().into_iter().zip(&self.counts) {
            // An absent class has a NaN share row and no rows: 0 counts.
            row.mapv_inplace(|s| if c == 0 { 0.0 } else { (s * c as f64).round() });
        }
        t
    }

    /// [`specialisation_index`] of the top-expert count table.
    pub fn specialisation_index(&self) -> f64 {
        specialisation_index(self.top_counts().view())
    }
}

/// The class × expert tables of `probs` [n, E] with one label per row (each < n_classes).
/// A class with no real row gets NaN rows in both tables and a count of 0.
pub fn class_expert(probs: ArrayView2<f64>, labels: &[usize], n_classes: usize, mask: Option<&[bool]>) -> ClassExpert {
    let (n, n_experts) = probs.dim();
    assert_eq!(labels.len(), n, "class_expert: {} labels for {n} rows of routing probabilities", labels.len());
    let real = is_real(mask, n, "class_expert");
    let top = top_expert(probs);
    let mut mean_gate = Array2::<f64>::zeros((n_classes, n_experts));
    let mut top_share = Array2::<f64>::zeros((n_classes, n_experts));
    let mut counts = vec![0usize; n_classes];
    for (r, p) in probs.rows().into_iter().enumerate().filter(|&(r, _)| real(r)) {
        let c = labels[r];
        assert!(c < n_classes, "class_expert: row {r} has label {c}, but there are {n_classes} classes");
        let mut gate_row = mean_gate.row_mut(c);
        gate_row += &p;
        top_share[[c, top[r]]] += 1.0;
        counts[c] += 1;
    }
    for (c, &count) in counts.iter().enumerate() {
        // Sums → means; 0/0 = NaN for a class with no rows, on purpose.
        let k = count as f64;
        mean_gate.row_mut(c).mapv_inplace(|v| v / k);
        top_share.row_mut(c).mapv_inplace(|v| v / k);
    }
    ClassExpert { mean_gate, top_share, counts }
}

/// How mixed the classes inside each expert are, normalised to [0, 1].
///
/// `joint` [classes, E] holds non-negative weights, usually counts: joint[c, e] = rows of
/// class c whose top expert is e ([`ClassExpert::top_counts`]). With T = Σ joint,
/// w_e = Σ_c joint[c, e] / T (expert e's load) and q(c | e) = joint[c, e] / Σ_c joint[c, e]:
/// ```text
///   H(class | expert) = Σ_e w_e · H(q(· | e))          experts with no rows weigh 0
///   index             = H(class | expert) / ln(n_classes)
/// ```
/// 0: every expert sees one class only (perfect specialisation). 1: every expert sees all
/// classes in equal shares (no specialisation at all). With balanced classes the index is
/// 1 − I(class; expert)/H(class); with unbalanced classes its largest value is H(class)/ln(n_classes) < 1.
/// The table's scale does not matter (shares work as well as counts). With one class there
/// is nothing to specialise on: 0. An all-zero table: NaN.
pub fn specialisation_index(joint: ArrayView2<f64>) -> f64 {
    let n_classes = joint.nrows();
    let total = joint.sum();
    if n_classes <= 1 {
        return 0.0;
    }
    if total <= 0.0 {
        return f64::NAN;
    }
    let mut h = 0.0;
    for column in joint.columns() {
        let load = column.sum();
        if load > 0.0 {
            let q: Vec<f64> = column.iter().map(|&v| v / load).collect();
            h += load / total * entropy(&q);
        }
    }
    h / (n_classes as f64).ln()
}

/// Per class c, the share routed to its "matching" expert: `table[c, matching[c]]`, where
/// `table` is [classes, E] (`top_share` or `mean_gate`).
pub fn matching_share(table: ArrayView2<f64>, matching: &[usize]) -> Vec<f64> {
    let (n_classes, n_experts) = table.dim();
    assert_eq!(matching.len(), n_classes, "matching_share: {} matches for {n_classes} classes", matching.len());
    matching
        .iter()
        .enumerate()
        .map(|(c, &e)| {
            assert!(e < n_experts, "matching_share: class {c} matches expert {e}, but there are {n_experts}");
            table[[c, e]]
        })
        .collect()
}

/// One real token and where it went.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRoute {
    /// Its row in the input (padding rows are skipped, so rows can jump).
    pub row: usize,
    pub token: String,
    /// Its top expert and that expert's routing weight.
    pub expert: usize,
    pub gate: f64,
}

/// Each real token's top expert and gate. `tokens` are the texts of the rows of `probs`, one each.
pub fn token_routes(tokens: &[String], probs: ArrayView2<f64>, mask: Option<&[bool]>) -> Vec<TokenRoute> {
    let n = probs.nrows();
    assert_eq!(tokens.len(), n, "token_routes: {} tokens for {n} rows of routing probabilities", tokens.len());
    let real = is_real(mask, n, "token_routes");
    let top = top_expert(probs);
    (0..n)
        .filter(|&r| real(r))
        .map(|r| TokenRoute { row: r, token: tokens[r].clone(), expert: top[r], gate: probs[[r, top[r]]] })
        .collect()
}

/// [`token_routes`] as an aligned text table, one line per real token:
/// ```text
/// row  token   expert   gate
///   0  "def"        2  0.700
///   1  " f\n"       0  0.488
///   2  "\t"         1  0.600
/// ```
/// Tokens are quoted and escaped (Rust's `escape_debug`), so a space, a newline or a tab is
/// visible. Columns align by character count (wide CJK characters may still push a line).
pub fn token_listing(tokens: &[String], probs: ArrayView2<f64>, mask: Option<&[bool]>) -> String {
    let routes = token_routes(tokens, probs, mask);
    let shown: Vec<String> = routes.iter().map(|t| format!("\"{}\"", t.token.escape_debug())).collect();
    let width = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0).max("token".len());
    let row_w = routes.last().map_or(0, |t| t.row.to_string().len()).max("row".len());
    let mut out = String::new();
    writeln!(out, "{:>row_w$}  {:<width$}  expert   gate", "row", "token").expect("writing to a String");
    for (t, s) in routes.iter().zip(&shown) {
        // `{:<width$}` pads by chars, which is what the width was measured in.
        writeln!(out, "{:>row_w$}  {:<width$}  {:>6}  {:.3}", t.row, s, t.expert, t.gate).expect("writing to a String");
    }
    out
}
