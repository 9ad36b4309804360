//! The engine: arrays in, arrays out. Hand-written forward and backward passes for every
//! layer and loss, the optimisers, seeded initialisation and the gradient checker.
//!
//! Architecture invariant: the engine does no IO, never prints, and knows nothing of
//! `moe`, `models`, `data`, `io`, `experiments`, `cli` or `plot` (tests/layering.rs checks).
//! Its functions trust their inputs (validated at the data/io/cli boundary): a shape
//! mismatch is a bug and panics with a message naming the layer and both shapes.

pub mod float;
pub mod gradcheck;
pub mod init;
pub mod layers;
pub mod losses;
pub mod ops;
pub mod optim;
pub mod params;

pub use float::Float;
pub use init::{rng, Rng};
pub use params::Tensors;
