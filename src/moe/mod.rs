//! Mixture-of-Experts: routing on top of the engine.
//!
//! - [`expert`]: an MLP expert or a transformer-stack expert behind one interface;
//! - [`router`]: the linear or 2-layer feed-forward gate, optionally noisy;
//! - [`routing`]: the decision (dense, top-k, capacity and dropping, forced, switched-off,
//!   steered, assigned) and its backward;
//! - [`layer`]: router + experts + sparse dispatch, token- or sequence-level;
//! - [`interventions`]: freeze all but one expert, train only the router, add an expert;
//! - [`losses`]: Switch load balancing, z-loss, entropy regularisers;
//! - [`metrics`] and [`steer`]: what the experiments measure about routing;
//! - [`mixture`]: the dense soft mixture of MLP experts of E1 and the `mlp-moe` benchmark.
//!
//! Architecture invariant: `moe` uses only `engine`; it knows nothing of models, data, io,
//! experiments or the CLI.

pub mod expert;
pub mod interventions;
pub mod layer;
pub mod losses;
pub mod metrics;
pub mod mixture;
pub mod router;
pub mod routing;
pub mod steer;
