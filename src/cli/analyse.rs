//! `tinymoe analyse CKPT --data mnist|sentiment|tweets [--out DIR]`: the routing analysis of a
//! saved classifier MoE on a held-out set — the class × expert tables and heatmaps the
//! experiments write (`run::analysis`, shared with E1's cells). `tinymoe analyse CKPT` of an
//! MoE LM routes its run's own held-out sequences (`run::moe_lm::analyse`). Parse, call, print.

use crate::run::analysis::{self, AnalyseData};
use crate::run::moe_lm;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AnalyseArgs {
    /// A classifier MoE checkpoint (`tinymoe train --model moe`, or an e1 cell's model.ckpt), or
    /// an MoE LM checkpoint (`tinymoe train moe`, the demo, E5, or one imported from PyTorch).
    pub checkpoint: PathBuf,
    /// A classifier's held-out set to route: mnist (the 10,000 test images), sentiment (E6's
    /// synthetic features) or tweets (E6's real tweets, hashed bag-of-words). An MoE LM needs
    /// none: it routes its own run's held-out sequences.
    #[arg(long, value_enum)]
    pub data: Option<AnalyseData>,
    /// Results folder (default: analysis/ beside the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinymoe analyse`.
pub fn analyse(a: AnalyseArgs) -> anyhow::Result<()> {
    let out = a.out.unwrap_or_else(|| a.checkpoint.parent().unwrap_or(std::path::Path::new(".")).join("analysis"));
    let (header, _) = crate::checkpoint::read(&a.checkpoint)?;
    if header.kind == moe_lm::KIND {
        let done = moe_lm::analyse(&a.checkpoint, &out)?;
        println!("{}: validation loss {:.4} nats/byte", a.checkpoint.display(), done.val.loss);
        println!("share of each domain's tokens whose top expert is e:");
        for (name, shares) in done.domains.iter().zip(&done.val.top_share) {
            println!("{name:>12}  {}", shares.iter().map(|v| format!("{v:>7.3}")).collect::<String>());
        }
        println!("{}", done.wrote);
        return Ok(());
    }
    let Some(data) = a.data else {
        anyhow::bail!(
            "{} holds a {:?} model: name its held-out set with --data (mnist, sentiment or tweets)",
            a.checkpoint.display(),
            header.kind
        );
    };
    let done = analysis::analyse_checkpoint(&a.checkpoint, data, &out)?;
    let r = &done.routing;
    println!("{} on {}: {} rows, accuracy {:.4}", a.checkpoint.display(), data.name(), done.labels.len(), r.accuracy);
    let experts = r.gates.ncols();
    println!("share of each class's rows whose top gate is each expert:");
    println!("{:>10}  {}", "class", (0..experts).map(|e| format!("{:>8}", format!("expert {e}"))).collect::<String>());
    for (c, name) in done.class_names.iter().enumerate() {
        let row = r.class_expert.top_share.row(c);
        println!("{name:>10}  {}", row.iter().map(|v| format!("{v:>8.3}")).collect::<String>());
    }
    let util = r.utilisation();
    println!("{:>10}  {}", "all", util.iter().map(|v| format!("{v:>8.3}")).collect::<String>());
    println!("{}", done.wrote);
    Ok(())
}
