//! The worker loop: each pool thread claims ranges from the [`Scheduler`], executes
//! transactions against the multi-version memory, records their output, validates read sets,
//! and judges whether the block is worth running in parallel at all ([`Fallback`]).

use super::mv_memory::{MvMemory, Origin, Place, ReadEntry};
use super::scheduler::{Scheduler, Status, Task};
use super::{prefetch, RunCounters};
use crate::ledger::{execute_tx, Blocked, Receipt, TxRead};
use crate::state::{Key, StateView, Value, Write};
use crate::tx::SignedTransaction;
use lanes_types::ProtocolParams;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// Workers count executions, aborts and validations locally and add them to the shared totals
/// (and judge the fallback) every this many events: updating shared counters on every
/// transaction makes both cores fight over one cache line, which costs more than a transfer.
pub(super) const FLUSH_EVERY: usize = 16;

/// Early contention check: once `EARLY_FROM_WINDOWS` fallback windows of executions ran, and
/// until `EARLY_UNTIL_WINDOWS` windows ran, give up when more than `EARLY_NEAR_DEP_PCT` percent
/// of executions read a value written at most `threads` transactions earlier. On small, cheap
/// transactions the scheduler and multi-version bookkeeping cost more than the parallelism wins
/// back as soon as a few percent of the block chains on hot keys (pools, markets, validators):
/// such blocks ran at a third to a half of sequential speed. Deciding in the first windows keeps
/// the wasted optimistic work to a small fraction of the block; spread-out blocks (transfers)
/// stay far below the threshold.
const EARLY_NEAR_DEP_PCT: usize = 2;
const EARLY_FROM_WINDOWS: usize = 4;
const EARLY_UNTIL_WINDOWS: usize = 16;

/// Abort detection: the fallback decision is taken once at least this many executions ran.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fallback {
    /// Executions observed before judging (0 disables the fallback).
    pub window: usize,
    /// Give up when aborts exceed this percentage of validations (plus a quarter of executions).
    pub max_abort_pct: usize,
    /// Give up when validations exceed this many per transaction of the block.
    pub max_validations_per_tx: usize,
    /// Give up when more than this percentage of executions read a value written at most
    /// `threads` transactions earlier (a dependency chain).
    pub max_near_dep_pct: usize,
}

struct MvReader<'a, S: StateView> {
    mv: &'a MvMemory,
    state: &'a S,
    txn: usize,
    reads: Vec<ReadEntry>,
}

impl<S: StateView> TxRead for MvReader<'_, S> {
    fn prefetch(&mut self, keys: &[Key]) {
        for k in keys {
            self.mv.prefetch(self.mv.place(k), false);
        }
    }

    fn read(&mut self, key: &Key) -> Result<Option<Value>, Blocked> {
        let place = self.mv.place(key);
        match self.mv.read(key, place, self.txn) {
            Err(idx) => Err(Blocked(idx)),
            Ok((Origin::Storage, _)) => {
                self.reads.push((*key, place, Origin::Storage));
                Ok(self.state.get(key))
            }
            Ok((origin, v)) => {
                self.reads.push((*key, place, origin));
                Ok(v)
            }
        }
    }
}

/// A worker's statistics not yet added to the shared totals.
#[derive(Default)]
struct Local {
    executions: usize,
    aborts: usize,
    validations: usize,
    near_deps: usize,
    /// An empty read-set vector for the next execution.
    spare_reads: Vec<ReadEntry>,
}

impl Local {
    fn events(&self) -> usize {
        self.executions + self.validations
    }
}

pub(super) struct Shared<'a, S: StateView> {
    state: &'a S,
    params: &'a ProtocolParams,
    txs: &'a [SignedTransaction],
    mv: &'a MvMemory,
    pub(super) sched: Scheduler<'a>,
    executions: AtomicUsize,
    aborts: AtomicUsize,
    validations: AtomicUsize,
    near_deps: AtomicUsize,
    threads: usize,
    halt: AtomicBool,
    fallback: Fallback,
}

impl<'a, S: StateView> Shared<'a, S> {
    /// A run of `txs` over `state` with the memory `mv` and the scheduler `sched`, by `threads`
    /// workers.
    pub(super) fn new(
        state: &'a S,
        params: &'a ProtocolParams,
        txs: &'a [SignedTransaction],
        mv: &'a MvMemory,
        sched: Scheduler<'a>,
        threads: usize,
        fallback: Fallback,
    ) -> Self {
        Shared {
            state,
            params,
            txs,
            mv,
            sched,
            executions: AtomicUsize::new(0),
            aborts: AtomicUsize::new(0),
            validations: AtomicUsize::new(0),
            near_deps: AtomicUsize::new(0),
            threads,
            halt: AtomicBool::new(false),
            fallback,
        }
    }

    /// The run's totals (complete once every worker returned).
    pub(super) fn counters(&self) -> RunCounters {
        RunCounters {
            executions: self.executions.load(SeqCst),
            aborts: self.aborts.load(SeqCst),
            validations: self.validations.load(SeqCst),
        }
    }

    /// Whether the workers gave up on the block (see [`Fallback`]).
    pub(super) fn halted(&self) -> bool {
        self.halt.load(SeqCst)
    }

    /// Adds a worker's statistics to the totals and halts the run when they show a block that
    /// parallelism cannot speed up (see [`Fallback`] and `EARLY_NEAR_DEP_PCT`).
    fn flush(&self, local: &mut Local) {
        let executions = self.executions.fetch_add(local.executions, SeqCst) + local.executions;
        let aborts = self.aborts.fetch_add(local.aborts, SeqCst) + local.aborts;
        let validations = self.validations.fetch_add(local.validations, SeqCst) + local.validations;
        let near = self.near_deps.fetch_add(local.near_deps, SeqCst) + local.near_deps;
        *local = Local {
            spare_reads: std::mem::take(&mut local.spare_reads),
            ..Local::default()
        };
        let f = self.fallback;
        if f.window == 0 {
            return;
        }
        // Judge aborts against validations, not executions: executions run ahead of validation,
        // so aborts lag them, while every validation of a hot block finds a conflict at once.
        let checks = validations + executions / 4;
        let early = EARLY_FROM_WINDOWS * f.window..=EARLY_UNTIL_WINDOWS * f.window;
        let hopeless = (checks >= f.window && aborts * 100 > checks * f.max_abort_pct)
            // Re-validation waves cost more than running the block in order.
            || (validations > f.window && validations > f.max_validations_per_tx * self.txs.len())
            // Most executions read a value written just before: the block is a chain.
            || (executions >= f.window && near * 100 > executions * f.max_near_dep_pct)
            || (early.contains(&executions) && near * 100 > executions * EARLY_NEAR_DEP_PCT);
        if hopeless {
            self.halt.store(true, SeqCst);
        }
    }

    fn try_execute(&self, txn: usize, inc: u32, local: &mut Local) -> Option<Task> {
        loop {
            local.executions += 1;
            let mut reader = MvReader {
                mv: self.mv,
                state: self.state,
                txn,
                reads: std::mem::take(&mut local.spare_reads),
            };
            match execute_tx(&mut reader, self.params, &self.txs[txn]) {
                Err(Blocked(blocking)) => {
                    local.aborts += 1;
                    local.spare_reads = reader.reads;
                    local.spare_reads.clear();
                    if self.sched.add_dependency(txn, blocking) {
                        return None;
                    }
                }
                Ok(out) => {
                    // A read of a value written at most `threads` positions earlier: when most
                    // transactions have one, the block is a chain and cannot beat sequential.
                    let near = reader.reads.iter().any(
                        |(_, _, o)| matches!(o, Origin::Version(i, _) if txn - i <= self.threads),
                    );
                    local.near_deps += usize::from(near);
                    local.spare_reads = reader.reads;
                    let (wrote_new, dependents) =
                        self.record(txn, inc, &mut local.spare_reads, out.writes, out.receipt);
                    return self.sched.finish_execution(txn, inc, wrote_new, dependents);
                }
            }
        }
    }

    /// Publishes an incarnation's writes and read set (copied, `reads` is left empty) and marks
    /// the transaction executed: whether it wrote a key the previous incarnation did not, and
    /// the transactions that were waiting for it.
    fn record(
        &self,
        txn: usize,
        inc: u32,
        reads: &mut Vec<ReadEntry>,
        mut writes: Vec<Write>,
        receipt: Receipt,
    ) -> (bool, Vec<usize>) {
        let mut st = self.sched.lock_tx(txn);
        assert_eq!((st.status(), st.incarnation()), (Status::Executing, inc));
        if !std::mem::replace(&mut st.recorded, true) {
            // The first incarnation recorded in this block (not necessarily incarnation 0: an
            // execution that hit an estimate records nothing): what the slot holds is an earlier
            // block's, and every key written now must count as new, or validation could pass
            // this transaction by (`finish_execution`).
            st.slot.written.clear();
        }
        let slot = &mut st.slot;
        let mut wrote_new = false;
        // Both key lists are sorted: walk them together to find the keys only the previous
        // incarnation wrote (removed below, after the new versions are in place).
        let mut stale = Vec::new();
        let (old, new) = (&slot.written, &writes);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(w)) if *o == w.0 => {
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(w)) if *o < w.0 => {
                    stale.push(*o);
                    i += 1;
                }
                (Some(o), None) => {
                    stale.push(*o);
                    i += 1;
                }
                _ => {
                    wrote_new = true;
                    j += 1;
                }
            }
        }
        slot.written.clear();
        // Start the cache misses of all the writes at once; then lower every filter slot, publish
        // every version, and only then note the keys: each atomic operation is a full barrier
        // that waits for the stores before it, so the stores that miss the cache come last.
        const AHEAD: usize = 8;
        let mut places = [Place::default(); AHEAD];
        for ((k, _), p) in writes.iter().zip(places.iter_mut()) {
            *p = self.mv.place(k);
            self.mv.prefetch(*p, true);
        }
        let place_of =
            |i: usize, k: &Key| places.get(i).copied().unwrap_or_else(|| self.mv.place(k));
        for (i, (k, _)) in writes.iter().enumerate() {
            self.mv.lower_filter(place_of(i, k), txn);
        }
        for (i, (k, v)) in writes.iter_mut().enumerate() {
            self.mv.publish(*k, place_of(i, k), txn, inc, v.take());
        }
        slot.written.extend(writes.iter().map(|w| w.0));
        for k in &stale {
            self.mv.remove(k, txn);
        }
        slot.reads.clear();
        slot.reads.extend_from_slice(reads);
        reads.clear();
        slot.receipt = Some(receipt);
        st.mark_executed();
        (wrote_new, st.take_dependents())
    }

    /// Validates the read set of `txn`'s incarnation `inc` (`None`: whichever incarnation last
    /// finished executing). A stale request (the transaction is executing again, or aborted)
    /// does nothing. On failure the incarnation's writes become estimates and the transaction is
    /// ready for its next incarnation.
    fn validate(&self, txn: usize, inc: Option<u32>, local: &mut Local) -> Option<Task> {
        {
            let mut st = self.sched.lock_tx(txn);
            if st.status() != Status::Executed || inc.is_some_and(|i| i != st.incarnation()) {
                return None;
            }
            local.validations += 1;
            for (_, place, _) in &st.slot.reads {
                self.mv.prefetch(*place, false);
            }
            let valid = st
                .slot
                .reads
                .iter()
                .all(|(k, place, origin)| self.mv.origin(k, *place, txn) == Ok(*origin));
            if valid {
                return None;
            }
            local.aborts += 1;
            for k in &st.slot.written {
                self.mv.mark_estimate(k, txn);
            }
            st.abort_validated();
        }
        self.sched.finish_validation_abort(txn)
    }

    pub(super) fn worker(&self, worker: usize) {
        let mut local = Local::default();
        let mut idle = 0u32;
        while !self.halt.load(SeqCst) {
            let Some(claim) = self.sched.claim(worker) else {
                if self.sched.done() {
                    break;
                }
                idle += 1;
                if idle > 64 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            };
            idle = 0;
            for txn in claim.range.clone() {
                prefetch(&self.sched.txs[txn]);
            }
            for txn in claim.range {
                let mut task = if claim.validate {
                    self.validate(txn, None, &mut local)
                } else {
                    self.sched.try_incarnate(txn)
                };
                while let Some(t) = task {
                    task = match t {
                        Task::Execute(txn, inc) => self.try_execute(txn, inc, &mut local),
                        Task::Validate(txn, inc) => self.validate(txn, Some(inc), &mut local),
                    };
                }
                if local.events() >= FLUSH_EVERY {
                    self.flush(&mut local);
                }
            }
            self.sched.release(worker);
        }
        self.flush(&mut local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Scratch;
    use lanes_types::Address;

    /// A transaction whose first recorded incarnation in a block is not incarnation 0 (the
    /// first hit an estimate) reports its writes as new even if the same entry recorded the same
    /// keys in an earlier block: otherwise validation could stay past it (found in review).
    #[test]
    fn first_record_in_a_block_writes_new_keys_whatever_the_entry_held() {
        use crate::ledger::Status as ReceiptStatus;
        use crate::state::MemState;
        let k = Key::NextAssetId;
        let mut scratch = Scratch::default();
        scratch.reset(4);
        // An earlier block: transaction 2 recorded a write of `k`.
        scratch.entries[2].state.get_mut().slot.written.push(k);
        scratch.reset(4);
        let state = MemState::default();
        let params = ProtocolParams::local_defaults(Address([0; 20]));
        let shared = Shared {
            state: &state,
            params: &params,
            txs: &[],
            mv: &scratch.mv,
            sched: Scheduler::new(&scratch.entries[..4], 2),
            executions: AtomicUsize::new(0),
            aborts: AtomicUsize::new(0),
            validations: AtomicUsize::new(0),
            near_deps: AtomicUsize::new(0),
            threads: 2,
            halt: AtomicBool::new(false),
            fallback: Fallback {
                window: 0,
                max_abort_pct: 0,
                max_validations_per_tx: 0,
                max_near_dep_pct: 0,
            },
        };
        // Incarnation 0 of transaction 2 reads an estimate of 1 and waits for it.
        assert!(matches!(
            shared.sched.try_incarnate(1),
            Some(Task::Execute(1, 0))
        ));
        assert!(matches!(
            shared.sched.try_incarnate(2),
            Some(Task::Execute(2, 0))
        ));
        assert!(shared.sched.add_dependency(2, 1));
        shared.sched.set_ready_status(2);
        assert!(matches!(
            shared.sched.try_incarnate(2),
            Some(Task::Execute(2, 1))
        ));
        let receipt = Receipt {
            status: ReceiptStatus::Success,
            fee_paid: 0,
            outputs: vec![],
        };
        let (wrote_new, _) = shared.record(
            2,
            1,
            &mut Vec::new(),
            vec![(k, Some(Value::U64(1)))],
            receipt,
        );
        assert!(wrote_new, "the block's first write of the key was not new");
    }
}
