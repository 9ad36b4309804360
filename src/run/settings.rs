//! The settings every run shares: how to train ([`TrainingSpec`]), the typed choices of every
//! spec (optimiser, schedule, model, expert, routing, gating), and the range checks that
//! presets, config files, flags and resumed checkpoints all go through.
//!
//! Every choice is an enum that serde writes as the same lowercase word a config file or a
//! flag uses (`optimizer = "adamw"`, `--gating top-k`), so a typo is a parse error naming the
//! allowed values, and a `match` on it has no fallback arm that could silently pick a default.

use crate::engine::optim::{Kind, Schedule};
use crate::error::Error;
use crate::run::config::Field;
use crate::train::Config;
use serde::{Deserialize, Serialize};

/// Declares a settings enum: serde and clap both read and write it as the kebab-case word.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] #[value(name = $word)] $variant),+
        }
        impl $name {
            /// The word a config file or a flag uses.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// Which data an experiment runs on: its built-in synthetic data (no download), or the
    /// real data sets `scripts/fetch-data.sh` puts in `data/`.
    DataChoice {
        Synthetic => "synthetic",
        Real => "real",
    }
);

// The macro derives for every choice; only this one has a default.
#[allow(clippy::derivable_impls)]
impl Default for DataChoice {
    fn default() -> Self {
        DataChoice::Synthetic
    }
}

choice!(
    /// The optimiser's update rule.
    Optimizer {
        /// SGD with momentum.
        Sgd => "sgd",
        /// Adam, weight decay as L2 added to the gradient.
        Adam => "adam",
        /// AdamW: decoupled weight decay.
        AdamW => "adamw",
    }
);

choice!(
    /// The learning-rate schedule.
    ScheduleKind {
        Constant => "constant",
        /// Linear warm-up, then cosine decay to 0.
        Cosine => "cosine",
    }
);

choice!(
    /// Which classifier `tinymoe train` builds.
    ClassifierModel {
        /// One MLP.
        Mlp => "mlp",
        /// A dense soft mixture of MLP experts weighted by a softmax gate.
        Moe => "moe",
    }
);

choice!(
    /// What an expert of the MoE language model is.
    ExpertChoice {
        /// d_model → expert_hidden → d_model inside a residual (Switch style).
        Mlp => "mlp",
        /// expert_layers transformer blocks.
        Stack => "stack",
    }
);

choice!(
    /// What the MoE language model routes.
    RoutingChoice {
        /// Each token on its own.
        Token => "token",
        /// Each sequence, by the mean of its non-padding hidden states.
        Sequence => "sequence",
        /// Each sequence, by a domain classifier (top-1, teacher-forced while training).
        Domain => "domain",
    }
);

choice!(
    /// How the router's scores become gates.
    GatingChoice {
        /// The k best experts, gates renormalised over them.
        TopK => "top-k",
        /// The k best, gates = their full-softmax probabilities (top-1 still trains the router).
        Switch => "switch",
        /// Every expert, softmax gates.
        Dense => "dense",
    }
);

/// How to train, for any model: saved (flattened) in every config.json. Each field's meaning
/// and range: [`TRAINING_FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: Optimizer,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    pub warmup_steps: usize,
    pub clip: Option<f64>,
    pub seed: u64,
}

/// The training keys, shared by every kind of run.
pub const TRAINING_FIELDS: &[Field] = &[
    Field::new("epochs", "Passes over the training data; integer ≥ 1."),
    Field::new("batch_size", "Examples per optimizer step (rows, or windows of text); integer ≥ 1."),
    Field::new("lr", "Base learning rate; number > 0 (the schedule scales it)."),
    Field::new(
        "optimizer",
        "\"sgd\" (with momentum), \"adam\" (L2 weight decay) or \"adamw\" (decoupled weight decay).",
    ),
    Field::new("momentum", "SGD momentum (optimizer = \"sgd\" only); in [0, 1)."),
    Field::new("weight_decay", "Weight decay (adam: L2 added to the gradient; adamw: decoupled); number ≥ 0."),
    Field::new(
        "schedule",
        "Learning-rate schedule: \"constant\", or \"cosine\" (linear warm-up, then cosine decay to\n\
         0).",
    ),
    Field::new("warmup_steps", "Steps of linear warm-up (schedule = \"cosine\"); integer ≥ 0."),
    Field::optional("clip", "Clip the global gradient norm to this; number > 0. Unset: no clipping.", "1.0"),
    Field::new(
        "seed",
        "Seed of every random choice (init, data, shuffling, dropout); integer ≥ 0.\n\
         Same seed and thread count: bit-identical losses.",
    ),
];

impl TrainingSpec {
    /// Every value against its allowed range, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        crate::io::check_epochs(self.epochs, "")?;
        crate::io::check_count("batch_size", self.batch_size, "")?;
        positive("lr", self.lr, "the learning rate")?;
        in_zero_one("momentum", self.momentum)?;
        non_negative("weight_decay", self.weight_decay)?;
        if let Some(c) = self.clip {
            positive("clip", c, "the gradient-norm cap")?;
        }
        Ok(())
    }

    /// The training loop's config for `steps_per_epoch` batches per epoch (the cosine
    /// schedule's length), every value checked.
    pub fn to_config(&self, steps_per_epoch: usize) -> Result<Config, Error> {
        self.validate()?;
        let optimizer = match self.optimizer {
            Optimizer::Sgd => Kind::Sgd { momentum: self.momentum },
            Optimizer::Adam => Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: self.weight_decay },
            Optimizer::AdamW => Kind::adamw(self.weight_decay),
        };
        let schedule = match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Cosine => {
                Schedule::WarmupCosine { warmup: self.warmup_steps, total: self.epochs * steps_per_epoch, min_lr: 0.0 }
            }
        };
        let cfg = Config {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule,
            optimizer,
            clip: self.clip,
            seed: self.seed,
            rules: vec![],
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Sets the number of rayon threads for the whole process (None: all cores). Once per
/// process: a second call with a number fails.
pub fn set_threads(threads: Option<usize>) -> Result<(), Error> {
    if let Some(n) = threads {
        crate::io::check_threads("--threads", n)?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::bad_value("threads", n, &format!("could not start the thread pool: {e}")))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Range checks, shared by every spec's `validate` (so flags and files get the same messages).
// Each names the key, the value and the allowed range.

/// An integer count or size that must be ≥ 1 (epochs, batch_size, seq, experts, …).
pub fn at_least_one(key: &str, value: usize) -> Result<(), Error> {
    if value == 0 {
        return Err(Error::bad_value(key, 0, "must be at least 1"));
    }
    Ok(())
}

/// A real number that must be finite and > 0 (a learning rate, a clipping norm).
pub fn positive(key: &str, value: f64, what: &str) -> Result<(), Error> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::bad_value(key, value, &format!("{what} must be a finite number > 0")));
    }
    Ok(())
}

/// A real number that must be finite and ≥ 0 (weight decay, noise).
pub fn non_negative(key: &str, value: f64) -> Result<(), Error> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::bad_value(key, value, "must be a finite number ≥ 0"));
    }
    Ok(())
}

/// A probability in [0, 1) (dropout, momentum).
pub fn in_zero_one(key: &str, value: f64) -> Result<(), Error> {
    if !(0.0..1.0).contains(&value) {
        return Err(Error::bad_value(key, value, "must be in [0, 1)"));
    }
    Ok(())
}

/// A share strictly between 0 and 1 (the validation fraction).
pub fn in_open_unit(key: &str, value: f64) -> Result<(), Error> {
    if !(value > 0.0 && value < 1.0) {
        return Err(Error::bad_value(key, value, "must be in (0, 1)"));
    }
    Ok(())
}

/// Layer widths: every one ≥ 1.
pub fn widths(key: &str, value: &[usize]) -> Result<(), Error> {
    if value.contains(&0) {
        return Err(Error::bad_value(key, format!("{value:?}"), "every layer width must be at least 1"));
    }
    Ok(())
}

/// Sparse routing's k: each token goes to k of the n_experts experts, so 1 ≤ k ≤ n_experts.
pub fn top_k(key: &str, k: usize, n_experts: usize) -> Result<(), Error> {
    if k == 0 || k > n_experts {
        return Err(Error::bad_value(
            key,
            k,
            &format!("must be in 1..={n_experts} (between 1 and the number of experts, {n_experts})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_must_be_between_one_and_the_expert_count() {
        assert!(top_k("top_k", 2, 4).is_ok());
        assert!(top_k("top_k", 4, 4).is_ok());
        assert!(top_k("top_k", 0, 4).unwrap_err().to_string().contains("top_k = 0: must be in 1..=4"));
        assert!(top_k("top_k", 5, 4).unwrap_err().to_string().contains("top_k = 5"));
    }

    #[test]
    fn choices_read_and_write_their_config_words() {
        assert_eq!(serde_json::to_string(&GatingChoice::TopK).unwrap(), "\"top-k\"");
        assert_eq!(serde_json::from_str::<Optimizer>("\"adamw\"").unwrap(), Optimizer::AdamW);
        let e = serde_json::from_str::<RoutingChoice>("\"tokens\"").unwrap_err().to_string();
        assert!(e.contains("token") && e.contains("sequence") && e.contains("domain"), "{e}");
    }
}
