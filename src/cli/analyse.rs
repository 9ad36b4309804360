//! `tinymoe analyse CKPT --data mnist|sentiment|tweets [--out DIR]`: the routing analysis of a
//! saved classifier MoE on a held-out set — the class × expert tables and heatmaps the
//! experiments write (`run::analysis`, shared with E1's cells). Parse, call, print.

use crate::run::analysis::{self, AnalyseData};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AnalyseArgs {
    /// A classifier MoE checkpoint (`tinymoe train --model moe`, or an e1 cell's model.ckpt).
    pub checkpoint: PathBuf,
    /// The held-out set to route: mnist (the 10,000 test images), sentiment (E6's synthetic
    /// features) or tweets (E6's real tweets, hashed bag-of-words).
    #[arg(long, value_enum)]
    pub data: AnalyseData,
    /// Results folder (default: analysis/ beside the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinymoe analyse`.
pub fn analyse(a: AnalyseArgs) -> anyhow::Result<()> {
    let out = a.out.unwrap_or_else(|| a.checkpoint.parent().unwrap_or(std::path::Path::new(".")).join("analysis"));
    let done = analysis::analyse_checkpoint(&a.checkpoint, a.data, &out)?;
    let r = &done.routing;
    println!("{} on {}: {} rows, accuracy {:.4}", a.checkpoint.display(), a.data.name(), done.labels.len(), r.accuracy);
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
