//! `tinymoe inspect` and `tinymoe export` as a user meets them: on a freshly trained LM,
//! inspect lists every tensor and confirms the checksum, a corrupted copy is a one-line error
//! naming the file, and export writes a safetensors file that Python's `safetensors` + NumPy
//! read with the documented names, shapes and values (skipped, with a note, when no Python
//! with those packages is around; CI installs them).

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Trains the quick LM into `dir` and returns its checkpoint.
fn quick_lm(dir: &Path) -> PathBuf {
    let o = tinymoe(&["train", "lm", "--quick", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "train lm: {}", stderr(&o));
    dir.join("model.ckpt")
}

/// The tensor names the checkpoint header lists (read with the library, not the CLI).
fn header_names(ckpt: &Path) -> Vec<String> {
    let (header, _) = tinymoe::checkpoint::read(ckpt).unwrap();
    header.tensors.into_iter().map(|t| t.name).collect()
}

#[test]
fn inspect_prints_header_every_tensor_and_checksum_ok() {
    let dir = tmp_dir("ok");
    let ckpt = quick_lm(&dir);
    let o = tinymoe(&["inspect", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("checksum OK"), "{out}");
    assert!(out.contains("transformer_lm") && out.contains("format version  1"), "{out}");
    assert!(out.contains("\"d_model\"") && out.contains("\"tokenizer\""), "config and meta: {out}");
    assert!(out.contains("L2 norm") && out.contains("total parameters: "), "{out}");
    assert!(out.contains("training state  epoch") && out.contains("optimiser step"), "{out}");
    let names = header_names(&ckpt);
    assert!(names.len() > 10, "{names:?}");
    for name in &names {
        assert!(out.lines().any(|l| l.trim_start().starts_with(&format!("{name} "))), "{name} listed: {out}");
    }
    // The layer norms start at weight 1: their mean after a short run is near 1, a sanity check
    // that the statistics come from the weights.
    let ln = out.lines().find(|l| l.trim_start().starts_with("blocks.0.ln1.weight ")).unwrap();
    let mean: f64 = ln.split_whitespace().last().unwrap().parse().unwrap();
    assert!((mean - 1.0).abs() < 0.2, "{ln}");
}

#[test]
fn inspect_of_a_bit_flipped_or_missing_file_is_one_line_naming_it() {
    let dir = tmp_dir("bad");
    let ckpt = quick_lm(&dir);
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let flipped = dir.join("flipped.ckpt");
    std::fs::write(&flipped, &bytes).unwrap();
    let o = tinymoe(&["inspect", flipped.to_str().unwrap()]);
    assert_clean_error(&o, &["flipped.ckpt"]);
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "nothing printed from a corrupt file: {}", stdout(&o));
    assert_clean_error(&tinymoe(&["inspect", dir.join("nope.ckpt").to_str().unwrap()]), &["nope.ckpt"]);
}

#[test]
fn export_writes_safetensors_that_python_reads_as_documented() {
    let dir = tmp_dir("export");
    let ckpt = quick_lm(&dir);
    let st = dir.join("model.safetensors");
    let manifest = dir.join("manifest.json");
    let o = tinymoe(&[
        "export",
        "--model",
        ckpt.to_str().unwrap(),
        "--out",
        st.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("embed.tok.weight") && stdout(&o).contains("blocks.0.attn.q.weight"));
    assert!(std::fs::metadata(&st).unwrap().len() > 1000);

    // Our own reader takes it back into the model, bit-exactly.
    type Saved = tinymoe::checkpoint::Trained<tinymoe::models::transformer_lm::Params<f32>, tinymoe::train::LmState>;
    let (_, saved): (_, Saved) = tinymoe::checkpoint::load(&ckpt, "transformer_lm").unwrap();
    let mut model = saved.model;
    let original = model.clone();
    tinymoe::engine::params::zero(&mut model);
    assert!(tinymoe::interchange::import_safetensors(&st, &mut model).unwrap().is_empty());
    assert_eq!(model, original);

    // A non-LM file gives a clean error.
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"junk").unwrap();
    assert_clean_error(&tinymoe(&["export", "--model", junk.to_str().unwrap(), "--out", "x"]), &["junk.ckpt"]);

    // And a real client reads it.
    let Some(python) = python_with_safetensors() else {
        eprintln!("NOTE: skipped the Python check: no python with `safetensors` and `numpy` (CI installs them)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_safetensors.py");
    let o = Command::new(&python).arg(&script).arg(&st).arg(&manifest).output().unwrap();
    assert!(o.status.success(), "{}: {}{}", python.display(), stdout(&o), stderr(&o));
    eprintln!("{}", stdout(&o).trim());
}

/// The first Python that can `import safetensors, numpy`: `$TINYMOE_PYTHON`, CI's venv, the
/// anchors venv, then `python3` on the PATH.
fn python_with_safetensors() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("TINYMOE_PYTHON").map(PathBuf::from).into_iter().collect();
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python"));
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".venv-anchors/bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    candidates.into_iter().find(|p| {
        Command::new(p).args(["-c", "import safetensors, numpy"]).output().map(|o| o.status.success()).unwrap_or(false)
    })
}
