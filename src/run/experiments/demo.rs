//! The first main job's two halves as experiments, so they run over seeds with a summary and a
//! report: `spirals` (an MLP against a dense mixture of 4 MLP experts on five interleaved
//! spirals) and `moe-lm` (the token-routed MoE language model on four synthetic domains). The
//! main job today is E5's [`super::e5::Demo`].

use crate::error::Result;
use crate::run::experiment::{Cell, Experiment, Finished, Metrics, Preset};
use crate::run::results::{Report, Results};
use crate::run::{classifier, moe_lm};

/// The spirals: MLP against a dense mixture, over seeds.
pub struct Spirals;

impl Experiment for Spirals {
    fn name(&self) -> &'static str {
        "spirals"
    }
    fn description(&self) -> &'static str {
        "an MLP and a 4-expert dense mixture of MLPs on five interleaved spirals"
    }
    fn question(&self) -> &'static str {
        "Does a dense mixture of four small MLP experts (hidden 64, 64) and a gate learn the five \
         spirals as well as one MLP of twice the width (hidden 128, 128), and does its gate split \
         the plane among the experts or leave one expert with most of it?"
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        vec!["mlp".into(), "moe".into()]
    }
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let preset = if cell.arm == "mlp" { "spirals-mlp" } else { "spirals-moe" };
        let spec = classifier::demo_spec(preset, cell.seed, cell.preset == Preset::Quick)?;
        let o = classifier::run(&spec, cell.out.dir(), None, false, cell.observer)?;
        let last = o.history.epochs.last().expect("a finished run has epochs");
        let mut m = vec![("val_acc".to_string(), last.val_acc), ("val_loss".to_string(), last.val_loss)];
        if let Some(shares) = classifier::top_expert_shares(&o.model, &o.val) {
            m.push(("max_expert_share".into(), shares.iter().copied().fold(0.0, f64::max)));
        }
        Ok(m)
    }
    fn report(&self, run: &Finished, _: &mut Results, report: &mut Report) -> Result<()> {
        report.heading("Pictures of the first seed");
        for arm in &run.arms {
            if let Some(c) = run.cell(arm, run.seeds[0]).filter(|c| c.result.is_ok()) {
                report.text(&format!(
                    "**{arm}**, seed {}: ![regions]({dir}/regions.png) {}",
                    c.seed,
                    if arm == "moe" { format!("![routing]({}/routing.png)", c.dir) } else { String::new() },
                    dir = c.dir
                ));
            }
        }
        Ok(())
    }
}

/// The token-routed MoE LM over seeds.
pub struct MoeLm;

impl Experiment for MoeLm {
    fn name(&self) -> &'static str {
        "moe-lm"
    }
    fn description(&self) -> &'static str {
        "a token-routed top-2 MoE language model on code, math, story, science"
    }
    fn question(&self) -> &'static str {
        "How far does a byte-level MoE language model (1 shared block, 4 MLP experts, top-2 token \
         routing with the Switch balance loss) get on four synthetic domains, and do its experts \
         take different shares of each domain's tokens?"
    }
    fn arms(&self, _: Preset) -> Vec<String> {
        vec!["token-top2".into()]
    }
    fn run_cell(&self, cell: &mut Cell) -> Result<Metrics> {
        let spec = moe_lm::demo_spec(cell.seed, cell.preset == Preset::Quick);
        let o = moe_lm::run(&spec, cell.out.dir(), None, false, cell.observer)?;
        let last = o.history.epochs.last().expect("a finished run has epochs");
        let mut m = vec![("val_loss".to_string(), last.val.loss)];
        for (d, l) in o.domains.iter().zip(&last.val.domain_loss) {
            m.push((format!("val_loss_{d}"), *l));
        }
        let max_share = last.val.top_share.iter().flatten().copied().fold(0.0, f64::max);
        m.push(("max_domain_expert_share".into(), max_share));
        Ok(m)
    }
    fn report(&self, run: &Finished, _: &mut Results, report: &mut Report) -> Result<()> {
        if let Some(c) = run.cells.iter().find(|c| c.result.is_ok()) {
            report.heading("Routing of the first seed");
            report.text(&format!(
                "![top expert per domain]({0}/routing_top_expert.png)\n\n![mean gate per domain]({0}/routing_mean_gate.png)\n\n\
                 The top expert of every byte of one validation sample per domain is listed in `{0}/tokens.txt`.",
                c.dir
            ));
        }
        Ok(())
    }
}
