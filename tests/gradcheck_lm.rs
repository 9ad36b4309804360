//! The whole language-model loss against finite differences, for every parameter group and
//! the embeddings: untied and tied heads, with padding in the batch.

mod common;

use common::{rng, TOL};
use tinymoe::engine::gradcheck::{assert_reports, check_tensors, Options};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::params::Tensors;
use tinymoe::models::transformer_lm::{self as lm, Config};

fn config(tie_head: bool) -> Config {
    Config {
        vocab: 11,
        max_seq: 6,
        d_model: 8,
        n_heads: 2,
        d_ff: 12,
        n_layers: 2,
        dropout: 0.1,
        pad_id: Some(0),
        tie_head,
    }
}

fn check(tie_head: bool) {
    let mut g = rng(51);
    let mut p: lm::Params<f64> = lm::init(config(tie_head), &mut g);
    // Larger weights than GPT-2's 0.02 (std 0.16), so every path carries a visible gradient.
    for (_, mut t) in p.tensors_mut() {
        if t.ndim() == 2 {
            t.mapv_inplace(|v| v * 8.0);
        }
    }
    // Sequence 1 ends in padding (id 0), and so do its targets.
    let ids = ndarray::array![[3, 5, 7, 2, 9], [4, 4, 8, 0, 0]];
    let targets = ndarray::array![[5, 7, 2, 9, 1], [4, 8, 0, 0, 0]];
    let loss = |p: &lm::Params<f64>| lm::forward(p, ids.view(), targets.view(), &mut Mode::Train(&mut rng(3))).0;
    let (_, cache) = lm::forward(&p, ids.view(), targets.view(), &mut Mode::Train(&mut rng(3)));
    let grads = lm::backward(&p, &cache);
    if !tie_head {
        assert!(grads.embed.dtok.row(0).iter().all(|&v| v == 0.0), "the padding row gets no gradient");
    }
    // ε = 3e-5, not the default 1e-4: with these enlarged weights the loss is curved enough that
    // the O(ε²) truncation error of central differences reaches 8e-7 at 1e-4 (1.7e-7 here).
    let reports = check_tensors(&mut p, &grads, loss, &Options { max_coords: 40, eps: 3e-5, ..Options::default() });
    let expected = 2 + 2 * 16 + 2 + if tie_head { 0 } else { 2 };
    assert_eq!(reports.len(), expected);
    assert_reports(&reports, TOL);
}

#[test]
fn lm_loss_gradients_match_finite_differences() {
    check(false);
}

#[test]
fn tied_head_lm_loss_gradients_match_finite_differences() {
    check(true);
}

#[test]
fn padding_targets_do_not_change_the_loss() {
    let p: lm::Params<f64> = lm::init(config(false), &mut rng(52));
    let ids = ndarray::array![[3, 5, 7, 0, 0]];
    let short = lm::forward(&p, ids.view(), ndarray::array![[5, 7, 2, 0, 0]].view(), &mut Mode::Eval).0;
    // The loss is a mean over the three real targets; under the causal mask the trailing
    // padding cannot affect earlier positions either.
    let ids3 = ndarray::array![[3, 5, 7]];
    let three = lm::forward(&p, ids3.view(), ndarray::array![[5, 7, 2]].view(), &mut Mode::Eval).0;
    assert!((short - three).abs() < 1e-12, "{short} vs {three}");
}
