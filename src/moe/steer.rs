//! SteerMoE's expert detection: which experts fire more for one kind of input than another.
//!
//! Fayyaz et al. 2025, "Steering MoE LLMs via Expert (De)Activation" (arXiv:2509.09660).
//! Take two sets of inputs that differ only in the behaviour of interest (A and B: safe vs
//! unsafe, code vs prose), run them through the MoE and record, for every real token, the
//! top-k list of experts it was sent to. Then, per expert e:
//! ```text
//!   rate_S(e) = #{tokens t of S : e ∈ chosen(t)} / #{tokens of S}     activation rate in set S
//!   RD_e      = rate_A(e) − rate_B(e)                                   risk difference, in [−1, 1]
//! ```
//! RD_e > 0: expert e fires more on A (it is "tied" to A's behaviour); RD_e < 0: tied to B.
//! The paper ranks experts by |RD| and then steers: it promotes A-tied experts (raising their
//! router log-probabilities so they are chosen) or suppresses them, at inference time,
//! without training. This file is the detection only; the steering offset lives in the router.
//!
//! Rates count tokens, not sequences, and a token counts once per expert even if its list
//! repeats the expert. Padding is not a token: pass real tokens only. A set with no tokens
//! has no rate: every rate is NaN, and so is every RD computed from it.
//!
//! Shapes: `chosen[t]` is the list of expert indices (each < n_experts) of token t; every
//! returned vector has n_experts entries.

/// rate(e) = share of the tokens whose chosen experts include e, for e in 0..n_experts.
pub fn activation_rates(chosen: &[Vec<usize>], n_experts: usize) -> Vec<f64> {
    let mut hits = vec![0usize; n_experts];
    let mut seen = vec![false; n_experts];
    for (t, experts) in chosen.iter().enumerate() {
        seen.fill(false);
        for &e in experts {
            assert!(e < n_experts, "activation_rates: token {t} chose expert {e}, but there are {n_experts}");
            // A token counts once per expert, even if its list names the expert twice.
            if !seen[e] {
                seen[e] = true;
                hits[e] += 1;
            }
        }
    }
    let tokens = chosen.len() as f64;
    hits.iter().map(|&h| if chosen.is_empty() { f64::NAN } else { h as f64 / tokens }).collect()
}

/// RD_e = rate_A(e) − rate_B(e): positive for experts that fire more on A.
pub fn risk_difference(chosen_a: &[Vec<usize>], chosen_b: &[Vec<usize>], n_experts: usize) -> Vec<f64> {
    let rate_a = activation_rates(chosen_a, n_experts);
    let rate_b = activation_rates(chosen_b, n_experts);
    rate_a.iter().zip(&rate_b).map(|(a, b)| a - b).collect()
}

/// The `how_many` experts most tied to A: largest RD first, equal RDs by lower index, NaN
/// last. (For the experts tied to B, pass the negated RD.) Fewer if there are fewer experts.
pub fn tied_experts(rd: &[f64], how_many: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rd.len()).collect();
    // Sort by RD descending; a NaN sorts after every number. The sort is stable, so equal
    // RDs keep index order.
    order.sort_by(|&i, &j| match (rd[i].is_nan(), rd[j].is_nan()) {
        (false, false) => rd[j].partial_cmp(&rd[i]).expect("neither is NaN"),
        (a, b) => a.cmp(&b),
    });
    order.truncate(how_many);
    order
}
