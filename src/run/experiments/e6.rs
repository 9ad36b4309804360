//! E6 (SPEC §4): a top-2 MoE classifier of 3-class sentiment with the Switch load-balancing
//! loss, over the balancing weight α ∈ {0, 1e-3, 1e-2, 1e-1} × {linear gate, 2-layer gate},
//! with a dense MLP of the same active parameters as the reference accuracy.
//!
//! The seed's claim tested: "without the load-balancing loss, experts collapse (one takes
//! ~90 %)". Every arm runs E6's own settings (4 experts 20 → 64 → 32 → 3, softmax(TopK(W·x,
//! k = 2)), Adam 1e-3, batch 64); only α and the gate differ. Every metric is measured on a
//! held-out test set, before training and after every epoch (`epochs.csv` in each cell).
//!
//! Data: `--data synthetic` (default) is the 20-d synthetic sentiment features; `--data real`
//! is the 38,158 labelled tweets of `scripts/fetch-data.sh` as hashed bag-of-words features
//! ([`TWEET_DIMS`] buckets, `real_text::hashed_bag_of_words`), split once (the same split for
//! every cell); the experts' input width follows the feature width.

use crate::data::corpora;
use crate::data::real_text;
use crate::data::synthetic::Dataset;
use crate::error::{Error, Result};
use crate::models::moe_classifier::{self as mc, Config, Fit};
use crate::moe::losses::RouterLossConfig;
use crate::moe::routing::Gating;
use crate::plot::line::{line_chart, Series};
use crate::run::experiment::{Cell, Experiment, Finished, Metrics, Preset};
use crate::run::results::{Report, Results, Table, Value};
use crate::run::settings::DataChoice;
use rand::seq::SliceRandom;

/// E6 over α × gate, and the dense reference.
pub struct E6;

/// The balancing weights of the sweep, as they appear in arm names.
const ALPHAS: [(&str, f64); 4] = [("0", 0.0), ("1e-3", 1e-3), ("1e-2", 1e-2), ("1e-1", 1e-1)];
/// The gates: linear (E6's), or 2-layer.
const GATES: [&str; 2] = ["linear", "2layer"];
/// The 2-layer gate's hidden width (20 → 32 → 4).
const GATE_HIDDEN: usize = 32;
/// An expert that takes fewer than this share of the test set's top-2 assignments is dead.
const DEAD: f64 = 0.01;
/// The share of first choices one expert must take for "collapse" (the seed says ~90 %).
const COLLAPSED: f64 = 0.8;
const BATCH: usize = 64;
const LR: f64 = 1e-3;

/// The hashed bag-of-words width of the tweets' features.
pub const TWEET_DIMS: usize = 64;

/// Sizes of a run: training rows, test rows, epochs. Real data, full: every tweet, 80 / 20.
fn sizes(preset: Preset, data: DataChoice) -> (usize, usize, usize) {
    match (preset, data) {
        (Preset::Quick, DataChoice::Synthetic) => (1000, 600, 6),
        (Preset::Full, DataChoice::Synthetic) => (3000, 1500, 20),
        (Preset::Quick, DataChoice::Real) => (3000, 1000, 6),
        (Preset::Full, DataChoice::Real) => (30_526, 7_632, 20),
    }
}

/// The training and held-out sets of a run: the same for every arm and seed.
pub(crate) fn datasets(preset: Preset, data: DataChoice) -> Result<(Dataset, Dataset)> {
    let (n_train, n_test, _) = sizes(preset, data);
    match data {
        DataChoice::Synthetic => Ok((corpora::sentiment_features(n_train, 1), corpora::sentiment_features(n_test, 2))),
        DataChoice::Real => {
            let tweets = real_text::load_tweets(std::path::Path::new(real_text::TWEETS_CSV))?;
            let all = real_text::hashed_bag_of_words(&tweets, TWEET_DIMS);
            let mut order: Vec<usize> = (0..all.len()).collect();
            order.shuffle(&mut crate::engine::init::rng(2024));
            let n_train = n_train.min(all.len() * 4 / 5);
            let n_test = n_test.min(all.len() - n_train);
            Ok((all.select(&order[..n_train]), all.select(&order[n_train..n_train + n_test])))
        }
    }
}

/// The model of an arm: `a{α}-{linear|2layer}`, or `dense`.
fn config(arm: &str) -> Result<Config> {
    let mut cfg = Config::e6();
    if arm == "dense" {
        // One expert, always chosen: an MLP 20 → 128 → 32 → 3 (6,915 parameters), about the
        // 7,110 that two 20 → 64 → 32 → 3 experts hold (what a top-2 row runs).
        cfg.n_experts = 1;
        cfg.hidden = vec![128, 32];
        cfg.gating = Gating::DENSE;
        cfg.router_losses = RouterLossConfig::default();
        return Ok(cfg);
    }
    let (gate, alpha) = GATES
        .iter()
        .flat_map(|&g| ALPHAS.iter().map(move |&(name, a)| (g, name, a)))
        .find(|&(g, name, _)| arm_name(name, g) == arm)
        .map(|(g, _, a)| (g, a))
        .ok_or_else(|| Error::Unknown {
            what: "arm of e6".into(),
            name: arm.into(),
            expected: E6.arms(Preset::Quick).join(", "),
        })?;
    cfg.router_hidden = (gate == "2layer").then_some(GATE_HIDDEN);
    cfg.router_losses = RouterLossConfig { balance: alpha, ..RouterLossConfig::default() };
    Ok(cfg)
}

fn arm_name(alpha: &str, gate: &str) -> String {
    format!("a{alpha}-{gate}")
}

impl Experiment for E6 {
    fn name(&self) -> &'static str {
        "e6"
    }
    fn description(&self) -> &'static str {
        "E6: a top-2 MoE sentiment classifier, load-balancing weight α × linear or 2-layer gate, and a dense reference"
    }
    fn question(&self) -> &'static str {
        "Without the Switch load-balancing loss, do the four experts of E6 collapse (the seed: one \
         takes ~90 % of the inputs), and does the loss cure it? Every arm runs E6's own settings \
         (4 experts 20 → 64 → 32 → 3, top-2 of a softmax gate, Adam 1e-3, batch 64); only the \
         balancing weight α and the gate (linear, or 2-layer 20 → 32 → 4) change."
    }
    fn data(&self) -> Vec<DataChoice> {
        vec![DataChoice::Synthetic, DataChoice::Real]
    }
    fn prepare(&self, _: Preset, data: DataChoice) -> Result<()> {
        let csv = std::path::Path::new(real_text::TWEETS_CSV);
        if data == DataChoice::Real && !csv.is_file() {
            return Err(Error::MissingData {
                path: csv.to_path_buf(),
                what: "the tweet sentiment set".into(),
                fetch: crate::data::mnist::FETCH.into(),
            });
        }
        Ok(())
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        let mut arms: Vec<String> = Vec::new();
        for gate in GATES {
            for (alpha, _) in ALPHAS {
                arms.push(arm_name(alpha, gate));
            }
        }
        arms.push("dense".into());
        arms
    }
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let (_, _, epochs) = sizes(cell.preset, cell.data);
        // The data are the same for every arm and seed; the seed drives weights and shuffles.
        let (train, test) = datasets(cell.preset, cell.data)?;
        let n_train = train.len();
        let mut cfg = config(cell.arm)?;
        cfg.d_in = train.x.ncols();
        cfg.validate()?;
        let mut model: mc::Params<f32> = mc::init(&cfg, &mut crate::engine::init::rng(cell.seed));
        let per_epoch = n_train.div_ceil(BATCH);
        let mut evals = vec![mc::evaluate(&model, test.x.view(), &test.y, 500)];
        mc::fit(&mut model, train.x.view(), &train.y, &Fit::adam(epochs, BATCH, LR, cell.seed), &mut |log, m| {
            if log.step % per_epoch == 0 {
                evals.push(mc::evaluate(m, test.x.view(), &test.y, 500));
            }
        })?;
        let last = evals.last().expect("evaluated before training at least");
        cell.observer.note(&format!(
            "   {} · seed {}: test accuracy {:.3}, first-choice shares {:?}",
            cell.arm,
            cell.seed,
            last.accuracy,
            last.utilisation.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>()
        ));
        cell.out.table("epochs.csv", &epoch_table(&evals))?;
        if cfg.n_experts > 1 {
            let caption = format!("share of first choices per expert over training, {}", cell.arm);
            let lines: Vec<Vec<(f64, f64)>> = (0..cfg.n_experts)
                .map(|e| evals.iter().enumerate().map(|(ep, ev)| (ep as f64, ev.utilisation[e])).collect())
                .collect();
            let names: Vec<String> = (0..cfg.n_experts).map(|e| format!("expert {e}")).collect();
            cell.out.figure("utilisation", &caption, |p| {
                let series: Vec<Series> =
                    names.iter().zip(&lines).map(|(n, pts)| Series { name: n, points: pts }).collect();
                line_chart(p, &caption, "epoch (0: before training)", "share of first choices (test)", &series)
            })?;
        }
        let mut m = final_metrics(evals.last().expect("evaluated before training at least"), cfg.n_experts);
        if cfg.n_experts > 1 {
            // A collapse can pass: the largest first-choice share after any epoch, and when.
            let (epoch, peak) = evals
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, e)| (i, e.utilisation.iter().copied().fold(0.0, f64::max)))
                .fold((0, 0.0), |best, x| if x.1 > best.1 { x } else { best });
            m.push(("peak_first_share".into(), peak));
            m.push(("peak_epoch".into(), epoch as f64));
        }
        Ok(m)
    }
    fn report(&self, run: &Finished, out: &mut Results, report: &mut Report) -> Result<()> {
        let (n_train, n_test, epochs) = sizes(run.preset, run.data);
        let data = match run.data {
            DataChoice::Synthetic => "Synthetic 20-d sentiment features (`corpora::sentiment_features`)".to_string(),
            DataChoice::Real => format!(
                "Real tweets (`{}`, 3 sentiments, imbalanced: negative 42 %) as {TWEET_DIMS}-bucket hashed \
                 bag-of-words features (`real_text::hashed_bag_of_words`; the experts' input is {TWEET_DIMS} wide), \
                 split once at random (seed 2024)",
                real_text::TWEETS_CSV
            ),
        };
        report.heading("Settings").text(&format!(
            "{data}: {n_train} training rows, \
             {n_test} held-out rows (the same for every cell); {epochs} epochs, Adam lr {LR}, batch {BATCH}. \
             *First-choice share*: the share of held-out rows whose highest gate is that expert. *Dead*: an \
             expert with under {:.0} % of the top-2 assignments. *Specialisation index*: H(class | first-choice \
             expert) / ln 3, so 0 means each expert sees one class and 1 means every expert sees the classes \
             mixed as in the data. The dense reference is one MLP d_in → 128 → 32 → 3 (on 20-d input 6,915 \
             parameters, about the 7,110 of the two experts a row runs).",
            100.0 * DEAD
        ));
        let mut t = Table::new(&[
            "gate",
            "α",
            "accuracy",
            "max first-choice share",
            "peak during training",
            "min load share",
            "dead experts",
            "specialisation",
        ]);
        let ms = |arm: &str, m: &str| {
            run.get(arm, m).map_or(Value::Text("—".into()), |s| Value::MeanStd { mean: s.mean, std: s.std, n: s.n })
        };
        for gate in GATES {
            for (alpha, _) in ALPHAS {
                let arm = arm_name(alpha, gate);
                t.push(vec![
                    gate.into(),
                    alpha.into(),
                    ms(&arm, "accuracy"),
                    ms(&arm, "max_first_share"),
                    ms(&arm, "peak_first_share"),
                    ms(&arm, "min_load_share"),
                    ms(&arm, "dead_experts"),
                    ms(&arm, "specialisation"),
                ]);
            }
        }
        t.push(vec![
            "dense MLP".into(),
            "—".into(),
            ms("dense", "accuracy"),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
        ]);
        report.heading("α × gate (mean ± std over seeds, held-out set, after the last epoch)").table(&t);
        out.table("e6_table.csv", &t)?;

        report.heading("Verdicts");
        let share = |arm: &str| run.get(arm, "max_first_share").map(|s| s.mean);
        let verdict = |arm: &str| match share(arm) {
            None => "not measured (the cell failed)".to_string(),
            Some(s) if s >= COLLAPSED => format!("**supported**: one expert takes {:.0} % of first choices", 100.0 * s),
            Some(s) => format!(
                "**not supported**: the largest expert takes {:.0} % of first choices (collapse would be ≥ {:.0} %)",
                100.0 * s,
                100.0 * COLLAPSED
            ),
        };
        report.text(&format!(
            "*Claim: without the load-balancing loss, experts collapse (one takes ~90 %).* At E6's own settings \
             (linear gate, α = 0): {}. With the 2-layer gate and α = 0: {}.",
            verdict(&arm_name("0", "linear")),
            verdict(&arm_name("0", "2layer"))
        ));
        let cure = |gate: &str| {
            let (Some(off), Some(on)) = (share(&arm_name("0", gate)), share(&arm_name("1e-2", gate))) else {
                return "not measured".to_string();
            };
            format!("largest first-choice share {:.0} % at α = 0 and {:.0} % at α = 1e-2", 100.0 * off, 100.0 * on)
        };
        let peak = |arm: &str| {
            let (Some(p), Some(e)) = (run.get(arm, "peak_first_share"), run.get(arm, "peak_epoch")) else {
                return "not measured".to_string();
            };
            format!("{:.0} % (after epoch {:.1} on average)", 100.0 * p.mean, e.mean)
        };
        report.text(&format!(
            "*The same claim during training, not only at its end:* the largest first-choice share after any \
             epoch, α = 0: linear gate {}, 2-layer gate {}. A peak at or above {:.0} % that the end does not \
             show is a collapse the gate recovered from.",
            peak(&arm_name("0", "linear")),
            peak(&arm_name("0", "2layer")),
            100.0 * COLLAPSED
        ));
        report.text(&format!(
            "*Claim: the balancing loss cures collapse.* Linear gate: {}; 2-layer gate: {}. Where α = 0 did not \
             collapse there is nothing to cure, and the comparison says only how much the loss evens the load.",
            cure("linear"),
            cure("2layer")
        ));
        report.heading("Utilisation over training, seed 42 (or the first seed)");
        for arm in
            [arm_name("0", "linear"), arm_name("1e-2", "linear"), arm_name("0", "2layer"), arm_name("1e-2", "2layer")]
        {
            if let Some(c) = run.cell(&arm, run.seeds[0]).filter(|c| c.result.is_ok()) {
                report.text(&format!("**{arm}**: ![utilisation of {arm}]({}/utilisation.png)", c.dir));
            }
        }
        Ok(())
    }
}

/// One row per evaluation (epoch 0 is before training).
fn epoch_table(evals: &[mc::Eval]) -> Table {
    let experts = evals.first().map_or(0, |e| e.utilisation.len());
    let mut cols: Vec<String> = vec!["epoch".into(), "accuracy".into(), "loss".into()];
    cols.extend((0..experts).map(|e| format!("first_share_{e}")));
    cols.extend((0..experts).map(|e| format!("load_{e}")));
    cols.extend(
        ["load_variance", "entropy_per_row", "entropy_of_mean", "specialisation", "dead_experts"].map(String::from),
    );
    let mut t = Table::new(&cols);
    for (epoch, e) in evals.iter().enumerate() {
        let mut row: Vec<Value> = vec![epoch.into(), e.accuracy.into(), e.loss.into()];
        row.extend(e.utilisation.iter().map(|&v| Value::Num(v)));
        row.extend(e.load.iter().map(|&v| Value::Num(v)));
        row.extend([
            e.load_variance.into(),
            e.entropy.mean_token.into(),
            e.entropy.of_mean.into(),
            e.specialisation.into(),
            dead(e).into(),
        ]);
        t.push(row);
    }
    t
}

fn dead(e: &mc::Eval) -> usize {
    e.load.iter().filter(|&&l| l < DEAD).count()
}

fn final_metrics(e: &mc::Eval, n_experts: usize) -> Metrics {
    let mut m = vec![("accuracy".to_string(), e.accuracy), ("loss".to_string(), e.loss)];
    if n_experts > 1 {
        m.push(("max_first_share".into(), e.utilisation.iter().copied().fold(0.0, f64::max)));
        m.push(("min_load_share".into(), e.load.iter().copied().fold(f64::INFINITY, f64::min)));
        m.push(("dead_experts".into(), dead(e) as f64));
        m.push(("load_variance".into(), e.load_variance));
        m.push(("entropy_per_row".into(), e.entropy.mean_token));
        m.push(("specialisation".into(), e.specialisation));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_names_map_to_their_settings() {
        let c = config("a1e-3-2layer").unwrap();
        assert_eq!((c.router_hidden, c.router_losses.balance), (Some(GATE_HIDDEN), 1e-3));
        let c = config("a0-linear").unwrap();
        assert_eq!((c.router_hidden, c.router_losses.balance), (None, 0.0));
        let c = config("a1e-1-linear").unwrap();
        assert_eq!((c.router_hidden, c.router_losses.balance), (None, 1e-1));
        assert_eq!(config("dense").unwrap().n_experts, 1);
        assert!(config("a5-linear").is_err());
        assert_eq!(E6.arms(Preset::Quick).len(), 9);
        for arm in E6.arms(Preset::Quick) {
            config(&arm).unwrap().validate().unwrap();
        }
    }
}
