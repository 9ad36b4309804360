//! E1 (SPEC §4): an MNIST "0 or 7" expert, pretrained alone, transplanted into a 4-expert dense
//! mixture. Does the gate then send it the 0s and 7s it knows, or everything?
//!
//! ```text
//!   phase 1  expert  MLP 784 → 128 → 128 → 2 (ReLU, dropout 0.2), "digit ∈ {0, 7}?" vs the rest,
//!            10 epochs Adam 1e-3; the weights of the epoch with the lowest validation loss kept
//!   phase 2  MoE     4 experts 784 → 128 → 128 → 10, gate MLP 784 → 256 → 128 → 4 (dropout 0.2),
//!            y = Σₑ softmax(gate(x))ₑ · expertₑ(x); the pretrained expert's input and hidden
//!            layers (layers.0, layers.1) copied into one slot, its output layer fresh;
//!            15 epochs Adam 1e-3
//! ```
//! Arms: `transplant` (slot 0, the seed's run), `control` (no transplant), `slot3` (the same
//! expert in slot 3: does the gate follow the weights or the index?), `selectivity` (a "1 or 8"
//! expert in slot 0: is the pull specific to what the expert learned?), and `dense`, one MLP
//! 784 → 317 → 317 → 10 with the parameters of one expert + the gate (352,831 vs 352,654).
//!
//! Data: the 60,000 MNIST training images, split once (seed 2024) into a validation set (model
//! selection in phase 1, the validation curve in phase 2) and the training rows; every
//! analysis is on the test images, never used to choose anything. Each MoE cell writes
//! `epochs.csv` (the watched slot's top-gate share on the test set after every epoch), the two
//! routing heatmaps (`run::analysis`), `share_by_epoch.png`, `digits.png` (10 test digits per
//! class, framed in their top expert's colour) and `model.ckpt` (for `tinymoe analyse`).

use crate::checkpoint::{self, Trained};
use crate::data::{mnist, Dataset};
use crate::engine::init::{self, streams};
use crate::engine::optim::{Kind, Schedule};
use crate::error::{Error, Result};
use crate::models::classifier::{self, Classifier};
use crate::plot::digits::{framed_grid_png, Framed};
use crate::plot::line::{line_chart, Series};
use crate::run::analysis::{self, Routing};
use crate::run::classifier::{ModelConfig, KIND};
use crate::run::experiment::{Cell, Experiment, Finished, Metrics, Preset};
use crate::run::results::{Report, Results, Table, Value};
use crate::run::settings::DataChoice;
use crate::run::Observer;
use crate::train::{self, Checkpoint, FitState};
use crate::transplant;
use rand::seq::SliceRandom;
use std::path::Path;

mod report;

pub struct E1;

/// Adam's learning rate and the batch size (SPEC gives no batch size: 64, PyTorch's MNIST example's).
const LR: f64 = 1e-3;
const BATCH: usize = 64;
const DROPOUT: f64 = 0.2;
const EXPERT_HIDDEN: [usize; 2] = [128, 128];
const GATE_HIDDEN: [usize; 2] = [256, 128];
const N_EXPERTS: usize = 4;
/// The dense reference: 784 → 317 → 317 → 10 has 352,831 parameters, one expert (118,282) + the
/// gate (234,372) 352,654.
const DENSE_HIDDEN: [usize; 2] = [317, 317];
/// The split of the training images, the same for every arm and seed.
const SPLIT_SEED: u64 = 2024;
/// "Supported" for the 96 % claim: a share of at least this (the claim within 6 points).
const CLAIM_BAR: f64 = 0.90;

/// Training rows, validation rows, test rows, phase-1 epochs, phase-2 epochs.
fn sizes(preset: Preset) -> (usize, usize, usize, usize, usize) {
    match preset {
        Preset::Quick => (3_500, 500, 2_000, 2, 3),
        Preset::Full => (54_000, 6_000, 10_000, 10, 15),
    }
}

/// What an arm is: which pair its expert was pretrained on and which slot it goes into
/// (None: no transplant), or the dense reference.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arm {
    Moe { pair: Option<[usize; 2]>, slot: usize },
    Dense,
}

impl Arm {
    fn of(name: &str) -> Result<Arm> {
        Ok(match name {
            "transplant" => Arm::Moe { pair: Some([0, 7]), slot: 0 },
            "control" => Arm::Moe { pair: None, slot: 0 },
            "slot3" => Arm::Moe { pair: Some([0, 7]), slot: 3 },
            "selectivity" => Arm::Moe { pair: Some([1, 8]), slot: 0 },
            "dense" => Arm::Dense,
            _ => return Err(Error::Unknown { what: "arm of e1".into(), name: name.into(), expected: ARMS.join(", ") }),
        })
    }
}

const ARMS: [&str; 5] = ["transplant", "control", "slot3", "selectivity", "dense"];

/// The training, validation and test sets of a preset: the same for every arm and seed.
fn datasets(preset: Preset) -> Result<(Dataset, Dataset, Dataset)> {
    let dir = mnist::default_dir();
    let (n_train, n_val, n_test, _, _) = sizes(preset);
    let all = mnist::load_split(&dir, mnist::Split::Train)?;
    let test = mnist::load_split(&dir, mnist::Split::Test)?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut init::rng(SPLIT_SEED));
    let (n_val, n_train) = (n_val.min(all.len() / 10), n_train.min(all.len() - n_val.min(all.len() / 10)));
    let val = all.select(&order[..n_val]);
    let train = all.select(&order[n_val..n_val + n_train]);
    let idx: Vec<usize> = (0..n_test.min(test.len())).collect();
    Ok((train, val, test.select(&idx)))
}

/// The same images with labels 1 for the digits of `pair` and 0 for the rest.
fn binary(d: &Dataset, pair: [usize; 2]) -> Dataset {
    Dataset { x: d.x.clone(), y: d.y.iter().map(|y| usize::from(pair.contains(y))).collect(), classes: 2 }
}

fn fit_config(epochs: usize, seed: u64) -> train::Config {
    train::Config {
        epochs,
        batch_size: BATCH,
        lr: LR,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: None,
        seed,
        rules: Vec::new(),
    }
}

/// Phase 1: the binary expert for `pair`, the epoch with the lowest validation loss kept.
/// Returns it and its (validation, test) accuracy on the binary task.
fn pretrain(
    pair: [usize; 2],
    seed: u64,
    epochs: usize,
    sets: (&Dataset, &Dataset, &Dataset),
    obs: &mut dyn Observer,
) -> Result<(Classifier<f32>, f64, f64)> {
    let (train_set, val, test) = (binary(sets.0, pair), binary(sets.1, pair), binary(sets.2, pair));
    // Its own init stream, so the expert does not start as the MoE's expert 0 does.
    let mut rng = init::stream(seed, 100 + streams::INIT);
    let mut model = classifier::init_mlp(784, &EXPERT_HIDDEN, 2, DROPOUT, &mut rng);
    let mut best: Option<(f64, f64, Classifier<f32>)> = None;
    obs.start(&format!("phase 1: the {}-or-{} expert", pair[0], pair[1]), epochs * train_set.len().div_ceil(BATCH), 0);
    train::fit_resumable(
        &mut model,
        &train_set,
        &val,
        &fit_config(epochs, seed),
        None,
        None,
        &mut |p| obs.step(p),
        &mut |c, m, _| {
            if let Checkpoint::Epoch(e) = c {
                if best.as_ref().is_none_or(|b| e.val_loss < b.0) {
                    best = Some((e.val_loss, e.val_acc, m.clone()));
                }
            }
            Ok(())
        },
    )?;
    obs.finish();
    let (_, val_acc, model) = best.expect("at least one epoch ran");
    let (_, test_acc) = classifier::evaluate(&model, test.x.view(), &test.y, 1000);
    Ok((model, val_acc, test_acc))
}

/// The watched slot's top-gate shares on `pair`, on the rest and overall, and every expert's
/// overall share: one line of `epochs.csv`.
fn epoch_row(epoch: usize, r: &Routing, labels: &[usize], slot: usize, pair: [usize; 2], val_acc: f64) -> Vec<Value> {
    let mut row: Vec<Value> = vec![epoch.into(), val_acc.into(), r.accuracy.into()];
    row.push(r.top_share_where(labels, slot, |y| pair.contains(&y)).into());
    row.push(r.top_share_where(labels, slot, |y| !pair.contains(&y)).into());
    row.push(r.top_share_where(labels, slot, |_| true).into());
    row.extend(r.utilisation().into_iter().map(Value::Num));
    row
}

impl Experiment for E1 {
    fn name(&self) -> &'static str {
        "e1"
    }
    fn description(&self) -> &'static str {
        "E1: an MNIST \"0 or 7\" expert transplanted into a 4-expert dense mixture, with slot, selectivity, no-transplant and dense controls"
    }
    fn question(&self) -> &'static str {
        "The seed's claim: \"the pretrained 0/7 expert was selected 96 percent of the time\". That can mean \
         two things: the share of *all* test images whose top gate is the pretrained expert (the gate \
         collapsing onto the one expert that was trained first), or the share among the 0s and 7s only \
         (the gate recognising what the expert knows). The run measures both, and with its controls asks \
         whether the gate follows the weights or the slot, and whether any pretrained expert pulls every \
         input or only the digits it learned."
    }
    fn data(&self) -> Vec<DataChoice> {
        vec![DataChoice::Real]
    }
    fn prepare(&self, _: Preset, _: DataChoice) -> Result<()> {
        let dir = mnist::default_dir();
        let missing = |path: &Path, what: &str| Error::MissingData {
            path: path.to_path_buf(),
            what: what.into(),
            fetch: mnist::FETCH.into(),
        };
        if !dir.is_dir() {
            return Err(missing(&dir, "the MNIST folder"));
        }
        for split in ["train", "t10k"] {
            for part in ["images-idx3", "labels-idx1"] {
                let name = format!("{split}-{part}-ubyte");
                if !dir.join(&name).is_file() && !dir.join(format!("{name}.gz")).is_file() {
                    return Err(missing(&dir.join(name), "this MNIST file (raw or .gz)"));
                }
            }
        }
        Ok(())
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        ARMS.iter().map(|a| a.to_string()).collect()
    }
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let (_, _, _, epochs1, epochs2) = sizes(cell.preset);
        let (train_set, val, test) = datasets(cell.preset)?;
        let seed = cell.seed;
        let (pair, slot) = match Arm::of(cell.arm)? {
            Arm::Dense => return run_dense(cell, epochs2, &train_set, &val, &test),
            Arm::Moe { pair, slot } => (pair, slot),
        };
        // The digits the watched slot's expert knows ({0, 7} for the control: what it would know).
        let own = pair.unwrap_or([0, 7]);
        let mut m: Metrics = Vec::new();
        let mut model = classifier::init_moe(
            784,
            &EXPERT_HIDDEN,
            10,
            &GATE_HIDDEN,
            N_EXPERTS,
            DROPOUT,
            &mut init::stream(seed, streams::INIT),
        );
        if let Some(pair) = pair {
            let (expert, val_acc, test_acc) = pretrain(pair, seed, epochs1, (&train_set, &val, &test), cell.observer)?;
            m.push(("expert_val_acc".into(), val_acc));
            m.push(("expert_test_acc".into(), test_acc));
            let to = |l: usize| format!("experts.{slot}.layers.{l}");
            let (to0, to1) = (to(0), to(1));
            transplant::copy_parts(&expert, &mut model, &[("layers.0", &to0), ("layers.1", &to1)])?;
        }
        // Phase 2, with the test routing after every epoch (epoch 0: before training).
        let mut epochs = Table::new(&[
            "epoch",
            "val_acc",
            "test_acc",
            "share_pair",
            "share_rest",
            "share_all",
            "util_0",
            "util_1",
            "util_2",
            "util_3",
        ]);
        let route =
            |m: &Classifier<f32>| analysis::route(m, test.x.view(), &test.y, 10, None).expect("the E1 model is an MoE");
        epochs.push(epoch_row(0, &route(&model), &test.y, slot, own, f64::NAN));
        cell.observer.start(
            &format!("phase 2: the mixture ({}, seed {seed})", cell.arm),
            epochs2 * train_set.len().div_ceil(BATCH),
            0,
        );
        let observer = &mut *cell.observer;
        train::fit_resumable(
            &mut model,
            &train_set,
            &val,
            &fit_config(epochs2, seed),
            None,
            cell.stop,
            &mut |p| observer.step(p),
            &mut |c, m, _| {
                if let Checkpoint::Epoch(e) = c {
                    epochs.push(epoch_row(e.epoch, &route(m), &test.y, slot, own, e.val_acc));
                }
                Ok(())
            },
        )?;
        cell.observer.finish();
        if cell.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(Error::bad_value("run", cell.arm, "was interrupted (Ctrl-C) before phase 2 finished"));
        }
        let out = &mut *cell.out;
        out.table("epochs.csv", &epochs)?;
        save_model(out, &model, cell.arm, seed)?;

        // The analyses, on the test images.
        let r = route(&model);
        let y = &test.y;
        let in_own = |d: usize| own.contains(&d);
        let in07 = |d: usize| d == 0 || d == 7;
        let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        analysis::write_routing(out, &r, &names, "digit", &format!("{}, seed {seed}", cell.arm))?;
        draw_share_by_epoch(out, &epochs, slot, own, cell.arm, seed)?;
        draw_digits(out, &r, &test)?;
        let mut off = [false; N_EXPERTS];
        off[slot] = true;
        let ablated = analysis::route(&model, test.x.view(), y, 10, Some(&off)).expect("an MoE");
        let (s_own, s_rest) = (r.top_share_where(y, slot, in_own), r.top_share_where(y, slot, |d| !in_own(d)));
        m.extend([
            ("accuracy".to_string(), r.accuracy),
            ("acc_pair".into(), r.accuracy_where(y, in_own)),
            ("acc_rest".into(), r.accuracy_where(y, |d| !in_own(d))),
            ("share_pair".into(), s_own),
            ("share_rest".into(), s_rest),
            ("share_all".into(), r.top_share_where(y, slot, |_| true)),
            ("share_ratio".into(), s_own / s_rest),
            ("share_diff".into(), s_own - s_rest),
            ("gate_pair".into(), r.mean_gate_where(y, slot, in_own)),
            ("gate_rest".into(), r.mean_gate_where(y, slot, |d| !in_own(d))),
            ("share_07".into(), r.top_share_where(y, slot, in07)),
            ("share_not07".into(), r.top_share_where(y, slot, |d| !in07(d))),
            ("max_share".into(), r.utilisation().into_iter().fold(0.0, f64::max)),
            ("off_accuracy".into(), ablated.accuracy),
            ("off_acc_pair".into(), ablated.accuracy_where(y, in_own)),
            ("off_acc_rest".into(), ablated.accuracy_where(y, |d| !in_own(d))),
        ]);
        cell.observer.note(&format!(
            "   {} · seed {seed}: test accuracy {:.4}; slot {slot}'s top-gate share {:.3} on {{{},{}}}, {:.3} on the rest",
            cell.arm, r.accuracy, s_own, own[0], own[1], s_rest
        ));
        Ok(m)
    }
    fn report(&self, run: &Finished, _out: &mut Results, report: &mut Report) -> Result<()> {
        report::write(run, report);
        Ok(())
    }
}

/// The dense reference: one MLP with the parameters of one expert + the gate, trained as phase 2.
fn run_dense(cell: &mut Cell, epochs: usize, train_set: &Dataset, val: &Dataset, test: &Dataset) -> Result<Metrics> {
    let mut rng = init::stream(cell.seed, streams::INIT);
    let mut model = classifier::init_mlp(784, &DENSE_HIDDEN, 10, DROPOUT, &mut rng);
    cell.observer.start(&format!("dense MLP, seed {}", cell.seed), epochs * train_set.len().div_ceil(BATCH), 0);
    let observer = &mut *cell.observer;
    let history = train::fit_resumable(
        &mut model,
        train_set,
        val,
        &fit_config(epochs, cell.seed),
        None,
        cell.stop,
        &mut |p| observer.step(p),
        &mut |_, _, _| Ok(()),
    )?;
    cell.observer.finish();
    let mut t = Table::new(&["epoch", "val_acc"]);
    for e in &history.epochs {
        t.push(vec![e.epoch.into(), e.val_acc.into()]);
    }
    cell.out.table("epochs.csv", &t)?;
    let logits = classifier::logits(&model, test.x.view());
    let predicted = crate::moe::metrics::top_expert(logits.view());
    let acc = |keep: &dyn Fn(usize) -> bool| {
        let rows: Vec<usize> = (0..test.len()).filter(|&r| keep(test.y[r])).collect();
        rows.iter().filter(|&&r| predicted[r] == test.y[r]).count() as f64 / rows.len().max(1) as f64
    };
    Ok(vec![
        ("accuracy".into(), acc(&|_| true)),
        // Its "pair" is {0, 7}, as the transplant arm's.
        ("acc_pair".into(), acc(&|d| d == 0 || d == 7)),
        ("acc_rest".into(), acc(&|d| d != 0 && d != 7)),
    ])
}

/// `model.ckpt`: the trained mixture, loadable by `tinymoe analyse` and `tinymoe inspect`.
fn save_model(out: &mut Results, model: &Classifier<f32>, arm: &str, seed: u64) -> Result<()> {
    let saved: Trained<Classifier<f32>, FitState> = Trained { model: model.clone(), state: None };
    let meta = serde_json::json!({ "experiment": "e1", "arm": arm, "seed": seed });
    checkpoint::save(&out.path("model.ckpt"), KIND, &ModelConfig::of(model), &saved, meta)?;
    out.record("model.ckpt");
    Ok(())
}

/// `share_by_epoch.png`: the watched slot's top-gate share on the test set, epoch by epoch.
fn draw_share_by_epoch(
    out: &mut Results,
    epochs: &Table,
    slot: usize,
    own: [usize; 2],
    arm: &str,
    seed: u64,
) -> Result<()> {
    let column = |name: &str| -> Vec<(f64, f64)> {
        let c = epochs.columns.iter().position(|k| k == name).expect("a column of epochs.csv");
        epochs
            .rows
            .iter()
            .filter_map(|r| match (&r[0], &r[c]) {
                (Value::Int(e), Value::Num(v)) => Some((*e as f64, *v)),
                _ => None,
            })
            .collect()
    };
    let (a, b, c) = (column("share_pair"), column("share_rest"), column("share_all"));
    let (na, nb) = (format!("digits {} and {}", own[0], own[1]), "the other digits".to_string());
    let title = format!("{arm}, seed {seed}: share of test images whose top gate is expert {slot}");
    out.figure("share_by_epoch", &title, |p| {
        line_chart(
            p,
            &title,
            "epoch (0: before phase 2)",
            "top-gate share",
            &[
                Series { name: &na, points: &a },
                Series { name: &nb, points: &b },
                Series { name: "all test images", points: &c },
            ],
        )
    })?;
    Ok(())
}

/// `digits.png`: the first 10 test images of each digit (one row per digit), each framed in
/// the colour of its top expert (the legend swatches: experts 0, 1, 2, 3).
fn draw_digits(out: &mut Results, r: &Routing, test: &Dataset) -> Result<()> {
    let mut rows: Vec<Vec<Framed>> = vec![Vec::new(); 10];
    for (i, &y) in test.y.iter().enumerate() {
        if rows[y].len() < 10 {
            // Back from the standardised features to ink in [0, 1].
            let ink = test.x.row(i).iter().map(|&v| v * mnist::STD + mnist::MEAN).collect();
            rows[y].push(Framed { ink, colour: r.top[i] });
        }
    }
    let png = framed_grid_png(&out.path("digits.png"), mnist::SIDE, &rows, &[0, 1, 2, 3])?;
    out.write("digits.png", &png)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_map_to_their_pair_and_slot_and_the_dense_reference_matches_the_parameter_count() {
        assert_eq!(Arm::of("slot3").unwrap(), Arm::Moe { pair: Some([0, 7]), slot: 3 });
        assert_eq!(Arm::of("selectivity").unwrap(), Arm::Moe { pair: Some([1, 8]), slot: 0 });
        assert_eq!(Arm::of("control").unwrap(), Arm::Moe { pair: None, slot: 0 });
        assert!(Arm::of("nope").is_err());
        let count = |m: &Classifier<f32>| crate::engine::params::count(m);
        let mut rng = init::rng(1);
        let expert = classifier::init_mlp::<f32>(784, &EXPERT_HIDDEN, 10, 0.0, &mut rng);
        let moe = classifier::init_moe::<f32>(784, &EXPERT_HIDDEN, 10, &GATE_HIDDEN, 4, 0.0, &mut rng);
        let dense = classifier::init_mlp::<f32>(784, &DENSE_HIDDEN, 10, 0.0, &mut rng);
        let gate = count(&moe) - 4 * count(&expert);
        assert_eq!((count(&expert), gate, count(&dense)), (118_282, 234_372, 352_831));
    }
}
