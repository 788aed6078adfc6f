//! The types a driver exchanges with a [`Replica`](crate::Replica): [`Event`]s in, [`Action`]s
//! out (with [`Alarm`]s among them), what it recovered at start-up ([`Recovered`]) and the
//! counters it can read ([`Stats`]).

use crate::messages::Message;
use crate::safety::SafetyWrite;
use lanes_types::{Block, Bytes, CheckpointCertificate, CommitCertificate, ExecRoots, Hash};

/// Something that happened to the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes from validator `from` (authenticated by the transport, otherwise untrusted).
    Message {
        /// The sender's index.
        from: u32,
        /// The encoded [`Message`].
        bytes: Vec<u8>,
    },
    /// A client transaction the node has checked statelessly.
    ClientTx(Bytes),
    /// A timer set with [`Action::SetTimer`] fired (early or spurious firings are harmless).
    Timer,
    /// The block at `height` was executed and stored (in one atomic write) with these roots.
    Executed {
        /// Height of the block.
        height: u64,
        /// Its hash.
        block_hash: Hash,
        /// The state and receipts roots the executor computed.
        roots: ExecRoots,
    },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make these safety writes durable (synced) before any later action.
    Persist(Vec<SafetyWrite>),
    /// Send a message to one validator.
    Send {
        /// Recipient index.
        to: u32,
        /// The message.
        message: Message,
    },
    /// Send a message to every other validator.
    Broadcast(Message),
    /// Execute and store this committed block; heights come strictly in order. Reply with
    /// [`Event::Executed`].
    Deliver {
        /// The block.
        block: Block,
        /// A quorum's COMMITs for it.
        certificate: CommitCertificate,
    },
    /// A quorum certified the roots at a height (the execution certificate): store it.
    Certified(CheckpointCertificate),
    /// Answer validator `to` with [`Message::SyncResponse`] holding committed blocks
    /// `from..=to_height` from storage (those it has).
    ServeSync {
        /// The asking validator.
        to: u32,
        /// First height.
        from: u64,
        /// Last height.
        to_height: u64,
    },
    /// Deliver [`Event::Timer`] at (or after) this time.
    SetTimer {
        /// Milliseconds, on the same clock as `now`.
        at: u64,
    },
    /// Something an operator must see.
    Alarm(Alarm),
}

/// Loud conditions for logs, metrics and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// A quorum certified a state root or receipts root that differs from ours: this replica
    /// stops signing checkpoints until its state is restored.
    Divergence {
        /// Height of the block.
        height: u64,
        /// Roots we computed.
        ours: ExecRoots,
        /// Roots the quorum certified.
        certified: ExecRoots,
    },
    /// A decided block does not extend our committed chain: more than f validators are faulty.
    /// Delivery stops.
    Fork {
        /// Height of the block that does not fit.
        height: u64,
    },
    /// A validator signed two different blocks for one (view, height), or a primary proposed two.
    Equivocation {
        /// The offender.
        validator: u32,
        /// View of the conflict.
        view: u64,
        /// Height of the conflict.
        height: u64,
    },
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Network messages dropped as invalid (undecodable, bad signature, wrong sender, out of
    /// bounds).
    pub rejected_messages: u64,
    /// View changes this replica started or joined.
    pub view_changes: u64,
    /// Blocks delivered.
    pub delivered_blocks: u64,
    /// Catch-up requests sent.
    pub sync_requests: u64,
    /// Forwarded transactions refused by [`Context::check_txs`](crate::Context::check_txs)
    /// or [`Context::tx_meta`](crate::Context::tx_meta).
    pub rejected_txs: u64,
    /// Pending transactions pushed out of the mempool by richer ones: evicted as the
    /// cheapest when it was full, or replaced by a higher fee for the same sender and nonce.
    pub displaced_txs: u64,
}

/// What the node recovered from storage at start-up.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Height of the last executed and stored block (0 at genesis).
    pub committed_height: u64,
    /// Its hash ([`Hash::ZERO`] at genesis).
    pub committed_hash: Hash,
    /// The roots stored with it (signed again in our CHECKPOINT, so that peers that
    /// restarted too learn our height from its heartbeat).
    pub committed_roots: ExecRoots,
    /// The latest execution certificate in storage.
    pub stable: Option<CheckpointCertificate>,
    /// All persisted safety records (key, value).
    pub safety: Vec<(Vec<u8>, Vec<u8>)>,
}
