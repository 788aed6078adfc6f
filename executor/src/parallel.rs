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
use rayon::prelude::*;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 256;

/// Workers count executions, aborts and validations locally and add them to the shared totals
/// (and judge the fallback) every this many events: updating shared counters on every
/// transaction makes both cores fight over one cache line, which costs more than a transfer.
const FLUSH_EVERY: usize = 16;

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

/// Where a read value came from: committed state, or a version written in the block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    Storage,
    Version(usize, u32),
}

enum MvCell {
    Estimate,
    Data(Option<Value>),
}

/// No node: the end of a version list.
const NIL: u32 = u32::MAX;

/// One version of a key, in its shard's node arena.
struct VNode {
    txn: usize,
    inc: u32,
    /// The next older version (lower transaction index), or [`NIL`].
    older: u32,
    cell: MvCell,
}

/// One shard of the multi-version memory. The versions of a key form a list in `nodes`, newest
/// (highest transaction index) first, starting at `heads[key]`: most keys have one to three
/// versions, and an arena reused from block to block allocates nothing per key.
#[derive(Default)]
struct Shard {
    heads: FxHashMap<Key, u32>,
    nodes: Vec<VNode>,
    /// Unlinked nodes, reused by the next insertion (keeps a shard bounded by its live versions).
    free: Vec<u32>,
}

impl Shard {
    /// The newest version of `key` below `txn`.
    fn below(&self, key: &Key, txn: usize) -> Option<&VNode> {
        let mut at = *self.heads.get(key)?;
        while at != NIL {
            let node = &self.nodes[at as usize];
            if node.txn < txn {
                return Some(node);
            }
            at = node.older;
        }
        None
    }

    /// The node of `txn`'s version of `key`, if any.
    fn find_mut(&mut self, key: &Key, txn: usize) -> Option<&mut VNode> {
        let mut at = *self.heads.get(key)?;
        while at != NIL && self.nodes[at as usize].txn > txn {
            at = self.nodes[at as usize].older;
        }
        let node = self.nodes.get_mut(at as usize)?;
        (node.txn == txn).then_some(node)
    }

    fn write(&mut self, key: Key, txn: usize, inc: u32, value: Option<Value>) {
        if let Some(node) = self.find_mut(&key, txn) {
            node.inc = inc;
            node.cell = MvCell::Data(value);
            return;
        }
        let node = VNode {
            txn,
            inc,
            older: NIL,
            cell: MvCell::Data(value),
        };
        let new = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 versions");
                assert!(i != NIL, "fewer than 2^32 versions");
                self.nodes.push(node);
                i
            }
        };
        // Link it in before the first older version.
        let head = self.heads.entry(key).or_insert(NIL);
        if *head == NIL || self.nodes[*head as usize].txn < txn {
            self.nodes[new as usize].older = *head;
            *head = new;
            return;
        }
        let mut prev = *head;
        loop {
            let next = self.nodes[prev as usize].older;
            if next == NIL || self.nodes[next as usize].txn < txn {
                self.nodes[new as usize].older = next;
                self.nodes[prev as usize].older = new;
                return;
            }
            prev = next;
        }
    }

    fn remove(&mut self, key: &Key, txn: usize) {
        let Some(&head) = self.heads.get(key) else {
            return;
        };
        let (mut prev, mut at) = (NIL, head);
        while at != NIL && self.nodes[at as usize].txn > txn {
            (prev, at) = (at, self.nodes[at as usize].older);
        }
        if at == NIL || self.nodes[at as usize].txn != txn {
            return;
        }
        let older = self.nodes[at as usize].older;
        if prev == NIL {
            self.heads.insert(*key, older);
        } else {
            self.nodes[prev as usize].older = older;
        }
        self.nodes[at as usize].cell = MvCell::Data(None);
        self.free.push(at);
    }
}

/// Keeps a value on its own cache lines, so that workers using neighbouring values do not
/// invalidate each other's caches (false sharing).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// The multi-version memory: every key written in the block, with the versions written by each
/// transaction's latest incarnation. Sharded by key hash, one lock per shard.
///
/// `lowest_writer` is a filter in front of the shards: slot `h` holds the lowest index of any
/// transaction that wrote a key hashing to `h` in this block (`u32::MAX`: none). It only ever
/// decreases, and a writer lowers it before publishing its version, so a transaction `txn` that
/// finds a slot `>= txn` knows no version below it exists: the key reads from storage, without
/// locking or probing a shard. In a block of spread-out transfers most reads and validations
/// take this path.
#[derive(Default)]
pub(crate) struct MvMemory {
    shards: Vec<Padded<Mutex<Shard>>>,
    lowest_writer: Vec<AtomicU32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a worker panicked (a broken invariant): propagate it.
    m.lock()
        .expect("executor lock poisoned by a panicking worker")
}

/// Where a key lives in the multi-version memory: its shard and its filter slot. Derived from a
/// hash of the key; never reaches state or output (only contention and speed depend on it).
#[derive(Clone, Copy)]
struct Place {
    shard: usize,
    filter: usize,
}

impl MvMemory {
    /// Empties the memory for a block of `n` transactions, keeping its allocations.
    fn reset(&mut self, n: usize) {
        assert!(n < u32::MAX as usize, "block too large for the executor");
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| Padded(Mutex::default())).collect();
        }
        self.shards.par_iter_mut().for_each(|s| {
            let s =
                s.0.get_mut()
                    .expect("executor lock poisoned by a panicking worker");
            s.heads.clear();
            s.nodes.clear();
            s.free.clear();
        });
        // About eight slots per transaction keeps false positives (slots shared with a key
        // written lower in the block) rare for blocks writing a few keys per transaction.
        let slots = (n * 8).next_power_of_two().max(1024);
        if self.lowest_writer.len() != slots {
            self.lowest_writer = (0..slots).map(|_| AtomicU32::new(u32::MAX)).collect();
        } else {
            self.lowest_writer
                .par_iter_mut()
                .with_min_len(4096)
                .for_each(|s| *s.get_mut() = u32::MAX);
        }
    }

    fn place(&self, key: &Key) -> Place {
        // Re-mix so that the shard index, the filter slot and the bits the shard's own map uses
        // are independent.
        let h = FxBuild::default().hash_one(key);
        let mixed = (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Place {
            shard: (mixed >> 56) as usize % SHARDS,
            filter: mixed as usize & (self.lowest_writer.len() - 1),
        }
    }

    fn shard(&self, place: Place) -> MutexGuard<'_, Shard> {
        lock(&self.shards[place.shard].0)
    }

    /// True if no transaction below `txn` wrote `key` (nor any key sharing its filter slot).
    fn none_below(&self, place: Place, txn: usize) -> bool {
        self.lowest_writer[place.filter].load(SeqCst) as usize >= txn
    }

    /// The version of `key` that transaction `txn` sees: the highest below `txn`, if any.
    /// `Err(idx)`: that version is an estimate (transaction `idx` is being re-executed).
    fn read(&self, key: &Key, txn: usize) -> Result<(Origin, Option<Value>), usize> {
        let place = self.place(key);
        if self.none_below(place, txn) {
            return Ok((Origin::Storage, None));
        }
        match self.shard(place).below(key, txn) {
            None => Ok((Origin::Storage, None)),
            Some(VNode {
                txn: idx,
                cell: MvCell::Estimate,
                ..
            }) => Err(*idx),
            Some(VNode {
                txn: idx,
                inc,
                cell: MvCell::Data(v),
                ..
            }) => Ok((Origin::Version(*idx, *inc), v.clone())),
        }
    }

    /// Like [`MvMemory::read`], without copying the value (for validation).
    fn origin(&self, key: &Key, txn: usize) -> Result<Origin, usize> {
        let place = self.place(key);
        if self.none_below(place, txn) {
            return Ok(Origin::Storage);
        }
        match self.shard(place).below(key, txn) {
            None => Ok(Origin::Storage),
            Some(VNode {
                txn: idx,
                cell: MvCell::Estimate,
                ..
            }) => Err(*idx),
            Some(VNode { txn: idx, inc, .. }) => Ok(Origin::Version(*idx, *inc)),
        }
    }

    fn write(&self, key: Key, txn: usize, inc: u32, value: Option<Value>) {
        let place = self.place(&key);
        // Lower the filter first: a reader that still sees it above `txn` ran before this write.
        self.lowest_writer[place.filter].fetch_min(txn as u32, SeqCst);
        self.shard(place).write(key, txn, inc, value);
    }

    fn remove(&self, key: &Key, txn: usize) {
        self.shard(self.place(key)).remove(key, txn);
    }

    fn mark_estimate(&self, key: &Key, txn: usize) {
        if let Some(node) = self.shard(self.place(key)).find_mut(key, txn) {
            node.cell = MvCell::Estimate;
        }
    }

    /// Takes the final value of `key` (its newest version) out of the memory, if it was written.
    fn take(&mut self, key: &Key) -> Option<Option<Value>> {
        let shard = self.place(key).shard;
        let s = self.shards[shard]
            .0
            .get_mut()
            .expect("executor lock poisoned by a panicking worker");
        let head = s.heads.remove(key)?;
        (head != NIL).then(|| final_value(&mut s.nodes[head as usize]))
    }

    /// The block's net writes once every transaction is final: the newest version of each key
    /// (unsorted). Runs shard by shard on the current rayon pool and leaves the memory empty.
    fn drain_net_writes(&mut self) -> Vec<Write> {
        let parts: Vec<Vec<Write>> = self
            .shards
            .par_iter_mut()
            .map(|s| {
                let s =
                    s.0.get_mut()
                        .expect("executor lock poisoned by a panicking worker");
                let mut out = Vec::with_capacity(s.heads.len());
                for (key, head) in s.heads.drain() {
                    // A key only an earlier incarnation wrote has no version left.
                    if head != NIL {
                        out.push((key, final_value(&mut s.nodes[head as usize])));
                    }
                }
                s.nodes.clear();
                s.free.clear();
                out
            })
            .collect();
        // One spare slot: the caller adds the fee credit.
        let mut writes = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 1);
        for part in parts {
            writes.extend(part);
        }
        writes
    }
}

fn final_value(node: &mut VNode) -> Option<Value> {
    match std::mem::replace(&mut node.cell, MvCell::Data(None)) {
        MvCell::Data(v) => v,
        MvCell::Estimate => unreachable!("an estimate outlived its block"),
    }
}

/// The latest incarnation's output of one transaction.
#[derive(Default)]
struct Slot {
    reads: Vec<(Key, Origin)>,
    /// The keys it wrote, ascending (the values are in the multi-version memory).
    written: Vec<Key>,
    receipt: Option<Receipt>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Status {
    #[default]
    Ready,
    Executing,
    Executed,
    Aborting,
}

/// Scheduling state of one transaction: status, incarnation, and the transactions waiting for
/// it to finish executing (its dependents), under one lock.
#[derive(Default)]
struct TxSched {
    status: Status,
    incarnation: u32,
    dependents: Vec<usize>,
}

/// Everything per transaction, on its own cache lines: workers run neighbouring transactions.
#[derive(Default)]
#[repr(align(64))]
struct TxEntry {
    sched: Mutex<TxSched>,
    slot: Mutex<Slot>,
}

#[derive(Clone, Copy, Debug)]
enum Task {
    Execute(usize, u32),
    Validate(usize, u32),
}

/// Transactions a worker claims at once, for execution or for validation: one shared counter
/// update per claim instead of per transaction, and neighbouring transactions stay on one core.
const CLAIM: usize = 8;

/// A range of transaction indices a worker claimed.
struct Claim {
    range: std::ops::Range<usize>,
    validate: bool,
}

/// The Block-STM collaborative scheduler (the paper's Algorithms 4 and 5), with two changes:
/// workers claim [`CLAIM`] consecutive indices per counter update, and instead of counting
/// active tasks in one shared counter each worker raises its own `active` flag while it holds a
/// claim (set before the claim is taken, cleared after its last task), which `check_done` reads.
/// Lock order: a transaction's `sched` lock is only taken while holding that of a *lower*
/// transaction (`add_dependency`), never the other way round.
struct Scheduler<'a> {
    n: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    active: Vec<Padded<AtomicBool>>,
    done: AtomicBool,
    txs: &'a [TxEntry],
}

impl<'a> Scheduler<'a> {
    fn new(txs: &'a [TxEntry], workers: usize) -> Self {
        Scheduler {
            n: txs.len(),
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            active: (0..workers)
                .map(|_| Padded(AtomicBool::new(false)))
                .collect(),
            done: AtomicBool::new(false),
            txs,
        }
    }

    fn sched(&self, txn: usize) -> MutexGuard<'_, TxSched> {
        lock(&self.txs[txn].sched)
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

    /// Done when both indices passed the block, no worker holds a claim, and no index was
    /// decreased meanwhile. Called only by a worker that holds no claim.
    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        let exec = self.execution_idx.load(SeqCst);
        let val = self.validation_idx.load(SeqCst);
        if exec.min(val) >= self.n
            && self.active.iter().all(|a| !a.0.load(SeqCst))
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done.store(true, SeqCst);
        }
    }

    /// The next range to validate (if validation is behind execution) or to execute. On `Some`,
    /// the worker's flag is raised; the worker lowers it after the claim's last task.
    fn claim(&self, worker: usize) -> Option<Claim> {
        let exec = self.execution_idx.load(SeqCst);
        let validate = self.validation_idx.load(SeqCst) < exec;
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
        active.store(true, SeqCst);
        let range = if validate {
            // Never claim validations past the execution index: a transaction that finishes
            // executing below the validation index resets it (its writes are new), which would
            // make every claimed-ahead validation run again.
            let mut start = self.validation_idx.load(SeqCst);
            loop {
                let end = (start + CLAIM).min(self.n).min(exec);
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
            start..(start + CLAIM).min(self.n)
        };
        if range.is_empty() {
            active.store(false, SeqCst);
            return None;
        }
        Some(Claim { range, validate })
    }

    fn release(&self, worker: usize) {
        self.active[worker].0.store(false, SeqCst);
    }

    fn try_incarnate(&self, txn: usize) -> Option<Task> {
        let mut st = self.sched(txn);
        if st.status == Status::Ready {
            st.status = Status::Executing;
            return Some(Task::Execute(txn, st.incarnation));
        }
        None
    }

    fn validation_task(&self, txn: usize) -> Option<Task> {
        let st = self.sched(txn);
        (st.status == Status::Executed).then_some(Task::Validate(txn, st.incarnation))
    }

    /// Records that `txn` waits for `blocking`; false if `blocking` already finished (retry).
    fn add_dependency(&self, txn: usize, blocking: usize) -> bool {
        assert!(blocking < txn, "a transaction depends on a later one");
        let mut blocker = self.sched(blocking);
        if blocker.status == Status::Executed {
            return false;
        }
        {
            let mut st = self.sched(txn);
            assert_eq!(st.status, Status::Executing);
            st.status = Status::Aborting;
        }
        blocker.dependents.push(txn);
        true
    }

    fn set_ready_status(&self, txn: usize) {
        let mut st = self.sched(txn);
        assert_eq!(st.status, Status::Aborting);
        st.status = Status::Ready;
        st.incarnation += 1;
    }

    fn finish_execution(&self, txn: usize, inc: u32, wrote_new_location: bool) -> Option<Task> {
        let dependents = {
            let mut st = self.sched(txn);
            assert_eq!((st.status, st.incarnation), (Status::Executing, inc));
            st.status = Status::Executed;
            std::mem::take(&mut st.dependents)
        };
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

    fn try_validation_abort(&self, txn: usize, inc: u32) -> bool {
        let mut st = self.sched(txn);
        if (st.status, st.incarnation) == (Status::Executed, inc) {
            st.status = Status::Aborting;
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
            Err(idx) => Err(Blocked(idx)),
            Ok((Origin::Storage, _)) => {
                self.reads.push((*key, Origin::Storage));
                Ok(self.state.get(key))
            }
            Ok((origin, v)) => {
                self.reads.push((*key, origin));
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
}

impl Local {
    fn events(&self) -> usize {
        self.executions + self.validations
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
    mv: &'a MvMemory,
    sched: Scheduler<'a>,
    executions: AtomicUsize,
    aborts: AtomicUsize,
    validations: AtomicUsize,
    near_deps: AtomicUsize,
    threads: usize,
    halt: AtomicBool,
    fallback: Fallback,
}

impl<S: StateView> Shared<'_, S> {
    /// Adds a worker's statistics to the totals and halts the run when they show a block that
    /// parallelism cannot speed up (see [`Fallback`] and `EARLY_NEAR_DEP_PCT`).
    fn flush(&self, local: &mut Local) {
        let executions = self.executions.fetch_add(local.executions, SeqCst) + local.executions;
        let aborts = self.aborts.fetch_add(local.aborts, SeqCst) + local.aborts;
        let validations = self.validations.fetch_add(local.validations, SeqCst) + local.validations;
        let near = self.near_deps.fetch_add(local.near_deps, SeqCst) + local.near_deps;
        *local = Local::default();
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
                reads: Vec::new(),
            };
            match execute_tx(&mut reader, self.params, &self.txs[txn]) {
                Err(Blocked(blocking)) => {
                    local.aborts += 1;
                    if self.sched.add_dependency(txn, blocking) {
                        return None;
                    }
                }
                Ok(out) => {
                    // A read of a value written at most `threads` positions earlier: when most
                    // transactions have one, the block is a chain and cannot beat sequential.
                    let near = reader.reads.iter().any(
                        |(_, o)| matches!(o, Origin::Version(i, _) if txn - i <= self.threads),
                    );
                    local.near_deps += usize::from(near);
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
        let mut slot = lock(&self.sched.txs[txn].slot);
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
        for (k, v) in writes {
            slot.written.push(k);
            self.mv.write(k, txn, inc, v);
        }
        for k in &stale {
            self.mv.remove(k, txn);
        }
        slot.reads = reads;
        slot.receipt = Some(receipt);
        wrote_new
    }

    fn validate(&self, txn: usize, inc: u32, local: &mut Local) -> Option<Task> {
        local.validations += 1;
        let valid = {
            let slot = lock(&self.sched.txs[txn].slot);
            slot.reads
                .iter()
                .all(|(k, origin)| self.mv.origin(k, txn) == Ok(*origin))
        };
        let aborted = !valid && self.sched.try_validation_abort(txn, inc);
        if aborted {
            local.aborts += 1;
            let slot = lock(&self.sched.txs[txn].slot);
            for k in &slot.written {
                self.mv.mark_estimate(k, txn);
            }
        }
        self.sched.finish_validation(txn, aborted)
    }

    fn worker(&self, worker: usize) {
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
            for txn in claim.range {
                let mut task = if claim.validate {
                    self.sched.validation_task(txn)
                } else {
                    self.sched.try_incarnate(txn)
                };
                while let Some(t) = task {
                    task = match t {
                        Task::Execute(txn, inc) => self.try_execute(txn, inc, &mut local),
                        Task::Validate(txn, inc) => self.validate(txn, inc, &mut local),
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

/// Per-block memory of the parallel executor (transaction entries, multi-version memory),
/// kept from one block to the next so that steady-state execution allocates almost nothing:
/// allocating, page-faulting and freeing tens of megabytes per block cost as much as executing a
/// block of transfers. It grows to the largest block executed, which `max_block_txs` bounds.
#[derive(Default)]
pub(crate) struct Scratch {
    entries: Vec<TxEntry>,
    mv: MvMemory,
}

impl Scratch {
    /// Ready for a block of `n` transactions (on the current rayon pool).
    fn reset(&mut self, n: usize) {
        if self.entries.len() < n {
            self.entries.resize_with(n, TxEntry::default);
        }
        self.entries[..n].par_iter_mut().for_each(|e| {
            let sched = e
                .sched
                .get_mut()
                .expect("executor lock poisoned by a panicking worker");
            sched.status = Status::Ready;
            sched.incarnation = 0;
            sched.dependents.clear();
            let slot = e
                .slot
                .get_mut()
                .expect("executor lock poisoned by a panicking worker");
            slot.reads.clear();
            slot.written.clear();
            slot.receipt = None;
        });
        self.mv.reset(n);
    }
}

/// What a completed parallel run produced.
pub(crate) struct StmOutput {
    /// Every transaction's receipt, in block order.
    pub receipts: Vec<Receipt>,
    /// The block's net writes: each key once, unsorted, except the watched key.
    pub writes: Vec<Write>,
    /// The watched key's net write, if the block wrote it.
    pub watched: Option<Option<Value>>,
}

/// Runs Block-STM over `txs` with one worker per thread of `pool`, using (and leaving reusable)
/// `scratch`. The net write of `watch` is returned apart (the fee sink, credited after the
/// block). `None` when the run gave up and the block must be executed sequentially.
pub(crate) fn run_block_stm<S: StateView>(
    pool: &rayon::ThreadPool,
    scratch: &mut Scratch,
    state: &S,
    params: &ProtocolParams,
    txs: &[SignedTransaction],
    fallback: Fallback,
    watch: &Key,
) -> (Option<StmOutput>, RunCounters) {
    let n = txs.len();
    pool.install(|| scratch.reset(n));
    let shared = Shared {
        state,
        params,
        txs,
        mv: &scratch.mv,
        sched: Scheduler::new(&scratch.entries[..n], pool.current_num_threads()),
        executions: AtomicUsize::new(0),
        aborts: AtomicUsize::new(0),
        validations: AtomicUsize::new(0),
        near_deps: AtomicUsize::new(0),
        threads: pool.current_num_threads(),
        halt: AtomicBool::new(false),
        fallback,
    };
    // One flat worker loop per pool thread; broadcast returns when every worker has returned.
    pool.broadcast(|ctx| shared.worker(ctx.index()));
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
    drop(shared);
    let Scratch { entries, mv } = scratch;
    let watched = mv.take(watch);
    let (receipts, writes) = pool.install(|| {
        rayon::join(
            || {
                entries[..n]
                    .par_iter_mut()
                    .map(|e| {
                        let slot = e
                            .slot
                            .get_mut()
                            .expect("executor lock poisoned by a panicking worker");
                        slot.receipt.take().expect("every transaction executed")
                    })
                    .collect::<Vec<Receipt>>()
            },
            || mv.drain_net_writes(),
        )
    });
    let out = StmOutput {
        receipts,
        writes,
        watched,
    };
    (Some(out), counters)
}
