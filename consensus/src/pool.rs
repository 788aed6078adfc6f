//! The replica's transaction pool: the mempool, which of its transactions a proposal of the
//! current view already carries, and the primary's batch timer.

use crate::mempool::{AdmitError, Admitted, Mempool, TxMeta};
use lanes_types::{tx_hash, Block, Bytes, Hash};
use std::collections::HashSet;

/// Pending transactions as the replica proposes them.
///
/// Status transitions of a transaction: pending (admitted to the mempool) -> in flight (in a
/// proposal accepted in the current view; not proposed again in this view) -> committed (a
/// delivered block holds it: it leaves the mempool and is remembered as committed). A new
/// view puts every in-flight transaction back to pending (its proposals may be lost). A
/// pending or in-flight transaction that is evicted or replaced leaves both (an in-flight one
/// may still be committed by the proposal carrying it; the executor then rejects whichever of
/// it and its replacement comes second, by nonce). The
/// batch timer runs on the primary from the first unproposed transaction until it cuts a
/// block.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Pending transactions.
    pub mempool: Mempool,
    /// Hashes of pending transactions already in a proposal of the current view.
    pub in_flight: HashSet<Hash>,
    /// Primary only: when to cut a block that is not full.
    pub batch_deadline: Option<u64>,
}

impl Pool {
    /// An empty pool.
    pub fn new(mempool: Mempool) -> Self {
        Pool {
            mempool,
            in_flight: HashSet::new(),
            batch_deadline: None,
        }
    }

    /// Admits a transaction to the mempool; those it pushes out are no longer in flight.
    pub fn admit(&mut self, tx: Bytes, meta: TxMeta) -> Result<Admitted, AdmitError> {
        let admitted = self.mempool.admit(tx, meta)?;
        for gone in &admitted.removed {
            self.in_flight.remove(gone);
        }
        Ok(admitted)
    }

    /// Pending transactions not in a proposal of this view.
    pub fn unproposed(&self) -> usize {
        self.mempool.len().saturating_sub(self.in_flight.len())
    }

    /// Whether the primary should cut a block at `now`: a full one is waiting, or some are
    /// and the batch timer expired.
    pub fn batch_ready(&self, now: u64, max_block_txs: usize) -> bool {
        let unproposed = self.unproposed();
        let due = self.batch_deadline.is_some_and(|d| d <= now);
        unproposed > 0 && (unproposed >= max_block_txs || due)
    }

    /// The transactions of the next block: pending, not in flight, in the mempool's
    /// proposal order (fee first, each sender's nonces in order), within the limits.
    pub fn next_batch(&self, max_txs: usize, max_bytes: usize) -> Vec<Bytes> {
        let in_flight = &self.in_flight;
        self.mempool
            .peek_batch_where(max_txs, max_bytes, |hash| !in_flight.contains(hash))
    }

    /// A block of the current view carries these transactions: those pending here are in
    /// flight.
    pub fn proposed(&mut self, block: &Block) {
        for tx in &block.txs {
            let th = tx_hash(tx);
            if self.mempool.contains(&th) {
                self.in_flight.insert(th);
            }
        }
    }

    /// A block holding these transactions was delivered.
    pub fn committed(&mut self, hashes: &[Hash]) {
        for th in hashes {
            self.in_flight.remove(th);
        }
        self.mempool.mark_committed(hashes);
    }
}
