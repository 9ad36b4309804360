//! `tinymoe data show | stats` as a user meets them: samples with their tokens, the
//! diversity table, and one-line errors on bad input.

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe};
use tinymoe::data::corpora::{self, Domain};

#[test]
fn show_prints_n_samples_with_their_tokens() {
    let o = tinymoe(&["data", "show", "code", "--n", "3", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("── sample ").count(), 3, "{out}");
    assert_eq!(out.matches("\ntokens: ").count(), 3, "{out}");
    // The samples are the library's, for the same seed, and their bytes are listed.
    for s in corpora::generate(Domain::Code, 3, 1) {
        assert!(out.contains(&s), "{s} in {out}");
        assert!(out.contains(&format!("{} bytes", s.len())));
    }
    assert!(out.contains("d|e|f|␣"), "byte pieces, spaces shown as ␣: {out}");
}

#[test]
fn show_labels_sentiment_samples() {
    let o = tinymoe(&["data", "show", "sentiment", "--n", "6", "--seed", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for label in ["negative", "neutral", "positive"] {
        assert!(out.contains(&format!("label {label}")), "{out}");
    }
}

#[test]
fn unknown_domain_names_it_and_lists_the_choices() {
    let o = tinymoe(&["data", "show", "poetry"]);
    let mut needles = vec!["unknown domain \"poetry\""];
    needles.extend(Domain::ALL.iter().map(|d| d.name()));
    assert_clean_error(&o, &needles);
}

#[test]
fn unknown_tokenizer_is_a_clean_error() {
    let o = tinymoe(&["data", "show", "math", "--tokenizer", "morse"]);
    assert_clean_error(&o, &["morse"]);
}

#[test]
fn stats_prints_every_domain() {
    let o = tinymoe(&["data", "stats", "--n", "200"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("unseen 8-grams") && out.contains("duplicates"), "{out}");
    for d in Domain::ALL {
        let row = out.lines().find(|l| l.starts_with(d.name())).unwrap_or_else(|| panic!("no row for {d}: {out}"));
        assert_eq!(row.matches('%').count(), 2, "{row}");
    }
    assert!(out.contains("psychology–medicine"), "{out}");
}

#[test]
fn stats_with_no_samples_is_rejected() {
    let o = tinymoe(&["data", "stats", "--n", "0"]);
    assert_clean_error(&o, &["n = 0"]);
}
