//! [`Ctx`]: hands a run function its arrays, each checked against the shape its entry in the
//! table documents, so that nothing reaches the engine (which asserts on shape bugs) unchecked.
//!
//! Shapes are written in named dims (`w [d_in, d_out]`). The first array that mentions a dim
//! fixes its size and is remembered as its source, so a later mismatch names both arrays:
//! `x.npy: shape [3, 5], but linear needs x [..., d_in] with d_in = 4 (from p.npz[w])`.
//! `"..."` matches any number of leading axes; every array that has it must agree on them.

use super::{shape_text, ArrayDoc, Bundle, Entry, Flags, Kind, Loaded, Request, Slot, Values};
use crate::error::{Error, Result};
use ndarray::{Array, Array1, Array2, ArrayD, Dimension, IxDyn};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::str::FromStr;

/// A run in progress: the entry, the arrays not yet taken, and the dims bound so far.
pub struct Ctx {
    pub entry: &'static Entry,
    req: Request,
    /// dim name → (size, label of the array that fixed it)
    dims: BTreeMap<String, (usize, String)>,
    /// The `...` axes, once an array has fixed them, and that array's label.
    lead: Option<(Vec<usize>, String)>,
    /// Values for `{L}` and the like in the table's names and dims, once known.
    vars: Vec<(&'static str, usize)>,
}

/// An error about one array: `x.npy: …` or `p.npz: array `w`: …`.
fn bad(l: &Loaded, problem: String) -> Error {
    let problem = match &l.member {
        Some(m) => format!("array `{m}`: {problem}"),
        None => problem,
    };
    Error::BadFile { path: l.path.clone(), problem }
}

/// `d{i+1}` with i = 2 → `d3`; `layers.{i}.w` with i = 0 → `layers.0.w`.
pub fn subst(text: &str, vars: &[(&str, usize)]) -> String {
    let mut out = text.to_string();
    for &(k, v) in vars {
        out = out.replace(&format!("{{{k}+1}}"), &(v + 1).to_string()).replace(&format!("{{{k}}}"), &v.to_string());
    }
    out
}

fn standard(a: ArrayD<f64>) -> ArrayD<f64> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

fn take_member(bundle: &mut Option<Bundle>, name: &str) -> Option<Loaded> {
    let b = bundle.as_mut()?;
    let at = b.arrays.iter().position(|l| l.member.as_deref() == Some(name))?;
    Some(b.arrays.remove(at))
}

impl Ctx {
    /// Checks that the files and flags given are exactly ones the entry reads (a required
    /// file missing, or a flag it does not take, is an error naming the flag).
    pub fn new(entry: &'static Entry, req: Request) -> Result<Ctx> {
        let reads: Vec<&str> = Slot::FILES.iter().filter(|s| entry.uses(**s)).map(|s| s.flag()).collect();
        for slot in Slot::FILES {
            match (req.path_of(slot), entry.uses(slot)) {
                (Some(path), false) => {
                    let why = if slot == Slot::Dy && entry.kind == Kind::Loss {
                        " (a loss is the end of the chain: its output is the scalar L, and dx is ∂L/∂input)"
                    } else {
                        ""
                    };
                    let problem =
                        format!("{} takes no {}{why}; it reads {}", entry.name, slot.flag(), reads.join(", "));
                    return Err(Error::BadValue {
                        name: slot.flag().into(),
                        value: path.display().to_string(),
                        problem,
                    });
                }
                (None, true) if !slot.optional() => {
                    let what = if slot.is_npz() { "an .npz holding" } else { "a .npy holding" };
                    let problem = format!("{} needs {what} {}", entry.name, entry.describe(slot));
                    return Err(Error::BadValue { name: slot.flag().into(), value: "(not given)".into(), problem });
                }
                _ => {}
            }
        }
        for (flag, value) in req.flags.given() {
            if !entry.flags.iter().any(|f| f.flag == flag) {
                let its: Vec<&str> = entry.flags.iter().map(|f| f.flag).collect();
                let has =
                    if its.is_empty() { "it has none".to_string() } else { format!("it takes {}", its.join(", ")) };
                let problem = format!("{} takes no such setting ({has})", entry.name);
                return Err(Error::BadValue { name: flag.into(), value, problem });
            }
        }
        Ok(Ctx { entry, req, dims: BTreeMap::new(), lead: None, vars: Vec::new() })
    }

    /// The flags as given (`None` = not given).
    pub fn flags(&self) -> Flags {
        self.req.flags
    }

    /// A setting: the value given, else the entry's default from the table; a required
    /// setting that was not given is an error that says what it is for.
    pub fn setting<T: FromStr>(&self, flag: &str, given: Option<T>) -> Result<T>
    where
        T::Err: Debug,
    {
        if let Some(v) = given {
            return Ok(v);
        }
        let doc = self
            .entry
            .flags
            .iter()
            .find(|f| f.flag == flag)
            .expect("run functions read only the flags their entry lists");
        match doc.default {
            Some(text) => {
                Ok(text.parse().expect("every default in the table parses (tests/cli_layer.rs runs each entry)"))
            }
            None => Err(Error::BadValue {
                name: flag.into(),
                value: "(not given)".into(),
                problem: format!("{} needs it: {}", self.entry.name, doc.help),
            }),
        }
    }

    fn doc(&self, slot: Slot, name: &str) -> &'static ArrayDoc {
        let entry: &'static Entry = self.entry;
        entry.arrays_in(slot).find(|a| a.name == name).expect("run functions read only arrays their entry documents")
    }

    /// The size a dim was bound to (by an array read earlier, or by [`Ctx::bind`]).
    pub fn dim(&self, name: &str) -> usize {
        self.dims.get(name).expect("a dim is read only after an array has bound it").0
    }

    /// Which array fixed a dim: `p.npz[w]`.
    pub fn dim_from(&self, name: &str) -> String {
        self.dims.get(name).expect("a dim is read only after an array has bound it").1.clone()
    }

    /// Fixes a dim that no array carries (the number of experts, from the names in the .npz).
    pub fn bind(&mut self, name: &str, size: usize, by: String) {
        self.dims.insert(name.to_string(), (size, by));
    }

    /// Sets `{name}` (e.g. `{L}`, the number of layers) for every later name and dim.
    pub fn set_var(&mut self, name: &'static str, value: usize) {
        self.vars.push((name, value));
    }

    /// The `...` axes of the input (empty if there were none).
    pub fn lead(&self) -> Vec<usize> {
        self.lead.as_ref().map(|(l, _)| l.clone()).unwrap_or_default()
    }

    /// Checks `l`'s shape against `name dims` and binds every dim it fixes.
    fn check_shape(&mut self, l: &Loaded, name: &str, dims: &[String]) -> Result<()> {
        let found = l.values.shape().to_vec();
        let layer = self.entry.name;
        let spec = format!("{name} {}", shape_text(&dims.iter().map(String::as_str).collect::<Vec<_>>()));
        let fail = |why: String| bad(l, format!("shape {found:?}, but {layer} needs {spec}{why}"));
        if found.contains(&0) {
            return Err(bad(l, format!("shape {found:?}: every axis needs at least one element")));
        }
        if dims.iter().any(|d| d == "any") {
            return Ok(());
        }
        let has_lead = dims.first().is_some_and(|d| d == "...");
        let named = if has_lead { &dims[1..] } else { dims };
        if found.len() < named.len() || (!has_lead && found.len() != named.len()) {
            let axes =
                if has_lead { format!("at least {} axes", named.len()) } else { format!("{} axes", named.len()) };
            return Err(fail(format!(" ({axes})")));
        }
        let n_lead = found.len() - named.len();
        if has_lead {
            let lead = found[..n_lead].to_vec();
            match &self.lead {
                Some((bound, by)) if *bound != lead => {
                    return Err(fail(format!(" with ... = {bound:?}, the leading axes of {by}")));
                }
                Some(_) => {}
                None => self.lead = Some((lead, l.label())),
            }
        }
        for (dim, &size) in named.iter().zip(&found[n_lead..]) {
            match self.dims.get(dim) {
                Some((bound, by)) if *bound != size => return Err(fail(format!(" with {dim} = {bound} (from {by})"))),
                Some(_) => {}
                None => {
                    self.dims.insert(dim.clone(), (size, l.label()));
                }
            }
        }
        Ok(())
    }

    fn floats(&self, l: Loaded, name: &str) -> Result<ArrayD<f64>> {
        match l.values {
            Values::Float(a) => Ok(standard(a)),
            Values::Int(_) => Err(bad(
                &l,
                format!("holds integers, but {} needs {name} as floats (float64, or float32, upcast)", self.entry.name),
            )),
        }
    }

    fn ints(&self, l: Loaded, name: &str) -> Result<ArrayD<i64>> {
        match l.values {
            Values::Int(a) => Ok(a.as_standard_layout().into_owned()),
            Values::Float(_) => {
                Err(bad(&l, format!("holds floats, but {} needs {name} as integers (int64 or int32)", self.entry.name)))
            }
        }
    }

    fn dims_of(&self, doc: &ArrayDoc, vars: &[(&str, usize)]) -> Vec<String> {
        doc.dims.iter().map(|d| subst(&subst(d, vars), &self.vars)).collect()
    }

    /// The `--input` array called `name`, as floats.
    pub fn input(&mut self, name: &str) -> Result<ArrayD<f64>> {
        let dims = self.dims_of(self.doc(Slot::Input, name), &[]);
        let l = self.req.input.take().expect("Ctx::new checked that --input was given");
        self.check_shape(&l, name, &dims)?;
        self.floats(l, name)
    }

    /// The `--input` array called `name`, as integers (token ids), and its file.
    pub fn input_ids(&mut self, name: &str) -> Result<(ArrayD<i64>, PathBuf)> {
        let dims = self.dims_of(self.doc(Slot::Input, name), &[]);
        let l = self.req.input.take().expect("Ctx::new checked that --input was given");
        self.check_shape(&l, name, &dims)?;
        let path = l.path.clone();
        Ok((self.ints(l, name)?, path))
    }

    /// The `--targets` array called `name`, as integers, and its file.
    pub fn targets(&mut self, name: &str) -> Result<(ArrayD<i64>, PathBuf)> {
        let dims = self.dims_of(self.doc(Slot::Targets, name), &[]);
        let l = self.req.targets.take().expect("Ctx::new checked that --targets was given");
        self.check_shape(&l, name, &dims)?;
        let path = l.path.clone();
        Ok((self.ints(l, name)?, path))
    }

    /// The `--mask` array, if given: every value must be 1 (real token) or 0 (padding).
    pub fn mask<D: Dimension>(&mut self, name: &str) -> Result<Option<Array<u8, D>>> {
        let dims = self.dims_of(self.doc(Slot::Mask, name), &[]);
        let Some(l) = self.req.mask.take() else { return Ok(None) };
        self.check_shape(&l, name, &dims)?;
        let as_f64: ArrayD<f64> = match &l.values {
            Values::Float(a) => a.clone(),
            Values::Int(a) => a.mapv(|v| v as f64),
        };
        if let Some((at, v)) = as_f64.indexed_iter().find(|(_, &v)| v != 0.0 && v != 1.0) {
            return Err(bad(&l, format!("{v} at {:?}; a mask holds 1 (real token) or 0 (padding)", at.slice())));
        }
        let m =
            as_f64.mapv(|v| v as u8).into_dimensionality().expect("the caller asks for the mask's dims in the table");
        Ok(Some(m))
    }

    /// `--dy`, checked against the table, or ones (L = Σ y) if it was not given.
    pub fn dy(&mut self) -> Result<ArrayD<f64>> {
        let doc = self.entry.arrays_in(Slot::Dy).next().expect("run functions read dy only for entries that list it");
        let dims = self.dims_of(doc, &[]);
        match self.req.dy.take() {
            Some(l) => {
                self.check_shape(&l, doc.name, &dims)?;
                self.floats(l, doc.name)
            }
            None => {
                let mut shape = Vec::new();
                for d in &dims {
                    match d.as_str() {
                        "..." => shape.extend(self.lead()),
                        d => shape.push(self.dim(d)),
                    }
                }
                Ok(ArrayD::ones(IxDyn(&shape)))
            }
        }
    }

    /// The `--params` file.
    pub fn params_path(&self) -> PathBuf {
        self.req.params.as_ref().expect("Ctx::new checked that --params was given").path.clone()
    }

    /// The `--state` file, if one was given.
    pub fn state_path(&self) -> Option<PathBuf> {
        self.req.state.as_ref().map(|b| b.path.clone())
    }

    /// Is there a parameter called `name` (for counting layers and experts)?
    pub fn has_param(&self, name: &str) -> bool {
        self.req.params.as_ref().is_some_and(|b| b.arrays.iter().any(|l| l.member.as_deref() == Some(name)))
    }

    /// The parameter documented as `template`, with `{i}`, `{e}` … filled in from `vars`.
    pub fn param_at(&mut self, template: &str, vars: &[(&str, usize)]) -> Result<ArrayD<f64>> {
        let doc = self.doc(Slot::Params, template);
        let name = subst(&subst(doc.name, vars), &self.vars);
        let dims = self.dims_of(doc, vars);
        let Some(l) = take_member(&mut self.req.params, &name) else {
            let path = self.req.params.as_ref().expect("Ctx::new checked that --params was given").path.clone();
            let problem =
                format!("missing array `{name}` ({} needs {})", self.entry.name, self.entry.describe(Slot::Params));
            return Err(Error::BadFile { path, problem });
        };
        self.check_shape(&l, &name, &dims)?;
        self.floats(l, &name)
    }

    /// The parameter called `name`.
    pub fn param(&mut self, name: &str) -> Result<ArrayD<f64>> {
        self.param_at(name, &[])
    }

    /// A one-dimensional parameter (a bias, a LayerNorm weight).
    pub fn param1(&mut self, name: &str) -> Result<Array1<f64>> {
        Ok(self.param(name)?.into_dimensionality().expect("the table gives it one dim"))
    }

    /// A two-dimensional parameter (a weight matrix, an embedding table).
    pub fn param2(&mut self, name: &str) -> Result<Array2<f64>> {
        Ok(self.param(name)?.into_dimensionality().expect("the table gives it two dims"))
    }

    /// Every parameter still in `--params`, as floats (an optimiser step takes them all).
    pub fn all_params(&mut self) -> Result<Vec<(String, ArrayD<f64>, Loaded)>> {
        let bundle = self.req.params.as_mut().expect("Ctx::new checked that --params was given");
        let taken = std::mem::take(&mut bundle.arrays);
        if taken.is_empty() {
            return Err(Error::BadFile { path: bundle.path.clone(), problem: "holds no arrays".into() });
        }
        let mut out = Vec::new();
        for l in taken {
            let name = l.member.clone().expect("an .npz member has a name");
            self.check_shape(&l, &name, &["any".to_string()])?;
            let a = self.floats(l.clone(), &name)?;
            out.push((name, a, l));
        }
        Ok(out)
    }

    /// The array `name` of an `.npz` slot (grads, state), which must have `like`'s shape.
    /// If the slot was given, the array must be in it; `None` only if the (optional) slot
    /// was not given at all.
    pub fn member_like(&mut self, slot: Slot, name: &str, like: &Loaded) -> Result<Option<ArrayD<f64>>> {
        let bundle = match slot {
            Slot::Grads => &mut self.req.grads,
            Slot::State => &mut self.req.state,
            _ => unreachable!("member_like reads grads or state"),
        };
        let path = bundle.as_ref().map(|b| b.path.clone());
        let Some(l) = take_member(bundle, name) else {
            return match path {
                Some(path) => Err(Error::BadFile {
                    path,
                    problem: format!(
                        "missing array `{name}` ({} needs one per array of {}, with the same shape)",
                        self.entry.name,
                        like.path.display()
                    ),
                }),
                None => Ok(None),
            };
        };
        if l.values.shape() != like.values.shape() {
            let problem = format!("shape {:?}, but {} is {:?}", l.values.shape(), like.label(), like.values.shape());
            return Err(bad(&l, problem));
        }
        self.floats(l, name).map(Some)
    }

    /// After the run: an array in an `.npz` that nothing read is an error, not silently
    /// ignored (an extra `weight` beside `w` is a naming mix-up the reader should see).
    pub fn finish(&mut self) -> Result<()> {
        for (slot, bundle) in
            [(Slot::Params, &self.req.params), (Slot::Grads, &self.req.grads), (Slot::State, &self.req.state)]
        {
            if let Some(l) = bundle.as_ref().and_then(|b| b.arrays.first()) {
                let problem = match (self.entry.kind, slot) {
                    (Kind::Optimizer, Slot::Grads | Slot::State) => {
                        format!(
                            "belongs to no parameter of {} (expected {})",
                            self.params_path().display(),
                            self.entry.describe(slot)
                        )
                    }
                    _ => {
                        format!("{} does not read this array (it reads {})", self.entry.name, self.entry.describe(slot))
                    }
                };
                return Err(bad(l, problem));
            }
        }
        Ok(())
    }
}

/// `[..., d]` → `[n, d]`: the leading axes folded into rows, for the row-wise layers.
pub fn rows(x: &ArrayD<f64>) -> Array2<f64> {
    let d = *x.shape().last().expect("the table gives row-wise inputs a last dim");
    let n = x.len() / d;
    x.to_shape((n, d)).expect("n·d is the element count").into_owned()
}

/// `[n, d]` rows back to `lead + [d]`.
pub fn unfold<D: Dimension>(y: ndarray::Array<f64, D>, lead: &[usize]) -> ArrayD<f64> {
    let mut shape = lead.to_vec();
    shape.push(*y.shape().last().expect("a layer output has a last dim"));
    let y = y.as_standard_layout().into_owned();
    y.into_shape_with_order(IxDyn(&shape)).expect("n = Π lead")
}
