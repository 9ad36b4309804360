//! Architecture invariants as tests (rust-analyzer style): which module may use which.
//! See ARCHITECTURE.md.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Fails if any file under src/`module` mentions one of `forbidden` (`crate::x` or `tinymoe::x`).
fn check(module: &str, forbidden: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(module);
    let mut files = Vec::new();
    if root.is_dir() {
        rust_files(&root, &mut files);
    } else {
        files.push(root.with_extension("rs"));
    }
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for dep in forbidden {
                if line.contains(&format!("crate::{dep}")) || line.contains(&format!("tinymoe::{dep}")) {
                    bad.push(format!("{}:{}: {module} must not use {dep}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn engine_knows_nothing_above_it() {
    check(
        "engine",
        &["moe", "models", "data", "io", "checkpoint", "experiments", "cli", "plot", "train", "bench", "error"],
    );
}

#[test]
fn moe_uses_only_the_engine() {
    check("moe", &["models", "data", "io", "checkpoint", "experiments", "cli", "plot", "train", "bench"]);
}

#[test]
fn models_take_plain_arrays() {
    check("models", &["data", "io", "checkpoint", "experiments", "cli", "plot", "train", "bench"]);
}

#[test]
fn data_and_plot_know_no_maths() {
    check("data", &["engine", "moe", "models", "cli", "plot", "train"]);
    check("plot", &["engine", "moe", "models", "data", "cli", "train"]);
}

/// The run layer (settings, runs, sessions, results, experiments) is library code: it never
/// reaches up into the command line, and nothing below it reaches up into it.
#[test]
fn the_run_layer_sits_under_the_cli() {
    check("run", &["cli"]);
    for below in ["engine", "moe", "models", "data", "plot", "train"] {
        check(below, &["run"]);
    }
}

#[test]
fn only_the_cli_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        if rel.starts_with("cli") || rel == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            if code.contains("println!") || code.contains("eprintln!") || code.contains("print!(") {
                bad.push(format!("{rel}:{}", i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "printing outside cli/: {bad:?}");
}
