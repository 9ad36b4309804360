//! Synthetic domain corpora, deterministic by seed: code (Python-like), math (equations and
//! worked calculations), story, science, psychology, history, medicine, business, cooking
//! (recipes) and sports (match reports), and 3-class sentiment (reviews as text, and E6's
//! 20-dimensional features).
//!
//! ```text
//!   generate(Domain::Medicine, 3, 42)
//!   → ["A 61-year-old woman presented to the emergency department with fever and fatigue. …", …]
//! ```
//! Prose domains fill sentence templates with random slots ([`templates`]: names, numbers,
//! entities, alternatives) and compose an opening, body sentences in random order and a
//! closing; code and math are built by small generators (code needs matching names and
//! indentation, math needs correct arithmetic). Every domain has far more combinations than
//! any epoch can show: [`stats`] measures it (duplicate share, unseen 8-grams).
//!
//! Lengths: a sample is 128–512 bytes (prose, code and math aim at 200–420 and stop before
//! 512; sentiment reviews at 140–300), about 40–90 words, so with a subword tokeniser it
//! mostly fits E2's 128-token window; at one byte per token, about 300 bytes.
//!
//! Domains overlap in vocabulary the way real ones do ([`lexicon`]): psychology and medicine
//! share clinical words (patient, symptoms, anxiety, treatment, trial, cognitive), history
//! and business share dealings (treaty/contract, empire/market, merchants, trade goods).
//! E3 depends on that overlap.
//!
//! Determinism: each domain has its own ChaCha8 stream (stream = 1000 + domain index) under
//! the seed, so domains do not share draws, and `generate(d, n, s)` is the first n samples of
//! `generate(d, m, s)` for any m ≥ n.

mod business;
mod code;
mod cooking;
mod history;
pub mod lexicon;
mod math;
mod medicine;
mod psychology;
mod science;
pub mod sentiment;
pub mod sentiment_features;
mod sports;
pub mod stats;
mod story;
pub mod templates;

pub use sentiment::{Review, Sentiment};
pub use stats::{diversity, Diversity};

use crate::data::text::LabelledText;
use crate::data::Dataset;
use crate::error::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The corpus domains. Order is label order: `index()` is a domain's class id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Code,
    Math,
    Story,
    Science,
    Psychology,
    History,
    Medicine,
    Business,
    Sentiment,
    Cooking,
    Sports,
}

impl Domain {
    /// Every domain, in label order.
    pub const ALL: [Domain; 11] = [
        Domain::Code,
        Domain::Math,
        Domain::Story,
        Domain::Science,
        Domain::Psychology,
        Domain::History,
        Domain::Medicine,
        Domain::Business,
        Domain::Sentiment,
        Domain::Cooking,
        Domain::Sports,
    ];
    /// E2's four domains.
    pub const E2: [Domain; 4] = [Domain::Code, Domain::Math, Domain::Story, Domain::Science];
    /// E3's four overlapping domains.
    pub const E3: [Domain; 4] = [Domain::Psychology, Domain::History, Domain::Medicine, Domain::Business];
    /// E5's ten: the eight prose and code domains, and cooking and sports (added for E5).
    pub const E5: [Domain; 10] = [
        Domain::Code,
        Domain::Math,
        Domain::Story,
        Domain::Science,
        Domain::Psychology,
        Domain::History,
        Domain::Medicine,
        Domain::Business,
        Domain::Cooking,
        Domain::Sports,
    ];

    /// The label: position in [`Domain::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lower-case name the CLI takes.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Code => "code",
            Domain::Math => "math",
            Domain::Story => "story",
            Domain::Science => "science",
            Domain::Psychology => "psychology",
            Domain::History => "history",
            Domain::Medicine => "medicine",
            Domain::Business => "business",
            Domain::Sentiment => "sentiment",
            Domain::Cooking => "cooking",
            Domain::Sports => "sports",
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Domain {
    type Err = Error;
    /// A domain by name, case-insensitive; the error lists every name.
    fn from_str(s: &str) -> Result<Domain, Error> {
        let wanted = s.trim().to_ascii_lowercase();
        Domain::ALL.into_iter().find(|d| d.name() == wanted).ok_or_else(|| Error::Unknown {
            what: "domain".into(),
            name: s.into(),
            expected: Domain::ALL.map(Domain::name).join(", "),
        })
    }
}

/// One text and the domain it came from (the label a domain classifier learns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub text: String,
    pub domain: Domain,
}

/// The stream of `domain`'s generator under `seed`; the features use their own.
const STREAM_BASE: u64 = 1000;
const FEATURES_STREAM: u64 = 1100;

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// `n` samples of `domain` from `seed` (for sentiment: the review texts, labels dropped;
/// see [`sentiment_texts`]).
pub fn generate(domain: Domain, n: usize, seed: u64) -> Vec<String> {
    let mut rng = rng(seed, STREAM_BASE + domain.index() as u64);
    if domain == Domain::Sentiment {
        return sentiment::texts(n, &mut rng).into_iter().map(|t| t.text).collect();
    }
    (0..n).map(|_| one(domain, &mut rng)).collect()
}

/// One sample of a non-sentiment domain: aim at 200–420 bytes, never past 512 unless a
/// single sentence or snippet is.
fn one(domain: Domain, rng: &mut ChaCha8Rng) -> String {
    const MAX_BYTES: usize = 512;
    let target = rng.gen_range(200..=420);
    let prose = match domain {
        Domain::Code => return code::sample(rng, target, MAX_BYTES),
        Domain::Math => return math::sample(rng, target, MAX_BYTES),
        Domain::Story => &story::TEMPLATES,
        Domain::Science => &science::TEMPLATES,
        Domain::Psychology => &psychology::TEMPLATES,
        Domain::History => &history::TEMPLATES,
        Domain::Medicine => &medicine::TEMPLATES,
        Domain::Business => &business::TEMPLATES,
        Domain::Cooking => &cooking::TEMPLATES,
        Domain::Sports => &sports::TEMPLATES,
        Domain::Sentiment => unreachable!("sentiment is generated with its labels"),
    };
    templates::compose(prose, lexicon::SHARED, target, MAX_BYTES, rng)
}

/// `n_per_domain` labelled samples of each of `domains`, grouped by domain in the order
/// given (shuffle when batching). Each domain's samples equal `generate(domain, n, seed)`.
pub fn corpus(domains: &[Domain], n_per_domain: usize, seed: u64) -> Vec<Sample> {
    domains
        .iter()
        .flat_map(|&domain| generate(domain, n_per_domain, seed).into_iter().map(move |text| Sample { text, domain }))
        .collect()
}

/// The same samples as [`corpus`], as a [`LabelledText`] whose labels are the domain names in
/// the order given — the type the real corpora load into, so an experiment can take either.
pub fn dataset(domains: &[Domain], n_per_domain: usize, seed: u64) -> LabelledText {
    let labels = domains.iter().map(|d| d.name().to_string()).collect();
    let samples = domains
        .iter()
        .enumerate()
        .flat_map(|(label, &domain)| generate(domain, n_per_domain, seed).into_iter().map(move |text| (text, label)))
        .collect();
    LabelledText { samples, labels }
}

/// [`sentiment_texts`] as a [`LabelledText`]: labels negative, neutral, positive (0, 1, 2), the
/// same order as the real tweets of [`crate::data::real_text::load_tweets`].
pub fn sentiment_dataset(n: usize, seed: u64) -> LabelledText {
    let samples = sentiment_texts(n, seed).into_iter().map(|r| (r.text, r.label as usize)).collect();
    let labels = crate::data::real_text::SENTIMENTS.iter().map(|s| s.to_string()).collect();
    LabelledText { samples, labels }
}

/// `n` labelled reviews (negative / neutral / positive, balanced ±1), from `seed`. The texts
/// equal `generate(Domain::Sentiment, n, seed)`.
pub fn sentiment_texts(n: usize, seed: u64) -> Vec<Review> {
    sentiment::texts(n, &mut rng(seed, STREAM_BASE + Domain::Sentiment.index() as u64))
}

/// E6's features: x [n, 20], y in {0 negative, 1 neutral, 2 positive}, balanced ±1, from
/// `seed`. See [`sentiment_features`] for how they are built and how hard they are.
pub fn sentiment_features(n: usize, seed: u64) -> Dataset {
    sentiment_features::features(n, &mut rng(seed, FEATURES_STREAM))
}
