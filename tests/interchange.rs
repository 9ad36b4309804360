//! safetensors interchange: a model survives export → import bit-exactly, the file holds the
//! documented PyTorch names and [out, in] layouts, and a file that does not fit the model is an
//! error listing every missing name and misshapen tensor (with the model left untouched).

mod common;

use common::rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tinymoe::engine::params::Tensors;
use tinymoe::interchange::{export_safetensors, import_safetensors, mapping, pytorch_name, read_metadata};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::Error;

fn config() -> Config {
    Config {
        vocab: 20,
        max_seq: 6,
        d_model: 8,
        n_heads: 2,
        d_ff: 12,
        n_layers: 2,
        dropout: 0.0,
        pad_id: Some(0),
        tie_head: false,
    }
}

fn model(cfg: Config, seed: u64) -> lm::Params<f32> {
    lm::init(cfg, &mut rng(seed))
}

/// A fresh folder under the system temp dir, unique to this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-st-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every tensor's name and bit pattern: equal bits, not merely equal floats.
fn bits(m: &lm::Params<f32>) -> Vec<(String, Vec<u32>)> {
    m.tensors().into_iter().map(|(n, t)| (n, t.iter().map(|x| x.to_bits()).collect())).collect()
}

fn meta() -> BTreeMap<String, String> {
    BTreeMap::from([("tinymoe.kind".to_string(), "transformer_lm".to_string())])
}

#[test]
fn a_model_round_trips_through_safetensors_bit_exactly() {
    let dir = scratch("roundtrip");
    for tie_head in [false, true] {
        let cfg = Config { tie_head, ..config() };
        let path = dir.join(format!("tied-{tie_head}.safetensors"));
        let original = model(cfg, 1);
        export_safetensors(&path, &original, &meta()).unwrap();
        let mut fresh = model(cfg, 2);
        assert_ne!(bits(&fresh), bits(&original), "the fresh model starts different");
        let unused = import_safetensors(&path, &mut fresh).unwrap();
        assert!(unused.is_empty(), "every tensor in the file was used: {unused:?}");
        assert_eq!(bits(&fresh), bits(&original));
        assert_eq!(fresh, original);
        assert_eq!(read_metadata(&path).unwrap(), meta());
    }
}

#[test]
fn names_follow_pytorch_state_dict_conventions() {
    // (ours, ndim) → (PyTorch name, stored transposed?)
    let cases = [
        ("blocks.0.attn.q.w", 2, "blocks.0.attn.q.weight", true),
        ("blocks.0.attn.q.b", 1, "blocks.0.attn.q.bias", false),
        ("blocks.1.mlp.layers.0.w", 2, "blocks.1.mlp.layers.0.weight", true),
        ("blocks.0.ln1.weight", 1, "blocks.0.ln1.weight", false),
        ("ln_f.bias", 1, "ln_f.bias", false),
        ("embed.tok", 2, "embed.tok.weight", false),
        ("embed.pos", 2, "embed.pos.weight", false),
        ("head.w", 2, "head.weight", true),
        ("something.else", 3, "something.else", false),
    ];
    for (ours, ndim, pytorch, transposed) in cases {
        assert_eq!(pytorch_name(ours, ndim), (pytorch.to_string(), transposed), "{ours}");
    }
    let cfg = config();
    let names: BTreeMap<String, Vec<usize>> =
        mapping(&model(cfg, 1)).into_iter().map(|m| (m.pytorch, m.shape)).collect();
    let (d, ff, v) = (cfg.d_model, cfg.d_ff, cfg.vocab);
    assert_eq!(names["embed.tok.weight"], [v, d]);
    assert_eq!(names["embed.pos.weight"], [cfg.max_seq, d]);
    assert_eq!(names["blocks.1.attn.o.weight"], [d, d]);
    assert_eq!(names["blocks.0.mlp.layers.0.weight"], [ff, d], "nn.Linear(d_model, d_ff).weight is [d_ff, d_model]");
    assert_eq!(names["blocks.0.mlp.layers.1.weight"], [d, ff]);
    assert_eq!(names["head.weight"], [v, d]);
    assert_eq!(names["head.bias"], [v]);
    assert_eq!(names.len(), 2 + cfg.n_layers * 16 + 2 + 2);
}

#[test]
fn the_file_holds_linear_weights_as_out_by_in() {
    // Read the file with the safetensors crate itself, not through our importer.
    let dir = scratch("layout");
    let path = dir.join("m.safetensors");
    let m = model(config(), 5);
    export_safetensors(&path, &m, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        (t.shape().to_vec(), t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    };
    // ours: W [d_in, d_out]; file: Wᵀ [d_out, d_in], row-major, so file[o·d_in + i] = W[i, o].
    let w = &m.blocks[0].mlp.layers[0].w; // [d_model, d_ff]
    let (shape, values) = read("blocks.0.mlp.layers.0.weight");
    assert_eq!(shape, [w.ncols(), w.nrows()]);
    for i in 0..w.nrows() {
        for o in 0..w.ncols() {
            assert_eq!(values[o * w.nrows() + i].to_bits(), w[[i, o]].to_bits());
        }
    }
    // Embeddings are not transposed: row t is token t's vector.
    let (shape, values) = read("embed.tok.weight");
    assert_eq!(shape, m.embed.tok.shape());
    assert_eq!(values, m.embed.tok.iter().copied().collect::<Vec<_>>());
}

#[test]
fn a_file_that_does_not_fit_lists_missing_names_and_shape_mismatches() {
    let dir = scratch("misfit");
    let path = dir.join("small.safetensors");
    // One layer, d_ff 12: the target has two layers and d_ff 16.
    export_safetensors(&path, &model(Config { n_layers: 1, ..config() }, 1), &BTreeMap::new()).unwrap();
    let mut target = model(Config { d_ff: 16, ..config() }, 2);
    let before = bits(&target);
    let err = import_safetensors(&path, &mut target).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::BadFile { .. }), "{err:?}");
    assert!(msg.starts_with(&path.display().to_string()), "names the file: {msg}");
    assert!(msg.contains("missing") && msg.contains("blocks.1.attn.q.weight"), "{msg}");
    assert!(msg.contains("blocks.1.ln2.bias") && msg.contains("(ours: blocks.1.mlp.layers.1.w)"), "{msg}");
    assert!(msg.contains("tensor blocks.0.mlp.layers.0.weight has shape [12, 8], the model expects [16, 8]"), "{msg}");
    assert!(msg.contains("blocks.0.mlp.layers.0.bias has shape [12]"), "{msg}");
    assert!(!msg.contains("blocks.0.attn.q.weight"), "fitting tensors are not listed: {msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert_eq!(bits(&target), before, "a failed import changes nothing");
}

#[test]
fn importing_into_a_smaller_model_reports_the_unused_names() {
    let dir = scratch("unused");
    let path = dir.join("big.safetensors");
    let big = model(config(), 1);
    export_safetensors(&path, &big, &BTreeMap::new()).unwrap();
    let mut small = model(Config { n_layers: 1, ..config() }, 2);
    let unused = import_safetensors(&path, &mut small).unwrap();
    assert_eq!(unused.len(), 16, "block 1's tensors: {unused:?}");
    assert!(unused.iter().all(|n| n.starts_with("blocks.1.")), "{unused:?}");
    assert_eq!(small.blocks[0], big.blocks[0]);
}

#[test]
fn a_file_that_is_not_safetensors_is_an_error_naming_it() {
    let dir = scratch("notst");
    let path = dir.join("junk.safetensors");
    std::fs::write(&path, b"definitely not a safetensors file").unwrap();
    let err = import_safetensors(&path, &mut model(config(), 1)).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()) && err.contains("not a safetensors file"), "{err}");
    let missing = dir.join("nope.safetensors");
    let err = import_safetensors(&missing, &mut model(config(), 1)).unwrap_err().to_string();
    assert!(err.contains("nope.safetensors"), "{err}");
}
