//! E1's report sections: the settings, the shares table, the ablation, phase 1, a verdict per
//! claim in plain words, and the pictures of the first seed. Everything comes from the run's
//! summary (mean ± std over seeds); the thresholds are stated in the text they decide.

use super::{sizes, BATCH, CLAIM_BAR, LR, SPLIT_SEED};
use crate::data::mnist;
use crate::run::experiment::{Finished, Preset};
use crate::run::results::{Report, Table, Value};

/// Adds E1's sections to `report`.
pub(super) fn write(run: &Finished, report: &mut Report) {
    let (n_train, n_val, n_test, e1, e2) = sizes(run.preset);
    let quick = if run.preset == Preset::Quick {
        format!(
            " **This is the quick preset: {n_train} training images, {n_test} test images, {e1} + {e2} epochs — far \
             from SPEC's 60k/10k and 10 + 15 epochs; its numbers show that the pipeline works, not what E1 finds.**"
        )
    } else {
        String::new()
    };
    report.heading("Settings").text(&format!(
        "Real MNIST (`{}`), standardised with mean 0.1307 and std 0.3081. The training images are split once \
         (seed {SPLIT_SEED}): {n_val} for validation (phase 1 keeps the epoch with the lowest validation loss), \
         {n_train} for training; every analysis is on {n_test} test images. Phase 1: MLP 784 → 128 → 128 → 2, ReLU, \
         dropout 0.2, {e1} epochs; phase 2: 4 experts 784 → 128 → 128 → 10 and a gate 784 → 256 → 128 → 4 \
         (dropout 0.2), dense softmax mixture, {e2} epochs; Adam lr {LR}, batch {BATCH} (SPEC gives none). \
         The transplant copies the expert's `layers.0` and `layers.1` (input and hidden), the output layer \
         stays fresh. *Top-gate share* of a slot: the share of test images whose largest gate is that slot's \
         expert. *Pair*: the digits the transplanted expert was pretrained on ({{0, 7}}; {{1, 8}} for \
         `selectivity`; the control watches slot 0 on {{0, 7}}). *Off*: the slot's expert switched off at test \
         time, the other gates renormalised. Dense reference: one MLP 784 → 317 → 317 → 10 (352,831 \
         parameters; one expert + the gate: 352,654), trained as phase 2.{quick}",
        mnist::default_dir().display()
    ));
    let ms = |arm: &str, m: &str| {
        run.get(arm, m).map_or(Value::Text("—".into()), |s| Value::MeanStd { mean: s.mean, std: s.std, n: s.n })
    };
    let mut t = Table::new(&[
        "arm",
        "slot",
        "pair",
        "accuracy",
        "share on pair",
        "share on rest",
        "share overall",
        "ratio",
        "difference",
        "largest expert's share",
    ]);
    let moe_arms =
        [("transplant", "0", "0, 7"), ("control", "0", "0, 7"), ("slot3", "3", "0, 7"), ("selectivity", "0", "1, 8")];
    for (arm, slot, pair) in moe_arms {
        t.push(vec![
            arm.into(),
            slot.into(),
            pair.into(),
            ms(arm, "accuracy"),
            ms(arm, "share_pair"),
            ms(arm, "share_rest"),
            ms(arm, "share_all"),
            ms(arm, "share_ratio"),
            ms(arm, "share_diff"),
            ms(arm, "max_share"),
        ]);
    }
    t.push(vec![
        "dense MLP".into(),
        "—".into(),
        "—".into(),
        ms("dense", "accuracy"),
        "—".into(),
        "—".into(),
        "—".into(),
        "—".into(),
        "—".into(),
        "—".into(),
    ]);
    report.heading("The watched slot's top-gate shares (mean ± std over seeds, test set)").table(&t);

    let mut a =
        Table::new(&["arm", "acc. on pair", "… slot off", "acc. on rest", "… slot off", "overall", "… slot off"]);
    for (arm, _, _) in moe_arms {
        a.push(vec![
            arm.into(),
            ms(arm, "acc_pair"),
            ms(arm, "off_acc_pair"),
            ms(arm, "acc_rest"),
            ms(arm, "off_acc_rest"),
            ms(arm, "accuracy"),
            ms(arm, "off_accuracy"),
        ]);
    }
    report.heading("Ablation: the watched slot's expert switched off at test time").table(&a);
    let mut p =
        Table::new(&["arm", "expert val. acc.", "expert test acc.", "selectivity: share on {0, 7}", "on the others"]);
    for arm in ["transplant", "slot3", "selectivity"] {
        p.push(vec![
            arm.into(),
            ms(arm, "expert_val_acc"),
            ms(arm, "expert_test_acc"),
            ms(arm, "share_07"),
            ms(arm, "share_not07"),
        ]);
    }
    report.heading("Phase 1 (the binary expert) and the share on {0, 7} of every transplanted slot").table(&p);

    report.heading("Verdicts");
    let mean = |arm: &str, m: &str| run.get(arm, m).map(|s| s.mean);
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    let pm = |arm: &str, m: &str| match run.get(arm, m) {
        Some(s) if s.n > 1 => format!("{} ± {}", pct(s.mean), pct(s.std)),
        Some(s) => pct(s.mean),
        None => "not measured".into(),
    };
    let judge = |v: Option<f64>| match v {
        None => "not measured (the cell failed)".to_string(),
        Some(v) if v >= CLAIM_BAR => format!("**supported** ({} ≥ {})", pct(v), pct(CLAIM_BAR)),
        Some(v) => format!("**not supported** ({} < {})", pct(v), pct(CLAIM_BAR)),
    };
    report.text(&format!(
        "*Claim: \"the pretrained 0/7 expert was selected 96 percent of the time\".* Read as the share of **all** \
         test images whose top gate is the transplanted expert (`transplant`, slot 0): {} — {}. Read as the share \
         **among the 0s and 7s**: {} — {}. On the other digits it is {}. {}",
        pm("transplant", "share_all"),
        judge(mean("transplant", "share_all")),
        pm("transplant", "share_pair"),
        judge(mean("transplant", "share_pair")),
        pm("transplant", "share_rest"),
        match (mean("transplant", "share_all"), mean("transplant", "share_pair")) {
            (Some(all), _) if all >= CLAIM_BAR => "The run supports the *collapse* reading: the gate sends nearly everything to the pretrained expert.",
            (_, Some(pair)) if pair >= CLAIM_BAR => "The run supports the *recognition* reading only: the gate sends the pretrained expert the 0s and 7s, not everything.",
            (Some(_), Some(_)) => "Neither reading reaches the bar: the claim is not reproduced at these settings.",
            _ => "",
        }
    ));
    report.text(&format!(
        "*How much is \"selected\"?* The top-gate share counts argmax wins, however narrow. The transplanted \
         expert's mean gate weight is {} on the 0s and 7s and {} on the other digits (an even split is 25 %): a \
         share near 100 % with a mean gate near 25 % is a gate that is almost flat and tilted slightly toward one \
         expert, not one that hands it the inputs.",
        pm("transplant", "gate_pair"),
        pm("transplant", "gate_rest"),
    ));
    report.text(&format!(
        "*Control (no transplant):* slot 0 takes {} of all test images and {} of the 0s and 7s (a quarter each \
         would be an even split), and the control's largest expert, whichever it is, takes {} of all test images \
         (the transplant arm's: {}). Whatever the transplant arm shows beyond the control is the transplant's \
         doing; a collapse that the control shows too is the mixture's, onto whichever expert wins first.",
        pm("control", "share_all"),
        pm("control", "share_pair"),
        pm("control", "max_share"),
        pm("transplant", "max_share"),
    ));
    let follows = match (mean("transplant", "share_pair"), mean("slot3", "share_pair"), mean("control", "share_pair")) {
        (Some(t0), Some(t3), Some(c)) if (t0 - t3).abs() < 0.1 && t0.min(t3) >= c + 0.1 => {
            "the gate **follows the weights**: the expert pulls about the same share from slot 3 as from slot 0, \
             well above the untrained slot 0 of the control"
                .to_string()
        }
        (Some(t0), Some(t3), Some(_)) if (t0 - t3).abs() < 0.1 => {
            "slots 0 and 3 give about the same share, but not clearly more than the control's untrained slot 0: \
             the transplant is not what the gate follows"
                .to_string()
        }
        (Some(t0), Some(t3), Some(_)) => format!(
            "the same expert pulls {:.0} points more from slot {} than from slot {}: **the slot matters**, not only the \
             weights",
            100.0 * (t0 - t3).abs(),
            if t0 > t3 { 0 } else { 3 },
            if t0 > t3 { 3 } else { 0 }
        ),
        _ => "not measured".to_string(),
    };
    report.text(&format!(
        "*Does the gate follow the weights or the index?* The expert's share of the 0s and 7s: slot 0 {}, slot 3 {} \
         (control slot 0: {}); {follows}.",
        pm("transplant", "share_pair"),
        pm("slot3", "share_pair"),
        pm("control", "share_pair"),
    ));
    let specific = match (mean("selectivity", "share_pair"), mean("selectivity", "share_rest")) {
        (Some(own), Some(rest)) if own > rest + 0.1 => {
            "the pull is **specific**: it takes its own digits far more often than the rest"
        }
        (Some(own), Some(rest)) if (own - rest).abs() <= 0.1 && rest > 0.5 => {
            "it **attracts every input** about equally: a pretrained expert pulls everything"
        }
        (Some(_), Some(_)) => "no clear pull either way",
        _ => "not measured",
    };
    report.text(&format!(
        "*Is the pull specific to what the expert learned?* A \"1 or 8\" expert in slot 0 takes {} of the 1s and 8s, \
         {} of the other digits, and {} of the 0s and 7s; {specific}.",
        pm("selectivity", "share_pair"),
        pm("selectivity", "share_rest"),
        pm("selectivity", "share_07"),
    ));
    let drop = |arm: &str, on: &str, off: &str| match (mean(arm, on), mean(arm, off)) {
        (Some(a), Some(b)) => format!("{:.1} points", 100.0 * (a - b)),
        _ => "not measured".into(),
    };
    report.text(&format!(
        "*Is the transplanted expert doing the work for its digits?* Switching slot 0 off at test time (the \
         other gates renormalised) costs `transplant` {} of accuracy on the 0s and 7s and {} on the other digits \
         (control: {} and {}). A much larger drop on the pair than on the rest means the mixture relies on the \
         expert for the digits it knows.",
        drop("transplant", "acc_pair", "off_acc_pair"),
        drop("transplant", "acc_rest", "off_acc_rest"),
        drop("control", "acc_pair", "off_acc_pair"),
        drop("control", "acc_rest", "off_acc_rest"),
    ));
    report.text(&format!(
        "*Dense reference:* the mixture (`transplant`) reaches {}, the control {}, one MLP of the parameters of \
         an expert + the gate {}.",
        pm("transplant", "accuracy"),
        pm("control", "accuracy"),
        pm("dense", "accuracy"),
    ));
    report.heading(&format!("Pictures, seed {}", run.seeds[0]));
    for (arm, _, _) in moe_arms {
        if let Some(c) = run.cell(arm, run.seeds[0]).filter(|c| c.result.is_ok()) {
            report.subheading(arm);
            report.text(&format!(
                "![{arm}: test digits framed in their top expert's colour (expert 0 blue, 1 orange, 2 green, 3 red)]({d}/digits.png)\n\n\
                 ![{arm}: top-gate share per digit and expert]({d}/top_share.png) \
                 ![{arm}: mean gate per digit and expert]({d}/mean_gate.png)\n\n\
                 ![{arm}: the watched slot's share per epoch]({d}/share_by_epoch.png)",
                d = c.dir
            ));
        }
    }
}
