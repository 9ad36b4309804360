//! The synthetic corpora: deterministic by seed, sane lengths, correct arithmetic, varied
//! enough not to be memorised (diversity floors), overlapping vocabularies where E3 needs
//! them, balanced sentiment labels, and E6's features learnable but not trivial.
//!
//! Measured with seeds 1 (reference) and 2 (fresh), 1,000 samples each (`tinymoe data stats`):
//! no domain has a duplicate sample, and 66–91 % of a fresh seed's 8-grams are unseen.
//! The floors below sit a few points under those figures.

use std::collections::BTreeSet;
use tinymoe::data::corpora::{self, stats, Domain, Sentiment};

// ---------------------------------------------------------------------------------------
// Determinism and shape

#[test]
fn same_seed_same_samples_other_seed_other_samples() {
    for d in Domain::ALL {
        let a = corpora::generate(d, 50, 7);
        assert_eq!(a, corpora::generate(d, 50, 7), "{d}: same seed, same samples");
        let b = corpora::generate(d, 50, 8);
        let shared = a.iter().filter(|s| b.contains(s)).count();
        assert_eq!(shared, 0, "{d}: seeds 7 and 8 share {shared} of 50 samples");
    }
}

#[test]
fn a_shorter_corpus_is_a_prefix_of_a_longer_one() {
    for d in Domain::ALL {
        let long = corpora::generate(d, 40, 3);
        assert_eq!(corpora::generate(d, 15, 3), long[..15], "{d}");
    }
}

#[test]
fn domains_do_not_share_draws() {
    // Same seed, different domains: different streams, so no sample repeats across domains.
    let all: Vec<String> = Domain::ALL.iter().flat_map(|&d| corpora::generate(d, 20, 1)).collect();
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
}

#[test]
fn every_domain_gives_samples_of_sane_length() {
    for d in Domain::ALL {
        let samples = corpora::generate(d, 300, 11);
        assert_eq!(samples.len(), 300);
        let in_window = samples.iter().filter(|s| (128..=512).contains(&s.len())).count();
        for s in &samples {
            assert!(s.len() >= 60 && s.len() <= 600, "{d}: {} bytes: {s:?}", s.len());
            assert!(!s.contains("{") || d == Domain::Code, "{d}: an unfilled slot in {s:?}");
            assert!(!s.contains("  ") || d == Domain::Code, "{d}: a double space in {s:?}");
        }
        assert!(in_window >= 285, "{d}: only {in_window} of 300 samples are 128–512 bytes");
    }
}

#[test]
fn corpus_labels_every_sample_with_its_domain() {
    let c = corpora::corpus(&Domain::E3, 10, 5);
    assert_eq!(c.len(), 40);
    for (i, s) in c.iter().enumerate() {
        assert_eq!(s.domain, Domain::E3[i / 10]);
        assert_eq!(s.text, corpora::generate(s.domain, 10, 5)[i % 10]);
    }
}

#[test]
fn domains_parse_by_name_and_unknown_names_list_the_choices() {
    for d in Domain::ALL {
        assert_eq!(d.name().parse::<Domain>().unwrap(), d);
        assert_eq!(d.name().to_uppercase().parse::<Domain>().unwrap(), d);
        assert_eq!(Domain::ALL[d.index()], d);
    }
    let err = "poetry".parse::<Domain>().unwrap_err().to_string();
    assert!(err.contains("\"poetry\""), "{err}");
    for d in Domain::ALL {
        assert!(err.contains(d.name()), "{err} lists {d}");
    }
}

// ---------------------------------------------------------------------------------------
// Code looks like code

#[test]
fn code_samples_define_something_and_balance_their_brackets() {
    for s in corpora::generate(Domain::Code, 300, 2) {
        assert!(s.contains("def ") || s.contains("class "), "{s}");
        for (open, close) in [('(', ')'), ('[', ']'), ('{', '}')] {
            let depth = s.chars().fold(0i32, |d, c| d + i32::from(c == open) - i32::from(c == close));
            assert_eq!(depth, 0, "unbalanced {open}{close} in:\n{s}");
        }
        for line in s.lines() {
            let indent = line.len() - line.trim_start().len();
            assert_eq!(indent % 4, 0, "indent of 4s: {line:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Math: every chain of equalities holds

/// An exact rational p/q (q > 0), enough for the integers and fractions math samples use.
type Rational = (i128, i128);

fn reduce((p, q): Rational) -> Rational {
    fn gcd(a: i128, b: i128) -> i128 {
        if b == 0 {
            a.abs()
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(p, q).max(1) * q.signum();
    (p / g, q / g)
}

/// Recursive descent over `expr := term (± term)*`, `term := factor ((×|*|/|÷) factor)*`,
/// `factor := -factor | integer | (expr)`. None if `s` is not a whole expression.
fn eval(s: &str) -> Option<Rational> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let v = expr(&chars, &mut pos)?;
    (pos == chars.len()).then_some(v)
}

fn expr(c: &[char], pos: &mut usize) -> Option<Rational> {
    let mut v = term(c, pos)?;
    while let Some(&op) = c.get(*pos).filter(|&&ch| ch == '+' || ch == '-') {
        *pos += 1;
        let (p, q) = term(c, pos)?;
        let sign = if op == '+' { 1 } else { -1 };
        v = reduce((v.0 * q + sign * p * v.1, v.1 * q));
    }
    Some(v)
}

fn term(c: &[char], pos: &mut usize) -> Option<Rational> {
    let mut v = factor(c, pos)?;
    while let Some(&op) = c.get(*pos).filter(|&&ch| matches!(ch, '×' | '*' | '/' | '÷')) {
        *pos += 1;
        let (p, q) = factor(c, pos)?;
        v = if op == '×' || op == '*' {
            reduce((v.0 * p, v.1 * q))
        } else {
            if p == 0 {
                return None;
            }
            reduce((v.0 * q, v.1 * p))
        };
    }
    Some(v)
}

fn factor(c: &[char], pos: &mut usize) -> Option<Rational> {
    match c.get(*pos)? {
        '-' => {
            *pos += 1;
            factor(c, pos).map(|(p, q)| (-p, q))
        }
        '(' => {
            *pos += 1;
            let v = expr(c, pos)?;
            (c.get(*pos) == Some(&')')).then(|| *pos += 1)?;
            Some(v)
        }
        d if d.is_ascii_digit() => {
            let start = *pos;
            while c.get(*pos).is_some_and(char::is_ascii_digit) {
                *pos += 1;
            }
            let n: String = c[start..*pos].iter().collect();
            Some((n.parse().ok()?, 1))
        }
        _ => None,
    }
}

/// Every maximal run of arithmetic characters that holds `=` and whose sides all parse:
/// (the run, whether all sides are equal). A run cut off by a letter (`3x + 7 = 22` gives
/// `+ 7 = 22`, `x - 12 = 0` gives `- 12 = 0`) starts with a spaced operator and is skipped:
/// the generator writes a negative number with no space (`-12`).
fn equation_chains(text: &str) -> Vec<(String, bool)> {
    let arithmetic = |c: char| c.is_ascii_digit() || " +-×*/÷=()".contains(c);
    let mut out = Vec::new();
    for run in text.split(|c: char| !arithmetic(c)) {
        if !run.contains('=') {
            continue;
        }
        let run = run.trim();
        if run.starts_with('+') || run.starts_with("- ") {
            continue;
        }
        let sides: Vec<&str> = run.split('=').map(str::trim).filter(|s| !s.is_empty()).collect();
        let values: Option<Vec<Rational>> = sides.iter().map(|s| eval(s)).collect();
        if let Some(values) = values.filter(|v| v.len() >= 2) {
            out.push((run.trim().to_string(), values.windows(2).all(|w| w[0] == w[1])));
        }
    }
    out
}

#[test]
fn the_equation_checker_catches_wrong_arithmetic() {
    assert_eq!(
        equation_chains("So 2 + 3 × 4 = 14, and (2 + 3) × 4 = 20."),
        [("2 + 3 × 4 = 14".into(), true), ("(2 + 3) × 4 = 20".into(), true)]
    );
    assert_eq!(
        equation_chains("Then 7 - 9 = -2 and 3 × (-2) = 6."),
        [("7 - 9 = -2".into(), true), ("3 × (-2) = 6".into(), false)]
    );
    assert_eq!(equation_chains("1/4 + 2/4 = 3/4 = 6/8"), [("1/4 + 2/4 = 3/4 = 6/8".into(), true)]);
    assert!(equation_chains("Solve 3x + 7 = 22.").is_empty(), "a side with a variable is skipped");
    assert!(equation_chains("Solve x^2 - 4x - 12 = 0.").is_empty(), "so is one cut off after a variable");
}

#[test]
fn math_samples_have_correct_arithmetic() {
    let samples = corpora::generate(Domain::Math, 400, 9);
    let mut checked = 0;
    for s in &samples {
        for (chain, ok) in equation_chains(s) {
            assert!(ok, "wrong arithmetic {chain:?} in:\n{s}");
            checked += 1;
        }
    }
    // About 4 checkable chains per sample; every problem kind prints at least one.
    println!("{checked} equations checked in {} samples", samples.len());
    assert!(checked >= 2 * samples.len(), "only {checked} equations checked in {} samples", samples.len());
}

// ---------------------------------------------------------------------------------------
// Diversity floors (seeds 1 and 2, n = 1,000; measured figures in the comments)

#[test]
fn no_domain_can_be_memorised_in_one_epoch() {
    // (domain, floor on the unseen-8-gram share, measured)
    let floors = [
        (Domain::Code, 0.60),       // 0.660
        (Domain::Math, 0.65),       // 0.706
        (Domain::Story, 0.85),      // 0.907
        (Domain::Science, 0.78),    // 0.833
        (Domain::Psychology, 0.63), // 0.693
        (Domain::History, 0.80),    // 0.861
        (Domain::Medicine, 0.68),   // 0.733
        (Domain::Business, 0.80),   // 0.855
        (Domain::Sentiment, 0.78),  // 0.842
    ];
    let mut report = Vec::new();
    for (d, floor) in floors {
        let s = stats::diversity(d, 1000, 1, 2);
        report.push(format!("{d}: duplicates {:.4}, unseen 8-grams {:.3}", s.duplicate_share, s.unseen_8gram_share));
        assert!(s.duplicate_share <= 0.002, "{d}: {:.4} of samples are duplicates (floor 0.2 %)", s.duplicate_share);
        assert!(s.unseen_8gram_share >= floor, "{d}: unseen 8-grams {:.3} < floor {floor}", s.unseen_8gram_share);
        assert!(s.vocab >= 100, "{d}: vocabulary of {} words", s.vocab);
    }
    println!("{}", report.join("\n"));
}

#[test]
fn diversity_figures_on_hand_made_samples() {
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    assert_eq!(stats::duplicate_share(&s(&["a b", "a b", "c", "a b"])), 0.5);
    assert_eq!(stats::duplicate_share(&[]), 0.0);
    // Reference bigrams: (a b) (b c). Fresh: (a b) (b d) (x y): two of three unseen.
    let share = stats::unseen_ngram_share(&s(&["a b c"]), &s(&["a b d", "x y"]), 2);
    assert!((share - 2.0 / 3.0).abs() < 1e-12, "{share}");
    // Vocabulary: letters only, lower-case words; names (capitalised) and numbers dropped.
    let v = stats::vocabulary(&s(&["The trial, a trial of 12 Patients in Lyon.", "trial-based"]));
    assert_eq!(v, ["a", "based", "in", "of", "trial"].iter().map(|w| w.to_string()).collect());
    assert_eq!(stats::vocabulary_overlap(&v, &v), 1.0);
}

// ---------------------------------------------------------------------------------------
// Overlap between domains (E3 needs psychology ~ medicine, history ~ business)

#[test]
fn related_domains_share_more_vocabulary() {
    let vocab = |d: Domain| stats::vocabulary(&corpora::generate(d, 1000, 1));
    let overlap = |a: Domain, b: Domain| stats::vocabulary_overlap(&vocab(a), &vocab(b));
    let psy_med = overlap(Domain::Psychology, Domain::Medicine); // measured 0.220
    let his_bus = overlap(Domain::History, Domain::Business); // measured 0.180
    let code_story = overlap(Domain::Code, Domain::Story); // measured 0.035
    assert!(psy_med >= 0.17, "psychology–medicine overlap {psy_med:.3}");
    assert!(his_bus >= 0.14, "history–business overlap {his_bus:.3}");
    assert!(psy_med > 2.0 * code_story && his_bus > 2.0 * code_story, "{psy_med} {his_bus} vs {code_story}");
    // Each E3 domain's nearest E3 neighbour is its partner.
    for (d, partner) in [
        (Domain::Psychology, Domain::Medicine),
        (Domain::Medicine, Domain::Psychology),
        (Domain::History, Domain::Business),
        (Domain::Business, Domain::History),
    ] {
        let with_partner = overlap(d, partner);
        for other in Domain::E3.into_iter().filter(|&o| o != d && o != partner) {
            let o = overlap(d, other);
            assert!(with_partner > 1.5 * o, "{d}: {partner} {with_partner:.3} vs {other} {o:.3}");
        }
    }
    // And the shared words are the ones the fields really share.
    let shared: BTreeSet<String> = vocab(Domain::Psychology).intersection(&vocab(Domain::Medicine)).cloned().collect();
    for w in ["patients", "symptoms", "anxiety", "treatment", "trial", "cognitive", "placebo"] {
        assert!(shared.contains(w), "psychology and medicine share {w:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Sentiment text and E6 features

#[test]
fn sentiment_labels_are_balanced_and_texts_match_generate() {
    let n = 1000;
    let texts = corpora::sentiment_texts(n, 4);
    for prefix in [3, 10, 101, n] {
        for class in Sentiment::ALL {
            let count = texts[..prefix].iter().filter(|t| t.label == class).count() as f64;
            assert!((count - prefix as f64 / 3.0).abs() <= 1.0, "{}: {count} of {prefix}", class.name());
        }
    }
    let plain = corpora::generate(Domain::Sentiment, n, 4);
    assert!(texts.iter().zip(&plain).all(|(t, p)| &t.text == p));
    assert_eq!(corpora::sentiment_texts(n, 4), texts, "deterministic by seed");
}

#[test]
fn sentiment_verdicts_follow_the_label() {
    // A loose sanity check, not a classifier: verdict words appear in their own class more.
    let texts = corpora::sentiment_texts(900, 6);
    let rate = |class: Sentiment, words: &[&str]| {
        let of_class: Vec<_> = texts.iter().filter(|t| t.label == class).collect();
        let hits = of_class.iter().filter(|t| words.iter().any(|w| t.text.contains(w))).count();
        hits as f64 / of_class.len() as f64
    };
    let pos = ["excellent", "great", "superb", "fantastic", "wonderful", "Highly recommended", "Worth every penny"];
    let neg = ["terrible", "awful", "poor", "disappointing", "Avoid", "Never again", "refund"];
    assert!(rate(Sentiment::Positive, &pos) > rate(Sentiment::Negative, &pos) + 0.2);
    assert!(rate(Sentiment::Negative, &neg) > rate(Sentiment::Positive, &neg) + 0.2);
}

#[test]
fn sentiment_features_have_the_documented_shape_and_structure() {
    let n = 3000;
    let data = corpora::sentiment_features(n, 1);
    assert_eq!(data.x.dim(), (n, 20));
    assert_eq!(data.classes, 3);
    assert!(data.x.iter().all(|v| v.is_finite()));
    for class in 0..3 {
        assert_eq!(data.y.iter().filter(|&&y| y == class).count(), n / 3);
    }
    let again = corpora::sentiment_features(n, 1);
    assert_eq!(again.x, data.x);
    assert_eq!(again.y, data.y);
    assert_ne!(corpora::sentiment_features(n, 2).x, data.x);

    // Class means: polarity (dims 0..4) is a·(1 − 2·0.3) = 0.44 for positive, −0.44 for
    // negative, 0 for neutral; subjectivity (dims 6..9) is −0.9 for neutral, +0.9 otherwise.
    let mean = |class: usize, dims: std::ops::Range<usize>| {
        let rows: Vec<usize> = (0..n).filter(|&i| data.y[i] == class).collect();
        let total: f32 =
            rows.iter().flat_map(|&i| dims.clone().map(move |d| (i, d))).map(|(i, d)| data.x[[i, d]]).sum();
        total / (rows.len() * dims.len()) as f32
    };
    let (neg, neu, pos) = (0, 1, 2);
    assert!((mean(pos, 0..4) - 0.44).abs() < 0.08 && (mean(neg, 0..4) + 0.44).abs() < 0.08);
    assert!(mean(neu, 0..4).abs() < 0.08);
    assert!(mean(neu, 6..9) < -0.75 && mean(pos, 6..9) > 0.75 && mean(neg, 6..9) > 0.75);
    assert!(mean(pos, 12..20).abs() < 0.06, "noise dims carry no class signal");

    // Learnable but not trivial: classifying by the nearest class mean does well above
    // chance (1/3) but far from perfect (the Bayes rate is about 87 %).
    let centroids: Vec<Vec<f32>> = (0..3).map(|c| (0..20).map(|d| mean(c, d..d + 1)).collect()).collect();
    let test = corpora::sentiment_features(1500, 99);
    let correct = (0..test.len())
        .filter(|&i| {
            let dist = |c: usize| (0..20).map(|d| (test.x[[i, d]] - centroids[c][d]).powi(2)).sum::<f32>();
            (0..3).min_by(|&a, &b| dist(a).total_cmp(&dist(b))) == Some(test.y[i])
        })
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    println!("nearest-mean accuracy {accuracy:.3}");
    assert!((0.5..0.8).contains(&accuracy), "nearest-mean accuracy {accuracy:.3}");
}

#[test]
fn synthetic_corpora_load_into_the_same_type_as_real_text() {
    let d = corpora::dataset(&Domain::E3, 7, 2);
    assert_eq!(d.labels, vec!["psychology", "history", "medicine", "business"]);
    assert_eq!(d.counts(), vec![7, 7, 7, 7]);
    assert_eq!(d.samples[7].0, corpora::generate(Domain::History, 7, 2)[0]);
    let s = corpora::sentiment_dataset(9, 1);
    assert_eq!(s.labels, tinymoe::data::real_text::SENTIMENTS.map(String::from).to_vec());
    assert_eq!(s.counts(), vec![3, 3, 3]);
    let reviews = corpora::sentiment_texts(9, 1);
    for ((text, label), r) in s.samples.iter().zip(&reviews) {
        assert_eq!((text, *label), (&r.text, r.label as usize));
    }
}
