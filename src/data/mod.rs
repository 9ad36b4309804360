//! Data sets as plain arrays: built-in synthetic tasks, text and tokenisers, and user files.
//!
//! Architecture invariant: data knows nothing of the engine's internals, moe or models;
//! it validates what it reads and returns `tinymoe::Error` naming the file and line.

pub mod batch;
pub mod bpe;
pub mod compact;
pub mod corpora;
pub mod csv;
pub mod gpt2;
pub mod mnist;
pub mod npy;
pub mod pretokenize;
pub mod real_corpus;
pub mod real_text;
pub mod synthetic;
pub mod text;
pub mod tokenizer;

pub use synthetic::Dataset;
