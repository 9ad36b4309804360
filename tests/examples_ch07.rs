//! Chapter 07's example runs, exits 0, and prints the facts its chapter quotes.
//!
//! The helpers are those of tests/examples.rs: the example binary is first brought up to date
//! with `cargo build --example NAME` in this test's profile and target directory. Nothing here
//! needs the real MNIST: the example writes its own IDX files.

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
    assert!(out.contains(needle), "ch07 should print {needle:?}; it printed:\n{out}");
}

/// The first line that contains `needle`.
fn line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// The number right after `label` in `line`, with a trailing `%` or `,` dropped.
fn number_after(line: &str, label: &str) -> f64 {
    let rest = line.split(label).nth(1).unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    let word = rest.split_whitespace().next().expect("a number follows");
    word.trim_end_matches(['%', ',', ':']).parse().unwrap_or_else(|_| panic!("{word:?} in {line:?} is not a number"))
}

/// The whitespace-separated fields of `line`.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn ch07_batches_pad_and_mask_and_padding_never_counts() {
    let started = std::time::SystemTime::now();
    let out = run("ch07_data");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch07: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds");

    // 2. Diversity: every domain has no duplicates among 1,000 and mostly unseen 8-grams;
    // the toy template repeats itself, and with frozen slots it is one sentence.
    for name in ["code", "math", "story", "science", "psychology", "history", "medicine", "business", "sentiment"] {
        let row = out
            .lines()
            .find(|l| fields(l).first() == Some(&name) && fields(l).len() == 5)
            .unwrap_or_else(|| panic!("no diversity row for {name}:\n{out}"));
        let f = fields(row);
        let duplicates: f64 = f[3].trim_end_matches('%').parse().expect("a share");
        let unseen: f64 = f[4].trim_end_matches('%').parse().expect("a share");
        assert!(duplicates < 1.0 && unseen > 50.0, "ch07: {name} is not diverse enough: {row}");
    }
    let toy = fields(line(&out, "toy template, random slots"));
    let toy_duplicates: f64 = toy[6].trim_end_matches('%').parse().expect("a share");
    assert!((20.0..40.0).contains(&toy_duplicates), "ch07: 1,000 draws of 1,248 sentences repeat ~30 %: {toy:?}");
    let frozen = fields(line(&out, "toy template, slots frozen"));
    assert_eq!(&frozen[6..], ["99.90%", "0.0%"], "ch07: a frozen template is one sentence");

    // 4. The batch: each row's real positions are its tokens − 1 (one is only a target), at most
    // 128, and the rest of the 128 are padding.
    let table = out.split("row  domain      tokens  real positions  padding").nth(1).expect("the batch table");
    let rows: Vec<Vec<usize>> = table
        .lines()
        .skip(1)
        .take(9)
        .map(|l| {
            let f = fields(l);
            [f[2], f[3], f[4]].iter().map(|v| v.parse().expect("counts")).collect()
        })
        .collect();
    assert_eq!(rows.len(), 9, "one row per domain");
    for r in &rows {
        let (tokens, real, padding) = (r[0], r[1], r[2]);
        assert_eq!(real, (tokens - 1).min(128), "ch07: {r:?}");
        assert_eq!(real + padding, 128, "ch07: {r:?}");
    }
    assert!(rows.iter().any(|r| r[2] > 0), "ch07: the batch should hold some padding");
    let padding_share = number_after(line(&out, "real positions of 1152"), ": ");

    // 5. Padding does not count: the loss and gradient equal the unpadded ones.
    let delta = line(&out, "|Δ loss| = ");
    assert!(number_after(delta, "|Δ loss| = ") < 1e-12, "ch07: {delta}");
    assert!(number_after(delta, "every gradient entry = ") < 1e-12, "ch07: {delta}");
    let accuracy = line(&out, "padding counted ");
    assert_eq!(number_after(accuracy, "padding counted "), padding_share, "the always-pad score is the padding share");
    assert_eq!(number_after(accuracy, "padding ignored "), 0.0);
    let attention: Vec<Vec<&str>> =
        out.lines().map(fields).filter(|f| f.len() == 3 && (f[0] == "bidirectional" || f[0] == "causal")).collect();
    assert_eq!(attention.len(), 4, "ch07: two kinds of attention, with and without the key mask:\n{out}");
    for f in &attention {
        let d: f64 = f[2].parse().expect("a difference");
        if f[..2] == ["bidirectional", "no"] {
            assert!(d > 1e-3, "ch07: unmasked bidirectional attention should read the padding: {f:?}");
        } else {
            assert!(d < 1e-12, "ch07: {f:?}");
        }
    }

    // 6. Balanced sampling: 2 of each of 4 domains per batch of 8; shuffled leaves gaps.
    let balanced = out.split("balanced: 384 sequences drawn, 48 batches").nth(1).expect("the balanced epoch");
    for l in balanced.lines().skip(2).take(5) {
        assert_eq!(&fields(l)[1..], ["2", "2", "2", "2"], "ch07: {l}");
    }
    assert_contains(&out, "batches with no business sequence: 0 of 48");
    assert_contains(&out, "business 96 (12)");

    // 7. IDX, written and read back; the normalisation; errors naming the file.
    assert_contains(&out, "header 00 00 08 03 00 00 00 03 00 00 00 1c 00 00 00 1c");
    assert_contains(&out, "header 00 00 08 01 00 00 00 03   (magic 0x00000801, dim 3), data 01 00 07");
    assert_contains(&out, "x (3, 784), labels [1, 0, 7]");
    assert_contains(&out, "pixel 0 → -0.4242   pixel 33 → -0.0042   pixel 255 → 2.8215");
    assert_contains(&out, "wrong-magic-idx3-ubyte: wrong magic number 0x00000801");
    assert_contains(&out, "truncated-idx3-ubyte: truncated: the header says [3, 28, 28] = 2352 bytes");
    assert_contains(&out, "2 labels, but");

    // 8. .npy round trip.
    assert_contains(&out, "{'descr': '|u1', 'fortran_order': False, 'shape': (9, 128)}");
    assert_contains(&out, "ids, mask and images read back from .npy exactly: true");

    // The pictures: written by this run, and PNGs.
    let pngs: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("wrote ")).filter(|p| p.ends_with(".png")).collect();
    assert_eq!(pngs.len(), 4, "ch07 draws the overlap, the batch ids, its mask and the attention masks:\n{out}");
    for png in pngs {
        // The example writes relative to its working directory, which is this test's.
        let path = Path::new(png);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("ch07: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch07: {png} is not a PNG");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("an mtime");
        assert!(modified >= started - std::time::Duration::from_secs(2), "ch07: {png} was not written by this run");
    }
}
