//! Run functions for one optimiser step: every array of `--params` is a parameter θ, updated
//! with the same-named gradient of `--grads` by the engine's `adam::update`, exactly as
//! `torch.optim.Adam` / `AdamW` update each tensor of a parameter group.
//!
//! The moments are named as in PyTorch's `optimizer.state[p]`: `exp_avg` (m) and
//! `exp_avg_sq` (v). They come from `--state` (`exp_avg.<name>`, `exp_avg_sq.<name>`) or start
//! at zero, and the updated ones are written beside the updated θ, ready for the next step.

use super::{Ctx, Outputs, Slot};
use crate::engine::optim::adam;
use crate::error::{Error, Result};
use ndarray::{ArrayD, Dimension};

/// The hyper-parameters from the flags (defaults from the table), each checked.
fn hyper(c: &Ctx, decoupled: bool) -> Result<adam::Hyper<f64>> {
    let f = c.flags();
    let lr: f64 = c.setting("--lr", f.lr)?;
    let beta1: f64 = c.setting("--beta1", f.beta1)?;
    let beta2: f64 = c.setting("--beta2", f.beta2)?;
    let eps: f64 = c.setting("--eps", f.eps)?;
    let weight_decay: f64 = c.setting("--weight-decay", f.weight_decay)?;
    let t: u64 = c.setting("--step", f.step)?;
    for (flag, v) in [("--lr", lr), ("--eps", eps), ("--weight-decay", weight_decay)] {
        if !v.is_finite() || v < 0.0 {
            return Err(Error::bad_value(flag, v, "must be a finite number ≥ 0"));
        }
    }
    for (flag, v) in [("--beta1", beta1), ("--beta2", beta2)] {
        if !(0.0..1.0).contains(&v) {
            return Err(Error::bad_value(flag, v, "must be in [0, 1)"));
        }
    }
    if t == 0 || t > i32::MAX as u64 {
        return Err(Error::bad_value("--step", t, "must be at least 1 (the first step is 1)"));
    }
    Ok(adam::Hyper { lr, beta1, beta2, eps, weight_decay, decoupled, t })
}

/// A name that is safe as a file name in --out: letters, digits, `.`, `_`, `-`.
fn file_safe(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
}

fn step(c: &mut Ctx, decoupled: bool) -> Result<Outputs> {
    let h = hyper(c, decoupled)?;
    let mut out = Outputs::default();
    for (name, theta, from) in c.all_params()? {
        if !file_safe(&name) {
            let problem = format!("array name `{name}` cannot be an output file name (use letters, digits, . _ -)");
            return Err(Error::BadFile { path: from.path, problem });
        }
        let g = c.member_like(Slot::Grads, &name, &from)?.expect("--grads is required, so a missing array is an error");
        let zeros = || ArrayD::<f64>::zeros(theta.raw_dim());
        let m = c.member_like(Slot::State, &format!("exp_avg.{name}"), &from)?.unwrap_or_else(zeros);
        let v = c.member_like(Slot::State, &format!("exp_avg_sq.{name}"), &from)?.unwrap_or_else(zeros);
        // v is a running mean of g²: a negative entry is a corrupt state (√v would be NaN).
        if let Some((at, bad)) = v.indexed_iter().find(|(_, &x)| x.is_nan() || x < 0.0) {
            let path = c.state_path().expect("v has negative entries only if it was read from --state");
            let problem = format!("array `exp_avg_sq.{name}`: {bad} at {:?}; a second moment is ≥ 0", at.slice());
            return Err(Error::BadFile { path, problem });
        }
        let (mut theta, mut m, mut v) = (theta, m, v);
        adam::update(
            theta.as_slice_mut().expect("Ctx hands out standard-layout arrays"),
            g.as_slice().expect("Ctx hands out standard-layout arrays"),
            m.as_slice_mut().expect("Ctx hands out standard-layout arrays"),
            v.as_slice_mut().expect("Ctx hands out standard-layout arrays"),
            h,
        );
        out.push(name.clone(), theta);
        out.push(format!("exp_avg.{name}"), m);
        out.push(format!("exp_avg_sq.{name}"), v);
    }
    Ok(out)
}

pub fn run_adam(c: &mut Ctx) -> Result<Outputs> {
    step(c, false)
}

pub fn run_adamw(c: &mut Ctx) -> Result<Outputs> {
    step(c, true)
}
