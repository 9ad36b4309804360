//! Evaluation of a domain-routed MoE language model (E5) on held-out labelled sequences: how
//! well the domain classifier routes (accuracy, confusion, confidence), how soon it knows
//! (accuracy against the number of tokens seen, as at generation time), and what routing costs
//! (per-domain perplexity when every sequence goes to its true expert, where the classifier
//! sends it, where the classifier would send it from the tokens so far, or to a wrong expert).
//!
//! ```text
//!   routing            the expert of a sequence's position t is …
//!   Model              the classifier's choice from the whole sequence (how training evaluates;
//!                      it has read tokens after t, so it is not available while generating)
//!   Prefix             the classifier's choice from tokens 0..=t (what generation can do)
//!   True               its true domain's expert (the oracle)
//!   Wrong              expert (true + 1) mod domains (a deliberate misrouting)
//! ```
//! Padding never counts: perplexities average real target positions only, and a sequence's
//! prefix of length L counts only when the sequence has L real positions.

use crate::data::batch::{Batches, Sampling};
use crate::engine::init;
use crate::models::moe_lm::{self, prefix_router_logits};
use crate::moe::layer::Route;
use ndarray::{s, Array2, ArrayView1, Axis};

/// Where each sequence (or each position) is routed for a perplexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    Model,
    Prefix,
    True,
    Wrong,
}

impl Routing {
    pub const ALL: [Routing; 4] = [Routing::True, Routing::Model, Routing::Prefix, Routing::Wrong];

    pub fn name(self) -> &'static str {
        match self {
            Routing::Model => "model",
            Routing::Prefix => "prefix",
            Routing::True => "true",
            Routing::Wrong => "wrong",
        }
    }
}

/// The classifier's decision on every whole held-out sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub labels: Vec<usize>,
    pub predicted: Vec<usize>,
    /// The softmax probability of the predicted domain.
    pub confidence: Vec<f64>,
    pub n_domains: usize,
}

impl Classified {
    /// Share of sequences routed to their own domain's expert.
    pub fn accuracy(&self) -> f64 {
        let right = self.labels.iter().zip(&self.predicted).filter(|(l, p)| l == p).count();
        right as f64 / self.labels.len().max(1) as f64
    }

    /// The same for the sequences of one domain (NaN when it has none).
    pub fn domain_accuracy(&self, domain: usize) -> f64 {
        let (mut n, mut right) = (0usize, 0usize);
        for (&l, &p) in self.labels.iter().zip(&self.predicted) {
            if l == domain {
                n += 1;
                right += usize::from(l == p);
            }
        }
        if n == 0 {
            f64::NAN
        } else {
            right as f64 / n as f64
        }
    }

    /// [true domain, predicted expert]: each row's share (rows sum to 1; a domain with no
    /// sequence is a row of zeros). Columns are the model's experts, which may outnumber the
    /// domains.
    pub fn confusion(&self, n_experts: usize) -> Array2<f64> {
        let mut m = Array2::<f64>::zeros((self.n_domains, n_experts.max(self.n_domains)));
        for (&l, &p) in self.labels.iter().zip(&self.predicted) {
            m[[l, p]] += 1.0;
        }
        for mut row in m.axis_iter_mut(Axis(0)) {
            let total = row.sum();
            if total > 0.0 {
                row.mapv_inplace(|v| v / total);
            }
        }
        m
    }

    /// Mean confidence of the right (`true`) or wrong (`false`) predictions (NaN when none).
    pub fn mean_confidence(&self, right: bool) -> f64 {
        let picked: Vec<f64> = self
            .confidence
            .iter()
            .zip(self.labels.iter().zip(&self.predicted))
            .filter(|(_, (l, p))| (l == p) == right)
            .map(|(&c, _)| c)
            .collect();
        if picked.is_empty() {
            f64::NAN
        } else {
            picked.iter().sum::<f64>() / picked.len() as f64
        }
    }

    /// Histogram of the confidences of right and of wrong predictions over `bins` equal bins of
    /// [0, 1]: (bin centre, share of the right ones, share of the wrong ones); each share sums
    /// to 1 over the bins (0 everywhere when there is none of that kind).
    pub fn confidence_histogram(&self, bins: usize) -> Vec<(f64, f64, f64)> {
        let bins = bins.max(1);
        let mut right = vec![0.0; bins];
        let mut wrong = vec![0.0; bins];
        for (&c, (l, p)) in self.confidence.iter().zip(self.labels.iter().zip(&self.predicted)) {
            let b = ((c * bins as f64) as usize).min(bins - 1);
            if l == p {
                right[b] += 1.0;
            } else {
                wrong[b] += 1.0;
            }
        }
        let (nr, nw) = (right.iter().sum::<f64>().max(1.0), wrong.iter().sum::<f64>().max(1.0));
        (0..bins).map(|b| ((b as f64 + 0.5) / bins as f64, right[b] / nr, wrong[b] / nw)).collect()
    }
}

/// The largest softmax probability of a row of logits, and its index.
fn top_probability(z: ArrayView1<f64>) -> (usize, f64) {
    let best = crate::engine::losses::cross_entropy::argmax(z);
    let m = z[best];
    let sum: f64 = z.iter().map(|&v| (v - m).exp()).sum();
    (best, 1.0 / sum)
}

fn in_order(data: &Batches, batch_size: usize) -> Vec<Vec<usize>> {
    data.order(Sampling::InOrder, &mut init::rng(0)).chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
}

/// The classifier on every whole sequence of `data` (a domain-routed model: its router's
/// logits are the domain classifier's).
pub fn classify(model: &moe_lm::Params<f32>, data: &Batches, n_domains: usize, batch_size: usize) -> Classified {
    let mut c = Classified { labels: Vec::new(), predicted: Vec::new(), confidence: Vec::new(), n_domains };
    for rows in in_order(data, batch_size) {
        let batch = data.batch(&rows);
        let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), Some(&batch.labels), Route::default());
        for (row, &label) in r.logits.axis_iter(Axis(0)).zip(&batch.labels) {
            let (p, conf) = top_probability(row);
            c.labels.push(label);
            c.predicted.push(p);
            c.confidence.push(conf);
        }
    }
    c
}

/// Routing accuracy after the first `len` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixPoint {
    pub len: usize,
    pub accuracy: f64,
    /// Mean probability of the predicted domain.
    pub confidence: f64,
    /// Sequences with at least `len` real tokens (the others do not count at this length).
    pub sequences: usize,
}

/// The classifier's accuracy and confidence having seen only the first `len` tokens of each
/// sequence, for each of `lens`.
pub fn accuracy_by_prefix(
    model: &moe_lm::Params<f32>,
    data: &Batches,
    lens: &[usize],
    batch_size: usize,
) -> Vec<PrefixPoint> {
    let mut right = vec![0usize; lens.len()];
    let mut conf = vec![0.0; lens.len()];
    let mut count = vec![0usize; lens.len()];
    for rows in in_order(data, batch_size) {
        let batch = data.batch(&rows);
        let z = prefix_router_logits(model, batch.ids.view());
        for (b, &label) in batch.labels.iter().enumerate() {
            let real = batch.mask.row(b).iter().filter(|&&m| m == 1).count();
            for (i, &len) in lens.iter().enumerate() {
                if len == 0 || len > real {
                    continue;
                }
                let (p, c) = top_probability(z.slice(s![b, len - 1, ..]));
                right[i] += usize::from(p == label);
                conf[i] += c;
                count[i] += 1;
            }
        }
    }
    let per = |v: f64, n: usize| if n == 0 { f64::NAN } else { v / n as f64 };
    lens.iter()
        .enumerate()
        .map(|(i, &len)| PrefixPoint {
            len,
            accuracy: per(right[i] as f64, count[i]),
            confidence: per(conf[i], count[i]),
            sequences: count[i],
        })
        .collect()
}

/// exp(mean next-token loss) per domain under `routing` (NaN for a domain with no real
/// target). For a model without a domain classifier only [`Routing::Model`] means anything;
/// the others force experts by label and need at least as many experts as domains.
pub fn domain_perplexity(
    model: &moe_lm::Params<f32>,
    data: &Batches,
    n_domains: usize,
    routing: Routing,
    batch_size: usize,
) -> Vec<f64> {
    let n_experts = model.config.n_experts;
    let mut loss = vec![0.0; n_domains];
    let mut count = vec![0usize; n_domains];
    for rows in in_order(data, batch_size) {
        let batch = data.batch(&rows);
        let (bsz, seq) = batch.ids.dim();
        let labels = &batch.labels;
        let run = |assigned: Option<Vec<Option<usize>>>| {
            let route = Route { intervention: None, assigned: assigned.as_deref() };
            moe_lm::routed(model, batch.ids.view(), batch.targets.view(), Some(labels), route).token_loss
        };
        let token_loss: Array2<f64> = match routing {
            Routing::Model => run(None),
            Routing::True => run(Some(labels.iter().map(|&l| Some(l % n_experts)).collect())),
            Routing::Wrong => run(Some(labels.iter().map(|&l| Some((l + 1) % n_domains % n_experts)).collect())),
            Routing::Prefix => {
                // Each position takes the loss of the expert its prefix picks: one pass per
                // expert that some prefix in the batch picks.
                let z = prefix_router_logits(model, batch.ids.view());
                let pick = Array2::from_shape_fn((bsz, seq), |(b, t)| {
                    crate::engine::losses::cross_entropy::argmax(z.slice(s![b, t, ..]))
                });
                let mut out = Array2::<f64>::zeros((bsz, seq));
                let mut experts: Vec<usize> = pick.iter().copied().collect();
                experts.sort_unstable();
                experts.dedup();
                for e in experts {
                    let l = run(Some(vec![Some(e); bsz]));
                    for ((o, &p), &v) in out.iter_mut().zip(&pick).zip(&l) {
                        if p == e {
                            *o = v;
                        }
                    }
                }
                out
            }
        };
        for (b, &label) in labels.iter().enumerate() {
            for t in 0..seq {
                if batch.mask[[b, t]] == 1 {
                    loss[label] += token_loss[[b, t]];
                    count[label] += 1;
                }
            }
        }
    }
    loss.iter().zip(&count).map(|(&l, &n)| if n == 0 { f64::NAN } else { (l / n as f64).exp() }).collect()
}
