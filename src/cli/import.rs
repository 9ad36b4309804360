//! `tinymoe import --weights F.safetensors --into CKPT --out NEW.ckpt`: weights changed outside
//! tinymoe (continued or fine-tuned in PyTorch, say) back into a checkpoint.
//!
//! The file is read by PyTorch `state_dict` name and layout (the table in
//! [`crate::interchange`]: Linear weights [out, in] are transposed back to ours). CKPT gives
//! what the file does not carry: the kind, the config and the model's Rust type, which saving
//! needs (the payload is the model struct). The new checkpoint is CKPT with every weight
//! replaced, all or nothing: a missing name, a shape or dtype that differs, a non-finite value,
//! or (unless `--allow-extra`) a name the model does not have stops the import before anything
//! is written, and the error lists every such tensor.
//!
//! The new checkpoint keeps CKPT's metadata (the run's settings, the tokeniser) and records
//! `imported_from`, but not CKPT's training state: the optimiser moments, generator states and
//! data position belonged to the old weights, so NEW.ckpt holds weights only and cannot be
//! `--resume`d (the meta's `training` entry goes too, so `tinymoe inspect` says so).

use crate::checkpoint::{self, Header, Trained, Validate};
use crate::cli::inspect::load_lm;
use crate::engine::params::Tensors;
use crate::error::Error;
use crate::interchange::{import_safetensors, read_metadata};
use crate::models::classifier::Classifier;
use crate::models::transformer_lm;
use crate::run::{classifier as train, lm, moe_lm as moe};
use crate::train::{FitState, LmState};
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};

/// The checkpoint kinds this program can decode and write, with the command that makes each.
pub(super) const KINDS: &[(&str, &str)] =
    &[(lm::KIND, "tinymoe train lm"), (moe::KIND, "tinymoe train moe, the demo"), (train::KIND, "tinymoe train")];

/// A checkpoint decoded with its model's Rust type (which saving needs).
pub(super) enum Typed {
    Lm(Box<Trained<transformer_lm::Params<f32>, LmState>>),
    MoeLm(Box<Trained<crate::models::moe_lm::Params<f32>, crate::train::MoeState>>),
    Classifier(Box<Trained<Classifier<f32>, FitState>>),
}

impl Typed {
    /// Loads and validates a checkpoint of any supported kind; another kind is an error listing
    /// the supported ones.
    pub(super) fn load(path: &Path) -> anyhow::Result<(Header, Typed)> {
        let (header, _) = checkpoint::read(path)?;
        Ok(match header.kind.as_str() {
            lm::KIND => {
                let (header, model, state) = load_lm(path)?;
                (header, Typed::Lm(Box::new(Trained { model, state })))
            }
            moe::KIND => {
                let (header, saved) = checkpoint::load(path, moe::KIND)?;
                (header, Typed::MoeLm(Box::new(saved)))
            }
            train::KIND => {
                let (header, saved) = checkpoint::load(path, train::KIND)?;
                (header, Typed::Classifier(Box::new(saved)))
            }
            other => {
                let kinds: Vec<String> = KINDS.iter().map(|(k, by)| format!("{k} ({by})")).collect();
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    problem: format!(
                        "it holds a {other:?} model, which this tinymoe cannot decode (it knows: {})",
                        kinds.join(", ")
                    ),
                }
                .into());
            }
        })
    }

    /// The model's tensors (the training state has none).
    pub(super) fn tensors(&self) -> &dyn Tensors<f32> {
        match self {
            Typed::Lm(t) => t.as_ref(),
            Typed::MoeLm(t) => t.as_ref(),
            Typed::Classifier(t) => t.as_ref(),
        }
    }

    fn tensors_mut(&mut self) -> &mut dyn Tensors<f32> {
        match self {
            Typed::Lm(t) => t.as_mut(),
            Typed::MoeLm(t) => t.as_mut(),
            Typed::Classifier(t) => t.as_mut(),
        }
    }

    /// The model's config against itself, its tensors and this machine's memory (as loading
    /// checked it: the import may only change values, and this says so if it did more).
    fn validate(&self) -> crate::Result<()> {
        let memory = crate::io::machine_memory();
        match self {
            Typed::Lm(t) => t.validate(memory),
            Typed::MoeLm(t) => t.validate(memory),
            Typed::Classifier(t) => t.validate(memory),
        }
    }

    /// Forgets the training state: it belongs to the weights the model had.
    fn drop_state(&mut self) {
        match self {
            Typed::Lm(t) => t.state = None,
            Typed::MoeLm(t) => t.state = None,
            Typed::Classifier(t) => t.state = None,
        }
    }

    /// Saves (atomically) under the header's kind and config.
    fn save(&self, path: &Path, header: &Header, meta: serde_json::Value) -> crate::Result<()> {
        let (kind, config) = (header.kind.as_str(), &header.config);
        match self {
            Typed::Lm(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
            Typed::MoeLm(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
            Typed::Classifier(t) => checkpoint::save(path, kind, config, t.as_ref(), meta),
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The safetensors file to take every weight from, under PyTorch state_dict names and
    /// layouts (what `tinymoe export` writes; Linear weights [out, in]).
    #[arg(long)]
    pub weights: PathBuf,
    /// The checkpoint to copy: its kind, config and metadata are kept, its weights replaced.
    /// Any kind tinymoe trains: `train lm`, `train moe` (and the demo's MoE LM), `train`.
    #[arg(long)]
    pub into: PathBuf,
    /// Where to write the new checkpoint (atomically); not the --into file itself.
    #[arg(long)]
    pub out: PathBuf,
    /// Ignore tensors in the file that the model does not have (by default they are an error).
    #[arg(long)]
    pub allow_extra: bool,
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// `tinymoe import`.
pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    if same_file(&a.out, &a.into) {
        return Err(Error::bad_value(
            "--out",
            a.out.display(),
            "is the --into checkpoint itself; write the imported weights to a new file",
        )
        .into());
    }
    // Neither input may be written over (`--out` the safetensors file itself).
    crate::io::refuse_overwrite(&[&a.weights, &a.into], &a.out)?;
    // The file's framing first: a junk file is an error naming it before any checkpoint is read.
    let file_meta = read_metadata(&a.weights)?;
    let weights_crc32 = crc32fast::hash(&std::fs::read(&a.weights).map_err(|e| Error::io(&a.weights, e))?);
    let (header, mut typed) = Typed::load(&a.into)?;
    if let Some(kind) = file_meta.get("tinymoe.kind").filter(|k| **k != header.kind) {
        return Err(Error::BadFile {
            path: a.weights.clone(),
            problem: format!(
                "it was exported from a {kind:?} checkpoint, but {} holds a {:?} model",
                a.into.display(),
                header.kind
            ),
        }
        .into());
    }

    let before: Vec<Vec<u32>> =
        typed.tensors().tensors().iter().map(|(_, t)| t.iter().map(|x| x.to_bits()).collect()).collect();
    let unused = import_safetensors(&a.weights, typed.tensors_mut())
        .with_context(|| format!("cannot import into {} (kind {})", a.into.display(), header.kind))?;
    if !unused.is_empty() && !a.allow_extra {
        return Err(Error::BadFile {
            path: a.weights.clone(),
            problem: format!(
                "{} tensor(s) that the {} model of {} does not have: {} (--allow-extra ignores them)",
                unused.len(),
                header.kind,
                a.into.display(),
                unused.join(", ")
            ),
        }
        .into());
    }
    let tensors = typed.tensors().tensors();
    let non_finite: Vec<&str> =
        tensors.iter().filter(|(_, t)| t.iter().any(|x| !x.is_finite())).map(|(n, _)| n.as_str()).collect();
    if !non_finite.is_empty() {
        return Err(Error::BadFile {
            path: a.weights.clone(),
            problem: format!("NaN or infinite values in {} tensor(s): {}", non_finite.len(), non_finite.join(", ")),
        }
        .into());
    }
    drop(tensors);
    typed.validate().map_err(|e| Error::BadFile {
        path: a.weights.clone(),
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
            "weights": a.weights,
            "weights_crc32": format!("{weights_crc32:08x}"),
            "into": a.into,
            "tensors_changed": changed.len(),
            "ignored_extra": unused,
            "training_state": "dropped: it belonged to the weights of the checkpoint imported into",
        }),
    );
    typed.drop_state();
    typed.save(&a.out, &header, serde_json::Value::Object(meta))?;

    println!(
        "imported {} into a copy of {} (kind {}): {n_tensors} tensors, {parameters} parameters",
        a.weights.display(),
        a.into.display(),
        header.kind
    );
    let listed: Vec<&str> = changed.iter().map(String::as_str).take(8).collect();
    let more = if changed.len() > listed.len() {
        format!(", … ({} more)", changed.len() - listed.len())
    } else {
        String::new()
    };
    if changed.is_empty() {
        println!("  every tensor is bit for bit the one {} holds", a.into.display());
    } else {
        println!(
            "  {} of {n_tensors} tensors differ from {}: {}{more}",
            changed.len(),
            a.into.display(),
            listed.join(", ")
        );
    }
    if !unused.is_empty() {
        println!("  ignored {} tensor(s) of the file the model does not have: {}", unused.len(), unused.join(", "));
    }
    println!("wrote {}", a.out.display());
    println!(
        "  weights only: the training state of {} (optimiser moments, generator states, data position) belonged \
         to its old weights and is not carried over, so this checkpoint cannot be --resume'd; its metadata keeps \
         the original's settings and records imported_from",
        a.into.display()
    );
    Ok(())
}
