//! `tinymoe generate` on every language-model kind: an MoE LM's text comes with each token's
//! expert (`[eN]` tags when piped, ANSI colours with `--color always`), a domain-routed one also
//! with the classifier's belief as the text grows, `--expert N` forces (and range-checks) an
//! expert, and dense LM checkpoints still work as before.

mod common;

use common::cli::{assert_clean_error, s, stderr, stdout, tinymoe, tmp_dir};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A quick checkpoint of `train ARGS`, trained once per test binary.
fn trained(cell: &'static OnceLock<PathBuf>, name: &str, args: &[&str]) -> &'static str {
    let path = cell.get_or_init(|| {
        let dir = tmp_dir(name);
        let o = tinymoe(&[&["train"], args, &["--quick", "--threads", "1", "--out", s(&dir)]].concat());
        assert!(o.status.success(), "train {args:?}: {}", stderr(&o));
        dir.join("model.ckpt")
    });
    s(path)
}

fn token_moe() -> &'static str {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    trained(&CELL, "token", &["moe"])
}

fn domain_moe() -> &'static str {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    trained(&CELL, "domain", &["moe", "--routing", "domain"])
}

fn dense_lm() -> &'static str {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    trained(&CELL, "dense", &["lm"])
}

/// The text line of a piped MoE generation split into (expert, text) runs.
fn runs(text_line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for part in text_line.split("[e").skip(1) {
        let (e, text) = part.split_once(']').expect("a tag is [eN]");
        out.push((e.parse().expect("the tag's expert is a number"), text.to_string()));
    }
    out
}

#[test]
fn piped_moe_generation_tags_every_run_with_its_expert() {
    let ckpt = token_moe();
    let args = ["generate", "--checkpoint", ckpt, "--prompt", "The ", "--tokens", "30", "--seed", "4"];
    let o = tinymoe(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("experts: [e0]..[e3]"), "a legend first: {out}");
    let text = lines.next().unwrap();
    assert!(text.starts_with("[e"), "the text opens with a tag: {text}");
    let runs = runs(text);
    assert!(runs.iter().all(|(e, _)| *e < 4), "{text}");
    assert!(runs.windows(2).all(|w| w[0].0 != w[1].0), "a tag only where the expert changes: {text}");
    let plain: String = runs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(plain.starts_with("The "), "the prompt comes back: {plain}");
    assert!(!out.contains('\x1b'), "no ANSI codes when piped: {out:?}");
    assert!(!out.contains("domain classifier"), "token routing has no classifier: {out}");
    assert_eq!(out, stdout(&tinymoe(&args)), "same seed, same text and experts");
    assert!(stderr(&o).contains("30 tokens"), "{}", stderr(&o));
    // --model is the same flag.
    let same = tinymoe(&["generate", "--model", ckpt, "--prompt", "The ", "--tokens", "30", "--seed", "4"]);
    assert_eq!(out, stdout(&same));
}

#[test]
fn a_forced_expert_tags_the_whole_text_and_is_range_checked() {
    let ckpt = token_moe();
    let o = tinymoe(&["generate", "--model", ckpt, "--prompt", "x = ", "--tokens", "20", "--expert", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("forced to expert 2"), "{out}");
    let text = out.lines().nth(1).unwrap();
    assert_eq!(runs(text).len(), 1, "one run: {text}");
    assert!(text.starts_with("[e2]x = "), "{text}");
    assert_clean_error(
        &tinymoe(&["generate", "--model", ckpt, "--expert", "9"]),
        &["expert = 9", "0..=3", "4 experts", "model.ckpt"],
    );
}

#[test]
fn a_terminal_gets_colours_and_a_legend_instead_of_tags() {
    let o = tinymoe(&["generate", "--model", token_moe(), "--prompt", "The ", "--tokens", "20", "--color", "always"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\x1b[38;5;"), "colour codes: {out:?}");
    assert!(out.contains("■ e3"), "a legend entry per expert: {out:?}");
    assert!(!out.lines().nth(1).unwrap().contains("[e"), "no tags in colour mode: {out:?}");
    // Forced to one expert, the text is one run in expert 1's colour, its prompt underlined.
    let args =
        ["generate", "--model", token_moe(), "--prompt", "The ", "--tokens", "5", "--color", "always", "--expert", "1"];
    let out = stdout(&tinymoe(&args));
    assert!(out.lines().nth(1).unwrap().starts_with("\x1b[38;5;77m\x1b[4mThe \x1b[24m"), "{out:?}");
}

#[test]
fn a_domain_routed_model_reports_its_prediction_as_the_text_grows() {
    let ckpt = domain_moe();
    let o = tinymoe(&["generate", "--model", ckpt, "--prompt", "def load", "--tokens", "24", "--greedy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("domain classifier as the text grows"), "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("after")).collect();
    // 1, 2, 4, 8 (the prompt's end), 16 and 32 (the end) tokens.
    assert_eq!(rows.len(), 6, "{out}");
    assert!(rows[0].contains("after    1 token "), "{out}");
    assert!(rows[3].contains("(end of the prompt)") && rows[5].contains("(end)"), "{out}");
    for row in &rows {
        assert!(["code", "math", "story", "science"].iter().any(|d| row.contains(d)), "a domain name: {row}");
        let pct: f64 = row.split('%').next().unwrap().split_whitespace().last().unwrap().parse().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{row}");
    }
    // Sequence-level routing: the tags still show each token's expert.
    assert!(runs(out.lines().nth(1).unwrap()).iter().all(|(e, _)| *e < 4), "{out}");
}

#[test]
fn dense_checkpoints_still_generate_and_refuse_expert() {
    let ckpt = dense_lm();
    let o = tinymoe(&["generate", "--checkpoint", ckpt, "--prompt", "The ", "--tokens", "20", "--seed", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("The ") && !stdout(&o).contains("[e"), "{}", stdout(&o));
    assert!(stderr(&o).contains("KV cache"), "{}", stderr(&o));
    assert_clean_error(&tinymoe(&["generate", "--model", ckpt, "--expert", "1"]), &["expert = 1", "MoE LM"]);
}

#[test]
fn a_classifier_checkpoint_is_refused_naming_its_kind() {
    let dir = tmp_dir("classifier");
    let o = tinymoe(&["train", "--preset", "spirals-mlp", "--epochs", "1", "--threads", "1", "--out", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = dir.join("model.ckpt");
    assert_clean_error(
        &tinymoe(&["generate", "--model", s(&ckpt), "--tokens", "5"]),
        &["model.ckpt", "\"classifier\" checkpoint", "train lm", "train moe"],
    );
}
