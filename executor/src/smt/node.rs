//! What the tree is made of: key paths and value commitments, the node hashes, the stored
//! [`Node`] and its encoding, and the [`NodeStore`] nodes are loaded from.

use crate::fxhash::FxHashMap;
use crate::state::{Key, Value};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::Hash;
use thiserror::Error;

/// The hash of an empty subtree.
pub const EMPTY: Hash = Hash::ZERO;

/// The tree path of a state key.
pub fn key_hash(key: &Key) -> Hash {
    Hash::tagged(KEY_TAG, &key.to_bytes())
}

/// Domain tag of key paths.
pub(super) const KEY_TAG: &str = "lanes/smt-key";
/// Domain tag of value commitments.
pub(super) const VALUE_TAG: &str = "lanes/smt-value";

/// The commitment to a state value stored in its leaf.
pub fn value_hash(value: &Value) -> Hash {
    Hash::tagged(VALUE_TAG, &value.to_bytes())
}

/// The hash of a leaf: its path and value commitment.
pub(super) fn leaf_hash(path: &Hash, value: &Hash) -> Hash {
    Hash::tagged_parts("lanes/smt-leaf", &[&path.0, &value.0])
}

/// The hash of an internal node: its two children.
pub(super) fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::tagged_parts("lanes/smt-node", &[&left.0, &right.0])
}

/// Bit `depth` of a path, most significant first (`true`: the right child).
pub(super) fn bit(h: &Hash, depth: usize) -> bool {
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

/// The node with hash `h`: `None` for [`EMPTY`], an error if the store lacks it.
pub(super) fn load<S: NodeStore>(store: &S, h: &Hash) -> Result<Option<Node>, SmtError> {
    if *h == EMPTY {
        return Ok(None);
    }
    store.get_node(h).map(Some).ok_or(SmtError::MissingNode(*h))
}
