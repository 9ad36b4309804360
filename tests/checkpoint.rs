//! Checkpoints: a model survives a save and load bit-exactly, any tensor can be read back by
//! name without the model's type, and every kind of bad file — empty, truncated, bit-flipped,
//! foreign, from the future, of another kind, of another shape — is a clear error naming the
//! file and the problem, never a panic or a silently wrong model.

mod common;

use common::rng;
use std::path::{Path, PathBuf};
use tinymoe::checkpoint::{self, MAGIC};
use tinymoe::engine::params::Tensors;
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
    let names_shapes =
        |infos: &[checkpoint::TensorInfo]| infos.iter().map(|t| (t.name.clone(), t.shape.clone())).collect::<Vec<_>>();
    assert_eq!(names_shapes(&header.tensors), names_shapes(&checkpoint::tensor_infos(&model())));
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
    // CRC-32 detects every 1-, 2- and 3-bit error in messages up to 91,607 bits (Koopman 2002),
    // so below that size no bit-flip case can pass by luck.
    assert!(good.len() * 8 <= 91_607, "the fuzzed file grew to {} bytes", good.len());
    let mut g = rng(99);
    use rand::Rng;
    let started = std::time::Instant::now();
    let cases = 3_000;
    for case in 0..cases {
        let mut bytes = good.clone();
        if case % 2 == 0 {
            bytes.truncate(g.gen_range(0..good.len()));
        } else {
            for _ in 0..g.gen_range(1..4) {
                let i = g.gen_range(0..bytes.len());
                bytes[i] ^= 1 << g.gen_range(0..8);
            }
        }
        // A fresh name per case: rewriting one file in place makes ext4 flush it on every
        // close (its "replace via truncate" heuristic), which is slow on a busy disk.
        let path = dir.join(format!("fuzzed-{case}.ckpt"));
        std::fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| load(&path));
        match result {
            Err(_) => panic!("case {case}: the loader panicked"),
            Ok(Ok(m)) => panic!("case {case}: a damaged file loaded as a model ({} layers)", m.blocks.len()),
            Ok(Err(e)) => assert!(e.to_string().contains(&format!("fuzzed-{case}.ckpt")), "case {case}: {e}"),
        }
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "{cases} damaged copies ({} truncations, {} with 1–3 bit flips): every one refused, none panicked ({:.2} s)",
        cases / 2,
        cases / 2,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_tensor_can_be_read_by_name_without_the_model_type() {
    let dir = scratch("by-name");
    let (path, _) = saved(&dir);
    let m = model();
    let (header, all) = checkpoint::read_tensors(&path, |_| true).unwrap();
    assert!(header.tensors.iter().all(|t| t.offset.is_some()), "every offset recorded: {:?}", header.tensors);
    let expected: Vec<(String, Vec<f32>)> =
        m.tensors().into_iter().map(|(n, t)| (n, t.iter().copied().collect())).collect();
    let read: Vec<(String, Vec<f32>)> = all.0.iter().map(|(n, t)| (n.clone(), t.iter().copied().collect())).collect();
    assert_eq!(read, expected, "names, order and values, bit for bit");
    // Only the ones asked for.
    let (_, some) = checkpoint::read_tensors(&path, |n| n.starts_with("blocks.1.")).unwrap();
    assert_eq!(some.0.len(), m.blocks[1].tensors().len());
    // A run's checkpoint (model + training state): the offsets point at the model's weights.
    let run = dir.join("run.ckpt");
    let trained = checkpoint::Trained { model: m.clone(), state: Some(vec![7.0f32; 100]) };
    checkpoint::save(&run, "transformer_lm", &m.config, &trained, serde_json::json!({})).unwrap();
    let (_, back) = checkpoint::read_tensors(&run, |_| true).unwrap();
    assert_eq!(back.0.iter().map(|(n, t)| (n.clone(), t.iter().copied().collect())).collect::<Vec<_>>(), expected);
}

#[test]
fn a_header_whose_offsets_do_not_match_the_weights_is_refused() {
    let dir = scratch("offsets");
    let (_, good) = saved(&dir);
    // Rewrite the header with one offset moved by 4 bytes, and the checksum to match, as a
    // buggy writer would: loading must catch it, because the values are not where it says.
    let header_len = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
    let mut header: checkpoint::Header = serde_json::from_slice(&good[20..20 + header_len]).unwrap();
    let moved = &mut header.tensors[3];
    moved.offset = moved.offset.map(|o| o + 4);
    let name = moved.name.clone();
    let text = serde_json::to_vec_pretty(&header).unwrap();
    let mut bytes = good[..12].to_vec();
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&good[20 + header_len..good.len() - 4]);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let msg = error_for(&dir, "moved.ckpt", &bytes);
    assert!(msg.contains(&name) && msg.contains("not there"), "{msg}");
}

#[test]
fn a_checkpoint_of_another_shape_names_each_tensor_and_both_shapes() {
    let dir = scratch("shape");
    let (path, _) = saved(&dir);
    // The same architecture with d_model 16 instead of 8 (and d_ff 24 instead of 12).
    let cfg = Config { d_model: 16, d_ff: 24, ..model().config };
    let mut wider = lm::init::<f32>(cfg, &mut rng(4));
    let before = wider.clone();
    let err = tinymoe::transplant::load_part(&path, "", &mut wider, "").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Checkpoint { .. }), "{msg}");
    assert!(msg.contains("model.ckpt"), "names the file: {msg}");
    assert!(msg.contains("tensor blocks.0.attn.q.w has shape [8, 8], the model expects [16, 16]"), "{msg}");
    assert!(msg.contains("tensor embed.tok has shape [20, 8], the model expects [20, 16]"), "{msg}");
    // Every tensor whose shape differs is listed (all at once, not just the first), and only those.
    let small = model();
    for ((name, t), (_, w)) in small.tensors().iter().zip(wider.tensors()) {
        let listed = msg.contains(&format!("tensor {name} has shape"));
        assert_eq!(listed, t.shape() != w.shape(), "{name}: {msg}");
    }
    assert!(!msg.contains("tensor head.b has shape"), "head.b is [vocab] in both: {msg}");
    assert_eq!(wider, before, "nothing was written");
    // And the same shape loads, bit for bit.
    let mut same = lm::init::<f32>(model().config, &mut rng(5));
    let written = tinymoe::transplant::load_part(&path, "", &mut same, "").unwrap();
    assert_eq!(written.len(), model().tensors().len());
    assert_eq!(same, model());
}

#[test]
fn a_stale_temp_file_from_a_killed_save_does_not_break_the_next() {
    // What a save killed mid-write leaves: its temp file, named for its process id. Plant one
    // under this process's id (as if an earlier process with the same id had been killed), with
    // junk longer than a checkpoint: the next save must overwrite it whole, not append to it.
    let dir = scratch("stale");
    let path = dir.join("model.ckpt");
    let stale = dir.join(format!(".model.ckpt.{}.tmp", std::process::id()));
    std::fs::write(&stale, vec![0xAB; 1 << 20]).unwrap();
    // A live process's temp file (it may be saving right now) is left alone; a dead one's is
    // swept (on Linux, where /proc tells which processes exist).
    let live = dir.join(format!(".model.ckpt.{}.tmp", std::os::unix::process::parent_id()));
    std::fs::write(&live, b"half a checkpoint").unwrap();
    let dead = dir.join(".model.ckpt.4000000000.tmp");
    std::fs::write(&dead, b"half a checkpoint").unwrap();
    let m = model();
    checkpoint::save(&path, "transformer_lm", &m.config, &m, serde_json::json!({})).unwrap();
    assert_eq!(load(&path).unwrap(), m);
    assert!(!stale.exists(), "the save renamed its temp file into place");
    assert!(live.exists(), "a live process's temp file is not ours to delete");
    assert_eq!(dead.exists(), !cfg!(target_os = "linux"), "a dead process's leftover is swept on Linux");
}
