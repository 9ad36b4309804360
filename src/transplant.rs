//! Partial loading: copy one part of a model — the embedding, one block, the head, one
//! expert — into another model, by tensor name.
//!
//! ```text
//!   source prefix "blocks.0"               destination prefix "experts.2.blocks.0"
//!   blocks.0.ln1.weight        [d_model]   →  experts.2.blocks.0.ln1.weight
//!   blocks.0.attn.q.w   [d_model, d_model] →  experts.2.blocks.0.attn.q.w
//!   …                                          (same suffix after the prefix)
//! ```
//! A prefix selects the tensor named exactly that and every tensor under it (`blocks.1`
//! selects `blocks.1.attn.q.w`, not `blocks.10.…`); the empty prefix selects everything, so
//! `load_part(path, "", &mut model, "")` loads a whole checkpoint into a model by name,
//! checking every shape. Names come from the [`Tensors`] trait, so any model works, and a
//! mixture's experts (`experts.{e}.…`) are parts like any other: experiments E1–E3 use this
//! to start experts from pretrained weights (an expert transplanted from a model trained on
//! one domain).
//!
//! **All or nothing.** Every selected tensor must have a partner of the same shape on the
//! other side, and every tensor under the destination prefix must have a source. If anything
//! does not fit, the error lists all of it at once — names missing on either side, each shape
//! mismatch with both shapes — and the destination is not touched. Values are copied bit for
//! bit.
//!
//! [`copy_part`] works in memory; [`load_part`] reads the part from a checkpoint file of any
//! kind (by the header's tensor offsets, see [`crate::checkpoint`]) and then copies it with
//! the same code.

use crate::checkpoint;
use crate::engine::params::{self, Tensors};
use crate::engine::Float;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The part of `name` after `prefix` when the prefix selects it: `""` for the name itself,
/// `"attn.q.w"` for `blocks.0.attn.q.w` under `blocks.0`, None when it is not under it.
pub fn suffix<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    let prefix = prefix.trim_end_matches('.');
    if prefix.is_empty() {
        return Some(name);
    }
    let rest = name.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('.')
    }
}

/// `prefix.suffix`, or whichever of the two is not empty.
pub fn join(prefix: &str, suffix: &str) -> String {
    let prefix = prefix.trim_end_matches('.');
    match (prefix.is_empty(), suffix.is_empty()) {
        (true, _) => suffix.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{suffix}"),
    }
}

/// The parts a model's names fall into, for error messages and `tinymoe inspect`: the first
/// component of each name, with the next one too when it is an index (`embed`, `blocks.0`,
/// `blocks.1`, `experts.2`, `ln_f`), in first-seen order.
pub fn parts<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let mut pieces = name.split('.');
        let first = pieces.next().expect("split yields at least one piece");
        let part = match pieces.next() {
            Some(i) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => format!("{first}.{i}"),
            _ => first.to_string(),
        };
        if !out.contains(&part) {
            out.push(part);
        }
    }
    out
}

/// How the selected source tensors map onto the destination: (source index, destination
/// index) pairs, or every reason they do not fit.
fn plan(
    src: &[(String, Vec<usize>)],
    src_prefix: &str,
    dst: &[(String, Vec<usize>)],
    dst_prefix: &str,
) -> std::result::Result<Vec<(usize, usize)>, Vec<String>> {
    let selected =
        |names: &[(String, Vec<usize>)], prefix: &str| names.iter().any(|(n, _)| suffix(prefix, n).is_some());
    let listing = |names: &[(String, Vec<usize>)]| parts(names.iter().map(|(n, _)| n.as_str())).join(", ");
    let mut problems = Vec::new();
    if !selected(src, src_prefix) {
        problems.push(format!("the source has no tensor named {src_prefix:?} or under it (it has: {})", listing(src)));
    }
    if !selected(dst, dst_prefix) {
        problems.push(format!("the model has no tensor named {dst_prefix:?} or under it (it has: {})", listing(dst)));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let dst_index: BTreeMap<&str, usize> = dst.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
    let mut pairs = Vec::new();
    let mut filled = vec![false; dst.len()];
    for (i, (name, shape)) in src.iter().enumerate() {
        let Some(rest) = suffix(src_prefix, name) else { continue };
        let target = join(dst_prefix, rest);
        match dst_index.get(target.as_str()) {
            None => problems.push(format!("the model has no tensor {target} to take {name} {shape:?}")),
            Some(&j) => {
                filled[j] = true;
                if dst[j].1 == *shape {
                    pairs.push((i, j));
                } else if target == *name {
                    problems.push(format!("tensor {name} has shape {shape:?}, the model expects {:?}", dst[j].1));
                } else {
                    problems.push(format!("tensor {name} has shape {shape:?}, the model's {target} is {:?}", dst[j].1));
                }
            }
        }
    }
    for (j, (name, shape)) in dst.iter().enumerate() {
        if let Some(rest) = suffix(dst_prefix, name).filter(|_| !filled[j]) {
            problems.push(format!("nothing in the source fills {name} {shape:?} (no {})", join(src_prefix, rest)));
        }
    }
    if problems.is_empty() {
        Ok(pairs)
    } else {
        Err(problems)
    }
}

/// Plans, then copies if everything fits: the destination names written, or every problem
/// (with `dst` untouched).
fn copy<F: Float>(
    src: &dyn Tensors<F>,
    src_prefix: &str,
    dst: &mut dyn Tensors<F>,
    dst_prefix: &str,
) -> std::result::Result<Vec<String>, String> {
    let pairs = plan(&params::shapes(src), src_prefix, &params::shapes(dst), dst_prefix)
        .map_err(|p| format!("nothing was copied; {} problem(s): {}", p.len(), p.join("; ")))?;
    let src = src.tensors();
    let mut dst = dst.tensors_mut();
    let mut written = Vec::with_capacity(pairs.len());
    for (i, j) in pairs {
        dst[j].1.assign(&src[i].1);
        written.push(dst[j].0.clone());
    }
    Ok(written)
}

/// Copies every tensor of `src` under `src_prefix` into the tensor of `dst` with the same
/// suffix under `dst_prefix`, bit for bit, and returns the destination names written (in the
/// source's order). All or nothing: if any tensor lacks a partner on either side or has
/// another shape, the error lists every such problem and `dst` is unchanged.
pub fn copy_part<F: Float>(
    src: &dyn Tensors<F>,
    src_prefix: &str,
    dst: &mut dyn Tensors<F>,
    dst_prefix: &str,
) -> Result<Vec<String>> {
    copy(src, src_prefix, dst, dst_prefix)
        .map_err(|problem| Error::bad_value("part", format!("{src_prefix:?} → {dst_prefix:?}"), &problem))
}

/// Several parts at once, all or nothing across them: every (source prefix, destination
/// prefix) pair is planned as [`copy_part`] plans one, and only if every pair fits is anything
/// copied (E1 transplants an expert's input and hidden layers, `layers.0` and `layers.1`, but
/// not its output layer). Returns the destination names written, pair by pair; the error
/// lists every problem of every pair, with `dst` unchanged.
pub fn copy_parts<F: Float>(
    src: &dyn Tensors<F>,
    dst: &mut dyn Tensors<F>,
    pairs: &[(&str, &str)],
) -> Result<Vec<String>> {
    let (src_shapes, dst_shapes) = (params::shapes(src), params::shapes(dst));
    let mut problems = Vec::new();
    for &(sp, dp) in pairs {
        if let Err(p) = plan(&src_shapes, sp, &dst_shapes, dp) {
            problems.extend(p.into_iter().map(|p| format!("{sp:?} → {dp:?}: {p}")));
        }
    }
    if !problems.is_empty() {
        let listed = pairs.iter().map(|(s, d)| format!("{s:?} → {d:?}")).collect::<Vec<_>>().join(", ");
        return Err(Error::bad_value(
            "parts",
            listed,
            &format!("nothing was copied; {} problem(s): {}", problems.len(), problems.join("; ")),
        ));
    }
    let mut written = Vec::new();
    for &(sp, dp) in pairs {
        written.extend(copy_part(src, sp, dst, dp)?);
    }
    Ok(written)
}

/// [`copy_part`] from the checkpoint at `path`, of any kind: reads only the tensors under
/// `src_prefix`, by the header's offsets, after checking the whole file's checksum. Errors
/// name the file.
pub fn load_part(path: &Path, src_prefix: &str, dst: &mut dyn Tensors<f32>, dst_prefix: &str) -> Result<Vec<String>> {
    let what = if src_prefix.is_empty() && dst_prefix.is_empty() {
        "loading every tensor by name".to_string()
    } else {
        format!("part {src_prefix:?} → {dst_prefix:?}")
    };
    let bad = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem: format!("{what}: {problem}") };
    let (header, part) = checkpoint::read_tensors(path, |name| suffix(src_prefix, name).is_some())?;
    if part.0.is_empty() {
        let have = parts(header.tensors.iter().map(|t| t.name.as_str()));
        return Err(bad(format!(
            "nothing was copied: the file has no tensor named {src_prefix:?} or under it (it has: {})",
            have.join(", ")
        )));
    }
    copy(&part, src_prefix, dst, dst_prefix).map_err(bad)
}
