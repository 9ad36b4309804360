//! MNIST digits from IDX files: 60,000 training and 10,000 test images of 28×28 grey pixels,
//! each labelled 0–9 (LeCun, Cortes & Burges, <http://yann.lecun.com/exdb/mnist/>).
//!
//! The IDX format, all integers big-endian:
//! ```text
//!   bytes 0–1   0, 0
//!   byte  2     element type: 0x08 = unsigned byte
//!   byte  3     number of dimensions: 3 for images [n, rows, cols], 1 for labels [n]
//!   then        one u32 per dimension
//!   then        Π dims bytes of data, row-major
//! ```
//! so an images file starts with the magic number 0x00000803 and a labels file with 0x00000801.
//! Every header is checked against the file: a wrong magic number, a file shorter or longer than
//! its dimensions say, a label above 9, or as many labels as images not matching is an error
//! naming the file. A file that starts with gzip's magic bytes (1f 8b) is gunzipped first.
//!
//! Pixels become f32 features, standardised with the training set's mean and standard deviation
//! (the usual constants, as in PyTorch's MNIST examples):
//! ```text
//!   x = (pixel / 255 − 0.1307) / 0.3081          x [n, 784], one row per image
//! ```
//! The real files are fetched by `bash scripts/fetch-data.sh` into `data/mnist/`.

use crate::data::synthetic::Dataset;
use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Where `scripts/fetch-data.sh` puts the four files, relative to the repository root.
pub const DEFAULT_DIR: &str = "data/mnist";
/// The variable that moves the data folder: `$TINYMOE_DATA_DIR/mnist` instead of `data/mnist`
/// (a test points it at an empty folder to see the missing-data error).
pub const DATA_DIR_ENV: &str = "TINYMOE_DATA_DIR";

/// Where MNIST is looked for: `$TINYMOE_DATA_DIR/mnist` when the variable is set and not
/// empty, else [`DEFAULT_DIR`] (relative to the working directory).
pub fn default_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("mnist"),
        _ => PathBuf::from(DEFAULT_DIR),
    }
}

/// The command that fetches the real data.
pub const FETCH: &str = "bash scripts/fetch-data.sh";
/// Mean and standard deviation of the 60,000 training pixels, scaled to [0, 1].
pub const MEAN: f32 = 0.1307;
pub const STD: f32 = 0.3081;
/// MNIST images are 28×28.
pub const SIDE: usize = 28;

/// The most bytes an IDX file may unpack to: 1 GiB (MNIST's largest is 47 MB). A gzip stream
/// can expand a thousandfold, so the bound is enforced while unpacking, not after.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Raw images as stored: one row of `rows·cols` bytes (0 = white … 255 = black) per image.
#[derive(Debug, Clone)]
pub struct Images {
    /// [n, rows·cols]
    pub pixels: Array2<u8>,
    pub rows: usize,
    pub cols: usize,
}

/// The two standard splits, standardised: x [n, 784], y in 0..10.
#[derive(Debug, Clone)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
}

/// Which pair of files: `train-*` (60,000) or `t10k-*` (10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Loads both splits from `dir` (e.g. [`DEFAULT_DIR`]).
pub fn load(dir: &Path) -> Result<Mnist> {
    Ok(Mnist { train: load_split(dir, Split::Train)?, test: load_split(dir, Split::Test)? })
}

/// Loads one split from `dir`: `{train,t10k}-images-idx3-ubyte` and `…-labels-idx1-ubyte`,
/// each either raw or gzipped with a `.gz` suffix.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    let images_path = find_file(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = find_file(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let images = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if (images.rows, images.cols) != (SIDE, SIDE) {
        return Err(Error::BadFile {
            path: images_path,
            problem: format!("images are {}×{}, MNIST's are {SIDE}×{SIDE}", images.rows, images.cols),
        });
    }
    if labels.len() != images.pixels.nrows() {
        return Err(Error::BadFile {
            path: labels_path,
            problem: format!(
                "{} labels, but {} has {} images: the two files must describe the same digits",
                labels.len(),
                images_path.display(),
                images.pixels.nrows()
            ),
        });
    }
    Ok(Dataset { x: normalise(images.pixels.view()), y: labels, classes: 10 })
}

/// `dir/name`, or else `dir/name.gz`; a missing folder or file is an error that says how to
/// fetch the data.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let missing = |path: PathBuf, what: &str| Error::MissingData { path, what: what.into(), fetch: FETCH.into() };
    if !dir.is_dir() {
        return Err(missing(dir.to_path_buf(), "the MNIST folder"));
    }
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(missing(raw, "this MNIST file (raw or .gz)"))
    }
}

/// Reads an IDX images file (magic 0x00000803) into [n, rows·cols] bytes.
pub fn read_images(path: &Path) -> Result<Images> {
    let mut bytes = read_maybe_gzipped(path)?;
    let (dims, header) = parse_idx(path, &bytes, IMAGES_MAGIC, "images")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    // With n = 0 the data check passes whatever rows·cols claims; an image still cannot be
    // larger than a whole IDX file may be.
    let width = rows.checked_mul(cols).filter(|&w| w as u64 <= MAX_IDX_BYTES).ok_or_else(|| Error::BadFile {
        path: path.to_path_buf(),
        problem: format!("images of {rows}×{cols} pixels are larger than an IDX file may be ({MAX_IDX_BYTES} bytes)"),
    })?;
    bytes.drain(..header); // in place: no second 47 MB buffer
    let pixels = Array2::from_shape_vec((n, width), bytes).expect("parse_idx checked n·rows·cols bytes");
    Ok(Images { pixels, rows, cols })
}

/// Reads an IDX labels file (magic 0x00000801); every label must be a digit 0–9.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let bytes = read_maybe_gzipped(path)?;
    let (_, header) = parse_idx(path, &bytes, LABELS_MAGIC, "labels")?;
    let data = &bytes[header..];
    if let Some(i) = data.iter().position(|&label| label > 9) {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            problem: format!("label {i} is {}, but MNIST labels are digits 0–9", data[i]),
        });
    }
    Ok(data.iter().map(|&label| label as usize).collect())
}

/// x = (pixel/255 − MEAN) / STD, element by element: [n, d] bytes → [n, d] f32.
pub fn normalise(pixels: ArrayView2<u8>) -> Array2<f32> {
    // A byte has only 256 values: compute each once, then every pixel is a table lookup.
    let table: [f32; 256] = std::array::from_fn(|p| (p as f32 / 255.0 - MEAN) / STD);
    pixels.mapv(|p| table[p as usize])
}

/// The file's bytes, gunzipped if they start with gzip's magic bytes (whatever the name says).
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(MAX_IDX_BYTES as usize));
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .take(MAX_IDX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadFile { path: path.to_path_buf(), problem: format!("corrupt gzip data: {e}") })?;
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            problem: format!("unpacks to more than {MAX_IDX_BYTES} bytes, the most an IDX file may have"),
        });
    }
    Ok(out)
}

/// Checks an IDX header against `magic` and the file's length; returns the dimensions and the
/// header's length in bytes, after which exactly Π dims data bytes follow.
fn parse_idx(path: &Path, bytes: &[u8], magic: u32, what: &str) -> Result<(Vec<usize>, usize)> {
    let bad = |problem: String| Error::BadFile { path: path.to_path_buf(), problem };
    if bytes.len() < 4 {
        return Err(bad(format!("truncated: {} byte(s), but an IDX header needs at least 4", bytes.len())));
    }
    let found = u32::from_be_bytes(bytes[0..4].try_into().expect("slice of 4 bytes"));
    if found != magic {
        let hint = match found {
            IMAGES_MAGIC => " (this is an IDX images file)",
            LABELS_MAGIC => " (this is an IDX labels file)",
            _ => "",
        };
        return Err(bad(format!("wrong magic number 0x{found:08x}: IDX {what} files start with 0x{magic:08x}{hint}")));
    }
    // The last byte of the magic number is the number of dimensions.
    let n_dims = (magic & 0xff) as usize;
    let header = 4 + 4 * n_dims;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated: {} bytes, but the header of an IDX {what} file ({n_dims} dimension(s)) is {header}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..n_dims)
        .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().expect("slice of 4 bytes")) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} are too large to be a real file")))?;
    let data = &bytes[header..];
    if data.len() < expected {
        return Err(bad(format!(
            "truncated: the header says {dims:?} = {expected} bytes of data, but only {} follow it",
            data.len()
        )));
    }
    if data.len() > expected {
        return Err(bad(format!(
            "length mismatch: the header says {dims:?} = {expected} bytes of data, but {} follow it",
            data.len()
        )));
    }
    Ok((dims, header))
}
