//! One training run on disk, the same for every kind of model: the results folder, the
//! settings it ran with (`config.toml`, `config.json`), the checkpoint saved after every epoch
//! and on Ctrl-C (`model.ckpt`), loading a checkpoint to resume, and — when training fails —
//! which checkpoint is the last good one and the command that continues from it.
//!
//! ```text
//!   let resumed = Session::<Lm>::resume(path)?;           // spec, model, state: checked
//!   let mut s = Session::<Lm>::open(out, &spec, resumed.as_ref())?;
//!   … training calls s.save(model, spec, state) after every epoch …
//!   Err(e) => return Err(s.stopped(e, epochs)),             // names the last good checkpoint
//!   interrupted => s.interrupted_notice(step)               // "continue it with: …"
//! ```
//!
//! The last good checkpoint starts as the one being resumed (never the one in `--out`, which
//! may not exist), and becomes `model.ckpt` once a save in this run succeeded.

use crate::checkpoint::{self, Trained};
use crate::engine::params::Tensors;
use crate::error::{Error, Result};
use crate::run::config::{render, Settings};
use crate::run::results::Results;
use crate::train::Standing;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// What a kind of run saves: its settings, model and training state, and how its checkpoint
/// is labelled. One implementation per kind (classifier, LM, MoE LM).
pub trait Kind {
    /// The checkpoint kind, e.g. "transformer_lm".
    const KIND: &'static str;
    /// The command that runs it, e.g. "train lm" (for the messages).
    const COMMAND: &'static str;
    type Spec: Serialize + DeserializeOwned + Clone;
    type Model: Serialize + DeserializeOwned + Tensors<f32> + crate::models::validate::Validate + Clone;
    type State: Serialize + DeserializeOwned + Clone;

    /// The settings as a config file's [`Settings`].
    fn settings(spec: &Self::Spec) -> Settings;
    /// Every value in range (the same check as for flags and files).
    fn validate(spec: &Self::Spec) -> Result<()>;
    /// The model's shape, for the checkpoint header.
    fn header_config(model: &Self::Model) -> serde_json::Value;
    /// Where the run stands (the header's `meta.training`).
    fn standing(state: &Self::State) -> Standing;
    /// Kind-specific header keys (the tokeniser, the last validation numbers).
    fn meta(spec: &Self::Spec, state: &Self::State) -> Vec<(&'static str, serde_json::Value)>;
}

/// A checkpoint read back to continue its run.
pub struct Resumed<K: Kind> {
    pub path: PathBuf,
    pub spec: K::Spec,
    pub model: K::Model,
    pub state: K::State,
}

/// The last checkpoint known whole on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct LastGood {
    pub path: PathBuf,
    pub step: usize,
    pub epochs: usize,
}

/// A run's folder and checkpoints.
pub struct Session<K: Kind> {
    pub results: Results,
    checkpoint: PathBuf,
    last_good: Option<LastGood>,
    /// config.json and config.toml are written with the first save, so a run that fails
    /// before it has a checkpoint leaves an existing folder's settings matching its model.
    settings_written: bool,
    _kind: PhantomData<K>,
}

impl<K: Kind> Session<K> {
    /// Reads a checkpoint of this kind to resume: its saved settings (checked), model and
    /// training state. A weights-only file, or one without settings, is refused, naming it.
    pub fn resume(path: &Path) -> Result<Resumed<K>> {
        let (header, saved): (_, Trained<K::Model, K::State>) = checkpoint::load(path, K::KIND)?;
        let bad = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
        let spec: K::Spec = header
            .meta
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .ok_or_else(|| bad("it does not record the run's settings, so it cannot be resumed".into()))?;
        K::validate(&spec).map_err(|e| bad(format!("its saved settings are not valid: {e}")))?;
        let state = saved.state.ok_or_else(|| bad("it holds weights only, no training state to resume".into()))?;
        Ok(Resumed { path: path.to_path_buf(), spec, model: saved.model, state })
    }

    /// Creates (or opens) the results folder and writes the settings into it as `config.json`
    /// and `config.toml` (which `--config` reads back). A resumed run's checkpoint is the last
    /// good one until this run saves its own.
    pub fn open(out: &Path, spec: &K::Spec, resumed: Option<&Resumed<K>>) -> Result<Session<K>> {
        let results = Results::create(out)?;
        // Rendered now so that a settings problem fails before training, written at the first save.
        render(&K::settings(spec), "")?;
        let last_good = resumed.map(|r| {
            let s = K::standing(&r.state);
            LastGood { path: r.path.clone(), step: s.step, epochs: s.epochs_finished }
        });
        Ok(Session {
            checkpoint: results.path("model.ckpt"),
            results,
            last_good,
            settings_written: false,
            _kind: PhantomData,
        })
    }

    /// `model.ckpt`: where this run saves.
    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    pub fn last_good(&self) -> Option<&LastGood> {
        self.last_good.as_ref()
    }

    /// Saves the model and where its training stands (atomically replacing the last save).
    pub fn save(&mut self, model: &K::Model, spec: &K::Spec, state: &K::State) -> Result<()> {
        let standing = K::standing(state);
        let mut meta = serde_json::Map::new();
        for (k, v) in K::meta(spec, state) {
            meta.insert(k.into(), v);
        }
        meta.insert("epochs_done".into(), standing.epochs_finished.into());
        meta.insert("step".into(), standing.step.into());
        meta.insert("interrupted".into(), standing.interrupted.into());
        meta.insert("spec".into(), serde_json::to_value(spec).unwrap_or_default());
        meta.insert("training".into(), serde_json::to_value(&standing).unwrap_or_default());
        let saved = Trained { model: model.clone(), state: Some(state.clone()) };
        checkpoint::save(&self.checkpoint, K::KIND, &K::header_config(model), &saved, meta.into())?;
        self.results.record("model.ckpt");
        if !self.settings_written {
            self.results.json("config.json", spec)?;
            let header = format!(
                "The settings of this run (preset < config file < flags, resolved).\n\
                 Run it again with: tinymoe {} --config config.toml",
                K::COMMAND
            );
            self.results.text("config.toml", &render(&K::settings(spec), &header)?)?;
            self.settings_written = true;
        }
        self.last_good =
            Some(LastGood { path: self.checkpoint.clone(), step: standing.step, epochs: standing.epochs_finished });
        Ok(())
    }

    /// A training error, told (when a checkpoint with at least one finished epoch exists)
    /// where the last good checkpoint is and the command that continues from it. A refused
    /// setting or resume (nothing trained) stays as it is.
    pub fn stopped(&self, e: Error, epochs: usize) -> Error {
        let refused = matches!(e, Error::BadValue { .. } | Error::Unknown { .. });
        let Some(good) = self.last_good.as_ref().filter(|g| g.epochs > 0 && !refused) else { return e };
        let diverged = matches!(e, Error::NonFiniteLoss { .. } | Error::NonFiniteGrad { .. });
        let p = good.path.display();
        let advice = format!(
            "the last good checkpoint is {p} (epoch {} of {epochs}, step {}): resume with \
             `tinymoe {} --resume {p} --out {}`, inspect it with `tinymoe inspect {p}`{}",
            good.epochs,
            good.step,
            K::COMMAND,
            self.results.dir().display(),
            if diverged { " (with the same settings it diverges again: a lower --lr needs a new run)" } else { "" }
        );
        Error::Stopped { cause: Box::new(e), advice }
    }

    /// What an interrupted run says: where it was saved and the command that continues it.
    pub fn interrupted_notice(&self, step: usize) -> String {
        let c = self.checkpoint.display();
        format!(
            "interrupted: saved the run at step {step} in {c}\ncontinue it with: tinymoe {} --resume {c} --out {}",
            K::COMMAND,
            self.results.dir().display()
        )
    }
}
