//! Router losses: auxiliary terms on the router logits that shape *how* tokens are routed.
//!
//! Every loss reads the router logits z [n, E] (n rows = tokens, E = n_experts experts),
//! with p = softmax(z) row by row, and an optional row mask (1 = real token, 0 = padding).
//! Padding rows are left out of every sum **and** of every mean's denominator: m below is
//! the number of real rows, not n. (Implementations that divide by n let padding dilute the
//! loss, and its gradient, by the padding share of the batch.) Padding rows get exactly zero
//! gradient, whatever their logits hold. With no real row at all, every loss is 0.
//!
//! ```text
//!   switch_balance  L = α · E · Σᵢ fᵢ · Pᵢ        fᵢ = Σ_real dispatch[:, i] / Σ_real Σₑ dispatch
//!                                                Pᵢ = (1/m) Σ_real p[:, i]
//!   z_loss          L = β · (1/m) Σ_real (logsumexp z_r)²
//!   token_entropy   L = c · (1/m) Σ_real H(p_r)          H(p) = −Σᵢ pᵢ ln pᵢ
//!   batch_entropy   L = c · H(p̄)                         p̄ = (1/m) Σ_real p_r
//! ```
//! Switch load balancing (Fedus et al. 2021, eq. 4; there N is the number of experts, here E):
//! f is the share of routing *decisions* (the 0/1 `dispatch`, k ones per row for top-k) and
//! is a constant, not differentiated; the gradient flows through P. Under uniform routing
//! (f = P = 1/E) the loss is exactly α; under full collapse onto one expert (f = P = e₁) it
//! is α·E, its maximum. The router z-loss (Zoph et al. 2022, ST-MoE, eq. 5) keeps the
//! logits small, where the router's softmax is numerically safe (logits of 1e4 are fine
//! here: logsumexp subtracts the row max). Paper defaults: α = 1e-2, β = 1e-3.
//!
//! **Signs.** All four losses are *minimised* (added to the task loss). Entropy is at most
//! ln E (uniform) and at least 0 (one-hot), so:
//! - token entropy with c > 0 **sharpens** each token's routing (each row → one-hot);
//!   c < 0 would flatten each row towards uniform.
//! - batch entropy with c < 0 **spreads** the load: minimising −|c|·H(p̄) maximises the
//!   entropy of the mean distribution, pushing the average routing towards uniform use of
//!   the experts. With c > 0 it does the opposite: it rewards collapse onto few experts.
//!
//! The usual pair for specialised *and* balanced routing is token entropy c > 0 with
//! batch entropy c < 0: each token decides, and the batch as a whole uses every expert.
//!
//! **Gradients.** Each loss is a function of p (plus z directly for z-loss); the chain rule
//! through the softmax Jacobian ∂pᵢ/∂zⱼ = pᵢ(δᵢⱼ − pⱼ) gives, per row,
//! `dz = p ⊙ (dp − Σⱼ pⱼ dpⱼ)`, with dp = ∂L/∂p_r:
//! ```text
//!   switch_balance  dp_r[i] = α·E·fᵢ / m                       (f constant; P is a row mean)
//!   z_loss          dz_r = (2β/m) · lse_r · p_r                   (∂ lse/∂z = softmax)
//!   token_entropy   dp_r[i] = −(c/m)(ln p_ri + 1)
//!                   ⇒ dz_r[i] = −(c/m) · p_ri · (ln p_ri + H(p_r))   (the +1 cancels: Σ p = 1)
//!   batch_entropy   ∂L/∂p̄ᵢ = −c(ln p̄ᵢ + 1), and ∂p̄/∂p_r = 1/m
//!                   ⇒ dp_r[i] = −(c/m)(ln p̄ᵢ + 1)
//! ```
//! 0·ln 0 is taken as 0 (its limit), so an expert with p̄ᵢ = 0 adds nothing and gets no
//! gradient, instead of a NaN. Where ln p itself is needed (token entropy) it comes from
//! log-softmax, so a probability that underflows to 0 never becomes ln 0.
//!
//! Shapes: logits, dispatch and every returned gradient are [n, E]; the mask has n entries.
//!
//! ```
//! use ndarray::{array, Array2};
//! use tinymoe::moe::losses::{switch_balance, z_loss};
//! // Uniform routing over 2 experts: P = (1/2, 1/2), one row to each: f = (1/2, 1/2).
//! // L = α·2·(1/4 + 1/4) = α. The padding row (mask 0) would otherwise send a 3rd row to expert 0.
//! let z = Array2::<f64>::zeros((3, 2));
//! let dispatch = array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]];
//! let mask = array![1u8, 1, 0];
//! let (loss, dz) = switch_balance(z.view(), dispatch.view(), Some(mask.view()), 0.01);
//! assert!((loss - 0.01).abs() < 1e-15 && dz.iter().all(|g| g.abs() < 1e-15));
//! // z-loss of a row [0, 0]: β·(ln 2)².
//! let (zl, _) = z_loss(array![[0.0f64, 0.0]].view(), None, 1e-3);
//! assert!((zl - 1e-3 * 2f64.ln().powi(2)).abs() < 1e-15);
//! ```

use crate::engine::ops::softmax::{log_softmax, logsumexp, softmax, softmax_backward};
use crate::engine::Float;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

/// The coefficient of each router loss; 0 switches a term off. Signs as in the module doc:
/// `token_entropy > 0` sharpens, `batch_entropy < 0` spreads the load.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RouterLossConfig {
    /// α of the Switch load-balancing loss.
    pub balance: f64,
    /// β of the router z-loss.
    pub z_loss: f64,
    pub token_entropy: f64,
    pub batch_entropy: f64,
}

impl RouterLossConfig {
    /// The papers' defaults: α = 1e-2 (Switch Transformer), β = 1e-3 (ST-MoE); no entropy terms.
    pub fn paper() -> RouterLossConfig {
        RouterLossConfig { balance: 1e-2, z_loss: 1e-3, ..RouterLossConfig::default() }
    }
}

/// The value of each term (0 for a term that is off) and their sum, in f64 for logging.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RouterLossValues {
    pub balance: f64,
    pub z: f64,
    pub token_entropy: f64,
    pub batch_entropy: f64,
    pub total: f64,
}

/// Which rows are real, and how many: every row when there is no mask.
fn real_rows(n: usize, mask: Option<ArrayView1<u8>>, what: &str) -> (Vec<bool>, usize) {
    let real: Vec<bool> = match mask {
        Some(m) => {
            assert_eq!(m.len(), n, "{what}: the mask has {} entries for {n} rows of logits", m.len());
            m.iter().map(|&v| v != 0).collect()
        }
        None => vec![true; n],
    };
    let m = real.iter().filter(|&&r| r).count();
    (real, m)
}

/// p · ln p, with 0 · ln 0 = 0 (its limit).
fn p_ln_p<F: Float>(p: F) -> F {
    if p > F::zero() {
        p * p.ln()
    } else {
        F::zero()
    }
}

/// Zeroes the gradient rows of padding (their softmax may even be NaN: it was never used).
fn zero_padding<F: Float>(dz: &mut Array2<F>, real: &[bool]) {
    for (mut row, &is_real) in dz.axis_iter_mut(Axis(0)).zip(real) {
        if !is_real {
            row.fill(F::zero());
        }
    }
}

/// Switch load-balancing loss α·E·Σᵢ fᵢ·Pᵢ and ∂L/∂logits [n, E].
/// `dispatch` [n, E] holds 1 where a row was sent to an expert (top-k: k ones per row), else 0.
pub fn switch_balance<F: Float>(
    logits: ArrayView2<F>,
    dispatch: ArrayView2<F>,
    mask: Option<ArrayView1<u8>>,
    alpha: F,
) -> (F, Array2<F>) {
    let (n, n_experts) = logits.dim();
    assert_eq!(
        dispatch.dim(),
        logits.dim(),
        "switch_balance: dispatch is {:?}, logits {:?}",
        dispatch.dim(),
        (n, n_experts)
    );
    let (real, m) = real_rows(n, mask, "switch_balance");
    if m == 0 {
        return (F::zero(), Array2::zeros((n, n_experts)));
    }
    let p = softmax(logits);
    // counts[i] = Σ_real dispatch[:, i];  prob_sum[i] = Σ_real p[:, i]
    let mut counts = Array1::<F>::zeros(n_experts);
    let mut prob_sum = Array1::<F>::zeros(n_experts);
    for ((d, p), _) in dispatch.rows().into_iter().zip(p.rows()).zip(&real).filter(|(_, &r)| r) {
        counts += &d;
        prob_sum += &p;
    }
    let assignments = counts.sum();
    if assignments == F::zero() {
        // Nothing was dispatched: f = 0, so the loss and its gradient are 0.
        return (F::zero(), Array2::zeros((n, n_experts)));
    }
    let m_f = F::lit(m as f64);
    let scale = alpha * F::lit(n_experts as f64);
    let f = counts / assignments; // [E], constant
    let big_p = prob_sum / m_f; // [E]
    let loss = scale * f.dot(&big_p);
    // dp_r = α·E·f / m on every real row (P is their mean); then through the softmax.
    let dp_row = f.mapv(|fi| scale * fi / m_f);
    let dp = dp_row.broadcast((n, n_experts)).expect("f is [E]");
    let mut dz = softmax_backward(p.view(), dp);
    zero_padding(&mut dz, &real);
    (loss, dz)
}

/// Router z-loss β·mean_real (logsumexp z_r)² and ∂L/∂logits [n, E].
pub fn z_loss<F: Float>(logits: ArrayView2<F>, mask: Option<ArrayView1<u8>>, beta: F) -> (F, Array2<F>) {
    let n = logits.nrows();
    let (real, m) = real_rows(n, mask, "z_loss");
    let mut dz = Array2::zeros(logits.raw_dim());
    if m == 0 {
        return (F::zero(), dz);
    }
    let m_f = F::lit(m as f64);
    let two = F::lit(2.0);
    let mut loss = F::zero();
    for ((z, mut dz), _) in logits.rows().into_iter().zip(dz.rows_mut()).zip(&real).filter(|(_, &r)| r) {
        let lse = logsumexp(z);
        loss += lse * lse;
        // ∂(lse²)/∂z = 2·lse·softmax(z); softmax as exp(z − lse), stable for any z.
        let g = two * beta * lse / m_f;
        Zip::from(&mut dz).and(&z).for_each(|dz, &z| *dz = g * (z - lse).exp());
    }
    (beta * loss / m_f, dz)
}

/// Mean per-token routing entropy c·mean_real H(softmax z_r) and ∂L/∂logits [n, E].
pub fn token_entropy<F: Float>(logits: ArrayView2<F>, mask: Option<ArrayView1<u8>>, coef: F) -> (F, Array2<F>) {
    let n = logits.nrows();
    let (real, m) = real_rows(n, mask, "token_entropy");
    let mut dz = Array2::zeros(logits.raw_dim());
    if m == 0 {
        return (F::zero(), dz);
    }
    let m_f = F::lit(m as f64);
    let log_p = log_softmax(logits);
    let mut loss = F::zero();
    for ((lp, mut dz), _) in log_p.rows().into_iter().zip(dz.rows_mut()).zip(&real).filter(|(_, &r)| r) {
        // H = −Σ p ln p, with ln p from log-softmax (finite even where p underflows to 0).
        let h = -lp.iter().map(|&l| l.exp() * l).sum::<F>();
        loss += h;
        // dz = −(c/m) · p ⊙ (ln p + H)
        let g = -coef / m_f;
        Zip::from(&mut dz).and(&lp).for_each(|dz, &l| *dz = g * l.exp() * (l + h));
    }
    (coef * loss / m_f, dz)
}

/// Entropy of the batch-mean routing distribution c·H(p̄) and ∂L/∂logits [n, E].
pub fn batch_entropy<F: Float>(logits: ArrayView2<F>, mask: Option<ArrayView1<u8>>, coef: F) -> (F, Array2<F>) {
    let (n, n_experts) = logits.dim();
    let (real, m) = real_rows(n, mask, "batch_entropy");
    if m == 0 {
        return (F::zero(), Array2::zeros((n, n_experts)));
    }
    let m_f = F::lit(m as f64);
    let p = softmax(logits);
    let mut p_mean = Array1::<F>::zeros(n_experts); // p̄ [E]
    for (row, _) in p.rows().into_iter().zip(&real).filter(|(_, &r)| r) {
        p_mean += &row;
    }
    p_mean /= m_f;
    let h = -p_mean.iter().map(|&q| p_ln_p(q)).sum::<F>();
    // dp_r[i] = −(c/m)(ln p̄ᵢ + 1); an expert with p̄ᵢ = 0 has p_ri = 0 on every real row,
    // so its term is 0 (the limit), not −∞·0.
    let dp_row = p_mean.mapv(|q| if q > F::zero() { -coef / m_f * (q.ln() + F::one()) } else { F::zero() });
    let dp = dp_row.broadcast((n, n_experts)).expect("p̄ is [E]");
    let mut dz = softmax_backward(p.view(), dp);
    zero_padding(&mut dz, &real);
    (coef * h, dz)
}

/// The sum of the enabled router losses (a coefficient of 0 skips its term entirely) and its
/// gradient ∂L/∂logits [n, E]. `dispatch` is read only by the balancing term.
pub fn total<F: Float>(
    cfg: &RouterLossConfig,
    logits: ArrayView2<F>,
    dispatch: ArrayView2<F>,
    mask: Option<ArrayView1<u8>>,
) -> (RouterLossValues, Array2<F>) {
    let mut values = RouterLossValues::default();
    let mut dz = Array2::zeros(logits.raw_dim());
    let to_f64 = |v: F| v.to_f64().expect("a Float converts to f64");
    if cfg.balance != 0.0 {
        let (value, grad) = switch_balance(logits, dispatch, mask, F::lit(cfg.balance));
        values.balance = to_f64(value);
        dz += &grad;
    }
    if cfg.z_loss != 0.0 {
        let (value, grad) = z_loss(logits, mask, F::lit(cfg.z_loss));
        values.z = to_f64(value);
        dz += &grad;
    }
    if cfg.token_entropy != 0.0 {
        let (value, grad) = token_entropy(logits, mask, F::lit(cfg.token_entropy));
        values.token_entropy = to_f64(value);
        dz += &grad;
    }
    if cfg.batch_entropy != 0.0 {
        let (value, grad) = batch_entropy(logits, mask, F::lit(cfg.batch_entropy));
        values.batch_entropy = to_f64(value);
        dz += &grad;
    }
    values.total = values.balance + values.z + values.token_entropy + values.batch_entropy;
    (values, dz)
}

#[cfg(test)]
mod tests {
    //! Each term's effect on its own: plain gradient descent z ← z − lr·∂L/∂z on free
    //! logits [n, E], with that one loss and nothing else.
    use super::*;
    use crate::engine::init;
    use crate::moe::metrics::{load_variance, top_expert, utilisation};

    const N: usize = 32;
    const E: usize = 4;

    /// Logits U(−1, 1), plus `bias` on expert 0 (a router that starts collapsed).
    fn start(seed: u64, bias: f64) -> Array2<f64> {
        let mut z: Array2<f64> = init::uniform((N, E), 1.0, &mut init::rng(seed));
        z.column_mut(0).mapv_inplace(|v| v + bias);
        z
    }

    /// The one-hot top-1 dispatch [n, E] of the logits.
    fn top1_dispatch(z: &Array2<f64>) -> Array2<f64> {
        let mut d = Array2::zeros(z.raw_dim());
        for (r, e) in top_expert(z.view()).into_iter().enumerate() {
            d[[r, e]] = 1.0;
        }
        d
    }

    fn mean_row(p: &Array2<f64>) -> Array1<f64> {
        p.mean_axis(Axis(0)).expect("n > 0")
    }

    #[test]
    fn negative_batch_entropy_spreads_the_load() {
        let mut z = start(1, 3.0);
        let p_mean_before = mean_row(&softmax(z.view()));
        let var_before = load_variance(&utilisation(&top_expert(z.view()), E, None));
        for _ in 0..300 {
            let (_, dz) = batch_entropy(z.view(), None, -1.0);
            z.scaled_add(-(N as f64), &dz); // lr = n: the loss is a mean over n rows
        }
        let p_mean = mean_row(&softmax(z.view()));
        let var_after = load_variance(&utilisation(&top_expert(z.view()), E, None));
        assert!(p_mean_before[0] > 0.7, "starts collapsed: p̄ = {p_mean_before}");
        assert!(p_mean.iter().all(|&q| (q - 0.25).abs() < 0.01), "p̄ → uniform, got {p_mean}");
        assert!(var_after < 0.25 * var_before, "top-1 load variance {var_before:.4} → {var_after:.4}");
    }

    #[test]
    fn positive_token_entropy_sharpens_every_row() {
        let mut z = start(2, 0.0);
        let max_prob = |z: &Array2<f64>| {
            let p = softmax(z.view());
            p.rows().into_iter().map(|r| r.fold(0.0f64, |m, &v| m.max(v))).fold(1.0f64, f64::min)
        };
        assert!(max_prob(&z) < 0.6, "starts unsure");
        for _ in 0..300 {
            let (_, dz) = token_entropy(z.view(), None, 1.0);
            z.scaled_add(-(N as f64), &dz);
        }
        assert!(max_prob(&z) > 0.99, "every row's largest probability → 1, the smallest is {}", max_prob(&z));
    }

    #[test]
    fn switch_balance_undoes_a_collapse() {
        let mut z = start(3, 3.0);
        let max_share = |z: &Array2<f64>| utilisation(&top_expert(z.view()), E, None).into_iter().fold(0.0, f64::max);
        assert_eq!(max_share(&z), 1.0, "starts fully collapsed onto expert 0");
        for _ in 0..300 {
            // The routing decision is recomputed every step, as in training.
            let dispatch = top1_dispatch(&z);
            let (_, dz) = switch_balance(z.view(), dispatch.view(), None, 1.0);
            z.scaled_add(-(N as f64), &dz);
        }
        assert!(max_share(&z) <= 0.3, "max load share 1.0 → {}", max_share(&z));
    }
}
