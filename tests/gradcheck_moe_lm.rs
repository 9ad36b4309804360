//! The MoE language model (src/models/moe_lm.rs) against central finite differences in f64:
//! every parameter, through the LM loss, the router losses and the domain classifier's
//! cross-entropy, with padding, for stack and MLP experts, token and sequence routing.

mod common;

use common::{rng, TOL};
use ndarray::{array, Array2};
use tinymoe::engine::gradcheck::{assert_reports, check_tensors, Options};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_lm::{self, Config, ExpertKind};
use tinymoe::moe::layer::{Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::Gating;

const PAD: usize = 0;

fn config(expert: ExpertKind, level: Level, gating: Gating) -> Config {
    Config {
        vocab: 11,
        max_seq: 5,
        d_model: 8,
        n_heads: 2,
        d_ff: 12,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 3,
        expert,
        router_hidden: Some(6),
        noisy: false,
        level,
        gating,
        router_losses: RouterLossConfig { balance: 0.5, z_loss: 0.1, token_entropy: 0.2, batch_entropy: -0.3 },
        domain_loss: None,
        bidirectional_experts: false,
    }
}

fn data() -> (Array2<usize>, Array2<usize>) {
    // Three sequences; the second and third end in padding (id 0).
    let ids = array![[3, 5, 7, 2, 9], [4, 4, 8, 0, 0], [10, 1, 6, 5, 0]];
    let targets = array![[5, 7, 2, 9, 1], [4, 8, 0, 0, 0], [1, 6, 5, 0, 0]];
    (ids, targets)
}

fn check(cfg: Config, domains: Option<&[usize]>, assigned: Option<&[Option<usize>]>) {
    let mut p: moe_lm::Params<f64> = moe_lm::init(cfg, &mut rng(3));
    let mut g = rng(4);
    for (name, mut t) in p.tensors_mut() {
        // Non-trivial LayerNorm gains and biases (they start at 1 and 0, equal across units,
        // which would tie the router's scores), and router weights big enough to have preferences.
        let scale = if name.starts_with("moe.router") { 3.0 } else { 1.0 };
        let noise: ndarray::ArrayD<f64> = common::uniform(t.raw_dim(), &mut g);
        t.zip_mut_with(&noise, |v, &n| *v = scale * *v + 0.1 * n);
    }
    let (ids, targets) = data();
    let route = Route { intervention: None, assigned };
    let loss = |p: &moe_lm::Params<f64>| {
        moe_lm::forward(p, ids.view(), targets.view(), domains, route, &mut Mode::Train(&mut rng(9))).0.total
    };
    let (losses, cache) =
        moe_lm::forward(&p, ids.view(), targets.view(), domains, route, &mut Mode::Train(&mut rng(9)));
    assert!(losses.router.total != 0.0, "the router losses take part");
    let grads = moe_lm::backward(&p, &cache);
    let mut params = p.clone();
    let reports = check_tensors(&mut params, &grads, loss, &Options { eps: 1e-6, max_coords: 24, seed: 1 });
    assert_eq!(reports.len(), p.tensors().len());
    assert_reports(&reports, TOL);
}

#[test]
fn stack_experts_dense_token_routing_with_every_router_loss() {
    check(config(ExpertKind::Stack { layers: 1 }, Level::Token, Gating::DENSE), None, None);
}

#[test]
fn mlp_experts_top2_token_routing_with_every_router_loss() {
    check(config(ExpertKind::Mlp { hidden: 10 }, Level::Token, Gating::top_k(2)), None, None);
}

#[test]
fn stack_experts_sequence_level_top1() {
    check(config(ExpertKind::Stack { layers: 1 }, Level::Sequence, Gating::top_k(1)), None, None);
}

#[test]
fn domain_classifier_routing_with_partial_teacher_forcing() {
    let cfg = Config {
        domain_loss: Some(0.7),
        bidirectional_experts: false,
        router_losses: RouterLossConfig { z_loss: 0.1, ..RouterLossConfig::default() },
        ..config(ExpertKind::Mlp { hidden: 10 }, Level::Sequence, Gating::top_k(1))
    };
    // Sequences 0 and 2 go to their domain's expert; sequence 1 to the classifier's choice.
    check(cfg, Some(&[2, 0, 1]), Some(&[Some(2), None, Some(1)]));
}

#[test]
fn bidirectional_stack_experts_top2_token_routing() {
    let cfg = Config {
        bidirectional_experts: true,
        ..config(ExpertKind::Stack { layers: 1 }, Level::Token, Gating::top_k(2))
    };
    check(cfg, None, None);
}

/// What the bidirectional arm changes: with causal experts the logits at position t do not
/// depend on the token at t + 1 (the one t predicts); with bidirectional experts they do.
#[test]
fn a_causal_expert_cannot_see_its_target_and_a_bidirectional_one_can() {
    for bidirectional in [false, true] {
        let cfg = Config {
            bidirectional_experts: bidirectional,
            ..config(ExpertKind::Stack { layers: 1 }, Level::Token, Gating::DENSE)
        };
        let p: moe_lm::Params<f64> = moe_lm::init(cfg, &mut rng(3));
        let (ids, targets) = data();
        let logits = |ids: &Array2<usize>| {
            let (_, c) = moe_lm::forward(&p, ids.view(), targets.view(), None, Route::default(), &mut Mode::Eval);
            c.logits(&p)
        };
        let before = logits(&ids);
        // Change the token at position 2 of the first sequence: position 1 predicts it.
        let mut changed = ids.clone();
        changed[[0, 2]] = 4;
        let after = logits(&changed);
        let seq = ids.ncols();
        let diff = |r: usize| (&before.row(r) - &after.row(r)).mapv(f64::abs).fold(0.0, |a: f64, &b| a.max(b));
        // Positions 0 and 1 come before the change.
        for t in 0..2 {
            if bidirectional {
                assert!(diff(t) > 1e-6, "bidirectional: position {t} should see the later token (Δ {})", diff(t));
            } else {
                assert_eq!(diff(t), 0.0, "causal: position {t} saw a later token");
            }
        }
        assert!(diff(2) > 1e-6, "position 2 reads the changed token itself");
        // Another sequence is untouched either way.
        assert_eq!(diff(seq), 0.0);
    }
}
