//! Seeded multi-run experiments: arms × seeds, one folder per cell, a summary with mean, std
//! and n per metric across seeds, and a report.
//!
//! ```text
//!   results/e1/                       Options::out
//!     report.md  summary.csv  cells.csv  (+ the experiment's own tables and figures)
//!     transplant/seed-42/             one folder per cell: whatever the cell writes
//!     transplant/seed-43/ …
//!     control/seed-42/ …
//! ```
//!
//! An experiment supplies its arms, how to run one cell, and (optionally) the sections of the
//! report that are its own; the runner does the rest. A cell that fails is recorded with its
//! error in `cells.csv` and the report, and the other cells still run.

use crate::error::{Error, Result};
use crate::run::results::{Report, Results, Table, Value};
use crate::run::settings::DataChoice;
use crate::run::Observer;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// How big a run is: `quick` finishes in minutes on 2 cores (tests, chapters); `full` is the
/// configuration of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Quick,
    Full,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Full => "full",
        }
    }
}

/// The seeds every experiment runs by default: three, so a finding has a spread.
pub const SEEDS: [u64; 3] = [42, 43, 44];

/// What one cell measured, in order: (metric name, value). Every cell of an arm should report
/// the same metrics; the summary takes each metric's mean and std over the arm's seeds.
pub type Metrics = Vec<(String, f64)>;

/// One cell to run: an arm, a seed, and its own results folder.
pub struct Cell<'a> {
    pub arm: &'a str,
    pub seed: u64,
    pub preset: Preset,
    /// `--data`: synthetic (built in) or real (from `data/`).
    pub data: DataChoice,
    pub out: &'a mut Results,
    pub observer: &'a mut dyn Observer,
    /// Raised by Ctrl-C: a cell that trains should stop at the next step.
    pub stop: Option<&'a AtomicBool>,
}

/// An experiment the runner can run.
pub trait Experiment: Sync {
    /// Its name on the command line (`tinymoe experiment run NAME`).
    fn name(&self) -> &'static str;
    /// One line for `tinymoe experiment list`.
    fn description(&self) -> &'static str;
    /// The question it asks, for the top of the report.
    fn question(&self) -> &'static str {
        self.description()
    }
    /// Its arms (variants), in the order of the report.
    fn arms(&self, preset: Preset) -> Vec<String>;
    /// The seeds it runs unless `--seeds` says otherwise.
    fn seeds(&self, _preset: Preset) -> Vec<u64> {
        SEEDS.to_vec()
    }
    /// The data choices it accepts (`--data`); the first is the default.
    fn data(&self) -> Vec<DataChoice> {
        vec![DataChoice::Synthetic]
    }
    /// Checks that can fail before any cell runs (data present, settings valid).
    fn prepare(&self, _preset: Preset, _data: DataChoice) -> Result<()> {
        Ok(())
    }
    /// The command that runs it, for the report's "How it was run".
    fn command(&self, preset: Preset, data: DataChoice) -> String {
        format!("tinymoe experiment run {} --preset {} --data {}", self.name(), preset.name(), data.as_str())
    }
    /// The metrics the terminal and the report's summary show (empty: every one); summary.csv
    /// and cells.csv always hold them all.
    fn headline(&self) -> &'static [&'static str] {
        &[]
    }
    /// Runs one cell, writing into `cell.out`, and returns what it measured.
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics>;
    /// Adds the experiment's own sections (tables, figures, verdicts) to the report after the
    /// runner's summary; may write more files into `out` (the experiment's folder).
    fn report(&self, _run: &Finished, _out: &mut Results, _report: &mut Report) -> Result<()> {
        Ok(())
    }
}

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct Options {
    pub preset: Preset,
    /// None: the experiment's own seeds.
    pub seeds: Option<Vec<u64>>,
    /// None: every arm.
    pub arms: Option<Vec<String>>,
    /// None: the experiment's default data (the first of [`Experiment::data`]).
    pub data: Option<DataChoice>,
    pub out: PathBuf,
}

/// One cell after it ran.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    pub arm: String,
    pub seed: u64,
    /// The cell's folder, relative to the experiment's (`arm/seed-42`).
    pub dir: String,
    /// What it measured, or why it failed.
    pub result: std::result::Result<Metrics, String>,
}

/// One arm × metric over the arm's seeds that finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub arm: String,
    pub metric: String,
    pub mean: f64,
    /// The sample standard deviation (n − 1 in the denominator); NaN when n < 2.
    pub std: f64,
    pub n: usize,
}

/// A finished experiment: every cell, and the summary across seeds.
#[derive(Debug, Clone)]
pub struct Finished {
    pub name: String,
    pub preset: Preset,
    /// The data it ran on (`--data`).
    pub data: DataChoice,
    pub seeds: Vec<u64>,
    pub arms: Vec<String>,
    pub cells: Vec<CellOutcome>,
    pub summary: Vec<Summary>,
    /// Ctrl-C stopped it before every cell ran.
    pub interrupted: bool,
    pub seconds: f64,
}

impl Finished {
    /// The summary of one arm's metric, if any seed of it finished.
    pub fn get(&self, arm: &str, metric: &str) -> Option<&Summary> {
        self.summary.iter().find(|s| s.arm == arm && s.metric == metric)
    }

    /// The cell of an arm and a seed.
    pub fn cell(&self, arm: &str, seed: u64) -> Option<&CellOutcome> {
        self.cells.iter().find(|c| c.arm == arm && c.seed == seed)
    }

    /// Cells that failed, as (arm, seed, error).
    pub fn failures(&self) -> Vec<(&str, u64, &str)> {
        self.cells
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| (c.arm.as_str(), c.seed, e.as_str())))
            .collect()
    }
}

/// Mean and sample standard deviation of `values` (NaN std when fewer than two).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// Per arm and metric, the mean, std and n over the cells that finished.
pub fn summarise(arms: &[String], cells: &[CellOutcome]) -> Vec<Summary> {
    let mut out = Vec::new();
    for arm in arms {
        let done: Vec<&Metrics> =
            cells.iter().filter(|c| &c.arm == arm).filter_map(|c| c.result.as_ref().ok()).collect();
        let Some(first) = done.first() else { continue };
        for (metric, _) in first.iter() {
            let values: Vec<f64> =
                done.iter().filter_map(|m| m.iter().find(|(k, _)| k == metric).map(|(_, v)| *v)).collect();
            let (mean, std) = mean_std(&values);
            out.push(Summary { arm: arm.clone(), metric: metric.clone(), mean, std, n: values.len() });
        }
    }
    out
}

/// Runs every arm × seed of `exp` into `opts.out`, then writes `cells.csv`, `summary.csv` and
/// `report.md`. Fails before any cell on a bad option (an unknown arm, no seeds) or when the
/// experiment's `prepare` fails; a failing cell is recorded and the rest go on.
pub fn run(
    exp: &dyn Experiment,
    opts: &Options,
    observer: &mut dyn Observer,
    stop: Option<&AtomicBool>,
) -> Result<Finished> {
    let all_arms = exp.arms(opts.preset);
    let arms = match &opts.arms {
        None => all_arms.clone(),
        Some(chosen) => {
            for a in chosen {
                if !all_arms.contains(a) {
                    return Err(Error::Unknown {
                        what: format!("arm of {}", exp.name()),
                        name: a.clone(),
                        expected: all_arms.join(", "),
                    });
                }
            }
            chosen.clone()
        }
    };
    let seeds = opts.seeds.clone().unwrap_or_else(|| exp.seeds(opts.preset));
    if seeds.is_empty() {
        return Err(Error::bad_value("seeds", "[]", "name at least one seed"));
    }
    let accepted = exp.data();
    let data = match opts.data {
        None => accepted[0],
        Some(d) if accepted.contains(&d) => d,
        Some(d) => {
            return Err(Error::bad_value(
                "--data",
                d.as_str(),
                &format!(
                    "{} runs on {}",
                    exp.name(),
                    accepted.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(" or ")
                ),
            ))
        }
    };
    exp.prepare(opts.preset, data)?;
    let mut out = Results::create(&opts.out)?;
    let started = std::time::Instant::now();
    let mut cells = Vec::new();
    let mut interrupted = false;
    'arms: for arm in &arms {
        for &seed in &seeds {
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                interrupted = true;
                break 'arms;
            }
            let dir = format!("{arm}/seed-{seed}");
            observer.note(&format!("== {} · {arm} · seed {seed} ({})", exp.name(), opts.preset.name()));
            let result = Results::create(&out.path(&dir)).and_then(|mut cell_out| {
                let mut cell = Cell { arm, seed, preset: opts.preset, data, out: &mut cell_out, observer, stop };
                exp.run_cell(&mut cell)
            });
            let result = result.map_err(|e| e.to_string());
            if let Err(e) = &result {
                observer.note(&format!("   {arm} · seed {seed} FAILED: {e}"));
            }
            cells.push(CellOutcome { arm: arm.clone(), seed, dir, result });
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                interrupted = true;
                break 'arms;
            }
        }
    }
    let summary = summarise(&arms, &cells);
    let finished = Finished {
        name: exp.name().to_string(),
        preset: opts.preset,
        data,
        seeds,
        arms,
        cells,
        summary,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    };
    out.table("cells.csv", &cells_table(&finished))?;
    out.table("summary.csv", &summary_table(&finished.summary))?;
    let mut report = Report::new(&format!("{}: {}", exp.name(), exp.description()));
    report.heading("The question").text(exp.question());
    report.heading("How it was run").text(&format!(
        "`{}`, arms {}, seeds {}; one folder per cell (`arm/seed-N/`). \
         Means and sample standard deviations are over the seeds that finished (n).{}",
        exp.command(opts.preset, data),
        finished.arms.join(", "),
        finished.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        if interrupted { " **Interrupted by Ctrl-C: not every cell ran.**" } else { "" }
    ));
    report.heading("Summary (mean ± std over seeds)").table(&wide_summary(&finished, exp.headline()));
    if !exp.headline().is_empty() {
        report.text("Every metric of every cell: `summary.csv` (mean, std, n) and `cells.csv`.");
    }
    let failures = finished.failures();
    if !failures.is_empty() {
        report.heading("Failed cells");
        let mut t = Table::new(&["arm", "seed", "error"]);
        for (arm, seed, e) in failures {
            t.push(vec![arm.into(), seed.into(), e.into()]);
        }
        report.table(&t);
    }
    exp.report(&finished, &mut out, &mut report)?;
    out.report(&report)?;
    Ok(finished)
}

/// One line per cell: arm, seed, status, then every metric (blank where the cell failed).
pub fn cells_table(f: &Finished) -> Table {
    let mut metrics: Vec<String> = Vec::new();
    for c in &f.cells {
        for (k, _) in c.result.as_ref().map(|m| m.as_slice()).unwrap_or(&[]) {
            if !metrics.contains(k) {
                metrics.push(k.clone());
            }
        }
    }
    let mut columns = vec!["arm".to_string(), "seed".into(), "status".into()];
    columns.extend(metrics.iter().cloned());
    let mut t = Table::new(&columns);
    for c in &f.cells {
        let mut row: Vec<Value> = vec![c.arm.as_str().into(), c.seed.into()];
        match &c.result {
            Ok(m) => {
                row.push("ok".into());
                for k in &metrics {
                    row.push(
                        m.iter().find(|(n, _)| n == k).map_or(Value::Text(String::new()), |(_, v)| Value::Num(*v)),
                    );
                }
            }
            Err(e) => {
                row.push(format!("failed: {e}").into());
                row.extend(metrics.iter().map(|_| Value::Text(String::new())));
            }
        }
        t.push(row);
    }
    t
}

/// `summary.csv`: arm, metric, mean, std, n.
pub fn summary_table(summary: &[Summary]) -> Table {
    let mut t = Table::new(&["arm", "metric", "mean", "std", "n"]);
    for s in summary {
        t.push(vec![s.arm.as_str().into(), s.metric.as_str().into(), s.mean.into(), s.std.into(), s.n.into()]);
    }
    t
}

/// The summary as one row per arm and one column per metric (mean ± std), for the report:
/// the metrics in `only` (in that order), or every one when `only` is empty.
pub fn wide_summary(f: &Finished, only: &[&str]) -> Table {
    let mut metrics: Vec<&str> = Vec::new();
    for s in &f.summary {
        if !metrics.contains(&s.metric.as_str()) && (only.is_empty() || only.contains(&s.metric.as_str())) {
            metrics.push(&s.metric);
        }
    }
    if !only.is_empty() {
        metrics.sort_by_key(|m| only.iter().position(|o| o == m));
    }
    let mut columns = vec!["arm", "n"];
    columns.extend(metrics.iter().copied());
    let mut t = Table::new(&columns);
    for arm in &f.arms {
        let n = f.summary.iter().filter(|s| &s.arm == arm).map(|s| s.n).max().unwrap_or(0);
        let mut row: Vec<Value> = vec![arm.as_str().into(), n.into()];
        for m in &metrics {
            row.push(f.get(arm, m).map_or(Value::Text("—".into()), |s| Value::MeanStd {
                mean: s.mean,
                std: s.std,
                n: s.n,
            }));
        }
        t.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_the_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-15);
        assert!(mean_std(&[5.0]).1.is_nan());
    }

    #[test]
    fn summary_skips_failed_cells() {
        let ok = |v: f64| Ok(vec![("acc".to_string(), v)]);
        let cells = vec![
            CellOutcome { arm: "a".into(), seed: 1, dir: "a/seed-1".into(), result: ok(0.5) },
            CellOutcome { arm: "a".into(), seed: 2, dir: "a/seed-2".into(), result: Err("boom".into()) },
            CellOutcome { arm: "a".into(), seed: 3, dir: "a/seed-3".into(), result: ok(0.7) },
        ];
        let s = summarise(&["a".to_string(), "b".to_string()], &cells);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].n, s[0].mean), (2, 0.6));
    }
}
