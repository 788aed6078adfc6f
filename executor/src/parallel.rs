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
//!
//! Cost model. A transfer costs a few microseconds and is bound by memory latency, so the
//! bookkeeping is built to touch little shared memory per transaction:
//! - the multi-version memory is sharded by key range ([`shard_of`]); each shard keeps a key's
//!   newest version inline in its map entry (older ones in a node arena), keys are hashed once
//!   per access, and a one-byte lowest-writer filter in front of the shards answers most reads
//!   and validations of keys no lower transaction wrote without taking a lock;
//! - locks are [`SpinLock`]s, whose unlock is a plain store rather than a full barrier, and a
//!   transaction has one lock for its scheduling state and its output ([`TxState`]): taking a
//!   lock is a full barrier, which waits for the multi-version stores just made;
//! - the ledger announces the keys a transaction will read ([`TxRead::prefetch`]), so their
//!   filter slots load together instead of one cache miss after another;
//! - workers claim [`CLAIM`] indices per scheduler counter update and keep their statistics
//!   locally ([`FLUSH_EVERY`]); a range is validated once every lower transaction has finished
//!   executing, preferably by the worker that executed it, while its read set and keys are
//!   still in that core's cache ([`Scheduler::claim`]); a transaction's read and write sets
//!   live inline in its entry, which workers visit in index order (and prefetch on claiming);
//! - per-block memory ([`Scratch`]) is kept by the executor between blocks;
//! - the net writes drain from the shards in parallel, each shard sorted in cache and moved
//!   once to its range of the output ([`MvMemory::drain_sorted`]).

use crate::fxhash::FxBuild;
use crate::ledger::{execute_tx, Blocked, Receipt, TxRead};
use crate::smt::{self, TreeUpdateEntry};
use crate::spin::{SpinGuard, SpinLock};
use crate::state::{Key, StateView, Value, Write};
use crate::tx::SignedTransaction;
use lanes_types::ProtocolParams;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

/// Shards of the multi-version memory: one per (key kind, first byte of the key's first field),
/// see [`shard_of`].
const SHARDS: usize = 16 * 256;

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
struct Hashed {
    hash: u64,
    key: Key,
}

impl std::hash::Hash for Hashed {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A hasher that passes the precomputed hash of a [`Hashed`] through.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (see `Hashed`); fold anything else in, for completeness.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

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
struct Shard {
    heads: std::collections::HashMap<Hashed, VNode, PassBuild>,
    nodes: Vec<VNode>,
    /// Unlinked nodes, reused by the next insertion (keeps a shard bounded by its live versions).
    free: Vec<u32>,
}

impl Shard {
    /// The newest version of `key` below `txn`.
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

/// What an unlinked arena slot holds (no value, so nothing stays alive in it).
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
    shards: Vec<Padded<SpinLock<Shard>>>,
    lowest_writer: Vec<AtomicU8>,
    band_shift: u32,
}

/// The shard of a key: its kind byte and the first byte of its first field, i.e. the first two
/// bytes of its encoding. Shards therefore cover consecutive ranges of the key order (sorting
/// each shard's keys and concatenating the shards in index order sorts them all), and keys
/// whose first field is an address spread evenly over 256 shards per kind.
fn shard_of(key: &Key) -> usize {
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

/// Bytes 2 to 17 of a key's encoding (the 16 after the two [`shard_of`] looks at), zero padded,
/// as a big-endian number. Within one shard every key has the same kind, first byte and
/// encoded length, so a smaller word means a smaller key; equal words fall back to the full
/// comparison. Sorting a shard's keys this way avoids a `memcmp` call per comparison.
fn order_word(key: &Key) -> u128 {
    let mut b = [0u8; 16];
    match key {
        Key::Nonce(a)
        | Key::Validator(a)
        | Key::Positions(a)
        | Key::Balance(a, _)
        | Key::Stake(a, _) => b.copy_from_slice(&a.0[1..17]),
        Key::Asset(id) | Key::Pool(id) | Key::Market(id) | Key::Price(id) => {
            b[..3].copy_from_slice(&id.to_be_bytes()[1..]);
        }
        Key::LpShares(id, a) => {
            b[..3].copy_from_slice(&id.to_be_bytes()[1..]);
            b[3..].copy_from_slice(&a.0[..13]);
        }
        Key::Symbol(s) => b[..11].copy_from_slice(&s[1..]),
        Key::NextAssetId | Key::NextPoolId => {}
    }
    u128::from_be_bytes(b)
}

/// Where a key lives in the multi-version memory: its hash, its shard and its filter slot (from
/// the hash). Never reaches state or output: only contention and speed depend on it.
#[derive(Clone, Copy, Default)]
struct Place {
    hash: u64,
    shard: u32,
    filter: u32,
}

impl Place {
    fn hashed(self, key: &Key) -> Hashed {
        Hashed {
            hash: self.hash,
            key: *key,
        }
    }
}

impl MvMemory {
    /// Empties the memory for a block of `n` transactions, keeping its allocations.
    fn reset(&mut self, n: usize) {
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

    fn place(&self, key: &Key) -> Place {
        // Re-mix so that the filter slot and the bits the shard's own map uses are independent.
        let h = FxBuild::default().hash_one(key);
        let mixed = (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Place {
            hash: h,
            shard: shard_of(key) as u32,
            filter: (mixed >> 32) as u32 & (self.lowest_writer.len() - 1) as u32,
        }
    }

    fn shard(&self, place: Place) -> SpinGuard<'_, Shard> {
        self.shards[place.shard as usize].0.lock()
    }

    /// The filter band of transaction `txn` (see [`MvMemory`]): below `u8::MAX`.
    fn band(&self, txn: usize) -> u8 {
        u8::try_from(txn >> self.band_shift).expect("a band is below u8::MAX")
    }

    /// True if no transaction below `txn` wrote `key` (nor any key sharing its filter slot):
    /// every writer of its slot is in a higher band.
    fn none_below(&self, place: Place, txn: usize) -> bool {
        self.lowest_writer[place.filter as usize].load(SeqCst) > self.band(txn)
    }

    /// The version of `key` that transaction `txn` sees: the highest below `txn`, if any.
    /// `Err(idx)`: that version is an estimate (transaction `idx` is being re-executed).
    fn read(&self, key: &Key, place: Place, txn: usize) -> Result<(Origin, Option<Value>), usize> {
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
    fn origin(&self, key: &Key, place: Place, txn: usize) -> Result<Origin, usize> {
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
    fn prefetch(&self, place: Place, shard: bool) {
        prefetch(&self.lowest_writer[place.filter as usize]);
        if shard {
            prefetch(&self.shards[place.shard as usize]);
        }
    }

    /// Records in the filter that `txn` writes the key at `place`: called before
    /// [`MvMemory::publish`], so that a reader that still sees the slot above `txn`'s band ran
    /// before the write. A slot already at or below the band needs no atomic read-modify-write
    /// (a full barrier).
    fn lower_filter(&self, place: Place, txn: usize) {
        let (slot, band) = (&self.lowest_writer[place.filter as usize], self.band(txn));
        if slot.load(SeqCst) > band {
            slot.fetch_min(band, SeqCst);
        }
    }

    /// Writes `txn`'s version of `key` (after [`MvMemory::lower_filter`]).
    fn publish(&self, key: Key, place: Place, txn: usize, inc: u32, value: Option<Value>) {
        self.shard(place).write(place.hashed(&key), txn, inc, value);
    }

    fn remove(&self, key: &Key, txn: usize) {
        let place = self.place(key);
        self.shard(place).remove(&place.hashed(key), txn);
    }

    fn mark_estimate(&self, key: &Key, txn: usize) {
        let place = self.place(key);
        if let Some(node) = self.shard(place).find_mut(&place.hashed(key), txn) {
            node.cell = MvCell::Estimate;
        }
    }

    /// Takes the final value of `key` (its newest version) out of the memory, if it was written.
    fn take(&mut self, key: &Key) -> Option<Option<Value>> {
        let place = self.place(key);
        let s = self.shards[place.shard as usize].0.get_mut();
        let mut head = s.heads.remove(&place.hashed(key))?;
        Some(final_value(&mut head))
    }

    /// The block's net writes once every transaction is final: the newest version of each key,
    /// plus `extra` (a write of a key the memory does not hold), sorted by key; and, if `hash`,
    /// their tree updates (`updates[i]` is the update of `writes[i]`; the caller sorts them by
    /// path), hashed while the values are at hand. Each shard drains straight into its own
    /// range of the output (shards cover consecutive ranges of the key order): its entries are
    /// sorted through 16-byte order words in a small buffer that stays in cache, then moved
    /// once to their final place. Runs shard by shard on the current rayon pool and leaves the
    /// memory empty.
    fn drain_sorted(
        &mut self,
        mut extra: Option<Write>,
        hash: bool,
    ) -> (Vec<Write>, Vec<TreeUpdateEntry>) {
        let extra_shard = extra.as_ref().map(|w| shard_of(&w.0));
        let counts: Vec<usize> = self
            .shards
            .iter_mut()
            .enumerate()
            .map(|(i, s)| s.0.get_mut().heads.len() + usize::from(extra_shard == Some(i)))
            .collect();
        let total: usize = counts.iter().sum();
        let mut writes: Vec<Write> = Vec::with_capacity(total);
        let mut updates: Vec<TreeUpdateEntry> = Vec::with_capacity(if hash { total } else { 0 });
        let mut w_spare = &mut writes.spare_capacity_mut()[..total];
        let mut u_spare = &mut updates.spare_capacity_mut()[..if hash { total } else { 0 }];
        let mut jobs = Vec::with_capacity(SHARDS);
        for ((i, shard), &count) in self.shards.iter_mut().enumerate().zip(&counts) {
            let (w, rest) = std::mem::take(&mut w_spare).split_at_mut(count);
            w_spare = rest;
            let (u, rest) = std::mem::take(&mut u_spare).split_at_mut(if hash { count } else { 0 });
            u_spare = rest;
            let e = if extra_shard == Some(i) {
                extra.take()
            } else {
                None
            };
            if count > 0 {
                jobs.push((shard.0.get_mut(), w, u, e));
            }
        }
        jobs.into_par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(entries, order, buf), (s, w, u, e)| {
                let entries: &mut Vec<Write> = entries;
                let order: &mut Vec<(u128, u32)> = order;
                entries.clear();
                entries.extend(
                    s.heads
                        .drain()
                        .map(|(k, mut head)| (k.key, final_value(&mut head))),
                );
                entries.extend(e);
                s.nodes.clear();
                s.free.clear();
                assert_eq!(entries.len(), w.len(), "a shard changed while draining");
                order.clear();
                order.extend(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (order_word(k), i as u32)),
                );
                order.sort_unstable_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| entries[a.1 as usize].0.cmp(&entries[b.1 as usize].0))
                });
                for (j, &(_, i)) in order.iter().enumerate() {
                    let (key, value) = &mut entries[i as usize];
                    let value = value.take();
                    if hash {
                        u[j].write(smt::hash_write(buf, key, value.as_ref()));
                    }
                    w[j].write((*key, value));
                }
            },
        );
        // SAFETY: the shards' ranges cover the first `total` slots of both vectors (of
        // `updates` only when hashing), and every job initialised all of its range (it holds
        // exactly as many entries as its range has slots, asserted above; a job that panicked
        // propagates the panic before this point).
        unsafe {
            writes.set_len(total);
            if hash {
                updates.set_len(total);
            }
        }
        (writes, updates)
    }
}

/// Concatenates `parts` into one vector, copying the parts in parallel on the current pool.
pub(crate) fn concat<T: Send>(parts: Vec<Vec<T>>) -> Vec<T> {
    if parts.len() <= 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let total = parts.iter().map(Vec::len).sum();
    let mut all: Vec<T> = Vec::with_capacity(total);
    let mut spare = &mut all.spare_capacity_mut()[..total];
    let mut jobs = Vec::with_capacity(parts.len());
    for part in parts {
        let (dst, rest) = spare.split_at_mut(part.len());
        jobs.push((dst, part));
        spare = rest;
    }
    jobs.into_par_iter().for_each(|(dst, part)| {
        for (d, x) in dst.iter_mut().zip(part) {
            d.write(x);
        }
    });
    // SAFETY: the parts' lengths add up to `total`, and each job above initialised its own
    // disjoint range of the first `total` slots, so all of them are initialised.
    unsafe { all.set_len(total) };
    all
}

fn final_value(node: &mut VNode) -> Option<Value> {
    match std::mem::replace(&mut node.cell, MvCell::Data(None)) {
        MvCell::Data(v) => v,
        MvCell::Estimate => unreachable!("an estimate outlived its block"),
    }
}

/// One entry of a read set: the key, where it lives in the memory, where the value came from.
type ReadEntry = (Key, Place, Origin);

/// The latest incarnation's output of one transaction, kept inline (up to four reads and
/// writes, a transfer's three of each included) so that recording and validating it touch the
/// transaction's own cache lines, which workers visit in index order, rather than heap buffers
/// scattered by earlier blocks: storing a write set into such a buffer cost a cache miss per
/// transaction.
#[derive(Default)]
struct Slot {
    /// What it read: each key, where the key lives in the memory, and where the value came from.
    reads: SmallVec<[ReadEntry; 4]>,
    /// The keys it wrote, ascending (the values are in the multi-version memory).
    written: SmallVec<[Key; 4]>,
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

/// Everything about one transaction, under one lock: its scheduling state (status,
/// incarnation, and the transactions waiting for it to finish executing, its dependents) and
/// its latest incarnation's output. One lock rather than one for each: a lock is an atomic
/// swap, a full barrier that waits for the multi-version writes just made to reach the cache,
/// and finishing an execution or validating then takes one instead of two.
#[derive(Default)]
struct TxState {
    status: Status,
    incarnation: u32,
    dependents: Vec<usize>,
    /// Whether an incarnation was recorded in this block: until then `slot` holds what an
    /// earlier block left (see [`Scratch::reset`]).
    recorded: bool,
    slot: Slot,
}

/// A transaction's state on its own cache lines: workers run neighbouring transactions.
#[derive(Default)]
#[repr(align(64))]
struct TxEntry {
    state: SpinLock<TxState>,
}

#[derive(Clone, Copy, Debug)]
enum Task {
    Execute(usize, u32),
    Validate(usize, u32),
}

/// Transactions a worker claims at once, for execution or for validation: one shared counter
/// update per claim instead of per transaction, and neighbouring transactions stay on one core.
const CLAIM: usize = 8;

/// Validation may lag execution by this many transactions before any worker validates any
/// transaction, whoever executed it (see [`Scheduler::leave_to_owner`]).
const MAX_VALIDATION_LAG: usize = 8 * CLAIM;

/// A worker holding no claim.
const IDLE: usize = usize::MAX;

/// A range of transaction indices a worker claimed.
struct Claim {
    range: std::ops::Range<usize>,
    validate: bool,
}

/// The Block-STM collaborative scheduler (the paper's Algorithms 4 and 5), with these changes:
/// workers claim [`CLAIM`] consecutive indices per counter update; instead of counting active
/// tasks in one shared counter each worker publishes in `active` the first index of the claim
/// it holds (set before the claim is taken, [`IDLE`] after its last task), which `check_done`
/// reads; and validation is claimed only below every other worker's claim and preferably by the
/// worker that executed the range (see [`Scheduler::claim`]). The last two only choose which
/// task runs when and where: correctness rests on the paper's index rules, unchanged.
/// Lock order: a transaction's lock is only taken while holding that of a *lower* transaction
/// (`add_dependency`), never the other way round; shard locks are taken last (while holding a
/// transaction's lock when recording or validating it) and nothing is locked under them.
struct Scheduler<'a> {
    n: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    /// Per worker: the first index of the claim it holds (or is taking), or [`IDLE`].
    active: Vec<Padded<AtomicUsize>>,
    /// Per transaction: the worker that claimed its latest execution (a cache-locality hint).
    executed_by: Vec<AtomicU8>,
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
                .map(|_| Padded(AtomicUsize::new(IDLE)))
                .collect(),
            executed_by: (0..txs.len()).map(|_| AtomicU8::new(u8::MAX)).collect(),
            done: AtomicBool::new(false),
            txs,
        }
    }

    fn lock_tx(&self, txn: usize) -> SpinGuard<'_, TxState> {
        self.txs[txn].state.lock()
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
            && self.active.iter().all(|a| a.0.load(SeqCst) == IDLE)
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done.store(true, SeqCst);
        }
    }

    /// The next range to validate (if validation is behind execution) or to execute. On `Some`,
    /// the worker's `active` entry holds the range's start until [`Scheduler::release`].
    ///
    /// Validation waits for the lowest claim another worker holds: a transaction there that
    /// finishes its first execution writes new keys, which sends validation back to it, so
    /// validating above it would mostly be done twice (transfers ran 1.85 validations per
    /// transaction before this rule, 1.0 after). And a worker leaves a range another worker
    /// executed to that worker while there is execution work left ([`Scheduler::leave_to_owner`]).
    fn claim(&self, worker: usize) -> Option<Claim> {
        let exec = self.execution_idx.load(SeqCst);
        // Validate only below every claim another worker holds: a transaction still executing
        // there would, on finishing, send validation back to it (its writes are new) and every
        // validation claimed above it would run again.
        let limit = exec.min(self.lowest_claim());
        let next = self.validation_idx.load(SeqCst);
        let validate = next < limit && !self.leave_to_owner(worker, next, exec);
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
        active.store(idx.load(SeqCst), SeqCst);
        let range = if validate {
            // Never claim validations past the execution index: a transaction that finishes
            // executing below the validation index resets it (its writes are new), which would
            // make every claimed-ahead validation run again.
            let mut start = self.validation_idx.load(SeqCst);
            loop {
                let end = (start + CLAIM).min(self.n).min(limit);
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
            let range = start..(start + CLAIM).min(self.n);
            for by in self.executed_by.get(range.clone()).unwrap_or_default() {
                by.store(worker as u8, Relaxed);
            }
            range
        };
        if range.is_empty() {
            active.store(IDLE, SeqCst);
            return None;
        }
        active.store(range.start, SeqCst);
        Some(Claim { range, validate })
    }

    /// Whether `worker` should leave the validation of `txn` to the worker that executed it and
    /// execute instead: that worker still has the transaction's read set and keys in its cache,
    /// and execution work is left. Only a preference, bounded by [`MAX_VALIDATION_LAG`].
    fn leave_to_owner(&self, worker: usize, txn: usize, exec: usize) -> bool {
        exec < self.n
            && exec - txn < MAX_VALIDATION_LAG
            && self.executed_by[txn].load(Relaxed) != worker as u8
    }

    /// The lowest first index of the claims workers hold ([`IDLE`] if none).
    fn lowest_claim(&self) -> usize {
        self.active
            .iter()
            .map(|a| a.0.load(SeqCst))
            .min()
            .unwrap_or(IDLE)
    }

    fn release(&self, worker: usize) {
        self.active[worker].0.store(IDLE, SeqCst);
    }

    fn try_incarnate(&self, txn: usize) -> Option<Task> {
        let mut st = self.lock_tx(txn);
        if st.status == Status::Ready {
            st.status = Status::Executing;
            return Some(Task::Execute(txn, st.incarnation));
        }
        None
    }

    /// Records that `txn` waits for `blocking`; false if `blocking` already finished (retry).
    fn add_dependency(&self, txn: usize, blocking: usize) -> bool {
        assert!(blocking < txn, "a transaction depends on a later one");
        let mut blocker = self.lock_tx(blocking);
        if blocker.status == Status::Executed {
            return false;
        }
        {
            let mut st = self.lock_tx(txn);
            assert_eq!(st.status, Status::Executing);
            st.status = Status::Aborting;
        }
        blocker.dependents.push(txn);
        true
    }

    fn set_ready_status(&self, txn: usize) {
        let mut st = self.lock_tx(txn);
        assert_eq!(st.status, Status::Aborting);
        st.status = Status::Ready;
        st.incarnation += 1;
    }

    /// After `txn`'s incarnation `inc` was recorded and marked executed (see
    /// [`Shared::record`]): wakes the `dependents` it had, and picks what follows.
    fn finish_execution(
        &self,
        txn: usize,
        inc: u32,
        wrote_new_location: bool,
        dependents: Vec<usize>,
    ) -> Option<Task> {
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

    /// After a validation of `txn` failed and its state went back to `Ready` with the next
    /// incarnation (see [`Shared::validate`]).
    fn finish_validation_abort(&self, txn: usize) -> Option<Task> {
        self.decrease_validation_idx(txn + 1);
        if self.execution_idx.load(SeqCst) > txn {
            return self.try_incarnate(txn);
        }
        None
    }
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
        assert_eq!((st.status, st.incarnation), (Status::Executing, inc));
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
        st.status = Status::Executed;
        (wrote_new, std::mem::take(&mut st.dependents))
    }

    /// Validates the read set of `txn`'s incarnation `inc` (`None`: whichever incarnation last
    /// finished executing). A stale request (the transaction is executing again, or aborted)
    /// does nothing. On failure the incarnation's writes become estimates and the transaction is
    /// ready for its next incarnation.
    fn validate(&self, txn: usize, inc: Option<u32>, local: &mut Local) -> Option<Task> {
        {
            let mut st = self.sched.lock_tx(txn);
            if st.status != Status::Executed || inc.is_some_and(|i| i != st.incarnation) {
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
            st.status = Status::Ready;
            st.incarnation += 1;
        }
        self.sched.finish_validation_abort(txn)
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
            let st = e.state.get_mut();
            st.status = Status::Ready;
            st.incarnation = 0;
            st.dependents.clear();
            st.recorded = false;
        });
        self.mv.reset(n);
    }
}

/// What a completed parallel run produced.
pub(crate) struct StmOutput {
    /// Every transaction's receipt, in block order.
    pub receipts: Vec<Receipt>,
    /// The block's net writes, each key once, sorted by key, the watched key's as
    /// [`Wanted::settle`] decided.
    pub writes: Vec<Write>,
    /// The tree updates of `writes` (unsorted), when asked for.
    pub updates: Vec<TreeUpdateEntry>,
}

/// What the caller wants from a completed run besides receipts and writes.
pub(crate) struct Wanted<'a, F> {
    /// A key whose final write the caller decides with `settle` (the fee sink, credited after
    /// the block).
    pub watch: &'a Key,
    /// Given the receipts and the watched key's net write in the block (if any), the write of
    /// the watched key to put in the output, if any.
    pub settle: F,
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
    let Wanted {
        watch,
        settle,
        hash,
    } = wanted;
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
    // The memory drains while the receipts are gathered, with a placeholder where the watched
    // key's write goes; `settle` needs the receipts, so that write is known only afterwards.
    let (receipts, (mut writes, mut updates)) = pool.install(|| {
        rayon::join(
            || {
                entries[..n]
                    .par_iter_mut()
                    .map(|e| {
                        let st = e.state.get_mut();
                        assert!(
                            st.recorded && st.status == Status::Executed,
                            "a transaction of the block was not executed"
                        );
                        st.slot
                            .receipt
                            .take()
                            .expect("an executed transaction has a receipt")
                    })
                    .collect::<Vec<Receipt>>()
            },
            || mv.drain_sorted(Some((*watch, None)), hash),
        )
    });
    let at = writes
        .binary_search_by(|w| w.0.cmp(watch))
        .expect("the placeholder is in the writes");
    match settle(&receipts, watched) {
        Some(w) => {
            assert!(
                w.0 == *watch,
                "settle wrote another key than the watched one"
            );
            if hash {
                updates[at] = smt::hash_write(&mut Vec::new(), &w.0, w.1.as_ref());
            }
            writes[at] = w;
        }
        None => {
            writes.remove(at);
            if hash {
                updates.remove(at);
            }
        }
    }
    let out = StmOutput {
        receipts,
        writes,
        updates,
    };
    (Some(out), counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::Address;
    use proptest::prelude::*;

    fn arb_key() -> impl Strategy<Value = Key> {
        let addr = any::<[u8; 20]>().prop_map(Address);
        prop_oneof![
            addr.clone().prop_map(Key::Nonce),
            (addr.clone(), any::<u32>()).prop_map(|(a, b)| Key::Balance(a, b)),
            any::<u32>().prop_map(Key::Asset),
            any::<[u8; 12]>().prop_map(Key::Symbol),
            Just(Key::NextAssetId),
            any::<u32>().prop_map(Key::Pool),
            Just(Key::NextPoolId),
            (any::<u32>(), addr.clone()).prop_map(|(p, a)| Key::LpShares(p, a)),
            addr.clone().prop_map(Key::Validator),
            (addr.clone(), addr.clone()).prop_map(|(a, b)| Key::Stake(a, b)),
            any::<u32>().prop_map(Key::Market),
            addr.prop_map(Key::Positions),
            any::<u32>().prop_map(Key::Price),
        ]
    }

    proptest! {
        /// Shards cover ranges of the key order: drained one after the other, they are sorted.
        #[test]
        fn shards_follow_key_order(a in arb_key(), b in arb_key()) {
            use lanes_types::codec::Encode;
            prop_assert!(shard_of(&a) < SHARDS);
            let bytes = a.to_bytes();
            prop_assert_eq!(shard_of(&a), usize::from(bytes[0]) * 256 + usize::from(*bytes.get(1).unwrap_or(&0)));
            if a <= b {
                prop_assert!(shard_of(&a) <= shard_of(&b));
            }
            // Within a shard, the order word never contradicts the key order.
            if shard_of(&a) == shard_of(&b) && order_word(&a) < order_word(&b) {
                prop_assert!(a < b);
            }
            let enc = b.to_bytes();
            let mut word = [0u8; 16];
            let tail = &enc[2.min(enc.len())..enc.len().min(18)];
            word[..tail.len()].copy_from_slice(tail);
            prop_assert_eq!(order_word(&b), u128::from_be_bytes(word));
        }
    }

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
