//! Checkpoints: a model survives a save and load bit-exactly, and every kind of bad file —
//! empty, truncated, bit-flipped, foreign, from the future, of another kind — is a clear error
//! naming the file, never a panic or a silently wrong model.

mod common;

use common::rng;
use std::path::{Path, PathBuf};
use tinymoe::checkpoint::{self, MAGIC};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::Error;

fn model() -> lm::Params<f32> {
    let cfg = Config {
        vocab: 20,
        max_seq: 6,
        d_model: 8,
        n_heads: 2,
        d_ff: 12,
        n_layers: 2,
        dropout: 0.0,
        pad_id: Some(0),
        tie_head: false,
    };
    lm::init(cfg, &mut rng(3))
}

/// A fresh folder under the system temp dir, unique to this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn saved(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("model.ckpt");
    let m = model();
    checkpoint::save(&path, "transformer_lm", &m.config, &m, serde_json::json!({"tokenizer": "bytes"})).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn load(path: &Path) -> tinymoe::Result<lm::Params<f32>> {
    checkpoint::load(path, "transformer_lm").map(|(_, m)| m)
}

/// Writes `bytes` as a file and returns the load error's message (which must name the file).
fn error_for(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = load(&path).expect_err("a bad checkpoint must not load");
    let msg = err.to_string();
    assert!(msg.contains(name), "the error names the file: {msg}");
    assert!(matches!(err, Error::Checkpoint { .. }), "{msg}");
    msg
}

#[test]
fn a_model_round_trips_bit_exactly_with_its_header() {
    let dir = scratch("roundtrip");
    let (path, _) = saved(&dir);
    let (header, back): (_, lm::Params<f32>) = checkpoint::load(&path, "transformer_lm").unwrap();
    assert_eq!(back, model(), "every weight and the config come back bit for bit");
    assert_eq!(header.kind, "transformer_lm");
    assert_eq!(header.meta["tokenizer"], "bytes");
    assert_eq!(header.tensors, checkpoint::tensor_infos(&model()));
    assert!(header.tensors.iter().any(|t| t.name == "blocks.1.attn.q.w" && t.shape == [8, 8]));
    // No temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = scratch("bad");
    let (_, good) = saved(&dir);
    assert!(error_for(&dir, "empty.ckpt", &[]).contains("empty"));
    assert!(error_for(&dir, "magic.ckpt", b"PK\x03\x04 a zip file, not ours").contains("magic"));
    assert!(error_for(&dir, "short.ckpt", &good[..good.len() / 2]).contains("truncated"));
    assert!(error_for(&dir, "tiny.ckpt", &good[..10]).contains("truncated"));
    let mut flipped = good.clone();
    let i = good.len() - 100;
    flipped[i] ^= 0x10;
    assert!(error_for(&dir, "flipped.ckpt", &flipped).contains("checksum"));
    let mut future = good.clone();
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(error_for(&dir, "future.ckpt", &future).contains("version 99"));
    // Another kind of model.
    let path = dir.join("good.ckpt");
    std::fs::write(&path, &good).unwrap();
    let err = checkpoint::load::<lm::Params<f32>>(&path, "classifier").unwrap_err().to_string();
    assert!(err.contains("\"transformer_lm\"") && err.contains("good.ckpt"), "{err}");
    // A missing file is an io error naming it.
    let err = load(&dir.join("nope.ckpt")).unwrap_err().to_string();
    assert!(err.contains("nope.ckpt"), "{err}");
}

#[test]
fn the_loader_never_panics_on_truncations_and_byte_flips() {
    let dir = scratch("fuzz");
    let (_, good) = saved(&dir);
    assert_eq!(&good[..8], MAGIC);
    let path = dir.join("fuzzed.ckpt");
    let mut g = rng(99);
    use rand::Rng;
    for case in 0..600 {
        let mut bytes = good.clone();
        if case % 2 == 0 {
            bytes.truncate(g.gen_range(0..good.len()));
        } else {
            for _ in 0..g.gen_range(1..4) {
                let i = g.gen_range(0..bytes.len());
                bytes[i] ^= 1 << g.gen_range(0..8);
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| load(&path));
        match result {
            Err(_) => panic!("case {case}: the loader panicked"),
            Ok(Ok(m)) => panic!("case {case}: a damaged file loaded as a model ({} layers)", m.blocks.len()),
            Ok(Err(_)) => {}
        }
    }
}
