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

use crate::checkpoint::{self, NamedTensors};
use crate::cli::import::Typed;
use crate::engine::params::Tensors;
use crate::interchange::{export_safetensors, mapping};
use crate::io::{refuse_overwrite, write_atomic};
use crate::twin;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Every tensor of the checkpoint at `path`, by name, with its header.
fn read_model(path: &Path) -> anyhow::Result<(checkpoint::Header, NamedTensors)> {
    let (header, _) = checkpoint::read(path)?;
    if header.tensors.iter().all(|t| t.offset.is_some()) {
        return Ok(checkpoint::read_tensors(path, |_| true)?);
    }
    // Saved before offsets were recorded: only the model's own type can decode it.
    let (header, typed) = Typed::load(path)?;
    let tensors = typed.tensors().tensors().into_iter().map(|(n, t)| (n, t.to_owned())).collect();
    Ok((header, NamedTensors(tensors)))
}

/// `tinymoe export`.
pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    // Neither output may land on the checkpoint being exported, nor on each other.
    refuse_overwrite(&[&a.model], &a.out)?;
    if let Some(manifest) = &a.manifest {
        refuse_overwrite(&[&a.model, &a.out], manifest)?;
    }
    let folder = a.out.extension().is_none_or(|e| e != "safetensors");
    let weights = if folder { a.out.join("model.safetensors") } else { a.out.clone() };
    if folder {
        crate::io::create_dir(&a.out)?;
        crate::io::refuse_overwrite_in(
            &[&a.model],
            &a.out,
            &["model.safetensors", "config.json", "reference.safetensors"],
        )?;
    }
    let (header, model) = read_model(&a.model)?;
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("tinymoe.kind".to_string(), header.kind.clone()),
        ("tinymoe.config".to_string(), header.config.to_string()),
        ("tinymoe.meta".to_string(), header.meta.to_string()),
        ("tinymoe.layout".to_string(), "PyTorch state_dict: Linear weights [out, in]".to_string()),
    ]);
    export_safetensors(&weights, &model, &metadata)?;
    let map = mapping(&model);
    let total: usize = model.tensors().iter().map(|(_, t)| t.len()).sum();
    println!("wrote {} ({}: {} tensors, {total} parameters)", weights.display(), header.kind, map.len());
    let width = map.iter().map(|m| m.pytorch.len()).max().unwrap_or(0).max(32);
    for m in &map {
        let note = if m.transposed { "  (transposed from ours)" } else { "" };
        println!("  {:<width$} {:?}{note}", m.pytorch, m.shape);
    }
    if let Some(path) = &a.manifest {
        let tensors: Vec<serde_json::Value> = map
            .iter()
            .zip(model.tensors())
            .map(|(m, (_, t))| {
                serde_json::json!({
                    "name": m.pytorch,
                    "ours": m.ours,
                    "shape": m.shape,
                    "our_shape": t.shape(),
                    "transposed": m.transposed,
                    // Row-major in our layout; an f32 is exact as a JSON (f64) number.
                    "values": t.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({ "file": weights, "kind": header.kind, "tensors": tensors });
        write_atomic(path, serde_json::to_string(&doc)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    if folder {
        let (_, typed) = Typed::load(&a.model)?;
        let config = a.out.join("config.json");
        write_atomic(&config, serde_json::to_string_pretty(&twin::config_json(&header))?.as_bytes())?;
        let kind = twin::optimizer_of(&header);
        let reference = match &typed {
            Typed::Lm(t) => twin::lm(&t.model, kind, twin::SEED),
            Typed::MoeLm(t) => twin::moe_lm(&t.model, kind, twin::SEED),
            Typed::Classifier(t) => twin::classifier(&t.model, kind, twin::SEED),
        };
        let path = a.out.join("reference.safetensors");
        reference.save(&path)?;
        println!(
            "wrote {} and {} (check in PyTorch: python python/check_equal.py {})",
            config.display(),
            path.display(),
            a.out.display()
        );
    }
    Ok(())
}
