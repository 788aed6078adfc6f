//! The mempool: transactions waiting to be ordered, de-duplicated, bounded and fair when full.
//!
//! Transactions are opaque bytes identified by [`tx_hash`]; the node checks them statelessly
//! before they get here and tells the pool each one's [`TxMeta`] (sender, nonce, fee) through
//! [`crate::Context::tx_meta`]. The policy, every bound of which is a [`MempoolLimits`] field:
//!
//! - **Refused outright**: a transaction already pending ([`AdmitError::Duplicate`]),
//!   committed recently ([`AdmitError::AlreadyCommitted`]; the node also rejects replays by
//!   nonce, this set only keeps a committed transaction from being proposed twice while copies
//!   are still in flight), or remembered as invalid ([`AdmitError::Rejected`]: a bounded cache
//!   of hashes that failed the stateless checks, so a replayed bad transaction costs one
//!   lookup).
//! - **Replacement**: a transaction with the (sender, nonce) of a pending one replaces it if it
//!   pays a strictly higher fee (the old one leaves the pool); otherwise
//!   [`AdmitError::Underpriced`].
//! - **Per-sender cap**: at most `max_per_sender` pending transactions per sender
//!   ([`AdmitError::SenderFull`]), so one key cannot fill the pool.
//! - **Eviction of the cheapest**: when the count or byte budget would be exceeded, the
//!   cheapest pending transactions (lowest fee; among equal fees the newest) are evicted, at
//!   most `max_evictions` of them, but only ones paying strictly less than the newcomer;
//!   if that does not make room, [`AdmitError::Full`] and nothing changes. Eviction does not
//!   look at nonces: the pool does not know account nonces, and a later transaction left
//!   behind a gap is rejected (uncharged) at execution or waits for the gap to be filled.
//! - **Proposal order** ([`Mempool::peek_batch`]): highest fee first, ties by arrival, except
//!   that one sender's transactions come out in nonce order: only a sender's lowest pending
//!   nonce competes, and when it is taken the next one joins the competition.
//!
//! Every operation is O(log n) (amortised O(1) for the FIFO memories), plus O(k log n) for k
//! transactions evicted or proposed.

mod order;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use lanes_types::{tx_hash, Address, Bytes, Hash};
use order::{Entry, Prio};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// What the mempool needs to know of a transaction it cannot decode: who sends it, at which
/// nonce, for which fee. The node decodes it from the signed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxMeta {
    /// The sender's account address.
    pub sender: Address,
    /// The sender's nonce the transaction uses.
    pub nonce: u64,
    /// The fee it pays (native asset).
    pub fee: u64,
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The same transaction is already waiting.
    #[error("transaction already pending")]
    Duplicate,
    /// The same transaction was committed recently.
    #[error("transaction already committed")]
    AlreadyCommitted,
    /// The pool is at its count or byte limit and holds nothing cheaper to evict.
    #[error("mempool full")]
    Full,
    /// The transaction alone is larger than the pool's byte limit.
    #[error("transaction too large for the mempool")]
    TooLarge,
    /// The transaction failed the stateless checks (now or earlier: its hash is remembered).
    #[error("transaction rejected as invalid")]
    Rejected,
    /// A pending transaction has the same sender and nonce and a fee at least as high.
    #[error("a pending transaction with this sender and nonce pays at least as much")]
    Underpriced,
    /// The sender already has the most pending transactions one sender may have.
    #[error("too many pending transactions from this sender")]
    SenderFull,
}

/// Limits of a [`Mempool`] (defaults in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most pending transactions [200,000].
    pub max_txs: usize,
    /// Most pending bytes [256 MiB].
    pub max_bytes: usize,
    /// How many committed transaction hashes are remembered for de-duplication [1,000,000].
    pub committed_memory: usize,
    /// Most pending transactions of one sender [4,096: about 2% of `max_txs`, so one key
    /// cannot fill the pool alone, while `lanes bench`'s 64 accounts at full rate reach the
    /// pool's count limit before this one, as they did before the cap existed].
    pub max_per_sender: usize,
    /// Most transactions one admission may evict to make room [16].
    pub max_evictions: usize,
    /// How many hashes of transactions that failed the checks are remembered [100,000].
    pub rejected_memory: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 200_000,
            max_bytes: 256 << 20,
            committed_memory: 1_000_000,
            max_per_sender: 4096,
            max_evictions: 16,
            rejected_memory: 100_000,
        }
    }
}

/// A set of hashes that forgets its oldest members beyond a capacity.
#[derive(Debug, Default)]
struct FifoSet {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl FifoSet {
    fn contains(&self, hash: &Hash) -> bool {
        self.set.contains(hash)
    }

    fn insert(&mut self, hash: Hash, capacity: usize) {
        if self.set.insert(hash) {
            self.order.push_back(hash);
        }
        while self.order.len() > capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// Pending transactions with de-duplication, fee priority, per-sender nonce order and hard
/// bounds (see the module documentation for the policy).
///
/// Status transitions of a transaction here: (absent) -> pending on [`Mempool::admit`];
/// pending -> committed (remembered) on [`Mempool::mark_committed`]; pending -> gone when a
/// higher fee replaces it or a richer newcomer evicts it (the caller learns the hashes);
/// (absent) -> rejected (remembered) on [`Mempool::reject`].
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    /// Every pending transaction.
    pending: HashMap<Hash, Entry>,
    pending_bytes: usize,
    /// Per sender: its pending transactions by nonce.
    senders: HashMap<Address, BTreeMap<u64, Hash>>,
    /// Each sender's lowest-nonce pending transaction, by priority (the proposal candidates).
    heads: BTreeMap<Prio, Hash>,
    /// Every pending transaction by priority (the cheapest first is the eviction order).
    by_prio: BTreeMap<Prio, Hash>,
    /// Arrival counter (the tie-break after the fee).
    next_seq: u64,
    committed: FifoSet,
    rejected: FifoSet,
}

impl Mempool {
    /// An empty pool with these limits.
    pub fn new(limits: MempoolLimits) -> Self {
        assert!(
            limits.max_txs > 0 && limits.max_bytes > 0 && limits.max_per_sender > 0,
            "mempool limits must be positive"
        );
        Mempool {
            limits,
            pending: HashMap::new(),
            pending_bytes: 0,
            senders: HashMap::new(),
            heads: BTreeMap::new(),
            by_prio: BTreeMap::new(),
            next_seq: 0,
            committed: FifoSet::default(),
            rejected: FifoSet::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &MempoolLimits {
        &self.limits
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

    /// Whether a transaction with this hash is remembered as invalid.
    pub fn is_rejected(&self, hash: &Hash) -> bool {
        self.rejected.contains(hash)
    }

    /// Whether a transaction with this hash is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.pending.contains_key(hash)
    }

    /// Pending transactions of `sender`.
    pub fn sender_len(&self, sender: &Address) -> usize {
        self.senders.get(sender).map_or(0, BTreeMap::len)
    }

    /// Remembers that the transaction with this hash failed the stateless checks (a pure
    /// function of its bytes), so it is refused at once if it comes again.
    pub fn reject(&mut self, hash: Hash) {
        self.rejected.insert(hash, self.limits.rejected_memory);
    }

    /// Adds a transaction; returns its hash and the hashes of the transactions it pushed out
    /// (the one it replaced, those evicted to make room).
    pub fn admit(&mut self, tx: Bytes, meta: TxMeta) -> Result<Admitted, AdmitError> {
        let hash = tx_hash(&tx);
        self.refusal(&hash, tx.len())?;
        let replaced = self.replaced(&meta)?;
        let mut removed = self.make_room(tx.len(), meta.fee, replaced)?;
        removed.extend(replaced);
        for h in &removed {
            self.remove(h);
        }
        self.insert(hash, tx, meta);
        Ok(Admitted { hash, removed })
    }

    /// The refusals that need no look at other transactions.
    fn refusal(&self, hash: &Hash, size: usize) -> Result<(), AdmitError> {
        if self.rejected.contains(hash) {
            Err(AdmitError::Rejected)
        } else if self.pending.contains_key(hash) {
            Err(AdmitError::Duplicate)
        } else if self.committed.contains(hash) {
            Err(AdmitError::AlreadyCommitted)
        } else if size > self.limits.max_bytes {
            Err(AdmitError::TooLarge)
        } else {
            Ok(())
        }
    }

    /// The pending transaction `meta` would replace, or why it may not; checks the sender cap.
    fn replaced(&self, meta: &TxMeta) -> Result<Option<Hash>, AdmitError> {
        let Some(mine) = self.senders.get(&meta.sender) else {
            return Ok(None);
        };
        match mine.get(&meta.nonce) {
            Some(old) if self.pending[old].meta.fee >= meta.fee => Err(AdmitError::Underpriced),
            Some(old) => Ok(Some(*old)),
            None if mine.len() >= self.limits.max_per_sender => Err(AdmitError::SenderFull),
            None => Ok(None),
        }
    }

    /// The cheapest transactions (each paying less than `fee`, `replaced` not counted) to evict
    /// so that one more of `size` bytes fits, or [`AdmitError::Full`]. Changes nothing.
    fn make_room(
        &self,
        size: usize,
        fee: u64,
        replaced: Option<Hash>,
    ) -> Result<Vec<Hash>, AdmitError> {
        let freed = replaced.map_or(0, |h| self.pending[&h].tx.len());
        let mut count = self.pending.len() - replaced.is_some() as usize;
        let mut bytes = self.pending_bytes - freed;
        let mut victims = Vec::new();
        let mut cheapest = self.by_prio.iter().filter(|(_, h)| Some(**h) != replaced);
        while count + 1 > self.limits.max_txs || bytes + size > self.limits.max_bytes {
            let Some((prio, h)) = cheapest.next() else {
                return Err(AdmitError::Full);
            };
            if prio.fee >= fee || victims.len() >= self.limits.max_evictions {
                return Err(AdmitError::Full);
            }
            count -= 1;
            bytes -= self.pending[h].tx.len();
            victims.push(*h);
        }
        Ok(victims)
    }

    /// Inserts an admitted transaction into every index.
    fn insert(&mut self, hash: Hash, tx: Bytes, meta: TxMeta) {
        let prio = Prio::new(meta.fee, self.next_seq);
        self.next_seq += 1;
        self.pending_bytes += tx.len();
        self.by_prio.insert(prio, hash);
        let mine = self.senders.entry(meta.sender).or_default();
        let old_head = mine.first_key_value().map(|(_, h)| *h);
        mine.insert(meta.nonce, hash);
        if mine.first_key_value().map(|(_, h)| *h) == Some(hash) {
            if let Some(old) = old_head {
                self.heads.remove(&self.pending[&old].prio);
            }
            self.heads.insert(prio, hash);
        }
        self.pending.insert(hash, Entry { tx, meta, prio });
    }

    /// Removes a pending transaction from every index; its sender's next becomes the head.
    fn remove(&mut self, hash: &Hash) -> Option<Bytes> {
        let entry = self.pending.remove(hash)?;
        self.pending_bytes -= entry.tx.len();
        self.by_prio.remove(&entry.prio);
        let mine = self
            .senders
            .get_mut(&entry.meta.sender)
            .expect("a pending transaction's sender is indexed");
        mine.remove(&entry.meta.nonce);
        if self.heads.remove(&entry.prio).is_some() {
            if let Some((_, next)) = mine.first_key_value() {
                self.heads.insert(self.pending[next].prio, *next);
            }
        }
        if mine.is_empty() {
            self.senders.remove(&entry.meta.sender);
        }
        Some(entry.tx)
    }

    /// The best pending transactions, at most `max_txs` of them and `max_bytes` in total, in
    /// proposal order (see the module documentation). They stay pending until
    /// [`Mempool::mark_committed`] removes them, so a proposal that fails does not lose them.
    pub fn peek_batch(&self, max_txs: usize, max_bytes: usize) -> Vec<Bytes> {
        self.peek_batch_where(max_txs, max_bytes, |_| true)
    }

    /// Like [`Mempool::peek_batch`], skipping transactions whose hash `wanted` refuses (the
    /// primary skips those already in a proposal in flight); a skipped transaction's sender
    /// still offers its next nonce.
    pub fn peek_batch_where(
        &self,
        max_txs: usize,
        max_bytes: usize,
        wanted: impl Fn(&Hash) -> bool,
    ) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut order = order::Merge::new(self);
        while out.len() < max_txs {
            let Some((hash, entry)) = order.next() else {
                break;
            };
            if !wanted(hash) {
                continue;
            }
            if bytes + entry.tx.len() > max_bytes {
                break;
            }
            bytes += entry.tx.len();
            out.push(entry.tx.clone());
        }
        out
    }

    /// Removes committed transactions from the pool and remembers their hashes.
    pub fn mark_committed<'a>(&mut self, hashes: impl IntoIterator<Item = &'a Hash>) {
        for hash in hashes {
            self.remove(hash);
            self.committed.insert(*hash, self.limits.committed_memory);
        }
    }
}

/// A transaction the mempool took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its hash.
    pub hash: Hash,
    /// Transactions that left the pool for it: evicted as the cheapest, or replaced (same
    /// sender and nonce, lower fee).
    pub removed: Vec<Hash>,
}
