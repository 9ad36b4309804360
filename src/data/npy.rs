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
