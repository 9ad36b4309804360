//! Chapter 06's example runs, exits 0, and prints the facts its chapter quotes.
//!
//! The helpers are those of tests/examples.rs: the example binary is first brought up to date
//! with `cargo build --example NAME` in this test's profile and target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/examples/<name>, built (or found fresh) by cargo first.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps/");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => panic!("cannot tell the build profile from {}", profile_dir.display()),
    }
    if let Some(target_dir) = profile_dir.parent() {
        cargo.arg("--target-dir").arg(target_dir);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building example {name} failed ({status})");
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing after building it", bin.display());
    bin
}

/// Runs example `name`, asserts it exits 0, and returns its stdout.
fn run(name: &str) -> String {
    let out = Command::new(example_binary(name)).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_contains(out: &str, needle: &str) {
    assert!(out.contains(needle), "ch06 should print {needle:?}; it printed:\n{out}");
}

#[test]
fn ch06_builds_a_bpe_step_by_step_and_compares_it_with_gpt2() {
    let out = run("ch06_tokenisation");
    // Bytes and the hand-worked BPE.
    assert_contains(&out, "'😀' U+1F600 → UTF-8 [240, 159, 152, 128] (4 bytes)");
    assert_contains(&out, "merge 256 = a + a = \"aa\" (seen 4 times) → ZabdZabac");
    assert_contains(&out, "merge 257 = a + b = \"ab\" (seen 2 times) → ZYdZYac");
    assert_contains(&out, "merge 258 = Z + Y = \"aaab\" (seen 2 times) → XdXac");
    assert_contains(&out, "encode(\"aaabdaaabac\") = [258, 100, 258, 97, 99]");
    // The built-in text (the book's first chapters, which change as the book is edited, so only
    // the shape is pinned here): a word is cut into fewer pieces as merges are learned.
    assert_contains(&out, "0 merges (vocab  257): ␣ | g | r | a | d | i | e | n | t | s");
    let pieces: Vec<usize> =
        out.lines().filter(|l| l.contains(" merges (vocab ")).map(|l| l.matches(" | ").count() + 1).collect();
    assert_eq!(pieces.len(), 6, "six vocabulary sizes:\n{out}");
    assert!(pieces.windows(2).all(|w| w[1] <= w[0]), "more merges never mean more pieces: {pieces:?}");
    assert!(pieces[5] <= 2, "at vocab 1000, \" gradients\" is at most two tokens: {pieces:?}");
    // GPT-2's ids.
    assert_contains(&out, "gpt2 ids: [15496, 995, 11, 825, 277, 7, 87, 2599, 1441, 2124]");
    // Nothing unknown, exact round trips, a compact vocabulary, a file that loads back.
    for name in ["bytes", "bpe", "gpt2"] {
        assert_contains(&out, &format!("random Unicode strings that {name} round-trips exactly: 1000 of 1000"));
    }
    assert_contains(&out, "(0 padding, 1 unknown)");
    assert_contains(&out, "loaded back, it encodes the text to the same ids: true");
    assert!(!out.contains(": false"), "every fact holds:\n{out}");
    assert_contains(&out, "every fact above holds.");
}
