//! The mempool's priority: entries, their priority key, and the proposal order (the merge of
//! the senders' heads with each taken sender's next nonce).

use super::{Mempool, TxMeta};
use lanes_types::{Bytes, Hash};
use std::cmp::Reverse;
use std::collections::{btree_map, BinaryHeap};
use std::ops::Bound;

/// A pending transaction.
#[derive(Debug)]
pub(super) struct Entry {
    /// Its bytes.
    pub tx: Bytes,
    /// Sender, nonce, fee.
    pub meta: TxMeta,
    /// Its priority key (unique: the arrival number is).
    pub prio: Prio,
}

/// Priority of a pending transaction: greater is better, i.e. a higher fee, then an earlier
/// arrival. The smallest is the cheapest and newest, the first to be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Prio {
    /// The fee paid.
    pub fee: u64,
    /// The arrival number, reversed so that earlier is greater.
    pub age: Reverse<u64>,
}

impl Prio {
    /// The priority of the `seq`-th arrival paying `fee`.
    pub fn new(fee: u64, seq: u64) -> Self {
        Prio {
            fee,
            age: Reverse(seq),
        }
    }
}

/// Pending transactions in proposal order: the best of the senders' heads not taken yet and
/// of the successors of those taken (a sender's next nonce competes once the previous one is
/// out). Each step costs O(log n).
pub(super) struct Merge<'a> {
    pool: &'a Mempool,
    /// The senders' heads, best last.
    heads: std::iter::Peekable<std::iter::Rev<btree_map::Iter<'a, Prio, Hash>>>,
    /// Successors of transactions already yielded.
    next: BinaryHeap<(Prio, Hash)>,
}

impl<'a> Merge<'a> {
    /// The proposal order of `pool`.
    pub fn new(pool: &'a Mempool) -> Self {
        Merge {
            pool,
            heads: pool.heads.iter().rev().peekable(),
            next: BinaryHeap::new(),
        }
    }

    /// The successor (next nonce of the same sender) of a pending transaction.
    fn successor(&self, entry: &Entry) -> Option<(Prio, Hash)> {
        let mine = &self.pool.senders[&entry.meta.sender];
        let after = (Bound::Excluded(entry.meta.nonce), Bound::Unbounded);
        let (_, h) = mine.range(after).next()?;
        Some((self.pool.pending[h].prio, *h))
    }
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a Hash, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        let head = self.heads.peek().map(|(p, _)| **p);
        let queued = self.next.peek().map(|(p, _)| *p);
        let hash = match (head, queued) {
            (Some(h), Some(q)) if q > h => self.next.pop().map(|(_, h)| h),
            (Some(_), _) => self.heads.next().map(|(_, h)| *h),
            (None, Some(_)) => self.next.pop().map(|(_, h)| h),
            (None, None) => None,
        }?;
        let (hash, entry) = self.pool.pending.get_key_value(&hash)?;
        if let Some(succ) = self.successor(entry) {
            self.next.push(succ);
        }
        Some((hash, entry))
    }
}
