//! Naming a model's tensors, so generic code can walk them.
//!
//! Optimisers, gradient clipping, parameter groups, checkpoints and the gradient checker
//! all need "every tensor of this model" without knowing the model. This is the one trait
//! in the engine that exists for that reason: a params struct and its grads struct both
//! implement [`Tensors`], listing the same dotted names in the same order
//! (`"experts.0.layers.1.w"`), so the i-th gradient belongs to the i-th parameter and the
//! two lists can simply be zipped.

use crate::engine::Float;
use ndarray::{ArrayViewD, ArrayViewMutD};

/// A named tensor, read-only.
pub type Named<'a, F> = (String, ArrayViewD<'a, F>);
/// A named tensor, writable.
pub type NamedMut<'a, F> = (String, ArrayViewMutD<'a, F>);

/// A struct of named tensors: parameters, or their gradients.
pub trait Tensors<F: Float> {
    /// Every tensor with its dotted name, in a fixed order.
    fn tensors(&self) -> Vec<Named<'_, F>>;
    /// The same tensors in the same order, writable.
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, F>>;
}

/// Prefixes every name: `prefixed("fc1", [("w", …)])` → `[("fc1.w", …)]`.
pub fn prefixed<T>(prefix: &str, items: Vec<(String, T)>) -> Vec<(String, T)> {
    items.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)).collect()
}

/// The tensors of a list of children, named `prefix.0.…`, `prefix.1.…`.
pub fn list<'a, F: Float, T: Tensors<F>>(prefix: &str, items: &'a [T]) -> Vec<Named<'a, F>> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.extend(prefixed(&format!("{prefix}.{i}"), item.tensors()));
    }
    out
}

/// Writable twin of [`list`].
pub fn list_mut<'a, F: Float, T: Tensors<F>>(prefix: &str, items: &'a mut [T]) -> Vec<NamedMut<'a, F>> {
    let mut out = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        out.extend(prefixed(&format!("{prefix}.{i}"), item.tensors_mut()));
    }
    out
}

/// Names and shapes of every tensor, in order.
pub fn shapes<F: Float>(t: &dyn Tensors<F>) -> Vec<(String, Vec<usize>)> {
    t.tensors().into_iter().map(|(n, a)| (n, a.shape().to_vec())).collect()
}

/// Total number of scalars.
pub fn count<F: Float>(t: &dyn Tensors<F>) -> usize {
    t.tensors().iter().map(|(_, a)| a.len()).sum()
}

/// `dst += src`, tensor by tensor: how a model accumulates the fresh grads a layer's
/// backward returns, so that shared (tied) weights sum their gradients.
pub fn add_into<F: Float>(dst: &mut dyn Tensors<F>, src: &dyn Tensors<F>) {
    let src = src.tensors();
    let mut dst = dst.tensors_mut();
    assert_eq!(dst.len(), src.len(), "add_into: the two structs hold different tensor counts");
    for ((name, d), (_, s)) in dst.iter_mut().zip(src.iter()) {
        assert_eq!(d.shape(), s.shape(), "add_into: {name} shapes differ");
        *d += s;
    }
}

/// Sets every tensor to zero.
pub fn zero<F: Float>(t: &mut dyn Tensors<F>) {
    for (_, mut a) in t.tensors_mut() {
        a.fill(F::zero());
    }
}
