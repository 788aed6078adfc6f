//! Pruning old blocks below a floor, oldest first, never the head.

use super::layout::{
    cert_key, cf, height_key, receipt_key, CERT_CHECKPOINT, CERT_COMMIT, META_FLOOR,
};
use super::Store;
use crate::error::StorageError;
use lanes_types::codec::Encode;
use rocksdb::WriteBatch;

impl Store {
    /// Lowest height whose block may still be stored: 1 unless blocks were pruned or the state
    /// was installed from a snapshot.
    pub fn block_floor(&self) -> Result<u64, StorageError> {
        Ok(self
            .get_decoded(cf::META, META_FLOOR, || "block floor".into())?
            .unwrap_or(1))
    }

    /// Deletes stored blocks below `below` (bodies, hash index, certificates, receipts, their
    /// leaves and transaction index), at most `max_blocks` of them per call, oldest first. Returns the new
    /// floor. Never deletes the head. Not synced: a pruning lost in a crash is redone.
    pub fn prune_blocks(&self, below: u64, max_blocks: u64) -> Result<u64, StorageError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.head()?.map_or(0, |h| h.height);
        let floor = self.block_floor()?;
        let to = below.min(head).min(floor.saturating_add(max_blocks));
        if to <= floor {
            return Ok(floor);
        }
        let mut batch = WriteBatch::default();
        for height in floor..to {
            if let Some(block) = self.block(height)? {
                batch.delete_cf(self.handle(cf::BLOCK_HASHES), block.hash().0);
                for tx in &block.txs {
                    batch.delete_cf(self.handle(cf::TX_INDEX), lanes_types::tx_hash(tx).0);
                }
            }
            batch.delete_cf(self.handle(cf::BLOCKS), height_key(height));
            batch.delete_cf(self.handle(cf::RECEIPT_LEAVES), height_key(height));
            for kind in [CERT_COMMIT, CERT_CHECKPOINT] {
                batch.delete_cf(self.handle(cf::CERTIFICATES), cert_key(height, kind));
            }
            batch.delete_range_cf(
                self.handle(cf::RECEIPTS),
                receipt_key(height, 0),
                receipt_key(height + 1, 0),
            );
        }
        batch.put_cf(self.handle(cf::META), META_FLOOR, to.to_bytes());
        self.write(batch, false)?;
        Ok(to)
    }
}
