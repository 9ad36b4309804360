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
