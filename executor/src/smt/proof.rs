//! Inclusion and exclusion proofs: [`prove`] walks from the root to where the key's path
//! ends; [`verify_proof`] recomputes the root from the proof alone.

use super::node::{
    bit, internal_hash, key_hash, leaf_hash, load, value_hash, Node, NodeStore, SmtError, EMPTY,
};
use crate::state::{Key, Value};
use lanes_types::{codec_struct, Hash};

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
    let mut siblings = Vec::new();
    let mut cur = root;
    loop {
        match load(store, &cur)? {
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
