//! An MoE language-model run (`tinymoe train moe`, E5 and the demo): byte-level tokens
//! on labelled synthetic domains (code, math, story, science by default), an embedding, shared
//! pre-LN blocks, then the MoE layer — MLP experts inside a residual (Switch style) or small
//! transformer-stack experts — routed per token, per sequence, or by a domain classifier; a
//! final LayerNorm and the head. With a checkpoint every epoch and exact resume; its results
//! folder has the validation loss per domain, the domain × expert routing heatmaps and a
//! token-by-token listing of one sample per domain (which expert took which byte).

use crate::checkpoint;
use crate::data::batch::Batches;
use crate::data::corpora::{self, Domain};
use crate::data::real_corpus::{self, RealDomain};
use crate::data::tokenizer::{self, Tokenizer};
use crate::engine::init::{self, streams};
use crate::error::{Error, Result};
use crate::models::moe_lm::{self, ExpertKind};
use crate::moe::layer::{Level, Route};
use crate::moe::losses::RouterLossConfig;
use crate::moe::metrics;
use crate::moe::routing::{Gating, Strategy};
use crate::plot::line::{line_chart, Series};
use crate::plot::routing::routing_heatmap;
use crate::run::config::{Field, Settings};
use crate::run::html::render_report_html;
use crate::run::moe_explorer::moe_lm_explorer;
use crate::run::results::{Results, Table, Value};
use crate::run::session::{self, Session};
use crate::run::settings::{
    self as checks, DataChoice, ExpertChoice, GatingChoice, Optimizer, RoutingChoice, ScheduleKind, TrainingSpec,
};
use crate::run::{interrupt, Observer};
use crate::train::{self, MoeEval, MoeHistory, MoeState, MoeTraining, Standing};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn bytes_spec() -> String {
    "bytes".into()
}

/// The checkpoint kind of an MoE language model.
pub const KIND: &str = "moe-lm";

/// Everything that defines an MoE language-model run; saved as config.toml, config.json and in
/// the checkpoint. Each field's meaning and range: [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeLmSpec {
    pub preset: String,
    /// Which text the domains are: built-in synthetic generators, or real corpora from
    /// `data/` ([`real_corpus`]). Older settings without it are synthetic.
    #[serde(default)]
    pub corpus: DataChoice,
    /// The tokeniser ([`tokenizer::from_spec`]): "bytes" (older settings without it), "gpt2",
    /// "bpe:FILE" or "compact:FILE". The model's vocabulary is its ids plus one padding id.
    #[serde(default = "bytes_spec")]
    pub tokenizer: String,
    pub domains: Vec<String>,
    pub train_per_domain: usize,
    /// Training samples of each domain, in the order of `domains`, instead of
    /// `train_per_domain` for all (unbalanced domains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_train: Option<Vec<usize>>,
    pub val_per_domain: usize,
    /// Sequences are cut to this many predicted positions (bytes).
    pub max_len: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub dropout: f64,
    pub shared_layers: usize,
    pub experts: usize,
    pub expert: ExpertChoice,
    pub expert_hidden: usize,
    pub expert_layers: usize,
    /// Stack experts see the whole sequence, the predicted token included (a labelled leak;
    /// E2's bidirectional arm). Older settings: false.
    #[serde(default)]
    pub bidirectional: bool,
    pub router_hidden: Option<usize>,
    pub noisy: bool,
    pub routing: RoutingChoice,
    pub gating: GatingChoice,
    pub top_k: usize,
    pub capacity_factor: Option<f64>,
    pub balance_loss: f64,
    pub z_loss: f64,
    pub token_entropy: f64,
    pub batch_entropy: f64,
    pub domain_loss: f64,
    pub balanced: bool,
    pub teacher_start: f64,
    pub teacher_end: f64,
    #[serde(flatten)]
    pub training: TrainingSpec,
}

/// The MoE language model's keys, as `tinymoe config show moe-lm` documents them
/// (TrainingSpec's follow).
pub const FIELDS: &[Field] = &[
    Field::new(
        "corpus",
        "\"synthetic\": the built-in domain generators; \"real\": real text from data/ (BBC News topics,\n\
         tweets, Rust and Python sources and docs; `bash scripts/fetch-data.sh` fetches them).",
    ),
    Field::new(
        "tokenizer",
        "\"bytes\", \"gpt2\" (GPT-2's 50,257 ids), \"bpe:FILE\" (`tinymoe tokenizer train`) or\n\
         \"compact:FILE\" (`tinymoe tokenizer compact`); the padding id is one past its ids.",
    ),
    Field::new(
        "domains",
        "Domains to learn, each a label, e.g. [\"code\", \"math\"]. Synthetic (`tinymoe data stats` lists\n\
         them): code, math, story, science, psychology, history, medicine, business, cooking, sports.\n\
         Real: business, entertainment, politics, sports, tech, tweets, rust-code, rust-book,\n\
         rust-errors, python-docs.",
    ),
    Field::new("train_per_domain", "Training samples per domain; integer ≥ 1."),
    Field::optional(
        "domain_train",
        "Training samples of each domain, one integer ≥ 1 per entry of domains, in that order\n\
         (unbalanced domains; see balanced). Unset: train_per_domain each.",
        "[500, 50, 50, 50]",
    ),
    Field::new("val_per_domain", "Validation samples per domain (generated from another seed); integer ≥ 1."),
    Field::new("max_len", "Bytes per sequence (longer samples are cut); integer ≥ 1, the model's context."),
    Field::new("d_model", "Width of the residual stream; integer ≥ 1, a multiple of n_heads."),
    Field::new("n_heads", "Attention heads per block; integer ≥ 1 that divides d_model."),
    Field::new("d_ff", "Feed-forward width of the shared blocks and of stack experts; integer ≥ 1."),
    Field::new("dropout", "Dropout probability in the blocks' and experts' MLPs; in [0, 1), 0 = off."),
    Field::new("shared_layers", "Transformer blocks every token goes through before the MoE layer; integer ≥ 0."),
    Field::new("experts", "Number of experts; integer ≥ 1 (≥ the number of domains with routing = \"domain\")."),
    Field::new(
        "expert",
        "What an expert is: \"mlp\" (d_model → expert_hidden → d_model, inside a residual, Switch\n\
         style) or \"stack\" (expert_layers transformer blocks).",
    ),
    Field::new("expert_hidden", "Hidden width of an MLP expert; integer ≥ 1."),
    Field::new("expert_layers", "Blocks in a stack expert; integer ≥ 1."),
    Field::new(
        "bidirectional",
        "true: stack experts attend both ways, so each position sees the token it predicts (a leak:\n\
         the loss is no longer a language-model loss; E2's labelled arm); false: causal. Needs expert = \"stack\".",
    ),
    Field::optional(
        "router_hidden",
        "Hidden width of a 2-layer router (Linear → ReLU → Linear); integer ≥ 1. Unset: a linear router.",
        "64",
    ),
    Field::new("noisy", "Noisy gating (learned per-expert noise on the router logits while training): true or false."),
    Field::new(
        "routing",
        "\"token\" (each token routed on its own), \"sequence\" (the router reads the mean of the\n\
         sequence) or \"domain\" (a domain classifier routes each sequence, top-1, trained on the\n\
         domain labels with weight domain_loss; teacher forcing per teacher_start/teacher_end).",
    ),
    Field::new(
        "gating",
        "\"top-k\" (the k best experts, gates renormalised over them), \"switch\" (the k best,\n\
         gates = their full-softmax probabilities, so top-1 still trains the router) or \"dense\"\n\
         (every expert, softmax gates). routing = \"domain\" always routes top-1.",
    ),
    Field::new("top_k", "Experts per token (gating top-k or switch); integer in 1..=experts."),
    Field::optional(
        "capacity_factor",
        "Cap each expert at capacity_factor · k · units / experts per batch; assignments over the\n\
         cap are dropped (the token passes through the residual); number > 0. Unset: no cap.",
        "1.25",
    ),
    Field::new("balance_loss", "Weight α of the Switch load-balancing loss; number ≥ 0 (0 = off)."),
    Field::new("z_loss", "Weight β of the router z-loss (keeps router logits small); number ≥ 0."),
    Field::new(
        "token_entropy",
        "Weight of the mean per-token routing entropy; finite number (> 0 sharpens each token's\n\
         choice, < 0 softens it, 0 = off).",
    ),
    Field::new(
        "batch_entropy",
        "Weight of the entropy of the batch's mean routing distribution; finite number (< 0\n\
         spreads tokens over the experts, > 0 concentrates them, 0 = off).",
    ),
    Field::new("domain_loss", "Weight λ of the domain classifier's cross-entropy (routing = \"domain\"); number > 0."),
    Field::new("balanced", "true: every batch draws the domains equally (small ones oversampled); false: shuffled."),
    Field::new(
        "teacher_start",
        "Domain routing: probability that a sequence goes to its true domain's expert at the first\n\
         step (teacher forcing), moving linearly to teacher_end at the last; in [0, 1].",
    ),
    Field::new("teacher_end", "Domain routing: the teacher-forcing probability at the last step; in [0, 1]."),
];

impl MoeLmSpec {
    /// Every value against its allowed range, naming the first bad one: the one check for
    /// presets, config files, flags and resumed checkpoints.
    pub fn validate(&self) -> Result<()> {
        let domains = self.domain_names()?;
        if let Some(sizes) = &self.domain_train {
            if sizes.len() != domains.len() {
                return Err(Error::bad_value(
                    "domain_train",
                    format!("{sizes:?}"),
                    &format!("needs one count per domain: {} (domains = {:?})", domains.len(), self.domains),
                ));
            }
            for &n in sizes {
                crate::io::check_count("domain_train", n, "")?;
            }
        }
        for (name, v) in [
            ("train_per_domain", self.train_per_domain),
            ("val_per_domain", self.val_per_domain),
            ("max_len", self.max_len),
        ] {
            crate::io::check_count(name, v, "")?;
        }
        for (name, v) in [
            ("train_per_domain", self.train_per_domain),
            ("val_per_domain", self.val_per_domain),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("experts", self.experts),
            ("expert_hidden", self.expert_hidden),
            ("expert_layers", self.expert_layers),
        ] {
            checks::at_least_one(name, v)?;
        }
        if self.d_model % self.n_heads != 0 {
            return Err(Error::bad_value(
                "n_heads",
                self.n_heads,
                &format!("must divide d_model = {} (each head gets d_model / n_heads columns)", self.d_model),
            ));
        }
        checks::in_zero_one("dropout", self.dropout)?;
        if self.bidirectional && self.expert != ExpertChoice::Stack {
            return Err(Error::bad_value(
                "bidirectional",
                true,
                &format!("needs expert = \"stack\" (an {} expert reads each position alone)", self.expert),
            ));
        }
        if let Some(h) = self.router_hidden {
            checks::at_least_one("router_hidden", h)?;
        }
        if self.gating != GatingChoice::Dense && self.routing != RoutingChoice::Domain {
            checks::top_k("top_k", self.top_k, self.experts)?;
        }
        if let Some(c) = self.capacity_factor {
            checks::positive("capacity_factor", c, "the capacity factor")?;
        }
        checks::non_negative("balance_loss", self.balance_loss)?;
        checks::non_negative("z_loss", self.z_loss)?;
        for (name, v) in [("token_entropy", self.token_entropy), ("batch_entropy", self.batch_entropy)] {
            if !v.is_finite() {
                return Err(Error::bad_value(name, v, "must be a finite number"));
            }
        }
        if self.routing == RoutingChoice::Domain {
            checks::positive("domain_loss", self.domain_loss, "the domain classifier's weight")?;
            if self.experts < self.domains.len() {
                return Err(Error::bad_value(
                    "experts",
                    self.experts,
                    &format!("routing = \"domain\" needs one expert per domain: at least {}", self.domains.len()),
                ));
            }
        }
        for (name, v) in [("teacher_start", self.teacher_start), ("teacher_end", self.teacher_end)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::bad_value(name, v, "must be a probability in [0, 1]"));
            }
        }
        self.training.validate()
    }

    /// The domain names, each checked against the corpus's domains and listed once; the error
    /// names the bad one and lists the choices.
    pub fn domain_names(&self) -> Result<&[String]> {
        if self.domains.is_empty() {
            return Err(Error::bad_value("domains", "[]", "name at least one domain"));
        }
        for (i, d) in self.domains.iter().enumerate() {
            let known = match self.corpus {
                DataChoice::Synthetic => d.parse::<Domain>().map(|_| ()),
                DataChoice::Real => d.parse::<RealDomain>().map(|_| ()),
            };
            known.map_err(|e| Error::bad_value("domains", format!("{d:?}"), &e.to_string()))?;
            if self.domains[..i].contains(d) {
                return Err(Error::bad_value("domains", format!("{d:?}"), "is listed twice"));
            }
        }
        Ok(&self.domains)
    }

    /// The synthetic domains, parsed (an error for a real corpus).
    pub fn domain_list(&self) -> Result<Vec<Domain>> {
        if self.corpus != DataChoice::Synthetic {
            return Err(Error::bad_value("corpus", self.corpus, "has no synthetic domain generators"));
        }
        self.domain_names()?
            .iter()
            .map(|d| d.parse::<Domain>().map_err(|e| Error::bad_value("domains", format!("{d:?}"), &e.to_string())))
            .collect()
    }

    /// The real domains, parsed (an error for the synthetic corpus).
    pub fn real_domain_list(&self) -> Result<Vec<RealDomain>> {
        if self.corpus != DataChoice::Real {
            return Err(Error::bad_value("corpus", self.corpus, "has no real domains"));
        }
        self.domain_names()?.iter().map(|d| d.parse::<RealDomain>()).collect()
    }

    /// The training sequences and their domain labels: synthetic ones from `seed`, real ones
    /// from the training documents of the fixed split ([`real_corpus::split`]).
    pub fn train_samples(&self) -> Result<Labelled> {
        match self.corpus {
            DataChoice::Synthetic => {
                Ok(encode_sizes(&*self.tokenizer()?, &self.domain_list()?, &self.train_sizes(), self.training.seed))
            }
            DataChoice::Real => Ok(self.real_samples(&self.train_sizes(), 1)?.0),
        }
    }

    /// `per` held-out sequences of each domain: synthetic ones from [`val_seed`] (never a
    /// training sample), real ones from the held-out documents (never a training document).
    pub fn val_samples(&self, per: usize) -> Result<Labelled> {
        match self.corpus {
            DataChoice::Synthetic => {
                Ok(encode(&*self.tokenizer()?, &self.domain_list()?, per, val_seed(self.training.seed)))
            }
            DataChoice::Real => Ok(self.real_samples(&vec![0; self.domains.len()], per)?.1),
        }
    }

    fn real_samples(&self, train: &[usize], val: usize) -> Result<(Labelled, Labelled)> {
        let (tr, va) = real_corpus::samples(Path::new("."), &self.real_domain_list()?, train, val, self.max_len + 1)?;
        let tok = self.tokenizer()?;
        // Windows are cut in bytes; another tokeniser reads them as (lossy) text.
        let bytes = self.tokenizer == "bytes";
        let ids = |v: Vec<(Vec<u8>, usize)>| -> Labelled {
            v.into_iter()
                .map(|(b, l)| {
                    let ids = if bytes {
                        b.iter().map(|&x| usize::from(x)).collect()
                    } else {
                        tok.encode(&String::from_utf8_lossy(&b))
                    };
                    (ids, l)
                })
                .unzip()
        };
        Ok((ids(tr), ids(va)))
    }

    /// The tokeniser the settings name.
    pub fn tokenizer(&self) -> Result<Box<dyn Tokenizer>> {
        tokenizer::from_spec(&self.tokenizer)
    }

    /// The model's shape and routing: the tokeniser's ids plus a padding id one past them
    /// (bytes: 256 + the padding id 256).
    pub fn model_config(&self) -> Result<moe_lm::Config> {
        self.validate()?;
        let pad = self.tokenizer()?.vocab_size();
        let domain = self.routing == RoutingChoice::Domain;
        let strategy = match (domain, self.gating) {
            (true, _) => Strategy::TopK(1),
            (false, GatingChoice::Dense) => Strategy::Dense,
            (false, GatingChoice::Switch) => Strategy::TopKProbs(self.top_k),
            (false, GatingChoice::TopK) => Strategy::TopK(self.top_k),
        };
        let cfg = moe_lm::Config {
            vocab: pad + 1,
            max_seq: self.max_len,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            pad_id: Some(pad),
            shared_layers: self.shared_layers,
            n_experts: self.experts,
            expert: match self.expert {
                ExpertChoice::Stack => ExpertKind::Stack { layers: self.expert_layers },
                ExpertChoice::Mlp => ExpertKind::Mlp { hidden: self.expert_hidden },
            },
            router_hidden: self.router_hidden,
            noisy: self.noisy,
            level: match self.routing {
                RoutingChoice::Token => Level::Token,
                RoutingChoice::Sequence | RoutingChoice::Domain => Level::Sequence,
            },
            gating: Gating { strategy, capacity_factor: self.capacity_factor },
            router_losses: RouterLossConfig {
                balance: self.balance_loss,
                z_loss: self.z_loss,
                token_entropy: self.token_entropy,
                batch_entropy: self.batch_entropy,
            },
            domain_loss: domain.then_some(self.domain_loss),
            bidirectional_experts: self.bidirectional,
        };
        cfg.check_fits(self.training.batch_size, true, crate::io::machine_memory())?;
        Ok(cfg)
    }

    /// How the run trains beyond the optimiser: sampling and teacher forcing.
    pub fn moe_training(&self) -> MoeTraining {
        MoeTraining {
            balanced: self.balanced,
            teacher_start: self.teacher_start,
            teacher_end: self.teacher_end,
            ..MoeTraining::default()
        }
    }

    /// Training samples of each domain, in the order of `domains`.
    pub fn train_sizes(&self) -> Vec<usize> {
        self.domain_train.clone().unwrap_or_else(|| vec![self.train_per_domain; self.domains.len()])
    }

    /// A short description of the model for the summary line.
    pub fn describe(&self) -> String {
        let gating = match (self.routing, self.gating) {
            (RoutingChoice::Domain, _) => "domain-classifier routed".to_string(),
            (level, GatingChoice::Dense) => format!("{level}-level dense"),
            (level, g) => format!("{level}-level {g} k = {}", self.top_k),
        };
        format!("{} {} experts, {gating}", self.experts, self.expert)
    }
}

/// The `moe-lm` preset: what the demo trains (and `tinymoe train moe` with no flags).
pub fn preset_moe_lm() -> MoeLmSpec {
    MoeLmSpec {
        preset: "moe-lm".into(),
        corpus: DataChoice::Synthetic,
        tokenizer: bytes_spec(),
        domains: Domain::E2.iter().map(|d| d.name().to_string()).collect(),
        train_per_domain: 500,
        domain_train: None,
        val_per_domain: 50,
        max_len: 128,
        d_model: 96,
        n_heads: 4,
        d_ff: 384,
        dropout: 0.0,
        shared_layers: 1,
        experts: 4,
        expert: ExpertChoice::Mlp,
        expert_hidden: 256,
        expert_layers: 1,
        bidirectional: false,
        router_hidden: None,
        noisy: false,
        routing: RoutingChoice::Token,
        gating: GatingChoice::TopK,
        top_k: 2,
        capacity_factor: None,
        balance_loss: RouterLossConfig::paper().balance,
        z_loss: RouterLossConfig::paper().z_loss,
        token_entropy: 0.0,
        batch_entropy: 0.0,
        domain_loss: 1.0,
        balanced: false,
        teacher_start: 1.0,
        teacher_end: 0.0,
        training: TrainingSpec {
            epochs: 10,
            batch_size: 16,
            lr: 3e-3,
            optimizer: Optimizer::Adam,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 30,
            clip: Some(1.0),
            seed: 42,
        },
    }
}

/// The `moe-lm-quick` preset (`--quick`, and the quick demo): the same model on a few
/// samples for two epochs, seconds.
pub fn preset_moe_lm_quick() -> MoeLmSpec {
    let mut s = MoeLmSpec {
        preset: "moe-lm-quick".into(),
        train_per_domain: 24,
        val_per_domain: 8,
        max_len: 48,
        ..preset_moe_lm()
    };
    s.training.epochs = 2;
    s.training.warmup_steps = 2;
    s
}

/// The demo's settings: the moe-lm preset (or moe-lm-quick) with the demo's seed.
pub fn demo_spec(seed: u64, quick: bool) -> MoeLmSpec {
    let mut s = if quick { preset_moe_lm_quick() } else { preset_moe_lm() };
    s.training.seed = seed;
    s
}

/// The MoE language model as a [`session::Kind`].
pub struct MoeLmRun;

impl session::Kind for MoeLmRun {
    const KIND: &'static str = KIND;
    const COMMAND: &'static str = "train moe";
    type Spec = MoeLmSpec;
    type Model = moe_lm::Params<f32>;
    type State = MoeState;

    fn settings(spec: &MoeLmSpec) -> Settings {
        Settings::Moe(spec.clone())
    }
    fn validate(spec: &MoeLmSpec) -> Result<()> {
        spec.validate()
    }
    fn header_config(model: &moe_lm::Params<f32>) -> serde_json::Value {
        serde_json::to_value(model.config).unwrap_or_default()
    }
    fn standing(state: &MoeState) -> Standing {
        state.standing()
    }
    fn meta(spec: &MoeLmSpec, state: &MoeState) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("tokenizer", spec.tokenizer.clone().into()),
            ("val_loss", state.history.epochs.last().map(|e| e.val.loss).into()),
        ]
    }
}

/// A saved MoE LM run to continue.
pub type Resume = session::Resumed<MoeLmRun>;

/// Reads an MoE LM checkpoint to resume; its model must match its own saved settings.
pub fn load_for_resume(path: &Path) -> Result<Resume> {
    let r = Session::<MoeLmRun>::resume(path)?;
    if r.model.config != r.spec.model_config()? {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: "its model does not match its own saved settings".into(),
        });
    }
    Ok(r)
}

/// A saved MoE LM for generation or analysis.
pub struct Loaded {
    pub model: moe_lm::Params<f32>,
    /// The domain names its run was trained on, in label order (empty when the file does not
    /// record its settings, e.g. weights only).
    pub domains: Vec<String>,
    /// Its tokeniser (bytes when the file does not say).
    pub tokenizer: Box<dyn Tokenizer>,
}

/// Loads an MoE LM checkpoint's model (validating all of it) with its domains and tokeniser;
/// a tokeniser whose ids do not fit the model's vocabulary is refused.
pub fn load_model(path: &Path) -> Result<Loaded> {
    let (header, saved): (_, checkpoint::Trained<moe_lm::Params<f32>, MoeState>) = checkpoint::load(path, KIND)?;
    let spec = header.meta.get("spec");
    let domains = spec
        .and_then(|s| s.get("domains"))
        .and_then(|d| serde_json::from_value::<Vec<String>>(d.clone()).ok())
        .unwrap_or_default();
    let name = spec.and_then(|s| s.get("tokenizer")).and_then(|t| t.as_str()).unwrap_or("bytes");
    let bad = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
    let tokenizer =
        tokenizer::from_spec(name).map_err(|e| bad(format!("its tokeniser {name:?} cannot be loaded: {e}")))?;
    if tokenizer.vocab_size() >= saved.model.config.vocab {
        return Err(bad(format!(
            "its tokeniser {name:?} has {} ids, more than its model's vocabulary of {} (with padding) reads",
            tokenizer.vocab_size(),
            saved.model.config.vocab
        )));
    }
    Ok(Loaded { model: saved.model, domains, tokenizer })
}

/// What an MoE LM run produced, for the summary.
pub struct Outcome {
    pub history: MoeHistory,
    /// The trained model (as saved in the checkpoint), for analyses after the run.
    pub model: moe_lm::Params<f32>,
    pub domains: Vec<String>,
    pub n_experts: usize,
    /// The token-by-token listing of one validation sample per domain (tokens.txt).
    pub listing: String,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub interrupted: Option<String>,
    pub wrote: String,
}

/// Token sequences and, for each, its domain label.
pub type Labelled = (Vec<Vec<usize>>, Vec<usize>);

/// The labelled token sequences of the domains: `per` samples each, from `seed`.
pub fn encode(tok: &dyn Tokenizer, domains: &[Domain], per: usize, seed: u64) -> Labelled {
    encode_sizes(tok, domains, &vec![per; domains.len()], seed)
}

/// The same with `sizes[i]` samples of domain i (each domain's first samples of its stream,
/// so a smaller domain's samples are a prefix of a larger one's).
pub fn encode_sizes(tok: &dyn Tokenizer, domains: &[Domain], sizes: &[usize], seed: u64) -> Labelled {
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (label, (&d, &per)) in domains.iter().zip(sizes).enumerate() {
        for text in corpora::generate(d, per, seed) {
            seqs.push(tok.encode(&text));
            labels.push(label);
        }
    }
    (seqs, labels)
}

/// The seed validation samples are generated from: another stream than training's, so no
/// validation sample is a training one.
pub fn val_seed(seed: u64) -> u64 {
    seed.wrapping_add(1_000_003)
}

/// Trains the spec's model (from scratch, or from a saved run) and writes its results into
/// `out`. With `stoppable`, the first Ctrl-C saves where the run stands and returns it
/// interrupted (see [`interrupt`]); otherwise Ctrl-C quits at once.
pub fn run(
    spec: &MoeLmSpec,
    out: &Path,
    resume: Option<Resume>,
    stoppable: bool,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let model_cfg = spec.model_config()?;
    let pad = model_cfg.pad_id.ok_or_else(|| Error::bad_value("pad_id", "none", "the MoE LM needs a padding id"))?;
    let seed = spec.training.seed;
    let (train_seqs, train_labels) = spec.train_samples()?;
    let (val_seqs, val_labels) = spec.val_samples(spec.val_per_domain)?;
    let batch = spec.training.batch_size;
    let train_data = Batches::new(&train_seqs, &train_labels, spec.max_len, pad, batch)?;
    let val_data = Batches::new(&val_seqs, &val_labels, spec.max_len, pad, batch)?;
    // Balanced sampling oversamples the small domains: an epoch is as long as its order.
    let steps_per_epoch = train_data.epoch_len(spec.balanced).div_ceil(batch);
    let cfg = spec.training.to_config(steps_per_epoch)?;
    let mut session = Session::<MoeLmRun>::open(out, spec, resume.as_ref())?;
    let (mut model, state) = match resume {
        Some(r) => (r.model, Some(r.state)),
        None => (moe_lm::init::<f32>(model_cfg, &mut init::stream(seed, streams::INIT)), None),
    };
    obs.start("moe lm", steps_per_epoch * cfg.epochs, state.as_ref().map_or(0, |s| s.step));
    if let Some(s) = &state {
        obs.note(&format!("resuming at epoch {}, batch {} (step {})\n", s.epoch, s.batches_done, s.step));
    }
    let started = Instant::now();
    let guard = stoppable.then(interrupt::Training::start);
    let obs = std::cell::RefCell::new(obs);
    let fitted = train::fit_moe_lm_resumable(
        &mut model,
        &train_data,
        &val_data,
        &cfg,
        &spec.moe_training(),
        state,
        guard.as_ref().map(interrupt::Training::stop),
        &mut |p| obs.borrow_mut().step(p),
        &mut |event, m, state| {
            if let train::Checkpoint::Epoch(e) = event {
                obs.borrow_mut().note(&format!(
                    "   epoch {:>2}: train {:.3}  val {:.3} nats/byte  router loss {:.4}  {:.0} tokens/s",
                    e.epoch, e.train_loss, e.val.loss, e.router_loss, e.tokens_per_s
                ));
            }
            session.save(m, spec, state)
        },
    );
    drop(guard);
    let obs = obs.into_inner();
    obs.finish();
    let history = fitted.map_err(|e| session.stopped(e, cfg.epochs))?;
    let seconds = started.elapsed().as_secs_f64();
    let checkpoint = session.checkpoint().to_path_buf();
    let interrupted = history.interrupted.then(|| session.interrupted_notice(history.step_losses.len()));
    let mut listing = String::new();
    if interrupted.is_none() {
        let out = &mut session.results;
        write_metrics(out, &history, &spec.domains)?;
        draw_loss(out, &history, steps_per_epoch)?;
        draw_routing(out, &history, &spec.domains, model_cfg.n_experts)?;
        listing = token_listing(&model, &val_seqs, &val_labels, spec)?;
        out.text("tokens.txt", &listing)?;
        write_report_html(out, &model, &val_seqs, &val_labels, spec)?;
    }
    Ok(Outcome {
        history,
        model,
        domains: spec.domains.clone(),
        n_experts: model_cfg.n_experts,
        listing,
        seconds,
        checkpoint,
        interrupted,
        wrote: session.results.summary(),
    })
}

fn write_metrics(out: &mut Results, history: &MoeHistory, domains: &[String]) -> Result<()> {
    let mut columns: Vec<String> =
        ["epoch", "train_loss", "val_loss", "router_loss", "tokens_per_s"].iter().map(|s| s.to_string()).collect();
    columns.extend(domains.iter().map(|d| format!("val_loss_{d}")));
    let mut t = Table::new(&columns);
    for e in &history.epochs {
        let mut row: Vec<Value> = vec![
            e.epoch.into(),
            e.train_loss.into(),
            e.val.loss.into(),
            e.router_loss.into(),
            ((e.tokens_per_s * 10.0).round() / 10.0).into(),
        ];
        row.extend(e.val.domain_loss.iter().map(|&l| Value::Num(l)));
        t.push(row);
    }
    out.table("metrics.csv", &t)?;
    Ok(())
}

fn draw_loss(out: &mut Results, history: &MoeHistory, steps_per_epoch: usize) -> Result<()> {
    let steps: Vec<(f64, f64)> = history.step_losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect();
    let val: Vec<(f64, f64)> =
        history.epochs.iter().map(|e| ((e.epoch * steps_per_epoch) as f64, e.val.loss)).collect();
    line_chart(
        &out.path("loss_curve.png"),
        "MoE LM: next-byte loss",
        "step",
        "nats per byte",
        &[Series { name: "train (per step)", points: &steps }, Series { name: "validation", points: &val }],
    )?;
    out.record("loss_curve.png");
    Ok(())
}

/// routing_mean_gate.png and routing_top_expert.png: the last epoch's domain × expert tables.
fn draw_routing(out: &mut Results, history: &MoeHistory, domains: &[String], n_experts: usize) -> Result<()> {
    let last = history.epochs.last().ok_or_else(|| Error::bad_value("epochs", 0, "no epoch ran"))?;
    draw_routing_of(out, &last.val, domains, n_experts)
}

/// routing_mean_gate.png and routing_top_expert.png: the domain × expert tables of `val`.
fn draw_routing_of(out: &mut Results, val: &MoeEval, domains: &[String], n_experts: usize) -> Result<()> {
    let cols: Vec<String> = (0..n_experts).map(|e| format!("expert {e}")).collect();
    let table = |t: &[Vec<f64>]| Array2::from_shape_fn((t.len(), n_experts), |(d, e)| t[d][e]);
    for (name, t, title) in [
        ("routing_mean_gate.png", &val.mean_gate, "mean gate per domain (validation tokens)"),
        ("routing_top_expert.png", &val.top_share, "share of tokens whose top expert is e"),
    ] {
        routing_heatmap(&out.path(name), table(t).view(), domains, &cols, title, "domain")?;
        out.record(name);
    }
    Ok(())
}

/// What `tinymoe analyse` found in an MoE LM checkpoint.
pub struct Analysed {
    pub domains: Vec<String>,
    pub val: MoeEval,
    /// Every file written, as "wrote DIR/{…}".
    pub wrote: String,
}

/// `tinymoe analyse CKPT` of an MoE LM — also one whose weights came back from PyTorch
/// (`tinymoe import`): routes the held-out sequences of the run's own settings (the same
/// domains, samples and split as training's validation) and writes routing.csv (per domain: loss,
/// perplexity, each expert's mean gate and top-expert share), the two routing heatmaps and
/// report.md into `out_dir`.
pub fn analyse(path: &Path, out_dir: &Path) -> Result<Analysed> {
    let (header, _) = checkpoint::read(path)?;
    let bad = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
    let spec: MoeLmSpec = header
        .meta
        .get("spec")
        .cloned()
        .ok_or_else(|| bad("it records no settings, so its held-out data is unknown".into()))
        .and_then(|v| serde_json::from_value(v).map_err(|e| bad(format!("its saved settings do not parse: {e}"))))?;
    spec.validate()?;
    let model = load_model(path)?.model;
    let (seqs, labels) = spec.val_samples(spec.val_per_domain)?;
    let pad = model.config.pad_id.unwrap_or(256);
    let batch = spec.training.batch_size;
    let data = Batches::new(&seqs, &labels, spec.max_len, pad, batch)?;
    let val = train::evaluate_moe_lm(&model, &data, spec.domains.len(), batch, None);
    let n_experts = model.config.n_experts;
    let mut out = Results::create(out_dir)?;
    let mut columns = vec!["domain".to_string(), "val_loss".into(), "perplexity".into()];
    columns.extend((0..n_experts).map(|e| format!("mean_gate_{e}")));
    columns.extend((0..n_experts).map(|e| format!("top_share_{e}")));
    let mut t = Table::new(&columns);
    for (d, name) in spec.domains.iter().enumerate() {
        let mut row: Vec<Value> =
            vec![name.as_str().into(), val.domain_loss[d].into(), val.domain_loss[d].exp().into()];
        row.extend(val.mean_gate[d].iter().map(|&g| Value::Num(g)));
        row.extend(val.top_share[d].iter().map(|&g| Value::Num(g)));
        t.push(row);
    }
    out.table("routing.csv", &t)?;
    draw_routing_of(&mut out, &val, &spec.domains, n_experts)?;
    let mut report = crate::run::results::Report::new(&format!("Routing of {}", path.display()));
    report.text(&format!(
        "`tinymoe analyse {}`: {} held-out sequences of {} ({} domains), {}. Validation loss {:.4} nats/byte{}.",
        path.display(),
        seqs.len(),
        spec.preset,
        spec.domains.len(),
        spec.describe(),
        val.loss,
        val.domain_accuracy.map_or(String::new(), |a| format!(", routing accuracy {:.1} %", 100.0 * a)),
    ));
    report.table(&t);
    report.text("![mean gate](routing_mean_gate.png)\n\n![top expert](routing_top_expert.png)");
    out.report(&report)?;
    Ok(Analysed { domains: spec.domains.clone(), val, wrote: out.summary() })
}

/// report.html: the loss curve, the routing heatmaps and the token explorer over the first two
/// validation samples of every domain, in one self-contained page.
fn write_report_html(
    out: &mut Results,
    model: &moe_lm::Params<f32>,
    seqs: &[Vec<usize>],
    labels: &[usize],
    spec: &MoeLmSpec,
) -> Result<()> {
    let explorer = moe_lm_explorer(model, seqs, labels, &spec.domains, &*spec.tokenizer()?, spec.max_len, 2)?;
    let figures: Vec<(String, PathBuf)> = [
        ("loss_curve.png", "Next-byte loss: every training step, and validation after each epoch."),
        ("routing_mean_gate.png", "Mean gate per domain and expert (validation tokens, last epoch)."),
        ("routing_top_expert.png", "Share of each domain's validation tokens whose top expert is e (last epoch)."),
    ]
    .iter()
    .map(|(file, caption)| (caption.to_string(), out.path(file)))
    .collect();
    let how = if model.config.domain_loss.is_some() {
        "Each byte is coloured by the expert the domain classifier picks once that byte is read (the sample \
         read prefix by prefix, as at generation time); hovering shows the classifier's probabilities then, \
         and each sample's heading gives the domain predicted after the whole sample."
    } else {
        "Each byte is coloured by its top expert in one pass over the whole sample; hovering shows its gates."
    };
    let intro = format!(
        "A mixture-of-experts language model ({}) trained byte by byte on {} for {} epochs (seed {}).\n\n\
         The token explorer below shows validation samples the model never trained on. {how}",
        spec.describe(),
        spec.domains.join(", "),
        spec.training.epochs,
        spec.training.seed
    );
    let html = render_report_html(&format!("MoE LM: {}", spec.describe()), &intro, &figures, &explorer)?;
    out.write("report.html", html.as_bytes())?;
    Ok(())
}

/// For the first validation sample of each domain: the byte stream and, under it, the top
/// expert of every byte; then the per-token table.
fn token_listing(
    model: &moe_lm::Params<f32>,
    seqs: &[Vec<usize>],
    labels: &[usize],
    spec: &MoeLmSpec,
) -> Result<String> {
    let pad = model.config.pad_id.unwrap_or(256);
    let tok = spec.tokenizer()?;
    let mut out = String::new();
    for (d, name) in spec.domains.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == d) else { continue };
        let data = Batches::new(&seqs[i..=i], &labels[i..=i], spec.max_len, pad, 1)?;
        let batch = data.batch(&[0]);
        let r = moe_lm::routed(model, batch.ids.view(), batch.targets.view(), None, Route::default());
        let n = batch.mask.iter().filter(|&&m| m == 1).count();
        let tokens: Vec<String> = batch.ids.iter().take(n).map(|&id| tok.token_text(id)).collect();
        let experts: String = (0..n).map(|row| r.chosen[row].first().map_or('·', |&e| digit(e))).collect();
        if tok.vocab_size() == 256 {
            let shown: String = tokens.iter().map(|t| visible(t)).collect();
            let _ = writeln!(out, "{name}:\n  bytes   {shown}\n  expert  {experts}\n");
        } else {
            // Tokens of many bytes: each followed by its expert in brackets.
            let shown: Vec<String> = tokens.iter().zip(experts.chars()).map(|(t, e)| format!("{t}[{e}]")).collect();
            let _ = writeln!(out, "{name}:\n  tokens  {}\n", shown.join(" ").replace('\n', "⏎"));
        }
        let probs = r.gates.slice(ndarray::s![..n, ..]).to_owned();
        let _ = writeln!(out, "{}", metrics::token_listing(&tokens, probs.view(), None));
    }
    Ok(out)
}

/// One printable character per byte token, so the expert row lines up under it.
fn visible(t: &str) -> char {
    match t.chars().next() {
        Some('\n') => '⏎',
        Some('\t') => '⇥',
        Some(c) if t.chars().count() == 1 && !c.is_control() => c,
        _ => '·',
    }
}

fn digit(e: usize) -> char {
    char::from_digit(e as u32, 36).unwrap_or('?')
}
