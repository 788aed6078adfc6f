//! The end of a block: the multi-version memory drained into the block's net writes, sorted by
//! key without a global sort (each shard covers a range of the key order), hashed into tree
//! updates on the way; and the place of the deferred fee credit in them
//! ([`super::DeferredFeeCredit`]).

use super::mv_memory::{shard_of, MvMemory, SHARDS};
use crate::smt::{self, TreeUpdateEntry};
use crate::state::{Key, Value, Write};
use rayon::prelude::*;

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

impl MvMemory {
    /// Takes the final value of `key` (its newest version) out of the memory, if it was written.
    pub(super) fn take(&mut self, key: &Key) -> Option<Option<Value>> {
        let place = self.place(key);
        self.shards[place.shard as usize]
            .0
            .get_mut()
            .take(&place.hashed(key))
    }

    /// The block's net writes once every transaction is final: the newest version of each key,
    /// plus an empty write of `placeholder` (a key the memory does not hold: the fee sink's,
    /// see [`super::DeferredFeeCredit`]), sorted by key; and, if `hash`,
    /// their tree updates (`updates[i]` is the update of `writes[i]`; the caller sorts them by
    /// path), hashed while the values are at hand. Each shard drains straight into its own
    /// range of the output (shards cover consecutive ranges of the key order): its entries are
    /// sorted through 16-byte order words in a small buffer that stays in cache, then moved
    /// once to their final place. Runs shard by shard on the current rayon pool and leaves the
    /// memory empty.
    pub(super) fn drain_sorted(
        &mut self,
        placeholder: Option<Key>,
        hash: bool,
    ) -> (Vec<Write>, Vec<TreeUpdateEntry>) {
        let mut extra: Option<Write> = placeholder.map(|k| (k, None));
        let extra_shard = placeholder.as_ref().map(shard_of);
        let counts: Vec<usize> = self
            .shards
            .iter_mut()
            .enumerate()
            .map(|(i, s)| s.0.get_mut().len() + usize::from(extra_shard == Some(i)))
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
                s.drain_final(entries);
                entries.extend(e);
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

/// Puts the deferred fee credit in the writes [`MvMemory::drain_sorted`] returned with a
/// placeholder of `sink` (see [`super::DeferredFeeCredit`]): `credit`, the sink's write, takes
/// the placeholder's place (and its tree update, when `hash`), or, if there is none, the
/// placeholder is removed. The writes stay sorted: the placeholder was at the sink's place.
pub(super) fn fill_fee_credit(
    writes: &mut Vec<Write>,
    updates: &mut Vec<TreeUpdateEntry>,
    hash: bool,
    sink: &Key,
    credit: Option<Write>,
) {
    let at = writes
        .binary_search_by(|w| w.0.cmp(sink))
        .expect("the placeholder is in the writes");
    match credit {
        Some(w) => {
            assert!(
                w.0 == *sink,
                "the fee credit wrote another key than the sink"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::arb_key;
    use proptest::prelude::*;

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
}
