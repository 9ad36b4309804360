//! Batches of token sequences for language models: padding to one length, the padding mask,
//! next-token targets, a label per sequence, seeded shuffling and optional balanced sampling.
//!
//! One batch of B sequences, padded to T = `max_len` positions:
//! ```text
//!   sequence  t₀ t₁ t₂ t₃                 (4 tokens)
//!   ids       t₀ t₁ t₂ ·  ·  ·            what the model reads  (· = pad id)
//!   targets   t₁ t₂ t₃ ·  ·  ·            what it must predict (pad: ignored by the loss)
//!   mask      1  1  1  0  0  0            1 = real token, 0 = padding (attention keys, metrics)
//! ```
//! A sequence longer than T + 1 tokens is cut to its first T + 1 (and counted in
//! [`Batches::truncated`]). A sequence of fewer than 2 tokens has nothing to predict and is
//! rejected when the batches are built.
//!
//! The order of sequences is drawn once per epoch from the caller's seeded RNG; the iterator
//! then allocates nothing per batch beyond the batch's own three arrays and its label list.

use crate::error::{Error, Result};
use ndarray::Array2;
use rand::seq::SliceRandom;

/// One batch: ids, targets and mask [batch, max_len], and each sequence's label (its domain).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Array2<usize>,
    pub targets: Array2<usize>,
    /// 1 = real token, 0 = padding.
    pub mask: Array2<u8>,
    pub labels: Vec<usize>,
    /// Which sequences (indices into the data set) are in the batch, in order.
    pub rows: Vec<usize>,
}

impl Batch {
    /// Real (non-padding) positions in the batch: the tokens the loss is averaged over.
    pub fn n_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m == 1).count()
    }
}

/// How to order an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Every sequence once, in a random order.
    Shuffled,
    /// Every label equally often: each label's sequences are shuffled and cycled until every
    /// label has as many as the largest one, then the labels are interleaved, so each batch
    /// holds about the same number of each. (Oversampling: small domains repeat within an epoch.)
    Balanced,
    /// Every sequence once, in data-set order (validation).
    InOrder,
}

/// Token sequences with a label each, ready to be cut into padded batches.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    seqs: &'a [Vec<usize>],
    labels: &'a [usize],
    max_len: usize,
    pad_id: usize,
    batch_size: usize,
    /// Sequences longer than max_len + 1 tokens (cut to fit).
    pub truncated: usize,
}

impl<'a> Batches<'a> {
    /// Checks the inputs: as many labels as sequences, every sequence at least 2 tokens,
    /// max_len and batch_size ≥ 1, and no real token equal to the padding id.
    pub fn new(
        seqs: &'a [Vec<usize>],
        labels: &'a [usize],
        max_len: usize,
        pad_id: usize,
        batch_size: usize,
    ) -> Result<Self> {
        if seqs.len() != labels.len() {
            return Err(Error::bad_value("labels", labels.len(), &format!("need one per sequence ({})", seqs.len())));
        }
        if max_len == 0 {
            return Err(Error::bad_value("max_len", 0, "must be at least 1"));
        }
        if batch_size == 0 {
            return Err(Error::bad_value("batch_size", 0, "must be at least 1"));
        }
        if let Some(i) = seqs.iter().position(|s| s.len() < 2) {
            return Err(Error::bad_value(
                &format!("sequence {i}"),
                format!("{} tokens", seqs[i].len()),
                "needs at least 2 tokens (one to read, one to predict)",
            ));
        }
        if let Some(i) = seqs.iter().position(|s| s.contains(&pad_id)) {
            return Err(Error::bad_value(
                &format!("sequence {i}"),
                format!("contains the padding id {pad_id}"),
                "a real token must never equal the padding id",
            ));
        }
        let truncated = seqs.iter().filter(|s| s.len() > max_len + 1).count();
        Ok(Batches { seqs, labels, max_len, pad_id, batch_size, truncated })
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Sequences per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// How many labels there are: the largest + 1 (0 with no sequence).
    pub fn n_labels(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m + 1)
    }

    /// The largest token id in any sequence (None with no sequence).
    pub fn max_token(&self) -> Option<usize> {
        self.seqs.iter().flat_map(|s| s.iter().copied()).max()
    }

    /// Sequences in one epoch: every one once, or with `balanced` sampling as many of each
    /// label as the largest label has ([`Sampling::Balanced`]).
    pub fn epoch_len(&self, balanced: bool) -> usize {
        if !balanced {
            return self.len();
        }
        let mut counts = vec![0usize; self.n_labels()];
        for &l in self.labels {
            counts[l] += 1;
        }
        counts.iter().filter(|&&c| c > 0).count() * counts.iter().copied().max().unwrap_or(0)
    }

    /// The order of one epoch's sequences.
    pub fn order(&self, sampling: Sampling, rng: &mut impl rand::Rng) -> Vec<usize> {
        match sampling {
            Sampling::InOrder => (0..self.len()).collect(),
            Sampling::Shuffled => {
                let mut order: Vec<usize> = (0..self.len()).collect();
                order.shuffle(rng);
                order
            }
            Sampling::Balanced => {
                let n_labels = self.labels.iter().max().map_or(0, |&m| m + 1);
                let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); n_labels];
                for (i, &l) in self.labels.iter().enumerate() {
                    by_label[l].push(i);
                }
                by_label.retain(|v| !v.is_empty());
                let most = by_label.iter().map(Vec::len).max().unwrap_or(0);
                for rows in &mut by_label {
                    rows.shuffle(rng);
                    let base = rows.clone();
                    while rows.len() < most {
                        let take = (most - rows.len()).min(base.len());
                        rows.extend_from_slice(&base[..take]);
                    }
                }
                // Interleave: the k-th of every label, for k = 0, 1, …
                (0..most).flat_map(|k| by_label.iter().map(move |rows| rows[k])).collect()
            }
        }
    }

    /// The batch made of sequences `rows`, padded to max_len.
    pub fn batch(&self, rows: &[usize]) -> Batch {
        let (b, t) = (rows.len(), self.max_len);
        let mut ids = Array2::from_elem((b, t), self.pad_id);
        let mut targets = Array2::from_elem((b, t), self.pad_id);
        let mut mask = Array2::zeros((b, t));
        for (r, &i) in rows.iter().enumerate() {
            let s = &self.seqs[i];
            let n = (s.len() - 1).min(t);
            for p in 0..n {
                ids[[r, p]] = s[p];
                targets[[r, p]] = s[p + 1];
                mask[[r, p]] = 1;
            }
        }
        Batch { ids, targets, mask, labels: rows.iter().map(|&i| self.labels[i]).collect(), rows: rows.to_vec() }
    }

    /// One epoch's batches, in `order` (from [`Batches::order`]); the last may be smaller.
    pub fn iter<'b>(&'b self, order: &'b [usize]) -> impl Iterator<Item = Batch> + 'b {
        order.chunks(self.batch_size).map(move |rows| self.batch(rows))
    }
}

/// A seeded train/validation split of sequences, stratified by label: within each label, a
/// shuffled `val_fraction` of its sequences (rounded, at least one when the label has two or
/// more) goes to validation, so every domain is held out in proportion. Returns the training
/// and validation indices, each sorted.
pub fn split_by_label(
    labels: &[usize],
    val_fraction: f64,
    rng: &mut impl rand::Rng,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(val_fraction > 0.0 && val_fraction < 1.0) {
        return Err(Error::bad_value("val_fraction", val_fraction, "must be in (0, 1)"));
    }
    let n_labels = labels.iter().max().map_or(0, |&m| m + 1);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for label in 0..n_labels {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == label).collect();
        rows.shuffle(rng);
        let n_val = ((rows.len() as f64 * val_fraction).round() as usize).max(usize::from(rows.len() >= 2));
        val.extend_from_slice(&rows[..n_val.min(rows.len())]);
        train.extend_from_slice(&rows[n_val.min(rows.len())..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}
