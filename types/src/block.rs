//! Blocks and block headers. A block's payload is a list of opaque transactions: ordering does
//! not need to know what a transaction means.

use crate::codec::{Bytes, Encode};
use crate::codec_struct;
use crate::hash::Hash;

/// The header that consensus orders and that the block hash commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// The chain this block belongs to (from genesis).
    pub chain_id: String,
    /// 1 for the first block after genesis.
    pub height: u64,
    /// Hash of the block at `height - 1` ([`Hash::ZERO`] for height 1).
    pub parent: Hash,
    /// PBFT view in which the block was proposed.
    pub view: u64,
    /// Index of the proposing validator in the validator set.
    pub proposer: u32,
    /// Proposer's wall clock in milliseconds since the Unix epoch (informational, never used by
    /// execution).
    pub timestamp_ms: u64,
    /// [`payload_digest`] of the transactions.
    pub payload_digest: Hash,
}
codec_struct!(BlockHeader {
    chain_id,
    height,
    parent,
    view,
    proposer,
    timestamp_ms,
    payload_digest
});

impl BlockHeader {
    /// The block hash: a tagged SHA-256 of the canonical header encoding.
    pub fn hash(&self) -> Hash {
        Hash::tagged("lanes/block", &self.to_bytes())
    }
}

/// A header and its transactions, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The ordered header.
    pub header: BlockHeader,
    /// Encoded transactions, in execution order.
    pub txs: Vec<Bytes>,
}
codec_struct!(Block { header, txs });

/// The hash that identifies a transaction: a tagged SHA-256 of its encoded bytes.
pub fn tx_hash(raw: &[u8]) -> Hash {
    Hash::tagged("lanes/tx", raw)
}

/// The digest of an ordered list of transactions, committed to by the header.
pub fn payload_digest(txs: &[Bytes]) -> Hash {
    let mut hashes = Vec::with_capacity(txs.len() * 32 + 4);
    hashes.extend_from_slice(&(txs.len() as u64).to_be_bytes());
    for tx in txs {
        hashes.extend_from_slice(&tx_hash(tx).0);
    }
    Hash::tagged("lanes/payload", &hashes)
}

impl Block {
    /// The block hash (the header's hash).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The height of the block.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Whether the header's payload digest matches the transactions carried.
    pub fn payload_matches(&self) -> bool {
        payload_digest(&self.txs) == self.header.payload_digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decode;

    fn block() -> Block {
        let txs = vec![Bytes(vec![1, 2, 3]), Bytes(vec![4])];
        Block {
            header: BlockHeader {
                chain_id: "test".into(),
                height: 1,
                parent: Hash::ZERO,
                view: 0,
                proposer: 0,
                timestamp_ms: 5,
                payload_digest: payload_digest(&txs),
            },
            txs,
        }
    }

    #[test]
    fn payload_digest_binds_order_and_content() {
        let b = block();
        assert!(b.payload_matches());
        let mut swapped = b.clone();
        swapped.txs.reverse();
        assert!(!swapped.payload_matches());
        let mut split = b.clone();
        split.txs = vec![Bytes(vec![1, 2]), Bytes(vec![3, 4])];
        assert!(!split.payload_matches());
    }

    #[test]
    fn block_round_trips_and_hash_covers_header() {
        let b = block();
        assert_eq!(Block::from_bytes(&b.to_bytes()).unwrap(), b);
        let mut other = b.clone();
        other.header.view = 1;
        assert_ne!(other.hash(), b.hash());
    }
}
