//! Heatmap PNGs: they are written, are real PNGs of a size that grows with the matrix, and
//! bad input (label counts, an empty matrix, a bad range) is an error naming the counts,
//! never a panic. NaN cells are drawn, not refused.
//!
//! The PNG size is read by hand: an 8-byte signature, then the IHDR chunk, whose data
//! (bytes 16..24 of the file) starts with the width and height as big-endian u32.

use ndarray::{Array2, Array3};
use std::path::{Path, PathBuf};
use tinymoe::plot::heatmap::{attention_grid, heatmap, heatmap_grid, Annotate, Heatmap};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// A fresh directory under the system temp dir, unique to this process and test.
fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-heatmap-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

/// (width, height) of the PNG at `path`, after checking its signature and IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 24, "{}: only {} bytes", path.display(), bytes.len());
    assert_eq!(bytes[..8], PNG_SIGNATURE, "{}: not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}: the first chunk is not IHDR", path.display());
    let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

fn labels(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A smooth test pattern with values in [0, 1].
fn pattern(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| (i * cols + j) as f64 / (rows * cols) as f64)
}

#[test]
fn a_labelled_heatmap_is_a_png_that_grows_with_the_matrix() {
    let dir = out_dir("grows");
    let small = pattern(3, 4);
    let (rows, cols) = (labels("domain ", 3), labels("expert ", 4));
    let h = Heatmap { x_desc: "expert", y_desc: "domain", ..Heatmap::new("routing", small.view(), &rows, &cols) };
    let small_path = dir.join("small.png");
    heatmap(&small_path, &h).expect("draws");
    let (w_small, h_small) = png_size(&small_path);

    let big = pattern(40, 60);
    let (rows, cols) = (labels("r", 40), labels("c", 60));
    let big_path = dir.join("big.png");
    heatmap(&big_path, &Heatmap::new("big", big.view(), &rows, &cols)).expect("draws");
    let (w_big, h_big) = png_size(&big_path);
    assert!(w_big > w_small && h_big > h_small, "{w_small}×{h_small} then {w_big}×{h_big}");
    assert!(w_big <= 2400 && h_big <= 2400, "{w_big}×{h_big} is too big");

    let huge = pattern(500, 700);
    let (rows, cols) = (labels("row ", 500), labels("col ", 700));
    let huge_path = dir.join("huge.png");
    heatmap(&huge_path, &Heatmap::new("huge", huge.view(), &rows, &cols)).expect("draws");
    let (w, h) = png_size(&huge_path);
    assert!(w <= 2400 && h <= 2400, "a 500×700 matrix gave a {w}×{h} image");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn long_labels_nan_and_constant_matrices_are_drawn() {
    let dir = out_dir("odd");
    let mut v = pattern(4, 5);
    v[[1, 2]] = f64::NAN;
    v[[3, 4]] = f64::INFINITY;
    let rows: Vec<String> =
        ["mathematics", "a much longer domain name than fits", "code", "poetry"].map(String::from).into();
    let cols = labels("expert number ", 5);
    let path = dir.join("nan.png");
    let h = Heatmap { annotate: Annotate::Always, ..Heatmap::new("with NaN", v.view(), &rows, &cols) };
    heatmap(&path, &h).expect("NaN is drawn grey, not an error");
    png_size(&path);

    let all_nan = Array2::from_elem((2, 2), f64::NAN);
    let two = labels("x", 2);
    heatmap(&dir.join("all-nan.png"), &Heatmap::new("all NaN", all_nan.view(), &two, &two)).expect("draws");
    let constant = Array2::from_elem((2, 2), 3.0);
    heatmap(&dir.join("constant.png"), &Heatmap::new("constant", constant.view(), &two, &two)).expect("draws");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_grid_has_one_panel_per_head() {
    let dir = out_dir("grid");
    let (heads, seq) = (4, 12);
    // Causal-looking weights: row i spreads evenly over keys 0..=i.
    let w = Array3::from_shape_fn((heads, seq, seq), |(h, i, j)| {
        if j <= i {
            (1.0 + (h * j) as f64) / (0..=i).map(|k| 1.0 + (h * k) as f64).sum::<f64>()
        } else {
            0.0
        }
    });
    let tokens: Vec<String> =
        "hello world!".chars().map(|c| if c == ' ' { "␣".into() } else { c.to_string() }).collect();
    let path = dir.join("heads.png");
    attention_grid(&path, "attention, layer 0", w.view(), &tokens, &tokens).expect("draws");
    let (w4, h4) = png_size(&path);

    let one = w.slice(ndarray::s![..1, .., ..]);
    let path1 = dir.join("one-head.png");
    attention_grid(&path1, "one head", one, &tokens, &tokens).expect("draws");
    let (w1, h1) = png_size(&path1);
    assert!(w4 > w1 && h4 > h1, "4 heads in 2×2 ({w4}×{h4}) should be bigger than 1 ({w1}×{h1})");

    // Panels of different sizes share one layout.
    let (a, b) = (pattern(2, 3), pattern(5, 2));
    let (ra, ca, rb, cb) = (labels("a", 2), labels("x", 3), labels("b", 5), labels("y", 2));
    let panels = [Heatmap::new("a", a.view(), &ra, &ca), Heatmap::new("b", b.view(), &rb, &cb)];
    heatmap_grid(&dir.join("mixed.png"), "mixed", &panels, 0).expect("draws");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn wrong_label_counts_are_errors_that_name_the_counts() {
    let dir = out_dir("errors");
    let v = pattern(3, 4);
    let (three, four, five) = (labels("l", 3), labels("l", 4), labels("l", 5));
    let path = dir.join("bad.png");

    let e = heatmap(&path, &Heatmap::new("t", v.view(), &four, &four)).expect_err("4 row labels for 3 rows");
    let msg = e.to_string();
    assert!(msg.contains("4 row labels") && msg.contains("3 rows"), "{msg}");
    assert!(msg.contains("bad.png"), "the error names the file: {msg}");

    let e = heatmap(&path, &Heatmap::new("t", v.view(), &three, &five)).expect_err("5 column labels for 4 columns");
    let msg = e.to_string();
    assert!(msg.contains("5 column labels") && msg.contains("4 columns"), "{msg}");

    let empty = Array2::<f64>::zeros((0, 4));
    let none: Vec<String> = vec![];
    let e = heatmap(&path, &Heatmap::new("t", empty.view(), &none, &four)).expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");

    let bad_range = Heatmap { range: Some((1.0, 1.0)), ..Heatmap::new("t", v.view(), &three, &four) };
    assert!(heatmap(&path, &bad_range).is_err());

    let w = Array3::<f64>::zeros((2, 3, 3));
    let e = attention_grid(&path, "t", w.view(), &three, &four).expect_err("4 key tokens for 3 keys");
    assert!(e.to_string().contains("4 column labels for a matrix with 3 columns"), "{e}");
    assert!(heatmap_grid(&path, "t", &[], 0).is_err(), "a grid of no panels");
    assert!(!path.exists(), "nothing is written for bad input");
    std::fs::remove_dir_all(dir).ok();
}

/// Writes the pictures to target/heatmap-preview/ for a human to look at (not run by default).
#[test]
#[ignore]
fn preview() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/heatmap-preview");
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = pattern(4, 5);
    v[[1, 2]] = f64::NAN;
    let rows: Vec<String> =
        ["mathematics", "a much longer domain name than fits", "code", "poetry"].map(String::from).into();
    let cols = labels("expert ", 5);
    let h = Heatmap { x_desc: "expert", y_desc: "domain", ..Heatmap::new("domain × expert", v.view(), &rows, &cols) };
    heatmap(&dir.join("routing.png"), &h).unwrap();
    let long_cols = labels("a long column label ", 6);
    heatmap(&dir.join("upright.png"), &Heatmap::new("upright columns", pattern(4, 6).view(), &rows, &long_cols))
        .unwrap();
    let big = pattern(40, 60);
    heatmap(&dir.join("big.png"), &Heatmap::new("40 × 60", big.view(), &labels("r", 40), &labels("c", 60))).unwrap();
    let huge = pattern(300, 200);
    heatmap(&dir.join("huge.png"), &Heatmap::new("300 × 200", huge.view(), &labels("row ", 300), &labels("c", 200)))
        .unwrap();
    let (heads, seq) = (4, 12);
    let w = Array3::from_shape_fn((heads, seq, seq), |(h, i, j)| {
        if j <= i {
            (1.0 + (h * j) as f64) / (0..=i).map(|k| 1.0 + (h * k) as f64).sum::<f64>()
        } else {
            0.0
        }
    });
    let tokens: Vec<String> =
        "hello world!".chars().map(|c| if c == ' ' { "␣".into() } else { c.to_string() }).collect();
    attention_grid(&dir.join("heads.png"), "attention, layer 0", w.view(), &tokens, &tokens).unwrap();
    let (a, b) = (pattern(2, 3), Array2::from_elem((5, 2), f64::NAN));
    let (ra, ca, rb, cb) = (labels("a", 2), labels("x", 3), labels("b", 5), labels("y", 2));
    let panels = [Heatmap::new("a", a.view(), &ra, &ca), Heatmap::new("all NaN", b.view(), &rb, &cb)];
    heatmap_grid(&dir.join("mixed.png"), "mixed sizes", &panels, 0).unwrap();
}
