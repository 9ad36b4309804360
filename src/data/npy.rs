//! Arrays in and out as NumPy `.npy` files, so a learner can compare tinymoe's numbers with
//! NumPy's: `np.load("x.npy")` reads what [`write_npy`] wrote, and [`read_npy`] reads what
//! `np.save("x.npy", x)` wrote (f32 `<f4` and f64 `<f8`; C or Fortran order).
//!
//! A thin layer over the `ndarray-npy` crate (<https://docs.rs/ndarray-npy>) that gives its
//! errors the file's path. The format (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>):
//! ```text
//!   "\x93NUMPY" v1 v0  header_len (u16 LE)  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
//!   then the elements, Π shape of them, little-endian
//! ```
//! ```
//! # let dir = std::env::temp_dir().join(format!("tinymoe-npy-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).map_err(|e| tinymoe::Error::io(&dir, e))?;
//! use ndarray::{array, Array2};
//! let x = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]; // [2, 3]
//! let path = dir.join("x.npy");
//! tinymoe::data::npy::write_npy(&path, &x)?;
//! let back: Array2<f32> = tinymoe::data::npy::read_npy(&path)?;
//! assert_eq!(back, x);
//! # std::fs::remove_dir_all(&dir).map_err(|e| tinymoe::Error::io(&dir, e))?;
//! # Ok::<(), tinymoe::Error>(())
//! ```

use crate::error::{Error, Result};
use ndarray::{Array, ArrayBase, Data, Dimension};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteNpyError, WriteNpyExt};
use std::io::{BufReader, BufWriter, Write as _};
use std::path::Path;

/// Writes `array` (any shape; f32 or f64) to `path` in `.npy` format. The bytes go to
/// `path.tmp` first and are renamed into place, so a crash never leaves half a file.
pub fn write_npy<A, S, D>(path: &Path, array: &ArrayBase<S, D>) -> Result<()>
where
    A: WritableElement,
    S: Data<Elem = A>,
    D: Dimension,
{
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = BufWriter::new(file);
    let written = array.write_npy(&mut writer).and_then(|()| writer.flush().map_err(WriteNpyError::Io));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp); // the write already failed; report that error
        return Err(match e {
            WriteNpyError::Io(err) => Error::io(path, err),
            other => Error::BadFile { path: path.to_path_buf(), problem: format!("cannot write as .npy: {other}") },
        });
    }
    drop(writer);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads a `.npy` file into an array of the type asked for: `let x: Array2<f32> = read_npy(p)?`
/// (or `ArrayD<f64>` for any number of dimensions). A file of another element type or number of
/// dimensions, or one that is truncated or corrupt, is an error naming the file.
pub fn read_npy<A, D>(path: &Path) -> Result<Array<A, D>>
where
    A: ReadableElement,
    D: Dimension,
{
    check_npy_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Array::<A, D>::read_npy(BufReader::new(file)).map_err(|e| {
        let problem = match e {
            ReadNpyError::Io(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                "truncated: the file ends inside the .npy header".to_string()
            }
            ReadNpyError::Io(err) => return Error::io(path, err),
            ReadNpyError::WrongNdim(Some(expected), found) => {
                format!("holds a {found}-dimensional array, but a {expected}-dimensional one was asked for")
            }
            ReadNpyError::WrongDescriptor(descr) => {
                format!("holds elements of type {descr}, but {} were asked for", std::any::type_name::<A>())
            }
            ReadNpyError::MissingData => "truncated: the file ends before all the elements its header promises".into(),
            other => format!("not a usable .npy file: {other}"),
        };
        Error::BadFile { path: path.to_path_buf(), problem }
    })
}

/// The magic bytes every `.npy` file (and every array inside an `.npz`) starts with.
pub const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// What a `.npy` header declares, read without trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub descr: String,
    pub shape: Vec<usize>,
    /// Where the elements start, from the start of the `.npy` bytes.
    pub data_offset: usize,
    /// Π shape × the element size, if that fits in a u128 (it always does for ≤ 4 dims of u64).
    pub data_bytes: u128,
}

/// Parses the `.npy` header at the start of `bytes`. None when it is not one this parser
/// understands (another magic, a structured dtype, an odd dict): the caller then leaves the
/// file to ndarray-npy, which says what is wrong. Some(Err) when the header itself is
/// impossible for these bytes (its length runs past them).
pub fn declared(bytes: &[u8]) -> Option<std::result::Result<Declared, String>> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return None;
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes.get(8..12)?;
            (u32::from_le_bytes(b.try_into().ok()?) as usize, 12)
        }
        _ => return None,
    };
    let Some(text) = bytes.get(start..start + len) else {
        return Some(Err(format!(
            "truncated: the .npy header claims {len} bytes, but only {} follow its length field",
            bytes.len().saturating_sub(start)
        )));
    };
    let text = std::str::from_utf8(text).ok()?;
    let descr = dict_value(text, "descr")?;
    let descr = descr.strip_prefix('\'').or_else(|| descr.strip_prefix('"'))?;
    let descr: String = descr.chars().take_while(|&c| c != '\'' && c != '"').collect();
    let shape = dict_value(text, "shape")?.strip_prefix('(')?;
    let shape = &shape[..shape.find(')')?];
    let mut dims = Vec::new();
    for d in shape.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        dims.push(d.trim_end_matches('L').parse::<usize>().ok()?);
    }
    let digits: String =
        descr.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    let n: u128 = digits.parse().unwrap_or(1);
    let item = if descr.trim_start_matches(['<', '>', '|', '=']).starts_with('U') { 4 * n } else { n };
    let elements = dims.iter().fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    Some(Ok(Declared {
        descr,
        shape: dims,
        data_offset: start + len,
        data_bytes: elements.saturating_mul(item.max(1)),
    }))
}

/// The text after `'key':` in a Python dict literal.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = &text[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// Checks the `.npy` header at the start of `bytes` against the bytes that follow it: the
/// elements it declares must be there before anything is allocated for them (a header that
/// claims shape (10¹², 3) with 12 values would otherwise ask for terabytes). `available` is
/// how many bytes the array's data may have at most (the rest of the file).
pub fn check_declared(bytes: &[u8], available: u64) -> std::result::Result<(), String> {
    let Some(d) = declared(bytes) else { return Ok(()) };
    let d = d?;
    let room = (available as u128).saturating_sub(d.data_offset as u128);
    if d.data_bytes > room {
        return Err(format!(
            "truncated: the header declares shape {:?} of {} = {} bytes of data, but the file holds only {room}",
            d.shape, d.descr, d.data_bytes
        ));
    }
    Ok(())
}

/// The first bytes of a file (at most `limit`) and its length.
fn head(path: &Path, limit: u64) -> Result<(Vec<u8>, u64)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok((bytes, len))
}

/// [`check_declared`] on a `.npy` file: its header against its real length.
pub fn check_npy_file(path: &Path) -> Result<()> {
    // A v2/v3 header may be up to 4 GiB long; reading 1 MiB is enough for any real one, and a
    // longer claim is then checked against the file's length by `declared`.
    let (bytes, len) = head(path, 1 << 20)?;
    let result = match declared(&bytes) {
        Some(Err(_)) if (bytes.len() as u64) < len => Ok(()), // the header goes on past what was read
        _ => check_declared(&bytes, len),
    };
    result.map_err(|problem| Error::BadFile { path: path.to_path_buf(), problem })
}

/// [`check_declared`] on every array stored in an `.npz` (a zip of `.npy` files, stored
/// uncompressed by `np.savez`): each `.npy` header found in the archive must declare no more
/// data than the archive holds after it. Compressed members are not looked into (this build
/// cannot read them anyway, and says so).
pub fn check_npz_bytes(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], NPY_MAGIC).map(|p| p + from) {
        let rest = &bytes[at..];
        if let Some(Ok(d)) = declared(rest) {
            if d.data_bytes > (rest.len() as u128).saturating_sub(d.data_offset as u128) {
                return Err(format!(
                    "an array's header declares shape {:?} of {} = {} bytes of data, but the archive holds only {} \
                     bytes after it",
                    d.shape,
                    d.descr,
                    d.data_bytes,
                    rest.len().saturating_sub(d.data_offset)
                ));
            }
        }
        from = at + 1;
    }
    Ok(())
}

/// [`check_npz_bytes`] on a file.
pub fn check_npz_file(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    check_npz_bytes(&bytes).map_err(|problem| Error::BadFile { path: path.to_path_buf(), problem })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = NPY_MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn a_header_is_read_without_trusting_it() {
        let b = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", &[0; 48]);
        let d = declared(&b).unwrap().unwrap();
        assert_eq!((d.descr.as_str(), d.shape.as_slice(), d.data_bytes), ("<f8", &[2usize, 3][..], 48));
        assert!(check_declared(&b, b.len() as u64).is_ok());
        let big = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }", &[0; 96]);
        let msg = check_declared(&big, big.len() as u64).unwrap_err();
        assert!(msg.contains("(1000000000000, 3)") || msg.contains("[1000000000000, 3]"), "{msg}");
        assert!(msg.contains("24000000000000 bytes"), "{msg}");
        let scalar = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &[0; 4]);
        assert_eq!(declared(&scalar).unwrap().unwrap().data_bytes, 4);
        assert!(declared(b"not numpy at all").is_none());
        assert!(check_npz_bytes(&[b"PK..".to_vec(), big].concat()).is_err());
        assert!(check_npz_bytes(&[b"PK..".to_vec(), b].concat()).is_ok());
    }
}
