//! The evaluation of a domain-routed MoE LM (E5): the prefix router equals routing the
//! truncated prefix, the perplexities under each routing agree where they must, padding never
//! counts, and the classifier's tables are what hand counting gives.

use ndarray::{s, Array2};
use tinymoe::data::batch::Batches;
use tinymoe::data::corpora::Domain;
use tinymoe::data::tokenizer::Bytes;
use tinymoe::engine::init::{self, streams};
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::moe::layer::{Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::Gating;
use tinymoe::run::moe_lm::encode;
use tinymoe::train::domain_eval::{self, Classified, Routing};

const PAD: usize = 256;

fn config(expert: ExpertKind, level: Level) -> moe_lm::Config {
    moe_lm::Config {
        vocab: 257,
        max_seq: 24,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        dropout: 0.0,
        pad_id: Some(PAD),
        shared_layers: 1,
        n_experts: 4,
        expert,
        router_hidden: None,
        noisy: false,
        level,
        gating: Gating::top_k(1),
        router_losses: RouterLossConfig::paper(),
        domain_loss: Some(1.0),
        bidirectional_experts: false,
    }
}

fn model(expert: ExpertKind) -> moe_lm::Params<f32> {
    moe_lm::init::<f32>(config(expert, Level::Sequence), &mut init::stream(3, streams::INIT))
}

fn data() -> (Vec<Vec<usize>>, Vec<usize>) {
    let (mut seqs, labels) = encode(&Bytes, &Domain::E2, 3, 5);
    // One short sequence: 6 real tokens, the rest padding.
    seqs[1].truncate(7);
    (seqs, labels)
}

#[test]
fn the_prefix_router_equals_routing_the_truncated_prefix() {
    for expert in [ExpertKind::Mlp { hidden: 32 }, ExpertKind::Stack { layers: 1 }] {
        let m = model(expert);
        let (seqs, labels) = data();
        let full = Batches::new(&seqs, &labels, 24, PAD, 12).unwrap().batch(&(0..seqs.len()).collect::<Vec<_>>());
        let z = moe_lm::prefix_router_logits(&m, full.ids.view());
        for len in [1, 3, 6, 24] {
            let ids = full.ids.slice(s![.., ..len]).to_owned();
            let targets = full.targets.slice(s![.., ..len]).to_owned();
            let r = moe_lm::routed(&m, ids.view(), targets.view(), Some(&full.labels), Route::default());
            for b in 0..seqs.len() {
                let real = full.mask.row(b).iter().filter(|&&v| v == 1).count();
                // A sequence shorter than len is its whole self: the last real position.
                let at = len.min(real) - 1;
                for e in 0..4 {
                    let (want, got) = (r.logits[[b, e]], z[[b, at, e]]);
                    assert!(
                        (want - got).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{expert:?} len {len} seq {b}: {want} vs {got}"
                    );
                }
            }
        }
    }
}

/// Sets the router to always pick `expert`: its weights zero, its bias favouring one expert.
fn always(m: &mut moe_lm::Params<f32>, expert: usize) {
    for layer in &mut m.moe.router.net.layers {
        layer.w.fill(0.0);
        layer.b.fill(0.0);
    }
    m.moe.router.net.layers.last_mut().unwrap().b[expert] = 5.0;
}

#[test]
fn perplexities_agree_where_the_routing_agrees() {
    let mut m = model(ExpertKind::Mlp { hidden: 32 });
    always(&mut m, 2);
    let (seqs, labels) = data();
    let batches = Batches::new(&seqs, &labels, 24, PAD, 5).unwrap();
    let ppl = |r| domain_eval::domain_perplexity(&m, &batches, 4, r, 5);
    let (model_r, prefix, truth, wrong) =
        (ppl(Routing::Model), ppl(Routing::Prefix), ppl(Routing::True), ppl(Routing::Wrong));
    // Every prefix picks expert 2, as the whole sequence does.
    assert_eq!(model_r, prefix);
    // Domain 2's true expert is 2, and domain 1's wrong one ((1 + 1) mod 4).
    assert_eq!(truth[2], model_r[2]);
    assert_eq!(wrong[1], model_r[1]);
    assert_ne!(truth[0], model_r[0], "another expert gives another loss");
    // By hand for domain 0 under the true routing: exp(mean real-token loss of expert 0).
    let batch = batches.batch(&[0, 1, 2]);
    let route = Route { intervention: None, assigned: Some(&[Some(0), Some(0), Some(0)]) };
    let r = moe_lm::routed(&m, batch.ids.view(), batch.targets.view(), Some(&batch.labels), route);
    let real: Vec<f64> = r.token_loss.iter().zip(batch.mask.iter()).filter(|(_, &m)| m == 1).map(|(&l, _)| l).collect();
    let want = (real.iter().sum::<f64>() / real.len() as f64).exp();
    assert!((truth[0] - want).abs() < 1e-9 * want, "{} vs {want}", truth[0]);
    for p in [model_r, prefix, truth, wrong].iter().flatten() {
        assert!(p.is_finite() && *p > 1.0 && *p < 257.0 * 2.0, "{p}");
    }
}

#[test]
fn padding_changes_no_perplexity() {
    let m = model(ExpertKind::Mlp { hidden: 32 });
    let (seqs, labels) = data();
    let short = Batches::new(&seqs, &labels, 24, PAD, 4).unwrap();
    // The same sequences one at a time (no padding but their own) and in batches of 4.
    let one = Batches::new(&seqs, &labels, 24, PAD, 1).unwrap();
    for r in Routing::ALL {
        let (a, b) =
            (domain_eval::domain_perplexity(&m, &short, 4, r, 4), domain_eval::domain_perplexity(&m, &one, 4, r, 1));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4 * x, "{r:?}: {x} vs {y}");
        }
    }
}

#[test]
fn prefixes_longer_than_a_sequence_do_not_count_it() {
    let m = model(ExpertKind::Mlp { hidden: 32 });
    let (seqs, labels) = data();
    let batches = Batches::new(&seqs, &labels, 24, PAD, 5).unwrap();
    let points = domain_eval::accuracy_by_prefix(&m, &batches, &[1, 6, 7, 24], 5);
    let n = seqs.len();
    assert_eq!(points.iter().map(|p| p.sequences).collect::<Vec<_>>(), vec![n, n, n - 1, n - 1]);
    // At full length the prefix classifier is the whole-sequence classifier.
    let whole = domain_eval::classify(&m, &batches, 4, 5);
    let long: Vec<usize> = (0..n).filter(|&i| i != 1).collect();
    let right = long.iter().filter(|&&i| whole.predicted[i] == whole.labels[i]).count();
    assert!((points[3].accuracy - right as f64 / long.len() as f64).abs() < 1e-12);
    for p in &points {
        assert!((0.25..=1.0).contains(&p.confidence), "{p:?}");
    }
}

#[test]
fn the_classifier_tables_count_by_hand() {
    let c = Classified {
        labels: vec![0, 0, 0, 1, 1, 2],
        predicted: vec![0, 0, 1, 1, 0, 2],
        confidence: vec![0.95, 0.85, 0.4, 0.9, 0.55, 0.99],
        n_domains: 3,
    };
    assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
    assert!((c.domain_accuracy(0) - 2.0 / 3.0).abs() < 1e-12);
    assert!((c.mean_confidence(true) - (0.95 + 0.85 + 0.9 + 0.99) / 4.0).abs() < 1e-12);
    assert!((c.mean_confidence(false) - (0.4 + 0.55) / 2.0).abs() < 1e-12);
    let m = c.confusion(4);
    let want =
        Array2::from_shape_vec((3, 4), vec![2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            .unwrap();
    assert!((m - want).iter().all(|d| d.abs() < 1e-12));
    let h = c.confidence_histogram(2);
    // Right: 0.95, 0.85, 0.9, 0.99 all in the upper half; wrong: 0.4 low, 0.55 high.
    assert_eq!(h, vec![(0.25, 0.0, 0.5), (0.75, 1.0, 0.5)]);
}
