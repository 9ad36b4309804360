//! The library's one error type. Every variant about a file names the file; every variant
//! about a value names the value and the allowed range. Only the boundary (data, io, plot,
//! train's checks, cli) returns errors: the engine trusts validated inputs.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    /// (The field is not named `source`: that would make thiserror chain it, and the
    /// message would print the OS error twice.)
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// Saving a file (atomically, see [`crate::io::write_atomic`]) failed: names the file the
    /// caller asked for, not the temporary file, and whether an earlier version is still there.
    #[error("could not save {path}: {err}; {}", save_outcome(*.previous))]
    Save { path: PathBuf, err: std::io::Error, previous: bool },
    /// A data file has a bad line.
    #[error("{path}:{line}: {problem}")]
    Malformed { path: PathBuf, line: usize, problem: String },
    /// A setting is out of its allowed range.
    #[error("{name} = {value}: {problem}")]
    BadValue { name: String, value: String, problem: String },
    /// A name (preset, workload, model) that does not exist.
    #[error("unknown {what} {name:?} (expected one of: {expected})")]
    Unknown { what: String, name: String, expected: String },
    /// Training produced a NaN or infinite loss.
    #[error("the loss became {value} at step {step}; training stopped (the model keeps its last good weights)")]
    NonFiniteLoss { step: usize, value: f64 },
    /// A gradient held a NaN or infinite value.
    #[error("the gradient of {tensor} became {value} at step {step}; training stopped (the model keeps its last good weights)")]
    NonFiniteGrad { step: usize, tensor: String, value: f64 },
    /// A checkpoint that cannot be used: wrong magic, version or kind, truncated, corrupt.
    #[error("{path}: not a usable checkpoint: {problem}")]
    Checkpoint { path: PathBuf, problem: String },
    /// Drawing a picture failed.
    #[error("{path}: could not draw the plot: {problem}")]
    Plot { path: PathBuf, problem: String },
    /// A data file (IDX, .npy) or folder that cannot be used: wrong magic number, truncated,
    /// sizes that disagree, corrupt compression, an empty topic folder.
    #[error("{path}: {problem}")]
    BadFile { path: PathBuf, problem: String },
    /// A run that failed after it had saved a checkpoint: the cause, then the last good
    /// checkpoint and the command that continues from it.
    #[error("{cause}; {advice}")]
    Stopped { cause: Box<Error>, advice: String },
    /// A real data set that is not on this machine, and the command that fetches it.
    #[error("{path}: {what} is not there; fetch it with `{fetch}`")]
    MissingData { path: PathBuf, what: String, fetch: String },
}

/// What a failed save left: the file as it was, or no file.
fn save_outcome(previous: bool) -> &'static str {
    if previous {
        "the previous file is unchanged"
    } else {
        "nothing was written"
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an io::Error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Error {
        Error::Io { path: path.into(), err }
    }
    /// A value out of range: `bad_value("lr", -1.0, "must be > 0")`.
    pub fn bad_value(name: &str, value: impl std::fmt::Display, problem: &str) -> Error {
        Error::BadValue { name: name.to_string(), value: value.to_string(), problem: problem.to_string() }
    }
}
