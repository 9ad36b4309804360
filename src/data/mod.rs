//! Data sets as plain arrays: built-in synthetic tasks and user files.
//!
//! Architecture invariant: data knows nothing of the engine's internals, moe or models;
//! it validates what it reads and returns `tinymoe::Error` naming the file and line.

pub mod csv;
pub mod synthetic;

pub use synthetic::Dataset;
