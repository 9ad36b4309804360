//! Data sets as plain arrays: built-in synthetic tasks, text and tokenisers, and user files.
//!
//! Architecture invariant: data knows nothing of the engine's internals, moe or models;
//! it validates what it reads and returns `tinymoe::Error` naming the file and line.

pub mod csv;
pub mod synthetic;
pub mod text;
pub mod tokenizer;

pub use synthetic::Dataset;
