//! One validation step for every model config, wherever it comes from (flags, a TOML file, a
//! checkpoint's payload, an import): the engine trusts its inputs (a shape mismatch there is a
//! bug and panics), so everything a file or a user can set is checked here first.
//!
//! ```text
//!   ranges          every size ≥ 1 and at most its MAX_*, dropout in [0, 1), pad_id < vocab, …
//!   divisibility    n_heads divides d_model (each head gets d_model / n_heads columns)
//!   agreement       every tensor has the shape the config implies (blocks = n_layers,
//!                   pos = [max_seq, d_model], …), and the non-tensor fields (heads, eps,
//!                   routing) agree with the config
//!   size            parameters + activations of the requested model ≤ this machine's memory
//! ```
//! Errors are [`Error::BadValue`]s naming the value and the allowed range or limit; a
//! checkpoint loader adds the file (`checkpoint::load` calls [`Validate::validate`]).
//!
//! The memory estimate is deliberately rough (f32 everywhere, the big activations only: every
//! [rows, width] array a layer keeps for backward, and the attention weights [batch, heads,
//! seq, seq]); its job is to refuse d_model = 10⁹ with a sentence instead of an abort, not to
//! plan a run to the megabyte.

use crate::engine::layers::transformer_block::{self as block};
use crate::engine::layers::{embedding, layer_norm, linear, mlp};
use crate::error::{Error, Result};
use crate::models::classifier::Classifier;
use crate::models::{moe_classifier, moe_lm, transformer_lm};
use crate::moe::expert::Expert;
use crate::moe::routing::{Gating, Strategy};
use crate::moe::{layer, router};

/// The largest width a config may ask for (d_model, d_ff, hidden widths, vocab, max_seq): 2^24.
/// The memory bound is the real limit; this one gives a clearer message for absurd values.
pub const MAX_WIDTH: usize = 1 << 24;
/// The most blocks (n_layers, shared_layers, layers of a stack expert).
pub const MAX_LAYERS: usize = 4096;
/// The most experts of an MoE layer.
pub const MAX_EXPERTS: usize = 4096;
/// Bytes per value: every model here is f32.
const F32: u128 = 4;

/// A model (or a model with its training state) that can check its config against itself,
/// its tensors and `memory` bytes (this machine's: `io::machine_memory()`).
pub trait Validate {
    fn validate(&self, memory: u64) -> Result<()>;
}

// ---- small checks -------------------------------------------------------------------------

/// `value` for `name` is in 1..=`max`.
pub fn size(name: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(Error::bad_value(name, value, &format!("must be 1..={max}")));
    }
    Ok(())
}

fn dropout(name: &str, p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::bad_value(name, p, "must be in [0, 1)"));
    }
    Ok(())
}

fn heads_divide(n_heads: usize, d_model: usize) -> Result<()> {
    size("n_heads", n_heads, d_model.max(1))?;
    if d_model % n_heads != 0 {
        return Err(Error::bad_value(
            "n_heads",
            n_heads,
            &format!("must divide d_model = {d_model} (each head gets d_model / n_heads columns)"),
        ));
    }
    Ok(())
}

fn gating(g: &Gating, n_experts: usize) -> Result<()> {
    if let Strategy::TopK(k) | Strategy::TopKProbs(k) = g.strategy {
        if k == 0 || k > n_experts {
            return Err(Error::bad_value("top_k", k, &format!("must be 1..={n_experts} (the number of experts)")));
        }
    }
    if let Some(c) = g.capacity_factor {
        if !(c.is_finite() && c > 0.0) {
            return Err(Error::bad_value("capacity_factor", c, "must be a finite number > 0"));
        }
    }
    Ok(())
}

fn finite(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::bad_value(name, v, "must be a finite number"));
    }
    Ok(())
}

/// A tensor whose shape is not the one the config implies.
fn shape(name: &str, found: &[usize], want: &[usize], why: &str) -> Result<()> {
    if found != want {
        return Err(Error::bad_value(
            &format!("tensor {name}"),
            format!("shape {found:?}"),
            &format!("the config ({why}) needs {want:?}"),
        ));
    }
    Ok(())
}

fn count(name: &str, found: usize, want: usize, why: &str) -> Result<()> {
    if found != want {
        return Err(Error::bad_value(
            name,
            found,
            &format!("the tensors hold {found}, the config says {why} = {want}"),
        ));
    }
    Ok(())
}

fn linear_shape(name: &str, p: &linear::Params<f32>, d_in: usize, d_out: usize, why: &str) -> Result<()> {
    shape(&format!("{name}.w"), p.w.shape(), &[d_in, d_out], why)?;
    shape(&format!("{name}.b"), p.b.shape(), &[d_out], why)
}

fn layer_norm_shape(name: &str, p: &layer_norm::Params<f32>, d: usize) -> Result<()> {
    shape(&format!("{name}.weight"), p.gamma.shape(), &[d], "d_model")?;
    shape(&format!("{name}.bias"), p.beta.shape(), &[d], "d_model")?;
    if !(p.eps.is_finite() && p.eps > 0.0) {
        return Err(Error::bad_value(&format!("{name}.eps"), p.eps, "must be a finite number > 0"));
    }
    Ok(())
}

/// An MLP with layer sizes `sizes` = [d_in, hidden…, d_out].
fn mlp_shape(name: &str, p: &mlp::Params<f32>, sizes: &[usize], why: &str) -> Result<()> {
    count(&format!("{name} layers"), p.layers.len(), sizes.len() - 1, why)?;
    for (j, l) in p.layers.iter().enumerate() {
        linear_shape(&format!("{name}.layers.{j}"), l, sizes[j], sizes[j + 1], why)?;
    }
    dropout(&format!("{name}.dropout"), p.dropout)
}

fn block_shape(name: &str, p: &block::Params<f32>, d: usize, n_heads: usize, d_ff: usize) -> Result<()> {
    layer_norm_shape(&format!("{name}.ln1"), &p.ln1, d)?;
    for (part, l) in [("q", &p.attn.q), ("k", &p.attn.k), ("v", &p.attn.v), ("o", &p.attn.o)] {
        linear_shape(&format!("{name}.attn.{part}"), l, d, d, "d_model")?;
    }
    if p.attn.n_heads != n_heads {
        return Err(Error::bad_value(
            &format!("{name}.attn.n_heads"),
            p.attn.n_heads,
            &format!("the config says n_heads = {n_heads}"),
        ));
    }
    layer_norm_shape(&format!("{name}.ln2"), &p.ln2, d)?;
    mlp_shape(&format!("{name}.mlp"), &p.mlp, &[d, d_ff, d], "d_model, d_ff")
}

fn embedding_shape(p: &embedding::Params<f32>, vocab: usize, max_seq: usize, d: usize) -> Result<()> {
    shape("embed.tok", p.tok.shape(), &[vocab, d], "vocab, d_model")?;
    shape("embed.pos", p.pos.shape(), &[max_seq, d], "max_seq, d_model")
}

fn pad_id(pad: Option<usize>, vocab: usize) -> Result<()> {
    if let Some(p) = pad {
        if p >= vocab {
            return Err(Error::bad_value("pad_id", p, &format!("must be a token id below vocab = {vocab}")));
        }
    }
    Ok(())
}

// ---- memory --------------------------------------------------------------------------------

/// u128 products that saturate instead of wrapping: sizes of absurd configs stay absurd.
fn mul(xs: &[usize]) -> u128 {
    xs.iter().fold(1u128, |acc, &x| acc.saturating_mul(x as u128))
}

/// Parameters of one pre-LN block: 4 d×d projections with biases, 2 LayerNorms, the MLP.
fn block_parameters(d: usize, d_ff: usize) -> u128 {
    let attn = 4 * (mul(&[d, d]).saturating_add(d as u128));
    let ln = 4 * d as u128;
    let ff = mul(&[d, d_ff]).saturating_add(d_ff as u128).saturating_add(mul(&[d_ff, d])).saturating_add(d as u128);
    attn.saturating_add(ln).saturating_add(ff)
}

/// Activation values one block keeps for `rows` = batch·seq rows: about a dozen [rows, d]
/// arrays, three [rows, d_ff] and twice the attention weights [batch, heads, seq, seq].
fn block_activations(batch: usize, seq: usize, d: usize, n_heads: usize, d_ff: usize) -> u128 {
    let rows = mul(&[batch, seq]);
    let wide = rows.saturating_mul(12u128.saturating_mul(d as u128).saturating_add(3 * d_ff as u128));
    wide.saturating_add(2 * mul(&[batch, n_heads, seq, seq]))
}

/// What a model would take: its parameters (and, training, their gradients and two Adam
/// moments) plus the activations of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub parameters: u128,
    pub activations: u128,
}

impl Footprint {
    /// Bytes in all, f32: ×4 copies of the parameters when training, ×1 otherwise.
    pub fn bytes(&self, training: bool) -> u128 {
        let copies = if training { 4 } else { 1 };
        self.parameters.saturating_mul(copies * F32).saturating_add(self.activations.saturating_mul(F32))
    }

    /// Refuses a model that needs more than `memory` bytes; `what` describes its config.
    pub fn check(&self, what: &str, training: bool, memory: u64) -> Result<()> {
        let need = self.bytes(training);
        if need > memory as u128 {
            return Err(Error::bad_value(
                "model size",
                what,
                &format!(
                    "{} parameters and {} activation values per batch need about {}, more than this machine's \
                     {} of memory; choose smaller sizes",
                    self.parameters,
                    self.activations,
                    human(need),
                    human(memory as u128)
                ),
            ));
        }
        Ok(())
    }
}

/// Bytes as a readable amount: `1.5 GiB`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

// ---- the language model --------------------------------------------------------------------

impl transformer_lm::Config {
    /// Ranges and divisibility (no tensors, no memory): the check for a config from flags or a
    /// file before a model is built.
    pub fn validate(&self) -> Result<()> {
        size("vocab", self.vocab, MAX_WIDTH)?;
        size("max_seq", self.max_seq, MAX_WIDTH)?;
        size("d_model", self.d_model, MAX_WIDTH)?;
        heads_divide(self.n_heads, self.d_model)?;
        size("d_ff", self.d_ff, MAX_WIDTH)?;
        size("n_layers", self.n_layers, MAX_LAYERS)?;
        dropout("dropout", self.dropout)?;
        pad_id(self.pad_id, self.vocab)
    }

    /// Parameters and activations for `batch` sequences of `seq` tokens.
    pub fn footprint(&self, batch: usize, seq: usize) -> Footprint {
        let (d, v) = (self.d_model, self.vocab);
        let embed = mul(&[v, d]).saturating_add(mul(&[self.max_seq, d]));
        let blocks = (self.n_layers as u128).saturating_mul(block_parameters(d, self.d_ff));
        let head = if self.tie_head { 0 } else { mul(&[d, v]).saturating_add(v as u128) };
        let parameters = embed.saturating_add(blocks).saturating_add(2 * d as u128).saturating_add(head);
        let rows = mul(&[batch, seq]);
        let activations = (self.n_layers as u128)
            .saturating_mul(block_activations(batch, seq, d, self.n_heads, self.d_ff))
            .saturating_add(rows.saturating_mul(3 * v as u128).saturating_add(rows.saturating_mul(4 * d as u128)));
        Footprint { parameters, activations }
    }

    /// [`Self::validate`], then the size bound: training `batch` windows of max_seq tokens
    /// (`training`), or running one (loading a checkpoint to generate), within `memory` bytes.
    pub fn check_fits(&self, batch: usize, training: bool, memory: u64) -> Result<()> {
        self.validate()?;
        let what = format!(
            "vocab {}, max_seq {}, d_model {}, n_heads {}, d_ff {}, n_layers {}",
            self.vocab, self.max_seq, self.d_model, self.n_heads, self.d_ff, self.n_layers
        );
        self.footprint(batch, self.max_seq).check(&what, training, memory)
    }
}

impl Validate for transformer_lm::Params<f32> {
    fn validate(&self, memory: u64) -> Result<()> {
        let c = self.config;
        c.check_fits(1, false, memory)?;
        embedding_shape(&self.embed, c.vocab, c.max_seq, c.d_model)?;
        count("n_layers", self.blocks.len(), c.n_layers, "n_layers")?;
        for (i, b) in self.blocks.iter().enumerate() {
            block_shape(&format!("blocks.{i}"), b, c.d_model, c.n_heads, c.d_ff)?;
        }
        layer_norm_shape("ln_f", &self.ln_f, c.d_model)?;
        match (&self.head, c.tie_head) {
            (Some(h), false) => linear_shape("head", h, c.d_model, c.vocab, "d_model, vocab"),
            (None, true) => Ok(()),
            (Some(_), true) => Err(Error::bad_value("tie_head", true, "but the weights hold a separate head")),
            (None, false) => Err(Error::bad_value("tie_head", false, "but the weights hold no head")),
        }
    }
}

// ---- the MoE language model ----------------------------------------------------------------

impl moe_lm::Config {
    /// Ranges, divisibility and routing (no tensors, no memory).
    pub fn validate(&self) -> Result<()> {
        size("vocab", self.vocab, MAX_WIDTH)?;
        size("max_seq", self.max_seq, MAX_WIDTH)?;
        size("d_model", self.d_model, MAX_WIDTH)?;
        heads_divide(self.n_heads, self.d_model)?;
        size("d_ff", self.d_ff, MAX_WIDTH)?;
        dropout("dropout", self.dropout)?;
        pad_id(self.pad_id, self.vocab)?;
        if self.shared_layers > MAX_LAYERS {
            return Err(Error::bad_value("shared_layers", self.shared_layers, &format!("must be 0..={MAX_LAYERS}")));
        }
        size("n_experts", self.n_experts, MAX_EXPERTS)?;
        match self.expert {
            moe_lm::ExpertKind::Stack { layers } => size("expert_layers", layers, MAX_LAYERS)?,
            moe_lm::ExpertKind::Mlp { hidden } => size("expert_hidden", hidden, MAX_WIDTH)?,
        }
        if let Some(h) = self.router_hidden {
            size("router_hidden", h, MAX_WIDTH)?;
        }
        gating(&self.gating, self.n_experts)?;
        let l = &self.router_losses;
        for (name, v) in [("balance_loss", l.balance), ("z_loss", l.z_loss)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::bad_value(name, v, "must be a finite number ≥ 0"));
            }
        }
        finite("token_entropy", l.token_entropy)?;
        finite("batch_entropy", l.batch_entropy)?;
        if let Some(w) = self.domain_loss {
            if !(w.is_finite() && w > 0.0) {
                return Err(Error::bad_value("domain_loss", w, "must be a finite number > 0"));
            }
        }
        Ok(())
    }

    /// Parameters and activations for `batch` sequences of `seq` tokens.
    pub fn footprint(&self, batch: usize, seq: usize) -> Footprint {
        let (d, v, e) = (self.d_model, self.vocab, self.n_experts);
        let embed = mul(&[v, d]).saturating_add(mul(&[self.max_seq, d]));
        let shared = (self.shared_layers as u128).saturating_mul(block_parameters(d, self.d_ff));
        let (expert, expert_act) = match self.expert {
            moe_lm::ExpertKind::Stack { layers } => (
                (layers as u128).saturating_mul(block_parameters(d, self.d_ff)),
                (layers as u128).saturating_mul(block_activations(batch, seq, d, self.n_heads, self.d_ff)),
            ),
            moe_lm::ExpertKind::Mlp { hidden } => (
                2 * mul(&[d, hidden]).saturating_add(hidden as u128 + d as u128),
                mul(&[batch, seq]).saturating_mul(3 * hidden as u128 + 3 * d as u128),
            ),
        };
        let router = match self.router_hidden {
            Some(h) => mul(&[d, h]).saturating_add(mul(&[h, e])),
            None => mul(&[d, e]),
        };
        let head = mul(&[d, v]).saturating_add(v as u128);
        let parameters = embed
            .saturating_add(shared)
            .saturating_add((e as u128).saturating_mul(expert))
            .saturating_add(router)
            .saturating_add(head)
            .saturating_add(4 * d as u128);
        // The experts see the tokens k times over (every expert, when dense).
        let k = match self.gating.strategy {
            Strategy::Dense => e,
            Strategy::TopK(k) | Strategy::TopKProbs(k) => k.min(e),
        };
        let rows = mul(&[batch, seq]);
        let activations = (self.shared_layers as u128)
            .saturating_mul(block_activations(batch, seq, d, self.n_heads, self.d_ff))
            .saturating_add((k as u128).saturating_mul(expert_act))
            .saturating_add(rows.saturating_mul(3 * v as u128 + 6 * d as u128 + 3 * e as u128));
        Footprint { parameters, activations }
    }

    /// [`Self::validate`], then the size bound (see `transformer_lm::Config::check_fits`).
    pub fn check_fits(&self, batch: usize, training: bool, memory: u64) -> Result<()> {
        self.validate()?;
        let expert = match self.expert {
            moe_lm::ExpertKind::Stack { layers } => format!("stack experts of {layers} block(s)"),
            moe_lm::ExpertKind::Mlp { hidden } => format!("MLP experts of hidden width {hidden}"),
        };
        let what = format!(
            "vocab {}, max_seq {}, d_model {}, n_heads {}, d_ff {}, shared_layers {}, {} {expert}",
            self.vocab, self.max_seq, self.d_model, self.n_heads, self.d_ff, self.shared_layers, self.n_experts
        );
        self.footprint(batch, self.max_seq).check(&what, training, memory)
    }
}

fn router_shape(
    name: &str,
    p: &router::Params<f32>,
    d: usize,
    hidden: Option<usize>,
    e: usize,
    noisy: bool,
) -> Result<()> {
    let sizes = match hidden {
        Some(h) => vec![d, h, e],
        None => vec![d, e],
    };
    mlp_shape(&format!("{name}.net"), &p.net, &sizes, "d_model, router_hidden, n_experts")?;
    match (&p.noise, noisy) {
        (Some(n), true) => linear_shape(&format!("{name}.noise"), n, d, e, "d_model, n_experts"),
        (None, false) => Ok(()),
        (Some(_), false) => Err(Error::bad_value("noisy", false, "but the weights hold a noise layer")),
        (None, true) => Err(Error::bad_value("noisy", true, "but the weights hold no noise layer")),
    }
}

fn layer_config(found: &layer::Config, want: &layer::Config) -> Result<()> {
    if found != want {
        return Err(Error::bad_value(
            "moe.config",
            format!("{found:?}"),
            &format!("the model's config implies {want:?}"),
        ));
    }
    Ok(())
}

impl Validate for moe_lm::Params<f32> {
    fn validate(&self, memory: u64) -> Result<()> {
        let c = self.config;
        c.check_fits(1, false, memory)?;
        let d = c.d_model;
        embedding_shape(&self.embed, c.vocab, c.max_seq, d)?;
        count("shared_layers", self.shared.len(), c.shared_layers, "shared_layers")?;
        for (i, b) in self.shared.iter().enumerate() {
            block_shape(&format!("shared.{i}"), b, d, c.n_heads, c.d_ff)?;
        }
        let passthrough = matches!(c.expert, moe_lm::ExpertKind::Stack { .. });
        match (&self.ln_moe, passthrough) {
            (Some(ln), false) => layer_norm_shape("ln_moe", ln, d)?,
            (None, true) => {}
            _ => {
                return Err(Error::bad_value(
                    "ln_moe",
                    if passthrough { "present" } else { "absent" },
                    "MLP experts have a LayerNorm in front, stack experts none",
                ))
            }
        }
        layer_config(&self.moe.config, &layer::Config { level: c.level, gating: c.gating, passthrough })?;
        router_shape("moe.router", &self.moe.router, d, c.router_hidden, c.n_experts, c.noisy)?;
        count("n_experts", self.moe.experts.len(), c.n_experts, "n_experts")?;
        for (e, expert) in self.moe.experts.iter().enumerate() {
            let name = format!("moe.experts.{e}");
            match (expert, c.expert) {
                (Expert::Mlp(m), moe_lm::ExpertKind::Mlp { hidden }) => {
                    mlp_shape(&format!("{name}.mlp"), m, &[d, hidden, d], "d_model, expert_hidden")?
                }
                (Expert::Stack(blocks), moe_lm::ExpertKind::Stack { layers }) => {
                    count(&format!("{name} blocks"), blocks.len(), layers, "expert_layers")?;
                    for (i, b) in blocks.iter().enumerate() {
                        block_shape(&format!("{name}.blocks.{i}"), b, d, c.n_heads, c.d_ff)?;
                    }
                }
                (_, kind) => {
                    return Err(Error::bad_value(&name, "of another kind", &format!("the config says {kind:?}")))
                }
            }
        }
        layer_norm_shape("ln_f", &self.ln_f, d)?;
        linear_shape("head", &self.head, d, c.vocab, "d_model, vocab")
    }
}

// ---- classifiers ---------------------------------------------------------------------------

/// A classifier's sizes, as a run's settings give them: `d_in` features, hidden widths,
/// `classes`, and for a dense MoE `n_experts` experts with a gate of widths `gate_hidden`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSizes<'a> {
    pub d_in: usize,
    pub hidden: &'a [usize],
    pub classes: usize,
    /// None: an MLP. Some((experts, gate_hidden)): a dense mixture of MLP experts.
    pub moe: Option<(usize, &'a [usize])>,
}

impl ClassifierSizes<'_> {
    /// Ranges, then parameters and activations (`batch` rows) against `memory` bytes.
    pub fn check_fits(&self, batch: usize, training: bool, memory: u64) -> Result<()> {
        size("d_in", self.d_in, MAX_WIDTH)?;
        for &w in self.hidden {
            size("hidden", w, MAX_WIDTH)?;
        }
        if self.classes < 2 || self.classes > MAX_WIDTH {
            return Err(Error::bad_value("classes", self.classes, &format!("must be 2..={MAX_WIDTH}")));
        }
        if let Some((e, gate)) = self.moe {
            size("experts", e, MAX_EXPERTS)?;
            for &w in gate {
                size("gate_hidden", w, MAX_WIDTH)?;
            }
        }
        let what = format!(
            "d_in {}, hidden {:?}, classes {}{}",
            self.d_in,
            self.hidden,
            self.classes,
            self.moe.map_or(String::new(), |(e, g)| format!(", {e} experts, gate_hidden {g:?}"))
        );
        self.footprint(batch).check(&what, training, memory)
    }

    /// Parameters and activations of one batch of `batch` rows.
    pub fn footprint(&self, batch: usize) -> Footprint {
        let chain = |sizes: &[usize]| -> (u128, u128) {
            let params = sizes.windows(2).fold(0u128, |acc, w| acc.saturating_add(mul(&[w[0], w[1]]) + w[1] as u128));
            let acts = sizes.iter().fold(0u128, |acc, &w| acc.saturating_add(3 * mul(&[batch, w])));
            (params, acts)
        };
        let mut expert = vec![self.d_in];
        expert.extend_from_slice(self.hidden);
        expert.push(self.classes);
        let (p, a) = chain(&expert);
        match self.moe {
            None => Footprint { parameters: p, activations: a },
            Some((e, gate_hidden)) => {
                let mut gate = vec![self.d_in];
                gate.extend_from_slice(gate_hidden);
                gate.push(e);
                let (gp, ga) = chain(&gate);
                Footprint {
                    parameters: (e as u128).saturating_mul(p).saturating_add(gp),
                    activations: (e as u128).saturating_mul(a).saturating_add(ga),
                }
            }
        }
    }
}

/// The widths of an MLP's layers, [d_in, hidden…, d_out], read from its weights; the error
/// names the first layer that does not take the previous one's output.
fn chain_of(name: &str, p: &mlp::Params<f32>) -> Result<Vec<usize>> {
    let first = p.layers.first().ok_or_else(|| Error::bad_value(&format!("{name} layers"), 0, "must be at least 1"))?;
    let mut sizes = vec![first.w.nrows()];
    for (j, l) in p.layers.iter().enumerate() {
        let d_in = *sizes.last().expect("at least d_in");
        linear_shape(&format!("{name}layers.{j}"), l, d_in, l.w.ncols(), "each layer reads the previous one's output")?;
        sizes.push(l.w.ncols());
    }
    dropout(&format!("{name}dropout"), p.dropout)?;
    Ok(sizes)
}

impl Validate for Classifier<f32> {
    fn validate(&self, memory: u64) -> Result<()> {
        match self {
            Classifier::Mlp(p) => {
                let sizes = chain_of("", p)?;
                let sizes = ClassifierSizes {
                    d_in: sizes[0],
                    hidden: &sizes[1..sizes.len() - 1],
                    classes: sizes[sizes.len() - 1],
                    moe: None,
                };
                sizes.check_fits(1, false, memory)
            }
            Classifier::Moe(p) => {
                let gate = chain_of("gate.", &p.gate)?;
                if p.experts.is_empty() {
                    return Err(Error::bad_value("experts", 0, "an MoE needs at least one expert"));
                }
                count("experts", p.experts.len(), gate[gate.len() - 1], "the gate's outputs")?;
                let first = chain_of("experts.0.", &p.experts[0])?;
                for (e, expert) in p.experts.iter().enumerate().skip(1) {
                    let sizes = chain_of(&format!("experts.{e}."), expert)?;
                    if sizes != first {
                        return Err(Error::bad_value(
                            &format!("experts.{e}"),
                            format!("widths {sizes:?}"),
                            &format!("every expert must have expert 0's widths {first:?}"),
                        ));
                    }
                }
                if gate[0] != first[0] {
                    return Err(Error::bad_value(
                        "gate.layers.0.w",
                        format!("{} inputs", gate[0]),
                        &format!("the experts read {} features", first[0]),
                    ));
                }
                let sizes = ClassifierSizes {
                    d_in: first[0],
                    hidden: &first[1..first.len() - 1],
                    classes: first[first.len() - 1],
                    moe: Some((p.experts.len(), &gate[1..gate.len() - 1])),
                };
                sizes.check_fits(1, false, memory)
            }
        }
    }
}

impl moe_classifier::Config {
    /// [`Self::validate`], the router's width, then the size bound for `batch` rows.
    pub fn check_fits(&self, batch: usize, training: bool, memory: u64) -> Result<()> {
        self.validate()?;
        if let Some(h) = self.router_hidden {
            size("router_hidden", h, MAX_WIDTH)?;
        }
        let sizes = ClassifierSizes { d_in: self.d_in, hidden: &self.hidden, classes: self.classes, moe: None };
        let mut fp = sizes.footprint(batch);
        fp.parameters = fp.parameters.saturating_mul(self.n_experts as u128);
        fp.activations = fp.activations.saturating_mul(self.n_experts as u128);
        size("d_in", self.d_in, MAX_WIDTH)?;
        for &w in &self.hidden {
            size("hidden", w, MAX_WIDTH)?;
        }
        size("n_experts", self.n_experts, MAX_EXPERTS)?;
        let what = format!(
            "d_in {}, hidden {:?}, classes {}, {} experts",
            self.d_in, self.hidden, self.classes, self.n_experts
        );
        fp.check(&what, training, memory)
    }
}

impl Validate for moe_classifier::Params<f32> {
    fn validate(&self, memory: u64) -> Result<()> {
        let c = &self.config;
        c.check_fits(1, false, memory)?;
        layer_config(
            &self.moe.config,
            &layer::Config { level: layer::Level::Token, gating: c.gating, passthrough: false },
        )?;
        router_shape("moe.router", &self.moe.router, c.d_in, c.router_hidden, c.n_experts, c.noisy)?;
        count("n_experts", self.moe.experts.len(), c.n_experts, "n_experts")?;
        let mut sizes = vec![c.d_in];
        sizes.extend_from_slice(&c.hidden);
        sizes.push(c.classes);
        for (e, expert) in self.moe.experts.iter().enumerate() {
            match expert {
                Expert::Mlp(m) => mlp_shape(&format!("moe.experts.{e}.mlp"), m, &sizes, "d_in, hidden, classes")?,
                Expert::Stack(_) => {
                    return Err(Error::bad_value(
                        &format!("moe.experts.{e}"),
                        "a stack",
                        "the classifier's experts are MLPs",
                    ))
                }
            }
        }
        Ok(())
    }
}
