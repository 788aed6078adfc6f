//! lanes-consensus: PBFT ordering as a pure, sans-IO state machine (`handle(event) -> actions`),
//! the mempool, and a deterministic simulator that drives replicas through a seeded faulty
//! network.
//!
//! Built so far: the [`mempool`]. The PBFT core and the simulator are the rest of issue 4.
//! This crate depends only on `lanes-types`.

pub mod mempool;

pub use mempool::{AdmitError, Mempool, MempoolLimits};
