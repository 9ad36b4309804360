//! Run functions for the MoE routing pieces: the router, the top-k decision, and the two router
//! losses of `moe::losses` (Switch load balancing and z-loss).
//!
//! Units are rows: logits `[..., n_experts]` are folded into `[m, n_experts]`, and the
//! optional mask `[...]` (1 = real unit, 0 = padding) into m entries. Routing is evaluated
//! without noise, capacity limits or interventions: those are training-time or per-call
//! choices, while what a port must reproduce is the deterministic gate and its backward.

use super::ctx::{rows, unfold};
use super::{Ctx, Outputs};
use crate::engine::layers::{mlp, Activation, Mode};
use crate::error::{Error, Result};
use crate::moe::routing::{self, Decision, Gating, Intervention};
use crate::moe::{losses, router};
use ndarray::{Array1, Array2, ArrayD, IxDyn};

/// The mask as one entry per unit (all real if there is none).
fn units_mask(c: &mut Ctx, m: usize) -> Result<Option<Array1<u8>>> {
    let mask = c.mask::<IxDyn>("mask")?;
    Ok(mask.map(|mask| {
        let flat: Array1<u8> = mask.iter().copied().collect();
        debug_assert_eq!(flat.len(), m, "the table ties the mask to the logits' leading axes");
        flat
    }))
}

/// `--k`, at least 1.
fn top_k(c: &Ctx) -> Result<usize> {
    let k: usize = c.setting("--k", c.flags().k)?;
    if k == 0 {
        return Err(Error::bad_value("--k", k, "must be at least 1"));
    }
    Ok(k)
}

/// The top-k decision for the rows of `logits`, padding rows choosing nothing.
fn decide(logits: &Array2<f64>, mask: Option<&Array1<u8>>, k: usize) -> Decision<f64> {
    let real: Vec<bool> = match mask {
        Some(m) => m.iter().map(|&v| v != 0).collect(),
        None => vec![true; logits.nrows()],
    };
    routing::decide(logits.view(), &real, Gating::top_k(k), &Intervention::none(), None)
}

pub fn run_router(c: &mut Ctx) -> Result<Outputs> {
    let layers = super::layers::mlp_layers(c, "net.layers.{i}.w", "net.layers.{i}.b", &[])?;
    c.set_var("L", layers.len());
    let p = router::Params { net: mlp::Params { layers, act: Activation::Relu, dropout: 0.0 }, noise: None };
    let x = c.input("x")?;
    let dy = c.dy()?;
    let (z, _h, cache) = router::forward(&p, rows(&x).view(), &mut Mode::Eval);
    // dy is ∂L/∂z; with no noise the routing logits h are z, so nothing arrives through h.
    let dh = Array2::zeros(z.raw_dim());
    let (dx, g) = router::backward(&p, &cache, rows(&dy).view(), dh.view());
    let lead = c.lead();
    let mut out = Outputs::default();
    out.push("y", unfold(z, &lead));
    out.push("dx", unfold(dx, &lead));
    out.grads(&g);
    Ok(out)
}

pub fn run_top_k(c: &mut Ctx) -> Result<Outputs> {
    let k = top_k(c)?;
    let logits = rows(&c.input("logits")?);
    let mask = units_mask(c, logits.nrows())?;
    let dy = c.dy()?;
    let d = decide(&logits, mask.as_ref(), k);
    let dx = routing::backward(&d, rows(&dy).view());
    let lead = c.lead();
    let mut out = Outputs::default();
    out.push("y", unfold(d.gates, &lead));
    out.push("dx", unfold(dx, &lead));
    Ok(out)
}

fn loss_outputs(c: &Ctx, loss: f64, dz: Array2<f64>) -> Outputs {
    let mut out = Outputs::default();
    out.push("loss", ArrayD::from_elem(IxDyn(&[]), loss));
    out.push("dx", unfold(dz, &c.lead()));
    out
}

pub fn run_switch_loss(c: &mut Ctx) -> Result<Outputs> {
    let alpha: f64 = c.setting("--coef", c.flags().coef)?;
    let k = top_k(c)?;
    let logits = rows(&c.input("logits")?);
    let mask = units_mask(c, logits.nrows())?;
    // f counts the top-k choices of these same logits: dispatch[u, e] = 1 if u chose e.
    let d = decide(&logits, mask.as_ref(), k);
    let mut dispatch = Array2::<f64>::zeros(logits.raw_dim());
    for (u, chosen) in d.chosen.iter().enumerate() {
        for &e in chosen {
            dispatch[[u, e]] = 1.0;
        }
    }
    let (loss, dz) = losses::switch_balance(logits.view(), dispatch.view(), mask.as_ref().map(|m| m.view()), alpha);
    Ok(loss_outputs(c, loss, dz))
}

pub fn run_z_loss(c: &mut Ctx) -> Result<Outputs> {
    let beta: f64 = c.setting("--coef", c.flags().coef)?;
    let logits = rows(&c.input("logits")?);
    let mask = units_mask(c, logits.nrows())?;
    let (loss, dz) = losses::z_loss(logits.view(), mask.as_ref().map(|m| m.view()), beta);
    Ok(loss_outputs(c, loss, dz))
}
