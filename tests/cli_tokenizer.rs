//! `tinymoe tokenizer train | encode | compact` as a user meets them: files written and read
//! back, GPT-2's ids printed, and one-line errors naming the file or the value.

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::process::Output;

/// Exits 0, or fails the test showing stderr; returns stdout.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "exit {}; stderr: {}", o.status, stderr(&o));
    stdout(&o)
}

#[test]
fn help_lists_the_tokenizer_commands() {
    let out = ok(tinymoe(&["--help"]));
    assert!(out.contains("tokenizer"), "{out}");
    let out = ok(tinymoe(&["tokenizer", "--help"]));
    for cmd in ["train", "encode", "compact"] {
        assert!(out.contains(cmd), "tokenizer --help lists {cmd}: {out}");
    }
}

#[test]
fn train_on_the_builtin_text_then_encode_with_the_file() {
    let dir = tmp_dir("train");
    let file = dir.join("sub").join("tok.bpe"); // the folder is created
    let out = ok(tinymoe(&["tokenizer", "train", "--vocab-size", "300", "--out", file.to_str().unwrap()]));
    assert!(out.contains("learned 43 merges from the built-in text"), "{out}");
    assert!(out.contains("padding id 299"), "{out}");
    assert!(out.contains("256 ="), "the first merges are listed: {out}");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.starts_with("tinymoe-bpe v1\nsplit words\n"), "{saved}");
    assert_eq!(saved.lines().filter(|l| !l.starts_with('#')).count(), 2 + 43);

    let spec = format!("bpe:{}", file.display());
    let out = ok(tinymoe(&["tokenizer", "encode", "--tokenizer", &spec, "--text", "the the thé 😀"]));
    assert!(out.contains("vocab 300, padding id 299"), "{out}");
    assert!(out.contains("decode(encode(text)) == text: yes"), "{out}");
}

#[test]
fn train_on_a_file_with_no_split() {
    let dir = tmp_dir("file");
    let text = dir.join("corpus.txt");
    std::fs::write(&text, "aaabdaaabac").unwrap();
    let file = dir.join("tok.bpe");
    let out = ok(tinymoe(&[
        "tokenizer",
        "train",
        "--text",
        text.to_str().unwrap(),
        "--vocab-size",
        "1000",
        "--split",
        "none",
        "--out",
        file.to_str().unwrap(),
    ]));
    assert!(out.contains("learned 3 merges"), "{out}");
    assert!(out.contains("stopped early"), "{out}");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("split none\n") && saved.contains("258 = 256 + 257"), "{saved}");
}

#[test]
fn encode_prints_gpt2_ids_and_pieces() {
    let out = ok(tinymoe(&["tokenizer", "encode", "--tokenizer", "gpt2", "--text", "Hello world"]));
    assert!(out.contains("vocab 50257, padding id 50256"), "{out}");
    assert!(out.contains("11 bytes → 2 tokens"), "{out}");
    assert!(out.contains("ids:    15496 995\n"), "{out}");
    assert!(out.contains("pieces: Hello | ␣world\n"), "{out}");
    let out = ok(tinymoe(&["tokenizer", "encode", "--text", "Hi"]));
    assert!(out.contains("tokenizer bytes: vocab 256, padding id none") && out.contains("ids:    72 105"), "{out}");
}

#[test]
fn compact_vocabulary_from_the_command_line() {
    let dir = tmp_dir("compact");
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, "the cat sat on the mat").unwrap();
    let file = dir.join("vocab.compact");
    let out = ok(tinymoe(&[
        "tokenizer",
        "compact",
        "--tokenizer",
        "gpt2",
        "--text",
        corpus.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]));
    // "the", " cat", " sat", " on", " the", " mat": six distinct GPT-2 ids ("the" and " the"
    // differ: the space belongs to the word after it).
    assert!(out.contains("uses 6 of gpt2's 50257 ids; compact vocab 8"), "{out}");
    let spec = format!("compact:{}", file.display());
    let out = ok(tinymoe(&["tokenizer", "encode", "--tokenizer", &spec, "--text", "the mat sat"]));
    assert!(out.contains("vocab 8, padding id 0"), "{out}");
    assert!(out.contains("decode(encode(text)) == text: yes"), "{out}");
    let out = ok(tinymoe(&["tokenizer", "encode", "--tokenizer", &spec, "--text", "the dog"]));
    assert!(out.contains("<unk>") && out.contains("decode(encode(text)) == text: no"), "{out}");
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tmp_dir("errors");
    let out = dir.join("tok.bpe");
    let o = tinymoe(&["tokenizer", "train", "--vocab-size", "100", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["vocab_size = 100"]);
    let o = tinymoe(&["tokenizer", "train", "--text", "/no/such/corpus.txt", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["/no/such/corpus.txt"]);
    let o = tinymoe(&["tokenizer", "encode", "--tokenizer", "wordpiece", "--text", "x"]);
    assert_clean_error(&o, &["unknown tokenizer \"wordpiece\""]);
    assert!(stderr(&o).contains("bpe:FILE"), "{}", stderr(&o));

    let bad = dir.join("bad.bpe");
    std::fs::write(&bad, "tinymoe-bpe v1\nsplit words\n256 = 97 + 97\n257 = 97 + 999\n").unwrap();
    let o = tinymoe(&["tokenizer", "encode", "--tokenizer", &format!("bpe:{}", bad.display()), "--text", "x"]);
    assert_clean_error(&o, &[&format!("{}:4: merge 257 uses unknown id 999", bad.display())]);
}
