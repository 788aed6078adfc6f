//! A 256-bit sparse Merkle tree over SHA-256 with shortcut leaves.
//!
//! - A state key sits at the path [`key_hash`] (256 bits, most significant bit first: bit 0
//!   chooses the root's child). Its leaf commits to the path and [`value_hash`] of the value.
//! - A subtree holding one key is that key's leaf, placed as high as possible; a subtree holding
//!   none is [`EMPTY`] (all-zero hash, stored nowhere). So the tree's shape, and its root, depend
//!   only on the set of (key, value) pairs, and a tree of n keys has depth about log2(n).
//! - Nodes are content addressed: stored under their own hash through [`NodeStore`]. An update
//!   never modifies a node; it returns the new root and the nodes to persist (old nodes are not
//!   pruned: that is a storage concern).
//! - [`update`] applies one block's writes in one batch, recursing into both halves of the tree
//!   in parallel near the root (rayon `join`, on the caller's pool; it never waits on other
//!   tasks).
//! - [`prove`] gives inclusion and exclusion proofs; [`verify_proof`] is a pure function.
//!
//! This is our own compact implementation; see the crate docs for how it compares with `jmt`.
//!
//! Modules: `node` (paths, hashes, the stored node and its store), `batch` (a block's writes
//! as sorted tree updates), `update` (the batch update) and `proof`.

mod batch;
mod node;
mod proof;
mod update;

pub(crate) use batch::{hash_write, sort_updates};
pub use batch::{tree_updates, TreeUpdateEntry};
pub use node::{key_hash, value_hash, MemNodeStore, Node, NodeStore, SmtError, EMPTY};
pub use proof::{prove, verify_proof, Proof};
pub use update::{update, TreeUpdate};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Key, Value, Write};
    use lanes_types::codec::{Decode, Encode};
    use lanes_types::{Address, Hash};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(i: u32) -> Key {
        Key::Balance(Address([7; 20]), i)
    }

    /// Root from scratch over a full map, the reference the incremental updates must match.
    fn root_of(map: &BTreeMap<Key, Value>) -> Hash {
        let writes: Vec<Write> = map.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        update(&MemNodeStore::default(), EMPTY, &tree_updates(&writes))
            .unwrap()
            .root
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn incremental_equals_rebuild_and_proofs_hold(
            batches in prop::collection::vec(prop::collection::btree_map(0u32..300, prop::option::of(0u64..4), 0..120), 1..5),
            probe in 0u32..300,
        ) {
            let mut store = MemNodeStore::default();
            let mut root = EMPTY;
            let mut map = BTreeMap::new();
            for batch in &batches {
                let writes: Vec<Write> = batch.iter().map(|(k, v)| (key(*k), v.map(Value::U64))).collect();
                let up = update(&store, root, &tree_updates(&writes)).unwrap();
                up.persist(&mut store);
                root = up.root;
                for (k, v) in batch {
                    match v { Some(v) => { map.insert(key(*k), Value::U64(*v)); } None => { map.remove(&key(*k)); } }
                }
                prop_assert_eq!(root, root_of(&map));
            }
            for i in (0..300).step_by(7).chain([probe]) {
                let k = key(i);
                let p = prove(&store, root, &k).unwrap();
                let v = map.get(&k);
                prop_assert!(verify_proof(root, &k, v, &p));
                // Wrong claims fail.
                prop_assert!(!verify_proof(root, &k, Some(&Value::U64(99)), &p));
                if v.is_some() {
                    prop_assert!(!verify_proof(root, &k, None, &p));
                }
                // Any single flipped bit in a sibling or the leaf fails.
                for s in 0..p.siblings.len() {
                    let mut t = p.clone();
                    t.siblings[s].0[s % 32] ^= 1;
                    prop_assert!(!verify_proof(root, &k, v, &t));
                }
                if let Some((lp, lv)) = p.leaf {
                    let mut t = p.clone();
                    t.leaf = Some((lp, Hash([lv.0[0] ^ 1; 32])));
                    prop_assert!(!verify_proof(root, &k, v, &t));
                }
                let mut t = p.clone();
                t.siblings.push(EMPTY);
                prop_assert!(!verify_proof(root, &k, v, &t) || map.len() <= 1);
                prop_assert_eq!(Proof::from_bytes(&p.to_bytes()).unwrap(), p);
            }
        }
    }

    #[test]
    fn empty_tree_and_single_leaf() {
        let store = MemNodeStore::default();
        let p = prove(&store, EMPTY, &key(1)).unwrap();
        assert!(verify_proof(EMPTY, &key(1), None, &p));
        let up = update(
            &store,
            EMPTY,
            &tree_updates(&[(key(1), Some(Value::U64(5)))]),
        )
        .unwrap();
        assert_eq!(up.new_nodes.len(), 1);
        let mut store = store;
        up.persist(&mut store);
        let p = prove(&store, up.root, &key(1)).unwrap();
        assert!(p.siblings.is_empty());
        assert!(verify_proof(up.root, &key(1), Some(&Value::U64(5)), &p));
        let p2 = prove(&store, up.root, &key(2)).unwrap();
        assert!(verify_proof(up.root, &key(2), None, &p2));
        assert!(!verify_proof(up.root, &key(2), Some(&Value::U64(5)), &p2));
        let del = update(&store, up.root, &tree_updates(&[(key(1), None)])).unwrap();
        assert_eq!(del.root, EMPTY);
        assert_eq!(
            update(&store, Hash([1; 32]), &tree_updates(&[(key(3), None)])),
            Err(SmtError::MissingNode(Hash([1; 32])))
        );
    }

    #[test]
    fn depth_is_logarithmic_and_parallel_batches_agree() {
        let writes: Vec<Write> = (0..5000)
            .map(|i| (key(i), Some(Value::U64(u64::from(i) + 1))))
            .collect();
        let mut store = MemNodeStore::default();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let up = pool
            .install(|| update(&store, EMPTY, &tree_updates(&writes)))
            .unwrap();
        let seq = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let up1 = seq
            .install(|| update(&store, EMPTY, &tree_updates(&writes)))
            .unwrap();
        assert_eq!(up, up1);
        up.persist(&mut store);
        let max_depth = (0..5000)
            .step_by(37)
            .map(|i| prove(&store, up.root, &key(i)).unwrap().siblings.len())
            .max()
            .unwrap();
        assert!(max_depth < 40, "depth {max_depth}");
    }
}
