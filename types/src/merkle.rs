//! A binary Merkle tree over an ordered list (RFC 6962's Merkle Tree Hash, with its domain
//! separation of leaves and inner nodes), and inclusion proofs a light client can check
//! against the root alone. The execution certificate signs such a root over a block's receipts.
//!
//! For `n` leaves: the root of no leaves is SHA-256 of nothing; of one leaf `d` it is
//! `H(0x00 || d)`; of `n > 1` leaves it is `H(0x01 || root(first k) || root(rest))` with `k` the
//! largest power of two below `n`. A proof of leaf `i` lists the sibling roots from the leaf up.

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::hash::Hash;
use sha2::{Digest, Sha256};

/// Prefix of a leaf's hash input.
const LEAF: u8 = 0;
/// Prefix of an inner node's hash input.
const NODE: u8 = 1;
/// Most siblings in a proof: a tree of at most 2^64 leaves is at most 64 levels deep.
pub const MAX_PROOF_DEPTH: usize = 64;

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The hash of an inner node over its two children.
fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root over leaf hashes (see the module documentation).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::digest(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// An inclusion proof: leaf `index` of a tree of `leaves` leaves, with the sibling roots
/// from the leaf's level up. It binds the leaf to the root; what the leaf is (a receipt
/// naming its transaction) must be in the leaf itself, as the index and size are only the
/// proof's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Position of the leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaves: u64,
    /// Sibling roots, bottom up.
    pub siblings: Vec<Hash>,
}

impl Encode for Proof {
    fn encode(&self, out: &mut Vec<u8>) {
        self.index.encode(out);
        self.leaves.encode(out);
        self.siblings.encode(out);
    }
}

impl Decode for Proof {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = u64::decode(r)?;
        let leaves = u64::decode(r)?;
        let siblings = Vec::<Hash>::decode(r)?;
        if siblings.len() > MAX_PROOF_DEPTH {
            return Err(DecodeError::Invalid("a Merkle proof deeper than 64 levels"));
        }
        Ok(Proof {
            index,
            leaves,
            siblings,
        })
    }
}

/// The proof of leaf `index` among `leaves`, or `None` if there is no such leaf.
pub fn prove(leaves: &[Hash], index: usize) -> Option<Proof> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    collect(leaves, index, &mut siblings);
    Some(Proof {
        index: index as u64,
        leaves: leaves.len() as u64,
        siblings,
    })
}

/// Pushes the siblings of leaf `index` in `leaves`, bottom up.
fn collect(leaves: &[Hash], index: usize, siblings: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        collect(&leaves[..k], index, siblings);
        siblings.push(root(&leaves[k..]));
    } else {
        collect(&leaves[k..], index - k, siblings);
        siblings.push(root(&leaves[..k]));
    }
}

impl Proof {
    /// The root this proof leads to from `leaf` (the leaf's hash), or `None` if the proof's
    /// shape does not fit its index and leaf count (RFC 9162's verification algorithm).
    pub fn root_from(&self, leaf: Hash) -> Option<Hash> {
        if self.index >= self.leaves || self.siblings.len() > MAX_PROOF_DEPTH {
            return None;
        }
        let (mut f, mut l) = (self.index, self.leaves - 1);
        let mut hash = leaf;
        for sibling in &self.siblings {
            if l == 0 {
                return None;
            }
            if f & 1 == 1 || f == l {
                hash = node_hash(sibling, &hash);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    l >>= 1;
                }
            } else {
                hash = node_hash(&hash, sibling);
            }
            f >>= 1;
            l >>= 1;
        }
        (l == 0).then_some(hash)
    }

    /// Whether this proof shows `leaf` (the leaf's hash) under `root`.
    pub fn verify(&self, leaf: Hash, root: &Hash) -> bool {
        self.root_from(leaf).as_ref() == Some(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn small_trees_have_the_rfc_6962_shape() {
        let l = leaves(3);
        assert_eq!(root(&[]), Hash::digest(&[]));
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_ne!(
            leaf_hash(b""),
            Hash::digest(&[]),
            "leaves are domain-separated"
        );
    }

    #[test]
    fn every_leaf_of_every_size_up_to_70_proves_and_nothing_else_does() {
        for n in 1..=70 {
            let l = leaves(n);
            let r = root(&l);
            for (i, leaf) in l.iter().enumerate() {
                let proof = prove(&l, i).expect("a leaf");
                assert!(proof.verify(*leaf, &r), "n {n} leaf {i}");
                let other = leaf_hash(b"another");
                assert!(!proof.verify(other, &r), "n {n} leaf {i}: another leaf");
                let mut moved = proof.clone();
                moved.index = (moved.index + 1) % n as u64;
                assert!(n == 1 || !moved.verify(*leaf, &r), "n {n} leaf {i}: index");
                if let Some(first) = proof.siblings.first() {
                    let mut bent = proof.clone();
                    bent.siblings[0] = leaf_hash(&first.0);
                    assert!(!bent.verify(*leaf, &r), "n {n} leaf {i}: sibling");
                    let mut short = proof.clone();
                    short.siblings.pop();
                    assert!(!short.verify(*leaf, &r), "n {n} leaf {i}: short");
                }
            }
            assert!(prove(&l, n).is_none());
        }
    }

    #[test]
    fn a_proof_round_trips_and_a_deep_one_is_refused() {
        let l = leaves(9);
        let proof = prove(&l, 8).expect("a leaf");
        assert_eq!(Proof::from_bytes(&proof.to_bytes()), Ok(proof));
        let deep = Proof {
            index: 0,
            leaves: u64::MAX,
            siblings: vec![Hash::ZERO; MAX_PROOF_DEPTH + 1],
        };
        assert!(Proof::from_bytes(&deep.to_bytes()).is_err());
        assert_eq!(deep.root_from(Hash::ZERO), None);
    }
}
