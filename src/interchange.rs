//! Weights in and out as [safetensors](https://huggingface.co/docs/safetensors), named and laid
//! out like a PyTorch `state_dict`, so a model trained here can be loaded and continued in
//! PyTorch (and a PyTorch model's weights studied here).
//!
//! On the command line: `tinymoe export --model CKPT --out F.safetensors` writes any
//! checkpoint's weights (language model, MoE language model, classifier) with the checkpoint's
//! kind, config and metadata in `__metadata__`; `tinymoe import --weights F.safetensors --into
//! CKPT --out NEW.ckpt` takes weights changed elsewhere (fine-tuned in PyTorch, say) back into a
//! checkpoint of the same kind. `scripts/check_safetensors.py` checks an exported file with
//! Python's `safetensors`, NumPy and PyTorch.
//!
//! A safetensors file is an 8-byte header length, a JSON header (every tensor's name, dtype,
//! shape and byte range, plus a `__metadata__` map of strings), then the raw little-endian
//! bytes. We write f32 only.
//!
//! ## Names and layouts
//!
//! Each of our dotted names maps to one PyTorch name by its last part; the module path before
//! it (`blocks.0.attn.q`) is kept, so a PyTorch port that names its submodules the same
//! (`self.blocks = nn.ModuleList(..)`, `self.attn.q = nn.Linear(..)`) loads the file with
//! `model.load_state_dict(safetensors.torch.load_file(path))`.
//!
//! | ours (shape)                             | safetensors / PyTorch (shape)                    | module         |
//! | ---------------------------------------- | ------------------------------------------------ | -------------- |
//! | `….w` `[d_in, d_out]`                    | `….weight` `[d_out, d_in]`, **transposed**       | `nn.Linear`    |
//! | `….b` `[d_out]`                          | `….bias` `[d_out]`                               | `nn.Linear`    |
//! | `….weight`, `….bias` `[d_model]`         | the same                                         | `nn.LayerNorm` |
//! | `….tok` `[vocab, d_model]`               | `….tok.weight` `[vocab, d_model]`                | `nn.Embedding` |
//! | `….pos` `[max_seq, d_model]`             | `….pos.weight` `[max_seq, d_model]`              | `nn.Embedding` |
//! | anything else                            | unchanged, same shape                            | (none)         |
//!
//! Every kind of checkpoint goes through the same rule; `tinymoe export` writes any of them and
//! `tinymoe import` reads a file back into a checkpoint of the same kind. Per kind (block `i`,
//! MLP layer `j`, expert `e`; shapes as the file holds them):
//!
//! **Language model** (`transformer_lm`, `tinymoe train lm`): `embed.tok.weight`
//! [vocab, d_model], `embed.pos.weight` [max_seq, d_model], `blocks.i.ln1.weight`,
//! `blocks.i.ln1.bias`, `blocks.i.attn.{q,k,v,o}.weight` [d_model, d_model],
//! `blocks.i.attn.{q,k,v,o}.bias`, `blocks.i.ln2.{weight,bias}`, `blocks.i.mlp.layers.0.weight`
//! [d_ff, d_model], `blocks.i.mlp.layers.1.weight` [d_model, d_ff], `blocks.i.mlp.layers.j.bias`,
//! `ln_f.{weight,bias}`, and `head.weight` [vocab, d_model] + `head.bias` when the head is not
//! tied (a tied head is `embed.tok.weight` itself, as in nanoGPT's weight tying).
//!
//! **MoE language model** (`moe-lm`, `tinymoe train moe` and the demo): `embed.tok.weight`,
//! `embed.pos.weight`; the shared blocks `shared.i.…` with the names of an LM block
//! (`shared.i.ln1.weight`, `shared.i.attn.q.weight`, `shared.i.mlp.layers.0.weight` [d_ff,
//! d_model], …); `ln_moe.{weight,bias}` [d_model] in front of MLP experts (absent for stack
//! experts, which normalise inside); the router `moe.router.net.layers.j.{weight,bias}` (one
//! layer [E, d_model] for a linear router; [h, d_model] then [E, h] for a feed-forward one with
//! `router_hidden = h`) and, for noisy gating, `moe.router.noise.{weight,bias}` [E, d_model];
//! the experts `moe.experts.e.mlp.layers.0.weight` [hidden, d_model] and
//! `moe.experts.e.mlp.layers.1.weight` [d_model, hidden] (+ biases) for MLP experts, or
//! `moe.experts.e.blocks.i.…` (the names of an LM block) for stack experts; then
//! `ln_f.{weight,bias}`, `head.weight` [vocab, d_model], `head.bias` [vocab] (never tied).
//!
//! **Classifier** (`classifier`, `tinymoe train` and the demo's spirals): an MLP is
//! `layers.j.weight` [out_j, in_j] and `layers.j.bias` [out_j], from [hidden₀, d_in] to
//! [classes, hidden_last]; a dense MoE of MLPs is the gate `gate.layers.j.{weight,bias}` (d_in →
//! gate_hidden → E) and the experts `experts.e.layers.j.{weight,bias}` (each an MLP d_in →
//! hidden → classes).
//!
//! The transpose happens here, once, at the file boundary (STYLE.md): layers keep W as
//! [d_in, d_out] and compute x·W; PyTorch keeps [out, in] and computes x·Wᵀ. Values are copied
//! bit for bit, so export → import gives back the identical model.

use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How one of our tensors is stored in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// Our dotted name (`blocks.0.attn.q.w`).
    pub ours: String,
    /// The PyTorch `state_dict` name (`blocks.0.attn.q.weight`).
    pub pytorch: String,
    /// Whether the file holds the transpose (a Linear weight: ours [d_in, d_out], file [d_out, d_in]).
    pub transposed: bool,
    /// The shape in the file.
    pub shape: Vec<usize>,
}

/// The PyTorch name of one of our tensors, and whether it is stored transposed (see the table).
pub fn pytorch_name(ours: &str, ndim: usize) -> (String, bool) {
    let (path, leaf) = match ours.rsplit_once('.') {
        Some((path, leaf)) => (Some(path), leaf),
        None => (None, ours),
    };
    let join = |leaf: &str| match path {
        Some(p) => format!("{p}.{leaf}"),
        None => leaf.to_string(),
    };
    match (leaf, ndim) {
        ("w", 2) => (join("weight"), true),
        ("b", 1) => (join("bias"), false),
        ("tok" | "pos", 2) => (format!("{ours}.weight"), false),
        _ => (ours.to_string(), false),
    }
}

/// Every tensor of `model` with its name, layout and shape in the file, in the model's order.
pub fn mapping<M: Tensors<f32> + ?Sized>(model: &M) -> Vec<Mapped> {
    model
        .tensors()
        .into_iter()
        .map(|(ours, t)| {
            let (pytorch, transposed) = pytorch_name(&ours, t.ndim());
            let mut shape = t.shape().to_vec();
            if transposed {
                shape.reverse();
            }
            Mapped { ours, pytorch, transposed, shape }
        })
        .collect()
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::BadFile { path: path.to_path_buf(), problem: problem.into() }
}

/// The tensor as the file stores it: transposed for a Linear weight, in row-major order.
fn file_layout<'a>(t: &ArrayViewD<'a, f32>, transposed: bool) -> ArrayViewD<'a, f32> {
    if transposed {
        t.clone().reversed_axes()
    } else {
        t.clone()
    }
}

/// Writes every tensor of `model` (f32, PyTorch names and layouts, see the module doc) to
/// `path`, atomically. `metadata` goes into the file's `__metadata__` (strings only).
pub fn export_safetensors<M: Tensors<f32> + ?Sized>(
    path: &Path,
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let map = mapping(model);
    let tensors = model.tensors();
    let entries: Vec<(String, String, Vec<usize>, ArrayViewD<f32>)> = map
        .iter()
        .zip(&tensors)
        .map(|(m, (_, t))| (m.pytorch.clone(), m.ours.clone(), m.shape.clone(), file_layout(t, m.transposed)))
        .collect();
    write_f32(path, &entries, metadata)
}

/// Writes named f32 tensors as they are (no renaming, no transpose) to `path`, atomically:
/// the PyTorch twin's reference batch ([`crate::twin`]).
pub fn export_named(path: &Path, tensors: &[(String, ArrayD<f32>)], metadata: &BTreeMap<String, String>) -> Result<()> {
    let entries: Vec<(String, String, Vec<usize>, ArrayViewD<f32>)> =
        tensors.iter().map(|(n, t)| (n.clone(), n.clone(), t.shape().to_vec(), t.view())).collect();
    write_f32(path, &entries, metadata)
}

/// (file name, our name for errors, shape in the file, the values in the file's order).
fn write_f32(
    path: &Path,
    entries: &[(String, String, Vec<usize>, ArrayViewD<f32>)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    // Bytes first: a TensorView borrows them.
    let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
    for (_, _, _, view) in entries {
        // `iter()` walks the (possibly transposed) view in row-major order: the file's order.
        let mut b = Vec::with_capacity(view.len() * 4);
        for x in view.iter() {
            b.extend_from_slice(&x.to_le_bytes());
        }
        bytes.push(b);
    }
    let mut seen = HashMap::new();
    let mut views = Vec::with_capacity(entries.len());
    for ((name, ours, shape, _), b) in entries.iter().zip(&bytes) {
        if let Some(other) = seen.insert(name.clone(), ours.clone()) {
            return Err(bad(path, format!("tensors {other} and {ours} would both be named {name}")));
        }
        let view = TensorView::new(Dtype::F32, shape.clone(), b).expect("4 bytes per element of the shape");
        views.push((name.clone(), view));
    }
    let metadata: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(path, format!("cannot encode as safetensors: {e}")))?;
    crate::io::write_atomic(path, &sorted_header(path, file)?)
}

/// The file with its JSON header's keys in sorted order. safetensors writes `__metadata__`
/// from a HashMap, in a different order each run; sorted, one model always exports to the same
/// bytes. The tensors' byte ranges are relative to the end of the header, so they stay right.
fn sorted_header(path: &Path, file: Vec<u8>) -> Result<Vec<u8>> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default, skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<String, serde_json::Value>,
    }
    let broken = |e: String| bad(path, format!("cannot encode as safetensors: {e}"));
    let n = file.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let Some((text, data)) = n.and_then(|n| file.get(8..)?.split_at_checked(n)) else {
        return Err(broken("no header".into()));
    };
    let header: Header = serde_json::from_slice(text).map_err(|e| broken(e.to_string()))?;
    let mut text = serde_json::to_vec(&header).map_err(|e| broken(e.to_string()))?;
    // The data starts at a multiple of 8 bytes, as safetensors pads it: with spaces.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// Reads the `__metadata__` map of a safetensors file (empty if it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default().into_iter().collect())
}

/// Fills every tensor of `model` from the safetensors file at `path`, by PyTorch name (the
/// module doc's table), transposing Linear weights back to [d_in, d_out].
///
/// Checks everything before writing anything: if a name is missing, a shape differs or a
/// dtype is not f32, the error lists every such tensor and the model is left untouched.
/// Returns the names in the file that the model did not use (sorted), so a caller can
/// insist on an exact match or allow a partial load.
pub fn import_safetensors<M: Tensors<f32> + ?Sized>(path: &Path, model: &mut M) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let map = mapping(model);

    let mut missing = Vec::new();
    let mut misfits = Vec::new();
    for m in &map {
        match file.tensor(&m.pytorch) {
            Err(_) => missing.push(format!("{} (ours: {})", m.pytorch, m.ours)),
            Ok(t) if t.dtype() != Dtype::F32 => {
                misfits.push(format!("tensor {} has dtype {:?}, expected F32", m.pytorch, t.dtype()))
            }
            Ok(t) if t.shape() != m.shape.as_slice() => {
                misfits.push(format!("tensor {} has shape {:?}, the model expects {:?}", m.pytorch, t.shape(), m.shape))
            }
            Ok(_) => {}
        }
    }
    if !missing.is_empty() || !misfits.is_empty() {
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("{} missing tensor(s): {}", missing.len(), missing.join(", ")));
        }
        problems.extend(misfits);
        return Err(bad(path, format!("does not fit the model: {}", problems.join("; "))));
    }

    for (m, (_, mut dst)) in map.iter().zip(model.tensors_mut()) {
        let t = file.tensor(&m.pytorch).expect("checked above");
        let values: Vec<f32> =
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        let stored = ArrayD::from_shape_vec(IxDyn(&m.shape), values).expect("dtype and shape checked above");
        // The file holds Wᵀ for a Linear weight: reverse the axes back to ours.
        dst.assign(&file_layout(&stored.view(), m.transposed));
    }
    let used: std::collections::HashSet<&str> = map.iter().map(|m| m.pytorch.as_str()).collect();
    let mut unused: Vec<String> = file.names().into_iter().filter(|n| !used.contains(n)).map(String::from).collect();
    unused.sort();
    Ok(unused)
}
