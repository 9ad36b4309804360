//! Mixture-of-Experts: routing on top of the engine.
//!
//! Today: the dense soft mixture of MLP experts ([`mixture`]). The routing issue adds the
//! routers, top-k sparse dispatch, sequence-level and domain-classifier routing, router
//! losses, interventions and routing metrics here.
//!
//! Architecture invariant: `moe` uses only `engine`; it knows nothing of models, data, io,
//! experiments or the CLI.

pub mod mixture;
