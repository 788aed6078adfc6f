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

use crate::fxhash::FxHashMap;
use crate::state::{Key, Value, Write};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{codec_struct, Hash};
use thiserror::Error;

/// The hash of an empty subtree.
pub const EMPTY: Hash = Hash::ZERO;

/// Batches larger than this split across threads near the root.
const PAR_MIN_UPDATES: usize = 512;
/// Levels near the root at which the two halves of an update run in parallel.
const PAR_MAX_DEPTH: usize = 4;

/// The tree path of a state key.
pub fn key_hash(key: &Key) -> Hash {
    Hash::tagged(KEY_TAG, &key.to_bytes())
}

const KEY_TAG: &str = "lanes/smt-key";
const VALUE_TAG: &str = "lanes/smt-value";

/// The commitment to a state value stored in its leaf.
pub fn value_hash(value: &Value) -> Hash {
    Hash::tagged(VALUE_TAG, &value.to_bytes())
}

fn leaf_hash(path: &Hash, value: &Hash) -> Hash {
    Hash::tagged_parts("lanes/smt-leaf", &[&path.0, &value.0])
}

fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::tagged_parts("lanes/smt-node", &[&left.0, &right.0])
}

fn bit(h: &Hash, depth: usize) -> bool {
    h.0[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// A stored tree node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A subtree holding exactly one key.
    Leaf {
        /// The key's path ([`key_hash`]).
        path: Hash,
        /// [`value_hash`] of its value.
        value: Hash,
    },
    /// A subtree holding two or more keys.
    Internal {
        /// Hash of the subtree whose next path bit is 0 ([`EMPTY`] if none).
        left: Hash,
        /// Hash of the subtree whose next path bit is 1.
        right: Hash,
    },
}

impl Node {
    /// The node's hash, under which it is stored.
    pub fn hash(&self) -> Hash {
        match self {
            Node::Leaf { path, value } => leaf_hash(path, value),
            Node::Internal { left, right } => internal_hash(left, right),
        }
    }
}

impl Encode for Node {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Node::Leaf { path, value } => {
                out.push(0);
                path.encode(out);
                value.encode(out);
            }
            Node::Internal { left, right } => {
                out.push(1);
                left.encode(out);
                right.encode(out);
            }
        }
    }
}

impl Decode for Node {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            0 => Node::Leaf {
                path: Decode::decode(r)?,
                value: Decode::decode(r)?,
            },
            1 => Node::Internal {
                left: Decode::decode(r)?,
                right: Decode::decode(r)?,
            },
            tag => return Err(DecodeError::InvalidTag { ty: "Node", tag }),
        })
    }
}

/// Where tree nodes live, by node hash. Storage implements it over RocksDB.
pub trait NodeStore: Sync {
    /// The node with this hash, if stored.
    fn get_node(&self, hash: &Hash) -> Option<Node>;
    /// Stores a node under its hash.
    fn put_node(&mut self, hash: Hash, node: Node);
}

/// Nodes in memory: for tests, benchmarks and genesis.
#[derive(Debug, Clone, Default)]
pub struct MemNodeStore {
    /// Every stored node.
    pub nodes: FxHashMap<Hash, Node>,
}

impl NodeStore for MemNodeStore {
    fn get_node(&self, hash: &Hash) -> Option<Node> {
        self.nodes.get(hash).cloned()
    }
    fn put_node(&mut self, hash: Hash, node: Node) {
        self.nodes.insert(hash, node);
    }
}

/// A tree operation could not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmtError {
    /// A node reachable from the root is not in the store (a storage bug or an unknown root).
    #[error("tree node {0} is missing from the store")]
    MissingNode(Hash),
}

/// The result of a batch update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUpdate {
    /// The new root.
    pub root: Hash,
    /// The nodes created, to persist with the block (in a deterministic order; may repeat
    /// nodes that already exist).
    pub new_nodes: Vec<(Hash, Node)>,
}

impl TreeUpdate {
    /// Stores the new nodes.
    pub fn persist(&self, store: &mut impl NodeStore) {
        for (h, n) in &self.new_nodes {
            store.put_node(*h, n.clone());
        }
    }
}

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

/// Whether a subtree update of `len` entries at `depth` runs its two halves in parallel.
fn split_here(depth: usize, len: usize) -> bool {
    depth < PAR_MAX_DEPTH && len >= PAR_MIN_UPDATES && rayon::current_num_threads() > 1
}

#[derive(Clone, Copy)]
enum Sub {
    Empty,
    Leaf(Hash),
    Internal(Hash),
    /// Unchanged subtree whose kind was not loaded.
    Unknown(Hash),
}

impl Sub {
    fn hash(&self) -> Hash {
        match self {
            Sub::Empty => EMPTY,
            Sub::Leaf(h) | Sub::Internal(h) | Sub::Unknown(h) => *h,
        }
    }
}

struct Updater<'a, S: NodeStore> {
    store: &'a S,
}

/// New nodes in output order, as a list of segments: a parallel branch fills its own segment
/// list, which is moved (not copied) behind its left sibling's; [`Out::concat`] joins them
/// once, in parallel, at the end.
struct Out {
    segments: Vec<Vec<(Hash, Node)>>,
}

impl Out {
    fn new() -> Self {
        Out {
            segments: vec![Vec::new()],
        }
    }

    fn push(&mut self, node: (Hash, Node)) {
        self.segments
            .last_mut()
            .expect("an output has a segment")
            .push(node);
    }

    /// Appends `other`'s nodes after this output's, moving segments only.
    fn append(&mut self, other: Out) {
        self.segments.extend(other.segments);
    }

    /// The nodes as one vector, copied segment by segment in parallel on the current pool.
    fn concat(self) -> Vec<(Hash, Node)> {
        crate::parallel::concat(self.segments)
    }
}

impl<S: NodeStore> Updater<'_, S> {
    fn load(&self, h: &Hash) -> Result<Option<Node>, SmtError> {
        if *h == EMPTY {
            return Ok(None);
        }
        self.store
            .get_node(h)
            .map(Some)
            .ok_or(SmtError::MissingNode(*h))
    }

    fn resolve(&self, s: Sub) -> Result<Sub, SmtError> {
        Ok(match s {
            Sub::Unknown(h) => match self.load(&h)? {
                None => Sub::Empty,
                Some(Node::Leaf { .. }) => Sub::Leaf(h),
                Some(Node::Internal { .. }) => Sub::Internal(h),
            },
            other => other,
        })
    }

    fn join(&self, l: Sub, r: Sub, out: &mut Out) -> Result<Sub, SmtError> {
        let (l, r) = match (l, r) {
            (Sub::Empty, Sub::Empty) => return Ok(Sub::Empty),
            (Sub::Empty, x) => (Sub::Empty, self.resolve(x)?),
            (x, Sub::Empty) => (self.resolve(x)?, Sub::Empty),
            other => other,
        };
        match (l, r) {
            (Sub::Empty, Sub::Empty) => Ok(Sub::Empty),
            (Sub::Empty, Sub::Leaf(h)) | (Sub::Leaf(h), Sub::Empty) => Ok(Sub::Leaf(h)),
            (l, r) => {
                let node = Node::Internal {
                    left: l.hash(),
                    right: r.hash(),
                };
                let h = node.hash();
                out.push((h, node));
                Ok(Sub::Internal(h))
            }
        }
    }

    fn build(&self, depth: usize, leaves: &[(Hash, Hash)], out: &mut Out) -> Result<Sub, SmtError> {
        match leaves {
            [] => Ok(Sub::Empty),
            [(path, value)] => {
                let node = Node::Leaf {
                    path: *path,
                    value: *value,
                };
                let h = node.hash();
                out.push((h, node));
                Ok(Sub::Leaf(h))
            }
            _ => {
                assert!(depth < 256, "duplicate path in a tree update");
                let split = leaves.partition_point(|(p, _)| !bit(p, depth));
                let (l, r) = leaves.split_at(split);
                let (ls, rs) = if split_here(depth, leaves.len()) {
                    let mut rout = Out::new();
                    let (ls, rs) = rayon::join(
                        || self.build(depth + 1, l, out),
                        || self.build(depth + 1, r, &mut rout),
                    );
                    out.append(rout);
                    (ls?, rs?)
                } else {
                    (
                        self.build(depth + 1, l, out)?,
                        self.build(depth + 1, r, out)?,
                    )
                };
                self.join(ls, rs, out)
            }
        }
    }

    fn update(
        &self,
        node: Hash,
        depth: usize,
        ups: &[(Hash, Option<Hash>)],
        out: &mut Out,
    ) -> Result<Sub, SmtError> {
        if ups.is_empty() {
            return Ok(if node == EMPTY {
                Sub::Empty
            } else {
                Sub::Unknown(node)
            });
        }
        match self.load(&node)? {
            None => {
                let leaves: Vec<(Hash, Hash)> =
                    ups.iter().filter_map(|(p, v)| v.map(|v| (*p, v))).collect();
                self.build(depth, &leaves, out)
            }
            Some(Node::Leaf { path, value }) => {
                let mut leaves: Vec<(Hash, Hash)> = Vec::with_capacity(ups.len() + 1);
                let mut existing = Some((path, value));
                for (p, v) in ups {
                    if let Some((ep, ev)) = existing {
                        if ep < *p {
                            leaves.push((ep, ev));
                            existing = None;
                        } else if ep == *p {
                            existing = None;
                        }
                    }
                    if let Some(v) = v {
                        leaves.push((*p, *v));
                    }
                }
                if let Some(e) = existing {
                    leaves.push(e);
                }
                self.build(depth, &leaves, out)
            }
            Some(Node::Internal { left, right }) => {
                assert!(depth < 256, "internal node at the bottom of the tree");
                let split = ups.partition_point(|(p, _)| !bit(p, depth));
                let (lu, ru) = ups.split_at(split);
                let (ls, rs) = if split_here(depth, ups.len()) {
                    let mut rout = Out::new();
                    let (ls, rs) = rayon::join(
                        || self.update(left, depth + 1, lu, out),
                        || self.update(right, depth + 1, ru, &mut rout),
                    );
                    out.append(rout);
                    (ls?, rs?)
                } else {
                    (
                        self.update(left, depth + 1, lu, out)?,
                        self.update(right, depth + 1, ru, out)?,
                    )
                };
                self.join(ls, rs, out)
            }
        }
    }
}

/// Applies a batch of updates (sorted by path, each path once; `None` deletes) to the tree with
/// root `root`. Returns the new root and the nodes to persist.
pub fn update<S: NodeStore>(
    store: &S,
    root: Hash,
    updates: &[(Hash, Option<Hash>)],
) -> Result<TreeUpdate, SmtError> {
    use rayon::prelude::*;
    assert!(
        updates.par_windows(2).all(|w| w[0].0 < w[1].0),
        "tree updates must be sorted and unique"
    );
    let mut out = Out::new();
    let sub = Updater { store }.update(root, 0, updates, &mut out)?;
    Ok(TreeUpdate {
        root: sub.hash(),
        new_nodes: out.concat(),
    })
}

/// A proof that a key has a given value, or is absent, under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Sibling hashes from the root's child level downwards.
    pub siblings: Vec<Hash>,
    /// The leaf where the search ended: the key's own (inclusion) or another key's whose path
    /// shares the first `siblings.len()` bits (exclusion); `None` if it ended at an empty
    /// subtree (exclusion).
    pub leaf: Option<(Hash, Hash)>,
}
codec_struct!(Proof { siblings, leaf });

/// The proof for `key` under `root`.
pub fn prove<S: NodeStore>(store: &S, root: Hash, key: &Key) -> Result<Proof, SmtError> {
    let path = key_hash(key);
    let up = Updater { store };
    let mut siblings = Vec::new();
    let mut cur = root;
    loop {
        match up.load(&cur)? {
            None => {
                return Ok(Proof {
                    siblings,
                    leaf: None,
                })
            }
            Some(Node::Leaf { path, value }) => {
                return Ok(Proof {
                    siblings,
                    leaf: Some((path, value)),
                })
            }
            Some(Node::Internal { left, right }) => {
                if siblings.len() >= 256 {
                    return Err(SmtError::MissingNode(cur));
                }
                if bit(&path, siblings.len()) {
                    siblings.push(left);
                    cur = right;
                } else {
                    siblings.push(right);
                    cur = left;
                }
            }
        }
    }
}

/// Checks a proof: `value = Some(v)` claims `key` holds `v`; `None` claims `key` is absent.
pub fn verify_proof(root: Hash, key: &Key, value: Option<&Value>, proof: &Proof) -> bool {
    let path = key_hash(key);
    let depth = proof.siblings.len();
    if depth > 256 {
        return false;
    }
    let mut cur = match (value, &proof.leaf) {
        (Some(v), Some((p, vh))) => {
            if *p != path || *vh != value_hash(v) {
                return false;
            }
            leaf_hash(p, vh)
        }
        (Some(_), None) => return false,
        (None, None) => EMPTY,
        (None, Some((p, vh))) => {
            if *p == path || (0..depth).any(|d| bit(p, d) != bit(&path, d)) {
                return false;
            }
            leaf_hash(p, vh)
        }
    };
    for d in (0..depth).rev() {
        let sib = &proof.siblings[d];
        cur = if bit(&path, d) {
            internal_hash(sib, &cur)
        } else {
            internal_hash(&cur, sib)
        };
    }
    cur == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::Address;
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
