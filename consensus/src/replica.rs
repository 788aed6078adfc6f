//! The PBFT replica: a pure state machine, `handle(event, now) -> Vec<Action>`.
//!
//! This file holds the [`Replica`], its constructor, event dispatch, timers and accessors; the
//! types a driver sees ([`Event`], [`Action`], [`Alarm`], [`Recovered`], [`Stats`]) are in
//! `events.rs`, [`Config`] in `config.rs` (all re-exported here). The replica's state is a set
//! of parts, each in the module that owns its concern, with the handlers that drive it: the
//! normal-case log in `log.rs` and the normal case (proposals, PREPARE, COMMIT, in-order
//! delivery, proposals waiting) in `normal.rs`, the view and view changes in `view_change.rs`,
//! checkpoints in `checkpoint.rs`, catch-up in `catch_up.rs`, the transaction pool in
//! `pool.rs`, client transactions in `forward.rs`, payload fetching in `fetch.rs`; recovery is
//! in `restore.rs`.
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

use crate::catch_up::CatchUp;
use crate::checkpoint::Checkpoints;
pub use crate::config::Config;
use crate::context::Context;
pub use crate::events::{Action, Alarm, Event, Recovered, Stats};
use crate::fetch::Fetcher;
use crate::forward::Forwarder;
use crate::log::{Log, Tip};
use crate::mempool::{AdmitError, Mempool};
use crate::messages::{vote_bytes, Message, Phase, Vote};
use crate::normal::Waiting;
use crate::pool::Pool;
use crate::safety::{self, RestoreError, SafetyWrite};
use crate::view_change::Views;
use lanes_types::codec::Decode;
use lanes_types::{Bytes, Hash, ValidatorSignature};

/// Most transactions in one forwarded batch.
pub const MAX_FORWARD_TXS: usize = 4096;
/// Forwarded transactions are flushed once this many bytes are buffered.
pub(crate) const FORWARD_FLUSH_BYTES: usize = 1 << 20;
/// Votes for views further ahead than this are dropped.
pub const MAX_VIEW_AHEAD: u64 = 1 << 16;
/// Why a proposal waits: a block below it is unknown here.
pub(crate) const BEHIND: Reject = "behind: a block below the proposal is unknown";

/// Why a network message was dropped.
pub(crate) type Reject = &'static str;

/// A PBFT replica. See the module documentation.
///
/// The replica's state is grouped into parts, each owned by the module of its concern and
/// documenting its own status transitions: `Views` (view changes), `Log` (the normal-case
/// log), `Waiting` (proposals not judged yet), `Checkpoints`, `CatchUp`, `Pool` (the mempool
/// as proposals use it), `Forwarder` and `Fetcher`. `Replica` wires them: its
/// handlers, spread over those modules, read and update several parts and emit the actions.
pub struct Replica<C: Context> {
    /// Parameters.
    pub(crate) cfg: Config,
    /// What the host provides (signatures, transaction checks).
    pub(crate) ctx: C,
    /// Number of validators.
    pub(crate) n: usize,
    /// Most faulty validators tolerated.
    pub(crate) f: usize,
    /// Quorum size.
    pub(crate) q: usize,
    /// The latest time handed in.
    pub(crate) now: u64,
    /// The view and the view-change protocol.
    pub(crate) views: Views,
    /// The normal-case log and the committed tip.
    pub(crate) log: Log,
    /// Proposals that cannot be judged yet.
    pub(crate) waiting: Waiting,
    /// The stable checkpoint, CHECKPOINT votes and divergence.
    pub(crate) checkpoints: Checkpoints,
    /// Catch-up: claims and the outstanding request.
    pub(crate) catch_up: CatchUp,
    /// Pending transactions and the primary's batch timer.
    pub(crate) pool: Pool,
    /// Client transactions to forward.
    pub(crate) forwarder: Forwarder,
    /// Payload fetching and serving.
    pub(crate) fetch: Fetcher,
    /// Signs no proposal, vote, VIEW-CHANGE or NEW-VIEW (a replica that lost its safety state
    /// and has not caught up yet); still follows what the others decide.
    pub(crate) muted: bool,
    /// The wake-up last asked of the driver.
    pub(crate) timer: Option<u64>,
    /// Counters.
    pub(crate) stats: Stats,
    /// Actions of the event being handled.
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
        let (view, installed) = restored.view.unwrap_or((0, true));
        let mut r = Replica {
            n,
            f,
            q,
            now: 0,
            views: Views::new(view, installed),
            log: Log::new(committed),
            waiting: Waiting::default(),
            checkpoints: Checkpoints::new(recovered.stable, committed.height),
            catch_up: CatchUp::new(n, cfg.me, committed.height),
            pool: Pool::new(Mempool::new(cfg.mempool)),
            forwarder: Forwarder::default(),
            fetch: Fetcher::default(),
            muted: false,
            timer: None,
            stats: Stats::default(),
            out: Vec::new(),
            cfg,
            ctx,
        };
        r.restore(restored, installed);
        if committed.height > 0 {
            r.resign_checkpoint(committed, recovered.committed_roots);
        }
        Ok(r)
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
                roots,
            } => self.on_executed(height, block_hash, roots),
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
        self.views.current
    }
    /// Whether a view change is under way.
    pub fn in_view_change(&self) -> bool {
        self.views.changing
    }
    /// The primary of the current view.
    pub fn primary(&self) -> u32 {
        self.cfg.validators.primary(self.views.current)
    }
    /// Height of the last delivered block.
    pub fn committed_height(&self) -> u64 {
        self.log.committed.height
    }
    /// A height at least one honest validator has executed: the (f+1)-th highest height
    /// validators have signed a checkpoint for (or our stable checkpoint, if higher).
    pub fn network_height(&self) -> u64 {
        self.sync_target()
    }

    /// The highest height each validator (by index) has shown a signed CHECKPOINT for; a
    /// byzantine validator can only inflate its own entry.
    pub fn claims(&self) -> &[u64] {
        &self.catch_up.claims
    }

    /// Height of the last stable checkpoint (the highest execution certificate).
    pub fn stable_height(&self) -> u64 {
        self.checkpoints.stable.height
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
        self.catch_up.asked.map(|(peer, _, _)| peer)
    }

    /// Proposals waiting for their view or for a block below them.
    pub fn waiting_proposals(&self) -> usize {
        self.waiting.len()
    }

    /// Pending transactions.
    pub fn mempool_len(&self) -> usize {
        self.pool.mempool.len()
    }

    /// Remembers that the transaction with this hash failed the node's stateless checks, so
    /// copies of it forwarded by peers or resubmitted are refused with one lookup.
    pub fn reject_tx(&mut self, hash: Hash) {
        self.pool.mempool.reject(hash);
    }

    /// Whether the transaction `tx` waits in the mempool.
    pub fn is_pending(&self, tx: &Hash) -> bool {
        self.pool.mempool.contains(tx)
    }
    /// The height at which our root differed from the certified one, if it did.
    pub fn diverged_at(&self) -> Option<u64> {
        self.checkpoints.diverged
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
            self.views.current,
            if self.views.changing { " (changing)" } else { "" },
            self.stats.rejected_messages,
            self.log.committed.height,
            self.checkpoints.stable.height,
            self.log.next_height,
            self.pool.mempool.len(),
            self.pool.in_flight.len(),
            self.views.backoff,
            self.views.progress_deadline,
            self.pool.batch_deadline,
            self.views.new_view_deadline,
            self.catch_up.behind_since,
            self.catch_up.deadline,
            self.catch_up.claims,
            self.log
                .slots
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

    /// A network message from validator `from`: decoded and handed to its handler.
    pub(crate) fn on_bytes(&mut self, from: u32, bytes: &[u8]) -> Result<(), Reject> {
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

    /// The timer fired: flush forwarded transactions, heartbeat our CHECKPOINT, and give up on
    /// a view (or re-send our VIEW-CHANGE) whose time is up.
    pub(crate) fn on_timer(&mut self) {
        if self.forwarder.due(self.now) {
            self.flush_forward();
        }
        let period = self.heartbeat_period();
        if let Some(vote) = self.checkpoints.heartbeat(self.now, period) {
            self.broadcast(Message::Checkpoint(vote));
        }
        if self.views.changing {
            if self.views.new_view_deadline.is_some_and(|d| d <= self.now) {
                self.start_view_change(self.views.current + 1);
            } else if self.views.resend_at <= self.now {
                // Re-send our VIEW-CHANGE, rebuilt from what we know now (it may have been
                // lost, or we restarted); replicas already past this view answer with their
                // NEW-VIEW.
                self.send_view_change();
            }
        } else if self.views.progress_deadline.is_some_and(|d| d <= self.now) {
            if self.muted {
                self.views.progress_deadline = None;
            } else {
                self.start_view_change(self.views.current + 1);
            }
        }
    }

    /// Work common to every event: propose, catch up, re-arm the timer.
    pub(crate) fn after_event(&mut self) {
        self.propose();
        self.maybe_sync();
        self.maybe_fetch();
        if self.views.changing {
            self.views.progress_deadline = None;
            self.pool.batch_deadline = None;
        } else {
            if self.views.progress_deadline.is_none() && self.has_pending_work() {
                self.views.progress_deadline = Some(self.now + self.timeout());
            }
            if self.is_primary() && self.pool.unproposed() > 0 && self.pool.batch_deadline.is_none()
            {
                self.pool.batch_deadline = Some(self.now + self.cfg.block_interval_ms);
            }
        }
        let next = [
            self.forwarder.deadline,
            // A due batch that could not be cut waits for the event that unblocks it.
            self.pool.batch_deadline.filter(|d| *d > self.now),
            self.views.wake(),
            self.catch_up.wake(&self.cfg),
            self.fetch_wake(),
            self.checkpoints.wake(),
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

    /// The current view timeout (doubled per view change without delivery, capped).
    pub(crate) fn timeout(&self) -> u64 {
        self.views.timeout(&self.cfg)
    }

    /// How often our latest CHECKPOINT is re-sent.
    pub(crate) fn heartbeat_period(&self) -> u64 {
        self.cfg.view_timeout_ms.saturating_mul(2)
    }

    /// Whether we are the primary of an installed view.
    pub(crate) fn is_primary(&self) -> bool {
        !self.views.changing && self.primary() == self.cfg.me
    }

    /// Whether something waits to be ordered: pending transactions or undecided blocks of
    /// this view.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.pool.mempool.is_empty() || self.log.has_undecided_work(self.views.current)
    }

    /// Emits safety writes (durable before any later action).
    pub(crate) fn persist(&mut self, writes: Vec<SafetyWrite>) {
        self.out.push(Action::Persist(writes));
    }

    /// Emits a message to every other validator.
    pub(crate) fn broadcast(&mut self, message: Message) {
        self.out.push(Action::Broadcast(message));
    }

    /// Our PREPARE or COMMIT for (view, height, hash).
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
}
