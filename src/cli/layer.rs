//! `tinymoe layer NAME --params P.npz --input X.npy [--mask M.npy] [--targets T.npy]
//! [--dy DY.npy] --out DIR`: one layer's forward and backward in f64 on arrays made elsewhere
//! (NumPy, PyTorch), every result written as `.npy`, to compare the two line by line.
//!
//! This file is the IO around [`crate::layer_check`]: it reads the `.npy`/`.npz` files
//! (float64, float32 upcast, integers and bool), runs the entry, writes `NAME.npy` per output
//! and prints what it wrote with the first values. `tinymoe layer list` prints the dispatch
//! table (`--markdown`: as the chapter's conventions table), so the documentation is the table.

use crate::data::npy::write_npy;
use crate::engine::layers::Activation;
use crate::error::Error;
use crate::layer_check::{self, shape_text, Bundle, Entry, Flags, Kind, Loaded, Request, Slot, Values, TABLE};
use anyhow::bail;
use clap::builder::PossibleValuesParser;
use clap::Args;
use ndarray::ArrayD;
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};
use std::io::BufReader;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct LayerArgs {
    /// The layer, loss or optimiser step to run; `list` prints every one with its arrays,
    /// shapes, flags and outputs.
    #[arg(value_name = "NAME", value_parser = names())]
    pub name: String,
    /// The parameters: an .npz (np.savez) with one array per parameter, named as `layer list`
    /// shows (the engine's names: w, b, weight, bias, q.w, ln1.weight, layers.0.w, …).
    #[arg(long, value_name = "P.npz")]
    pub params: Option<PathBuf>,
    /// The layer's input as .npy: x (float64, or float32, upcast), ids or logits.
    #[arg(long, value_name = "X.npy")]
    pub input: Option<PathBuf>,
    /// attention, block: key-padding mask [batch, seq]; top-k and the router losses: [...],
    /// one per unit. 1 = real token, 0 = padding.
    #[arg(long, value_name = "M.npy")]
    pub mask: Option<PathBuf>,
    /// cross-entropy: the target class of each row (integers).
    #[arg(long, value_name = "T.npy")]
    pub targets: Option<PathBuf>,
    /// The upstream gradient ∂L/∂y, shaped like y [default: ones, i.e. L = Σ y]. A random dy
    /// catches transposed gradients that ones can hide. Losses take none.
    #[arg(long, value_name = "DY.npy")]
    pub dy: Option<PathBuf>,
    /// adam, adamw: the gradients, one per parameter, with the same names and shapes.
    #[arg(long, value_name = "G.npz")]
    pub grads: Option<PathBuf>,
    /// adam, adamw: the moments of earlier steps, exp_avg.<name> and exp_avg_sq.<name>
    /// [default: zeros].
    #[arg(long, value_name = "S.npz")]
    pub state: Option<PathBuf>,
    /// Where to write y.npy (loss.npy for a loss), dx.npy and d<name>.npy per parameter.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With `list`: print the conventions table as Markdown.
    #[arg(long)]
    pub markdown: bool,

    /// attention, block: the number of heads.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub heads: Option<usize>,
    /// attention, block: query i sees only keys j ≤ i.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub causal: bool,
    /// layer-norm, block: added to the variance [1e-5]; adam, adamw: added to √v̂ [1e-8].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub eps: Option<f64>,
    /// mlp, mixture [relu], block [gelu-tanh]: relu, gelu (exact, erf) or gelu-tanh.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub act: Option<Activation>,
    /// embedding: the padding id, whose row gets no gradient [none].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub pad_id: Option<usize>,
    /// cross-entropy: rows with this target are left out [-100, PyTorch's].
    #[arg(long, allow_negative_numbers = true, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub ignore_index: Option<i64>,
    /// adam, adamw: learning rate [1e-3].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub lr: Option<f64>,
    /// adam, adamw: β₁ [0.9].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub beta1: Option<f64>,
    /// adam, adamw: β₂ [0.999].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub beta2: Option<f64>,
    /// adam [0, L2] and adamw [0.01, decoupled]: weight decay λ.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub weight_decay: Option<f64>,
    /// adam, adamw: the step number t, for the bias correction [1].
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub step: Option<u64>,
    /// top-k (required), switch-loss [1]: experts chosen per unit.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub k: Option<usize>,
    /// switch-loss [1e-2], z-loss [1e-3]: the loss's coefficient.
    #[arg(long, help_heading = "Settings (`layer list` shows which layer takes which)")]
    pub coef: Option<f64>,
}

/// Every entry of the table, and `list`.
fn names() -> PossibleValuesParser {
    PossibleValuesParser::new(TABLE.iter().map(|e| e.name).chain(["list"]))
}

/// `tinymoe layer`.
pub fn layer(a: LayerArgs) -> anyhow::Result<()> {
    if a.name == "list" {
        print!("{}", if a.markdown { markdown_table() } else { list_text() });
        return Ok(());
    }
    if a.markdown {
        bail!("--markdown goes with `tinymoe layer list`");
    }
    let Some(out_dir) = a.out.clone() else {
        bail!("--out DIR is required: the folder for y.npy, dx.npy and the gradients");
    };
    let flags = Flags {
        heads: a.heads,
        causal: a.causal,
        eps: a.eps,
        act: a.act,
        pad_id: a.pad_id,
        ignore_index: a.ignore_index,
        lr: a.lr,
        beta1: a.beta1,
        beta2: a.beta2,
        weight_decay: a.weight_decay,
        step: a.step,
        k: a.k,
        coef: a.coef,
    };
    let npy = |p: &Option<PathBuf>| p.as_deref().map(read_npy).transpose();
    let npz = |p: &Option<PathBuf>| p.as_deref().map(read_npz).transpose();
    let req = Request {
        input: npy(&a.input)?,
        mask: npy(&a.mask)?,
        targets: npy(&a.targets)?,
        dy: npy(&a.dy)?,
        params: npz(&a.params)?,
        grads: npz(&a.grads)?,
        state: npz(&a.state)?,
        flags,
    };
    let dy_note = if a.dy.is_none() && layer_check::entry(&a.name).is_some_and(|e| e.uses(Slot::Dy)) {
        " (dy = ones: L = Σ y)"
    } else {
        ""
    };
    let outputs = layer_check::run(&a.name, req)?;
    // Every file is read; none of them may be written over (`--input D/dx.npy --out D`).
    let inputs: Vec<&Path> = [&a.input, &a.mask, &a.targets, &a.dy, &a.params, &a.grads, &a.state]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    let files: Vec<String> = outputs.0.iter().map(|(name, _)| format!("{name}.npy")).collect();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    crate::io::refuse_overwrite_in(&inputs, &out_dir, &names)?;
    crate::io::create_dir(&out_dir)?;
    println!("{}: forward and backward in f64{dy_note}", a.name);
    let width = outputs.0.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 4;
    for (name, array) in &outputs.0 {
        let file = format!("{name}.npy");
        write_npy(&out_dir.join(&file), array)?;
        println!("  {file:<width$} {:<16} {}", format!("{:?}", array.shape()), first_values(array));
    }
    println!("wrote {} files to {}", outputs.0.len(), out_dir.display());
    Ok(())
}

/// The first few values, for a human to compare at a glance (as llm.c's test_gpt2 prints).
fn first_values(a: &ArrayD<f64>) -> String {
    let shown: Vec<String> = a.iter().take(4).map(|v| format!("{v:.6}")).collect();
    let more = if a.len() > 4 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Why a read failed: the element type did not match (try the next), or anything else.
enum ReadFail {
    WrongType(String),
    Other(String),
}

fn npy_fail(e: ReadNpyError) -> ReadFail {
    match e {
        ReadNpyError::WrongDescriptor(descr) => ReadFail::WrongType(descr.to_string()),
        ReadNpyError::Io(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            ReadFail::Other("truncated: the file ends inside the .npy header".into())
        }
        ReadNpyError::MissingData => ReadFail::Other("truncated: fewer elements than its header promises".into()),
        ReadNpyError::ParseHeader(err) => ReadFail::Other(format!("not a .npy file (np.save writes one): {err}")),
        other => ReadFail::Other(format!("not a usable .npy file: {other}")),
    }
}

/// Something an array can be read from, as any element type: a .npy file's bytes, or one
/// member of an .npz.
trait ArraySource {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadFail>;
}

struct NpyBytes<'a>(&'a [u8]);

impl ArraySource for NpyBytes<'_> {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadFail> {
        ArrayD::<T>::read_npy(self.0).map_err(npy_fail)
    }
}

struct NpzMember<'a, R: std::io::Read + std::io::Seek> {
    npz: &'a mut NpzReader<R>,
    name: &'a str,
}

impl<R: std::io::Read + std::io::Seek> ArraySource for NpzMember<'_, R> {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadFail> {
        self.npz.by_name(self.name).map_err(|e| match e {
            ReadNpzError::Npy(e) => npy_fail(e),
            ReadNpzError::Zip(e) => ReadFail::Other(format!("cannot unpack it: {e}{}", compressed_hint(&e))),
        })
    }
}

/// Reads as `T` if that is the file's element type: Ok(None) if it is another type.
fn attempt<T: ReadableElement>(src: &mut impl ArraySource, descr: &mut String) -> Result<Option<ArrayD<T>>, String> {
    match src.read::<T>() {
        Ok(a) => Ok(Some(a)),
        Err(ReadFail::WrongType(d)) => {
            *descr = d;
            Ok(None)
        }
        Err(ReadFail::Other(problem)) => Err(problem),
    }
}

/// float64 and float32 become floats (f32 → f64 is exact); integers and bool become i64.
fn read_values(src: &mut impl ArraySource) -> Result<Values, String> {
    let mut descr = String::new();
    if let Some(a) = attempt::<f64>(src, &mut descr)? {
        return Ok(Values::Float(a));
    }
    if let Some(a) = attempt::<f32>(src, &mut descr)? {
        return Ok(Values::Float(a.mapv(f64::from)));
    }
    if let Some(a) = attempt::<i64>(src, &mut descr)? {
        return Ok(Values::Int(a));
    }
    if let Some(a) = attempt::<i32>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<i16>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<i8>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<u32>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<u16>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<u8>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    if let Some(a) = attempt::<bool>(src, &mut descr)? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    Err(format!(
        "holds elements of type {descr}; tinymoe reads float64, float32, signed or small unsigned integers and bool"
    ))
}

fn read_npy(path: &Path) -> crate::Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // The header's shape against the file's length, before anything is allocated for it.
    crate::data::npy::check_declared(&bytes, bytes.len() as u64)
        .map_err(|problem| Error::BadFile { path: path.into(), problem })?;
    let values = read_values(&mut NpyBytes(&bytes)).map_err(|problem| Error::BadFile { path: path.into(), problem })?;
    Ok(Loaded { path: path.to_path_buf(), member: None, values })
}

/// np.savez_compressed deflates each array; this build reads only np.savez's stored arrays
/// (ndarray-npy's `npz` feature, without the deflate dependencies).
fn compressed_hint(e: &dyn std::fmt::Display) -> &'static str {
    if e.to_string().contains("ompression method") {
        " (tinymoe reads uncompressed archives: save with np.savez, not np.savez_compressed)"
    } else {
        ""
    }
}

fn read_npz(path: &Path) -> crate::Result<Bundle> {
    crate::data::npy::check_npz_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |problem: String| Error::BadFile { path: path.to_path_buf(), problem };
    let mut npz = NpzReader::new(BufReader::new(file))
        .map_err(|e| bad(format!("not an .npz archive (np.savez writes one): {e}{}", compressed_hint(&e))))?;
    let names = npz.names().map_err(|e| bad(format!("cannot list its arrays: {e}{}", compressed_hint(&e))))?;
    let mut arrays = Vec::with_capacity(names.len());
    for name in names {
        let values = read_values(&mut NpzMember { npz: &mut npz, name: &name })
            .map_err(|problem| bad(format!("array `{name}`: {problem}")))?;
        arrays.push(Loaded { path: path.to_path_buf(), member: Some(name), values });
    }
    Ok(Bundle { path: path.to_path_buf(), arrays })
}

fn kind_title(k: Kind) -> &'static str {
    match k {
        Kind::Layer => "Layers (forward + backward; dy defaults to ones)",
        Kind::Loss => "Losses (a scalar; no dy)",
        Kind::Optimizer => "Optimiser steps (params + grads → updated params and moments)",
    }
}

/// `pieces` joined by `sep` and wrapped to about 100 columns, continuation lines indented.
fn wrap<S: AsRef<str>>(pieces: &[S], sep: &str, indent: usize) -> String {
    let mut s = String::new();
    let mut col = indent;
    for (k, piece) in pieces.iter().enumerate() {
        let piece = piece.as_ref();
        let last = k + 1 == pieces.len();
        let width = piece.chars().count() + if last { 0 } else { sep.trim_end().len() };
        if k > 0 {
            if col + 1 + width > 100 {
                s += &format!("{}\n{:indent$}", sep.trim_end(), "");
                col = indent;
            } else {
                s += sep;
                col += sep.chars().count();
            }
        }
        s += piece;
        col += piece.chars().count();
    }
    s
}

/// The outputs as files: `y.npy [..., d_out]`, and each gradient by name only (it has its
/// parameter's shape).
fn written(e: &Entry) -> Vec<String> {
    e.arrays_in(Slot::Output)
        .map(|a| {
            let is_grad = e.arrays_in(Slot::Params).any(|p| a.name.strip_prefix('d') == Some(p.name));
            if is_grad || a.dims == ["any"] {
                format!("{}.npy", a.name)
            } else {
                format!("{}.npy {}", a.name, shape_text(a.dims))
            }
        })
        .collect()
}

/// What an optional file defaults to.
fn absent(slot: Slot) -> &'static str {
    match slot {
        Slot::Mask => "optional; default: every token real",
        Slot::Dy => "optional; default: ones",
        Slot::State => "optional; default: zeros",
        _ => "required",
    }
}

/// `tinymoe layer list`: every entry with all its arrays.
fn list_text() -> String {
    let mut s = String::from(
        "tinymoe layer NAME: one layer's forward and backward in f64 on .npy/.npz arrays.\n\
         Shapes use named dims; \"...\" is any number of leading axes, folded into rows. float32 inputs\n\
         are upcast. Linear weights are [d_in, d_out] (PyTorch's nn.Linear.weight is its transpose).\n\
         Masks: 1 = real token, 0 = padding. Gradients are written as d<name>.npy (dw.npy, dattn.q.w.npy).\n",
    );
    for kind in [Kind::Layer, Kind::Loss, Kind::Optimizer] {
        s += &format!("\n{}\n", kind_title(kind));
        for e in TABLE.iter().filter(|e| e.kind == kind) {
            s += &format!("\n  {:<18}{}\n", e.name, e.formula);
            for slot in Slot::FILES.into_iter().filter(|&slot| e.uses(slot)) {
                let arrays: Vec<String> =
                    e.arrays_in(slot).map(|a| format!("{} {}", a.name, shape_text(a.dims))).collect();
                let opt = if slot.optional() { format!("  ({})", absent(slot)) } else { String::new() };
                s += &format!("    {:<16}{}{opt}\n", slot.flag(), wrap(&arrays, ", ", 20));
            }
            for f in e.flags {
                s += &format!("    {:<16}{}: {}\n", f.flag, f.default.unwrap_or("required"), f.help);
            }
            s += &format!("    {:<16}{}\n", "writes", wrap(&written(e), ", ", 20));
            let words: Vec<&str> = e.note.split_whitespace().collect();
            s += &format!("    {:<16}{}\n", "note", wrap(&words, " ", 20));
        }
    }
    s
}

/// `tinymoe layer list --markdown`: the chapter's conventions table, one row per entry.
fn markdown_table() -> String {
    let code = |t: String| format!("`{t}`");
    let mut s = String::from(
        "| command | reads | parameters (`--params` .npz) | flags (default) | writes (one .npy each in `--out` DIR) |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for e in TABLE {
        let reads: Vec<String> = [Slot::Input, Slot::Mask, Slot::Targets, Slot::Dy, Slot::Grads, Slot::State]
            .into_iter()
            .filter(|&slot| e.uses(slot))
            .map(|slot| {
                let opt = if slot.optional() { format!(" ({})", absent(slot)) } else { String::new() };
                format!("{} {}{opt}", code(slot.flag().into()), code(e.describe(slot)))
            })
            .collect();
        let params = e.arrays_in(Slot::Params).map(|a| code(format!("{} {}", a.name, shape_text(a.dims))));
        let flags = e.flags.iter().map(|f| format!("{} {}", code(f.flag.into()), f.default.unwrap_or("(required)")));
        // Gradients have their parameter's shape: listed by name only.
        let writes = written(e).into_iter().map(|w| code(w.replace(".npy", "")));
        let cell = |items: Vec<String>, sep: &str| if items.is_empty() { "—".to_string() } else { items.join(sep) };
        s += &format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.name,
            cell(reads, "; "),
            cell(params.collect(), ", "),
            cell(flags.collect(), ", "),
            cell(writes.collect(), ", ")
        );
    }
    s
}
