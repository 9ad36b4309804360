//! The reference batch for the PyTorch twin (`python/tinymoe_torch`): one fixed batch and
//! everything tinymoe computes on it, so a PyTorch port of the model can be proven equal —
//! the logits, every loss part, the routing decisions and the weights after one Adam step.
//!
//! `tinymoe export --model CKPT --out DIR` writes it as `DIR/reference.safetensors` beside the
//! weights; `python/check_equal.py DIR` runs the same batch in PyTorch and compares. All
//! tensors are f32 (integers are stored exactly: ids and labels are far below 2²⁴):
//!
//! ```text
//!   input              LMs: token ids [B, T], the last rows padded with the pad id at the end;
//!                      classifiers: features [B, d_in] (standard normal)
//!   targets            LMs: next ids [B, T] (the pad id where ignored); classifiers: labels [B]
//!   domains            MoE LM with domain routing: a label per sequence [B]
//!   logits             [B, T, vocab] or [B, classes]
//!   loss.total         what backward differentiates [1]; loss.lm / loss.ce its cross-entropy
//!   loss.balance …     MoE LM: each router loss as tinymoe reports it (weighted by its
//!                      coefficient), loss.domain the classifier's cross-entropy (unweighted)
//!   routing.logits     MoE LM: the router's logits [units, E] (units: B·T tokens or B sequences)
//!   routing.experts    [units, k]: each unit's chosen experts, best first (−1: padding chose none)
//!   routing.kept       [units, k]: 1 where that assignment ran, 0 where capacity dropped it
//!   routing.gates      [units, E]: the gate matrix
//!   gates              dense MoE classifier: the gate's softmax [B, E]
//!   grad.NAME          ∂ loss.total / ∂ every parameter (PyTorch name and layout)
//!   after_step.NAME    every parameter (PyTorch name and layout) after one Adam step on
//!                      loss.total from the exported weights: constant lr, no clipping
//! ```
//! Everything runs in evaluation mode (no dropout, no router noise), which is what
//! `model.eval()` gives in PyTorch; the metadata says so (`reference.mode = eval`) and gives the
//! optimiser (`reference.optimizer`, `.lr`, `.beta1`, `.beta2`, `.eps`, `.weight_decay`).

use crate::checkpoint;
use crate::engine::init;
use crate::engine::layers::{mlp, InputGrad, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::optim::{Kind, Optimizer};
use crate::engine::params::Tensors;
use crate::error::Result;
use crate::interchange::{export_named, mapping};
use crate::models::classifier::Classifier;
use crate::models::{moe_lm, transformer_lm};
use crate::moe::layer::{Level, Route};
use crate::moe::mixture;
use crate::run::saved::Saved;
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::path::Path;

/// Sequences (or rows) in the reference batch.
pub const BATCH: usize = 4;
/// The seed of the reference batch.
pub const SEED: u64 = 20_261_204;
/// The learning rate of the reference step: large enough that a wrong gradient shows.
pub const LR: f64 = 1e-2;

/// The reference: named tensors and metadata, as the file holds them.
pub struct Reference {
    pub tensors: Vec<(String, ArrayD<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Reference {
    fn new(kind: Kind) -> Reference {
        let (name, beta1, beta2, eps, wd) = match kind {
            Kind::Adam { beta1, beta2, eps, weight_decay } => ("adam", beta1, beta2, eps, weight_decay),
            Kind::AdamW { beta1, beta2, eps, weight_decay } => ("adamw", beta1, beta2, eps, weight_decay),
            Kind::Sgd { .. } => unreachable!("the reference step is Adam's"),
        };
        let metadata = BTreeMap::from([
            ("reference.mode".to_string(), "eval".to_string()),
            ("reference.optimizer".to_string(), name.to_string()),
            ("reference.lr".to_string(), LR.to_string()),
            ("reference.beta1".to_string(), beta1.to_string()),
            ("reference.beta2".to_string(), beta2.to_string()),
            ("reference.eps".to_string(), eps.to_string()),
            ("reference.weight_decay".to_string(), wd.to_string()),
            ("reference.losses".to_string(), "router losses weighted by their coefficients; domain unweighted".into()),
        ]);
        Reference { tensors: Vec::new(), metadata }
    }

    fn put<D: ndarray::Dimension>(&mut self, name: &str, a: ndarray::Array<f32, D>) {
        self.tensors.push((name.to_string(), a.into_dyn()));
    }

    fn scalar(&mut self, name: &str, v: f64) {
        self.put(name, Array1::from_elem(1, v as f32));
    }

    fn ints(&mut self, name: &str, shape: &[usize], v: impl IntoIterator<Item = usize>) {
        let data: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
        self.put(name, ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape matches"));
    }

    /// The gradients (`grad.` + PyTorch names, in PyTorch's layout) and one Adam step of
    /// `model` with them (`after_step.` + PyTorch names).
    fn step<M: Tensors<f32> + Clone>(&mut self, model: &M, grads: &dyn Tensors<f32>, kind: Kind) {
        let layout = |m: &crate::interchange::Mapped, t: ndarray::ArrayViewD<f32>| {
            if m.transposed {
                t.reversed_axes().as_standard_layout().to_owned()
            } else {
                t.to_owned()
            }
        };
        let map = mapping(model);
        for (m, (_, g)) in map.iter().zip(grads.tensors()) {
            self.tensors.push((format!("grad.{}", m.pytorch), layout(m, g)));
        }
        let mut after = model.clone();
        Optimizer::new(kind, &[], &after).step(&mut after, grads, LR);
        for (m, (_, t)) in map.iter().zip(after.tensors()) {
            self.tensors.push((format!("after_step.{}", m.pytorch), layout(m, t)));
        }
    }

    /// Writes the reference as safetensors (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        export_named(path, &self.tensors, &self.metadata)
    }
}

/// `config.json` of an export folder: what `tinymoe_torch.load` builds the model from — the
/// kind, the model's config, the run's settings (optimiser, learning rate, …), the domain
/// names in label order (MoE LM) and the tokeniser.
pub fn config_json(header: &checkpoint::Header) -> serde_json::Value {
    let spec = header.meta.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    let domains = spec.get("domains").cloned().unwrap_or_else(|| serde_json::json!([]));
    let tokenizer = header.meta.get("tokenizer").cloned().unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "kind": header.kind,
        "config": header.config,
        "settings": spec,
        "domains": domains,
        "tokenizer": tokenizer,
        "format": "tinymoe export folder 1: model.safetensors (PyTorch names), reference.safetensors",
    })
}

/// The run's optimiser as its settings record it (`optimizer`, `weight_decay`), if any.
pub fn optimizer_of(header: &checkpoint::Header) -> Option<Kind> {
    let spec = header.meta.get("spec")?;
    let wd = spec.get("weight_decay").and_then(|v| v.as_f64()).unwrap_or(0.0);
    match spec.get("optimizer")?.as_str()? {
        "adam" => Some(Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd }),
        "adamw" => Some(Kind::adamw(wd)),
        _ => None,
    }
}

/// The optimiser of the reference step: the run's own Adam or AdamW, or plain Adam.
fn adam_of(kind: Option<Kind>) -> Kind {
    match kind {
        Some(k @ (Kind::Adam { .. } | Kind::AdamW { .. })) => k,
        _ => Kind::adam(),
    }
}

/// A batch of ids over `vocab` (never `pad`), rows 1 and 3 padded at the end: `(ids,
/// targets)` as training builds them (targets are the ids shifted by one, pad where ignored).
fn lm_batch(vocab: usize, max_seq: usize, pad: Option<usize>, seed: u64) -> (Array2<usize>, Array2<usize>) {
    let mut rng = init::rng(seed);
    let t = max_seq.clamp(2, 16);
    let real: usize = (0..vocab).filter(|&i| Some(i) != pad).count();
    let draw = |rng: &mut crate::engine::Rng| {
        let mut i = rng.gen_range(0..real);
        if pad.is_some_and(|p| i >= p) {
            i += 1;
        }
        i
    };
    let full: Vec<Vec<usize>> = (0..BATCH).map(|_| (0..=t).map(|_| draw(&mut rng)).collect()).collect();
    let fill = pad.unwrap_or(0);
    let mut ids = Array2::from_elem((BATCH, t), fill);
    let mut targets = Array2::from_elem((BATCH, t), fill);
    for (b, seq) in full.iter().enumerate() {
        // Rows 1 and 3 are shorter (padded at the end); without a pad id nothing can be.
        let len = if pad.is_some() && b % 2 == 1 { (t / 2 + b).min(t) } else { t };
        for i in 0..len {
            ids[[b, i]] = seq[i];
            targets[[b, i]] = seq[i + 1];
        }
    }
    (ids, targets)
}

/// The transformer LM's reference.
pub fn lm(model: &transformer_lm::Params<f32>, kind: Option<Kind>, seed: u64) -> Reference {
    let kind = adam_of(kind);
    let mut r = Reference::new(kind);
    let cfg = model.config;
    let (ids, targets) = lm_batch(cfg.vocab, cfg.max_seq, cfg.pad_id, seed);
    let (loss, cache) = transformer_lm::forward(model, ids.view(), targets.view(), &mut Mode::Eval);
    let grads = transformer_lm::backward(model, &cache);
    r.ints("input", &[BATCH, ids.ncols()], ids.iter().copied());
    r.ints("targets", &[BATCH, ids.ncols()], targets.iter().copied());
    r.put("logits", transformer_lm::predict(model, ids.view()));
    r.scalar("loss.total", f64::from(loss));
    r.scalar("loss.lm", f64::from(loss));
    r.step(model, &grads, kind);
    r
}

/// The MoE LM's reference (domain labels for domain routing: sequence b is domain b mod E).
pub fn moe_lm(model: &moe_lm::Params<f32>, kind: Option<Kind>, seed: u64) -> Reference {
    let kind = adam_of(kind);
    let mut r = Reference::new(kind);
    let cfg = model.config;
    let (ids, targets) = lm_batch(cfg.vocab, cfg.max_seq, cfg.pad_id, seed);
    let domains: Vec<usize> = (0..BATCH).map(|b| b % cfg.n_experts).collect();
    let labels = cfg.domain_loss.is_some().then_some(domains.as_slice());
    let (losses, cache) = moe_lm::forward(model, ids.view(), targets.view(), labels, Route::default(), &mut Mode::Eval);
    let grads = moe_lm::backward(model, &cache);
    let t = ids.ncols();
    r.ints("input", &[BATCH, t], ids.iter().copied());
    r.ints("targets", &[BATCH, t], targets.iter().copied());
    if let Some(l) = labels {
        r.ints("domains", &[BATCH], l.iter().copied());
    }
    let logits = cache.logits(model);
    r.put("logits", logits.into_shape_with_order((BATCH, t, cfg.vocab)).expect("standard layout"));
    r.scalar("loss.total", losses.total);
    r.scalar("loss.lm", losses.lm);
    r.scalar("loss.balance", losses.router.balance);
    r.scalar("loss.z", losses.router.z);
    r.scalar("loss.token_entropy", losses.router.token_entropy);
    r.scalar("loss.batch_entropy", losses.router.batch_entropy);
    r.scalar("loss.domain", losses.domain);
    let moe = cache.moe();
    let d = moe.decision();
    let units = d.gates.nrows();
    let k = d.chosen.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut experts = Array2::<f32>::from_elem((units, k), -1.0);
    let mut kept = Array2::<f32>::zeros((units, k));
    for (u, chosen) in d.chosen.iter().enumerate() {
        for (j, &e) in chosen.iter().enumerate() {
            experts[[u, j]] = e as f32;
            kept[[u, j]] = d.kept[[u, e]];
        }
    }
    debug_assert_eq!(units, if cfg.level == Level::Token { BATCH * t } else { BATCH });
    r.put("routing.logits", moe.logits().to_owned());
    r.put("routing.experts", experts);
    r.put("routing.kept", kept);
    r.put("routing.gates", d.gates.clone());
    r.step(model, &grads, kind);
    r
}

/// The classifier's reference: standard normal features, labels b mod classes.
pub fn classifier(model: &Classifier<f32>, kind: Option<Kind>, seed: u64) -> Reference {
    let kind = adam_of(kind);
    let mut r = Reference::new(kind);
    let (d_in, classes) = model.dims();
    let mut rng = init::rng(seed);
    let x: Array2<f32> = init::normal((BATCH, d_in), 1.0, &mut rng);
    let y: Vec<usize> = (0..BATCH).map(|b| b % classes).collect();
    let mut mode = Mode::Eval;
    let (logits, loss, grads, gates) = match model {
        Classifier::Mlp(p) => {
            let (logits, cache) = mlp::forward(p, x.view(), &mut mode);
            let (loss, ce) = cross_entropy::forward(logits.view(), &y, None);
            let (_, g) = mlp::backward(p, &cache, cross_entropy::backward(&ce).view(), InputGrad::Skip);
            (logits, loss, crate::models::classifier::Grads::Mlp(g), None)
        }
        Classifier::Moe(p) => {
            let (logits, cache) = mixture::forward(p, x.view(), &mut mode);
            let (loss, ce) = cross_entropy::forward(logits.view(), &y, None);
            let (_, g) = mixture::backward(p, &cache, cross_entropy::backward(&ce).view(), InputGrad::Skip);
            (logits, loss, crate::models::classifier::Grads::Moe(g), Some(cache.gates().clone()))
        }
    };
    r.put("input", x);
    r.ints("targets", &[BATCH], y.iter().copied());
    r.put("logits", logits);
    r.scalar("loss.total", f64::from(loss));
    r.scalar("loss.ce", f64::from(loss));
    if let Some(g) = gates {
        r.put("gates", g);
    }
    r.step(model, &grads, kind);
    r
}

/// `tinymoe data export --model CKPT --out DIR`: the data the checkpoint's run trained and
/// validated on, as `.npy` for `scripts/train_torch.py`. A language model: `tokens.npy` int64
/// [N, seq + 1] (its windows), `val_tokens.npy`, `meta.json`. An MoE LM: `tokens.npy` int64
/// [N, max_len + 1] (inputs are `[:, :-1]`, targets `[:, 1:]`; padded with the pad id,
/// longer samples cut as training cuts them), `labels.npy` int64 [N] (domain labels),
/// `val_tokens.npy`, `val_labels.npy`, and `meta.json` (pad id, domains, max_len). A
/// classifier: `x.npy` f32 [N, d_in], `y.npy` int64 [N], `val_x.npy`, `val_y.npy`, `meta.json`.
/// Returns the names written.
pub fn export_data(model: &Path, dir: &Path) -> Result<Vec<String>> {
    use crate::data::npy::write_npy;
    use crate::run::{classifier, moe_lm as run_moe};
    let (header, _) = checkpoint::read(model)?;
    crate::io::create_dir(dir)?;
    let json = |name: &str, v: serde_json::Value| -> Result<String> {
        crate::io::write_atomic(&dir.join(name), serde_json::to_string_pretty(&v).expect("JSON").as_bytes())?;
        Ok(name.to_string())
    };
    let mut wrote = Vec::new();
    match header.kind.as_str() {
        run_moe::KIND => {
            let spec = run_moe::load_for_resume(model)?.spec;
            let pad = 256usize;
            let width = spec.max_len + 1;
            let tokens = |seqs: &[Vec<usize>]| {
                let mut a = Array2::<i64>::from_elem((seqs.len(), width), pad as i64);
                for (i, s) in seqs.iter().enumerate() {
                    for (j, &id) in s.iter().take(width).enumerate() {
                        a[[i, j]] = id as i64;
                    }
                }
                a
            };
            let labels = |l: &[usize]| Array1::from_iter(l.iter().map(|&x| x as i64));
            let (train, train_labels) = spec.train_samples()?;
            let (val, val_labels) = spec.val_samples(spec.val_per_domain)?;
            for (name, a) in [("tokens.npy", tokens(&train)), ("val_tokens.npy", tokens(&val))] {
                write_npy(&dir.join(name), &a)?;
                wrote.push(name.to_string());
            }
            for (name, a) in [("labels.npy", labels(&train_labels)), ("val_labels.npy", labels(&val_labels))] {
                write_npy(&dir.join(name), &a)?;
                wrote.push(name.to_string());
            }
            wrote.push(json(
                "meta.json",
                serde_json::json!({
                    "kind": header.kind, "pad_id": pad, "max_len": spec.max_len, "domains": spec.domains,
                    "corpus": spec.corpus, "tokens": "bytes (0..=255), 256 = padding",
                }),
            )?);
        }
        classifier::KIND => {
            let spec = classifier::load_for_resume(model)?.spec;
            let (train, val) = classifier::load_data(&spec)?;
            for (prefix, d) in [("", &train), ("val_", &val)] {
                write_npy(&dir.join(format!("{prefix}x.npy")), &d.x)?;
                write_npy(&dir.join(format!("{prefix}y.npy")), &Array1::from_iter(d.y.iter().map(|&y| y as i64)))?;
                wrote.push(format!("{prefix}x.npy"));
                wrote.push(format!("{prefix}y.npy"));
            }
            wrote.push(json("meta.json", serde_json::json!({ "kind": header.kind, "classes": train.classes }))?);
        }
        crate::run::lm::KIND => {
            let spec: crate::run::lm::LmSpec =
                header.meta.get("spec").cloned().and_then(|v| serde_json::from_value(v).ok()).ok_or_else(|| {
                    crate::error::Error::Checkpoint {
                        path: model.to_path_buf(),
                        problem: "it records no readable settings, so its text is unknown".into(),
                    }
                })?;
            let (train, val) = crate::run::lm::windows(&spec)?;
            // A window's ids and its last target: seq + 1 tokens a row.
            let rows = |w: &crate::data::text::Windows| {
                let (n, seq) = w.ids.dim();
                Array2::<i64>::from_shape_fn((n, seq + 1), |(r, t)| {
                    if t < seq {
                        w.ids[[r, t]] as i64
                    } else {
                        w.targets[[r, seq - 1]] as i64
                    }
                })
            };
            for (name, w) in [("tokens.npy", &train), ("val_tokens.npy", &val)] {
                write_npy(&dir.join(name), &rows(w))?;
                wrote.push(name.to_string());
            }
            let pad = header.config.get("pad_id").cloned().unwrap_or(serde_json::Value::Null);
            wrote.push(json(
                "meta.json",
                serde_json::json!({ "kind": header.kind, "pad_id": pad, "max_len": spec.seq, "domains": [], "tokenizer": spec.tokenizer }),
            )?);
        }
        other => {
            return Err(crate::error::Error::Checkpoint {
                path: model.to_path_buf(),
                problem: format!(
                    "it holds a {other:?} model; data export knows the LM ({}), MoE LM ({}) and classifier ({}) runs",
                    crate::run::lm::KIND,
                    run_moe::KIND,
                    classifier::KIND
                ),
            })
        }
    }
    Ok(wrote)
}

/// What [`export`] wrote.
pub struct Exported {
    pub kind: String,
    /// Every tensor: our name, the file's name, layout and shape.
    pub mapping: Vec<crate::interchange::Mapped>,
    pub parameters: usize,
    /// The files written, in order.
    pub wrote: Vec<std::path::PathBuf>,
}

/// Every tensor of the checkpoint at `path`, by name, with its header.
fn read_model(path: &Path) -> Result<(checkpoint::Header, checkpoint::NamedTensors)> {
    let (header, _) = checkpoint::read(path)?;
    if header.tensors.iter().all(|t| t.offset.is_some()) {
        return checkpoint::read_tensors(path, |_| true);
    }
    // Saved before offsets were recorded: only the model's own type can decode it.
    let (header, typed) = Saved::load(path)?;
    let tensors = typed.tensors().tensors().into_iter().map(|(n, t)| (n, t.to_owned())).collect();
    Ok((header, checkpoint::NamedTensors(tensors)))
}

/// `tinymoe export`: the checkpoint at `model` as safetensors under PyTorch names and layouts.
/// `out` ending in `.safetensors` is that file alone; any other `out` is a folder for the
/// PyTorch twin: `model.safetensors`, `config.json` ([`config_json`]) and
/// `reference.safetensors` (the reference batch of this module). `manifest` also writes every
/// tensor's names, shapes and values in our layout as JSON, for another reader to check.
pub fn export(model: &Path, out: &Path, manifest: Option<&Path>) -> Result<Exported> {
    use crate::io::{refuse_overwrite, refuse_overwrite_in, write_atomic};
    // No output may land on the checkpoint being exported, nor on another output.
    refuse_overwrite(&[model], out)?;
    if let Some(m) = manifest {
        refuse_overwrite(&[model, out], m)?;
    }
    let folder = out.extension().is_none_or(|e| e != "safetensors");
    let weights = if folder { out.join("model.safetensors") } else { out.to_path_buf() };
    if folder {
        crate::io::create_dir(out)?;
        refuse_overwrite_in(&[model], out, &["model.safetensors", "config.json", "reference.safetensors"])?;
    }
    let (header, tensors) = read_model(model)?;
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("tinymoe.kind".to_string(), header.kind.clone()),
        ("tinymoe.config".to_string(), header.config.to_string()),
        ("tinymoe.meta".to_string(), header.meta.to_string()),
        ("tinymoe.layout".to_string(), "PyTorch state_dict: Linear weights [out, in]".to_string()),
    ]);
    crate::interchange::export_safetensors(&weights, &tensors, &metadata)?;
    let map = mapping(&tensors);
    let parameters = tensors.tensors().iter().map(|(_, t)| t.len()).sum();
    let mut wrote = vec![weights.clone()];
    if let Some(path) = manifest {
        let list: Vec<serde_json::Value> = map
            .iter()
            .zip(tensors.tensors())
            .map(|(m, (_, t))| {
                serde_json::json!({
                    "name": m.pytorch,
                    "ours": m.ours,
                    "shape": m.shape,
                    "our_shape": t.shape(),
                    "transposed": m.transposed,
                    // Row-major in our layout; an f32 is exact as a JSON (f64) number.
                    "values": t.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({ "file": weights, "kind": header.kind, "tensors": list });
        write_atomic(path, serde_json::to_string(&doc).expect("JSON").as_bytes())?;
        wrote.push(path.to_path_buf());
    }
    if folder {
        let (_, typed) = Saved::load(model)?;
        let config = out.join("config.json");
        write_atomic(&config, serde_json::to_string_pretty(&config_json(&header)).expect("JSON").as_bytes())?;
        let kind = optimizer_of(&header);
        let reference = match &typed {
            Saved::Lm(t) => lm(&t.model, kind, SEED),
            Saved::MoeLm(t) => moe_lm(&t.model, kind, SEED),
            Saved::Classifier(t) => classifier(&t.model, kind, SEED),
        };
        let path = out.join("reference.safetensors");
        reference.save(&path)?;
        wrote.extend([config, path]);
    }
    Ok(Exported { kind: header.kind, mapping: map, parameters, wrote })
}
