//! The Block-STM collaborative scheduler and each transaction's state machine.
//!
//! # Transaction status transitions
//!
//! Every transition happens under the transaction's lock ([`TxEntry`]), and every one is made
//! here:
//!
//! - any -> `Ready`, incarnation 0: [`TxState::start_block`], when a block starts
//!   ([`super::Scratch::reset`]).
//! - `Ready` -> `Executing`: [`Scheduler::try_incarnate`], when a worker takes the execution of
//!   the current incarnation.
//! - `Executing` -> `Aborting`: [`Scheduler::add_dependency`], when the incarnation read an
//!   estimate of a lower transaction that has not finished executing; it waits in that
//!   transaction's `dependents`.
//! - `Aborting` -> `Ready`, incarnation + 1: [`Scheduler::set_ready_status`], when the
//!   transaction it waited for finished executing ([`Scheduler::finish_execution`]).
//! - `Executing` -> `Executed`: [`TxState::mark_executed`], once the incarnation's writes are
//!   published and its read set and receipt recorded (`Shared::record`).
//! - `Executed` -> `Ready`, incarnation + 1: [`TxState::abort_validated`], when its read set
//!   failed validation (`Shared::validate`) and its writes became estimates; the scheduler then
//!   lowers the validation index and may execute it again at once
//!   ([`Scheduler::finish_validation_abort`]).
//!
//! An execution that found its blocker already finished (`add_dependency` returned false) stays
//! `Executing` and runs again at once. A validation request for an incarnation that is no longer
//! the `Executed` one does nothing.

use super::mv_memory::ReadEntry;
use super::Padded;
use crate::ledger::Receipt;
use crate::spin::{SpinGuard, SpinLock};
use crate::state::Key;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

/// The latest incarnation's output of one transaction, kept inline (up to four reads and
/// writes, a transfer's three of each included) so that recording and validating it touch the
/// transaction's own cache lines, which workers visit in index order, rather than heap buffers
/// scattered by earlier blocks: storing a write set into such a buffer cost a cache miss per
/// transaction.
#[derive(Default)]
pub(super) struct Slot {
    /// What it read: each key, where the key lives in the memory, and where the value came from.
    pub(super) reads: SmallVec<[ReadEntry; 4]>,
    /// The keys it wrote, ascending (the values are in the multi-version memory).
    pub(super) written: SmallVec<[Key; 4]>,
    pub(super) receipt: Option<Receipt>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(super) enum Status {
    #[default]
    Ready,
    Executing,
    Executed,
    Aborting,
}

/// Everything about one transaction, under one lock: its scheduling state (status,
/// incarnation, and the transactions waiting for it to finish executing, its dependents) and
/// its latest incarnation's output. One lock rather than one for each: a lock is an atomic
/// swap, a full barrier that waits for the multi-version writes just made to reach the cache,
/// and finishing an execution or validating then takes one instead of two.
#[derive(Default)]
pub(super) struct TxState {
    status: Status,
    incarnation: u32,
    dependents: Vec<usize>,
    /// Whether an incarnation was recorded in this block: until then `slot` holds what an
    /// earlier block left (see [`Scratch::reset`]).
    pub(super) recorded: bool,
    pub(super) slot: Slot,
}

impl TxState {
    /// The scheduling state.
    #[inline]
    pub(super) fn status(&self) -> Status {
        self.status
    }

    /// The latest incarnation (the one executing, executed or next to run).
    #[inline]
    pub(super) fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Any -> `Ready`, incarnation 0, nobody waiting: a block starts. `recorded` goes false;
    /// `slot` is left as it is (see `recorded`).
    #[inline]
    pub(super) fn start_block(&mut self) {
        self.status = Status::Ready;
        self.incarnation = 0;
        self.dependents.clear();
        self.recorded = false;
    }

    /// The transactions waiting for this one to finish executing, handed over to be woken.
    #[inline]
    pub(super) fn take_dependents(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dependents)
    }

    /// `Executing` -> `Executed`: the incarnation's output is recorded.
    #[inline]
    pub(super) fn mark_executed(&mut self) {
        self.status = Status::Executed;
    }

    /// `Executed` -> `Ready` with the next incarnation: validation failed.
    #[inline]
    pub(super) fn abort_validated(&mut self) {
        self.status = Status::Ready;
        self.incarnation += 1;
    }
}

/// A transaction's state on its own cache lines: workers run neighbouring transactions.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct TxEntry {
    pub(super) state: SpinLock<TxState>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Task {
    Execute(usize, u32),
    Validate(usize, u32),
}

/// Transactions a worker claims at once, for execution or for validation: one shared counter
/// update per claim instead of per transaction, and neighbouring transactions stay on one core.
pub(super) const CLAIM: usize = 8;

/// Validation may lag execution by this many transactions before any worker validates any
/// transaction, whoever executed it (see [`Scheduler::leave_to_owner`]).
const MAX_VALIDATION_LAG: usize = 8 * CLAIM;

/// A worker holding no claim.
const IDLE: usize = usize::MAX;

/// A range of transaction indices a worker claimed.
pub(super) struct Claim {
    pub(super) range: std::ops::Range<usize>,
    pub(super) validate: bool,
}

/// The Block-STM collaborative scheduler (the paper's Algorithms 4 and 5), with these changes:
/// workers claim [`CLAIM`] consecutive indices per counter update; instead of counting active
/// tasks in one shared counter each worker publishes in `active` the first index of the claim
/// it holds (set before the claim is taken, [`IDLE`] after its last task), which `check_done`
/// reads; and validation is claimed only below every other worker's claim and preferably by the
/// worker that executed the range (see [`Scheduler::claim`]). The last two only choose which
/// task runs when and where: correctness rests on the paper's index rules, unchanged.
/// Lock order: a transaction's lock is only taken while holding that of a *lower* transaction
/// (`add_dependency`), never the other way round; shard locks are taken last (while holding a
/// transaction's lock when recording or validating it) and nothing is locked under them.
pub(super) struct Scheduler<'a> {
    n: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    /// Per worker: the first index of the claim it holds (or is taking), or [`IDLE`].
    active: Vec<Padded<AtomicUsize>>,
    /// Per transaction: the worker that claimed its latest execution (a cache-locality hint).
    executed_by: Vec<AtomicU8>,
    done: AtomicBool,
    pub(super) txs: &'a [TxEntry],
}

impl<'a> Scheduler<'a> {
    pub(super) fn new(txs: &'a [TxEntry], workers: usize) -> Self {
        Scheduler {
            n: txs.len(),
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            active: (0..workers)
                .map(|_| Padded(AtomicUsize::new(IDLE)))
                .collect(),
            executed_by: (0..txs.len()).map(|_| AtomicU8::new(u8::MAX)).collect(),
            done: AtomicBool::new(false),
            txs,
        }
    }

    #[inline]
    pub(super) fn lock_tx(&self, txn: usize) -> SpinGuard<'_, TxState> {
        self.txs[txn].state.lock()
    }

    #[inline]
    pub(super) fn done(&self) -> bool {
        self.done.load(SeqCst)
    }

    #[inline]
    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    #[inline]
    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    /// Done when both indices passed the block, no worker holds a claim, and no index was
    /// decreased meanwhile. Called only by a worker that holds no claim.
    #[inline]
    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        let exec = self.execution_idx.load(SeqCst);
        let val = self.validation_idx.load(SeqCst);
        if exec.min(val) >= self.n
            && self.active.iter().all(|a| a.0.load(SeqCst) == IDLE)
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done.store(true, SeqCst);
        }
    }

    /// The next range to validate (if validation is behind execution) or to execute. On `Some`,
    /// the worker's `active` entry holds the range's start until [`Scheduler::release`].
    ///
    /// Validation waits for the lowest claim another worker holds: a transaction there that
    /// finishes its first execution writes new keys, which sends validation back to it, so
    /// validating above it would mostly be done twice (transfers ran 1.85 validations per
    /// transaction before this rule, 1.0 after). And a worker leaves a range another worker
    /// executed to that worker while there is execution work left ([`Scheduler::leave_to_owner`]).
    #[inline]
    pub(super) fn claim(&self, worker: usize) -> Option<Claim> {
        let exec = self.execution_idx.load(SeqCst);
        // Validate only below every claim another worker holds: a transaction still executing
        // there would, on finishing, send validation back to it (its writes are new) and every
        // validation claimed above it would run again.
        let limit = exec.min(self.lowest_claim());
        let next = self.validation_idx.load(SeqCst);
        let validate = next < limit && !self.leave_to_owner(worker, next, exec);
        let idx = if validate {
            &self.validation_idx
        } else {
            &self.execution_idx
        };
        if idx.load(SeqCst) >= self.n {
            self.check_done();
            return None;
        }
        let active = &self.active[worker].0;
        active.store(idx.load(SeqCst), SeqCst);
        let range = if validate {
            // Never claim validations past the execution index: a transaction that finishes
            // executing below the validation index resets it (its writes are new), which would
            // make every claimed-ahead validation run again.
            let mut start = self.validation_idx.load(SeqCst);
            loop {
                let end = (start + CLAIM).min(self.n).min(limit);
                if end <= start {
                    break start..start;
                }
                match self
                    .validation_idx
                    .compare_exchange(start, end, SeqCst, SeqCst)
                {
                    Ok(_) => break start..end,
                    Err(now) => start = now,
                }
            }
        } else {
            let start = self.execution_idx.fetch_add(CLAIM, SeqCst);
            let range = start..(start + CLAIM).min(self.n);
            for by in self.executed_by.get(range.clone()).unwrap_or_default() {
                by.store(worker as u8, Relaxed);
            }
            range
        };
        if range.is_empty() {
            active.store(IDLE, SeqCst);
            return None;
        }
        active.store(range.start, SeqCst);
        Some(Claim { range, validate })
    }

    /// Whether `worker` should leave the validation of `txn` to the worker that executed it and
    /// execute instead: that worker still has the transaction's read set and keys in its cache,
    /// and execution work is left. Only a preference, bounded by [`MAX_VALIDATION_LAG`].
    #[inline]
    fn leave_to_owner(&self, worker: usize, txn: usize, exec: usize) -> bool {
        exec < self.n
            && exec - txn < MAX_VALIDATION_LAG
            && self.executed_by[txn].load(Relaxed) != worker as u8
    }

    /// The lowest first index of the claims workers hold ([`IDLE`] if none).
    #[inline]
    fn lowest_claim(&self) -> usize {
        self.active
            .iter()
            .map(|a| a.0.load(SeqCst))
            .min()
            .unwrap_or(IDLE)
    }

    #[inline]
    pub(super) fn release(&self, worker: usize) {
        self.active[worker].0.store(IDLE, SeqCst);
    }

    #[inline]
    pub(super) fn try_incarnate(&self, txn: usize) -> Option<Task> {
        let mut st = self.lock_tx(txn);
        if st.status == Status::Ready {
            st.status = Status::Executing;
            return Some(Task::Execute(txn, st.incarnation));
        }
        None
    }

    /// Records that `txn` waits for `blocking`; false if `blocking` already finished (retry).
    #[inline]
    pub(super) fn add_dependency(&self, txn: usize, blocking: usize) -> bool {
        assert!(blocking < txn, "a transaction depends on a later one");
        let mut blocker = self.lock_tx(blocking);
        if blocker.status == Status::Executed {
            return false;
        }
        {
            let mut st = self.lock_tx(txn);
            assert_eq!(st.status, Status::Executing);
            st.status = Status::Aborting;
        }
        blocker.dependents.push(txn);
        true
    }

    #[inline]
    pub(super) fn set_ready_status(&self, txn: usize) {
        let mut st = self.lock_tx(txn);
        assert_eq!(st.status, Status::Aborting);
        st.status = Status::Ready;
        st.incarnation += 1;
    }

    /// After `txn`'s incarnation `inc` was recorded and marked executed (see
    /// [`Shared::record`]): wakes the `dependents` it had, and picks what follows.
    #[inline]
    pub(super) fn finish_execution(
        &self,
        txn: usize,
        inc: u32,
        wrote_new_location: bool,
        dependents: Vec<usize>,
    ) -> Option<Task> {
        if let Some(min) = dependents.iter().copied().min() {
            for d in &dependents {
                self.set_ready_status(*d);
            }
            self.decrease_execution_idx(min);
        }
        if self.validation_idx.load(SeqCst) > txn {
            if wrote_new_location {
                self.decrease_validation_idx(txn);
            } else {
                return Some(Task::Validate(txn, inc));
            }
        }
        None
    }

    /// After a validation of `txn` failed and its state went back to `Ready` with the next
    /// incarnation (see [`Shared::validate`]).
    #[inline]
    pub(super) fn finish_validation_abort(&self, txn: usize) -> Option<Task> {
        self.decrease_validation_idx(txn + 1);
        if self.execution_idx.load(SeqCst) > txn {
            return self.try_incarnate(txn);
        }
        None
    }
}
