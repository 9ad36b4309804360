//! Checkpoints: a model's weights with a readable header, a checksum, and atomic saves.
//!
//! ```text
//!   b"TINYMOE\0"             8 bytes of magic: "this is a tinymoe checkpoint"
//!   format version           u32, little-endian
//!   header length            u64, little-endian
//!   header                   JSON: model kind, config, every tensor's name and shape,
//!                            payload length, free-form metadata (tokeniser, training summary)
//!   payload                  bincode of the model's parameters
//!   CRC-32                   of every byte above, u32, little-endian
//! ```
//! Loading checks all of it before trusting any of it — magic, version, lengths, checksum,
//! model kind, and that the decoded tensors are exactly the ones the header lists — so a
//! truncated, bit-flipped or foreign file is a clear error naming the file, never a panic or a
//! silently wrong model. Saving goes through [`crate::io::write_atomic`]: a crash mid-save
//! leaves the previous checkpoint whole.

use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use bincode::Options;
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
}

fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), problem: problem.into() }
}

/// The tensor list of a model, as the header records it.
pub fn tensor_infos<M: Tensors<f32>>(model: &M) -> Vec<TensorInfo> {
    model.tensors().into_iter().map(|(name, t)| TensorInfo { name, shape: t.shape().to_vec() }).collect()
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
    let header = Header {
        kind: kind.to_string(),
        config: serde_json::to_value(config).map_err(|e| bad(path, format!("cannot encode the config: {e}")))?,
        tensors: tensor_infos(model),
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
pub fn load<M: DeserializeOwned + Tensors<f32>>(path: &Path, kind: &str) -> Result<(Header, M)> {
    let (header, payload) = read(path)?;
    if header.kind != kind {
        return Err(bad(path, format!("it holds a {:?} model, expected a {kind:?} model", header.kind)));
    }
    let model: M = bincode_options()
        .with_limit(payload.len() as u64)
        .deserialize(&payload)
        .map_err(|e| bad(path, format!("the weights do not decode: {e}")))?;
    let found = tensor_infos(&model);
    if found != header.tensors {
        return Err(bad(path, "the decoded tensors differ from the ones the header lists"));
    }
    Ok((header, model))
}

/// A model with, optionally, the state that resumes its training exactly (optimiser moments
/// and step, generator states, position in the data): what `tinymoe train` saves. Its tensors
/// are the model's, so the header lists the model's weights only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trained<M, S> {
    pub model: M,
    pub state: Option<S>,
}

impl<M: Tensors<f32>, S> Tensors<f32> for Trained<M, S> {
    fn tensors(&self) -> Vec<crate::engine::params::Named<'_, f32>> {
        self.model.tensors()
    }
    fn tensors_mut(&mut self) -> Vec<crate::engine::params::NamedMut<'_, f32>> {
        self.model.tensors_mut()
    }
}
