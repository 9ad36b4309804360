//! `.npy` in and out: round trips in f32 and f64, any shape, errors naming the file; and, when
//! the anchors' Python with NumPy is installed (~/.venv-anchors), that NumPy reads what we write
//! and we read what NumPy writes. Without it that test prints a note and passes.

use ndarray::{Array, Array1, Array2, Array3, ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use tinymoe::data::npy::{read_npy, write_npy};
use tinymoe::Error;

/// A fresh folder under the system temp dir, unique to this test.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-npy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn f32_and_f64_arrays_round_trip_exactly() {
    let dir = tmp_dir("round-trip");
    // Values that are not exact in decimal, plus the awkward ones.
    let x32 = Array2::from_shape_fn((3, 5), |(i, j)| (i as f32 - 1.3) * (j as f32 + 0.1).sqrt());
    let mut x32 = x32;
    x32[[0, 0]] = f32::MIN_POSITIVE;
    x32[[0, 1]] = -0.0;
    x32[[0, 2]] = f32::INFINITY;
    let p = dir.join("x32.npy");
    write_npy(&p, &x32).unwrap();
    let back: Array2<f32> = read_npy(&p).unwrap();
    assert_eq!(
        back.as_slice().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        x32.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert!(!dir.join("x32.npy.tmp").exists(), "the temp file is renamed away");

    let x64 = Array3::from_shape_fn((2, 3, 4), |(a, b, c)| (a * 12 + b * 4 + c) as f64 / 7.0);
    let p = dir.join("x64.npy");
    write_npy(&p, &x64).unwrap();
    assert_eq!(read_npy::<f64, _>(&p).unwrap(), x64);
    // Read back as a dynamic-rank array too.
    let any: ArrayD<f64> = read_npy(&p).unwrap();
    assert_eq!(any.shape(), &[2, 3, 4]);
    assert_eq!(any, x64.into_dyn());

    // A transposed view (not C-contiguous) is written as the array it shows.
    let m = Array2::from_shape_fn((2, 3), |(i, j)| (10 * i + j) as f32);
    let p = dir.join("t.npy");
    write_npy(&p, &m.t()).unwrap();
    assert_eq!(read_npy::<f32, _>(&p).unwrap(), m.t().to_owned());

    // Empty and zero-dimensional arrays.
    let empty = Array2::<f32>::zeros((0, 7));
    write_npy(&dir.join("empty.npy"), &empty).unwrap();
    assert_eq!(read_npy::<f32, _>(&dir.join("empty.npy")).unwrap(), empty);
    let scalar = Array::from_elem(IxDyn(&[]), 2.5f64);
    write_npy(&dir.join("scalar.npy"), &scalar).unwrap();
    assert_eq!(read_npy::<f64, IxDyn>(&dir.join("scalar.npy")).unwrap(), scalar);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Asserts `err` is a BadFile about `path` whose message contains `needle`.
fn check_bad_file(err: Error, path: &Path, needle: &str) {
    let msg = err.to_string();
    assert!(matches!(&err, Error::BadFile { path: p, .. } if p == path), "{err:?}");
    assert!(msg.starts_with(&path.display().to_string()) && msg.contains(needle), "expected {needle:?} in: {msg}");
    println!("ok: {msg}");
}

#[test]
fn unusable_files_are_errors_naming_the_file() {
    let dir = tmp_dir("errors");
    let p = dir.join("x.npy");
    write_npy(&p, &Array2::<f32>::ones((4, 4))).unwrap();

    check_bad_file(read_npy::<f64, ndarray::Ix2>(&p).unwrap_err(), &p, "holds elements of type");
    check_bad_file(read_npy::<f32, ndarray::Ix1>(&p).unwrap_err(), &p, "2-dimensional");

    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    check_bad_file(read_npy::<f32, ndarray::Ix2>(&cut).unwrap_err(), &cut, "truncated");
    std::fs::write(&cut, &bytes[..20]).unwrap();
    check_bad_file(read_npy::<f32, ndarray::Ix2>(&cut).unwrap_err(), &cut, "truncated");

    let junk = dir.join("junk.npy");
    std::fs::write(&junk, b"this is not numpy at all").unwrap();
    check_bad_file(read_npy::<f32, ndarray::Ix2>(&junk).unwrap_err(), &junk, "not a usable .npy file");

    let missing = dir.join("missing.npy");
    let err = read_npy::<f32, ndarray::Ix2>(&missing).unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path == &missing), "{err:?}");

    let nowhere = dir.join("no-such-folder/x.npy");
    let err = write_npy(&nowhere, &Array1::<f64>::zeros(3)).unwrap_err();
    assert!(err.to_string().contains("no-such-folder"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn numpy_reads_what_we_write_and_we_read_what_numpy_writes() {
    let python = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".venv-anchors/bin/python"));
    let Some(python) = python.filter(|p| p.is_file()) else {
        println!("note: ~/.venv-anchors/bin/python is absent, skipping the NumPy check");
        return;
    };
    let dir = tmp_dir("numpy");
    let x32 = Array2::from_shape_fn((3, 4), |(i, j)| i as f32 * 0.1 - j as f32 / 3.0);
    let x64 = Array3::from_shape_fn((2, 2, 3), |(a, b, c)| (a as f64 + 1.0) / (b as f64 + c as f64 + 3.0));
    write_npy(&dir.join("ours32.npy"), &x32).unwrap();
    write_npy(&dir.join("ours64.npy"), &x64).unwrap();
    // NumPy checks our files against the same formulas, then writes its own: one C-order f32, one
    // Fortran-order f64.
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = np.load(d + "/ours32.npy"); b = np.load(d + "/ours64.npy")
i, j = np.indices((3, 4)); ea = (i.astype(np.float32) * np.float32(0.1) - j.astype(np.float32) / np.float32(3.0))
A, B, C = np.indices((2, 2, 3)); eb = (A + 1.0) / (B + C + 3.0)
assert a.dtype == np.float32 and a.shape == (3, 4) and np.array_equal(a, ea), a
assert b.dtype == np.float64 and b.shape == (2, 2, 3) and np.array_equal(b, eb), b
np.save(d + "/theirs32.npy", np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
np.save(d + "/theirs64.npy", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(3, 2) / 8))
print("numpy", np.__version__, "ok")
"#;
    let out = std::process::Command::new(&python).arg("-c").arg(script).arg(&dir).output().unwrap();
    assert!(out.status.success(), "numpy failed:\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    let theirs32: Array2<f32> = read_npy(&dir.join("theirs32.npy")).unwrap();
    assert_eq!(theirs32, Array2::from_shape_fn((2, 3), |(i, j)| (3 * i + j) as f32 / 4.0));
    let theirs64: Array2<f64> = read_npy(&dir.join("theirs64.npy")).unwrap();
    assert_eq!(theirs64, Array2::from_shape_fn((3, 2), |(i, j)| (2 * i + j) as f64 / 8.0));
    std::fs::remove_dir_all(&dir).unwrap();
}
