//! lanes-consensus: PBFT ordering as a pure, sans-IO state machine, the mempool, and a
//! deterministic simulator that drives replicas through a seeded faulty network.
//!
//! - [`replica`]: the [`Replica`]: `handle(event, now) -> Vec<Action>`, and the types a driver
//!   sees (`events`);
//! - `log`, `normal`: the normal-case log; proposals, PREPARE, COMMIT, in-order delivery;
//! - `view_change`: VIEW-CHANGE / NEW-VIEW and [`plan_new_view`];
//! - `checkpoint`: CHECKPOINT votes, execution certificates, divergence;
//! - `catch_up`: learning we are behind and fetching committed blocks;
//! - `pool`, `forward`: pending transactions as proposals use them; client transactions;
//! - `fetch`: fetching the payloads of blocks known only by header;
//! - [`messages`]: every message replicas exchange, with its encoding and signed bytes;
//! - [`safety`]: the records a replica persists before it votes, and their recovery;
//! - [`context`]: what the replica asks of its host (signatures, transaction checks);
//! - [`mempool`]: pending transactions, de-duplicated, bounded and fair when full (fee
//!   priority, eviction of the cheapest, per-sender cap, replacement, rejected-hash cache);
//! - [`byzantine`]: the messages byzantine validators send (simulator and test builds);
//! - [`sim`]: the deterministic simulator with network, crash and byzantine faults.
//!
//! No clock, socket, thread or random source is used outside [`sim`] (whose randomness is a
//! seeded ChaCha stream). This crate depends only on `lanes-types`.

#![warn(missing_docs)]

pub mod byzantine;
mod catch_up;
mod checkpoint;
mod config;
pub mod context;
mod events;
mod fetch;
mod forward;
mod log;
pub mod mempool;
pub mod messages;
mod normal;
mod pool;
pub mod replica;
mod restore;
pub mod safety;
pub mod sim;
mod view_change;

pub use context::{Context, Ed25519Keys};
pub use mempool::{AdmitError, Admitted, Mempool, MempoolLimits, TxMeta};
pub use messages::Message;
pub use replica::{Action, Alarm, Config, Event, Recovered, Replica, Stats};
pub use safety::{RestoreError, SafetyWrite};
pub use view_change::{plan_new_view, Plan};
