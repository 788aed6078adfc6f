//! The node's own state: `GET /status`, `GET /validators`, and the `GET /events` items.

use crate::required;
use serde::{Deserialize, Serialize};

/// `GET /status`: the chain, this validator, consensus and execution progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The chain id of the genesis.
    pub chain_id: String,
    /// The minimum fee a transaction must pay (native asset).
    pub min_fee: u64,
    /// This validator's index in the genesis.
    pub validator: u32,
    /// This validator's name in the genesis.
    pub name: String,
    /// Height of the last executed and stored block.
    pub height: u64,
    /// Its hash (hex).
    pub block_hash: String,
    /// The state root after it (hex).
    pub state_root: String,
    /// Current PBFT view.
    pub view: u64,
    /// Primary of the current view.
    pub primary: u32,
    /// Whether a view change is under way.
    pub in_view_change: bool,
    /// Highest height with an execution certificate (the stable checkpoint).
    pub certified_height: u64,
    /// Pending transactions in the mempool.
    pub mempool: usize,
    /// Validators connected over QUIC.
    pub peers: usize,
    /// The height at which our root differed from the certified one, if it did.
    #[serde(deserialize_with = "required")]
    pub diverged_at: Option<u64>,
    /// A state transfer under way, if any.
    #[serde(deserialize_with = "required")]
    pub state_sync: Option<String>,
    /// Whether this validator votes (false while a new or wiped database holds its votes).
    pub voting: bool,
    /// The height it holds its votes until, once decided.
    #[serde(deserialize_with = "required")]
    pub voting_hold_until: Option<u64>,
    /// The lowest block still stored (above 1 once old blocks are pruned).
    pub lowest_block: u64,
}

/// One entry of `GET /validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// Index in the genesis.
    pub index: u32,
    /// Name in the genesis.
    pub name: String,
    /// Ed25519 public key (hex).
    pub public_key: String,
    /// Its network address (`host:port`).
    pub address: String,
    /// Whether this is the validator answering.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Whether a QUIC connection to it is up (`None` for the answering validator itself).
    #[serde(deserialize_with = "required")]
    pub connected: Option<bool>,
}

/// A committed block as `GET /events` streams it (event `block`, one per block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockEvent {
    /// Height.
    pub height: u64,
    /// Block hash (hex).
    pub hash: String,
    /// Transactions in it.
    pub txs: usize,
    /// Transactions that succeeded.
    pub ok_txs: usize,
    /// State root after it (hex).
    pub state_root: String,
    /// Proposer's timestamp, milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// View it was committed in.
    pub view: u64,
    /// Execution time, milliseconds.
    pub exec_ms: f64,
}
