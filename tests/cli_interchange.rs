//! `tinymoe export` and `tinymoe import` through the binary, for every kind of checkpoint:
//! export → import gives back the checkpoint's weights bit for bit; a tensor changed in the file
//! (by us, or by Python's `safetensors`) changes exactly that tensor; a file that does not fit is
//! a one-line error naming the file and the tensor, and writes nothing; the imported checkpoint
//! loads in `inspect` and, for a language model, in `generate`.

mod common;

use common::cli::{assert_clean_error, s, stderr, stdout, tinymoe, tmp_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use tinymoe::checkpoint::{self, NamedTensors};
use tinymoe::interchange::{export_safetensors, read_metadata};

/// One run of `train ARGS --out DIR`, shared by the tests of this file (trained once).
fn trained(cell: &'static OnceLock<PathBuf>, name: &str, args: &[&str]) -> &'static Path {
    cell.get_or_init(|| {
        let dir = tmp_dir(name);
        let mut all = args.to_vec();
        all.extend(["--out", s(&dir)]);
        let o = tinymoe(&all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        dir.join("model.ckpt")
    })
}

/// The quick MoE language model (`train moe --quick`, seconds).
fn moe_ckpt() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    trained(&CELL, "moe", &["train", "moe", "--quick"])
}

/// The quick language model (`train lm --quick`, seconds).
fn lm_ckpt() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    trained(&CELL, "lm", &["train", "lm", "--quick"])
}

/// `tinymoe export` of `ckpt` into `out` (and a manifest beside it); returns its stdout.
fn export(ckpt: &Path, out: &Path) -> String {
    let manifest = out.with_extension("json");
    let o = tinymoe(&["export", "--model", s(ckpt), "--out", s(out), "--manifest", s(&manifest)]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    stdout(&o)
}

fn import(weights: &Path, into: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", "--weights", s(weights), "--into", s(into), "--out", s(out)];
    args.extend(extra);
    tinymoe(&args)
}

/// Every tensor of a checkpoint by name, read without its model type.
fn tensors(ckpt: &Path) -> (checkpoint::Header, NamedTensors) {
    checkpoint::read_tensors(ckpt, |_| true).unwrap()
}

/// The names of the tensors whose bits differ between two checkpoints (same names and shapes
/// asserted).
fn differing(a: &Path, b: &Path) -> Vec<String> {
    let ((_, ta), (_, tb)) = (tensors(a), tensors(b));
    assert_eq!(ta.0.len(), tb.0.len());
    let bits = |t: &ndarray::ArrayD<f32>| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    ta.0.iter()
        .zip(&tb.0)
        .filter(|((na, a), (nb, b))| {
            assert_eq!((na, a.shape()), (nb, b.shape()));
            bits(a) != bits(b)
        })
        .map(|((n, _), _)| n.clone())
        .collect()
}

/// Writes `tensors` (our names and layouts) as a safetensors file with `metadata`.
fn write_file(path: &Path, tensors: &NamedTensors, metadata: &BTreeMap<String, String>) {
    export_safetensors(path, tensors, metadata).unwrap();
}

#[test]
fn an_moe_lm_exports_and_imports_back_bit_for_bit() {
    let dir = tmp_dir("roundtrip");
    let ckpt = moe_ckpt();
    let st = dir.join("moe.safetensors");
    let out = export(ckpt, &st);
    assert!(out.contains("moe-lm: 42 tensors"), "{out}");
    for name in [
        "shared.0.attn.q.weight",
        "ln_moe.weight",
        "moe.router.net.layers.0.weight",
        "moe.experts.3.mlp.layers.1.weight",
        "head.weight",
    ] {
        assert!(out.contains(name), "{name} listed: {out}");
    }
    // Exporting is deterministic: the same checkpoint gives the same bytes.
    let again = dir.join("again.safetensors");
    export(ckpt, &again);
    assert_eq!(std::fs::read(&st).unwrap(), std::fs::read(&again).unwrap());
    assert_eq!(read_metadata(&st).unwrap()["tinymoe.kind"], "moe-lm");

    let new = dir.join("new.ckpt");
    let o = import(&st, ckpt, &new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("every tensor is bit for bit"), "{}", stdout(&o));
    assert!(stdout(&o).contains("weights only"), "says the training state is dropped: {}", stdout(&o));
    assert!(differing(ckpt, &new).is_empty());

    // Same kind and config; the meta keeps the settings, records the import, drops the state.
    let ((old, _), (head, _)) = (tensors(ckpt), tensors(&new));
    assert_eq!((&head.kind, &head.config, &head.tensors.len()), (&old.kind, &old.config, &old.tensors.len()));
    assert_eq!(head.meta["spec"], old.meta["spec"]);
    assert_eq!(head.meta["imported_from"]["weights"], s(&st));
    assert!(head.meta.get("training").is_none() && old.meta.get("training").is_some());
    let o = tinymoe(&["inspect", s(&new)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("training state  none") && stdout(&o).contains("imported_from"), "{}", stdout(&o));
    // Weights only: it cannot be resumed, and says so.
    let o = tinymoe(&["train", "moe", "--resume", s(&new), "--out", s(&dir.join("resumed"))]);
    assert_clean_error(&o, &["new.ckpt", "no training state"]);

    // And a real client reads the export as documented.
    if let Some(python) = python_with_safetensors() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_safetensors.py");
        let o = Command::new(&python).arg(&script).arg(&st).arg(st.with_extension("json")).output().unwrap();
        assert!(o.status.success(), "{}: {}{}", python.display(), stdout(&o), stderr(&o));
    }
}

#[test]
fn a_tensor_changed_in_the_file_changes_exactly_that_tensor() {
    let dir = tmp_dir("changed");
    let ckpt = moe_ckpt();
    let (_, mut model) = tensors(ckpt);
    // A Linear weight, stored transposed: [96, 256] here, [256, 96] in the file.
    let name = "moe.experts.2.mlp.layers.0.w";
    let t = &mut model.0.iter_mut().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(t.shape(), [96, 256]);
    let want = t[[3, 200]] + 1.5;
    t[[3, 200]] = want;
    let st = dir.join("changed.safetensors");
    write_file(&st, &model, &BTreeMap::from([("format".to_string(), "pt".to_string())]));

    let new = dir.join("new.ckpt");
    let o = import(&st, ckpt, &new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("1 of 42 tensors differ from {}: {name}", s(ckpt))), "{}", stdout(&o));
    assert_eq!(differing(ckpt, &new), [name]);
    let (_, imported) = tensors(&new);
    let got = &imported.0.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(got[[3, 200]].to_bits(), want.to_bits(), "the changed value lands at its place, transposed back");
}

#[test]
fn a_file_written_by_python_imports() {
    let Some(python) = python_with_safetensors() else {
        eprintln!("NOTE: skipped: no python with `safetensors` and `numpy` (CI installs them)");
        return;
    };
    let dir = tmp_dir("python");
    let ckpt = moe_ckpt();
    let st = dir.join("moe.safetensors");
    export(ckpt, &st);
    // Python doubles the head (exactly, in f32) and saves with its own writer and no tinymoe metadata.
    let edited = dir.join("edited.safetensors");
    let code = "import sys\n\
                from safetensors.numpy import load_file, save_file\n\
                t = load_file(sys.argv[1])\n\
                t['head.weight'] = t['head.weight'] * 2\n\
                save_file(t, sys.argv[2], metadata={'format': 'pt'})\n";
    let o = Command::new(&python).args(["-c", code, s(&st), s(&edited)]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let new = dir.join("new.ckpt");
    let o = import(&edited, ckpt, &new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(differing(ckpt, &new), ["head.w"]);
    let ((_, old), (_, imported)) = (tensors(ckpt), tensors(&new));
    let head = |m: &NamedTensors| m.0.iter().find(|(n, _)| n == "head.w").unwrap().1.clone();
    assert_eq!(head(&imported), head(&old) * 2.0);
}

#[test]
fn a_file_that_does_not_fit_is_one_clean_error_and_writes_nothing() {
    let dir = tmp_dir("misfit");
    let ckpt = moe_ckpt();
    let (_, model) = tensors(ckpt);
    let meta = BTreeMap::new();
    let new = dir.join("new.ckpt");

    // A missing tensor: named, with the file.
    let missing = dir.join("missing.safetensors");
    write_file(&missing, &NamedTensors(model.0.iter().filter(|(n, _)| n != "head.w").cloned().collect()), &meta);
    assert_clean_error(
        &import(&missing, ckpt, &new, &[]),
        &["missing.safetensors", "1 missing tensor(s): head.weight"],
    );
    assert!(!new.exists());

    // A wrong shape.
    let mut wrong = model.clone();
    wrong.0.iter_mut().find(|(n, _)| n == "ln_f.weight").unwrap().1 = ndarray::ArrayD::ones(vec![95]);
    let misshapen = dir.join("misshapen.safetensors");
    write_file(&misshapen, &wrong, &meta);
    assert_clean_error(
        &import(&misshapen, ckpt, &new, &[]),
        &["misshapen.safetensors", "tensor ln_f.weight has shape [95], the model expects [96]"],
    );
    assert!(!new.exists());

    // A non-finite value.
    let mut nan = model.clone();
    nan.0.iter_mut().find(|(n, _)| n == "embed.pos").unwrap().1[[0, 0]] = f32::NAN;
    let with_nan = dir.join("nan.safetensors");
    write_file(&with_nan, &nan, &meta);
    assert_clean_error(&import(&with_nan, ckpt, &new, &[]), &["nan.safetensors", "NaN", "embed.pos"]);
    assert!(!new.exists());

    // An extra tensor: an error unless --allow-extra.
    let mut extra = model.clone();
    extra.0.push(("stray.w".into(), ndarray::ArrayD::zeros(vec![2, 3])));
    let with_extra = dir.join("extra.safetensors");
    write_file(&with_extra, &extra, &meta);
    assert_clean_error(&import(&with_extra, ckpt, &new, &[]), &["extra.safetensors", "stray.weight", "--allow-extra"]);
    assert!(!new.exists());
    let o = import(&with_extra, ckpt, &new, &["--allow-extra"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ignored 1 tensor(s)") && stdout(&o).contains("stray.weight"), "{}", stdout(&o));
    assert!(differing(ckpt, &new).is_empty());
}

#[test]
fn an_lm_goes_through_export_import_and_generates_the_same_text() {
    let dir = tmp_dir("lm");
    let ckpt = lm_ckpt();
    let st = dir.join("lm.safetensors");
    let out = export(ckpt, &st);
    assert!(out.contains("transformer_lm") && out.contains("blocks.0.attn.q.weight"), "{out}");
    let new = dir.join("new.ckpt");
    let o = import(&st, ckpt, &new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(differing(ckpt, &new).is_empty());
    let o = tinymoe(&["inspect", s(&new)]);
    assert!(o.status.success() && stdout(&o).contains("training state  none"), "{}{}", stdout(&o), stderr(&o));
    let generate = |m: &Path| {
        let o = tinymoe(&["generate", "--model", s(m), "--prompt", "The ", "--tokens", "40", "--seed", "3"]);
        assert!(o.status.success(), "generate: {}", stderr(&o));
        stdout(&o).replace(s(m), "MODEL")
    };
    let text = generate(&new);
    assert!(text.contains("The "), "{text}");
    assert_eq!(text, generate(ckpt), "the same weights continue the prompt the same way");
}

#[test]
fn a_classifier_exports_and_imports_back() {
    let dir = tmp_dir("classifier");
    let o = tinymoe(&["train", "--preset", "spirals-moe", "--epochs", "1", "--out", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = dir.join("model.ckpt");
    let st = dir.join("classifier.safetensors");
    let out = export(&ckpt, &st);
    assert!(
        out.contains("classifier") && out.contains("gate.layers.0.weight") && out.contains("experts.3.layers.2.bias"),
        "{out}"
    );
    let new = dir.join("new.ckpt");
    let o = import(&st, &ckpt, &new, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(differing(&ckpt, &new).is_empty());
    assert!(tinymoe(&["inspect", s(&new)]).status.success());
}

#[test]
fn unknown_kinds_and_junk_are_clean_errors() {
    let dir = tmp_dir("junk");
    let moe = moe_ckpt();
    let lm = lm_ckpt();
    let new = dir.join("new.ckpt");
    let moe_st = dir.join("moe.safetensors");
    export(moe, &moe_st);

    // A junk weights file, a junk checkpoint, a missing file: each named.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"junk").unwrap();
    assert_clean_error(&import(&junk, moe, &new, &[]), &["junk.bin", "not a safetensors file"]);
    assert_clean_error(&import(&moe_st, &junk, &new, &[]), &["junk.bin"]);
    assert_clean_error(&import(&dir.join("nope.safetensors"), moe, &new, &[]), &["nope.safetensors"]);
    assert_clean_error(&tinymoe(&["export", "--model", s(&junk), "--out", s(&dir.join("x.st"))]), &["junk.bin"]);

    // The weights of another kind of model.
    assert_clean_error(&import(&moe_st, lm, &new, &[]), &["moe.safetensors", "\"moe-lm\"", "\"transformer_lm\""]);
    // Into itself.
    let copy = dir.join("copy.ckpt");
    std::fs::copy(moe, &copy).unwrap();
    assert_clean_error(&import(&moe_st, &copy, &copy, &[]), &["--out", "itself"]);
    assert!(!new.exists());

    // A kind this tinymoe cannot decode still exports (by name), but cannot be imported into.
    type Lm = tinymoe::checkpoint::Trained<tinymoe::models::transformer_lm::Params<f32>, tinymoe::train::LmState>;
    let (header, saved): (_, Lm) = checkpoint::load(lm, "transformer_lm").unwrap();
    let mystery = dir.join("mystery.ckpt");
    checkpoint::save(&mystery, "mystery", &header.config, &saved, serde_json::json!({})).unwrap();
    let st = dir.join("mystery.safetensors");
    assert!(export(&mystery, &st).contains("mystery: "));
    assert_clean_error(
        &import(&st, &mystery, &new, &[]),
        &["mystery.ckpt", "\"mystery\"", "transformer_lm", "moe-lm", "classifier"],
    );
    assert!(!new.exists());
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

/// `tinymoe data export` writes the data the run trained on: an MoE LM's sequences with their
/// domain labels, a language model's windows (consecutive ones share a token), a classifier's
/// rows; a file that is not a checkpoint is a one-line error.
#[test]
fn data_export_writes_each_runs_own_data_as_npy() {
    use tinymoe::data::npy::read_npy;
    let dir = tmp_dir("data-export");
    let o = tinymoe(&["data", "export", "--model", s(moe_ckpt()), "--out", s(&dir.join("moe"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tokens: ndarray::Array2<i64> = read_npy(&dir.join("moe/tokens.npy")).unwrap();
    let labels: ndarray::Array1<i64> = read_npy(&dir.join("moe/labels.npy")).unwrap();
    assert_eq!(tokens.nrows(), labels.len());
    // moe-lm-quick: 24 training sequences of each of 4 domains, bytes (or padding 256).
    assert_eq!(labels.len(), 96);
    for d in 0..4 {
        assert_eq!(labels.iter().filter(|&&l| l == d).count(), 24);
    }
    assert!(tokens.iter().all(|&t| (0..=256).contains(&t)));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("moe/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["pad_id"], 256);
    assert_eq!(tokens.ncols(), meta["max_len"].as_u64().unwrap() as usize + 1);

    let o = tinymoe(&["data", "export", "--model", s(lm_ckpt()), "--out", s(&dir.join("lm"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: ndarray::Array2<i64> = read_npy(&dir.join("lm/tokens.npy")).unwrap();
    assert!(w.nrows() > 1);
    for r in 1..w.nrows() {
        assert_eq!(w[[r - 1, w.ncols() - 1]], w[[r, 0]], "window {r} does not start where {} ended", r - 1);
    }
    let junk = dir.join("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_clean_error(&tinymoe(&["data", "export", "--model", s(&junk), "--out", s(&dir.join("x"))]), &[s(&junk)]);
}
