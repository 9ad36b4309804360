//! The pre-LN transformer block and a stack of two: every parameter and the input against
//! finite differences, with causal + padding masks and dropout (fixed seed).

mod common;

use common::{rng, uniform, TOL};
use ndarray::Array2;
use tinymoe::engine::gradcheck::{assert_close, assert_reports, check_tensors, numeric_grad, Options};
use tinymoe::engine::layers::attention::Mask;
use tinymoe::engine::layers::transformer_block::{self as block};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::params::{Named, NamedMut, Tensors};

const BATCH: usize = 2;
const SEQ: usize = 4;
const D_MODEL: usize = 8;

/// A stack, wrapped so the gradient checker can walk it.
#[derive(Clone)]
struct Stack(Vec<block::Params<f64>>);
struct StackGrads(Vec<block::Grads<f64>>);

impl Tensors<f64> for Stack {
    fn tensors(&self) -> Vec<Named<'_, f64>> {
        block::stack_tensors(&self.0)
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f64>> {
        block::stack_tensors_mut(&mut self.0)
    }
}

impl Tensors<f64> for StackGrads {
    fn tensors(&self) -> Vec<Named<'_, f64>> {
        tinymoe::engine::params::list("blocks", &self.0)
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f64>> {
        tinymoe::engine::params::list_mut("blocks", &mut self.0)
    }
}

fn random_block(g: &mut tinymoe::engine::Rng, dropout: f64) -> block::Params<f64> {
    let mut p = block::init(D_MODEL, 2, 16, dropout, 0.3, g);
    // Non-trivial LayerNorm gains and biases, so their gradients are tested too.
    p.ln1.gamma = uniform(D_MODEL, g) + 1.0;
    p.ln1.beta = uniform(D_MODEL, g);
    p.ln2.gamma = uniform(D_MODEL, g) + 1.0;
    p.ln2.beta = uniform(D_MODEL, g);
    p
}

#[test]
fn block_backward_matches_finite_differences() {
    let mut g = rng(41);
    let p = random_block(&mut g, 0.2);
    let x: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let r: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let pad = ndarray::array![[1u8, 1, 1, 1], [1, 1, 0, 0]];
    let mask = Mask { causal: true, key_padding: Some(pad.view()) };
    let run = |p: &block::Params<f64>, x: &Array2<f64>| {
        block::forward(p, x.view(), BATCH, SEQ, mask, &mut Mode::Train(&mut rng(5)))
    };
    let (_, cache) = run(&p, &x);
    let (dx, grads) = block::backward(&p, &cache, r.view());
    assert_close("block dx", &dx, &numeric_grad(|x| (run(&p, x).0 * &r).sum(), &x, 1e-5), TOL);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, |p| (run(p, &x).0 * &r).sum(), &Options::default());
    assert_eq!(reports.len(), 2 + 8 + 2 + 4, "ln1, attn q/k/v/o, ln2, mlp two layers");
    assert_reports(&reports, TOL);
}

#[test]
fn stack_backward_matches_finite_differences() {
    let mut g = rng(42);
    let stack = Stack(vec![random_block(&mut g, 0.0), random_block(&mut g, 0.0)]);
    let x: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let r: Array2<f64> = uniform((BATCH * SEQ, D_MODEL), &mut g);
    let mask = Mask { causal: true, key_padding: None };
    let run = |s: &Stack, x: &Array2<f64>| block::forward_stack(&s.0, x.view(), BATCH, SEQ, mask, &mut Mode::Eval);
    let (_, caches) = run(&stack, &x);
    let (dx, grads) = block::backward_stack(&stack.0, &caches, r.view());
    assert_close("stack dx", &dx, &numeric_grad(|x| (run(&stack, x).0 * &r).sum(), &x, 1e-5), TOL);
    let mut params = stack.clone();
    let reports = check_tensors(&mut params, &StackGrads(grads), |s| (run(s, &x).0 * &r).sum(), &Options::default());
    assert_eq!(reports.len(), 32);
    assert!(reports[0].name.starts_with("blocks.0.ln1") && reports[16].name.starts_with("blocks.1.ln1"));
    assert_reports(&reports, TOL);
}
