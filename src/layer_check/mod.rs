//! One layer at a time, on arrays made elsewhere: the library side of `tinymoe layer NAME`.
//!
//! A learner who ports a layer to NumPy or PyTorch (or the other way round) wants to compare
//! the two line by line: the same x and parameters in, the output and *every* gradient out,
//! in f64, element by element. This module runs one layer's (or loss's, or optimiser step's)
//! forward and backward on arrays read from `.npy`/`.npz` files and hands back every result
//! under the engine's own tensor names.
//!
//! **The table is the single source.** [`TABLE`] holds one [`Entry`] per command: the arrays
//! it reads (with shapes in named dims: `w [d_in, d_out]`), its flags (with defaults), its
//! outputs, and the `run` function that calls the engine. The run functions validate each
//! array against the shape written in the table (not a second copy of it), and
//! `tinymoe layer list` and the chapter's conventions table are printed from the same data,
//! so the documentation cannot drift from the code. Adding a layer is one entry and one
//! function.
//!
//! Conventions (the same as the engine's):
//! - everything runs in f64; float32 inputs are accepted and upcast (exactly);
//! - Linear weights are stored `[d_in, d_out]` and y = x·W + b (NumPy style); PyTorch's
//!   `nn.Linear.weight` is `[d_out, d_in]`, so transpose it once when exporting;
//! - row-wise layers take `[..., d]`: any leading axes are folded into rows, as NumPy's
//!   `x @ W` does; attention and the transformer block take `[batch, seq, d_model]`;
//! - masks hold 1 for a real token and 0 for padding; ids and targets are integers;
//! - `dy` (∂L/∂y) defaults to ones, i.e. L = Σ y; pass a random dy to catch transposed or
//!   permuted gradients, which an all-ones dy can hide;
//! - each gradient is written as `d` + the parameter's dotted name: `dw`, `dattn.q.w`.
//!
//! Architecture: no IO here. `cli/layer.rs` reads the files into a [`Request`] and writes the
//! [`Outputs`]; every check that can fail on user input happens in [`Ctx`] and returns
//! [`crate::Error`] naming the file and the array, before the engine (which asserts on shape
//! bugs) is called.

mod ctx;
mod layers;
mod moe;
mod optim;
mod table;

pub use ctx::{subst, Ctx};
pub use table::TABLE;

use crate::engine::layers::Activation;
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use ndarray::ArrayD;
use std::path::PathBuf;

/// Where an array comes from: a command-line flag, or (for [`Slot::Output`]) where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `--input X.npy`: the layer's input (x, ids or logits).
    Input,
    /// `--mask M.npy`: a key-padding mask, 1 = real token, 0 = padding (optional).
    Mask,
    /// `--targets T.npy`: class ids for a loss.
    Targets,
    /// `--dy DY.npy`: the upstream gradient ∂L/∂y (optional: ones).
    Dy,
    /// `--params P.npz`: the parameters, by name.
    Params,
    /// `--grads G.npz`: gradients for an optimiser step, by parameter name.
    Grads,
    /// `--state S.npz`: an optimiser's moments from earlier steps (optional: zeros).
    State,
    /// A file written into `--out DIR`.
    Output,
}

impl Slot {
    /// Every slot that reads a file, in the order the CLI documents them.
    pub const FILES: [Slot; 7] =
        [Slot::Params, Slot::Input, Slot::Mask, Slot::Targets, Slot::Dy, Slot::Grads, Slot::State];

    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Slot::Input => "--input",
            Slot::Mask => "--mask",
            Slot::Targets => "--targets",
            Slot::Dy => "--dy",
            Slot::Params => "--params",
            Slot::Grads => "--grads",
            Slot::State => "--state",
            Slot::Output => "--out",
        }
    }

    /// May the flag be left out when the layer uses it?
    pub fn optional(self) -> bool {
        matches!(self, Slot::Mask | Slot::Dy | Slot::State)
    }

    /// Is it an `.npz` of named arrays (rather than one `.npy`)?
    pub fn is_npz(self) -> bool {
        matches!(self, Slot::Params | Slot::Grads | Slot::State)
    }
}

/// One array of an entry: which flag it comes from (or that it is an output), its name, and
/// its shape in named dims. `"..."` stands for any number of leading axes (folded into rows);
/// `{i}` in a name or dim is a layer index and `{e}` an expert index, `{L}` the number of
/// layers; `"any"` is any shape.
#[derive(Debug, Clone, Copy)]
pub struct ArrayDoc {
    pub slot: Slot,
    pub name: &'static str,
    pub dims: &'static [&'static str],
}

/// One flag of an entry, its default (`None`: required) and what it means.
#[derive(Debug, Clone, Copy)]
pub struct FlagDoc {
    pub flag: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// What an entry computes: a layer (has dy), a loss (a scalar, no dy) or an optimiser step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Layer,
    Loss,
    Optimizer,
}

/// One command of `tinymoe layer`.
pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
    /// The formula, one line.
    pub formula: &'static str,
    /// Every array read and written, inputs first.
    pub arrays: &'static [ArrayDoc],
    pub flags: &'static [FlagDoc],
    /// What a reader porting it must know (layout, masks, PyTorch's name for it).
    pub note: &'static str,
    /// Validates the arrays (against `arrays`) and runs forward and backward.
    pub run: fn(&mut Ctx) -> Result<Outputs>,
}

impl Entry {
    /// The arrays read from or written to `slot`, in table order.
    pub fn arrays_in(&self, slot: Slot) -> impl Iterator<Item = &ArrayDoc> {
        self.arrays.iter().filter(move |a| a.slot == slot)
    }
    /// Does the entry read `slot`?
    pub fn uses(&self, slot: Slot) -> bool {
        self.arrays_in(slot).next().is_some()
    }
    /// `w [d_in, d_out], b [d_out]`: the arrays of one slot as text.
    pub fn describe(&self, slot: Slot) -> String {
        self.arrays_in(slot).map(|a| format!("{} {}", a.name, shape_text(a.dims))).collect::<Vec<_>>().join(", ")
    }
}

/// `[..., d_in]`, `[]` for a scalar, `any shape`.
pub fn shape_text(dims: &[&str]) -> String {
    if dims == ["any"] {
        return "(any shape)".to_string();
    }
    format!("[{}]", dims.join(", "))
}

/// The entry called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.name == name)
}

/// The values of one array as read: floats (float64, or float32 upcast) or integers (any
/// integer type or bool, widened to i64).
#[derive(Debug, Clone)]
pub enum Values {
    Float(ArrayD<f64>),
    Int(ArrayD<i64>),
}

impl Values {
    pub fn shape(&self) -> &[usize] {
        match self {
            Values::Float(a) => a.shape(),
            Values::Int(a) => a.shape(),
        }
    }
}

/// One array and where it came from: a `.npy` file, or a member of an `.npz`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The array's name inside an `.npz`; `None` for a `.npy` file.
    pub member: Option<String>,
    pub values: Values,
}

impl Loaded {
    /// `x.npy`, or `p.npz[w]` for a member of an archive.
    pub fn label(&self) -> String {
        match &self.member {
            Some(m) => format!("{}[{m}]", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

/// An `.npz`: its path and its arrays, in the archive's order.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub arrays: Vec<Loaded>,
}

/// The settings a layer may take. `None` (or `false`) means "not given": the entry's default
/// from the table applies, and a flag the entry does not list is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub heads: Option<usize>,
    pub causal: bool,
    pub eps: Option<f64>,
    pub act: Option<Activation>,
    pub pad_id: Option<usize>,
    pub ignore_index: Option<i64>,
    pub lr: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub weight_decay: Option<f64>,
    pub step: Option<u64>,
    pub k: Option<usize>,
    pub coef: Option<f64>,
}

impl Flags {
    /// The flags that were given, with their values as text.
    pub fn given(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |flag: &'static str, v: Option<String>| {
            if let Some(v) = v {
                out.push((flag, v));
            }
        };
        add("--heads", self.heads.map(|v| v.to_string()));
        add("--causal", self.causal.then(|| "on".to_string()));
        add("--eps", self.eps.map(|v| v.to_string()));
        let act_name = |a: Activation| match a {
            Activation::Relu => "relu",
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu-tanh",
        };
        add("--act", self.act.map(|v| act_name(v).to_string()));
        add("--pad-id", self.pad_id.map(|v| v.to_string()));
        add("--ignore-index", self.ignore_index.map(|v| v.to_string()));
        add("--lr", self.lr.map(|v| v.to_string()));
        add("--beta1", self.beta1.map(|v| v.to_string()));
        add("--beta2", self.beta2.map(|v| v.to_string()));
        add("--weight-decay", self.weight_decay.map(|v| v.to_string()));
        add("--step", self.step.map(|v| v.to_string()));
        add("--k", self.k.map(|v| v.to_string()));
        add("--coef", self.coef.map(|v| v.to_string()));
        out
    }
}

/// Everything one run reads: the files (already loaded) and the flags.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub input: Option<Loaded>,
    pub mask: Option<Loaded>,
    pub targets: Option<Loaded>,
    pub dy: Option<Loaded>,
    pub params: Option<Bundle>,
    pub grads: Option<Bundle>,
    pub state: Option<Bundle>,
    pub flags: Flags,
}

impl Request {
    /// The path given for a file slot, if any.
    pub fn path_of(&self, slot: Slot) -> Option<&PathBuf> {
        match slot {
            Slot::Input => self.input.as_ref().map(|l| &l.path),
            Slot::Mask => self.mask.as_ref().map(|l| &l.path),
            Slot::Targets => self.targets.as_ref().map(|l| &l.path),
            Slot::Dy => self.dy.as_ref().map(|l| &l.path),
            Slot::Params => self.params.as_ref().map(|b| &b.path),
            Slot::Grads => self.grads.as_ref().map(|b| &b.path),
            Slot::State => self.state.as_ref().map(|b| &b.path),
            Slot::Output => None,
        }
    }
}

/// The results, each to be written as `NAME.npy`, in order: y (or loss), dx, then the
/// parameter gradients in the engine's tensor order.
#[derive(Debug, Clone, Default)]
pub struct Outputs(pub Vec<(String, ArrayD<f64>)>);

impl Outputs {
    pub fn push(&mut self, name: impl Into<String>, a: ArrayD<f64>) {
        self.0.push((name.into(), a));
    }
    /// Every gradient of a `Grads` struct, named `d` + the engine's dotted name (`dq.w`).
    pub fn grads(&mut self, g: &dyn Tensors<f64>) {
        for (name, t) in g.tensors() {
            self.push(format!("d{name}"), t.to_owned());
        }
    }
    /// The array called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f64>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// Runs the entry called `name` on `req`: checks which flags and files were given, validates
/// every array against the table, runs forward and backward, and rejects arrays in the
/// `.npz` files that the layer did not use.
pub fn run(name: &str, req: Request) -> Result<Outputs> {
    let entry = entry(name).ok_or_else(|| Error::Unknown {
        what: "layer".into(),
        name: name.into(),
        expected: TABLE.iter().map(|e| e.name).collect::<Vec<_>>().join(", "),
    })?;
    let mut ctx = Ctx::new(entry, req)?;
    let out = (entry.run)(&mut ctx)?;
    ctx.finish()?;
    Ok(out)
}
