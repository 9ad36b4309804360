//! Partial loading (`tinymoe::transplant`): one part of a trained model — a block, the
//! embedding — goes into another model by name, from memory or from a checkpoint file, bit for
//! bit; anything that does not fit is listed all at once, naming tensors and both shapes, and
//! the destination is left untouched.

mod common;

use common::rng;
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use tinymoe::checkpoint::{self, NamedTensors, Trained};
use tinymoe::engine::layers::transformer_block as block;
use tinymoe::engine::optim::{Kind, Optimizer};
use tinymoe::engine::params::{list, list_mut, Named, NamedMut, Tensors};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::transplant::{copy_part, load_part, parts, suffix};
use tinymoe::Error;

fn config(d_model: usize, n_layers: usize) -> Config {
    Config {
        vocab: 24,
        max_seq: 8,
        d_model,
        n_heads: 2,
        d_ff: 2 * d_model,
        n_layers,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    }
}

/// A 2-block LM after a few Adam steps on a fixed batch: every weight has moved away from its
/// initial value, so a copy that kept the destination's own values would show.
fn trained(d_model: usize) -> lm::Params<f32> {
    use tinymoe::engine::layers::Mode;
    let mut model = lm::init::<f32>(config(d_model, 2), &mut rng(11));
    let mut opt = Optimizer::new(Kind::adam(), &[], &model);
    let ids = ndarray::Array2::from_shape_fn((2, 8), |(b, t)| (3 * b + 5 * t) % 24);
    let targets = ndarray::Array2::from_shape_fn((2, 8), |(b, t)| (3 * b + 5 * t + 1) % 24);
    for _ in 0..3 {
        let (_, cache) = lm::forward(&model, ids.view(), targets.view(), &mut Mode::Eval);
        let grads = lm::backward(&model, &cache);
        opt.step(&mut model, &grads, 1e-2);
    }
    model
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-partial-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves `model` the way `tinymoe train lm` does: with (here, a stand-in) training state.
fn save(dir: &Path, model: &lm::Params<f32>) -> PathBuf {
    let path = dir.join("model.ckpt");
    let saved = Trained { model: model.clone(), state: Some(vec![1.5f32; 64]) };
    checkpoint::save(&path, "transformer_lm", &model.config, &saved, serde_json::json!({})).unwrap();
    path
}

#[test]
fn block_0_of_a_trained_lm_goes_into_block_1_of_another_bit_for_bit() {
    let dir = scratch("block");
    let src = trained(16);
    let path = save(&dir, &src);
    let mut dst = lm::init::<f32>(config(16, 2), &mut rng(99));
    let before = dst.clone();
    let written = load_part(&path, "blocks.0", &mut dst, "blocks.1").unwrap();
    assert_eq!(written.len(), src.blocks[0].tensors().len());
    assert!(written.iter().all(|n| n.starts_with("blocks.1.")), "{written:?}");
    assert_eq!(dst.blocks[1], src.blocks[0], "every value, bit for bit");
    assert_ne!(src.blocks[0], before.blocks[1]);
    // Nothing else changed.
    assert_eq!(dst.blocks[0], before.blocks[0]);
    assert_eq!((&dst.embed, &dst.ln_f), (&before.embed, &before.ln_f));

    // The same from memory.
    let mut from_memory = before.clone();
    copy_part(&src, "blocks.0", &mut from_memory, "blocks.1").unwrap();
    assert_eq!(from_memory, dst);
}

#[test]
fn the_embedding_goes_into_a_model_with_more_blocks() {
    let dir = scratch("embed");
    let src = trained(16);
    let path = save(&dir, &src);
    let mut bigger = lm::init::<f32>(config(16, 4), &mut rng(5));
    let before = bigger.clone();
    let written = load_part(&path, "embed", &mut bigger, "embed").unwrap();
    assert_eq!(written, ["embed.tok", "embed.pos"]);
    assert_eq!(bigger.embed, src.embed);
    assert_eq!((&bigger.blocks, &bigger.ln_f), (&before.blocks, &before.ln_f));
    // And the whole stack of two blocks into the bigger model's first two, one block at a time.
    for b in 0..2 {
        load_part(&path, &format!("blocks.{b}"), &mut bigger, &format!("blocks.{b}")).unwrap();
    }
    assert_eq!(&bigger.blocks[..2], &src.blocks[..]);
    assert_eq!(&bigger.blocks[2..], &before.blocks[2..]);
}

/// A stand-in for a mixture: `experts.{e}.blocks.{l}.…`, the names the MoE layers use.
#[derive(Clone, PartialEq, Debug)]
struct Experts(Vec<Vec<block::Params<f32>>>);

impl Tensors<f32> for Experts {
    fn tensors(&self) -> Vec<Named<'_, f32>> {
        let mut out = Vec::new();
        for (e, blocks) in self.0.iter().enumerate() {
            out.extend(list(&format!("experts.{e}.blocks"), blocks));
        }
        out
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f32>> {
        let mut out = Vec::new();
        for (e, blocks) in self.0.iter_mut().enumerate() {
            out.extend(list_mut(&format!("experts.{e}.blocks"), blocks));
        }
        out
    }
}

#[test]
fn a_pretrained_block_becomes_one_expert_of_a_mixture() {
    let dir = scratch("expert");
    let src = trained(16);
    let path = save(&dir, &src);
    let mut g = rng(3);
    let mut moe = Experts((0..3).map(|_| vec![block::init(16, 2, 32, 0.0, 0.02, &mut g)]).collect());
    let before = moe.clone();
    let written = load_part(&path, "blocks.1", &mut moe, "experts.2.blocks.0").unwrap();
    assert!(written.contains(&"experts.2.blocks.0.attn.q.w".to_string()), "{written:?}");
    assert_eq!(moe.0[2][0], src.blocks[1]);
    assert_eq!(&moe.0[..2], &before.0[..2], "the other experts are untouched");
}

#[test]
fn a_prefix_that_selects_nothing_lists_what_there_is() {
    let dir = scratch("missing");
    let src = trained(16);
    let path = save(&dir, &src);
    let mut dst = lm::init::<f32>(config(16, 2), &mut rng(9));
    let before = dst.clone();
    let err = load_part(&path, "blocks.7", &mut dst, "blocks.0").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Checkpoint { .. }) && msg.contains("model.ckpt"), "{msg}");
    assert!(msg.contains("no tensor named \"blocks.7\""), "{msg}");
    assert!(msg.contains("(it has: embed, blocks.0, blocks.1, ln_f)"), "{msg}");
    // The destination side, in memory: no expert 5.
    let err = copy_part(&src, "blocks.0", &mut dst, "experts.5").unwrap_err().to_string();
    assert!(err.contains("the model has no tensor named \"experts.5\"") && err.contains("blocks.1, ln_f"), "{err}");
    assert_eq!(dst, before);
}

#[test]
fn a_shape_mismatch_names_every_tensor_and_both_shapes_and_writes_nothing() {
    let dir = scratch("shape");
    let src = trained(32);
    let path = save(&dir, &src);
    let mut dst = lm::init::<f32>(config(64, 2), &mut rng(9));
    let before = dst.clone();
    let err = load_part(&path, "blocks.0", &mut dst, "blocks.1").unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
    assert!(
        msg.contains("tensor blocks.0.attn.q.w has shape [32, 32], the model's blocks.1.attn.q.w is [64, 64]"),
        "{msg}"
    );
    assert!(msg.contains(
        "tensor blocks.0.mlp.layers.0.w has shape [32, 64], the model's blocks.1.mlp.layers.0.w is [64, 128]"
    ));
    // All of them, not the first: every tensor of a block depends on d_model.
    let n = src.blocks[0].tensors().len();
    assert!(msg.contains(&format!("{n} problem(s)")), "{msg}");
    assert_eq!(msg.matches("has shape").count(), n, "{msg}");
    assert_eq!(dst, before, "nothing was written");
}

/// Tensors from a list of (name, shape): values 0, 1, 2, … so copies are easy to follow.
fn named(items: &[(&str, &[usize])]) -> NamedTensors {
    NamedTensors(
        items
            .iter()
            .map(|&(n, shape)| {
                let len: usize = shape.iter().product();
                let t = ArrayD::from_shape_vec(IxDyn(shape), (0..len).map(|i| i as f32).collect()).unwrap();
                (n.to_string(), t)
            })
            .collect(),
    )
}

#[test]
fn names_missing_on_either_side_are_all_listed() {
    let src = named(&[("a.x", &[2]), ("a.y", &[3]), ("a.w", &[2, 2])]);
    let mut dst = named(&[("b.x", &[2]), ("b.z", &[3]), ("b.w", &[2, 3])]);
    let before = dst.clone();
    let err = copy_part(&src, "a", &mut dst, "b").unwrap_err().to_string();
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("the model has no tensor b.y to take a.y [3]"), "{err}");
    assert!(err.contains("nothing in the source fills b.z [3] (no a.z)"), "{err}");
    assert!(err.contains("tensor a.w has shape [2, 2], the model's b.w is [2, 3]"), "{err}");
    assert_eq!(dst, before);
}

#[test]
fn a_prefix_selects_whole_name_components_only() {
    assert_eq!(suffix("blocks.1", "blocks.1.attn.q.w"), Some("attn.q.w"));
    assert_eq!(suffix("blocks.1", "blocks.10.attn.q.w"), None);
    assert_eq!(suffix("blocks.1.", "blocks.1.ln1.weight"), Some("ln1.weight"), "a trailing dot is allowed");
    assert_eq!(suffix("head", "head"), Some(""));
    assert_eq!(suffix("", "embed.tok"), Some("embed.tok"));
    let src = named(&[("blocks.1.w", &[2]), ("blocks.10.w", &[5])]);
    let mut dst = named(&[("blocks.0.w", &[2])]);
    copy_part(&src, "blocks.1", &mut dst, "blocks.0").unwrap();
    assert_eq!(dst.0[0].1.as_slice().unwrap(), &[0.0, 1.0]);
    assert_eq!(
        parts(["embed.tok", "blocks.0.a", "blocks.0.b", "blocks.12.a", "experts.3.mlp.w", "ln_f.weight"]),
        ["embed", "blocks.0", "blocks.12", "experts.3", "ln_f"]
    );
}

#[test]
fn a_file_without_offsets_says_so() {
    // Files written before the header recorded tensor offsets: still loadable with their type,
    // but partial loading cannot place the values and says so.
    let dir = scratch("old");
    let src = trained(16);
    let good = std::fs::read(save(&dir, &src)).unwrap();
    let header_len = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
    let mut header: checkpoint::Header = serde_json::from_slice(&good[20..20 + header_len]).unwrap();
    for t in &mut header.tensors {
        t.offset = None;
    }
    let text = serde_json::to_vec_pretty(&header).unwrap();
    let mut bytes = good[..12].to_vec();
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&good[20 + header_len..good.len() - 4]);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let old = dir.join("old.ckpt");
    std::fs::write(&old, &bytes).unwrap();
    type Saved = Trained<lm::Params<f32>, Vec<f32>>;
    let (_, back): (_, Saved) = checkpoint::load(&old, "transformer_lm").unwrap();
    assert_eq!(back.model, src, "the typed load does not need offsets");
    let mut dst = lm::init::<f32>(config(16, 2), &mut rng(1));
    let err = load_part(&old, "embed", &mut dst, "embed").unwrap_err().to_string();
    assert!(err.contains("old.ckpt") && err.contains("no offset for tensor embed.tok"), "{err}");
}

#[test]
fn inspect_with_a_prefix_lists_exactly_the_tensors_a_part_holds() {
    use tinymoe::train::LmState;
    let dir = scratch("inspect");
    let src = trained(16);
    let lm_path = dir.join("lm.ckpt");
    let saved: Trained<lm::Params<f32>, LmState> = Trained { model: src.clone(), state: None };
    checkpoint::save(&lm_path, "transformer_lm", &src.config, &saved, serde_json::json!({})).unwrap();
    // A kind `tinymoe inspect` has no Rust type for: its tensors are read by name.
    let other = dir.join("other.ckpt");
    checkpoint::save(&other, "some_future_model", &src.config, &src, serde_json::json!({})).unwrap();
    let inspect = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tinymoe")).arg("inspect").args(args).output().unwrap()
    };
    for path in [&lm_path, &other] {
        let o = inspect(&[path.to_str().unwrap(), "--prefix", "blocks.1"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let listed: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("blocks.") || w.starts_with("embed") || w.starts_with("ln_f"))
            .collect();
        let expected: Vec<String> = src.blocks[1].tensors().into_iter().map(|(n, _)| format!("blocks.1.{n}")).collect();
        assert_eq!(listed, expected, "{out}");
        assert!(out.contains("L2 norm"), "statistics for every kind: {out}");
        assert!(out.contains("parts           embed, blocks.0, blocks.1, ln_f"), "{out}");
        let n: usize = src.blocks[1].tensors().iter().map(|(_, t)| t.len()).sum();
        assert!(out.contains(&format!("parameters under \"blocks.1\": {n} in 16 tensors")), "{out}");
    }
    let o = inspect(&[lm_path.to_str().unwrap(), "--prefix", "experts.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("lm.ckpt") && err.contains("(it has: embed, blocks.0, blocks.1, ln_f)"), "{err}");
}

/// E1's transplant: an expert's input and hidden layers (`layers.0`, `layers.1`) into slot 2
/// of a dense mixture, its output layer not; all or nothing across the two parts.
#[test]
fn copy_parts_moves_an_experts_first_layers_and_refuses_all_if_one_part_does_not_fit() {
    use tinymoe::models::classifier::{init_mlp, init_moe, Classifier};
    use tinymoe::transplant::copy_parts;
    let mut g = rng(5);
    let expert: Classifier<f32> = init_mlp(6, &[5, 4], 2, 0.0, &mut g);
    let mut moe: Classifier<f32> = init_moe(6, &[5, 4], 3, &[7], 4, 0.0, &mut g);
    let before = moe.clone();
    let written =
        copy_parts(&expert, &mut moe, &[("layers.0", "experts.2.layers.0"), ("layers.1", "experts.2.layers.1")])
            .expect("the first two layers fit");
    assert_eq!(
        written,
        ["experts.2.layers.0.w", "experts.2.layers.0.b", "experts.2.layers.1.w", "experts.2.layers.1.b"]
    );
    let get = |m: &Classifier<f32>, name: &str| {
        m.tensors().into_iter().find(|(n, _)| n == name).map(|(_, t)| t.to_owned()).expect(name)
    };
    assert_eq!(get(&moe, "experts.2.layers.1.w"), get(&expert, "layers.1.w"));
    for untouched in ["experts.2.layers.2.w", "experts.0.layers.0.w", "gate.layers.0.w"] {
        assert_eq!(get(&moe, untouched), get(&before, untouched), "{untouched}");
    }
    // The output layers differ (2 classes against 3): the second pair fails, so neither is copied.
    let mut fresh = before.clone();
    let e = copy_parts(&expert, &mut fresh, &[("layers.0", "experts.1.layers.0"), ("layers.2", "experts.1.layers.2")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing was copied") && e.contains("[4, 2]") && e.contains("[4, 3]"), "{e}");
    assert_eq!(fresh, before);
}
