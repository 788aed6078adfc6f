//! Block-STM: optimistic parallel execution with multi-version memory, incarnations, read-set
//! validation, dependency estimates and re-execution (Gelashvili et al., "Block-STM", 2022).
//!
//! Every worker is one flat loop that takes the next task (execute or validate a transaction
//! version) from a shared scheduler; a transaction that reads a value another transaction is
//! recomputing does not wait: it registers a dependency and the worker moves on. No task ever
//! blocks on another task and no worker starts nested parallel work, so the rayon pool cannot
//! deadlock.
//!
//! When the block turns out to be mostly conflicting (the abort rate over the first executions
//! is above a threshold), the workers stop and the caller re-runs the block sequentially: a hot
//! pool then costs one short optimistic window plus sequential time.

use crate::fxhash::{FxBuild, FxHashMap};
use crate::ledger::{execute_tx, Blocked, Receipt, TxRead};
use crate::state::{Key, StateView, Value, Write};
use crate::tx::SignedTransaction;
use lanes_types::ProtocolParams;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

const SHARDS: usize = 256;

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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    Storage,
    Version(usize, u32),
}

enum MvRead {
    Storage,
    Version(usize, u32, Option<Value>),
    Estimate(usize),
}

#[derive(Clone)]
enum MvCell {
    Estimate,
    Data(Option<Value>),
}

/// The versions of one key, ascending by transaction index: (txn, incarnation, cell). A sorted
/// vector: most keys have one or two versions, and it allocates far less than a tree.
type Versions = Vec<(usize, u32, MvCell)>;

struct MvMemory {
    shards: Vec<Mutex<FxHashMap<Key, Versions>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a worker panicked (a broken invariant): propagate it.
    m.lock()
        .expect("executor lock poisoned by a panicking worker")
}

impl MvMemory {
    fn new(expected_keys: usize) -> Self {
        let per_shard = expected_keys / SHARDS + 1;
        MvMemory {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(FxHashMap::with_capacity_and_hasher(
                        per_shard,
                        FxBuild::default(),
                    ))
                })
                .collect(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<FxHashMap<Key, Versions>> {
        // The shard choice never reaches state or output: only lock contention depends on it.
        // Re-mix so the shard index is independent of the bits the shard's own map uses.
        let h = FxBuild::default().hash_one(key);
        let mixed = (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.shards[(mixed >> 56) as usize % SHARDS]
    }

    fn read(&self, key: &Key, txn: usize) -> MvRead {
        let shard = lock(self.shard(key));
        let Some(versions) = shard.get(key) else {
            return MvRead::Storage;
        };
        let below = versions.partition_point(|v| v.0 < txn);
        match below.checked_sub(1).map(|i| &versions[i]) {
            None => MvRead::Storage,
            Some((idx, _, MvCell::Estimate)) => MvRead::Estimate(*idx),
            Some((idx, inc, MvCell::Data(v))) => MvRead::Version(*idx, *inc, v.clone()),
        }
    }

    fn write(&self, key: &Key, txn: usize, inc: u32, value: Option<Value>) {
        let mut shard = lock(self.shard(key));
        let versions = shard.entry(*key).or_default();
        let at = versions.partition_point(|v| v.0 < txn);
        match versions.get_mut(at) {
            Some(v) if v.0 == txn => *v = (txn, inc, MvCell::Data(value)),
            _ => versions.insert(at, (txn, inc, MvCell::Data(value))),
        }
    }

    fn remove(&self, key: &Key, txn: usize) {
        if let Some(versions) = lock(self.shard(key)).get_mut(key) {
            if let Ok(at) = versions.binary_search_by_key(&txn, |v| v.0) {
                versions.remove(at);
            }
        }
    }

    fn mark_estimate(&self, key: &Key, txn: usize) {
        if let Some(versions) = lock(self.shard(key)).get_mut(key) {
            if let Ok(at) = versions.binary_search_by_key(&txn, |v| v.0) {
                versions[at].2 = MvCell::Estimate;
            }
        }
    }
}

#[derive(Default)]
struct Slot {
    reads: Vec<(Key, Origin)>,
    writes: Vec<Write>,
    receipt: Option<Receipt>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Ready,
    Executing,
    Executed,
    Aborting,
}

#[derive(Clone, Copy, Debug)]
enum Task {
    Execute(usize, u32),
    Validate(usize, u32),
}

struct Scheduler {
    n: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    num_active: AtomicUsize,
    done: AtomicBool,
    status: Vec<Mutex<(Status, u32)>>,
    deps: Vec<Mutex<Vec<usize>>>,
}

impl Scheduler {
    fn new(n: usize) -> Self {
        Scheduler {
            n,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            status: (0..n).map(|_| Mutex::new((Status::Ready, 0))).collect(),
            deps: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn done(&self) -> bool {
        self.done.load(SeqCst)
    }

    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        let exec = self.execution_idx.load(SeqCst);
        let val = self.validation_idx.load(SeqCst);
        if exec.min(val) >= self.n
            && self.num_active.load(SeqCst) == 0
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done.store(true, SeqCst);
        }
    }

    fn try_incarnate(&self, txn: usize) -> Option<Task> {
        if txn < self.n {
            let mut st = lock(&self.status[txn]);
            if st.0 == Status::Ready {
                st.0 = Status::Executing;
                return Some(Task::Execute(txn, st.1));
            }
        }
        self.num_active.fetch_sub(1, SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<Task> {
        if self.execution_idx.load(SeqCst) >= self.n {
            self.check_done();
            return None;
        }
        self.num_active.fetch_add(1, SeqCst);
        let idx = self.execution_idx.fetch_add(1, SeqCst);
        self.try_incarnate(idx)
    }

    fn next_version_to_validate(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) >= self.n {
            self.check_done();
            return None;
        }
        self.num_active.fetch_add(1, SeqCst);
        let idx = self.validation_idx.fetch_add(1, SeqCst);
        if idx < self.n {
            let st = lock(&self.status[idx]);
            if st.0 == Status::Executed {
                return Some(Task::Validate(idx, st.1));
            }
        }
        self.num_active.fetch_sub(1, SeqCst);
        None
    }

    fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
            self.next_version_to_validate()
        } else {
            self.next_version_to_execute()
        }
    }

    /// Records that `txn` waits for `blocking`; false if `blocking` already finished (retry).
    fn add_dependency(&self, txn: usize, blocking: usize) -> bool {
        assert!(blocking < txn, "a transaction depends on a later one");
        let mut deps = lock(&self.deps[blocking]);
        if lock(&self.status[blocking]).0 == Status::Executed {
            return false;
        }
        {
            let mut st = lock(&self.status[txn]);
            assert_eq!(st.0, Status::Executing);
            st.0 = Status::Aborting;
        }
        deps.push(txn);
        drop(deps);
        self.num_active.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, txn: usize) {
        let mut st = lock(&self.status[txn]);
        assert_eq!(st.0, Status::Aborting);
        *st = (Status::Ready, st.1 + 1);
    }

    fn finish_execution(&self, txn: usize, inc: u32, wrote_new_location: bool) -> Option<Task> {
        {
            let mut st = lock(&self.status[txn]);
            assert_eq!(*st, (Status::Executing, inc));
            st.0 = Status::Executed;
        }
        let deps = std::mem::take(&mut *lock(&self.deps[txn]));
        if let Some(min) = deps.iter().copied().min() {
            for d in &deps {
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
        self.num_active.fetch_sub(1, SeqCst);
        None
    }

    fn try_validation_abort(&self, txn: usize, inc: u32) -> bool {
        let mut st = lock(&self.status[txn]);
        if *st == (Status::Executed, inc) {
            st.0 = Status::Aborting;
            true
        } else {
            false
        }
    }

    fn finish_validation(&self, txn: usize, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(txn);
            self.decrease_validation_idx(txn + 1);
            if self.execution_idx.load(SeqCst) > txn {
                return self.try_incarnate(txn);
            }
        }
        self.num_active.fetch_sub(1, SeqCst);
        None
    }
}

struct MvReader<'a, S: StateView> {
    mv: &'a MvMemory,
    state: &'a S,
    txn: usize,
    reads: Vec<(Key, Origin)>,
}

impl<S: StateView> TxRead for MvReader<'_, S> {
    fn read(&mut self, key: &Key) -> Result<Option<Value>, Blocked> {
        match self.mv.read(key, self.txn) {
            MvRead::Estimate(idx) => Err(Blocked(idx)),
            MvRead::Version(idx, inc, v) => {
                self.reads.push((*key, Origin::Version(idx, inc)));
                Ok(v)
            }
            MvRead::Storage => {
                self.reads.push((*key, Origin::Storage));
                Ok(self.state.get(key))
            }
        }
    }
}

/// Counters of one parallel run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Transaction executions, including re-executions.
    pub executions: usize,
    /// Executions that were thrown away (failed validation or hit an estimate).
    pub aborts: usize,
    /// Read-set validations, including re-validations after aborts.
    pub validations: usize,
}

struct Shared<'a, S: StateView> {
    state: &'a S,
    params: &'a ProtocolParams,
    txs: &'a [SignedTransaction],
    mv: MvMemory,
    sched: Scheduler,
    slots: Vec<Mutex<Slot>>,
    executions: AtomicUsize,
    aborts: AtomicUsize,
    validations: AtomicUsize,
    near_deps: AtomicUsize,
    threads: usize,
    halt: AtomicBool,
    fallback: Fallback,
}

impl<S: StateView> Shared<'_, S> {
    fn note_abort(&self) {
        let aborts = self.aborts.fetch_add(1, SeqCst) + 1;
        // Judge against validations, not executions: executions run ahead of validation, so
        // aborts lag them, while every validation of a hot block finds a conflict at once.
        let checks = self.validations.load(SeqCst) + self.executions.load(SeqCst) / 4;
        let f = self.fallback;
        if f.window > 0 && checks >= f.window && aborts * 100 > checks * f.max_abort_pct {
            self.halt.store(true, SeqCst);
        }
    }

    /// Counts executions that read a value written at most `threads` positions earlier: when
    /// most transactions do, the block is a chain and cannot run faster than in order.
    fn note_near_dependency(&self, txn: usize, reads: &[(Key, Origin)]) {
        let near = reads
            .iter()
            .any(|(_, o)| matches!(o, Origin::Version(i, _) if txn - i <= self.threads));
        if !near {
            return;
        }
        let near = self.near_deps.fetch_add(1, SeqCst) + 1;
        let execs = self.executions.load(SeqCst);
        let f = self.fallback;
        if f.window > 0 && execs >= f.window && near * 100 > execs * f.max_near_dep_pct {
            self.halt.store(true, SeqCst);
        }
        let early = EARLY_FROM_WINDOWS * f.window..=EARLY_UNTIL_WINDOWS * f.window;
        if f.window > 0 && early.contains(&execs) && near * 100 > execs * EARLY_NEAR_DEP_PCT {
            self.halt.store(true, SeqCst);
        }
    }

    fn try_execute(&self, txn: usize, inc: u32) -> Option<Task> {
        loop {
            self.executions.fetch_add(1, SeqCst);
            let mut reader = MvReader {
                mv: &self.mv,
                state: self.state,
                txn,
                reads: Vec::new(),
            };
            match execute_tx(&mut reader, self.params, &self.txs[txn]) {
                Err(Blocked(blocking)) => {
                    self.note_abort();
                    if self.sched.add_dependency(txn, blocking) {
                        return None;
                    }
                }
                Ok(out) => {
                    self.note_near_dependency(txn, &reader.reads);
                    let wrote_new = self.record(txn, inc, reader.reads, out.writes, out.receipt);
                    return self.sched.finish_execution(txn, inc, wrote_new);
                }
            }
        }
    }

    /// Publishes an incarnation's writes; true if it wrote a key the previous one did not.
    fn record(
        &self,
        txn: usize,
        inc: u32,
        reads: Vec<(Key, Origin)>,
        writes: Vec<Write>,
        receipt: Receipt,
    ) -> bool {
        let mut slot = lock(&self.slots[txn]);
        for (k, v) in &writes {
            self.mv.write(k, txn, inc, v.clone());
        }
        let mut wrote_new = false;
        // Both write lists are sorted by key: walk them together.
        let (old, new) = (&slot.writes, &writes);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(w)) if o.0 == w.0 => {
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(w)) if o.0 < w.0 => {
                    self.mv.remove(&o.0, txn);
                    i += 1;
                }
                (Some(o), None) => {
                    self.mv.remove(&o.0, txn);
                    i += 1;
                }
                _ => {
                    wrote_new = true;
                    j += 1;
                }
            }
        }
        slot.reads = reads;
        slot.writes = writes;
        slot.receipt = Some(receipt);
        wrote_new
    }

    fn validate(&self, txn: usize, inc: u32) -> Option<Task> {
        let validations = self.validations.fetch_add(1, SeqCst) + 1;
        let f = self.fallback;
        if f.window > 0
            && validations > f.window
            && validations > f.max_validations_per_tx * self.txs.len()
        {
            // Re-validation waves cost more than running the block in order.
            self.halt.store(true, SeqCst);
        }
        let valid = {
            let slot = lock(&self.slots[txn]);
            slot.reads
                .iter()
                .all(|(k, origin)| match self.mv.read(k, txn) {
                    MvRead::Estimate(_) => false,
                    MvRead::Storage => *origin == Origin::Storage,
                    MvRead::Version(idx, i, _) => *origin == Origin::Version(idx, i),
                })
        };
        let aborted = !valid && self.sched.try_validation_abort(txn, inc);
        if aborted {
            self.note_abort();
            let slot = lock(&self.slots[txn]);
            for (k, _) in &slot.writes {
                self.mv.mark_estimate(k, txn);
            }
        }
        self.sched.finish_validation(txn, aborted)
    }

    fn worker(&self) {
        let mut task: Option<Task> = None;
        let mut idle = 0u32;
        loop {
            if self.halt.load(SeqCst) {
                return;
            }
            task = match task {
                Some(Task::Execute(txn, inc)) => self.try_execute(txn, inc),
                Some(Task::Validate(txn, inc)) => self.validate(txn, inc),
                None => {
                    if self.sched.done() {
                        return;
                    }
                    let t = self.sched.next_task();
                    if t.is_none() {
                        idle += 1;
                        if idle > 64 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    } else {
                        idle = 0;
                    }
                    t
                }
            };
        }
    }
}

/// One transaction's final receipt and writes.
pub(crate) type TxResult = (Receipt, Vec<Write>);

/// Runs Block-STM over `txs` with one worker per thread of `pool`. Returns each transaction's
/// final receipt and writes, or `None` if the abort rate triggered the sequential fallback.
pub(crate) fn run_block_stm<S: StateView>(
    pool: &rayon::ThreadPool,
    state: &S,
    params: &ProtocolParams,
    txs: &[SignedTransaction],
    fallback: Fallback,
) -> (Option<Vec<TxResult>>, RunCounters) {
    let shared = Shared {
        state,
        params,
        txs,
        mv: MvMemory::new(txs.len() * 4),
        sched: Scheduler::new(txs.len()),
        slots: (0..txs.len())
            .map(|_| Mutex::new(Slot::default()))
            .collect(),
        executions: AtomicUsize::new(0),
        aborts: AtomicUsize::new(0),
        validations: AtomicUsize::new(0),
        near_deps: AtomicUsize::new(0),
        threads: pool.current_num_threads(),
        halt: AtomicBool::new(false),
        fallback,
    };
    // One flat worker loop per pool thread; broadcast returns when every worker has returned.
    pool.broadcast(|_| shared.worker());
    let counters = RunCounters {
        executions: shared.executions.load(SeqCst),
        aborts: shared.aborts.load(SeqCst),
        validations: shared.validations.load(SeqCst),
    };
    if shared.halt.load(SeqCst) {
        return (None, counters);
    }
    assert!(
        shared.sched.done(),
        "Block-STM workers stopped before the block was done"
    );
    let outputs = shared
        .slots
        .into_iter()
        .map(|slot| {
            let slot = slot
                .into_inner()
                .expect("executor lock poisoned by a panicking worker");
            (
                slot.receipt.expect("every transaction executed"),
                slot.writes,
            )
        })
        .collect();
    (Some(outputs), counters)
}
