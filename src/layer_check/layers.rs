//! Run functions for the layers and the loss: take the arrays (checked against the table),
//! call the engine's `forward` then `backward`, and name the results.
//!
//! Each reads its parameters first (they fix the dims), then the input, then dy, so a
//! mismatch is reported against the weights: "x.npy: shape [3, 5], but linear needs
//! x [..., d_in] with d_in = 4 (from p.npz[w])". Dropout is off throughout (eval mode).

use super::ctx::{rows, unfold};
use super::{Ctx, Outputs};
use crate::engine::layers::attention::{self, Mask};
use crate::engine::layers::{activation, embedding, layer_norm, linear, mlp, transformer_block};
use crate::engine::layers::{Activation, InputGrad, Mode};
use crate::engine::losses::cross_entropy;
use crate::engine::ops::softmax;
use crate::error::{Error, Result};
use crate::moe::mixture;
use ndarray::{Array2, ArrayD, Dimension, IxDyn};

/// A Linear's `{prefix}w` and `{prefix}b` (prefix `""`, `"q."`, `"attn.q."`, …).
fn linear_params(c: &mut Ctx, prefix: &str) -> Result<linear::Params<f64>> {
    Ok(linear::Params { w: c.param2(&format!("{prefix}w"))?, b: c.param1(&format!("{prefix}b"))? })
}

/// A LayerNorm's `{prefix}weight` and `{prefix}bias` (PyTorch's names), with `--eps`.
fn layer_norm_params(c: &mut Ctx, prefix: &str) -> Result<layer_norm::Params<f64>> {
    let eps: f64 = c.setting("--eps", c.flags().eps)?;
    if !eps.is_finite() || eps < 0.0 {
        return Err(Error::bad_value("--eps", eps, "must be a finite number ≥ 0"));
    }
    let gamma = c.param1(&format!("{prefix}weight"))?;
    let beta = c.param1(&format!("{prefix}bias"))?;
    Ok(layer_norm::Params { gamma, beta, eps })
}

/// `--heads`, which must divide d_model.
fn heads(c: &Ctx) -> Result<usize> {
    let heads: usize = c.setting("--heads", c.flags().heads)?;
    let d_model = c.dim("d_model");
    if heads == 0 || d_model % heads != 0 {
        let why = format!("d_model = {d_model} (from {}) must be divisible by it", c.dim_from("d_model"));
        return Err(Error::bad_value("--heads", heads, &why));
    }
    Ok(heads)
}

/// The Linear layers `template` (`layers.{i}.w`, with its `.b` twin) for i = 0, 1, … as long
/// as the .npz has them; `vars` fills the other placeholders (`{e}`).
pub(super) fn mlp_layers(c: &mut Ctx, w: &str, b: &str, vars: &[(&str, usize)]) -> Result<Vec<linear::Params<f64>>> {
    let mut layers = Vec::new();
    loop {
        let i = layers.len();
        let at: Vec<(&str, usize)> = vars.iter().copied().chain([("i", i)]).collect();
        // Layer 0 must exist: asking for it when absent reports it missing.
        if i > 0 && !c.has_param(&super::ctx::subst(w, &at)) {
            return Ok(layers);
        }
        let w = c.param_at(w, &at)?.into_dimensionality().expect("the table gives w two dims");
        let b = c.param_at(b, &at)?.into_dimensionality().expect("the table gives b one dim");
        layers.push(linear::Params { w, b });
    }
}

/// y and dx, unfolded back to the input's leading axes.
fn layer_outputs(c: &Ctx, y: Array2<f64>, dx: Array2<f64>) -> Outputs {
    let lead = c.lead();
    let mut out = Outputs::default();
    out.push("y", unfold(y, &lead));
    out.push("dx", unfold(dx, &lead));
    out
}

pub fn run_linear(c: &mut Ctx) -> Result<Outputs> {
    let p = linear_params(c, "")?;
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (y, cache) = linear::forward(&p, rows(&x).view());
    let (dx, g) = linear::backward(&p, &cache, rows(&dy).view());
    let mut out = layer_outputs(c, y, dx);
    out.grads(&g);
    Ok(out)
}

fn run_activation(c: &mut Ctx, act: Activation) -> Result<Outputs> {
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (y, cache) = activation::forward(act, rows(&x).view());
    let dx = activation::backward(act, &cache, rows(&dy).view());
    Ok(layer_outputs(c, y, dx))
}

pub fn run_relu(c: &mut Ctx) -> Result<Outputs> {
    run_activation(c, Activation::Relu)
}

pub fn run_gelu(c: &mut Ctx) -> Result<Outputs> {
    run_activation(c, Activation::GeluErf)
}

pub fn run_gelu_tanh(c: &mut Ctx) -> Result<Outputs> {
    run_activation(c, Activation::GeluTanh)
}

pub fn run_softmax(c: &mut Ctx) -> Result<Outputs> {
    let x = c.input("x")?;
    let dy = c.dy()?;
    let y = softmax::softmax(rows(&x).view());
    let dx = softmax::softmax_backward(y.view(), rows(&dy).view());
    Ok(layer_outputs(c, y, dx))
}

pub fn run_log_softmax(c: &mut Ctx) -> Result<Outputs> {
    let x = c.input("x")?;
    let dy = c.dy()?;
    let y = softmax::log_softmax(rows(&x).view());
    let dx = softmax::log_softmax_backward(y.view(), rows(&dy).view());
    Ok(layer_outputs(c, y, dx))
}

pub fn run_layer_norm(c: &mut Ctx) -> Result<Outputs> {
    let p = layer_norm_params(c, "")?;
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (y, cache) = layer_norm::forward(&p, rows(&x).view());
    let (dx, g) = layer_norm::backward(&p, &cache, rows(&dy).view());
    let mut out = layer_outputs(c, y, dx);
    out.grads(&g);
    Ok(out)
}

pub fn run_embedding(c: &mut Ctx) -> Result<Outputs> {
    let p = embedding::Params { tok: c.param2("tok")?, pos: c.param2("pos")? };
    let (ids, path) = c.input_ids("ids")?;
    let (vocab, max_seq, seq) = (c.dim("vocab"), c.dim("max_seq"), c.dim("seq"));
    if seq > max_seq {
        let problem = format!("seq = {seq} is longer than max_seq = {max_seq} (from {})", c.dim_from("max_seq"));
        return Err(Error::BadFile { path, problem });
    }
    let pad_id = c.flags().pad_id;
    if let Some(pad) = pad_id.filter(|&p| p >= vocab) {
        return Err(Error::bad_value("--pad-id", pad, &format!("must be below vocab = {vocab}")));
    }
    let mut ids_usize = Array2::<usize>::zeros((ids.shape()[0], ids.shape()[1]));
    for (at, &id) in ids.indexed_iter() {
        if id < 0 || id as usize >= vocab {
            let from = c.dim_from("vocab");
            let problem = format!("id {id} at {:?} is not in 0 … vocab − 1 (vocab = {vocab}, from {from})", at.slice());
            return Err(Error::BadFile { path, problem });
        }
        ids_usize[[at[0], at[1]]] = id as usize;
    }
    let dy = c.dy()?;
    let dy = dy.into_dimensionality().expect("the table gives dy three dims");
    let (y, cache) = embedding::forward(&p, ids_usize.view(), pad_id);
    let g = embedding::backward(&p, &cache, dy.view());
    let mut out = Outputs::default();
    out.push("y", y.into_dyn());
    out.grads(&g);
    Ok(out)
}

pub fn run_attention(c: &mut Ctx) -> Result<Outputs> {
    let (q, k) = (linear_params(c, "q.")?, linear_params(c, "k.")?);
    let (v, o) = (linear_params(c, "v.")?, linear_params(c, "o.")?);
    let p = attention::Params { q, k, v, o, n_heads: heads(c)? };
    let x = c.input("x")?;
    let key_padding = c.mask("mask")?;
    let dy = c.dy()?;
    let (batch, seq) = (c.dim("batch"), c.dim("seq"));
    let mask = Mask { causal: c.flags().causal, key_padding: key_padding.as_ref().map(|m| m.view()) };
    // [batch, seq, d_model] folded into [batch·seq, d_model] rows, grouped by sequence.
    let (y, cache) = attention::forward(&p, rows(&x).view(), batch, seq, mask);
    let (dx, g) = attention::backward(&p, &cache, rows(&dy).view());
    let mut out = Outputs::default();
    out.push("y", unfold(y, &[batch, seq]));
    out.push("dx", unfold(dx, &[batch, seq]));
    out.grads(&g);
    Ok(out)
}

pub fn run_block(c: &mut Ctx) -> Result<Outputs> {
    let act: Activation = c.setting("--act", c.flags().act)?;
    let ln1 = layer_norm_params(c, "ln1.")?;
    let (q, k) = (linear_params(c, "attn.q.")?, linear_params(c, "attn.k.")?);
    let (v, o) = (linear_params(c, "attn.v.")?, linear_params(c, "attn.o.")?);
    let attn = attention::Params { q, k, v, o, n_heads: heads(c)? };
    let ln2 = layer_norm_params(c, "ln2.")?;
    let layers = vec![linear_params(c, "mlp.layers.0.")?, linear_params(c, "mlp.layers.1.")?];
    let p = transformer_block::Params { ln1, attn, ln2, mlp: mlp::Params { layers, act, dropout: 0.0 } };
    let x = c.input("x")?;
    let key_padding = c.mask("mask")?;
    let dy = c.dy()?;
    let (batch, seq) = (c.dim("batch"), c.dim("seq"));
    let mask = Mask { causal: c.flags().causal, key_padding: key_padding.as_ref().map(|m| m.view()) };
    let (y, cache) = transformer_block::forward(&p, rows(&x).view(), batch, seq, mask, &mut Mode::Eval);
    let (dx, g) = transformer_block::backward(&p, &cache, rows(&dy).view());
    let mut out = Outputs::default();
    out.push("y", unfold(y, &[batch, seq]));
    out.push("dx", unfold(dx, &[batch, seq]));
    out.grads(&g);
    Ok(out)
}

pub fn run_mlp(c: &mut Ctx) -> Result<Outputs> {
    let act: Activation = c.setting("--act", c.flags().act)?;
    let layers = mlp_layers(c, "layers.{i}.w", "layers.{i}.b", &[])?;
    c.set_var("L", layers.len());
    let p = mlp::Params { layers, act, dropout: 0.0 };
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (y, cache) = mlp::forward(&p, rows(&x).view(), &mut Mode::Eval);
    let (dx, g) = mlp::backward(&p, &cache, rows(&dy).view(), InputGrad::Need);
    let mut out = layer_outputs(c, y, dx.expect("asked for dx"));
    out.grads(&g);
    Ok(out)
}

pub fn run_mixture(c: &mut Ctx) -> Result<Outputs> {
    let act: Activation = c.setting("--act", c.flags().act)?;
    let mut experts = Vec::new();
    loop {
        let e = experts.len();
        if e > 0 && !c.has_param(&format!("experts.{e}.layers.0.w")) {
            break;
        }
        let layers = mlp_layers(c, "experts.{e}.layers.{i}.w", "experts.{e}.layers.{i}.b", &[("e", e)])?;
        if let Some(first) = experts.first().filter(|p: &&mlp::Params<f64>| p.layers.len() != layers.len()) {
            let (n, n0) = (layers.len(), first.layers.len());
            let problem = format!("expert {e} has {n} layers, expert 0 has {n0} (every expert has the same sizes)");
            return Err(Error::BadFile { path: c.params_path(), problem });
        }
        experts.push(mlp::Params { layers, act, dropout: 0.0 });
    }
    let (n_experts, depth) = (experts.len(), experts[0].layers.len());
    c.set_var("L", depth);
    // The gate reads x (g0 = d0) and ends in one logit per expert (its last g = n_experts).
    let gate_depth = (0..).take_while(|i| c.has_param(&format!("gate.layers.{i}.w"))).count().max(1);
    c.bind("g0", c.dim("d0"), c.dim_from("d0"));
    let path = c.params_path();
    c.bind(&format!("g{gate_depth}"), n_experts, format!("the {n_experts} experts in {}", path.display()));
    let gate = mlp_layers(c, "gate.layers.{i}.w", "gate.layers.{i}.b", &[])?;
    let p = mixture::Params { gate: mlp::Params { layers: gate, act, dropout: 0.0 }, experts };
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (y, cache) = mixture::forward(&p, rows(&x).view(), &mut Mode::Eval);
    let (dx, g) = mixture::backward(&p, &cache, rows(&dy).view(), InputGrad::Need);
    let mut out = layer_outputs(c, y, dx.expect("asked for dx"));
    out.grads(&g);
    Ok(out)
}

pub fn run_cross_entropy(c: &mut Ctx) -> Result<Outputs> {
    let ignore: i64 = c.setting("--ignore-index", c.flags().ignore_index)?;
    let logits = c.input("logits")?;
    let (targets, path) = c.targets("targets")?;
    let classes = c.dim("classes");
    // The engine's ignored id is a usize; every ignored row gets one no class can have.
    const IGNORED: usize = usize::MAX;
    let mut t = Vec::with_capacity(targets.len());
    for (at, &target) in targets.indexed_iter() {
        if target == ignore {
            t.push(IGNORED);
        } else if target < 0 || target as usize >= classes {
            let from = c.dim_from("classes");
            let problem = format!(
                "target {target} at {:?} is neither a class (0 … {}, from {from}) nor --ignore-index {ignore}",
                at.slice(),
                classes - 1
            );
            return Err(Error::BadFile { path, problem });
        } else {
            t.push(target as usize);
        }
    }
    let z = rows(&logits);
    let (loss, cache) = cross_entropy::forward(z.view(), &t, Some(IGNORED));
    let dx = cross_entropy::backward(&cache);
    let mut out = Outputs::default();
    out.push("loss", ArrayD::from_elem(IxDyn(&[]), loss));
    out.push("dx", unfold(dx, &c.lead()));
    Ok(out)
}
