//! E1 and `tinymoe analyse` as a user meets them: the quick preset end to end on real MNIST
//! (every output exists and parses, numbers in range, PNGs decode, report.md links resolve),
//! the same seed giving the same CSVs, a missing MNIST folder giving the one-line error, and
//! `analyse` on a trained checkpoint and on every kind of checkpoint it must refuse.
//!
//! The tests that need data/mnist (`bash scripts/fetch-data.sh`) skip loudly without it.

mod common;

use common::cli::{assert_clean_error, read_csv, s, stderr, stdout, tmp_dir, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tinymoe ARGS` from the repository root (where data/mnist is looked for).
fn tinymoe(args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(repo()).env_remove("TINYMOE_DATA_DIR").output().expect("the binary runs")
}

fn have_mnist() -> bool {
    let dir = repo().join("data/mnist");
    let ok = dir.join("train-images-idx3-ubyte").is_file() || dir.join("train-images-idx3-ubyte.gz").is_file();
    if !ok {
        eprintln!("SKIPPED: {} is missing (run bash scripts/fetch-data.sh)", dir.display());
    }
    ok
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let img = image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(img.width() > 50 && img.height() > 50, "{}: {}×{}", path.display(), img.width(), img.height());
}

fn run_e1(out: &Path, arms: &str) {
    let o = tinymoe(&["experiment", "run", "e1", "--seeds", "42", "--arms", arms, "--threads", "1", "--out", s(out)]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
}

/// The quick preset, seed 42, every arm: the files, their columns and ranges, the report and
/// its links; then the transplant arm again, alone, gives the same bytes; then `analyse` on
/// its checkpoint writes the same routing tables the cell wrote.
#[test]
fn e1_quick_runs_every_arm_reruns_identically_and_its_checkpoint_analyses() {
    if !have_mnist() {
        return;
    }
    let out = tmp_dir("e1-quick-a");
    run_e1(&out, "transplant,control,slot3,selectivity,dense");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in ["## Verdicts", "96 percent", "among the 0s and 7s", "quick preset", "Dense reference"] {
        assert!(report.contains(needle), "report.md lacks {needle:?}:\n{report}");
    }
    let links: Vec<&str> = report.split("](").skip(1).filter_map(|r| r.split(')').next()).collect();
    assert!(links.iter().filter(|l| l.ends_with("digits.png")).count() == 4, "{links:?}");
    for link in links {
        assert!(out.join(link).is_file(), "report.md links to {link}, which is not there");
    }
    let (header, cells) = read_csv(&out.join("cells.csv"));
    assert_eq!(cells.len(), 5);
    for r in &cells {
        assert_eq!(r[column(&header, "status")], "ok", "{r:?}");
        let acc: f64 = r[column(&header, "accuracy")].parse().unwrap();
        assert!(acc > 0.8 && acc <= 1.0, "{}: 10 classes, accuracy {acc}", r[0]);
        if r[0] != "dense" {
            for m in ["share_pair", "share_rest", "share_all", "max_share", "off_acc_pair", "gate_pair"] {
                let v: f64 = r[column(&header, m)].parse().unwrap();
                assert!((0.0..=1.0).contains(&v), "{} {m} = {v}", r[0]);
            }
            let (p, q): (f64, f64) =
                (r[column(&header, "share_pair")].parse().unwrap(), r[column(&header, "share_rest")].parse().unwrap());
            let diff: f64 = r[column(&header, "share_diff")].parse().unwrap();
            assert!((diff - (p - q)).abs() < 1e-12, "{}: difference", r[0]);
        }
    }
    for arm in ["transplant", "control", "slot3", "selectivity"] {
        let cell = out.join(arm).join("seed-42");
        for f in ["digits.png", "top_share.png", "mean_gate.png", "share_by_epoch.png"] {
            assert_png(&cell.join(f));
        }
        let (h, rows) = read_csv(&cell.join("epochs.csv"));
        assert_eq!(rows.len(), 3 + 1, "{arm}: before phase 2 and after each of its 3 quick epochs");
        for r in &rows {
            let util: f64 = (0..4).map(|e| r[column(&h, &format!("util_{e}"))].parse::<f64>().unwrap()).sum();
            assert!((util - 1.0).abs() < 1e-9, "{arm}: the experts' top-gate shares sum to 1");
        }
        let (h, rows) = read_csv(&cell.join("top_share.csv"));
        assert_eq!((h.len(), rows.len()), (2 + 4, 10), "{arm}: digit, rows, 4 experts; 10 digits");
        for r in &rows {
            let sum: f64 = r[2..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-9, "{arm}: each digit's top-gate shares sum to 1: {r:?}");
        }
    }
    // Same seed, same numbers: the transplant arm alone gives the same files.
    let again = tmp_dir("e1-quick-b");
    run_e1(&again, "transplant");
    for f in ["epochs.csv", "top_share.csv", "mean_gate.csv"] {
        let (a, b) = (out.join("transplant/seed-42").join(f), again.join("transplant/seed-42").join(f));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{f}");
    }
    let (_, b) = read_csv(&again.join("cells.csv"));
    let a = cells.iter().find(|r| r[0] == "transplant").unwrap();
    assert_eq!(a[..b[0].len()], b[0][..], "the transplant row of cells.csv");

    // `analyse` on the cell's checkpoint: the quick test set is the first 2,000 test images,
    // analyse routes all 10,000, so the tables have the same shape, not the same numbers.
    let ckpt = out.join("transplant/seed-42/model.ckpt");
    let dir = out.join("analysis");
    let o = tinymoe(&["analyse", s(&ckpt), "--data", "mnist", "--out", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("10000 rows") && text.contains("expert 3"), "{text}");
    for f in ["top_share.png", "mean_gate.png"] {
        assert_png(&dir.join(f));
    }
    let (h, rows) = read_csv(&dir.join("mean_gate.csv"));
    assert_eq!((h.len(), rows.len()), (6, 10));
    assert_eq!(rows.iter().map(|r| r[1].parse::<usize>().unwrap()).sum::<usize>(), 10_000);
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for link in report.split("](").skip(1).filter_map(|r| r.split(')').next()) {
        assert!(dir.join(link).is_file(), "analysis report.md links to {link}");
    }
}

/// With TINYMOE_DATA_DIR pointing at a folder without mnist/, E1 stops before writing
/// anything, with one line naming the folder it looked in and the fetch command.
#[test]
fn e1_without_mnist_names_the_folder_and_the_fetch_command() {
    let empty = tmp_dir("e1-nodata");
    let out = empty.join("out");
    let o = Command::new(BIN)
        .args(["experiment", "run", "e1", "--out", s(&out)])
        .env("TINYMOE_DATA_DIR", &empty)
        .output()
        .unwrap();
    assert_clean_error(&o, &[s(&empty.join("mnist")), "the MNIST folder", "bash scripts/fetch-data.sh"]);
    assert!(!out.exists(), "nothing is written before the data is found");
    // E1 takes only real MNIST.
    let o =
        Command::new(BIN).args(["experiment", "run", "e1", "--data", "synthetic", "--out", s(&out)]).output().unwrap();
    assert_clean_error(&o, &["e1 runs on real"]);
}

/// A spirals MoE trained for one epoch: what `analyse` refuses (2 features, the data 20), and
/// the other checkpoints it must refuse with one line each.
#[test]
fn analyse_refuses_a_wrong_checkpoint_or_data_that_does_not_fit() {
    let dir = tmp_dir("analyse-refuses");
    let train = |preset: &str, out: &PathBuf| {
        let o =
            Command::new(BIN).args(["train", "--preset", preset, "--epochs", "1", "--out", s(out)]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        out.join("model.ckpt")
    };
    let moe = train("spirals-moe", &dir.join("moe"));
    let o = tinymoe(&["analyse", s(&moe), "--data", "sentiment", "--out", s(&dir.join("a"))]);
    assert_clean_error(&o, &["--data", "20 features", "reads 2 features", s(&moe)]);
    assert!(!dir.join("a").exists(), "nothing is written for data that does not fit");
    let mlp = train("spirals-mlp", &dir.join("mlp"));
    assert_clean_error(
        &tinymoe(&["analyse", s(&mlp), "--data", "sentiment", "--out", s(&dir.join("b"))]),
        &[s(&mlp), "classifier MLP", "no gate"],
    );
    // A checkpoint of another kind (forged here: a classifier's weights under an LM's kind).
    let lm = dir.join("lm.ckpt");
    let model: tinymoe::models::classifier::Classifier<f32> =
        tinymoe::models::classifier::init_mlp(2, &[4], 2, 0.0, &mut tinymoe::engine::init::rng(1));
    tinymoe::checkpoint::save(&lm, "transformer_lm", &serde_json::json!({}), &model, serde_json::json!({})).unwrap();
    assert_clean_error(
        &tinymoe(&["analyse", s(&lm), "--data", "mnist"]),
        &[s(&lm), "\"transformer_lm\" model", "classifier MoEs"],
    );
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_clean_error(&tinymoe(&["analyse", s(&junk), "--data", "mnist"]), &[s(&junk), "not a usable checkpoint"]);
    let missing = dir.join("none.ckpt");
    assert_clean_error(&tinymoe(&["analyse", s(&missing), "--data", "mnist"]), &[s(&missing)]);
}

/// Without any downloaded data: a dense-mixture classifier trained on E6's 20-d sentiment
/// features (as a CSV) analyses on `--data sentiment`, with a 3 × 4 table whose rows sum to 1.
#[test]
fn analyse_routes_a_sentiment_moe_and_writes_its_tables() {
    let dir = tmp_dir("analyse-sentiment");
    let set = tinymoe::data::corpora::sentiment_features(400, 9);
    let mut csv = String::new();
    for (row, y) in set.x.rows().into_iter().zip(&set.y) {
        csv += &row.iter().map(|v| v.to_string()).chain(std::iter::once(y.to_string())).collect::<Vec<_>>().join(",");
        csv.push('\n');
    }
    std::fs::write(dir.join("sentiment.csv"), csv).unwrap();
    let o = Command::new(BIN)
        .args(["train", "--preset", "spirals-moe", "--epochs", "2", "--data", s(&dir.join("sentiment.csv"))])
        .args(["--out", s(&dir.join("run"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tinymoe(&["analyse", s(&dir.join("run/model.ckpt")), "--data", "sentiment", "--out", s(&dir.join("a"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1500 rows") && stdout(&o).contains("negative"), "{}", stdout(&o));
    let (h, rows) = read_csv(&dir.join("a/top_share.csv"));
    assert_eq!((h.len(), rows.len()), (2 + 4, 3));
    for r in &rows {
        let sum: f64 = r[2..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{r:?}");
    }
    assert_png(&dir.join("a/top_share.png"));
}
