//! Blocks and certificates: the genesis state, the atomic per-block commit, execution
//! certificates, and reading blocks, roots, certificates, receipts and the transaction index.

use super::layout::{
    cert_key, cf, height_key, receipt_key, CERT_CHECKPOINT, CERT_COMMIT, META_HEAD,
};
use super::{Head, Store, Write};
use crate::error::StorageError;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{
    codec_struct, merkle, Block, Bytes, CheckpointCertificate, CommitCertificate, ExecRoots, Hash,
};
use rocksdb::WriteBatch;

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}
codec_struct!(TxLocation { height, index });

/// Everything one committed and executed block changes; written atomically.
#[derive(Debug, Clone, Copy)]
pub struct BlockCommit<'a> {
    /// The block.
    pub block: &'a Block,
    /// The quorum's commit certificate for it.
    pub certificate: &'a CommitCertificate,
    /// One receipt per transaction, in block order.
    pub receipts: &'a [Bytes],
    /// State key-value changes.
    pub state_writes: &'a [Write],
    /// State-tree node changes.
    pub tree_writes: &'a [Write],
    /// The receipts' Merkle leaves, one per transaction, in block order.
    pub receipt_leaves: &'a [Hash],
    /// State root after the block and the Merkle root over `receipt_leaves`.
    pub roots: ExecRoots,
}

impl Store {
    /// Writes the genesis state (height 0) in one synced batch. Fails if a head already exists.
    pub fn commit_genesis(
        &self,
        state_writes: &[Write],
        tree_writes: &[Write],
        state_root: Hash,
    ) -> Result<(), StorageError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(head) = self.head()? {
            return Err(StorageError::NotNextBlock {
                height: 0,
                parent: Hash::ZERO,
                head_height: head.height,
                head_hash: head.block_hash,
            });
        }
        let mut batch = WriteBatch::default();
        self.put_writes(&mut batch, cf::STATE, state_writes);
        self.put_writes(&mut batch, cf::TREE, tree_writes);
        let head = Head {
            height: 0,
            block_hash: Hash::ZERO,
            state_root,
            receipts_root: merkle::root(&[]),
        };
        batch.put_cf(self.handle(cf::META), META_HEAD, head.to_bytes());
        batch.put_cf(
            self.handle(cf::ROOTS),
            height_key(0),
            head.roots().to_bytes(),
        );
        self.write(batch, true)
    }

    /// Writes everything one block changes (block, commit certificate, receipts, transaction
    /// index, state and tree changes, state root, new head) in ONE synced atomic batch. The
    /// block must extend the current head.
    pub fn commit_block(&self, c: &BlockCommit<'_>) -> Result<(), StorageError> {
        self.check_commit(c)?;
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self
            .head()?
            .ok_or_else(|| StorageError::NoGenesis(self.path.clone()))?;
        let height = c.block.height();
        if height != head.height + 1 || c.block.header.parent != head.block_hash {
            return Err(StorageError::NotNextBlock {
                height,
                parent: c.block.header.parent,
                head_height: head.height,
                head_hash: head.block_hash,
            });
        }
        self.write(self.commit_batch(c), true)
    }

    /// Refuses a commit that is inconsistent in itself or belongs to another chain.
    fn check_commit(&self, c: &BlockCommit<'_>) -> Result<(), StorageError> {
        let height = c.block.height();
        let inconsistent = |reason| Err(StorageError::InconsistentCommit { height, reason });
        if c.certificate.height != height || c.certificate.block_hash != c.block.hash() {
            return inconsistent("certificate is for another block");
        }
        if c.receipts.len() != c.block.txs.len() {
            return inconsistent("receipt count differs from transaction count");
        }
        if c.receipt_leaves.len() != c.receipts.len()
            || merkle::root(c.receipt_leaves) != c.roots.receipts_root
        {
            return inconsistent("receipt leaves do not match the receipts root");
        }
        if c.block.header.chain_id != self.identity.chain_id {
            return inconsistent("block is for another chain");
        }
        if !c.block.payload_matches() {
            return inconsistent("transactions do not match the header's payload digest");
        }
        Ok(())
    }

    /// The one batch that writes everything `c` changes, the new head included.
    fn commit_batch(&self, c: &BlockCommit<'_>) -> WriteBatch {
        let block_hash = c.block.hash();
        let height = c.block.height();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.handle(cf::BLOCKS),
            height_key(height),
            c.block.to_bytes(),
        );
        batch.put_cf(
            self.handle(cf::BLOCK_HASHES),
            block_hash.0,
            height_key(height),
        );
        batch.put_cf(
            self.handle(cf::CERTIFICATES),
            cert_key(height, CERT_COMMIT),
            c.certificate.to_bytes(),
        );
        let receipts = self.handle(cf::RECEIPTS);
        let tx_index = self.handle(cf::TX_INDEX);
        for (i, (tx, receipt)) in c.block.txs.iter().zip(c.receipts).enumerate() {
            let index = u32::try_from(i).expect("block transaction count fits u32");
            batch.put_cf(receipts, receipt_key(height, index), &receipt.0);
            batch.put_cf(
                tx_index,
                lanes_types::tx_hash(tx).0,
                TxLocation { height, index }.to_bytes(),
            );
        }
        self.put_writes(&mut batch, cf::STATE, c.state_writes);
        self.put_writes(&mut batch, cf::TREE, c.tree_writes);
        batch.put_cf(
            self.handle(cf::ROOTS),
            height_key(height),
            c.roots.to_bytes(),
        );
        let leaves: Vec<u8> = c.receipt_leaves.iter().flat_map(|h| h.0).collect();
        batch.put_cf(self.handle(cf::RECEIPT_LEAVES), height_key(height), leaves);
        let new_head = Head {
            height,
            block_hash,
            state_root: c.roots.state_root,
            receipts_root: c.roots.receipts_root,
        };
        batch.put_cf(self.handle(cf::META), META_HEAD, new_head.to_bytes());
        batch
    }

    /// Stores the execution certificate of an already committed block. Refuses a certificate
    /// for another block, and reports [`StorageError::Divergence`] when the quorum's roots are
    /// not the ones this replica computed. Not synced: a lost certificate is fetched again from
    /// peers, unlike the block itself.
    pub fn put_checkpoint_certificate(
        &self,
        cert: &CheckpointCertificate,
    ) -> Result<(), StorageError> {
        let Some(block_hash) = self.block(cert.height)?.map(|b| b.hash()) else {
            return Err(StorageError::InconsistentCommit {
                height: cert.height,
                reason: "checkpoint certificate for a block not stored",
            });
        };
        if block_hash != cert.block_hash {
            return Err(StorageError::InconsistentCommit {
                height: cert.height,
                reason: "checkpoint certificate for another block",
            });
        }
        if let Some(ours) = self.roots(cert.height)? {
            if ours != cert.roots() {
                return Err(StorageError::Divergence {
                    height: cert.height,
                    ours: ours.to_string(),
                    certified: cert.roots().to_string(),
                });
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.handle(cf::CERTIFICATES),
            cert_key(cert.height, CERT_CHECKPOINT),
            cert.to_bytes(),
        );
        self.write(batch, false)
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StorageError> {
        self.get_decoded(cf::BLOCKS, &height_key(height), || {
            format!("block {height}")
        })
    }

    /// The height of the block with this hash.
    pub fn block_height(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.get_decoded(cf::BLOCK_HASHES, &hash.0, || {
            format!("height of block {hash}")
        })
    }

    /// Up to `limit` consecutive blocks starting at `from`.
    pub fn blocks(&self, from: u64, limit: usize) -> Result<Vec<Block>, StorageError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.handle(cf::BLOCKS),
            rocksdb::IteratorMode::From(&height_key(from), rocksdb::Direction::Forward),
        );
        for item in iter.take(limit) {
            let (key, value) = item.map_err(self.rocks("iterate blocks"))?;
            let block = Block::from_bytes(&value).map_err(|source| StorageError::Corrupt {
                path: self.path.clone(),
                what: format!("block at key {}", hex_key(&key)),
                source,
            })?;
            out.push(block);
        }
        Ok(out)
    }

    /// The roots this replica computed for the block at `height` (0: genesis state).
    pub fn roots(&self, height: u64) -> Result<Option<ExecRoots>, StorageError> {
        self.get_decoded(cf::ROOTS, &height_key(height), || format!("roots {height}"))
    }

    /// The state root this replica computed after the block at `height` (0: genesis state).
    pub fn state_root(&self, height: u64) -> Result<Option<Hash>, StorageError> {
        Ok(self.roots(height)?.map(|r| r.state_root))
    }

    /// The receipt leaves of the block at `height`, in block order, as this replica computed
    /// them.
    pub fn receipt_leaves(&self, height: u64) -> Result<Option<Vec<Hash>>, StorageError> {
        let Some(bytes) = self.get(cf::RECEIPT_LEAVES, &height_key(height))? else {
            return Ok(None);
        };
        if bytes.len() % 32 != 0 {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                what: format!("receipt leaves {height}"),
                source: lanes_types::DecodeError::Invalid("not a multiple of 32 bytes"),
            });
        }
        let leaves = bytes
            .chunks_exact(32)
            .map(|c| Hash(c.try_into().expect("32 bytes")))
            .collect();
        Ok(Some(leaves))
    }

    /// The commit certificate of the block at `height`.
    pub fn commit_certificate(
        &self,
        height: u64,
    ) -> Result<Option<CommitCertificate>, StorageError> {
        self.get_decoded(cf::CERTIFICATES, &cert_key(height, CERT_COMMIT), || {
            format!("commit certificate {height}")
        })
    }

    /// The execution (checkpoint) certificate of the block at `height`, once a quorum signed it.
    pub fn checkpoint_certificate(
        &self,
        height: u64,
    ) -> Result<Option<CheckpointCertificate>, StorageError> {
        self.get_decoded(cf::CERTIFICATES, &cert_key(height, CERT_CHECKPOINT), || {
            format!("checkpoint certificate {height}")
        })
    }

    /// The execution certificate of the highest height that has one.
    pub fn latest_checkpoint_certificate(
        &self,
    ) -> Result<Option<CheckpointCertificate>, StorageError> {
        let iter = self
            .db
            .iterator_cf(self.handle(cf::CERTIFICATES), rocksdb::IteratorMode::End);
        for item in iter {
            let (key, _) = item.map_err(self.rocks("read certificates"))?;
            if key.len() == 9 && key[8] == CERT_CHECKPOINT {
                let mut h = [0u8; 8];
                h.copy_from_slice(&key[..8]);
                return self.checkpoint_certificate(u64::from_be_bytes(h));
            }
        }
        Ok(None)
    }

    /// The receipt of the transaction at (`height`, `index`).
    pub fn receipt(&self, height: u64, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::RECEIPTS, &receipt_key(height, index))
    }

    /// Where the transaction with this hash was committed.
    pub fn tx_location(&self, tx_hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        self.get_decoded(cf::TX_INDEX, &tx_hash.0, || {
            format!("location of tx {tx_hash}")
        })
    }
}

/// A raw key in hex, for naming a corrupt record.
fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}
