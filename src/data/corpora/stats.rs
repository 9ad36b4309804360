//! How varied a corpus is: could a model memorise it in one epoch?
//!
//! Two figures per domain, from n samples under a reference seed A and n under a fresh
//! seed B:
//! ```text
//!   duplicate share   = (n − #distinct samples of A) / n
//!   unseen 8-gram share = #(8-grams of B not among A's 8-grams) / #(8-grams of B)
//! ```
//! The unit of an n-gram is the *whitespace token* (`text.split_whitespace()`, punctuation
//! left attached: "trial." ≠ "trial"), counted with multiplicity in B. A high unseen share
//! means a fresh sample keeps saying things the model has not read word for word.
//!
//! Vocabulary counts content words instead: runs of letters written in lower case (digits and
//! punctuation split words and are dropped; words with a capital, mostly names, are left
//! out), so "trial." and "trial" are one word, and the names every domain shares do not
//! hide how much two domains share in what they talk about. Overlap between two domains'
//! vocabularies is their Jaccard index |A ∩ B| / |A ∪ B|.

use super::{generate, Domain};
use std::collections::{BTreeSet, HashSet};

/// The diversity figures of one domain (see the module doc for the definitions).
#[derive(Debug, Clone, PartialEq)]
pub struct Diversity {
    pub domain: Domain,
    /// Samples per seed.
    pub n: usize,
    /// Mean sample length under seed A, in bytes and in whitespace tokens.
    pub mean_bytes: f64,
    pub mean_words: f64,
    /// Share of seed A's samples that repeat an earlier one.
    pub duplicate_share: f64,
    /// Share of seed B's whitespace 8-grams that never occur in seed A's samples.
    pub unseen_8gram_share: f64,
    /// Distinct content words (letters only, written in lower case) in seed A's samples.
    pub vocab: usize,
}

/// The figures of `domain` from `n` samples under `seed_a` and `n` under `seed_b`.
pub fn diversity(domain: Domain, n: usize, seed_a: u64, seed_b: u64) -> Diversity {
    let a = generate(domain, n, seed_a);
    let b = generate(domain, n, seed_b);
    let total_bytes: usize = a.iter().map(String::len).sum();
    let total_words: usize = a.iter().map(|s| s.split_whitespace().count()).sum();
    let denom = n.max(1) as f64;
    Diversity {
        domain,
        n,
        mean_bytes: total_bytes as f64 / denom,
        mean_words: total_words as f64 / denom,
        duplicate_share: duplicate_share(&a),
        unseen_8gram_share: unseen_ngram_share(&a, &b, 8),
        vocab: vocabulary(&a).len(),
    }
}

/// (n − #distinct) / n; 0 for no samples.
pub fn duplicate_share(samples: &[String]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let distinct: HashSet<&str> = samples.iter().map(String::as_str).collect();
    (samples.len() - distinct.len()) as f64 / samples.len() as f64
}

/// Share of `fresh`'s whitespace-token `order`-grams (with multiplicity) that occur nowhere
/// in `reference`. A sample shorter than `order` tokens has none; 0 if `fresh` has none.
pub fn unseen_ngram_share(reference: &[String], fresh: &[String], order: usize) -> f64 {
    assert!(order > 0, "unseen_ngram_share: order must be ≥ 1");
    let tokens = |samples: &[String]| -> Vec<Vec<String>> {
        samples.iter().map(|s| s.split_whitespace().map(str::to_string).collect()).collect()
    };
    let (reference, fresh) = (tokens(reference), tokens(fresh));
    let seen: HashSet<&[String]> = reference.iter().flat_map(|t| t.windows(order)).collect();
    let (mut total, mut unseen) = (0usize, 0usize);
    for gram in fresh.iter().flat_map(|t| t.windows(order)) {
        total += 1;
        unseen += usize::from(!seen.contains(gram));
    }
    if total == 0 {
        0.0
    } else {
        unseen as f64 / total as f64
    }
}

/// The distinct content words of `samples`: runs of letters written in lower case (digits,
/// punctuation and whitespace separate words and are dropped). A word with any capital
/// letter is left out, so names of people, places and firms (shared by every prose domain)
/// do not count, nor do sentence-initial words unless they also occur mid-sentence.
pub fn vocabulary(samples: &[String]) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for s in samples {
        for w in s.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            if !w.chars().any(char::is_uppercase) {
                words.insert(w.to_string());
            }
        }
    }
    words
}

/// Jaccard index |a ∩ b| / |a ∪ b| of two vocabularies; 0 if both are empty.
pub fn vocabulary_overlap(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let both = a.intersection(b).count();
    let either = a.len() + b.len() - both;
    if either == 0 {
        0.0
    } else {
        both as f64 / either as f64
    }
}
