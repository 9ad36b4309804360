//! Hostile inputs on the command line (issue 19): forged checkpoints given to `generate` and
//! `attention`, a BPE file that would hang `tokenizer encode`, a `.npy` header that lies, and
//! every command that could write over its own input — each a clean one-line error naming the
//! file and the value, with every input left byte for byte as it was.

mod common;

use common::cli::{assert_clean_error, s, tinymoe, tmp_dir};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tinymoe::checkpoint::{self, Trained};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::train::LmState;

/// A byte-level LM checkpoint (vocab 256, the `bytes` tokeniser) with `change` applied to the
/// model's own config before saving: a real save, so header, offsets and CRC are consistent.
fn forged_lm(dir: &Path, name: &str, change: impl Fn(&mut lm::Params<f32>)) -> PathBuf {
    let cfg = Config {
        vocab: 256,
        max_seq: 8,
        d_model: 8,
        n_heads: 2,
        d_ff: 16,
        n_layers: 1,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let mut model = lm::init(cfg, &mut common::rng(4));
    change(&mut model);
    let path = dir.join(name);
    let saved: Trained<_, LmState> = Trained { model, state: None };
    checkpoint::save(&path, "transformer_lm", &saved.model.config, &saved, serde_json::json!({"tokenizer": "bytes"}))
        .unwrap();
    path
}

/// An edit of a model before saving it.
type Change = Box<dyn Fn(&mut lm::Params<f32>)>;

#[test]
fn generate_and_attention_refuse_forged_checkpoints_instead_of_panicking() {
    let dir = tmp_dir("forged");
    let good = forged_lm(&dir, "good.ckpt", |_| {});
    let o = tinymoe(&["generate", "--model", s(&good), "--prompt", "ab", "--tokens", "20", "--greedy"]);
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let cases: Vec<(&str, Change, &str)> = vec![
        ("seq0.ckpt", Box::new(|m| m.config.max_seq = 0), "max_seq = 0: must be 1..="),
        ("seq1000.ckpt", Box::new(|m| m.config.max_seq = 1000), "the config (max_seq, d_model) needs [1000, 8]"),
        ("seq_huge.ckpt", Box::new(|m| m.config.max_seq = 1 << 62), "max_seq = 4611686018427387904: must be 1..="),
        ("layers2.ckpt", Box::new(|m| m.config.n_layers = 2), "the config says n_layers = 2"),
        ("layers_huge.ckpt", Box::new(|m| m.config.n_layers = 1 << 40), "n_layers = 1099511627776: must be 1..="),
        (
            "d31.ckpt",
            Box::new(|m| {
                m.config.d_model = 31;
                m.config.n_heads = 4;
            }),
            "n_heads = 4: must divide d_model = 31",
        ),
        ("d64.ckpt", Box::new(|m| m.config.d_model = 64), "the config (vocab, d_model) needs [256, 64]"),
    ];
    for (name, change, needle) in cases {
        let path = forged_lm(&dir, name, change);
        let o = tinymoe(&["generate", "--model", s(&path), "--prompt", "ab", "--tokens", "20"]);
        assert_clean_error(&o, &[name, "not a usable checkpoint", needle]);
        let o = tinymoe(&["attention", "--model", s(&path), "--text", "abc", "--out", s(&dir.join("att"))]);
        assert_clean_error(&o, &[name, needle]);
        let o = tinymoe(&["inspect", s(&path)]);
        assert_clean_error(&o, &[name, needle]);
    }
    assert!(!dir.join("att").exists(), "nothing was drawn");
}

#[test]
fn tokenizer_encode_with_a_doubling_bpe_file_fails_at_once() {
    let dir = tmp_dir("doubling");
    let mut text = String::from("tinymoe-bpe v1\nsplit none\n256 = 97 + 97\n");
    for k in 1..46 {
        text += &format!("{} = {} + {}\n", 256 + k, 255 + k, 255 + k);
    }
    let bpe = dir.join("doubling.bpe");
    std::fs::write(&bpe, &text).unwrap();
    let started = Instant::now();
    let spec = format!("bpe:{}", s(&bpe));
    let o = tinymoe(&["tokenizer", "encode", "--tokenizer", &spec, "--text", &"a".repeat(1000)]);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_clean_error(&o, &["doubling.bpe:23", "merge 276 makes a piece of 2097152 bytes", "at most 1048576"]);
}

/// Bytes of every file in `dir`, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn layer_never_writes_over_its_inputs() {
    let dir = tmp_dir("layer");
    let x = ndarray::array![[1.0f64, -2.0], [0.5, 3.0]];
    ndarray_npy::write_npy(dir.join("dx.npy"), &x).unwrap();
    ndarray_npy::write_npy(dir.join("y.npy"), &x).unwrap();
    let before = snapshot(&dir);
    // --input D/dx.npy --out D: dx.npy would be replaced by the gradient.
    let o = tinymoe(&["layer", "relu", "--input", s(&dir.join("dx.npy")), "--out", s(&dir)]);
    assert_clean_error(&o, &["dx.npy", "would overwrite the input"]);
    // --dy D/y.npy --out D: y.npy would be replaced by the output.
    let o = tinymoe(&[
        "layer",
        "relu",
        "--input",
        s(&dir.join("dx.npy")),
        "--dy",
        s(&dir.join("y.npy")),
        "--out",
        s(&dir.join("sub").join("..")),
    ]);
    assert_clean_error(&o, &["y.npy", "would overwrite the input"]);
    assert_eq!(snapshot(&dir), before, "every input is unchanged");
    // Another folder is fine.
    let o = tinymoe(&["layer", "relu", "--input", s(&dir.join("dx.npy")), "--out", s(&dir.join("out"))]);
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_npy_header_claiming_a_trillion_rows_is_a_clean_error() {
    let dir = tmp_dir("npy-claim");
    let mut h = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }".to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&[0u8; 12 * 8]);
    let path = dir.join("claims.npy");
    std::fs::write(&path, &bytes).unwrap();
    let o = tinymoe(&["layer", "relu", "--input", s(&path), "--out", s(&dir.join("out"))]);
    assert_clean_error(&o, &["claims.npy: truncated", "[1000000000000, 3]", "only 96"]);
}

#[test]
fn tokenizer_train_and_compact_never_write_over_their_inputs() {
    let dir = tmp_dir("tok");
    let text = dir.join("corpus.txt");
    std::fs::write(&text, "the cat sat on the mat; the cat sat on the hat\n".repeat(20)).unwrap();
    let bpe = dir.join("tok.bpe");
    let o = tinymoe(&["tokenizer", "train", "--text", s(&text), "--vocab-size", "300", "--out", s(&bpe)]);
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let before = snapshot(&dir);

    let o = tinymoe(&["tokenizer", "train", "--text", s(&text), "--out", s(&text)]);
    assert_clean_error(&o, &["corpus.txt", "would overwrite the input"]);
    let o = tinymoe(&["tokenizer", "compact", "--text", s(&text), "--out", s(&dir.join(".").join("corpus.txt"))]);
    assert_clean_error(&o, &["corpus.txt", "would overwrite the input"]);
    let spec = format!("bpe:{}", s(&bpe));
    let o = tinymoe(&["tokenizer", "compact", "--tokenizer", &spec, "--text", s(&text), "--out", s(&bpe)]);
    assert_clean_error(&o, &["tok.bpe", "would overwrite the input"]);
    assert_eq!(snapshot(&dir), before, "every input is unchanged");
}

#[test]
fn import_never_writes_over_the_weights_it_reads() {
    let dir = tmp_dir("import");
    let ckpt = forged_lm(&dir, "model.ckpt", |_| {});
    let weights = dir.join("w.safetensors");
    let o = tinymoe(&["export", "--model", s(&ckpt), "--out", s(&weights)]);
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let before = snapshot(&dir);
    let o = tinymoe(&["import", "--weights", s(&weights), "--into", s(&ckpt), "--out", s(&weights)]);
    assert_clean_error(&o, &["w.safetensors", "would overwrite the input"]);
    assert_eq!(snapshot(&dir), before, "every input is unchanged");
}

#[test]
fn export_never_writes_over_the_checkpoint_it_reads() {
    let dir = tmp_dir("export");
    let ckpt = forged_lm(&dir, "model.ckpt", |_| {});
    let before = snapshot(&dir);
    let o = tinymoe(&["export", "--model", s(&ckpt), "--out", s(&ckpt)]);
    assert_clean_error(&o, &["model.ckpt", "would overwrite the input"]);
    let weights = dir.join("w.safetensors");
    let o = tinymoe(&["export", "--model", s(&ckpt), "--out", s(&weights), "--manifest", s(&ckpt)]);
    assert_clean_error(&o, &["model.ckpt", "would overwrite the input"]);
    let o = tinymoe(&["export", "--model", s(&ckpt), "--out", s(&weights), "--manifest", s(&weights)]);
    assert_clean_error(&o, &["w.safetensors", "would overwrite the input"]);
    assert_eq!(snapshot(&dir), before, "the checkpoint is unchanged and nothing was written");
}

/// A run that diverges at once, pointed at an earlier run's folder, leaves that folder as it
/// was: its checkpoint, its settings (written only with a run's first save) and its metrics.
#[test]
fn a_run_that_fails_at_once_leaves_an_existing_results_folder_as_it_was() {
    let dir = tmp_dir("keep-folder");
    let out = dir.join("run");
    let o = tinymoe(&["train", "--preset", "spirals-mlp", "--epochs", "1", "--out", s(&out)]);
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let before = snapshot(&out);
    assert!(
        before.iter().any(|(n, _)| n.ends_with("config.toml")),
        "{:?}",
        before.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let o = tinymoe(&["train", "--preset", "spirals-mlp", "--epochs", "2", "--lr", "1e30", "--out", s(&out)]);
    assert_clean_error(&o, &["NaN"]);
    assert_eq!(snapshot(&out), before, "the earlier run's folder is unchanged");
}
