//! Interventions on a trained MoE language model, each checked by its effect: what trains,
//! what stays bit-for-bit, and where the tokens go.

use tinymoe::data::batch::Batches;
use tinymoe::data::corpora::{self, Domain};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::init;
use tinymoe::engine::optim::{Kind, Rule, Schedule};
use tinymoe::engine::params::Tensors;
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::moe::expert::Expert;
use tinymoe::moe::interventions::{add_expert, freeze_all_but, train_only_expert_and_router, train_only_router};
use tinymoe::moe::layer::Level;
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::{Gating, Intervention, Strategy};
use tinymoe::train::{self, MoeTraining};

const PAD: usize = 256;

fn config() -> moe_lm::Config {
    moe_lm::Config {
        vocab: 257,
        max_seq: 48,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 3,
        expert: ExpertKind::Mlp { hidden: 64 },
        router_hidden: None,
        noisy: false,
        level: Level::Token,
        // Switch-style top-1 (gate = the chosen expert's full-softmax probability), so the
        // router learns from the LM loss too.
        gating: Gating { strategy: Strategy::TopKProbs(1), capacity_factor: None },
        router_losses: RouterLossConfig::paper(),
        domain_loss: None,
        bidirectional_experts: false,
    }
}

fn texts(domains: &[Domain], per: usize, seed: u64) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (label, &d) in domains.iter().enumerate() {
        for t in corpora::generate(d, per, seed) {
            seqs.push(Bytes.encode(&t));
            labels.push(label);
        }
    }
    (seqs, labels)
}

fn train_cfg(rules: Vec<Rule>, epochs: usize) -> train::Config {
    train::Config {
        epochs,
        batch_size: 8,
        lr: 3e-3,
        schedule: Schedule::Constant,
        optimizer: Kind::adam(),
        clip: Some(1.0),
        seed: 5,
        rules,
    }
}

fn fit(model: &mut moe_lm::Params<f32>, data: &(Vec<Vec<usize>>, Vec<usize>), cfg: &train::Config, moe: &MoeTraining) {
    let batches = Batches::new(&data.0, &data.1, 40, PAD, 8).unwrap();
    train::fit_moe_lm(model, &batches, &batches, cfg, moe, &mut |_| {}, &mut |_, _| Ok(())).unwrap();
}

fn base_model() -> moe_lm::Params<f32> {
    moe_lm::init(config(), &mut init::rng(1))
}

/// Names of the tensors that differ between two models.
fn changed(a: &moe_lm::Params<f32>, b: &moe_lm::Params<f32>) -> Vec<String> {
    a.tensors().into_iter().zip(b.tensors()).filter(|((_, x), (_, y))| x != y).map(|((n, _), _)| n).collect()
}

#[test]
fn freezing_all_but_one_expert_trains_only_that_expert_among_the_experts() {
    let data = texts(&Domain::E2[..3], 12, 1);
    let before = base_model();
    let mut model = before.clone();
    fit(&mut model, &data, &train_cfg(freeze_all_but("moe", 3, 1), 1), &MoeTraining::default());
    let moved = changed(&before, &model);
    assert!(moved.iter().all(|n| !n.starts_with("moe.experts.0") && !n.starts_with("moe.experts.2")), "{moved:?}");
    assert!(moved.iter().any(|n| n.starts_with("moe.experts.1")));
    assert!(moved.iter().any(|n| n.starts_with("moe.router")));
    assert!(moved.iter().any(|n| n.starts_with("embed")));
}

#[test]
fn training_only_the_router_moves_the_routing_and_nothing_else() {
    let data = texts(&Domain::E2[..3], 12, 2);
    let before = base_model();
    let mut model = before.clone();
    fit(&mut model, &data, &train_cfg(train_only_router("moe"), 2), &MoeTraining::default());
    let moved = changed(&before, &model);
    assert!(!moved.is_empty() && moved.iter().all(|n| n.starts_with("moe.router")), "{moved:?}");
    let val = Batches::new(&data.0, &data.1, 40, PAD, 8).unwrap();
    let a = train::evaluate_moe_lm(&before, &val, 3, 8, None);
    let b = train::evaluate_moe_lm(&model, &val, 3, 8, None);
    assert_ne!(a.top_share, b.top_share, "the router trained, so the routing changed");
}

#[test]
fn switching_an_expert_off_at_inference_reroutes_its_tokens() {
    let data = texts(&Domain::E2[..3], 12, 3);
    let mut model = base_model();
    fit(&mut model, &data, &train_cfg(vec![], 1), &MoeTraining::default());
    let val = Batches::new(&data.0, &data.1, 40, PAD, 8).unwrap();
    let on = train::evaluate_moe_lm(&model, &val, 3, 8, None);
    let iv = Intervention { disabled: vec![0], ..Intervention::default() };
    let off = train::evaluate_moe_lm(&model, &val, 3, 8, Some(&iv));
    assert!(on.top_share.iter().any(|d| d[0] > 0.0), "expert 0 had tokens before");
    assert!(off.top_share.iter().all(|d| d[0] == 0.0));
    for shares in &off.top_share {
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9, "every token went to another expert");
    }
    assert_ne!(on.loss, off.loss);
    let forced =
        train::evaluate_moe_lm(&model, &val, 3, 8, Some(&Intervention { force: Some(2), ..Intervention::default() }));
    assert!(forced.top_share.iter().all(|d| d == &vec![0.0, 0.0, 1.0]));
}

#[test]
fn steering_kept_on_during_training_starves_the_other_experts() {
    // An offset of +1000 on expert 0's log-probability is a force: with it on in training,
    // experts 1 and 2 never receive a token, so they never receive a gradient either.
    let data = texts(&Domain::E2[..3], 12, 4);
    let before = base_model();
    let mut model = before.clone();
    let moe = MoeTraining {
        intervention: Intervention { offsets: Some(vec![1000.0, 0.0, 0.0]), ..Intervention::default() },
        ..MoeTraining::default()
    };
    fit(&mut model, &data, &train_cfg(vec![], 1), &moe);
    let moved = changed(&before, &model);
    assert!(moved.iter().any(|n| n.starts_with("moe.experts.0")));
    assert!(moved.iter().all(|n| !n.starts_with("moe.experts.1") && !n.starts_with("moe.experts.2")), "{moved:?}");
}

#[test]
fn a_new_expert_for_a_new_domain_trains_alone_with_the_router() {
    // Top-2, so a newcomer can enter as a second choice: under top-1 a fresh expert whose
    // router column starts below the trained ones is never chosen, and so never trains.
    let old = texts(&Domain::E2[..3], 12, 6);
    let cfg2 =
        moe_lm::Config { gating: Gating { strategy: Strategy::TopKProbs(2), capacity_factor: None }, ..config() };
    let mut model: moe_lm::Params<f32> = moe_lm::init(cfg2, &mut init::rng(1));
    fit(&mut model, &old, &train_cfg(vec![], 1), &MoeTraining::default());
    let trained = model.clone();
    let cfg = model.config;
    let mut rng = init::rng(7);
    let new_expert =
        Expert::mlp(&[cfg.d_model, 64, cfg.d_model], tinymoe::engine::layers::Activation::GeluTanh, 0.0, &mut rng);
    let e = add_expert(&mut model.moe, new_expert, &mut rng);
    model.config.n_experts = 4;
    assert_eq!(e, 3);
    let names: Vec<String> = model.tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"moe.experts.3.mlp.layers.0.w".to_string()));
    assert_eq!(model.moe.router.net.layers[0].w.ncols(), 4);
    // The new domain (science) only; train the new expert and the router.
    let new = texts(&[Domain::Science], 24, 8);
    let new_val = Batches::new(&new.0, &new.1, 40, PAD, 8).unwrap();
    let before = train::evaluate_moe_lm(&model, &new_val, 1, 8, None);
    let grown = model.clone();
    let mut cfg = train_cfg(train_only_expert_and_router("moe", 3), 6);
    cfg.lr = 1e-2;
    fit(&mut model, &new, &cfg, &MoeTraining::default());
    let after = train::evaluate_moe_lm(&model, &new_val, 1, 8, None);
    let moved = changed(&grown, &model);
    assert!(moved.iter().all(|n| n.starts_with("moe.router") || n.starts_with("moe.experts.3")), "{moved:?}");
    assert!(moved.iter().any(|n| n.starts_with("moe.experts.3")));
    // The old experts are exactly the trained ones.
    for (i, (a, b)) in trained.moe.experts.iter().zip(&model.moe.experts).enumerate() {
        assert_eq!(a, b, "old expert {i} changed");
    }
    assert!(after.loss < before.loss, "new-domain loss {:.3} → {:.3}", before.loss, after.loss);
    let share = |m: &moe_lm::Params<f32>| {
        let b = new_val.batch(&(0..24).collect::<Vec<_>>());
        let r = moe_lm::routed(m, b.ids.view(), b.targets.view(), None, Default::default());
        r.chosen.iter().filter(|c| c.contains(&3)).count() as f64
            / r.chosen.iter().filter(|c| !c.is_empty()).count() as f64
    };
    let (s0, s1) = (share(&grown), share(&model));
    eprintln!(
        "science tokens whose top-2 includes the new expert: {s0:.3} → {s1:.3} (top-1 share {:.3} → {:.3})",
        before.top_share[0][3], after.top_share[0][3]
    );
    assert!(s1 > s0 + 0.2, "the router learned to send the new domain to the new expert");
}
