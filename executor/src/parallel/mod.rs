//! Block-STM: optimistic parallel execution with multi-version memory, incarnations, read-set
//! validation, dependency estimates and re-execution (Gelashvili et al., "Block-STM", 2022).
//!
//! Every worker is one flat loop that takes the next task (execute or validate a transaction
//! version) from a shared scheduler; a transaction that reads a value another transaction is
//! recomputing does not wait: it registers a dependency and the worker moves on. No task ever
//! blocks on another task and no worker starts nested parallel work, so the rayon pool cannot
//! deadlock.
//!
//! When the block turns out to be mostly conflicting (the abort rate over the first executions is
//! above a threshold, see [`Fallback`]), the workers stop and the caller re-runs the block
//! sequentially: a hot pool then costs one short optimistic window plus sequential time.
//!
//! Cost model. A transfer costs a few microseconds and is bound by memory latency, so the
//! bookkeeping is built to touch little shared memory per transaction:
//! - the multi-version memory is sharded by key range ([`mv_memory::shard_of`]); each shard keeps a
//!   key's newest version inline in its map entry (older ones in a node arena), keys are hashed
//!   once per access, and a one-byte lowest-writer filter in front of the shards answers most reads
//!   and validations of keys no lower transaction wrote without taking a lock;
//! - locks are [`SpinLock`](crate::spin::SpinLock)s, whose unlock is a plain store rather than a
//!   full barrier, and a transaction has one lock for its scheduling state and its output
//!   ([`scheduler::TxState`]): taking a lock is a full barrier, which waits for the multi-version
//!   stores just made;
//! - the ledger announces the keys a transaction will read ([`crate::ledger::TxRead::prefetch`]),
//!   so their filter slots load together instead of one cache miss after another;
//! - workers claim [`scheduler::CLAIM`] indices per scheduler counter update and keep their
//!   statistics locally ([`worker::FLUSH_EVERY`]); a range is validated once every lower
//!   transaction has finished executing, preferably by the worker that executed it, while its read
//!   set and keys are still in that core's cache ([`Scheduler::claim`]); a transaction's read and
//!   write sets live inline in its entry, which workers visit in index order (and prefetch on
//!   claiming);
//! - per-block memory ([`Scratch`]) is kept by the executor between blocks;
//! - the net writes drain from the shards in parallel, each shard sorted in cache and moved once to
//!   its range of the output ([`MvMemory::drain_sorted`]).
//!
//! Modules, along the algorithm's seams: [`mv_memory`] (the multi-version memory), [`scheduler`]
//! (the collaborative scheduler and every transaction status transition), [`worker`] (the worker
//! loop: execute, record, validate, fall back) and [`drain`] (the block's sorted writes and the
//! deferred fee credit); this module runs a block through them.

mod drain;
mod mv_memory;
mod scheduler;
mod worker;

pub(crate) use drain::concat;
pub(crate) use worker::Fallback;

use crate::ledger::Receipt;
use crate::smt::TreeUpdateEntry;
use crate::state::{Key, StateView, Value, Write};
use crate::tx::SignedTransaction;
use lanes_types::ProtocolParams;
use mv_memory::MvMemory;
use rayon::prelude::*;
use scheduler::{Scheduler, Status, TxEntry};
use worker::Shared;

/// Asks the CPU to start loading the cache line holding `*p`. Only a hint: it changes no result
/// and cannot fault.
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch of any address is harmless; this one is a valid reference. (The
    // intrinsic is safe to call in newer Rust versions, hence the allow.)
    #[allow(unused_unsafe)]
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Keeps a value on its own cache lines, so that workers using neighbouring values do not
/// invalidate each other's caches (false sharing).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

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
        // Only the scheduling state: an entry's output is overwritten by the first incarnation
        // recorded in the block (see `TxState::recorded` and `Shared::record`), so it is not
        // touched here, which saves bringing most of the entry's cache lines in twice.
        self.entries[..n].par_iter_mut().for_each(|e| {
            e.state.get_mut().start_block();
        });
        self.mv.reset(n);
    }
}

/// What a completed parallel run produced.
pub(crate) struct StmOutput {
    /// Every transaction's receipt, in block order.
    pub receipts: Vec<Receipt>,
    /// The block's net writes, each key once, sorted by key, the fee sink's as the
    /// [`DeferredFeeCredit`] decided.
    pub writes: Vec<Write>,
    /// The tree updates of `writes` (unsorted), when asked for.
    pub updates: Vec<TreeUpdateEntry>,
}

/// The block's fee credit to the fee sink, deferred to the end of the block: the one key whose
/// output write Block-STM does not take from the multi-version memory as it is.
///
/// Why it exists: every transaction pays a fee to one account, the fee sink. Crediting the fee
/// inside each transaction would make every transaction read and write the sink's balance, so
/// each would conflict with all the others and the block would run as a chain. The ledger
/// therefore only records each fee in its receipt, and the sink is credited once, after the
/// last transaction, from all the receipts ([`crate::ledger::fee_credit`]), exactly as the
/// sequential executor does. A transaction may still write the sink's balance itself (a
/// transfer to it): the credit then starts from the block's net write instead of storage.
///
/// How: once the run is done, the sink's net write is taken out of the memory, and the memory
/// drains with a placeholder where the sink's write goes in the sorted writes, in parallel with
/// gathering the receipts the credit needs; then `credit` decides the sink's write and
/// `drain::fill_fee_credit` puts it in the placeholder's place (or removes the placeholder).
pub(crate) struct DeferredFeeCredit<'a, F> {
    /// The fee sink's native balance.
    pub sink: &'a Key,
    /// Given every receipt and the block's own net write of `sink` (if any), the write of
    /// `sink` for the output, if any.
    pub credit: F,
}

/// What the caller wants from a completed run besides receipts and writes.
pub(crate) struct Wanted<'a, F> {
    /// The fee credit to put in the writes after the block.
    pub fee_credit: DeferredFeeCredit<'a, F>,
    /// Whether to hash the writes into tree updates while draining the memory.
    pub hash: bool,
}

/// Runs Block-STM over `txs` with one worker per thread of `pool`, using (and leaving reusable)
/// `scratch`, and returns what `wanted` asks for. `None` when the run gave up and the block
/// must be executed sequentially.
pub(crate) fn run_block_stm<S, F>(
    pool: &rayon::ThreadPool,
    scratch: &mut Scratch,
    state: &S,
    params: &ProtocolParams,
    txs: &[SignedTransaction],
    fallback: Fallback,
    wanted: Wanted<'_, F>,
) -> (Option<StmOutput>, RunCounters)
where
    S: StateView,
    F: FnOnce(&[Receipt], Option<Option<Value>>) -> Option<Write>,
{
    let Wanted { fee_credit, hash } = wanted;
    let DeferredFeeCredit { sink, credit } = fee_credit;
    let n = txs.len();
    pool.install(|| scratch.reset(n));
    let threads = pool.current_num_threads();
    let sched = Scheduler::new(&scratch.entries[..n], threads);
    let shared = Shared::new(state, params, txs, &scratch.mv, sched, threads, fallback);
    // One flat worker loop per pool thread; broadcast returns when every worker has returned.
    pool.broadcast(|ctx| shared.worker(ctx.index()));
    let counters = shared.counters();
    if shared.halted() {
        return (None, counters);
    }
    assert!(
        shared.sched.done(),
        "Block-STM workers stopped before the block was done"
    );
    drop(shared);
    let Scratch { entries, mv } = scratch;
    let sink_write = mv.take(sink);
    // The memory drains while the receipts are gathered, with a placeholder where the fee
    // sink's write goes; the credit needs the receipts, so that write is known only afterwards.
    let (receipts, (mut writes, mut updates)) = pool.install(|| {
        rayon::join(
            || {
                entries[..n]
                    .par_iter_mut()
                    .map(|e| {
                        let st = e.state.get_mut();
                        assert!(
                            st.recorded && st.status() == Status::Executed,
                            "a transaction of the block was not executed"
                        );
                        st.slot
                            .receipt
                            .take()
                            .expect("an executed transaction has a receipt")
                    })
                    .collect::<Vec<Receipt>>()
            },
            || mv.drain_sorted(Some(*sink), hash),
        )
    });
    let sink_credit = credit(&receipts, sink_write);
    drain::fill_fee_credit(&mut writes, &mut updates, hash, sink, sink_credit);
    let out = StmOutput {
        receipts,
        writes,
        updates,
    };
    (Some(out), counters)
}
