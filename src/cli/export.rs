//! `tinymoe export --model CKPT --out FILE.safetensors`: any checkpoint's weights as
//! safetensors — a language model (`train lm`), an MoE language model (`train moe`, the demo) or
//! a classifier (`train`) — with PyTorch `state_dict` names and layouts (the table in
//! [`crate::interchange`]), so it loads with `safetensors.torch.load_file` and continues in
//! PyTorch; `tinymoe import` takes such a file back into a checkpoint.
//!
//! The tensors are read by name through the header's offsets
//! ([`checkpoint::read_tensors`]), so no kind needs its model type here; a file saved before
//! offsets were recorded is decoded with its model's type instead (the kinds `tinymoe import`
//! knows). The file's `__metadata__` carries `format = "pt"` (what the Hugging Face loaders
//! expect), the model kind, its config and the checkpoint's metadata as JSON strings, and the
//! layout rule. `--manifest FILE.json` also writes every tensor's names, shapes and values in
//! *our* layout ([d_in, d_out]), so another reader can check the file independently
//! (`scripts/check_safetensors.py`, run by CI).
//!
//! `--out DIR` (a name that does not end in `.safetensors`) writes a folder for the PyTorch
//! twin (`python/tinymoe_torch`): `model.safetensors`, `config.json` (kind, model config, the
//! run's settings, domains, tokeniser) and `reference.safetensors`, one batch and what tinymoe
//! computes on it ([`crate::twin`]), which `python/check_equal.py DIR` compares against PyTorch.

use crate::twin;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint of any kind: written by `tinymoe train lm`, `tinymoe train moe`, `tinymoe
    /// train` or the demo.
    #[arg(long, default_value = "results/lm/model.ckpt")]
    pub model: PathBuf,
    /// Where to write: FILE.safetensors (the weights alone), or a folder DIR for PyTorch
    /// (`DIR/model.safetensors`, `DIR/config.json`, `DIR/reference.safetensors`: see
    /// python/README.md).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a JSON manifest (names, shapes, values in tinymoe's layout) for checking the
    /// file with another reader.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// `tinymoe export`.
pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let done = twin::export(&a.model, &a.out, a.manifest.as_deref())?;
    println!(
        "wrote {} ({}: {} tensors, {} parameters)",
        done.wrote[0].display(),
        done.kind,
        done.mapping.len(),
        done.parameters
    );
    let width = done.mapping.iter().map(|m| m.pytorch.len()).max().unwrap_or(0).max(32);
    for m in &done.mapping {
        let note = if m.transposed { "  (transposed from ours)" } else { "" };
        println!("  {:<width$} {:?}{note}", m.pytorch, m.shape);
    }
    for path in &done.wrote[1..] {
        println!("wrote {}", path.display());
    }
    if done.wrote.len() > 2 || a.out.extension().is_none_or(|e| e != "safetensors") {
        println!("check it in PyTorch: python python/check_equal.py {}", a.out.display());
    }
    Ok(())
}
