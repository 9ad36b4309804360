//! Checkpoints: a model's weights with a readable header, a checksum, and atomic saves.
//!
//! ```text
//!   b"TINYMOE\0"             8 bytes of magic: "this is a tinymoe checkpoint"
//!   format version           u32, little-endian
//!   header length            u64, little-endian
//!   header                   JSON: model kind, config, every tensor's name, shape and
//!                            offset in the payload, payload length, free-form metadata
//!                            (tokeniser, training summary)
//!   payload                  bincode of the model (and, for a run, its training state)
//!   CRC-32                   of every byte above, u32, little-endian
//! ```
//! Loading checks all of it before trusting any of it — magic, version, lengths, checksum,
//! model kind, and that the decoded tensors are exactly the ones the header lists — so a
//! truncated, bit-flipped or foreign file is a clear error naming the file, never a panic or a
//! silently wrong model. Saving goes through [`crate::io::write_atomic`]: a crash mid-save
//! leaves the previous checkpoint whole (tests/crash.rs kills a saving process at random
//! moments and checks it).
//!
//! **Reading tensors by name.** The payload is the model struct as bincode, which only the
//! model's own Rust type can decode. So that any tool can still take one tensor out of any
//! checkpoint (`tinymoe inspect`, and [`crate::transplant`], which loads one block or one
//! expert into another model), the header records for each tensor the byte `offset` in the
//! payload where its values start: `shape.product()` f32s, little-endian, row-major — the
//! idea of safetensors' `data_offsets`. bincode does not report where it put each array, so
//! [`save`] finds each tensor's bytes in the payload it has just encoded (its own encoding
//! first: ndarray writes a format byte, the shape and the element count before the values),
//! and [`load`] checks every offset against the decoded model. The offsets are an optional
//! header field: a file without them still loads with its type, and [`read_tensors`] says
//! which tensor it cannot place.

use crate::engine::params::{Named, NamedMut, Tensors};
use crate::error::{Error, Result};
pub use crate::models::validate::Validate;
use bincode::Options;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"TINYMOE\0";
pub const VERSION: u32 = 1;

/// The readable part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// What the payload is, e.g. "transformer_lm".
    pub kind: String,
    /// The model's config, as JSON.
    pub config: serde_json::Value,
    /// Every tensor, in the model's own order.
    pub tensors: Vec<TensorInfo>,
    pub payload_bytes: u64,
    /// Anything else worth keeping beside the weights (tokeniser, steps trained, losses).
    pub meta: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// Where the tensor's values start in the payload, in bytes: `shape.product()` f32s,
    /// little-endian, row-major. None in files saved before offsets were recorded, and for a
    /// tensor whose values the payload does not hold in one piece (a strided view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), problem: problem.into() }
}

/// The tensor list of a model (names and shapes; the offsets are found by [`save`]).
pub fn tensor_infos<M: Tensors<f32>>(model: &M) -> Vec<TensorInfo> {
    model.tensors().into_iter().map(|(name, t)| TensorInfo { name, shape: t.shape().to_vec(), offset: None }).collect()
}

/// Saves `model` (atomically) with its kind, config and metadata.
pub fn save<M: Serialize + Tensors<f32>>(
    path: &Path,
    kind: &str,
    config: &impl Serialize,
    model: &M,
    meta: serde_json::Value,
) -> Result<()> {
    let payload = bincode_options().serialize(model).map_err(|e| bad(path, format!("cannot encode the model: {e}")))?;
    let mut tensors = tensor_infos(model);
    for (info, offset) in tensors.iter_mut().zip(locate(&payload, &model.tensors())) {
        info.offset = offset.map(|o| o as u64);
    }
    let header = Header {
        kind: kind.to_string(),
        config: serde_json::to_value(config).map_err(|e| bad(path, format!("cannot encode the config: {e}")))?,
        tensors,
        payload_bytes: payload.len() as u64,
        meta,
    };
    let header = serde_json::to_vec_pretty(&header).map_err(|e| bad(path, format!("cannot encode the header: {e}")))?;
    let mut bytes = Vec::with_capacity(8 + 4 + 8 + header.len() + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    crate::io::write_atomic(path, &bytes)
}

/// Reads and validates a checkpoint's framing: returns the header and the payload bytes.
pub fn read(path: &Path) -> Result<(Header, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(bad(path, "the file is empty"));
    }
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad(path, "wrong magic bytes: this is not a tinymoe checkpoint"));
    }
    if bytes.len() < 8 + 4 + 8 + 4 {
        return Err(bad(path, format!("truncated: only {} bytes", bytes.len())));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(
            path,
            format!(
                "format version {version}, but this tinymoe reads version {VERSION} (made by a different tinymoe?)"
            ),
        ));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let header_end = 20u64.checked_add(header_len).filter(|&e| e <= body.len() as u64).ok_or_else(|| {
        bad(path, format!("truncated: the header claims {header_len} bytes, the file has {} in all", bytes.len()))
    })? as usize;
    if crc32fast::hash(body) != stored {
        return Err(bad(path, "checksum mismatch: the file is corrupt or truncated"));
    }
    let header: Header =
        serde_json::from_slice(&bytes[20..header_end]).map_err(|e| bad(path, format!("unreadable header: {e}")))?;
    let payload = &body[header_end..];
    if payload.len() as u64 != header.payload_bytes {
        return Err(bad(
            path,
            format!("the header promises {} payload bytes, the file holds {}", header.payload_bytes, payload.len()),
        ));
    }
    Ok((header, payload.to_vec()))
}

/// Loads a checkpoint of `kind`: the header and the decoded model.
///
/// After the framing, the checksum and the tensor list, the model's own config is checked
/// ([`Validate`]: ranges, heads dividing d_model, every tensor's shape against the config, and
/// the size of the model against this machine's memory), so a file whose payload was forged
/// and its checksum recomputed is refused here, naming the file and the value, instead of
/// panicking later in `generate` or `attention`.
pub fn load<M: DeserializeOwned + Tensors<f32> + Validate>(path: &Path, kind: &str) -> Result<(Header, M)> {
    let (header, payload) = read(path)?;
    if header.kind != kind {
        return Err(bad(path, format!("it holds a {:?} model, expected a {kind:?} model", header.kind)));
    }
    let model: M = bincode_options()
        .with_limit(payload.len() as u64)
        .deserialize(&payload)
        .map_err(|e| bad(path, format!("the weights do not decode: {e}")))?;
    check_listed(path, &header, &payload, &model)?;
    model
        .validate(crate::io::machine_memory())
        .map_err(|e| bad(path, format!("its model config is not valid: {e}")))?;
    Ok((header, model))
}

/// The decoded model has exactly the tensors the header lists (names and shapes, in order),
/// and each recorded offset points at that tensor's values.
fn check_listed(path: &Path, header: &Header, payload: &[u8], model: &dyn Tensors<f32>) -> Result<()> {
    let found = model.tensors();
    if found.len() != header.tensors.len() {
        return Err(bad(
            path,
            format!("the weights hold {} tensors, the header lists {}", found.len(), header.tensors.len()),
        ));
    }
    for ((name, t), info) in found.iter().zip(&header.tensors) {
        if *name != info.name || t.shape() != info.shape.as_slice() {
            return Err(bad(
                path,
                format!(
                    "the weights hold tensor {name} {:?} where the header lists {} {:?}",
                    t.shape(),
                    info.name,
                    info.shape
                ),
            ));
        }
        if let Some(offset) = info.offset {
            let at = usize::try_from(offset).ok().and_then(|o| payload.get(o..o.checked_add(4 * t.len())?));
            if !at.is_some_and(|bytes| holds_values(bytes, t)) {
                return Err(bad(
                    path,
                    format!("the header places tensor {name} at payload byte {offset}, but its values are not there"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `bytes` are exactly `t`'s values as f32 little-endian, in row-major order.
fn holds_values(bytes: &[u8], t: &ArrayViewD<f32>) -> bool {
    bytes.len() == 4 * t.len() && bytes.chunks_exact(4).zip(t.iter()).all(|(b, x)| b == x.to_le_bytes())
}

/// `t`'s values as the payload stores them: f32 little-endian, row-major.
fn value_bytes(t: &ArrayViewD<f32>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 * t.len());
    for x in t.iter() {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// Where each tensor's values start in `payload`, found by content. A tensor is looked for
/// first with the prefix ndarray's serde writes before an array's values (format byte 1, each
/// dim as u64, the element count as u64), which makes a false start unlikely and the search
/// fast, then as bare values (a view into a bigger array). Either way the bytes found are the
/// tensor's values exactly, so even a match in the "wrong" place (an identical copy, e.g. two
/// LayerNorms still at their initial ones) reads back right. The search starts where the last
/// tensor ended, since bincode writes the fields in the order `tensors()` usually lists them.
fn locate(payload: &[u8], tensors: &[Named<'_, f32>]) -> Vec<Option<usize>> {
    let mut hint = 0;
    let mut offsets = Vec::with_capacity(tensors.len());
    for (_, t) in tensors {
        let values = value_bytes(t);
        let mut encoded = vec![1u8];
        for &d in t.shape() {
            encoded.extend_from_slice(&(d as u64).to_le_bytes());
        }
        encoded.extend_from_slice(&(t.len() as u64).to_le_bytes());
        let prefix = encoded.len();
        encoded.extend_from_slice(&values);
        let at = find_near(payload, &encoded, hint).map(|p| p + prefix).or_else(|| find_near(payload, &values, hint));
        if let Some(p) = at {
            hint = p + values.len();
        }
        offsets.push(at);
    }
    offsets
}

/// The occurrence of `needle` in `hay` nearest to `hint`: the first at or after it, else the
/// last before it.
fn find_near(hay: &[u8], needle: &[u8], hint: usize) -> Option<usize> {
    let last = hay.len().checked_sub(needle.len())?;
    let hint = hint.min(last + 1);
    let matches = |&p: &usize| needle.first().is_none_or(|&b| hay[p] == b) && hay[p..p + needle.len()] == *needle;
    (hint..=last).find(matches).or_else(|| (0..hint).rev().find(matches))
}

/// Tensors by name, read from a checkpoint without its model's Rust type (see [`read_tensors`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedTensors(pub Vec<(String, ArrayD<f32>)>);

impl Tensors<f32> for NamedTensors {
    fn tensors(&self) -> Vec<Named<'_, f32>> {
        self.0.iter().map(|(n, t)| (n.clone(), t.view())).collect()
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f32>> {
        self.0.iter_mut().map(|(n, t)| (n.clone(), t.view_mut())).collect()
    }
}

/// Reads the tensors whose names `keep` accepts from any checkpoint, whatever its kind, by the
/// header's offsets (after [`read`] has checked the framing and the checksum). Returns the
/// header too, which lists every tensor of the file.
pub fn read_tensors(path: &Path, keep: impl Fn(&str) -> bool) -> Result<(Header, NamedTensors)> {
    let (header, payload) = read(path)?;
    let mut out = Vec::new();
    for info in header.tensors.iter().filter(|t| keep(&t.name)) {
        let name = &info.name;
        let offset = info.offset.ok_or_else(|| {
            bad(
                path,
                format!(
                    "the header records no offset for tensor {name} (a file from before offsets were \
                     recorded): load it with its model type and save it again"
                ),
            )
        })?;
        let count = info.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let range = count.and_then(|n| {
            let start = usize::try_from(offset).ok()?;
            Some(start..start.checked_add(n.checked_mul(4)?)?)
        });
        let bytes = range.and_then(|r| payload.get(r)).ok_or_else(|| {
            bad(
                path,
                format!(
                    "the header places tensor {name} {:?} at payload byte {offset}, past the payload's {} bytes",
                    info.shape,
                    payload.len()
                ),
            )
        })?;
        let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        // A shape with a 0 holds no values however large its other dimensions; ndarray still
        // refuses one whose other dimensions overflow, so that is an error too, not a panic.
        let t = ArrayD::from_shape_vec(IxDyn(&info.shape), values).map_err(|e| {
            bad(path, format!("the header gives tensor {name} the impossible shape {:?}: {e}", info.shape))
        })?;
        out.push((name.clone(), t));
    }
    Ok((header, NamedTensors(out)))
}

/// A model with, optionally, the state that resumes its training exactly (optimiser moments
/// and step, generator states, position in the data): what `tinymoe train` saves. Its tensors
/// are the model's, so the header lists the model's weights only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trained<M, S> {
    pub model: M,
    pub state: Option<S>,
}

/// A run's model is checked as the model alone: the training state holds no shapes to agree.
impl<M: Validate, S> Validate for Trained<M, S> {
    fn validate(&self, memory: u64) -> Result<()> {
        self.model.validate(memory)
    }
}

impl<M: Tensors<f32>, S> Tensors<f32> for Trained<M, S> {
    fn tensors(&self) -> Vec<crate::engine::params::Named<'_, f32>> {
        self.model.tensors()
    }
    fn tensors_mut(&mut self) -> Vec<crate::engine::params::NamedMut<'_, f32>> {
        self.model.tensors_mut()
    }
}
