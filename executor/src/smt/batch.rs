//! A block's writes as tree updates: each key's path and value commitment, hashed in
//! parallel, sorted by path.

use super::node::{KEY_TAG, VALUE_TAG};
use crate::state::{Key, Value, Write};
use lanes_types::codec::Encode;
use lanes_types::Hash;

/// One tree update: a key's path and its new value hash (`None` deletes the key).
pub type TreeUpdateEntry = (Hash, Option<Hash>);

/// The tree updates for a block's writes: (path, new value hash or `None` to delete), sorted by
/// path. `writes` must name each key at most once. Runs in parallel on the current rayon pool.
pub fn tree_updates(writes: &[Write]) -> Vec<TreeUpdateEntry> {
    use rayon::prelude::*;
    // Two SHA-256 per write: hashed in parallel on the caller's pool (a top-level parallel
    // iterator; nothing here waits on other tasks), encoding into one buffer per task.
    let ups: Vec<TreeUpdateEntry> = writes
        .par_iter()
        .with_min_len(256)
        .map_init(Vec::new, |buf, (k, v)| hash_write(buf, k, v.as_ref()))
        .collect();
    sort_updates(ups)
}

/// The tree update of one write, encoding through `buf` (a reused scratch buffer).
pub(crate) fn hash_write(buf: &mut Vec<u8>, key: &Key, value: Option<&Value>) -> TreeUpdateEntry {
    buf.clear();
    key.encode(buf);
    let path = Hash::tagged(KEY_TAG, buf);
    let value = value.map(|v| {
        buf.clear();
        v.encode(buf);
        Hash::tagged(VALUE_TAG, buf)
    });
    (path, value)
}

/// Sorts tree updates with distinct paths by path, on the current rayon pool. It sorts 16-byte
/// keys (the path's first eight bytes and the entry's index) and then gathers the entries,
/// rather than moving 65-byte entries around; paths are uniformly distributed, so equal
/// prefixes are practically never seen (they are ordered by the full path).
pub(crate) fn sort_updates(ups: Vec<TreeUpdateEntry>) -> Vec<TreeUpdateEntry> {
    use rayon::prelude::*;
    assert!(u32::try_from(ups.len()).is_ok(), "too many tree updates");
    let mut order: Vec<u128> = ups
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, u)| (u128::from(path_word(&u.0)) << 64) | i as u128)
        .collect();
    order.par_sort_unstable();
    let index = |o: &u128| *o as u64 as usize;
    let prefix = |o: &u128| (*o >> 64) as u64;
    if order.par_windows(2).any(|w| prefix(&w[0]) == prefix(&w[1])) {
        let mut i = 0;
        while i < order.len() {
            let mut j = i + 1;
            while j < order.len() && prefix(&order[j]) == prefix(&order[i]) {
                j += 1;
            }
            order[i..j].sort_unstable_by(|a, b| ups[index(a)].0.cmp(&ups[index(b)].0));
            i = j;
        }
    }
    order
        .par_iter()
        .with_min_len(4096)
        .map(|o| ups[index(o)])
        .collect()
}

/// The first eight bytes of a path as a big-endian number (orders like the path's prefix).
fn path_word(h: &Hash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smt::{key_hash, value_hash};
    use lanes_types::Address;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(i: u32) -> Key {
        Key::Balance(Address([7; 20]), i)
    }

    proptest! {
        /// `sort_updates` sorts by the full path, also when many paths share their first eight
        /// bytes (which real key hashes practically never do), and `hash_write` equals the
        /// public hash functions.
        #[test]
        fn updates_sort_by_full_path(
            paths in prop::collection::btree_set((0u8..3, any::<[u8; 32]>()), 0..400),
        ) {
            let ups: Vec<TreeUpdateEntry> = paths
                .iter()
                .map(|(p, rest)| {
                    let mut h = *rest;
                    h[..7].fill(0);
                    h[7] = *p;
                    (Hash(h), (p % 2 == 0).then_some(Hash(*rest)))
                })
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let mut shuffled = ups.clone();
            shuffled.reverse();
            shuffled.rotate_left(ups.len() / 3);
            prop_assert_eq!(sort_updates(shuffled), ups);
            let k = key(paths.len() as u32);
            let v = Value::U64(paths.len() as u64);
            let mut buf = vec![1, 2, 3];
            prop_assert_eq!(hash_write(&mut buf, &k, Some(&v)), (key_hash(&k), Some(value_hash(&v))));
            prop_assert_eq!(hash_write(&mut buf, &k, None), (key_hash(&k), None));
        }
    }
}
