//! Any checkpoint tinymoe writes, decoded with its model's Rust type — what `tinymoe export`,
//! `tinymoe import` and the PyTorch twin need when the kind is only known at run time — and
//! [`import`]: weights changed outside tinymoe (continued in PyTorch, say) back into a copy of a
//! checkpoint.

use crate::checkpoint::{self, Header, Trained, Validate};
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use crate::interchange::{import_safetensors, read_metadata};
use crate::models::classifier::Classifier;
use crate::models::transformer_lm;
use crate::run::{classifier as train, lm, moe_lm as moe};
use crate::train::{FitState, LmState};
use std::path::Path;

/// Loads a language-model checkpoint (validating all of it): its header, weights and, when it
/// was saved mid-training, its training state.
pub fn load_lm(path: &Path) -> Result<(Header, transformer_lm::Params<f32>, Option<LmState>)> {
    let (header, saved): (_, Trained<transformer_lm::Params<f32>, LmState>) = checkpoint::load(path, lm::KIND)?;
    Ok((header, saved.model, saved.state))
}

/// The checkpoint kinds this program can decode and write, with the command that makes each.
pub const KINDS: &[(&str, &str)] =
    &[(lm::KIND, "tinymoe train lm"), (moe::KIND, "tinymoe train moe, the demo"), (train::KIND, "tinymoe train")];

/// A checkpoint decoded with its model's Rust type (which saving needs).
pub enum Saved {
    Lm(Box<Trained<transformer_lm::Params<f32>, LmState>>),
    MoeLm(Box<Trained<crate::models::moe_lm::Params<f32>, crate::train::MoeState>>),
    Classifier(Box<Trained<Classifier<f32>, FitState>>),
}

impl Saved {
    /// Loads and validates a checkpoint of any supported kind; another kind is an error listing
    /// the supported ones.
    pub fn load(path: &Path) -> Result<(Header, Saved)> {
        let (header, _) = checkpoint::read(path)?;
        Ok(match header.kind.as_str() {
            lm::KIND => {
                let (header, model, state) = load_lm(path)?;
                (header, Saved::Lm(Box::new(Trained { model, state })))
            }
            moe::KIND => {
                let (header, saved) = checkpoint::load(path, moe::KIND)?;
                (header, Saved::MoeLm(Box::new(saved)))
            }
            train::KIND => {
                let (header, saved) = checkpoint::load(path, train::KIND)?;
                (header, Saved::Classifier(Box::new(saved)))
            }
            other => {
                let kinds: Vec<String> = KINDS.iter().map(|(k, by)| format!("{k} ({by})")).collect();
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    problem: format!(
                        "it holds a {other:?} model, which this tinymoe cannot decode (it knows: {})",
                        kinds.join(", ")
                    ),
                });
            }
        })
    }

    /// The model's tensors (the training state has none).
    pub fn tensors(&self) -> &dyn Tensors<f32> {
        match self {
            Saved::Lm(t) => t.as_ref(),
            Saved::MoeLm(t) => t.as_ref(),
            Saved::Classifier(t) => t.as_ref(),
        }
    }

    pub fn tensors_mut(&mut self) -> &mut dyn Tensors<f32> {
        match self {
            Saved::Lm(t) => t.as_mut(),
            Saved::MoeLm(t) => t.as_mut(),
            Saved::Classifier(t) => t.as_mut(),
        }
    }

    /// The model's config against itself, its tensors and this machine's memory (as loading
    /// checked it: the import may only change values, and this says so if it did more).
    pub fn validate(&self) -> crate::Result<()> {
        let memory = crate::io::machine_memory();
        match self {
            Saved::Lm(t) => t.validate(memory),
            Saved::MoeLm(t) => t.validate(memory),
            Saved::Classifier(t) => t.validate(memory),
        }
    }

    /// Forgets the training state: it belongs to the weights the model had.
    pub fn drop_state(&mut self) {
        match self {
            Saved::Lm(t) => t.state = None,
            Saved::MoeLm(t) => t.state = None,
            Saved::Classifier(t) => t.state = None,
        }
    }

    /// Saves (atomically) under the header's kind and config.
    pub fn save(&self, path: &Path, header: &Header, meta: serde_json::Value) -> crate::Result<()> {
        let (kind, config) = (header.kind.as_str(), &header.config);
        match self {
            Saved::Lm(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
            Saved::MoeLm(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
            Saved::Classifier(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
        }
    }
}

/// What [`import`] did.
pub struct Imported {
    pub kind: String,
    pub tensors: usize,
    pub parameters: usize,
    /// Our names of the tensors whose values differ from the checkpoint imported into.
    pub changed: Vec<String>,
    /// Tensors of the file the model does not have (ignored with `allow_extra`).
    pub unused: Vec<String>,
}

/// Writes `out`: a copy of the checkpoint `into` with every weight taken from the safetensors
/// file `weights` (PyTorch names and layouts), all or nothing — a missing name, a shape or
/// dtype that differs, a non-finite value or (unless `allow_extra`) a name the model does not
/// have stops it before anything is written. The copy keeps `into`'s settings and records
/// `imported_from`, but not its training state (it belonged to the old weights).
pub fn import(weights: &Path, into: &Path, out: &Path, allow_extra: bool) -> Result<Imported> {
    // The file's framing first: a junk file is an error naming it before any checkpoint is read.
    let file_meta = read_metadata(weights)?;
    let weights_crc32 = crc32fast::hash(&std::fs::read(weights).map_err(|e| Error::io(weights, e))?);
    let (header, mut typed) = Saved::load(into)?;
    if let Some(kind) = file_meta.get("tinymoe.kind").filter(|k| **k != header.kind) {
        return Err(Error::BadFile {
            path: weights.to_path_buf(),
            problem: format!(
                "it was exported from a {kind:?} checkpoint, but {} holds a {:?} model",
                into.display(),
                header.kind
            ),
        });
    }

    let before: Vec<Vec<u32>> =
        typed.tensors().tensors().iter().map(|(_, t)| t.iter().map(|x| x.to_bits()).collect()).collect();
    let unused = import_safetensors(weights, typed.tensors_mut())?;
    if !unused.is_empty() && !allow_extra {
        return Err(Error::BadFile {
            path: weights.to_path_buf(),
            problem: format!(
                "{} tensor(s) that the {} model of {} does not have: {} (--allow-extra ignores them)",
                unused.len(),
                header.kind,
                into.display(),
                unused.join(", ")
            ),
        });
    }
    let tensors = typed.tensors().tensors();
    let non_finite: Vec<&str> =
        tensors.iter().filter(|(_, t)| t.iter().any(|x| !x.is_finite())).map(|(n, _)| n.as_str()).collect();
    if !non_finite.is_empty() {
        return Err(Error::BadFile {
            path: weights.to_path_buf(),
            problem: format!("NaN or infinite values in {} tensor(s): {}", non_finite.len(), non_finite.join(", ")),
        });
    }
    drop(tensors);
    typed.validate().map_err(|e| Error::BadFile {
        path: weights.to_path_buf(),
        problem: format!("the imported model is not valid: {e}"),
    })?;
    let tensors = typed.tensors().tensors();
    let changed: Vec<String> = tensors
        .iter()
        .zip(&before)
        .filter(|((_, t), old)| !t.iter().map(|x| x.to_bits()).eq(old.iter().copied()))
        .map(|((n, _), _)| n.clone())
        .collect();
    let parameters: usize = tensors.iter().map(|(_, t)| t.len()).sum();
    let n_tensors = tensors.len();
    drop(tensors);

    let mut meta = match header.meta.clone() {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("original_meta".to_string(), other)]),
    };
    meta.remove("training");
    meta.insert(
        "imported_from".into(),
        serde_json::json!({
            "weights": weights,
            "weights_crc32": format!("{weights_crc32:08x}"),
            "into": into,
            "tensors_changed": changed.len(),
            "ignored_extra": unused,
            "training_state": "dropped: it belonged to the weights of the checkpoint imported into",
        }),
    );
    typed.drop_state();
    typed.save(out, &header, serde_json::Value::Object(meta))?;

    Ok(Imported { kind: header.kind.clone(), tensors: n_tensors, parameters, changed, unused })
}
