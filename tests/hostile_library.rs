//! Hostile inputs through the library (issue 19): forged-but-well-formed checkpoints, configs
//! with sizes no machine has, and every reader fed files that lie about their lengths. Each
//! case of the issue has a test, and each reader and config a proptest fuzz test: whatever
//! the bytes, the reader returns a value or an error naming the file — it never panics,
//! never hangs, never allocates what the file does not hold — and what it accepts is usable
//! (a checkpoint that loads generates text without a panic).
//!
//! The fuzz tests run `TINYMOE_FUZZ_CASES` cases each (default 48, to keep the suite fast):
//! `TINYMOE_FUZZ_CASES=10000 cargo test --release --test hostile_library` is the big run.

mod common;

use ndarray::{Array2, ArrayD, IxDyn};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tinymoe::checkpoint::{self, Trained};
use tinymoe::data::bpe::Bpe;
use tinymoe::data::compact::Compact;
use tinymoe::data::tokenizer::Tokenizer;
use tinymoe::data::{csv, mnist, npy};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::params::Tensors;
use tinymoe::models::classifier::{self, Classifier};
use tinymoe::models::generate::{self, Decode, Sampling};
use tinymoe::models::moe_classifier;
use tinymoe::models::moe_lm::{self, ExpertKind};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::models::validate::{ClassifierSizes, Validate};
use tinymoe::moe::layer::{Level, Route};
use tinymoe::moe::losses::RouterLossConfig;
use tinymoe::moe::routing::{Gating, Strategy as Pick};
use tinymoe::Error;

const GIB: u64 = 1 << 30;

/// An edit of a config before saving it.
type Change<C> = Box<dyn Fn(&mut C)>;

/// Cases per fuzz test: `TINYMOE_FUZZ_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("TINYMOE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn fuzz_config() -> ProptestConfig {
    ProptestConfig { cases: cases(48), failure_persistence: None, ..ProptestConfig::default() }
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinymoe-hostile-lib-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lm_config() -> Config {
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

fn lm_model() -> lm::Params<f32> {
    lm::init(lm_config(), &mut common::rng(3))
}

fn moe_config() -> moe_lm::Config {
    moe_lm::Config {
        vocab: 30,
        max_seq: 8,
        d_model: 8,
        n_heads: 2,
        d_ff: 16,
        dropout: 0.0,
        pad_id: Some(29),
        shared_layers: 1,
        n_experts: 3,
        expert: ExpertKind::Mlp { hidden: 12 },
        router_hidden: None,
        noisy: true,
        level: Level::Token,
        gating: Gating { strategy: Pick::TopK(2), capacity_factor: None },
        router_losses: RouterLossConfig::paper(),
        domain_loss: None,
        bidirectional_experts: false,
    }
}

/// Saves `model` as a checkpoint of `kind` (a real save: header, offsets and CRC recomputed,
/// so the file is well-formed whatever its config says) and returns the load error.
fn forged<M>(dir: &Path, name: &str, kind: &str, model: &M) -> String
where
    M: serde::Serialize + serde::de::DeserializeOwned + Tensors<f32> + Validate,
{
    let path = dir.join(name);
    checkpoint::save(&path, kind, &serde_json::json!({}), model, serde_json::json!({})).unwrap();
    let err = checkpoint::load::<M>(&path, kind).map(|_| ()).expect_err("a forged checkpoint must be refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::Checkpoint { .. }), "{msg}");
    assert!(msg.contains(name), "the error names the file: {msg}");
    msg
}

// ---- forged checkpoints (each case of the issue) ------------------------------------------

#[test]
fn a_forged_language_model_config_is_refused_naming_the_value() {
    let dir = scratch("forged-lm");
    let cases: Vec<(&str, Change<Config>, &[&str])> = vec![
        ("max_seq0.ckpt", Box::new(|c| c.max_seq = 0), &["max_seq = 0", "must be 1..="]),
        ("max_seq1000.ckpt", Box::new(|c| c.max_seq = 1000), &["embed.pos", "[6, 8]", "[1000, 8]"]),
        ("max_seq_huge.ckpt", Box::new(|c| c.max_seq = 1 << 62), &["max_seq = 4611686018427387904", "must be 1..="]),
        ("layers3.ckpt", Box::new(|c| c.n_layers = 3), &["n_layers = 2", "the config says n_layers = 3"]),
        ("layers_huge.ckpt", Box::new(|c| c.n_layers = 1 << 40), &["n_layers = 1099511627776", "must be 1..="]),
        ("d31.ckpt", Box::new(|c| c.d_model = 31), &["n_heads = 2", "must divide d_model = 31"]),
        ("d64.ckpt", Box::new(|c| c.d_model = 64), &["embed.tok", "[20, 8]", "[20, 64]"]),
        ("heads.ckpt", Box::new(|c| c.n_heads = 4), &["blocks.0.attn.n_heads = 2", "n_heads = 4"]),
        ("vocab.ckpt", Box::new(|c| c.vocab = 21), &["embed.tok", "[21, 8]"]),
        ("pad.ckpt", Box::new(|c| c.pad_id = Some(20)), &["pad_id = 20", "below vocab = 20"]),
        ("tied.ckpt", Box::new(|c| c.tie_head = true), &["tie_head = true", "separate head"]),
        ("dropout.ckpt", Box::new(|c| c.dropout = 1.0), &["dropout = 1", "[0, 1)"]),
    ];
    for (name, change, needles) in cases {
        let mut m = lm_model();
        change(&mut m.config);
        let msg = forged(&dir, name, "transformer_lm", &m);
        for needle in needles {
            assert!(msg.contains(needle), "{name}: expected {needle:?} in {msg}");
        }
    }
    // d_model 31 with 4 heads, as in the issue, with tensors of width 31 (so only the heads are wrong).
    let mut m = lm::init(Config { d_model: 31, n_heads: 1, ..lm_config() }, &mut common::rng(1));
    m.config.n_heads = 4;
    for b in &mut m.blocks {
        b.attn.n_heads = 4;
    }
    let msg = forged(&dir, "d31h4.ckpt", "transformer_lm", &m);
    assert!(msg.contains("n_heads = 4: must divide d_model = 31"), "{msg}");
    // The training-state wrapper is checked the same way.
    let mut m = lm_model();
    m.config.max_seq = 1000;
    let saved = Trained { model: m, state: Some(vec![1.0f32]) };
    let msg = forged(&dir, "trained.ckpt", "transformer_lm", &saved);
    assert!(msg.contains("embed.pos"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unforged_checkpoint_still_loads() {
    let dir = scratch("fine");
    let path = dir.join("ok.ckpt");
    let m = lm_model();
    checkpoint::save(&path, "transformer_lm", &m.config, &m, serde_json::json!({})).unwrap();
    let (_, back): (_, lm::Params<f32>) = checkpoint::load(&path, "transformer_lm").unwrap();
    assert_eq!(back, m);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forged_moe_lm_and_classifier_are_refused() {
    let dir = scratch("forged-moe");
    let fresh = || moe_lm::init::<f32>(moe_config(), &mut common::rng(5));
    let m = fresh();
    assert!(m.validate(64 * GIB).is_ok(), "{:?}", m.validate(64 * GIB));
    let cases: Vec<(&str, Change<moe_lm::Config>, &str)> = vec![
        ("experts.ckpt", Box::new(|c| c.n_experts = 1_000_000_000), "n_experts = 1000000000"),
        ("experts4.ckpt", Box::new(|c| c.n_experts = 4), "moe.router.net.layers.0.w"),
        ("hidden.ckpt", Box::new(|c| c.expert = ExpertKind::Mlp { hidden: 13 }), "moe.experts.0.mlp.layers.0.w"),
        ("stack.ckpt", Box::new(|c| c.expert = ExpertKind::Stack { layers: 1 }), "ln_moe"),
        ("topk.ckpt", Box::new(|c| c.gating = Gating::top_k(9)), "top_k = 9"),
        ("noisy.ckpt", Box::new(|c| c.noisy = false), "noisy = false"),
        ("level.ckpt", Box::new(|c| c.level = Level::Sequence), "moe.config"),
        ("shared.ckpt", Box::new(|c| c.shared_layers = 2), "shared_layers = 1"),
        ("seq.ckpt", Box::new(|c| c.max_seq = 0), "max_seq = 0"),
    ];
    for (name, change, needle) in cases {
        let mut m = fresh();
        change(&mut m.config);
        let msg = forged(&dir, name, "moe-lm", &m);
        assert!(msg.contains(needle), "{name}: expected {needle:?} in {msg}");
    }
    // A classifier whose layers do not chain, and an MoE whose gate does not match its experts.
    let mut c: Classifier<f32> = classifier::init_mlp(2, &[8], 3, 0.0, &mut common::rng(1));
    if let Classifier::Mlp(p) = &mut c {
        p.layers[1].w = Array2::zeros((7, 3));
    }
    let msg = forged(&dir, "mlp.ckpt", "classifier", &c);
    assert!(msg.contains("layers.1.w") && msg.contains("[7, 3]") && msg.contains("[8, 3]"), "{msg}");
    let mut c: Classifier<f32> = classifier::init_moe(2, &[8], 3, &[4], 3, 0.0, &mut common::rng(1));
    if let Classifier::Moe(p) = &mut c {
        p.experts.pop();
    }
    let msg = forged(&dir, "moe.ckpt", "classifier", &c);
    assert!(msg.contains("experts = 2") && msg.contains("the gate's outputs = 3"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- sizes with no bound -------------------------------------------------------------------

#[test]
fn sizes_no_machine_has_are_refused_with_the_limit() {
    let huge = [
        Config { d_model: 1_000_000_000, n_heads: 1, ..lm_config() },
        Config { d_ff: 1_000_000_000, ..lm_config() },
        Config { n_layers: 1_000_000_000, ..lm_config() },
        Config { max_seq: usize::MAX, ..lm_config() },
        Config {
            vocab: 50_257,
            d_model: 16_384,
            n_heads: 16,
            d_ff: 65_536,
            n_layers: 96,
            max_seq: 2048,
            ..lm_config()
        },
    ];
    for c in huge {
        let msg = c.check_fits(32, true, 24 * GIB).unwrap_err().to_string();
        assert!(msg.contains("must be 1..=") || msg.contains("more than this machine's 24.0 GiB"), "{c:?}: {msg}");
    }
    // GPT-2 small (124M parameters) fits in 24 GiB for a batch of 4 windows of 1024; not in 1 GiB.
    let gpt2 = Config {
        vocab: 50_257,
        max_seq: 1024,
        d_model: 768,
        n_heads: 12,
        d_ff: 3072,
        n_layers: 12,
        dropout: 0.1,
        pad_id: None,
        tie_head: true,
    };
    let fp = gpt2.footprint(1, 1024);
    assert!((120_000_000..130_000_000).contains(&fp.parameters), "{}", fp.parameters);
    assert!(gpt2.check_fits(4, true, 24 * GIB).is_ok());
    let msg = gpt2.check_fits(4, true, GIB).unwrap_err().to_string();
    assert!(msg.starts_with("model size = vocab 50257, max_seq 1024, d_model 768"), "{msg}");
    assert!(msg.contains("more than this machine's 1.0 GiB of memory"), "{msg}");

    let moe = moe_lm::Config { n_experts: 1_000_000_000, ..moe_config() };
    assert!(moe
        .check_fits(8, true, 24 * GIB)
        .unwrap_err()
        .to_string()
        .contains("n_experts = 1000000000: must be 1..="));
    let moe = moe_lm::Config { n_experts: 4000, expert: ExpertKind::Mlp { hidden: 100_000 }, ..moe_config() };
    assert!(moe.check_fits(8, true, 24 * GIB).unwrap_err().to_string().contains("more than this machine's"));

    // `--hidden 100000,100000` and `--experts 1000000000` for a classifier.
    let wide = ClassifierSizes { d_in: 2, hidden: &[100_000, 100_000], classes: 5, moe: None };
    let msg = wide.check_fits(64, true, 24 * GIB).unwrap_err().to_string();
    assert!(msg.contains("hidden [100000, 100000]") && msg.contains("more than this machine's 24.0 GiB"), "{msg}");
    let many = ClassifierSizes { d_in: 2, hidden: &[64], classes: 5, moe: Some((1_000_000_000, &[16])) };
    assert!(many.check_fits(64, true, 24 * GIB).unwrap_err().to_string().contains("experts = 1000000000"));
    let fine = ClassifierSizes { d_in: 2, hidden: &[128, 128], classes: 5, moe: Some((4, &[64])) };
    assert!(fine.check_fits(64, true, 24 * GIB).is_ok());
    assert!(tinymoe::io::machine_memory() >= 256 << 20, "the machine's memory is read (or the fallback)");
}

#[test]
fn thread_counts_epochs_and_counts_have_bounds() {
    let cores = tinymoe::io::cpu_cores();
    let msg = tinymoe::io::check_threads("--threads", 10_000).unwrap_err().to_string();
    assert_eq!(msg, format!("--threads = 10000: must be 1..={cores} (this machine has {cores} core(s))"));
    assert!(tinymoe::io::check_threads("--threads", 1).is_ok());
    let msg = tinymoe::io::check_epochs(1_000_000_000, "results/run/model.ckpt").unwrap_err().to_string();
    assert!(msg.contains("epochs = 1000000000") && msg.contains("results/run/model.ckpt"), "{msg}");
    for name in ["train_per_domain", "val_per_domain", "max_len"] {
        let msg = tinymoe::io::check_count(name, 1_000_000_000, "run.toml").unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{name} = 1000000000: must be 1..=")) && msg.contains("run.toml"), "{msg}");
    }
}

// ---- readers: the cases of the issue ------------------------------------------------------

/// A `.npy` v1 file: `header` (the dict) and then `data`.
fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn an_npy_header_claiming_more_than_the_file_is_refused_before_allocating() {
    let dir = scratch("npy");
    let path = dir.join("big.npy");
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }";
    std::fs::write(&path, npy_bytes(header, &[0u8; 12 * 8])).unwrap();
    let err = npy::read_npy::<f64, IxDyn>(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: truncated", path.display())), "{err}");
    assert!(err.contains("[1000000000000, 3]") && err.contains("only 96"), "{err}");
    // The same array, honest, reads.
    std::fs::write(&path, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", &[0u8; 96]))
        .unwrap();
    assert_eq!(npy::read_npy::<f64, IxDyn>(&path).unwrap().shape(), &[4, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A BPE file whose merges double one piece `n` times: 256 = a + a, 257 = 256 + 256, …
fn doubling_bpe(n: usize) -> String {
    let mut s = String::from("tinymoe-bpe v1\nsplit none\n256 = 97 + 97\n");
    for k in 1..n {
        s += &format!("{} = {} + {}\n", 256 + k, 255 + k, 255 + k);
    }
    s
}

#[test]
fn a_bpe_whose_merges_double_a_piece_46_times_is_refused_at_once() {
    let started = Instant::now();
    let err = Bpe::from_text(&doubling_bpe(46), Path::new("doubling.bpe")).unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // Merge 256 + k makes a piece of 2^(k+1) bytes: 2^21 = 2 MiB at merge 276, line 23.
    assert_eq!(
        err,
        "doubling.bpe:23: merge 276 makes a piece of 2097152 bytes; a BPE piece may be at most 1048576 bytes"
    );
    // Nineteen doublings (a 512 KiB piece) are allowed, and encoding with them is quick.
    let bpe = Bpe::from_text(&doubling_bpe(19), Path::new("ok.bpe")).unwrap();
    let text = "a".repeat(100_000);
    let started = Instant::now();
    let ids = bpe.encode(&text);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(bpe.decode(&ids), text);
    assert!(Bpe::from_merges(
        (0..46).map(|k| if k == 0 { (97, 97) } else { (255 + k, 255 + k) }).collect(),
        tinymoe::data::bpe::Split::None
    )
    .is_err());
}

#[test]
fn a_csv_label_of_a_billion_is_refused_not_allocated() {
    let dir = scratch("csv");
    let path = dir.join("labels.csv");
    std::fs::write(&path, "x,y,label\n0.1,0.2,0\n0.3,0.4,1000000000\n").unwrap();
    let err = csv::load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3: label 1000000000 is too large: class numbers must be 0..65536 (one model output per class)",
            path.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gzip_bomb_idx_file_is_refused_while_unpacking() {
    use std::io::Write as _;
    let dir = scratch("idx");
    let path = dir.join("train-labels-idx1-ubyte.gz");
    // 1025 gzip members of 1 MiB of zeros each (about 1 KB apiece): 1 GiB + 1 MiB unpacked.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = gz.finish().unwrap();
    std::fs::write(&path, member.repeat(1025)).unwrap();
    let err = mnist::read_labels(&path).unwrap_err().to_string();
    assert!(err.contains("unpacks to more than 1073741824 bytes"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_idx_file_of_no_images_claiming_huge_ones_is_refused() {
    let dir = scratch("idx-zero");
    let path = dir.join("t10k-images-idx3-ubyte");
    let dims = [0u32, u32::MAX, u32::MAX].iter().flat_map(|d| d.to_be_bytes()).collect::<Vec<u8>>();
    std::fs::write(&path, [vec![0, 0, 8, 3], dims].concat()).unwrap();
    let err = mnist::read_images(&path).unwrap_err().to_string();
    assert!(err.contains("images of 4294967295×4294967295 pixels are larger than an IDX file may be"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- fuzz: every reader -------------------------------------------------------------------

/// Mutations of a valid file: byte changes, a truncation, an insertion of interesting numbers.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    let edits = proptest::collection::vec((0..len.max(1), any::<u8>()), 0..8);
    let cut = proptest::option::weighted(0.2, 0..len.max(1));
    let word = proptest::option::weighted(
        0.4,
        (
            0..len.max(1),
            prop_oneof![
                Just(0u64),
                Just(1),
                Just(31),
                Just(1000),
                Just(1 << 40),
                Just(1 << 62),
                Just(u64::MAX),
                any::<u64>()
            ],
        ),
    );
    (edits, cut, word).prop_map(move |(edits, cut, word)| {
        let mut b = base.clone();
        if let Some((at, v)) = word {
            for (i, byte) in v.to_le_bytes().iter().enumerate() {
                if let Some(x) = b.get_mut(at + i) {
                    *x = *byte;
                }
            }
        }
        for (at, v) in edits {
            if let Some(x) = b.get_mut(at) {
                *x = v;
            }
        }
        if let Some(c) = cut {
            b.truncate(c);
        }
        b
    })
}

/// Either a mutation of `base` or bytes from nowhere.
fn hostile(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => mutated(base), 1 => proptest::collection::vec(any::<u8>(), 0..256)]
}

/// A number a header might claim: small, off by a little, or absurd.
fn claim() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..8, Just(12), Just(1 << 31), Just(1_000_000_000_000), Just(1 << 62), Just(u64::MAX)]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The checkpoint of a small LM, saved once for the fuzz tests.
fn lm_checkpoint_bytes() -> (Vec<u8>, usize) {
    let dir = scratch("ckpt-base");
    let path = dir.join("base.ckpt");
    let m = lm_model();
    checkpoint::save(&path, "transformer_lm", &m.config, &m, serde_json::json!({})).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let _ = std::fs::remove_dir_all(&dir);
    (bytes, 20 + header_len)
}

/// `bytes` with its trailing CRC-32 recomputed: a forged file that passes the checksum.
fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 4 {
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

/// A loaded LM must run: forward on a short window and a few generated tokens.
fn exercise_lm(m: &lm::Params<f32>) {
    let seq = m.config.max_seq.min(4);
    let ids = Array2::from_shape_fn((1, seq), |(_, t)| t % m.config.vocab);
    let logits = lm::predict(m, ids.view());
    assert_eq!(logits.shape(), &[1, seq, m.config.vocab]);
    let prompt: Vec<usize> = (0..seq).map(|t| t % m.config.vocab).collect();
    for decode in [Decode::KvCache, Decode::Recompute] {
        let new =
            generate::generate(m, &prompt, 2 * m.config.max_seq + 1, Sampling::GREEDY, decode, &mut common::rng(1));
        assert!(new.iter().all(|&t| t < m.config.vocab));
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Checkpoint bytes changed anywhere — the payload's config included — with the CRC
    /// recomputed (so only the deeper checks stand between the file and the model): either a
    /// clean error naming the file, or a model that runs.
    #[test]
    fn fuzz_forged_lm_checkpoints_load_cleanly_or_run(
        (bytes, fix_crc) in {
            let (base, payload_start) = lm_checkpoint_bytes();
            let tail = base.len().saturating_sub(96).max(payload_start);
            // Half of the edits aim at the payload's end, where bincode keeps the config.
            let aimed = (proptest::collection::vec((tail..base.len() - 4, any::<u8>()), 1..4), Just(base.clone()))
                .prop_map(|(edits, mut b)| { for (at, v) in edits { b[at] = v; } b });
            (prop_oneof![hostile(base), aimed], any::<bool>())
        }
    ) {
        let dir = scratch("fuzz-ckpt");
        let bytes = if fix_crc { with_crc(bytes) } else { bytes };
        let path = write(&dir, "f.ckpt", &bytes);
        match checkpoint::load::<lm::Params<f32>>(&path, "transformer_lm") {
            Ok((_, m)) => exercise_lm(&m),
            Err(e) => prop_assert!(e.to_string().contains("f.ckpt"), "{}", e),
        }
        let _ = checkpoint::read_tensors(&path, |_| true);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same for an MoE LM: forged configs are refused, what loads runs a forward pass.
    #[test]
    fn fuzz_forged_moe_checkpoints_load_cleanly_or_run(edits in proptest::collection::vec((0usize..128, any::<u8>()), 1..4)) {
        let dir = scratch("fuzz-moe");
        let path = dir.join("m.ckpt");
        let m = moe_lm::init::<f32>(moe_config(), &mut common::rng(5));
        checkpoint::save(&path, "moe-lm", &m.config, &m, serde_json::json!({})).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        for (back, v) in edits {
            bytes[n - 5 - back] = v; // the config: the end of the payload, before the CRC
        }
        std::fs::write(&path, with_crc(bytes)).unwrap();
        match checkpoint::load::<moe_lm::Params<f32>>(&path, "moe-lm") {
            Ok((_, m)) => {
                let seq = m.config.max_seq.min(4);
                let ids = Array2::from_shape_fn((2, seq), |(b, t)| (b + t) % m.config.vocab);
                let domains = vec![0, 1 % m.config.n_experts];
                let _ = moe_lm::forward(&m, ids.view(), ids.view(), Some(&domains), Route::default(), &mut Mode::Eval);
            }
            Err(e) => prop_assert!(e.to_string().contains("m.ckpt"), "{}", e),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Language-model configs from anywhere (small, off by one, absurd): validation either
    /// refuses them or the model they describe builds and runs.
    #[test]
    fn fuzz_lm_configs_are_refused_or_run(
        vocab in prop_oneof![0usize..40, Just(1usize << 40)],
        max_seq in prop_oneof![0usize..10, Just(usize::MAX)],
        d_model in prop_oneof![0usize..17, Just(1_000_000_000)],
        n_heads in 0usize..6,
        d_ff in prop_oneof![0usize..20, Just(usize::MAX / 2)],
        n_layers in prop_oneof![0usize..3, Just(1usize << 40)],
        dropout in prop_oneof![Just(0.0), Just(0.5), Just(1.0), Just(f64::NAN), Just(-0.1)],
        pad in proptest::option::of(0usize..45),
        tie in any::<bool>(),
    ) {
        let c = Config { vocab, max_seq, d_model, n_heads, d_ff, n_layers, dropout, pad_id: pad, tie_head: tie };
        match c.check_fits(2, true, 24 * GIB) {
            Ok(()) => {
                let m = lm::init::<f32>(c, &mut common::rng(2));
                prop_assert!(m.validate(24 * GIB).is_ok());
                exercise_lm(&m);
            }
            Err(e) => prop_assert!(matches!(e, Error::BadValue { .. }), "{}", e),
        }
    }

    /// MoE LM configs, the same way.
    #[test]
    fn fuzz_moe_configs_are_refused_or_run(
        d_model in prop_oneof![1usize..9, Just(0), Just(1_000_000_000)],
        n_heads in 0usize..4,
        n_experts in prop_oneof![0usize..5, Just(1_000_000_000)],
        k in 0usize..6,
        dense in any::<bool>(),
        stack in any::<bool>(),
        width in prop_oneof![0usize..9, Just(1usize << 30)],
        router_hidden in proptest::option::of(0usize..5),
        capacity in proptest::option::of(prop_oneof![Just(0.0), Just(1.0), Just(f64::INFINITY)]),
        max_seq in prop_oneof![0usize..6, Just(1usize << 62)],
        shared_layers in prop_oneof![0usize..2, Just(1usize << 40)],
    ) {
        let c = moe_lm::Config {
            d_model,
            n_heads,
            n_experts,
            max_seq,
            shared_layers,
            d_ff: 8,
            expert: if stack { ExpertKind::Stack { layers: width.min(3) } } else { ExpertKind::Mlp { hidden: width } },
            router_hidden,
            gating: Gating { strategy: if dense { Pick::Dense } else { Pick::TopK(k) }, capacity_factor: capacity },
            ..moe_config()
        };
        match c.check_fits(2, true, 24 * GIB) {
            Ok(()) => {
                let m = moe_lm::init::<f32>(c, &mut common::rng(2));
                prop_assert!(m.validate(24 * GIB).is_ok(), "{:?}", m.validate(24 * GIB));
                let seq = c.max_seq.min(3);
                let ids = Array2::from_shape_fn((2, seq), |(b, t)| (b + t) % c.vocab);
                let _ = moe_lm::forward(&m, ids.view(), ids.view(), None, Route::default(), &mut Mode::Eval);
            }
            Err(e) => prop_assert!(matches!(e, Error::BadValue { .. }), "{}", e),
        }
    }

    /// Classifier sizes (`--hidden`, `--experts`, a CSV's classes): refused, or the model
    /// builds, validates and runs.
    #[test]
    fn fuzz_classifier_sizes_are_refused_or_run(
        d_in in prop_oneof![0usize..5, Just(1_000_000_000)],
        hidden in proptest::collection::vec(prop_oneof![0usize..9, Just(100_000), Just(usize::MAX)], 0..3),
        classes in prop_oneof![0usize..6, Just(1_000_000_000)],
        moe in proptest::option::of((prop_oneof![0usize..4, Just(1_000_000_000)], proptest::collection::vec(0usize..6, 0..2))),
    ) {
        let sizes = ClassifierSizes { d_in, hidden: &hidden, classes, moe: moe.as_ref().map(|(e, g)| (*e, g.as_slice())) };
        match sizes.check_fits(16, true, 24 * GIB) {
            Ok(()) => {
                let mut rng = common::rng(1);
                let model: Classifier<f32> = match &moe {
                    None => classifier::init_mlp(d_in, &hidden, classes, 0.0, &mut rng),
                    Some((e, g)) => classifier::init_moe(d_in, &hidden, classes, g, *e, 0.0, &mut rng),
                };
                prop_assert!(model.validate(24 * GIB).is_ok(), "{:?}", model.validate(24 * GIB));
                let out = classifier::logits(&model, Array2::<f32>::zeros((3, d_in)).view());
                prop_assert_eq!(out.shape(), &[3, classes]);
            }
            Err(e) => prop_assert!(matches!(e, Error::BadValue { .. }), "{}", e),
        }
    }

    /// MoE classifier configs (E6): refused, or the model builds, validates and runs.
    #[test]
    fn fuzz_moe_classifier_configs_are_refused_or_run(
        d_in in prop_oneof![0usize..5, Just(1usize << 40)],
        hidden in proptest::collection::vec(prop_oneof![0usize..9, Just(1usize << 30)], 0..3),
        classes in 0usize..5,
        n_experts in prop_oneof![0usize..5, Just(1_000_000_000)],
        k in 0usize..6,
        router_hidden in proptest::option::of(prop_oneof![0usize..4, Just(usize::MAX)]),
        noisy in any::<bool>(),
        dropout in prop_oneof![Just(0.0), Just(0.3), Just(1.0), Just(f64::NAN)],
    ) {
        let c = moe_classifier::Config {
            d_in, hidden, classes, n_experts, router_hidden, noisy, dropout,
            gating: Gating::top_k(k),
            router_losses: RouterLossConfig::paper(),
        };
        match c.check_fits(16, true, 24 * GIB) {
            Ok(()) => {
                let m = moe_classifier::init::<f32>(&c, &mut common::rng(1));
                prop_assert!(m.validate(24 * GIB).is_ok(), "{:?}", m.validate(24 * GIB));
                let y: Vec<usize> = (0..3).map(|i| i % c.classes).collect();
                let x = Array2::<f32>::zeros((3, c.d_in));
                let _ = moe_classifier::forward(&m, x.view(), &y, Route::default(), &mut Mode::Eval);
            }
            Err(e) => prop_assert!(matches!(e, Error::BadValue { .. }), "{}", e),
        }
    }

    /// `tinymoe layer` through the library: any entry, arrays of any small shape and type
    /// (or missing), any flags. The checks refuse what does not fit; nothing panics.
    #[test]
    fn fuzz_layer_check_refuses_or_runs(
        entry in 0..tinymoe::layer_check::TABLE.len(),
        arrays in proptest::collection::vec((0u8..10, proptest::collection::vec(0usize..5, 0..4), any::<bool>(), any::<u64>()), 12),
        heads in proptest::option::of(0usize..5),
        k in proptest::option::of(prop_oneof![0usize..5, Just(usize::MAX)]),
        pad_id in proptest::option::of(prop_oneof![0usize..6, Just(usize::MAX)]),
        ignore_index in proptest::option::of(-101i64..6),
        eps in proptest::option::of(prop_oneof![Just(0.0), Just(-1.0), Just(1e-5), Just(f64::NAN)]),
        lr in proptest::option::of(prop_oneof![Just(0.0), Just(1e-3), Just(-1.0), Just(f64::INFINITY)]),
        beta in proptest::option::of(prop_oneof![Just(0.0), Just(0.9), Just(1.0), Just(2.0)]),
        step in proptest::option::of(prop_oneof![Just(0u64), Just(1), Just(u64::MAX)]),
        coef in proptest::option::of(prop_oneof![Just(0.0), Just(1e-2), Just(f64::NAN)]),
        causal in any::<bool>(),
        sizes in proptest::collection::vec(1usize..5, 10),
        lead in 1usize..3,
    ) {
        use tinymoe::layer_check::{self, Bundle, Flags, Loaded, Request, Slot, Values};
        let e = &layer_check::TABLE[entry];
        // Only flags the entry takes (another is refused before anything is read).
        let takes = |flag: &str| e.flags.iter().any(|f| f.flag == flag);
        let given = |flag: &str, v: Option<f64>| v.filter(|_| takes(flag));
        let mut req = Request {
            flags: Flags {
                heads: heads.filter(|_| takes("--heads")),
                causal: causal && takes("--causal"),
                eps: given("--eps", eps),
                act: None,
                pad_id: pad_id.filter(|_| takes("--pad-id")),
                ignore_index: ignore_index.filter(|_| takes("--ignore-index")),
                lr: given("--lr", lr),
                beta1: given("--beta1", beta),
                beta2: given("--beta2", beta),
                weight_decay: given("--weight-decay", coef),
                step: step.filter(|_| takes("--step")),
                k: k.filter(|_| takes("--k")),
                coef: given("--coef", coef),
            },
            ..Request::default()
        };
        let values = |shape: &[usize], float: bool, seed: u64| {
            let n: usize = shape.iter().product();
            if float {
                let v = (0..n).map(|i| ((i as u64 * 7 + seed) % 11) as f64 / 3.0 - 1.5).collect();
                Values::Float(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
            } else {
                let v = (0..n).map(|i| ((i as u64 * 3 + seed) % 9) as i64 - 2).collect();
                Values::Int(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
            }
        };
        // The table's arrays, with {i} (two layers) and {e} (two experts) spelled out.
        let mut docs: Vec<(Slot, String, Vec<String>)> = Vec::new();
        for a in e.arrays.iter().filter(|a| a.slot != Slot::Output) {
            let is = if a.name.contains("{i}") { 0..2 } else { 0..1 };
            let es = if a.name.contains("{e}") { 0..2 } else { 0..1 };
            for i in is {
                for x in es.clone() {
                    let vars = [("i", i), ("e", x), ("L", 2)];
                    let name = layer_check::subst(&a.name.replace("<name>", "w"), &vars);
                    let dims = a.dims.iter().map(|d| layer_check::subst(d, &vars)).collect();
                    docs.push((a.slot, name, dims));
                }
            }
        }
        // Mostly the shapes the table asks for (one size per dimension name), sometimes any.
        let size_of = |name: &str| sizes[name.bytes().fold(0usize, |h, b| h * 31 + b as usize) % sizes.len()];
        for ((slot, name, dims), (keep, shape, float, seed)) in docs.iter().zip(arrays.iter().cycle()) {
            if *keep == 0 {
                continue; // a missing array
            }
            let table_shape: Vec<usize> = dims
                .iter()
                .flat_map(|d| match d.as_str() {
                    "..." => vec![2; lead],
                    "any" => vec![2, 3],
                    name => vec![size_of(name)],
                })
                .collect();
            let shape = if *keep == 1 { shape } else { &table_shape };
            let float = if *keep < 5 { *float } else { !matches!(name.as_str(), "targets" | "ids" | "mask") };
            let member = slot.is_npz().then(|| name.clone());
            let loaded = Loaded { path: PathBuf::from(format!("{name}.npy")), member, values: values(shape, float, *seed) };
            let bundle = |b: &mut Option<Bundle>| {
                b.get_or_insert_with(|| Bundle { path: PathBuf::from("p.npz"), arrays: vec![] }).arrays.push(loaded.clone())
            };
            match slot {
                Slot::Input => req.input = Some(loaded.clone()),
                Slot::Mask => req.mask = Some(loaded.clone()),
                Slot::Targets => req.targets = Some(loaded.clone()),
                Slot::Dy => req.dy = Some(loaded.clone()),
                Slot::Params => bundle(&mut req.params),
                Slot::Grads => bundle(&mut req.grads),
                Slot::State => bundle(&mut req.state),
                Slot::Output => {}
            }
        }
        if let Ok(out) = layer_check::run(e.name, req) {
            prop_assert!(!out.0.is_empty());
        }
    }

    /// `.npy` files: mutated honest files and headers claiming any shape. read_npy returns an
    /// array the header's size or an error naming the file — never an abort for a huge claim.
    #[test]
    fn fuzz_npy_files_read_or_fail_cleanly(
        bytes in prop_oneof![
            hostile(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", &[0u8; 48])),
            (claim(), claim(), 0usize..64, prop_oneof![Just("<f8"), Just("<f4"), Just("|u1"), Just("<i8")])
                .prop_map(|(a, b, n, d)| npy_bytes(&format!("{{'descr': '{d}', 'fortran_order': False, 'shape': ({a}, {b}), }}"), &vec![0u8; n])),
        ]
    ) {
        let dir = scratch("fuzz-npy");
        let path = write(&dir, "x.npy", &bytes);
        match npy::read_npy::<f64, IxDyn>(&path) {
            Ok(a) => prop_assert!(a.len() * 8 <= bytes.len()),
            Err(e) => prop_assert!(e.to_string().contains("x.npy"), "{}", e),
        }
        let _ = npy::read_npy::<f32, IxDyn>(&path);
        let _ = npy::read_npy::<u8, IxDyn>(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `.npz` archives (np.savez's stored zip): the header check runs before any member is read.
    #[test]
    fn fuzz_npz_archives_read_or_fail_cleanly(bytes in {
        let mut w = ndarray_npy::NpzWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_array("w", &ArrayD::<f64>::zeros(IxDyn(&[2, 3]))).unwrap();
        w.add_array("b", &ArrayD::<f64>::zeros(IxDyn(&[3]))).unwrap();
        hostile(w.finish().unwrap().into_inner())
    }) {
        if npy::check_npz_bytes(&bytes).is_ok() {
            if let Ok(mut npz) = ndarray_npy::NpzReader::new(std::io::Cursor::new(&bytes)) {
                for name in npz.names().unwrap_or_default() {
                    let _ = npz.by_name::<ndarray::OwnedRepr<f64>, IxDyn>(&name);
                }
            }
        }
    }

    /// safetensors files into a small LM: a mismatch is an error naming the file and the model
    /// is left as it was; a success fills every tensor.
    #[test]
    fn fuzz_safetensors_import_fills_or_refuses(bytes in {
        let dir = scratch("st-base");
        let p = dir.join("w.safetensors");
        tinymoe::interchange::export_safetensors(&p, &lm_model(), &Default::default()).unwrap();
        let b = std::fs::read(&p).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        hostile(b)
    }) {
        let dir = scratch("fuzz-st");
        let path = write(&dir, "w.safetensors", &bytes);
        let mut m = lm_model();
        match tinymoe::interchange::import_safetensors(&path, &mut m) {
            Ok(_) => prop_assert!(m.validate(24 * GIB).is_ok()),
            Err(e) => {
                prop_assert!(e.to_string().contains("w.safetensors"), "{}", e);
                prop_assert_eq!(&m, &lm_model());
            }
        }
        let _ = tinymoe::interchange::read_metadata(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// IDX images and labels, raw or gzipped, with any dimensions claimed.
    #[test]
    fn fuzz_idx_files_read_or_fail_cleanly(
        bytes in prop_oneof![
            hostile([vec![0, 0, 8, 3], 2u32.to_be_bytes().to_vec(), 2u32.to_be_bytes().to_vec(), 2u32.to_be_bytes().to_vec(), vec![7; 8]].concat()),
            (claim(), claim(), claim(), 0usize..32).prop_map(|(n, r, c, len)| [
                vec![0, 0, 8, 3], (n as u32).to_be_bytes().to_vec(), (r as u32).to_be_bytes().to_vec(), (c as u32).to_be_bytes().to_vec(), vec![1; len]
            ].concat()),
            hostile([vec![0, 0, 8, 1], 3u32.to_be_bytes().to_vec(), vec![1, 2, 3]].concat()),
        ],
        gzip in any::<bool>(),
    ) {
        use std::io::Write as _;
        let dir = scratch("fuzz-idx");
        let bytes = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            gz.finish().unwrap()
        } else {
            bytes
        };
        let path = write(&dir, "f-idx", &bytes);
        match mnist::read_images(&path) {
            Ok(i) => prop_assert_eq!(i.pixels.ncols(), i.rows * i.cols),
            Err(e) => prop_assert!(e.to_string().contains("f-idx"), "{}", e),
        }
        if let Ok(labels) = mnist::read_labels(&path) {
            prop_assert!(labels.iter().all(|&l| l < 10));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// BPE files: mutated honest files and merge chains of any shape. Reading is quick and
    /// bounded; what reads encodes and decodes any text back, quickly.
    #[test]
    fn fuzz_bpe_files_read_or_fail_cleanly(
        text in prop_oneof![
            hostile(doubling_bpe(8).into_bytes()),
            proptest::collection::vec((0usize..300, 0usize..300), 0..60).prop_map(|merges| {
                let mut s = String::from("tinymoe-bpe v1\nsplit words\n");
                for (k, (l, r)) in merges.into_iter().enumerate() {
                    s += &format!("{} = {l} + {r}\n", 256 + k);
                }
                s.into_bytes()
            }),
            (20usize..60).prop_map(|n| doubling_bpe(n).into_bytes()),
        ],
        sample in "[ab ]{0,64}",
    ) {
        let text = String::from_utf8_lossy(&text).into_owned();
        let started = Instant::now();
        match Bpe::from_text(&text, Path::new("f.bpe")) {
            Ok(bpe) => {
                let ids = bpe.encode(&sample);
                prop_assert_eq!(bpe.decode(&ids), sample);
                for id in 0..bpe.vocab_size() + 2 {
                    let _ = bpe.token_text(id);
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("f.bpe:"), "{}", e),
        }
        prop_assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    }

    /// Compact vocabularies over bytes: ids checked against the inner vocabulary, in order.
    #[test]
    fn fuzz_compact_files_read_or_fail_cleanly(
        text in prop_oneof![
            hostile(b"tinymoe-compact v1\ninner bytes\n2 = 97\n3 = 98\n".to_vec()),
            proptest::collection::vec(claim(), 0..20).prop_map(|ids| {
                let mut s = String::from("tinymoe-compact v1\ninner bytes\n");
                for (k, id) in ids.into_iter().enumerate() {
                    s += &format!("{} = {id}\n", 2 + k);
                }
                s.into_bytes()
            }),
        ],
        sample in "[a-c]{0,16}",
    ) {
        let text = String::from_utf8_lossy(&text).into_owned();
        match Compact::from_text(&text, Path::new("f.compact")) {
            Ok(c) => {
                prop_assert!(c.vocab_size() <= 2 + 256);
                let ids = c.encode(&sample);
                prop_assert!(ids.iter().all(|&id| id < c.vocab_size()));
                let _ = c.decode(&ids);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("f.compact:"), "{}", e),
        }
    }

    /// CSV data sets: labels and features of any size.
    #[test]
    fn fuzz_csv_files_read_or_fail_cleanly(
        bytes in prop_oneof![
            hostile(b"x,y,label\n0.1,0.2,0\n0.3,0.4,1\n".to_vec()),
            proptest::collection::vec((any::<f32>(), claim()), 1..10).prop_map(|rows| {
                rows.iter().map(|(x, l)| format!("{x},{l}\n")).collect::<String>().into_bytes()
            }),
        ]
    ) {
        let dir = scratch("fuzz-csv");
        let path = write(&dir, "d.csv", &bytes);
        match csv::load(&path) {
            Ok(d) => {
                prop_assert!(d.classes >= 2 && d.classes <= csv::MAX_CLASSES);
                prop_assert_eq!(d.x.nrows(), d.y.len());
            }
            Err(e) => prop_assert!(e.to_string().contains("d.csv"), "{}", e),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
