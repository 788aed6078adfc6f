//! The mempool: transactions waiting to be ordered, de-duplicated and bounded.
//!
//! Transactions are opaque bytes identified by [`tx_hash`]; the node checks them statelessly
//! before they get here. A transaction is refused if it is already pending, or if it was
//! committed recently (the node also rejects replays by nonce; this set only keeps a committed
//! transaction from being proposed twice while copies are still in flight). Both sets are
//! bounded: the pending queue by count and bytes, the committed set by count (oldest forgotten
//! first).

use lanes_types::{tx_hash, Bytes, Hash};
use std::collections::{HashMap, HashSet, VecDeque};

/// Why a transaction was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The same transaction is already waiting.
    #[error("transaction already pending")]
    Duplicate,
    /// The same transaction was committed recently.
    #[error("transaction already committed")]
    AlreadyCommitted,
    /// The pool is at its count or byte limit.
    #[error("mempool full")]
    Full,
    /// The transaction alone is larger than the pool's byte limit.
    #[error("transaction too large for the mempool")]
    TooLarge,
}

/// Limits of a [`Mempool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most pending transactions.
    pub max_txs: usize,
    /// Most pending bytes.
    pub max_bytes: usize,
    /// How many committed transaction hashes are remembered for de-duplication.
    pub committed_memory: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 200_000,
            max_bytes: 256 << 20,
            committed_memory: 1_000_000,
        }
    }
}

/// Pending transactions in arrival order, with de-duplication and hard bounds.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    /// Arrival order; entries whose hash is no longer in `pending` are skipped (lazy removal).
    queue: VecDeque<Hash>,
    pending: HashMap<Hash, Bytes>,
    pending_bytes: usize,
    committed: HashSet<Hash>,
    committed_order: VecDeque<Hash>,
}

impl Mempool {
    /// An empty pool with these limits.
    pub fn new(limits: MempoolLimits) -> Self {
        assert!(
            limits.max_txs > 0 && limits.max_bytes > 0,
            "mempool limits must be positive"
        );
        Mempool {
            limits,
            queue: VecDeque::new(),
            pending: HashMap::new(),
            pending_bytes: 0,
            committed: HashSet::new(),
            committed_order: VecDeque::new(),
        }
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Pending bytes.
    pub fn bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Whether a transaction with this hash was committed recently (within the remembered set).
    pub fn is_committed(&self, hash: &Hash) -> bool {
        self.committed.contains(hash)
    }

    /// Whether a transaction with this hash is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.pending.contains_key(hash)
    }

    /// Adds a transaction; returns its hash.
    pub fn admit(&mut self, tx: Bytes) -> Result<Hash, AdmitError> {
        let hash = tx_hash(&tx);
        if self.pending.contains_key(&hash) {
            return Err(AdmitError::Duplicate);
        }
        if self.committed.contains(&hash) {
            return Err(AdmitError::AlreadyCommitted);
        }
        if tx.len() > self.limits.max_bytes {
            return Err(AdmitError::TooLarge);
        }
        if self.pending.len() >= self.limits.max_txs
            || self.pending_bytes + tx.len() > self.limits.max_bytes
        {
            return Err(AdmitError::Full);
        }
        self.pending_bytes += tx.len();
        self.pending.insert(hash, tx);
        self.queue.push_back(hash);
        self.compact();
        Ok(hash)
    }

    /// The oldest pending transactions, at most `max_txs` of them and `max_bytes` in total, in
    /// arrival order. They stay pending until [`Mempool::mark_committed`] removes them, so a
    /// proposal that fails does not lose them.
    pub fn peek_batch(&self, max_txs: usize, max_bytes: usize) -> Vec<Bytes> {
        self.peek_batch_where(max_txs, max_bytes, |_| true)
    }

    /// Like [`Mempool::peek_batch`], skipping transactions whose hash `wanted` refuses (the
    /// primary skips those already in a proposal in flight).
    pub fn peek_batch_where(
        &self,
        max_txs: usize,
        max_bytes: usize,
        wanted: impl Fn(&Hash) -> bool,
    ) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for hash in &self.queue {
            if out.len() >= max_txs {
                break;
            }
            let Some(tx) = self.pending.get(hash).filter(|_| wanted(hash)) else {
                continue;
            };
            if bytes + tx.len() > max_bytes {
                break;
            }
            bytes += tx.len();
            out.push(tx.clone());
        }
        out
    }

    /// Removes committed transactions from the pool and remembers their hashes.
    pub fn mark_committed<'a>(&mut self, hashes: impl IntoIterator<Item = &'a Hash>) {
        for hash in hashes {
            if let Some(tx) = self.pending.remove(hash) {
                self.pending_bytes -= tx.len();
            }
            if self.committed.insert(*hash) {
                self.committed_order.push_back(*hash);
            }
        }
        while self.committed_order.len() > self.limits.committed_memory {
            if let Some(old) = self.committed_order.pop_front() {
                self.committed.remove(&old);
            }
        }
        self.compact();
    }

    /// Drops queue entries of transactions no longer pending once they outnumber live ones, so
    /// the queue stays within twice the pending count.
    fn compact(&mut self) {
        while self
            .queue
            .front()
            .is_some_and(|h| !self.pending.contains_key(h))
        {
            self.queue.pop_front();
        }
        if self.queue.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.queue.retain(|h| pending.contains_key(h));
        }
        debug_assert!(self.pending.len() <= self.queue.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(i: u32) -> Bytes {
        Bytes(i.to_be_bytes().to_vec())
    }

    fn pool(max_txs: usize, max_bytes: usize, committed_memory: usize) -> Mempool {
        Mempool::new(MempoolLimits {
            max_txs,
            max_bytes,
            committed_memory,
        })
    }

    #[test]
    fn duplicates_and_committed_transactions_are_refused() {
        let mut m = pool(10, 1000, 10);
        let h = m.admit(tx(1)).unwrap();
        assert_eq!(m.admit(tx(1)), Err(AdmitError::Duplicate));
        m.mark_committed([&h]);
        assert!(m.is_empty());
        assert_eq!(m.admit(tx(1)), Err(AdmitError::AlreadyCommitted));
    }

    #[test]
    fn limits_hold_by_count_and_bytes() {
        let mut m = pool(3, 10, 10);
        m.admit(tx(1)).unwrap();
        m.admit(tx(2)).unwrap();
        assert_eq!(m.admit(tx(3)), Err(AdmitError::Full), "12 bytes > 10");
        assert_eq!(m.admit(Bytes(vec![0; 11])), Err(AdmitError::TooLarge));
        let mut m = pool(2, 100, 10);
        m.admit(tx(1)).unwrap();
        m.admit(tx(2)).unwrap();
        assert_eq!(m.admit(tx(3)), Err(AdmitError::Full));
        assert_eq!((m.len(), m.bytes()), (2, 8));
    }

    #[test]
    fn batches_come_in_arrival_order_within_limits_and_stay_until_committed() {
        let mut m = pool(100, 1000, 100);
        let hashes: Vec<Hash> = (0..10).map(|i| m.admit(tx(i)).unwrap()).collect();
        assert_eq!(m.peek_batch(3, 1000), vec![tx(0), tx(1), tx(2)]);
        assert_eq!(m.peek_batch(100, 9), vec![tx(0), tx(1)]);
        m.mark_committed(&hashes[..2]);
        assert_eq!(m.peek_batch(2, 1000), vec![tx(2), tx(3)]);
        m.mark_committed([&hashes[5]]);
        assert_eq!(m.peek_batch(100, 1000).len(), 7);
        assert!(!m.peek_batch(100, 1000).contains(&tx(5)));
    }

    #[test]
    fn committed_memory_is_bounded_oldest_first() {
        let mut m = pool(100, 1000, 3);
        let hashes: Vec<Hash> = (0..5).map(|i| m.admit(tx(i)).unwrap()).collect();
        m.mark_committed(&hashes);
        assert!(
            m.admit(tx(0)).is_ok(),
            "forgotten: the oldest committed hashes"
        );
        assert!(m.admit(tx(1)).is_ok());
        assert_eq!(m.admit(tx(4)), Err(AdmitError::AlreadyCommitted));
    }

    #[test]
    fn the_queue_does_not_grow_without_bound_under_churn() {
        let mut m = pool(10, 10_000, 5);
        for i in 0..10_000u32 {
            let h = m.admit(tx(i)).unwrap();
            if i % 2 == 0 {
                m.mark_committed([&h]);
            }
            assert!(m.queue.len() <= 2 * m.len() + 65);
            if m.len() == 10 {
                let all: Vec<Hash> = m.pending.keys().copied().collect();
                m.mark_committed(&all);
            }
        }
    }
}
