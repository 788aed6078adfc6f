//! Block execution: the sequential reference, the parallel executor on its own rayon pool, and
//! the block output (receipts, sorted writes, new state root and tree nodes).

use crate::fxhash::FxHashMap;
use crate::ledger::{execute_tx, fee_credit, Blocked, Receipt, TxRead};
use crate::parallel::{
    run_block_stm, DeferredFeeCredit, Fallback, RunCounters, Scratch, StmOutput, Wanted,
};
use crate::smt::{self, Node, NodeStore, SmtError, TreeUpdateEntry};
use crate::state::{fee_sink, Key, StateView, Value, Write};
use crate::tx::{self, SignedTransaction, NATIVE_ASSET};
use lanes_types::{Hash, ProtocolParams};
use rayon::prelude::*;
use std::sync::Mutex;
use thiserror::Error;

/// Why a block could not be executed. Transactions never cause this: they fail in receipts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExecError {
    /// The state tree is missing nodes under the previous root.
    #[error("state tree: {0}")]
    Tree(#[from] SmtError),
    /// The thread pool could not be built.
    #[error("cannot build the executor thread pool: {0}")]
    Pool(String),
}

/// How a block was executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In order on one thread (1 thread configured, or a block too small to share).
    Sequential,
    /// Block-STM on the pool.
    Parallel,
    /// Block-STM gave up on a high abort rate; the block was re-run sequentially.
    Fallback,
}

/// Execution statistics of one block (not part of consensus output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecStats {
    /// How the block was executed.
    pub mode: Mode,
    /// Parallel executions, including re-executions (0 when sequential).
    pub executions: usize,
    /// Parallel executions thrown away.
    pub aborts: usize,
    /// Parallel read-set validations.
    pub validations: usize,
}

/// The result of a block: identical, byte for byte, whichever way it was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutput {
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Net state changes, ascending by key (= ascending by encoded key), each key once;
    /// `None` deletes. Includes the fee sink credit.
    pub writes: Vec<Write>,
    /// The state root after the block.
    pub state_root: Hash,
    /// The receipts' Merkle leaves, each naming its transaction ([`crate::receipts`]).
    pub receipt_leaves: Vec<Hash>,
    /// The Merkle root over `receipt_leaves`.
    pub receipts_root: Hash,
    /// Tree nodes to persist with the block.
    pub new_nodes: Vec<(Hash, Node)>,
    /// How it ran (excluded from what replicas compare).
    pub stats: ExecStats,
}

/// Tuning of the parallel executor. None of it changes any output.
#[derive(Debug, Clone, Copy)]
pub struct ExecConfig {
    /// Blocks with fewer transactions run sequentially.
    pub min_parallel_txs: usize,
    /// Executions observed before deciding whether to fall back (0: never fall back).
    pub fallback_window: usize,
    /// Fall back when aborts exceed this percentage of validations (plus a quarter of
    /// executions, so blocks that stall before validating are judged too).
    pub max_abort_pct: usize,
    /// Fall back when read-set validations exceed this many per transaction (re-validation
    /// waves after aborts cost more than sequential execution).
    pub max_validations_per_tx: usize,
    /// Fall back when more than this percentage of executions read a value written at most
    /// `threads` transactions earlier (the block is one dependency chain, like a hot pool).
    pub max_near_dep_pct: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            min_parallel_txs: 32,
            fallback_window: 64,
            max_abort_pct: 15,
            max_validations_per_tx: 4,
            max_near_dep_pct: 50,
        }
    }
}

/// The block executor: owns a dedicated rayon pool (never run it on tokio worker threads).
pub struct Executor {
    pool: rayon::ThreadPool,
    threads: usize,
    config: ExecConfig,
    /// Block-STM's per-block memory, reused from block to block.
    scratch: Mutex<Scratch>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.threads)
            .field("config", &self.config)
            .finish()
    }
}

struct SeqReader<'a, S: StateView> {
    state: &'a S,
    overlay: &'a FxHashMap<Key, Option<Value>>,
}

impl<S: StateView> TxRead for SeqReader<'_, S> {
    fn read(&mut self, key: &Key) -> Result<Option<Value>, Blocked> {
        Ok(match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.state.get(key),
        })
    }
}

/// Runs a block in order on the current thread: the reference semantics. Returns receipts and
/// the net writes (sorted, fee credit included), without the state root.
pub fn execute_sequential<S: StateView>(
    state: &S,
    params: &ProtocolParams,
    txs: &[SignedTransaction],
) -> (Vec<Receipt>, Vec<Write>) {
    let mut overlay: FxHashMap<Key, Option<Value>> = FxHashMap::default();
    let mut receipts = Vec::with_capacity(txs.len());
    for stx in txs {
        let out = execute_tx(
            &mut SeqReader {
                state,
                overlay: &overlay,
            },
            params,
            stx,
        )
        .expect("a sequential read never blocks");
        for (k, v) in out.writes {
            overlay.insert(k, v);
        }
        receipts.push(out.receipt);
    }
    let sink_write = overlay.remove(&fee_sink_key());
    let mut writes: Vec<Write> = overlay.into_iter().collect();
    credit_fees(state, &receipts, &mut writes, sink_write);
    writes.sort_unstable_by_key(|w| w.0);
    (receipts, writes)
}

/// The fee sink's native balance: credited with the block's fees after its last transaction.
fn fee_sink_key() -> Key {
    Key::Balance(fee_sink(), NATIVE_ASSET)
}

/// Completes a block's net writes (each key once, any order) with the fee credit: the fee
/// sink's balance as the block left it, plus every fee paid. `sink_write` is the block's own net
/// write of that balance, if any, kept out of `writes`.
fn credit_fees<S: StateView>(
    state: &S,
    receipts: &[Receipt],
    writes: &mut Vec<Write>,
    sink_write: Option<Option<Value>>,
) {
    let sink = fee_sink_key();
    let current = match &sink_write {
        Some(v) => v.clone(),
        None => state.get(&sink),
    };
    match fee_credit(current.as_ref(), receipts) {
        Some(credit) => writes.push(credit),
        None => {
            if let Some(v) = sink_write {
                writes.push((sink, v));
            }
        }
    }
}

impl Executor {
    /// An executor with its own pool of `threads` threads (at least 1) and default tuning.
    pub fn new(threads: usize) -> Result<Executor, ExecError> {
        Self::with_config(threads, ExecConfig::default())
    }

    /// An executor with explicit tuning.
    pub fn with_config(threads: usize, config: ExecConfig) -> Result<Executor, ExecError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("lanes-exec-{i}"))
            .build()
            .map_err(|e| ExecError::Pool(e.to_string()))?;
        Ok(Executor {
            pool,
            threads,
            config,
            scratch: Mutex::default(),
        })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the executor's pool (for other CPU work that must stay off tokio threads).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Verifies a block's signatures in parallel batches on the executor's pool; the indexes of
    /// failing transactions otherwise. See [`tx::verify_signatures`].
    pub fn verify_signatures(&self, txs: &[SignedTransaction]) -> Result<(), Vec<usize>> {
        self.pool.install(|| tx::verify_signatures(txs))
    }

    /// Executes a block whose transactions passed the stateless checks (signatures included)
    /// against `state` (the state after the previous block, whose root is `prev_root` in
    /// `nodes`). The output is identical to sequential execution for any thread count.
    ///
    /// Blocks the calling thread until done (small or hot blocks run on it directly): call it
    /// from a dedicated thread or `spawn_blocking`, never from a tokio worker.
    pub fn execute_block<S: StateView, N: NodeStore>(
        &self,
        state: &S,
        nodes: &N,
        prev_root: Hash,
        params: &ProtocolParams,
        txs: &[SignedTransaction],
    ) -> Result<BlockOutput, ExecError> {
        let (receipts, writes, stats, updates) = self.run(state, params, txs, true);
        let updates = match updates {
            Some(u) => u,
            None => self.pool.install(|| smt::tree_updates(&writes)),
        };
        // The receipts root is independent of the tree: both are computed at once.
        let (tree, (receipt_leaves, receipts_root)) = self.pool.install(|| {
            rayon::join(
                || smt::update(nodes, prev_root, &updates),
                || {
                    let hashes: Vec<Hash> = txs.par_iter().map(SignedTransaction::hash).collect();
                    let leaves = crate::receipts::receipt_leaves(&hashes, &receipts);
                    let root = lanes_types::merkle::root(&leaves);
                    (leaves, root)
                },
            )
        });
        let tree = tree?;
        Ok(BlockOutput {
            receipts,
            writes,
            state_root: tree.root,
            receipt_leaves,
            receipts_root,
            new_nodes: tree.new_nodes,
            stats,
        })
    }

    /// Executes the transactions only (no state root): receipts and sorted net writes.
    pub fn execute_txs<S: StateView>(
        &self,
        state: &S,
        params: &ProtocolParams,
        txs: &[SignedTransaction],
    ) -> (Vec<Receipt>, Vec<Write>, ExecStats) {
        let (receipts, writes, stats, _) = self.run(state, params, txs, false);
        (receipts, writes, stats)
    }

    /// Executes the transactions: receipts, sorted net writes, statistics, and, if `hash` and
    /// the block ran in parallel, the writes' tree updates sorted by path (computed while the
    /// parallel run drains its memory; `None` otherwise).
    fn run<S: StateView>(
        &self,
        state: &S,
        params: &ProtocolParams,
        txs: &[SignedTransaction],
        hash: bool,
    ) -> (
        Vec<Receipt>,
        Vec<Write>,
        ExecStats,
        Option<Vec<TreeUpdateEntry>>,
    ) {
        let sequential = |mode, c: RunCounters| {
            let (r, w) = execute_sequential(state, params, txs);
            (
                r,
                w,
                ExecStats {
                    mode,
                    executions: c.executions,
                    aborts: c.aborts,
                    validations: c.validations,
                },
                None,
            )
        };
        if self.threads == 1 || txs.len() < self.config.min_parallel_txs.max(2) {
            return sequential(Mode::Sequential, RunCounters::default());
        }
        let fallback = Fallback {
            window: self.config.fallback_window,
            max_abort_pct: self.config.max_abort_pct,
            max_validations_per_tx: self.config.max_validations_per_tx,
            max_near_dep_pct: self.config.max_near_dep_pct,
        };
        // A concurrent call on the same executor runs with fresh memory rather than waiting.
        let mut fresh = Scratch::default();
        let mut kept = self.scratch.try_lock();
        let scratch = match kept.as_deref_mut() {
            Ok(s) => s,
            Err(_) => &mut fresh,
        };
        let sink = fee_sink_key();
        // The fee credit goes to its place in the sorted writes as the memory drains.
        let credit = |receipts: &[Receipt], sink_write| {
            let mut credit = Vec::new();
            credit_fees(state, receipts, &mut credit, sink_write);
            credit.pop()
        };
        let wanted = Wanted {
            fee_credit: DeferredFeeCredit {
                sink: &sink,
                credit,
            },
            hash,
        };
        match run_block_stm(&self.pool, scratch, state, params, txs, fallback, wanted) {
            (Some(out), c) => {
                let StmOutput {
                    receipts,
                    writes,
                    updates,
                } = out;
                assert!(
                    self.pool
                        .install(|| writes.par_windows(2).all(|w| w[0].0 < w[1].0)),
                    "parallel writes not sorted and unique"
                );
                let updates = hash.then(|| self.pool.install(|| smt::sort_updates(updates)));
                (
                    receipts,
                    writes,
                    ExecStats {
                        mode: Mode::Parallel,
                        executions: c.executions,
                        aborts: c.aborts,
                        validations: c.validations,
                    },
                    updates,
                )
            }
            (None, c) => sequential(Mode::Fallback, c),
        }
    }
}
