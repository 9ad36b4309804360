//! `tinymoe import --weights F.safetensors --into CKPT --out NEW.ckpt`: weights changed outside
//! tinymoe (continued or fine-tuned in PyTorch, say) back into a checkpoint.
//!
//! The file is read by PyTorch `state_dict` name and layout (the table in
//! [`crate::interchange`]: Linear weights [out, in] are transposed back to ours). CKPT gives
//! what the file does not carry: the kind, the config and the model's Rust type, which saving
//! needs (the payload is the model struct). The new checkpoint is CKPT with every weight
//! replaced, all or nothing: a missing name, a shape or dtype that differs, a non-finite value,
//! or (unless `--allow-extra`) a name the model does not have stops the import before anything
//! is written, and the error lists every such tensor.
//!
//! The new checkpoint keeps CKPT's metadata (the run's settings, the tokeniser) and records
//! `imported_from`, but not CKPT's training state: the optimiser moments, generator states and
//! data position belonged to the old weights, so NEW.ckpt holds weights only and cannot be
//! `--resume`d (the meta's `training` entry goes too, so `tinymoe inspect` says so).

use crate::error::Error;
use crate::run::saved;
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The safetensors file to take every weight from, under PyTorch state_dict names and
    /// layouts (what `tinymoe export` writes; Linear weights [out, in]).
    #[arg(long)]
    pub weights: PathBuf,
    /// The checkpoint to copy: its kind, config and metadata are kept, its weights replaced.
    /// Any kind tinymoe trains: `train lm`, `train moe` (and the demo's MoE LM), `train`.
    #[arg(long)]
    pub into: PathBuf,
    /// Where to write the new checkpoint (atomically); not the --into file itself.
    #[arg(long)]
    pub out: PathBuf,
    /// Ignore tensors in the file that the model does not have (by default they are an error).
    #[arg(long)]
    pub allow_extra: bool,
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// `tinymoe import`.
pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    if same_file(&a.out, &a.into) {
        return Err(Error::bad_value(
            "--out",
            a.out.display(),
            "is the --into checkpoint itself; write the imported weights to a new file",
        )
        .into());
    }
    // Neither input may be written over (`--out` the safetensors file itself).
    crate::io::refuse_overwrite(&[&a.weights, &a.into], &a.out)?;
    let done = saved::import(&a.weights, &a.into, &a.out, a.allow_extra)
        .with_context(|| format!("cannot import into {}", a.into.display()))?;
    let (changed, unused, n_tensors, parameters) = (&done.changed, &done.unused, done.tensors, done.parameters);
    println!(
        "imported {} into a copy of {} (kind {}): {n_tensors} tensors, {parameters} parameters",
        a.weights.display(),
        a.into.display(),
        done.kind
    );
    let listed: Vec<&str> = changed.iter().map(String::as_str).take(8).collect();
    let more = if changed.len() > listed.len() {
        format!(", … ({} more)", changed.len() - listed.len())
    } else {
        String::new()
    };
    if changed.is_empty() {
        println!("  every tensor is bit for bit the one {} holds", a.into.display());
    } else {
        println!(
            "  {} of {n_tensors} tensors differ from {}: {}{more}",
            changed.len(),
            a.into.display(),
            listed.join(", ")
        );
    }
    if !unused.is_empty() {
        println!("  ignored {} tensor(s) of the file the model does not have: {}", unused.len(), unused.join(", "));
    }
    println!("wrote {}", a.out.display());
    println!(
        "  weights only: the training state of {} (optimiser moments, generator states, data position) belonged \
         to its old weights and is not carried over, so this checkpoint cannot be --resume'd; its metadata keeps \
         the original's settings and records imported_from",
        a.into.display()
    );
    Ok(())
}
