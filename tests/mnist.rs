//! The IDX reader on small files each test writes itself (raw and gzipped, well-formed and
//! broken), and on the real MNIST in data/mnist/ when `bash scripts/fetch-data.sh` has put it
//! there (otherwise that test prints a note and passes).

use flate2::{write::GzEncoder, Compression};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tinymoe::data::mnist::{self, Split};
use tinymoe::Error;

const PIXELS: usize = 28 * 28;

/// A fresh folder under the system temp dir, unique to this test.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-mnist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An IDX file: magic 0x000008{n_dims}, one big-endian u32 per dim, then the bytes.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// `n` 28×28 images whose pixel p of image i is (37·i + p) mod 256: every byte value occurs.
fn image_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (0..PIXELS).map(move |p| ((37 * i + p) % 256) as u8)).collect()
}

fn images_file(n: usize) -> Vec<u8> {
    idx(&[n as u32, 28, 28], &image_bytes(n))
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    idx(&[labels.len() as u32], labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes a split's two files into `dir` (adding `.gz` and compressing when `gz`).
fn write_split(dir: &Path, prefix: &str, images: &[u8], labels: &[u8], gz: bool) {
    for (kind, bytes) in [("images-idx3", images), ("labels-idx1", labels)] {
        let (name, bytes) = if gz {
            (format!("{prefix}-{kind}-ubyte.gz"), gzip(bytes))
        } else {
            (format!("{prefix}-{kind}-ubyte"), bytes.to_vec())
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Asserts `result` is a BadFile error about `path` whose message contains `needle`.
fn check_bad_file<T: std::fmt::Debug>(result: tinymoe::Result<T>, path: &Path, needle: &str) {
    let err = result.expect_err("a broken file must not load");
    let msg = err.to_string();
    assert!(matches!(&err, Error::BadFile { path: p, .. } if p == path), "wrong variant or path: {err:?}");
    assert!(msg.starts_with(&path.display().to_string()), "the message must start with the path: {msg}");
    assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
    println!("ok: {msg}");
}

#[test]
fn small_idx_files_load_with_the_right_values_and_normalisation() {
    let dir = tmp_dir("small");
    let labels = [7u8, 0, 9];
    write_split(&dir, "train", &images_file(3), &labels_file(&labels), false);
    write_split(&dir, "t10k", &images_file(2), &labels_file(&labels[..2]), false);

    let data = mnist::load(&dir).unwrap();
    assert_eq!(data.train.x.dim(), (3, PIXELS));
    assert_eq!(data.train.y, vec![7, 0, 9]);
    assert_eq!(data.train.classes, 10);
    assert_eq!(data.test.x.dim(), (2, PIXELS));
    assert_eq!(data.test.y, vec![7, 0]);

    // Hand-computed: pixel 0 → (0 − 0.1307)/0.3081 = −0.42421; pixel 255 → (1 − 0.1307)/0.3081 = 2.82149.
    // Image 0 has pixel p = p mod 256, so position 0 holds 0 and position 255 holds 255.
    assert!((data.train.x[[0, 0]] - (-0.424_213)).abs() < 1e-5, "{}", data.train.x[[0, 0]]);
    assert!((data.train.x[[0, 255]] - 2.821_487).abs() < 1e-5, "{}", data.train.x[[0, 255]]);
    // Every value, against the formula in f64.
    let raw = image_bytes(3);
    for (i, (&x, &byte)) in data.train.x.iter().zip(&raw).enumerate() {
        let expected = (byte as f64 / 255.0 - 0.1307) / 0.3081;
        assert!((x as f64 - expected).abs() < 1e-5, "element {i}: pixel {byte} gave {x}, expected {expected}");
    }

    let images = mnist::read_images(&dir.join("train-images-idx3-ubyte")).unwrap();
    assert_eq!((images.rows, images.cols), (28, 28));
    assert_eq!(images.pixels.as_slice().unwrap(), &raw[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gzipped_files_load_the_same_as_raw_ones() {
    let (raw_dir, gz_dir) = (tmp_dir("raw"), tmp_dir("gz"));
    let (images, labels) = (images_file(4), labels_file(&[1, 2, 3, 4]));
    write_split(&raw_dir, "t10k", &images, &labels, false);
    write_split(&gz_dir, "t10k", &images, &labels, true);
    let raw = mnist::load_split(&raw_dir, Split::Test).unwrap();
    let gz = mnist::load_split(&gz_dir, Split::Test).unwrap();
    assert_eq!(raw.x, gz.x);
    assert_eq!(raw.y, gz.y);
    // Detection is by content, not by name: a gzipped file without .gz still loads.
    let plain_name = gz_dir.join("plain-name-ubyte");
    std::fs::write(&plain_name, gzip(&images)).unwrap();
    assert_eq!(mnist::read_images(&plain_name).unwrap().pixels.as_slice().unwrap(), &image_bytes(4)[..]);
    std::fs::remove_dir_all(&raw_dir).unwrap();
    std::fs::remove_dir_all(&gz_dir).unwrap();
}

#[test]
fn broken_files_are_errors_naming_the_file_and_the_problem() {
    let dir = tmp_dir("broken");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let images = images_file(2);
    let labels = labels_file(&[3, 4]);

    // A labels file where images are expected, and the other way round.
    let p = write("swapped-images", &labels);
    check_bad_file(mnist::read_images(&p), &p, "wrong magic number 0x00000801");
    let p = write("swapped-labels", &images);
    check_bad_file(mnist::read_labels(&p), &p, "wrong magic number 0x00000803");
    let p = write("not-idx", b"hello, world\n");
    check_bad_file(mnist::read_images(&p), &p, "wrong magic");

    // Too short: inside the magic number, inside the dimensions, inside the data.
    let p = write("tiny", &images[..3]);
    check_bad_file(mnist::read_images(&p), &p, "truncated");
    let p = write("short-header", &images[..10]);
    check_bad_file(mnist::read_images(&p), &p, "truncated");
    let p = write("short-data", &images[..images.len() - 1]);
    check_bad_file(mnist::read_images(&p), &p, "truncated: the header says [2, 28, 28] = 1568 bytes");
    let p = write("short-labels", &labels[..labels.len() - 1]);
    check_bad_file(mnist::read_labels(&p), &p, "truncated");

    // Too long: bytes the header does not account for.
    let p = write("long-data", &[&images[..], &[0u8; 5]].concat());
    check_bad_file(mnist::read_images(&p), &p, "length mismatch");

    // A label that is not a digit.
    let p = write("label-ten", &labels_file(&[1, 10, 2]));
    check_bad_file(mnist::read_labels(&p), &p, "label 1 is 10");

    // Corrupt gzip: a flipped byte in the compressed stream, and a stream cut short.
    let mut gz = gzip(&images);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    let p = write("flipped.gz", &gz);
    check_bad_file(mnist::read_images(&p), &p, "corrupt gzip");
    let gz = gzip(&images);
    let p = write("cut.gz", &gz[..gz.len() / 2]);
    check_bad_file(mnist::read_images(&p), &p, "corrupt gzip");

    // A gzip stream that is fine but holds a truncated IDX file.
    let p = write("gz-short.gz", &gzip(&images[..images.len() - 100]));
    check_bad_file(mnist::read_images(&p), &p, "truncated");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_split_whose_files_disagree_is_an_error_naming_both() {
    let dir = tmp_dir("mismatch");
    write_split(&dir, "train", &images_file(3), &labels_file(&[1, 2]), false);
    let labels_path = dir.join("train-labels-idx1-ubyte");
    check_bad_file(mnist::load_split(&dir, Split::Train), &labels_path, "2 labels, but");
    let msg = mnist::load_split(&dir, Split::Train).unwrap_err().to_string();
    assert!(msg.contains("train-images-idx3-ubyte has 3 images"), "{msg}");

    // Images of another size are not MNIST.
    write_split(&dir, "t10k", &idx(&[2, 4, 4], &[0; 32]), &labels_file(&[1, 2]), false);
    check_bad_file(mnist::load_split(&dir, Split::Test), &dir.join("t10k-images-idx3-ubyte"), "4×4");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_folder_or_file_says_how_to_fetch_the_data() {
    let dir = std::env::temp_dir().join(format!("tinymoe-mnist-nowhere-{}", std::process::id()));
    let err = mnist::load(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, Error::MissingData { path, .. } if path == &dir), "{err:?}");
    assert!(msg.starts_with(&dir.display().to_string()) && msg.contains("bash scripts/fetch-data.sh"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    println!("ok: {msg}");

    // The folder exists but the labels do not.
    let dir = tmp_dir("half");
    std::fs::write(dir.join("train-images-idx3-ubyte"), images_file(1)).unwrap();
    let err = mnist::load_split(&dir, Split::Train).unwrap_err();
    assert!(matches!(&err, Error::MissingData { path, .. } if path == &dir.join("train-labels-idx1-ubyte")), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real data set, when scripts/fetch-data.sh has fetched it.
#[test]
fn real_mnist_has_the_canonical_counts_and_checksums() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(mnist::DEFAULT_DIR);
    if !dir.is_dir() {
        println!("note: {} is absent, skipping the real-MNIST checks (bash scripts/fetch-data.sh)", dir.display());
        return;
    }
    // CRC-32 of the four original files (the fetch script checks their md5s).
    for (name, crc) in [
        ("train-images-idx3-ubyte", 0xe9f4_d8b3u32),
        ("train-labels-idx1-ubyte", 0xe0cb_4ad2),
        ("t10k-images-idx3-ubyte", 0x9137_3bdf),
        ("t10k-labels-idx1-ubyte", 0x4ab9_eff9),
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(crc32fast::hash(&bytes), crc, "{name}: not the original MNIST file");
    }

    let start = std::time::Instant::now();
    let data = mnist::load(&dir).unwrap();
    println!("loaded MNIST (raw IDX → normalised f32) in {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
    assert_eq!(data.train.x.dim(), (60_000, 784));
    assert_eq!(data.test.x.dim(), (10_000, 784));
    let counts = |y: &[usize]| {
        let mut c = [0usize; 10];
        y.iter().for_each(|&d| c[d] += 1);
        c
    };
    assert_eq!(counts(&data.train.y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(counts(&data.test.y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);

    // Mean train pixel 33.32 = 0.1307 × 255; so the normalised training set has mean ≈ 0, std ≈ 1.
    let images = mnist::read_images(&dir.join("train-images-idx3-ubyte")).unwrap();
    let mean_pixel = images.pixels.iter().map(|&p| p as f64).sum::<f64>() / images.pixels.len() as f64;
    assert!((mean_pixel - 33.32).abs() < 0.005, "mean train pixel {mean_pixel}");
    let n = data.train.x.len() as f64;
    let mean = data.train.x.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (data.train.x.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 1e-3 && (std - 1.0).abs() < 1e-3, "normalised train set: mean {mean}, std {std}");
}
