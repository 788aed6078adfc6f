//! The multi-version memory: every key written in the block, with the version each
//! transaction's latest incarnation wrote, sharded by key range behind a one-byte filter of
//! lowest writers. Reads see the highest version below the reader; a version whose writer is
//! being re-executed is an *estimate*, which the reader reports as a dependency.
//!
//! Draining the memory into the block's sorted writes is in [`super::drain`].

use super::{prefetch, Padded};
use crate::fxhash::FxBuild;
use crate::spin::{SpinGuard, SpinLock};
use crate::state::{Key, Value, Write};
use rayon::prelude::*;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};

/// Shards of the multi-version memory: one per (key kind, first byte of the key's first field),
/// see [`shard_of`].
pub(super) const SHARDS: usize = 16 * 256;

/// Where a read value came from: committed state, or a version written in the block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Origin {
    Storage,
    Version(usize, u32),
}

enum MvCell {
    Estimate,
    Data(Option<Value>),
}

/// No node: the end of a version list.
const NIL: u32 = u32::MAX;

/// One version of a key: the newest inline in its shard's map, the older ones in the shard's
/// node arena.
struct VNode {
    txn: usize,
    inc: u32,
    /// The next older version (lower transaction index), or [`NIL`].
    older: u32,
    cell: MvCell,
}

/// A key with its hash, computed once per access ([`MvMemory::place`]) for both the filter
/// slot and the shard's map, which therefore never hashes a key itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Hashed {
    hash: u64,
    key: Key,
}

impl std::hash::Hash for Hashed {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A hasher that passes the precomputed hash of a [`Hashed`] through.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (see `Hashed`); fold anything else in, for completeness.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type PassBuild = std::hash::BuildHasherDefault<PassThrough>;

/// One shard of the multi-version memory. The versions of a key form a list, newest (highest
/// transaction index) first: the newest inline in `heads`, so that reading, validating or
/// replacing the version most keys only have touches one map entry, the older ones in `nodes`,
/// an arena reused from block to block that allocates nothing per key.
#[derive(Default)]
pub(super) struct Shard {
    heads: std::collections::HashMap<Hashed, VNode, PassBuild>,
    nodes: Vec<VNode>,
    /// Unlinked nodes, reused by the next insertion (keeps a shard bounded by its live versions).
    free: Vec<u32>,
}

impl Shard {
    /// How many keys the shard holds.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.heads.len()
    }

    /// Removes `key` and returns its final value (its newest version), if it was written.
    pub(super) fn take(&mut self, key: &Hashed) -> Option<Option<Value>> {
        let mut head = self.heads.remove(key)?;
        Some(final_value(&mut head))
    }

    /// Moves every key with its final value into `out` (in no order) and empties the shard,
    /// keeping its allocations. Every transaction of the block must be final.
    pub(super) fn drain_final(&mut self, out: &mut Vec<Write>) {
        out.extend(
            self.heads
                .drain()
                .map(|(k, mut head)| (k.key, final_value(&mut head))),
        );
        self.nodes.clear();
        self.free.clear();
    }

    /// The newest version of `key` below `txn`.
    #[inline]
    fn below(&self, key: &Hashed, txn: usize) -> Option<&VNode> {
        let head = self.heads.get(key)?;
        if head.txn < txn {
            return Some(head);
        }
        let mut at = head.older;
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
    #[inline]
    fn find_mut(&mut self, key: &Hashed, txn: usize) -> Option<&mut VNode> {
        let head = self.heads.get_mut(key)?;
        if head.txn <= txn {
            return (head.txn == txn).then_some(head);
        }
        let mut at = head.older;
        while at != NIL && self.nodes[at as usize].txn > txn {
            at = self.nodes[at as usize].older;
        }
        let node = self.nodes.get_mut(at as usize)?;
        (node.txn == txn).then_some(node)
    }

    /// Writes `txn`'s version of `key` (replacing that transaction's previous one), with one
    /// probe of the key map.
    #[inline]
    fn write(&mut self, key: Hashed, txn: usize, inc: u32, value: Option<Value>) {
        use std::collections::hash_map::Entry;
        let node = VNode {
            txn,
            inc,
            older: NIL,
            cell: MvCell::Data(value),
        };
        let head = match self.heads.entry(key) {
            Entry::Vacant(e) => {
                e.insert(node);
                return;
            }
            Entry::Occupied(e) => e.into_mut(),
        };
        let nodes = &mut self.nodes;
        if head.txn <= txn {
            if head.txn == txn {
                (head.inc, head.cell) = (inc, node.cell);
            } else {
                // The new version becomes the newest; the old newest moves to the arena.
                let old = std::mem::replace(head, node);
                head.older = alloc_node(nodes, &mut self.free, old);
            }
            return;
        }
        // Find the first version not newer than `txn`, and the one before it.
        let (mut prev, mut at) = (NIL, head.older);
        while at != NIL && nodes[at as usize].txn > txn {
            (prev, at) = (at, nodes[at as usize].older);
        }
        if at != NIL && nodes[at as usize].txn == txn {
            let old = &mut nodes[at as usize];
            (old.inc, old.cell) = (inc, node.cell);
            return;
        }
        let new = alloc_node(nodes, &mut self.free, VNode { older: at, ..node });
        if prev == NIL {
            head.older = new;
        } else {
            nodes[prev as usize].older = new;
        }
    }

    /// Removes `txn`'s version of `key`, if any (and the key, when no version is left).
    #[inline]
    fn remove(&mut self, key: &Hashed, txn: usize) {
        let Some(head) = self.heads.get_mut(key) else {
            return;
        };
        if head.txn == txn {
            if head.older == NIL {
                self.heads.remove(key);
            } else {
                // The next older version becomes the newest.
                let at = head.older;
                let next = std::mem::replace(&mut self.nodes[at as usize], free_node());
                *head = next;
                self.free.push(at);
            }
            return;
        }
        let (mut prev, mut at) = (NIL, head.older);
        while at != NIL && self.nodes[at as usize].txn > txn {
            (prev, at) = (at, self.nodes[at as usize].older);
        }
        if at == NIL || self.nodes[at as usize].txn != txn {
            return;
        }
        let older = self.nodes[at as usize].older;
        if prev == NIL {
            head.older = older;
        } else {
            self.nodes[prev as usize].older = older;
        }
        self.nodes[at as usize] = free_node();
        self.free.push(at);
    }
}

/// The value of a final version (no estimate is left once every transaction is final).
fn final_value(node: &mut VNode) -> Option<Value> {
    match std::mem::replace(&mut node.cell, MvCell::Data(None)) {
        MvCell::Data(v) => v,
        MvCell::Estimate => unreachable!("an estimate outlived its block"),
    }
}

/// What an unlinked arena slot holds (no value, so nothing stays alive in it).
#[inline]
fn free_node() -> VNode {
    VNode {
        txn: 0,
        inc: 0,
        older: NIL,
        cell: MvCell::Data(None),
    }
}

/// Stores `node` in a free slot of `nodes` (or a new one) and returns its index.
fn alloc_node(nodes: &mut Vec<VNode>, free: &mut Vec<u32>, node: VNode) -> u32 {
    match free.pop() {
        Some(i) => {
            nodes[i as usize] = node;
            i
        }
        None => {
            let i = u32::try_from(nodes.len()).expect("fewer than 2^32 versions");
            assert!(i != NIL, "fewer than 2^32 versions");
            nodes.push(node);
            i
        }
    }
}

/// The multi-version memory: every key written in the block, with the versions written by each
/// transaction's latest incarnation. Sharded by key hash, one lock per shard.
///
/// `lowest_writer` is a filter in front of the shards: slot `h` holds the lowest *band* of any
/// transaction that wrote a key hashing to `h` in this block (`u8::MAX`: none), where a
/// transaction's band is its index shifted right by `band_shift` (so bands never decrease with
/// the index and stay below `u8::MAX`). A slot only ever decreases, and a writer lowers it
/// before publishing its version, so a transaction `txn` that finds a slot above its own band
/// knows no version below it exists: the key reads from storage, without locking or probing a
/// shard. In a block of spread-out transfers most reads and validations take this path. One
/// byte per slot keeps the filter small enough to stay mostly in cache (with `u32` indices it
/// was four times larger and most of its loads missed); a writer in the reader's own band only
/// sends the reader to the shard, which answers exactly.
#[derive(Default)]
pub(crate) struct MvMemory {
    pub(super) shards: Vec<Padded<SpinLock<Shard>>>,
    lowest_writer: Vec<AtomicU8>,
    band_shift: u32,
}

/// The shard of a key: its kind byte and the first byte of its first field, i.e. the first two
/// bytes of its encoding. Shards therefore cover consecutive ranges of the key order (sorting
/// each shard's keys and concatenating the shards in index order sorts them all), and keys
/// whose first field is an address spread evenly over 256 shards per kind.
#[inline]
pub(super) fn shard_of(key: &Key) -> usize {
    let first = match key {
        Key::Nonce(a)
        | Key::Validator(a)
        | Key::Positions(a)
        | Key::Balance(a, _)
        | Key::Stake(a, _) => a.0[0],
        Key::Asset(id)
        | Key::Pool(id)
        | Key::Market(id)
        | Key::Price(id)
        | Key::LpShares(id, _) => id.to_be_bytes()[0],
        Key::Symbol(s) => s[0],
        Key::NextAssetId | Key::NextPoolId => 0,
    };
    usize::from(key.kind()) * 256 + usize::from(first)
}

/// Where a key lives in the multi-version memory: its hash, its shard and its filter slot (from
/// the hash). Never reaches state or output: only contention and speed depend on it.
#[derive(Clone, Copy, Default)]
pub(super) struct Place {
    hash: u64,
    pub(super) shard: u32,
    filter: u32,
}

impl Place {
    #[inline]
    pub(super) fn hashed(self, key: &Key) -> Hashed {
        Hashed {
            hash: self.hash,
            key: *key,
        }
    }
}

impl MvMemory {
    /// Empties the memory for a block of `n` transactions, keeping its allocations.
    pub(super) fn reset(&mut self, n: usize) {
        assert!(n < u32::MAX as usize, "block too large for the executor");
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| Padded(SpinLock::default())).collect();
        }
        self.shards.par_iter_mut().for_each(|s| {
            let s = s.0.get_mut();
            s.heads.clear();
            s.nodes.clear();
            s.free.clear();
        });
        // About eight slots per transaction keeps false positives (slots shared with a key
        // written lower in the block) rare for blocks writing a few keys per transaction.
        let slots = (n * 8).next_power_of_two().max(1024);
        self.band_shift = 0;
        while (n.saturating_sub(1) >> self.band_shift) >= usize::from(u8::MAX) {
            self.band_shift += 1;
        }
        if self.lowest_writer.len() != slots {
            self.lowest_writer = (0..slots).map(|_| AtomicU8::new(u8::MAX)).collect();
        } else {
            self.lowest_writer
                .par_iter_mut()
                .with_min_len(4096)
                .for_each(|s| *s.get_mut() = u8::MAX);
        }
    }

    #[inline]
    pub(super) fn place(&self, key: &Key) -> Place {
        // Re-mix so that the filter slot and the bits the shard's own map uses are independent.
        let h = FxBuild::default().hash_one(key);
        let mixed = (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Place {
            hash: h,
            shard: shard_of(key) as u32,
            filter: (mixed >> 32) as u32 & (self.lowest_writer.len() - 1) as u32,
        }
    }

    #[inline]
    fn shard(&self, place: Place) -> SpinGuard<'_, Shard> {
        self.shards[place.shard as usize].0.lock()
    }

    /// The filter band of transaction `txn` (see [`MvMemory`]): below `u8::MAX`.
    #[inline]
    fn band(&self, txn: usize) -> u8 {
        u8::try_from(txn >> self.band_shift).expect("a band is below u8::MAX")
    }

    /// True if no transaction below `txn` wrote `key` (nor any key sharing its filter slot):
    /// every writer of its slot is in a higher band.
    #[inline]
    fn none_below(&self, place: Place, txn: usize) -> bool {
        self.lowest_writer[place.filter as usize].load(SeqCst) > self.band(txn)
    }

    /// The version of `key` that transaction `txn` sees: the highest below `txn`, if any.
    /// `Err(idx)`: that version is an estimate (transaction `idx` is being re-executed).
    #[inline]
    pub(super) fn read(
        &self,
        key: &Key,
        place: Place,
        txn: usize,
    ) -> Result<(Origin, Option<Value>), usize> {
        if self.none_below(place, txn) {
            return Ok((Origin::Storage, None));
        }
        match self.shard(place).below(&place.hashed(key), txn) {
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
    #[inline]
    pub(super) fn origin(&self, key: &Key, place: Place, txn: usize) -> Result<Origin, usize> {
        if self.none_below(place, txn) {
            return Ok(Origin::Storage);
        }
        match self.shard(place).below(&place.hashed(key), txn) {
            None => Ok(Origin::Storage),
            Some(VNode {
                txn: idx,
                cell: MvCell::Estimate,
                ..
            }) => Err(*idx),
            Some(VNode { txn: idx, inc, .. }) => Ok(Origin::Version(*idx, *inc)),
        }
    }

    /// Starts loading the memory a read of a key at `place` looks at first (its filter slot),
    /// and with `shard` the shard's lock: a hint that lets several cache misses overlap.
    #[inline]
    pub(super) fn prefetch(&self, place: Place, shard: bool) {
        prefetch(&self.lowest_writer[place.filter as usize]);
        if shard {
            prefetch(&self.shards[place.shard as usize]);
        }
    }

    /// Records in the filter that `txn` writes the key at `place`: called before
    /// [`MvMemory::publish`], so that a reader that still sees the slot above `txn`'s band ran
    /// before the write. A slot already at or below the band needs no atomic read-modify-write
    /// (a full barrier).
    #[inline]
    pub(super) fn lower_filter(&self, place: Place, txn: usize) {
        let (slot, band) = (&self.lowest_writer[place.filter as usize], self.band(txn));
        if slot.load(SeqCst) > band {
            slot.fetch_min(band, SeqCst);
        }
    }

    /// Writes `txn`'s version of `key` (after [`MvMemory::lower_filter`]).
    #[inline]
    pub(super) fn publish(
        &self,
        key: Key,
        place: Place,
        txn: usize,
        inc: u32,
        value: Option<Value>,
    ) {
        self.shard(place).write(place.hashed(&key), txn, inc, value);
    }

    #[inline]
    pub(super) fn remove(&self, key: &Key, txn: usize) {
        let place = self.place(key);
        self.shard(place).remove(&place.hashed(key), txn);
    }

    #[inline]
    pub(super) fn mark_estimate(&self, key: &Key, txn: usize) {
        let place = self.place(key);
        if let Some(node) = self.shard(place).find_mut(&place.hashed(key), txn) {
            node.cell = MvCell::Estimate;
        }
    }
}

/// One entry of a read set: the key, where it lives in the memory, where the value came from.
pub(super) type ReadEntry = (Key, Place, Origin);

#[cfg(test)]
mod tests {
    use super::*;

    /// Version lists stay ordered through inserts, replacements and removals, and reads see the
    /// newest version below the reader.
    #[test]
    fn version_lists() {
        let k = Hashed {
            hash: 7,
            key: Key::NextPoolId,
        };
        let mut s = Shard::default();
        for (txn, v) in [(5, 50), (2, 20), (9, 90), (5, 51), (7, 70)] {
            s.write(k, txn, 0, Some(Value::U64(v)));
        }
        let seen = |s: &Shard, txn| match s.below(&k, txn) {
            Some(VNode {
                txn: idx,
                cell: MvCell::Data(Some(Value::U64(v))),
                ..
            }) => Some((*idx, *v)),
            _ => None,
        };
        assert_eq!(seen(&s, 2), None);
        assert_eq!(seen(&s, 3), Some((2, 20)));
        assert_eq!(seen(&s, 6), Some((5, 51)));
        assert_eq!(seen(&s, 100), Some((9, 90)));
        s.remove(&k, 9);
        s.remove(&k, 2);
        s.remove(&k, 4);
        assert_eq!(seen(&s, 100), Some((7, 70)));
        assert_eq!(seen(&s, 5), None);
        // Freed nodes are reused.
        let nodes = s.nodes.len();
        s.write(k, 1, 0, Some(Value::U64(10)));
        assert_eq!(s.nodes.len(), nodes);
        assert_eq!(seen(&s, 5), Some((1, 10)));
    }
}
