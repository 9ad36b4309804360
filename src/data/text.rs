//! Text for language models: a built-in corpus, and token streams cut into training windows.
//!
//! A causal LM learns "next token given the ones before", so one window of `seq + 1` tokens
//! gives `seq` training positions at once:
//! ```text
//!   tokens   t₀ t₁ t₂ … t_seq
//!   ids      t₀ t₁ … t_{seq−1}        (what the model reads)
//!   targets  t₁ t₂ … t_seq            (what it must predict at each position)
//! ```

use ndarray::Array2;
use rand::seq::SliceRandom;

/// The built-in corpus: the first three chapters of tinymoe's own book (about 75 KB of
/// English prose, maths and Rust). A model trained on it learns to write like its textbook.
pub fn builtin() -> String {
    [
        include_str!("../../notebooks-md/01-arrays-shapes-linear.md"),
        include_str!("../../notebooks-md/02-activations-softmax-cross-entropy-gradcheck.md"),
        include_str!("../../notebooks-md/03-optimisers-clipping-schedules-groups.md"),
    ]
    .join("\n")
}

/// Training windows over one token stream: `ids` and `targets`, both [n_windows, seq].
#[derive(Debug, Clone)]
pub struct Windows {
    pub ids: Array2<usize>,
    pub targets: Array2<usize>,
}

impl Windows {
    /// Non-overlapping windows of `seq + 1` tokens (consecutive windows share one token: the
    /// last target of one is the first id of the next). A tail shorter than a window is dropped.
    pub fn new(tokens: &[usize], seq: usize) -> Windows {
        assert!(seq > 0, "windows: seq must be ≥ 1");
        let n = tokens.len().saturating_sub(1) / seq;
        let ids = Array2::from_shape_fn((n, seq), |(w, t)| tokens[w * seq + t]);
        let targets = Array2::from_shape_fn((n, seq), |(w, t)| tokens[w * seq + t + 1]);
        Windows { ids, targets }
    }

    pub fn len(&self) -> usize {
        self.ids.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The windows at `rows`, in that order: one batch.
    pub fn select(&self, rows: &[usize]) -> Windows {
        Windows { ids: self.ids.select(ndarray::Axis(0), rows), targets: self.targets.select(ndarray::Axis(0), rows) }
    }

    /// A seeded random order of the windows, for one epoch.
    pub fn shuffled_order(&self, rng: &mut impl rand::Rng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        order
    }
}

/// Splits a token stream into training and validation parts: the last `val_fraction` of the
/// stream is held out, as one contiguous stretch, so no validation text is also trained on.
pub fn split(tokens: &[usize], val_fraction: f64) -> (&[usize], &[usize]) {
    let n_val = ((tokens.len() as f64) * val_fraction).round() as usize;
    tokens.split_at(tokens.len().saturating_sub(n_val))
}

/// Texts with one class label each — a topic, a sentiment, a domain: `samples[i] = (text,
/// label)` with label < `labels.len()`. Real corpora ([`crate::data::real_text`]) and the
/// synthetic ones ([`crate::data::corpora::dataset`]) both load into it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledText {
    pub samples: Vec<(String, usize)>,
    pub labels: Vec<String>,
}

impl LabelledText {
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    /// How many samples carry each label: [labels.len()].
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for &(_, label) in &self.samples {
            counts[label] += 1;
        }
        counts
    }
}
