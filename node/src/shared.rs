//! What the node's threads share: storage, a status snapshot, metrics counters, and the
//! channels into the consensus thread and out to block followers.

use super::hold::Hold;
use lanes_consensus::AdmitError;
use lanes_net::NetHandle;
use lanes_storage::Store;
use lanes_types::{Bytes, Genesis, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

/// An input to the consensus thread.
pub enum Input {
    /// A message from a validator.
    Net {
        /// Sender index (authenticated by QUIC/TLS).
        from: u32,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Client transactions that passed the stateless checks, in order.
    Submit {
        /// Encoded signed transactions.
        txs: Vec<Bytes>,
        /// Where the mempool's answers go, one per transaction.
        reply: tokio::sync::oneshot::Sender<Vec<Result<Hash, AdmitError>>>,
    },
    /// The executor stored a block.
    Executed {
        /// Its height.
        height: u64,
        /// Its hash.
        block_hash: Hash,
        /// The roots we computed.
        roots: lanes_types::ExecRoots,
    },
    /// Whether the mempool holds this transaction (for `GET /tx/{hash}`).
    Pending {
        /// The transaction's hash.
        hash: Hash,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// The executor installed a state snapshot (its head and certificate), or refused it.
    StateInstalled(Result<(lanes_storage::Head, lanes_types::CheckpointCertificate), String>),
    /// Stop the thread.
    Shutdown,
}

/// The consensus and execution state shown by `/status` (updated by the owning threads; the
/// API answers it as a [`lanes_api::Status`]).
#[derive(Debug, Clone, Default)]
pub struct StatusSnapshot {
    /// Current view.
    pub view: u64,
    /// Primary of the current view.
    pub primary: u32,
    /// Whether a view change is under way.
    pub in_view_change: bool,
    /// Height of the last executed and stored block.
    pub height: u64,
    /// Its hash.
    pub block_hash: String,
    /// State root after it.
    pub state_root: String,
    /// Highest height with an execution certificate (stable checkpoint).
    pub certified_height: u64,
    /// Pending transactions.
    pub mempool: usize,
    /// The height at which our root differed from the certified one, if it did.
    pub diverged_at: Option<u64>,
    /// A state transfer under way, if any.
    pub state_sync: Option<String>,
    /// Whether this validator votes, or holds its votes (a new or wiped database) while it
    /// asks how far the chain went or until it has executed a height.
    pub voting_hold: Hold,
}

/// A committed block as followers see it (`GET /events`).
pub use lanes_api::BlockEvent;

/// Prometheus counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Blocks executed and stored.
    pub committed_blocks: AtomicU64,
    /// Transactions in them.
    pub committed_txs: AtomicU64,
    /// View changes started or joined.
    pub view_changes: AtomicU64,
    /// Pending transactions evicted by better-paying ones or replaced by a higher fee.
    pub displaced_txs: AtomicU64,
    /// Network messages dropped as invalid.
    pub rejected_messages: AtomicU64,
    /// Messages dropped because the consensus thread was busy.
    pub dropped_inputs: AtomicU64,
    /// Divergence alarms.
    pub divergence_alarms: AtomicU64,
    /// Equivocation alarms.
    pub equivocation_alarms: AtomicU64,
    /// Transactions refused by the API.
    pub rejected_txs: AtomicU64,
    /// Of those, refused against state: nonce below the account's.
    pub refused_nonce_used: AtomicU64,
    /// Of those, refused against state: nonce more than `api::NONCE_WINDOW` ahead.
    pub refused_nonce_ahead: AtomicU64,
    /// Of those, refused against state: native balance below the fee.
    pub refused_fee: AtomicU64,
    /// Execution time of the last block, microseconds.
    pub last_exec_us: AtomicU64,
    /// Total execution time, microseconds.
    pub exec_us_total: AtomicU64,
    /// Certified state snapshots installed (state transfers).
    pub state_syncs: AtomicU64,
    /// Messages that could not be sent: larger than a frame, or refused by the network.
    pub unsendable_messages: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Everything the API and the node's threads share.
pub struct Shared {
    /// The database.
    pub store: Arc<Store>,
    /// The genesis.
    pub genesis: Genesis,
    /// This validator's index.
    pub me: u32,
    /// Status snapshot.
    pub status: Mutex<StatusSnapshot>,
    /// Counters.
    pub metrics: Metrics,
    /// Into the consensus thread.
    pub inputs: SyncSender<Input>,
    /// Committed blocks, for followers (`/events`).
    pub blocks: tokio::sync::broadcast::Sender<BlockEvent>,
    /// The network, for sending and peer status.
    pub net: NetHandle,
    /// The network's frame limit (`NetConfig::max_frame`): no message may be larger.
    pub max_frame: usize,
    /// The message rewriter of a byzantine test node (`lanes node --byzantine`).
    #[cfg(feature = "byzantine")]
    pub byzantine: Option<Mutex<super::byzantine::Byzantine>>,
}

impl Shared {
    /// A copy of the status snapshot.
    pub fn status(&self) -> StatusSnapshot {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Updates the status snapshot.
    pub fn update_status(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
