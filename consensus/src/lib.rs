//! lanes-consensus: PBFT ordering as a pure, sans-IO state machine (`handle(event) -> actions`),
//! the mempool, and a deterministic simulator that drives replicas through a seeded faulty
//! network.
//!
//! Not built yet: this crate is the subject of issue 4. It depends only on `lanes-types`.
