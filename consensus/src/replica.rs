//! The PBFT replica: a pure state machine, `handle(event, now) -> Vec<Action>`.
//!
//! This file holds the types a driver sees ([`Config`], [`Event`], [`Action`], [`Alarm`],
//! [`Recovered`], [`Stats`]), event dispatch, and the normal case (proposals, PREPARE, COMMIT,
//! in-order delivery). View changes live in `view_change.rs`, checkpoints and catch-up in
//! `checkpoint.rs`.
//!
//! # Rules that make pipelining safe
//!
//! Blocks are chained by parent hash and several heights may be in flight. A replica PREPAREs
//! the block at height h in view v only if the block's parent is the block at h-1 that it has
//! itself *prepared in view v* (or the committed / stably checkpointed block at h-1). So a
//! prepared certificate at h implies f+1 honest replicas prepared its parent in the same view,
//! which is what lets NEW-VIEW rebuild one consistent chain from the highest-view certificate
//! at each height (see `view_change.rs`).
//!
//! # Persistence contract
//!
//! An [`Action::Persist`] must be durable before the driver carries out any later action of the
//! same batch: every vote is preceded by the record that stops this replica from ever signing a
//! different block for the same (view, height), even after a crash.

use crate::context::Context;
use crate::mempool::{AdmitError, Mempool, MempoolLimits};
use crate::messages::{vote_bytes, Message, NewView, Phase, PreparedCert, ViewChange, Vote};
use crate::safety::{self, RestoreError, SafetyWrite};
use crate::view_change::{plan_new_view, reproposed};
use lanes_types::cert::checkpoint_message;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{
    payload_digest, tx_hash, Block, BlockHeader, Bytes, CheckpointCertificate, CommitCertificate,
    Genesis, Hash, Signature, ValidatorSet, ValidatorSignature,
};
use std::collections::{BTreeMap, HashSet};

/// Most transactions in one forwarded batch.
pub const MAX_FORWARD_TXS: usize = 4096;
/// Forwarded transactions are flushed once this many bytes are buffered.
const FORWARD_FLUSH_BYTES: usize = 1 << 20;
/// Votes for views further ahead than this are dropped.
pub const MAX_VIEW_AHEAD: u64 = 1 << 16;
/// Longest exponent of the view-change back-off.
const MAX_BACKOFF: u32 = 16;
/// Most distinct blocks remembered at one height.
const MAX_BLOCKS_PER_SLOT: usize = 4;
/// Why a proposal waits: a block below it is unknown here.
pub(crate) const BEHIND: Reject = "behind: a block below the proposal is unknown";

/// Parameters of a replica, normally derived from genesis with [`Config::from_genesis`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain id every block and signature is bound to.
    pub chain_id: String,
    /// The validator set (n = 3f+1 or more).
    pub validators: ValidatorSet,
    /// This replica's index in `validators`.
    pub me: u32,
    /// Heights that may be in flight above the last stable checkpoint.
    pub window: u64,
    /// Most transactions in a block.
    pub max_block_txs: usize,
    /// Most bytes of transactions in a block.
    pub max_block_bytes: usize,
    /// Most bytes in one transaction.
    pub max_tx_bytes: usize,
    /// The primary cuts a block at most this long after a transaction becomes proposable.
    pub block_interval_ms: u64,
    /// Base view-change timeout; doubles with each view change that makes no progress.
    pub view_timeout_ms: u64,
    /// Cap of the view-change timeout.
    pub max_view_timeout_ms: u64,
    /// Most blocks asked for in one catch-up request.
    pub sync_batch: u64,
    /// Mempool bounds.
    pub mempool: MempoolLimits,
}

impl Config {
    /// The configuration of validator `me` under `genesis`.
    pub fn from_genesis(genesis: &Genesis, me: u32) -> Config {
        let p = &genesis.params;
        Config {
            chain_id: genesis.chain_id.clone(),
            validators: genesis.validator_set(),
            me,
            window: p.watermark_window,
            max_block_txs: p.max_block_txs as usize,
            max_block_bytes: (p.max_block_txs as usize)
                .saturating_mul(p.max_tx_bytes as usize)
                .min(32 << 20),
            max_tx_bytes: p.max_tx_bytes as usize,
            block_interval_ms: p.block_interval_ms,
            view_timeout_ms: p.view_timeout_ms,
            max_view_timeout_ms: p.view_timeout_ms.saturating_mul(64),
            sync_batch: 64,
            mempool: MempoolLimits::default(),
        }
    }

    /// Most prepared certificates one VIEW-CHANGE carries (heights in flight are bounded by the
    /// window; restarts and catch-up can leave a few more).
    pub fn max_prepared_in_view_change(&self) -> u64 {
        4 * self.window
    }

    /// An upper bound on the encoded size of any message a replica with this configuration
    /// sends (PRE-PREPARE, votes, CHECKPOINT, VIEW-CHANGE, NEW-VIEW, forwarded transactions,
    /// block replies). Catch-up answers ([`Message::SyncResponse`]) are built by the node,
    /// which bounds them itself. The node checks this against the network's frame limit.
    pub fn max_message_bytes(&self) -> usize {
        let n = self.validators.len();
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height: 0,
            parent: Hash::ZERO,
            view: 0,
            proposer: 0,
            timestamp_ms: 0,
            payload_digest: Hash::ZERO,
        }
        .to_bytes()
        .len();
        let signatures = 4 + n * (4 + 64);
        let checkpoint_cert = 8 + 32 + 32 + signatures;
        let prepared_cert = 8 + header + signatures;
        let max_prepared = self.max_prepared_in_view_change() as usize;
        let view_change = 8 + 4 + 1 + checkpoint_cert + 4 + max_prepared * prepared_cert + 64;
        let new_view = 8 + 4 + n * view_change + 64;
        let block = header + 4 + self.max_block_txs * 4 + self.max_block_bytes;
        let forward = 4 + FORWARD_FLUSH_BYTES + self.max_tx_bytes + MAX_FORWARD_TXS * 4;
        1 + [8 + block, view_change, new_view, forward]
            .into_iter()
            .max()
            .unwrap_or(0)
    }

    fn check(&self) {
        assert!(
            self.validators.len() >= 4,
            "PBFT needs at least 4 validators"
        );
        assert!((self.me as usize) < self.validators.len(), "me not in set");
        assert!(self.window >= 1 && self.max_block_txs >= 1 && self.sync_batch >= 1);
        assert!(self.view_timeout_ms >= 1 && self.max_view_timeout_ms >= self.view_timeout_ms);
    }
}

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
    /// The block at `height` was executed and stored (in one atomic write) with this root.
    Executed {
        /// Height of the block.
        height: u64,
        /// Its hash.
        block_hash: Hash,
        /// The state root the executor computed.
        state_root: Hash,
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
    /// A quorum certified the state root at a height (the execution certificate): store it.
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
    /// A quorum certified a state root that differs from ours: this replica stops signing
    /// checkpoints until its state is restored.
    Divergence {
        /// Height of the block.
        height: u64,
        /// Root we computed.
        ours: Hash,
        /// Root the quorum certified.
        certified: Hash,
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
    /// Forwarded transactions refused by [`Context::check_txs`].
    pub rejected_txs: u64,
}

/// What the node recovered from storage at start-up.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Height of the last executed and stored block (0 at genesis).
    pub committed_height: u64,
    /// Its hash ([`Hash::ZERO`] at genesis).
    pub committed_hash: Hash,
    /// The state root stored with it (signed again in our CHECKPOINT, so that peers that
    /// restarted too learn our height from its heartbeat).
    pub committed_root: Hash,
    /// The latest execution certificate in storage.
    pub stable: Option<CheckpointCertificate>,
    /// All persisted safety records (key, value).
    pub safety: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A block identified by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    pub height: u64,
    pub hash: Hash,
}

/// A vote as remembered: (view, hash, signature). One per validator per slot and phase: the one
/// for the highest view, first seen.
type StoredVote = (u64, Hash, Signature);

/// Everything known about one height.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Blocks known at this height, by hash (bounded by [`MAX_BLOCKS_PER_SLOT`]).
    pub blocks: BTreeMap<Hash, Block>,
    /// The proposal accepted in a view: (view, hash). Current only if the view is ours.
    pub accepted: Option<(u64, Hash)>,
    pub prepares: BTreeMap<u32, StoredVote>,
    pub commits: BTreeMap<u32, StoredVote>,
    /// Our highest-view prepared certificate (its block is in `blocks`).
    pub prepared: Option<PreparedCert>,
    /// Our own PREPARE and COMMIT: (view, hash). Persisted before they were sent.
    pub my_prepare: Option<(u64, Hash)>,
    pub my_commit: Option<(u64, Hash)>,
    /// A quorum committed this block (its block is in `blocks`); waiting for in-order delivery.
    pub decided: Option<CommitCertificate>,
}

impl Slot {
    pub fn prepared_hash(&self) -> Option<(u64, Hash)> {
        self.prepared.as_ref().map(|p| (p.view, p.header.hash()))
    }

    pub(crate) fn keep_block(&mut self, block: Block) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        if self.blocks.len() >= MAX_BLOCKS_PER_SLOT {
            let pinned: Vec<Hash> = [
                self.accepted.map(|a| a.1),
                self.prepared_hash().map(|p| p.1),
                self.decided.as_ref().map(|d| d.block_hash),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(victim) = self.blocks.keys().find(|h| !pinned.contains(h)).copied() {
                self.blocks.remove(&victim);
            } else {
                return;
            }
        }
        self.blocks.insert(hash, block);
    }
}

/// Why a network message was dropped.
pub(crate) type Reject = &'static str;

/// A PBFT replica. See the module documentation.
pub struct Replica<C: Context> {
    pub(crate) cfg: Config,
    pub(crate) ctx: C,
    pub(crate) n: usize,
    pub(crate) f: usize,
    pub(crate) q: usize,
    pub(crate) now: u64,
    /// The current view; while `changing`, the view we are trying to start.
    pub(crate) view: u64,
    pub(crate) changing: bool,
    /// While changing: when to give up on the view being started. Armed only once a quorum asked
    /// for that view, so a replica alone in a view change does not run ahead of everyone.
    pub(crate) vc_deadline: Option<u64>,
    /// While changing: when to re-send our VIEW-CHANGE (it may have been lost).
    pub(crate) vc_resend_at: u64,
    pub(crate) backoff: u32,
    /// Latest VIEW-CHANGE from each validator.
    pub(crate) view_changes: BTreeMap<u32, ViewChange>,
    /// The NEW-VIEW that installed the current view (re-served to replicas left behind).
    pub(crate) new_view: Option<NewView>,
    /// When we last answered each replica asking for an older view.
    pub(crate) answered_laggard: BTreeMap<u32, u64>,
    /// Pre-prepares waiting, by (view, height): for a view not installed yet, or in the current
    /// view for a block below them that is unknown here ([`BEHIND`]).
    pub(crate) future: BTreeMap<(u64, u64), Block>,
    pub(crate) committed: Tip,
    pub(crate) stable: Tip,
    pub(crate) stable_cert: Option<CheckpointCertificate>,
    pub(crate) log: BTreeMap<u64, Slot>,
    /// Primary only: the next height to propose in this view.
    pub(crate) next_height: u64,
    pub(crate) mempool: Mempool,
    /// Hashes of pending transactions already in a proposal of the current view.
    pub(crate) in_flight: HashSet<Hash>,
    forward: Vec<Bytes>,
    forward_bytes: usize,
    forward_deadline: Option<u64>,
    batch_deadline: Option<u64>,
    pub(crate) progress_deadline: Option<u64>,
    /// Our (block hash, state root) per executed height above the stable checkpoint.
    pub(crate) executed: BTreeMap<u64, (Hash, Hash)>,
    pub(crate) last_executed: u64,
    /// Height through which persisted vote records were deleted.
    pub(crate) safety_gc_through: u64,
    pub(crate) checkpoints: BTreeMap<u64, BTreeMap<u32, crate::messages::CheckpointVote>>,
    /// Highest height each validator has shown a signed checkpoint for.
    pub(crate) claims: Vec<u64>,
    pub(crate) last_target: u64,
    pub(crate) behind_since: Option<u64>,
    pub(crate) sync_deadline: Option<u64>,
    pub(crate) sync_attempt: u64,
    /// The catch-up request outstanding: (peer asked, first height, last height). Only that
    /// peer's answer, for those heights, is applied.
    pub(crate) sync_asked: Option<(u32, u64, u64)>,
    /// When to ask (again) for payloads of accepted blocks we know only by header.
    pub(crate) fetch_at: u64,
    pub(crate) fetch_attempt: u64,
    /// Per validator: since when, and how many payload bytes, we answered its block requests
    /// in the current fetch interval (bounds what a peer can draw from us).
    pub(crate) served_blocks: BTreeMap<u32, (u64, usize)>,
    pub(crate) diverged: Option<u64>,
    /// Our latest CHECKPOINT, re-sent every few timeouts so that a replica that missed it
    /// (restarted, partitioned) learns it is behind even when the chain is idle.
    pub(crate) my_checkpoint: Option<crate::messages::CheckpointVote>,
    pub(crate) heartbeat_at: u64,
    /// Signs no proposal, vote, VIEW-CHANGE or NEW-VIEW (a replica that lost its safety state
    /// and has not caught up yet); still follows what the others decide.
    pub(crate) muted: bool,
    timer: Option<u64>,
    pub(crate) stats: Stats,
    pub(crate) out: Vec<Action>,
}

impl<C: Context> Replica<C> {
    /// A replica starting from what the node recovered (genesis: `Recovered::default()`).
    pub fn new(cfg: Config, ctx: C, recovered: Recovered) -> Result<Self, RestoreError> {
        cfg.check();
        let restored = safety::restore(
            recovered
                .safety
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice())),
        )?;
        let n = cfg.validators.len();
        let f = cfg.validators.max_faulty();
        let q = cfg.validators.quorum();
        let committed = Tip {
            height: recovered.committed_height,
            hash: recovered.committed_hash,
        };
        let stable = match &recovered.stable {
            Some(c) if c.height <= committed.height => Tip {
                height: c.height,
                hash: c.block_hash,
            },
            _ => Tip {
                height: 0,
                hash: Hash::ZERO,
            },
        };
        let stable_cert = recovered.stable.filter(|c| c.height == stable.height);
        let (view, installed) = restored.view.unwrap_or((0, true));
        let mut r = Replica {
            mempool: Mempool::new(cfg.mempool),
            n,
            f,
            q,
            now: 0,
            view,
            changing: !installed,
            vc_deadline: None,
            vc_resend_at: 0,
            backoff: 0,
            view_changes: BTreeMap::new(),
            new_view: None,
            answered_laggard: BTreeMap::new(),
            future: BTreeMap::new(),
            committed,
            stable,
            stable_cert,
            log: BTreeMap::new(),
            next_height: committed.height + 1,
            in_flight: HashSet::new(),
            forward: Vec::new(),
            forward_bytes: 0,
            forward_deadline: None,
            batch_deadline: None,
            progress_deadline: None,
            executed: BTreeMap::new(),
            last_executed: committed.height,
            safety_gc_through: 0,
            checkpoints: BTreeMap::new(),
            claims: vec![0; n],
            last_target: 0,
            behind_since: None,
            sync_deadline: None,
            sync_attempt: 0,
            sync_asked: None,
            fetch_at: 0,
            fetch_attempt: 0,
            served_blocks: BTreeMap::new(),
            diverged: None,
            my_checkpoint: None,
            heartbeat_at: 0,
            muted: false,
            timer: None,
            stats: Stats::default(),
            out: Vec::new(),
            cfg,
            ctx,
        };
        r.claims[r.cfg.me as usize] = committed.height;
        r.restore(restored, installed);
        if committed.height > 0 {
            r.resign_checkpoint(committed, recovered.committed_root);
        }
        Ok(r)
    }

    /// Rebuilds the log above the stable checkpoint from the persisted records: our votes go
    /// back into the vote sets (we need only q-1 others), what we voted for or proposed is
    /// accepted again, and the NEW-VIEW of the current view pins its re-proposed blocks. Bodies
    /// not in a prepared record are fetched by hash when needed.
    fn restore(&mut self, restored: safety::Restored, installed: bool) {
        let above = self.stable.height;
        for (h, (view, hash, block)) in restored.prepares.into_iter().filter(|(h, _)| *h > above) {
            let signature = self.sign_vote(Phase::Prepare, view, h, hash).signature;
            let slot = self.log.entry(h).or_default();
            if let Some(block) = block {
                slot.keep_block(block);
            }
            slot.my_prepare = Some((view, hash));
            slot.prepares.insert(self.cfg.me, (view, hash, signature));
            slot.accepted = Some((view, hash));
            if view == self.view {
                self.next_height = self.next_height.max(h + 1);
            }
        }
        for (h, (view, hash)) in restored.commits.into_iter().filter(|(h, _)| *h > above) {
            let signature = self.sign_vote(Phase::Commit, view, h, hash).signature;
            let slot = self.log.entry(h).or_default();
            slot.my_commit = Some((view, hash));
            slot.commits.insert(self.cfg.me, (view, hash, signature));
        }
        for (h, (cert, txs)) in restored.prepared.into_iter().filter(|(h, _)| *h > above) {
            let slot = self.log.entry(h).or_default();
            slot.keep_block(Block {
                header: cert.header.clone(),
                txs,
            });
            slot.prepared = Some(cert);
        }
        for (h, (view, hash)) in restored.proposals.into_iter().filter(|(h, _)| *h > above) {
            if view == self.view {
                self.log.entry(h).or_default().accepted = Some((view, hash));
                self.next_height = self.next_height.max(h + 1);
            }
        }
        if let Some(nv) = restored
            .new_view
            .filter(|nv| installed && nv.view == self.view)
        {
            let plan = plan_new_view(&nv.view_changes);
            for header in reproposed(&nv, &plan).filter(|hd| hd.height > above) {
                let slot = self.log.entry(header.height).or_default();
                slot.accepted = Some((nv.view, header.hash()));
                self.next_height = self.next_height.max(header.height + 1);
            }
            self.new_view = Some(nv);
        }
    }

    /// Signs our CHECKPOINT for the stored head again after a restart: it is what our heartbeat
    /// re-sends, so a peer that missed the last block learns it is behind even on an idle
    /// chain whose other replicas restarted too. Goes out with the first event's actions.
    fn resign_checkpoint(&mut self, head: Tip, root: Hash) {
        if head.height > self.stable.height {
            self.on_executed(head.height, head.hash, root);
            return;
        }
        let msg = checkpoint_message(&self.cfg.chain_id, head.height, &head.hash, &root);
        self.my_checkpoint = Some(crate::messages::CheckpointVote {
            height: head.height,
            block_hash: head.hash,
            state_root: root,
            validator: self.cfg.me,
            signature: self.ctx.sign(&msg),
        });
    }

    /// Handles one event at time `now` (milliseconds, monotonic) and returns what to do, in
    /// order.
    pub fn handle(&mut self, event: Event, now: u64) -> Vec<Action> {
        self.now = self.now.max(now);
        match event {
            Event::Message { from, bytes } => {
                if let Err(reason) = self.on_bytes(from, &bytes) {
                    self.stats.rejected_messages += 1;
                    tracing::debug!(from, reason, "dropped message");
                }
            }
            Event::ClientTx(tx) => {
                let _ = self.admit_client_tx(tx);
            }
            Event::Timer => self.on_timer(),
            Event::Executed {
                height,
                block_hash,
                state_root,
            } => self.on_executed(height, block_hash, state_root),
        }
        self.after_event();
        std::mem::take(&mut self.out)
    }

    /// Like [`Event::ClientTx`], but tells the caller whether the mempool took it.
    pub fn submit(&mut self, tx: Bytes, now: u64) -> (Result<Hash, AdmitError>, Vec<Action>) {
        let (mut results, actions) = self.submit_batch(vec![tx], now);
        (results.remove(0), actions)
    }

    /// Several client transactions in order, with one answer each.
    pub fn submit_batch(
        &mut self,
        txs: Vec<Bytes>,
        now: u64,
    ) -> (Vec<Result<Hash, AdmitError>>, Vec<Action>) {
        self.now = self.now.max(now);
        let results = txs.into_iter().map(|tx| self.admit_client_tx(tx)).collect();
        self.after_event();
        (results, std::mem::take(&mut self.out))
    }

    // ----- accessors -----

    /// This replica's index.
    pub fn id(&self) -> u32 {
        self.cfg.me
    }
    /// The current view (while a view change is under way, the view being started).
    pub fn view(&self) -> u64 {
        self.view
    }
    /// Whether a view change is under way.
    pub fn in_view_change(&self) -> bool {
        self.changing
    }
    /// The primary of the current view.
    pub fn primary(&self) -> u32 {
        self.cfg.validators.primary(self.view)
    }
    /// Height of the last delivered block.
    pub fn committed_height(&self) -> u64 {
        self.committed.height
    }
    /// A height at least one honest validator has executed: the (f+1)-th highest height
    /// validators have signed a checkpoint for (or our stable checkpoint, if higher).
    pub fn network_height(&self) -> u64 {
        self.sync_target()
    }

    /// The highest height each validator (by index) has shown a signed CHECKPOINT for; a
    /// byzantine validator can only inflate its own entry.
    pub fn claims(&self) -> &[u64] {
        &self.claims
    }

    /// Height of the last stable checkpoint (the highest execution certificate).
    pub fn stable_height(&self) -> u64 {
        self.stable.height
    }
    /// Mutes or unmutes the replica: a muted replica proposes nothing, signs no PREPARE, COMMIT,
    /// VIEW-CHANGE or NEW-VIEW, and starts no view change; it still delivers the blocks a quorum
    /// of others commits, executes them and signs checkpoints of its own roots.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Whether the replica is muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// The validator our outstanding catch-up request went to, if one is outstanding: the only
    /// one whose answer (even an empty one: "pruned") counts.
    pub fn sync_peer(&self) -> Option<u32> {
        self.sync_asked.map(|(peer, _, _)| peer)
    }

    /// Proposals waiting for their view or for a block below them.
    pub fn waiting_proposals(&self) -> usize {
        self.future.len()
    }

    /// Pending transactions.
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }
    /// The height at which our root differed from the certified one, if it did.
    pub fn diverged_at(&self) -> Option<u64> {
        self.diverged
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A one-line summary of the replica's internal state, for failure reports.
    pub fn debug_state(&self) -> String {
        format!(
            "view {}{} rejected {} committed {} stable {} next {} mempool {} in-flight {} backoff {} \
             deadlines progress {:?} batch {:?} vc {:?} sync {:?}/{:?} claims {:?} slots {:?}",
            self.view,
            if self.changing { " (changing)" } else { "" },
            self.stats.rejected_messages,
            self.committed.height,
            self.stable.height,
            self.next_height,
            self.mempool.len(),
            self.in_flight.len(),
            self.backoff,
            self.progress_deadline,
            self.batch_deadline,
            self.vc_deadline,
            self.behind_since,
            self.sync_deadline,
            self.claims,
            self.log
                .iter()
                .map(|(h, s)| {
                    (
                        *h,
                        s.accepted.map(|a| a.0),
                        s.my_prepare.map(|a| a.0),
                        s.prepared.as_ref().map(|p| p.view),
                        s.decided.is_some(),
                    )
                })
                .collect::<Vec<_>>()
        )
    }

    // ----- dispatch -----

    fn on_bytes(&mut self, from: u32, bytes: &[u8]) -> Result<(), Reject> {
        if from as usize >= self.n || from == self.cfg.me {
            return Err("sender is not another validator");
        }
        let message = Message::from_bytes(bytes).map_err(|_| "undecodable message")?;
        match message {
            Message::Txs(txs) => self.on_txs(txs),
            Message::PrePrepare { view, block } => self.on_preprepare(from, view, block),
            Message::Prepare(vote) => self.on_vote(from, Phase::Prepare, vote),
            Message::Commit(vote) => self.on_vote(from, Phase::Commit, vote),
            Message::Checkpoint(vote) => self.on_checkpoint(from, vote),
            Message::ViewChange(view_change) => self.on_view_change(from, view_change),
            Message::NewView(nv) => self.on_new_view(nv),
            Message::SyncRequest { from: lo, to: hi } => self.on_sync_request(from, lo, hi),
            Message::SyncResponse(blocks) => self.on_sync_response(from, blocks),
            Message::BlockRequest { height, hash } => self.on_block_request(from, height, hash),
            Message::BlockReply(block) => self.on_block_reply(block),
        }
    }

    fn on_timer(&mut self) {
        if self.forward_deadline.is_some_and(|d| d <= self.now) {
            self.flush_forward();
        }
        if self.heartbeat_at <= self.now {
            if let Some(vote) = self.my_checkpoint.clone() {
                self.broadcast(Message::Checkpoint(vote));
            }
            self.heartbeat_at = self.now + self.heartbeat_period();
        }
        if self.changing {
            if self.vc_deadline.is_some_and(|d| d <= self.now) {
                self.start_view_change(self.view + 1);
            } else if self.vc_resend_at <= self.now {
                // Re-send our VIEW-CHANGE, rebuilt from what we know now (it may have been
                // lost, or we restarted); replicas already past this view answer with their
                // NEW-VIEW.
                self.send_view_change();
            }
        } else if self.progress_deadline.is_some_and(|d| d <= self.now) {
            if self.muted {
                self.progress_deadline = None;
            } else {
                self.start_view_change(self.view + 1);
            }
        }
    }

    /// Work common to every event: propose, catch up, re-arm the timer.
    fn after_event(&mut self) {
        self.propose();
        self.maybe_sync();
        self.maybe_fetch();
        if self.changing {
            self.progress_deadline = None;
            self.batch_deadline = None;
        } else {
            if self.progress_deadline.is_none() && self.has_pending_work() {
                self.progress_deadline = Some(self.now + self.timeout());
            }
            if self.is_primary() && self.unproposed() > 0 && self.batch_deadline.is_none() {
                self.batch_deadline = Some(self.now + self.cfg.block_interval_ms);
            }
        }
        let next = [
            self.forward_deadline,
            // A due batch that could not be cut waits for the event that unblocks it.
            self.batch_deadline.filter(|d| *d > self.now),
            self.progress_deadline,
            self.vc_deadline.filter(|_| self.changing),
            self.changing.then_some(self.vc_resend_at),
            self.sync_wake(),
            self.fetch_wake(),
            self.my_checkpoint.as_ref().map(|_| self.heartbeat_at),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next {
            // Never ask to be woken in the past: a condition that a timer cannot clear would
            // otherwise spin without time passing.
            let at = at.max(self.now + 1);
            if self.timer != Some(at) {
                self.timer = Some(at);
                self.out.push(Action::SetTimer { at });
            }
        }
    }

    pub(crate) fn timeout(&self) -> u64 {
        self.cfg
            .view_timeout_ms
            .saturating_mul(1u64 << self.backoff.min(MAX_BACKOFF))
            .min(self.cfg.max_view_timeout_ms)
    }

    pub(crate) fn heartbeat_period(&self) -> u64 {
        self.cfg.view_timeout_ms.saturating_mul(2)
    }

    pub(crate) fn is_primary(&self) -> bool {
        !self.changing && self.primary() == self.cfg.me
    }

    fn has_pending_work(&self) -> bool {
        !self.mempool.is_empty()
            || self
                .log
                .range(self.committed.height + 1..)
                .any(|(_, s)| s.accepted.is_some_and(|a| a.0 == self.view))
    }

    fn unproposed(&self) -> usize {
        self.mempool.len().saturating_sub(self.in_flight.len())
    }

    pub(crate) fn persist(&mut self, writes: Vec<SafetyWrite>) {
        self.out.push(Action::Persist(writes));
    }

    pub(crate) fn broadcast(&mut self, message: Message) {
        self.out.push(Action::Broadcast(message));
    }

    pub(crate) fn sign_vote(&self, phase: Phase, view: u64, height: u64, hash: Hash) -> Vote {
        let msg = vote_bytes(phase, &self.cfg.chain_id, view, height, &hash);
        Vote {
            view,
            height,
            block_hash: hash,
            validator: self.cfg.me,
            signature: self.ctx.sign(&msg),
        }
    }

    /// Whether `signatures` are a quorum of distinct validators that all signed `message`.
    pub(crate) fn verify_quorum(&self, message: &[u8], signatures: &[ValidatorSignature]) -> bool {
        signatures.len() >= self.q
            && signatures
                .windows(2)
                .all(|w| w[0].validator < w[1].validator)
            && signatures.iter().all(|s| (s.validator as usize) < self.n)
            && self.ctx.verify_all(message, signatures)
    }

    // ----- transactions -----

    fn admit_client_tx(&mut self, tx: Bytes) -> Result<Hash, AdmitError> {
        if tx.len() > self.cfg.max_tx_bytes {
            return Err(AdmitError::TooLarge);
        }
        if self.ctx.tx_committed(&tx_hash(&tx)) {
            return Err(AdmitError::AlreadyCommitted);
        }
        let hash = self.mempool.admit(tx.clone())?;
        self.forward_bytes += tx.len();
        self.forward.push(tx);
        if self.forward.len() >= MAX_FORWARD_TXS || self.forward_bytes >= FORWARD_FLUSH_BYTES {
            self.flush_forward();
        } else if self.forward_deadline.is_none() {
            self.forward_deadline = Some(self.now + (self.cfg.block_interval_ms / 4).max(1));
        }
        Ok(hash)
    }

    fn flush_forward(&mut self) {
        self.forward_deadline = None;
        self.forward_bytes = 0;
        if !self.forward.is_empty() {
            let txs = std::mem::take(&mut self.forward);
            self.broadcast(Message::Txs(txs));
        }
    }

    fn on_txs(&mut self, txs: Vec<Bytes>) -> Result<(), Reject> {
        if txs.len() > MAX_FORWARD_TXS {
            return Err("too many forwarded transactions");
        }
        // Only what is new here is checked (copies arrive from every validator).
        let fresh: Vec<Bytes> = txs
            .into_iter()
            .filter(|tx| {
                let h = tx_hash(tx);
                !self.mempool.contains(&h) && !self.mempool.is_committed(&h)
            })
            .collect();
        let verdicts = self.ctx.check_txs(&fresh);
        for (tx, ok) in fresh.into_iter().zip(verdicts) {
            if !ok || tx.len() > self.cfg.max_tx_bytes {
                self.stats.rejected_txs += 1;
                continue;
            }
            if self.ctx.tx_committed(&tx_hash(&tx)) {
                continue;
            }
            let _ = self.mempool.admit(tx);
        }
        Ok(())
    }

    // ----- normal case -----

    /// The hash this replica links height `h + 1` to: its committed, stable, or current-view
    /// block at `h`.
    pub(crate) fn chain_hash(&self, h: u64) -> Option<Hash> {
        if h == self.stable.height {
            return Some(self.stable.hash);
        }
        if h == self.committed.height {
            return Some(self.committed.hash);
        }
        let slot = self.log.get(&h)?;
        if let Some(d) = &slot.decided {
            return Some(d.block_hash);
        }
        if let Some((v, hash)) = slot.accepted {
            if v == self.view {
                return Some(hash);
            }
        }
        slot.my_prepare.filter(|p| p.0 == self.view).map(|p| p.1)
    }

    /// Whether a block at `h` with this parent may be PREPAREd in the current view (see the
    /// module documentation).
    fn parent_ok(&self, h: u64, parent: &Hash) -> bool {
        let x = h - 1;
        if x < self.stable.height {
            return false;
        }
        if x == self.stable.height {
            return *parent == self.stable.hash;
        }
        if x == self.committed.height {
            return *parent == self.committed.hash;
        }
        let Some(slot) = self.log.get(&x) else {
            return false;
        };
        if let Some(d) = &slot.decided {
            return d.block_hash == *parent;
        }
        slot.prepared_hash() == Some((self.view, *parent))
    }

    /// Primary: cuts blocks while the window allows and a block is full or its timer expired.
    fn propose(&mut self) {
        if self.muted {
            return;
        }
        while self.is_primary() && self.next_height <= self.stable.height + self.cfg.window {
            let unproposed = self.unproposed();
            let due = self.batch_deadline.is_some_and(|d| d <= self.now);
            if unproposed == 0 || (unproposed < self.cfg.max_block_txs && !due) {
                return;
            }
            let h = self.next_height.max(self.stable.height + 1);
            let Some(parent) = self.chain_hash(h - 1) else {
                return;
            };
            let in_flight = &self.in_flight;
            let txs = self.mempool.peek_batch_where(
                self.cfg.max_block_txs,
                self.cfg.max_block_bytes,
                |hash| !in_flight.contains(hash),
            );
            if txs.is_empty() {
                return;
            }
            let block = Block {
                header: BlockHeader {
                    chain_id: self.cfg.chain_id.clone(),
                    height: h,
                    parent,
                    view: self.view,
                    proposer: self.cfg.me,
                    timestamp_ms: self.now,
                    payload_digest: payload_digest(&txs),
                },
                txs,
            };
            self.next_height = h + 1;
            self.batch_deadline = None;
            // Recorded before it leaves: restarted, we never propose another block here.
            self.persist(vec![safety::proposal_record(h, self.view, block.hash())]);
            self.broadcast(Message::PrePrepare {
                view: self.view,
                block: block.clone(),
            });
            self.accept_proposal(block);
        }
    }

    fn on_preprepare(&mut self, from: u32, view: u64, block: Block) -> Result<(), Reject> {
        if from != self.cfg.validators.primary(view) || block.header.proposer != from {
            return Err("pre-prepare not from the view's primary");
        }
        if block.header.view != view {
            return Err("pre-prepare header view differs");
        }
        if view < self.view {
            return Ok(());
        }
        if view > self.view || self.changing {
            if view > self.view + MAX_VIEW_AHEAD {
                return Err("pre-prepare view too far ahead");
            }
            self.stash_proposal(view, block);
            return Ok(());
        }
        match self.check_fresh_proposal(&block) {
            Err(BEHIND) => {
                // Accepted once the block below it arrives (fetched, caught up).
                self.stash_proposal(view, block);
                Ok(())
            }
            Err(reason) => Err(reason),
            Ok(()) => {
                self.accept_proposal(block);
                Ok(())
            }
        }
    }

    /// Keeps a proposal that cannot be judged yet (its view is not installed, or a block below
    /// it is unknown here) if it could be valid: inside the watermarks and not too large. At
    /// most `2 x window` wait; when full, the farthest (view, height) makes room, so a
    /// byzantine primary of far views cannot crowd out the next view's proposals.
    fn stash_proposal(&mut self, view: u64, block: Block) {
        let h = block.height();
        if h <= self.stable.height
            || h > self.stable.height + self.cfg.window
            || block.txs.len() > self.cfg.max_block_txs
            || block.txs.iter().map(|t| t.len()).sum::<usize>() > self.cfg.max_block_bytes
        {
            return;
        }
        let key = (view, h);
        if self.future.len() >= 2 * self.cfg.window as usize && !self.future.contains_key(&key) {
            match self.future.last_key_value() {
                Some((&farthest, _)) if farthest > key => {
                    self.future.remove(&farthest);
                }
                _ => return,
            }
        }
        self.future.insert(key, block);
    }

    /// Checks a new proposal of the current view before we accept it.
    pub(crate) fn check_fresh_proposal(&self, block: &Block) -> Result<(), Reject> {
        let h = block.height();
        if block.header.chain_id != self.cfg.chain_id {
            return Err("proposal for another chain");
        }
        if h <= self.stable.height.max(self.committed.height) {
            return Err("proposal at a committed height");
        }
        if h > self.stable.height + self.cfg.window {
            return Err("proposal above the high watermark");
        }
        if block.txs.len() > self.cfg.max_block_txs
            || block.txs.iter().map(|t| t.len()).sum::<usize>() > self.cfg.max_block_bytes
        {
            return Err("proposal too large");
        }
        if !block.payload_matches() {
            return Err("payload digest mismatch");
        }
        let mut seen = HashSet::with_capacity(block.txs.len());
        let ancestors = self.chain_tx_hashes(h)?;
        let mut in_mempool = Vec::with_capacity(block.txs.len());
        for tx in &block.txs {
            let hash = tx_hash(tx);
            if !seen.insert(hash)
                || ancestors.contains(&hash)
                || self.mempool.is_committed(&hash)
                || self.ctx.tx_committed(&hash)
            {
                return Err("proposal repeats a transaction");
            }
            in_mempool.push(self.mempool.contains(&hash));
        }
        self.ctx
            .check_block_txs(block, &|i| in_mempool[i])
            .map_err(|_| "proposal has invalid transactions")
    }

    /// Hashes of transactions in uncommitted blocks below `h` on the current view's chain, or an
    /// error if a block below `h` is unknown here (then we cannot tell whether the proposal
    /// repeats a transaction, so we do not vote for it; catch-up fills the gap).
    fn chain_tx_hashes(&self, h: u64) -> Result<HashSet<Hash>, Reject> {
        let mut out = HashSet::new();
        for height in self.committed.height + 1..h {
            let slot = self.log.get(&height).ok_or(BEHIND)?;
            let hash = match (&slot.decided, slot.accepted) {
                (Some(d), _) => d.block_hash,
                (None, Some((v, hash))) if v == self.view => hash,
                _ => return Err(BEHIND),
            };
            let block = slot.blocks.get(&hash).ok_or(BEHIND)?;
            out.extend(block.txs.iter().map(|t| tx_hash(t)));
        }
        Ok(out)
    }

    /// Accepts a proposal (ours, the primary's, or a NEW-VIEW re-proposal) for the current view.
    pub(crate) fn accept_proposal(&mut self, block: Block) {
        let h = block.height();
        let hash = block.hash();
        let view = self.view;
        let slot = self.log.entry(h).or_default();
        if let Some((v, other)) = slot.accepted {
            if v == view {
                if other == hash && !slot.blocks.contains_key(&hash) {
                    // Accepted by hash before (restart, NEW-VIEW): this is its payload.
                    slot.keep_block(block);
                    self.try_prepare(h);
                    self.check_committed(h);
                } else if other != hash {
                    let validator = self.cfg.validators.primary(view);
                    self.out.push(Action::Alarm(Alarm::Equivocation {
                        validator,
                        view,
                        height: h,
                    }));
                }
                return;
            }
        }
        for tx in &block.txs {
            let th = tx_hash(tx);
            if self.mempool.contains(&th) {
                self.in_flight.insert(th);
            }
        }
        slot.accepted = Some((view, hash));
        slot.keep_block(block);
        self.try_prepare(h);
    }

    /// Sends our PREPARE for the accepted block at `h` once its parent rule holds.
    pub(crate) fn try_prepare(&mut self, h: u64) {
        if self.changing || self.muted {
            return;
        }
        let view = self.view;
        let Some(slot) = self.log.get(&h) else {
            return;
        };
        let Some((v, hash)) = slot.accepted else {
            return;
        };
        if v != view {
            return;
        }
        if let Some((mv, mh)) = slot.my_prepare {
            if mv >= view {
                if mh == hash {
                    self.check_prepared(h);
                }
                return;
            }
        }
        let Some(block) = slot.blocks.get(&hash) else {
            return;
        };
        if !self.parent_ok(h, &block.header.parent) {
            return;
        }
        assert!(
            slot.my_prepare.is_none_or(|(mv, _)| mv < view),
            "a second PREPARE at one (view, height)"
        );
        let record = safety::prepare_record(view, block);
        self.persist(vec![record]);
        let vote = self.sign_vote(Phase::Prepare, view, h, hash);
        let slot = self.log.entry(h).or_default();
        slot.my_prepare = Some((view, hash));
        slot.prepares
            .insert(self.cfg.me, (view, hash, vote.signature));
        self.broadcast(Message::Prepare(vote));
        self.check_prepared(h);
    }

    fn on_vote(&mut self, from: u32, phase: Phase, vote: Vote) -> Result<(), Reject> {
        if vote.validator != from {
            return Err("vote signed for another validator");
        }
        if vote.view < self.view {
            return Ok(());
        }
        if vote.view > self.view + MAX_VIEW_AHEAD {
            return Err("vote view too far ahead");
        }
        let h = vote.height;
        if h <= self.stable.height || h > self.stable.height + self.cfg.window {
            return Ok(());
        }
        let existing = self.log.get(&h).and_then(|s| match phase {
            Phase::Prepare => s.prepares.get(&from).copied(),
            Phase::Commit => s.commits.get(&from).copied(),
        });
        if let Some((v, hash, _)) = existing {
            if v > vote.view || (v == vote.view && hash == vote.block_hash) {
                return Ok(());
            }
        }
        let msg = vote.signed_bytes(phase, &self.cfg.chain_id);
        if !self.ctx.verify(from, &msg, &vote.signature) {
            return Err("bad vote signature");
        }
        if let Some((v, _, _)) = existing {
            if v == vote.view {
                self.out.push(Action::Alarm(Alarm::Equivocation {
                    validator: from,
                    view: v,
                    height: h,
                }));
                return Ok(());
            }
        }
        let slot = self.log.entry(h).or_default();
        let entry = (vote.view, vote.block_hash, vote.signature);
        match phase {
            Phase::Prepare => {
                slot.prepares.insert(from, entry);
                self.check_prepared(h);
            }
            Phase::Commit => {
                slot.commits.insert(from, entry);
                self.check_committed(h);
            }
        }
        Ok(())
    }

    /// Signatures in `votes` for exactly (view, hash), ascending by validator.
    pub(crate) fn matching(
        votes: &BTreeMap<u32, StoredVote>,
        view: u64,
        hash: Hash,
    ) -> Vec<ValidatorSignature> {
        votes
            .iter()
            .filter(|(_, (v, h, _))| *v == view && *h == hash)
            .map(|(validator, (_, _, signature))| ValidatorSignature {
                validator: *validator,
                signature: *signature,
            })
            .collect()
    }

    fn check_prepared(&mut self, h: u64) {
        let view = self.view;
        let q = self.q;
        let Some(slot) = self.log.get_mut(&h) else {
            return;
        };
        let Some((v, hash)) = slot.accepted else {
            return;
        };
        if v != view || slot.my_prepare != Some((view, hash)) {
            return;
        }
        if slot.prepared.as_ref().is_some_and(|p| p.view >= view) {
            return;
        }
        let signatures = Self::matching(&slot.prepares, view, hash);
        if signatures.len() < q {
            return;
        }
        let Some(block) = slot.blocks.get(&hash) else {
            return;
        };
        let cert = PreparedCert {
            view,
            header: block.header.clone(),
            signatures,
        };
        let record = safety::prepared_record(&cert, &block.txs);
        let mut writes = vec![record];
        let commit_again = slot.my_commit.is_some_and(|c| c.0 >= view);
        if !commit_again {
            writes.push(safety::commit_record(h, view, hash));
        }
        assert!(
            slot.my_commit
                .is_none_or(|(cv, ch)| cv < view || ch == hash),
            "a second COMMIT at one (view, height)"
        );
        slot.prepared = Some(cert);
        self.persist(writes);
        if !commit_again {
            let vote = self.sign_vote(Phase::Commit, view, h, hash);
            let slot = self.log.entry(h).or_default();
            slot.my_commit = Some((view, hash));
            slot.commits
                .insert(self.cfg.me, (view, hash, vote.signature));
            self.broadcast(Message::Commit(vote));
        }
        self.check_committed(h);
        self.try_prepare(h + 1);
    }

    pub(crate) fn check_committed(&mut self, h: u64) {
        let q = self.q;
        let Some(slot) = self.log.get_mut(&h) else {
            return;
        };
        if slot.decided.is_some() {
            return;
        }
        let mut tally: BTreeMap<(u64, Hash), usize> = BTreeMap::new();
        for (v, hash, _) in slot.commits.values() {
            *tally.entry((*v, *hash)).or_default() += 1;
        }
        let Some((&(view, hash), _)) = tally.iter().find(|(_, c)| **c >= q) else {
            return;
        };
        if !slot.blocks.contains_key(&hash) {
            // A quorum committed a block we never received: checkpoints will show we are
            // behind, and catch-up fetches it.
            return;
        }
        slot.decided = Some(CommitCertificate {
            view,
            height: h,
            block_hash: hash,
            signatures: Self::matching(&slot.commits, view, hash),
        });
        self.try_deliver();
        self.try_prepare(h + 1);
    }

    /// Delivers decided blocks in height order.
    pub(crate) fn try_deliver(&mut self) {
        loop {
            let h = self.committed.height + 1;
            let Some(slot) = self.log.get(&h) else {
                return;
            };
            let Some(cert) = slot.decided.clone() else {
                return;
            };
            let Some(block) = slot.blocks.get(&cert.block_hash).cloned() else {
                return;
            };
            if block.header.parent != self.committed.hash {
                // Only possible with more than f faulty validators: refuse to fork, loudly.
                self.out.push(Action::Alarm(Alarm::Fork { height: h }));
                return;
            }
            let hashes: Vec<Hash> = block.txs.iter().map(|t| tx_hash(t)).collect();
            for th in &hashes {
                self.in_flight.remove(th);
            }
            self.mempool.mark_committed(&hashes);
            self.committed = Tip {
                height: h,
                hash: cert.block_hash,
            };
            self.claims[self.cfg.me as usize] = self.claims[self.cfg.me as usize].max(h);
            self.next_height = self.next_height.max(h + 1);
            self.stats.delivered_blocks += 1;
            self.backoff = 0;
            self.progress_deadline = None;
            self.out.push(Action::Deliver {
                block,
                certificate: cert,
            });
            self.gc_log();
        }
    }

    /// Forgets slots at or below the stable checkpoint, except decided ones still waiting for
    /// delivery.
    pub(crate) fn gc_log(&mut self) {
        let (stable, committed) = (self.stable.height, self.committed.height);
        self.log
            .retain(|&h, slot| h > stable || (h > committed && slot.decided.is_some()));
    }
}
