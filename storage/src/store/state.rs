//! The current state and state tree: reads, a consistent snapshot to serve (state transfer),
//! and installing a verified snapshot in place of the state.

use super::layout::{cert_key, cf, height_key, CERT_CHECKPOINT, META_FLOOR, META_HEAD};
use super::{Head, Record, Store, Write};
use crate::error::StorageError;
use lanes_types::codec::{Decode, Encode};
use lanes_types::CheckpointCertificate;
use rocksdb::WriteBatch;

/// A verified state snapshot to install in place of the current state (state transfer).
#[derive(Debug, Clone, Copy)]
pub struct StateInstall<'a> {
    /// The execution certificate of the snapshot's height; its block and root become the head.
    pub certificate: &'a CheckpointCertificate,
    /// Every state entry (key, value).
    pub state: &'a [Record],
    /// Every state-tree node of the certified root.
    pub tree: &'a [Write],
}

impl Store {
    /// The current value of a state key.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::STATE, key)
    }

    /// A state-tree node.
    pub fn tree_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::TREE, key)
    }

    /// Runs `f` over a consistent snapshot of the head and every state entry in key order
    /// (for serving state transfer while blocks keep committing).
    pub fn with_state_snapshot<R>(
        &self,
        f: impl FnOnce(Head, &mut dyn Iterator<Item = Result<Record, StorageError>>) -> R,
    ) -> Result<R, StorageError> {
        let snapshot = self.db.snapshot();
        let head = snapshot
            .get_cf(self.handle(cf::META), META_HEAD)
            .map_err(self.rocks("read head"))?
            .ok_or_else(|| StorageError::NoGenesis(self.path.clone()))?;
        let head = Head::from_bytes(&head).map_err(|source| StorageError::Corrupt {
            path: self.path.clone(),
            what: "head".into(),
            source,
        })?;
        let mut entries = snapshot
            .iterator_cf(self.handle(cf::STATE), rocksdb::IteratorMode::Start)
            .map(|item| {
                item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(self.rocks("read state snapshot"))
            });
        Ok(f(head, &mut entries))
    }

    /// Replaces the whole state and state tree with a verified snapshot in one synced write: the
    /// certificate's block and root become the head, its height the block floor (blocks below
    /// are not stored). The caller has checked the certificate's quorum and that `tree` hashes
    /// to its root. Refuses ([`StorageError::StaleSnapshot`]) a certificate below the stored
    /// head, which would roll the node back to heights it may have voted on, and one at the
    /// head unless it repairs a diverged state (same block, other roots).
    pub fn install_state(&self, s: &StateInstall<'_>) -> Result<(), StorageError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cert = s.certificate;
        if let Some(head) = self.head()? {
            let repair = cert.height == head.height
                && cert.block_hash == head.block_hash
                && cert.roots() != head.roots();
            if cert.height <= head.height && !repair {
                return Err(StorageError::StaleSnapshot {
                    height: cert.height,
                    head: head.height,
                });
            }
        }
        let mut batch = WriteBatch::default();
        for family in [cf::STATE, cf::TREE] {
            let handle = self.handle(family);
            for item in self.db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (key, _) = item.map_err(self.rocks("clear state"))?;
                batch.delete_cf(handle, key);
            }
        }
        let state = self.handle(cf::STATE);
        for (k, v) in s.state {
            batch.put_cf(state, k, v);
        }
        self.put_writes(&mut batch, cf::TREE, s.tree);
        batch.put_cf(
            self.handle(cf::CERTIFICATES),
            cert_key(cert.height, CERT_CHECKPOINT),
            cert.to_bytes(),
        );
        batch.put_cf(
            self.handle(cf::ROOTS),
            height_key(cert.height),
            cert.roots().to_bytes(),
        );
        // Our own receipt leaves at the snapshot's height (a repaired divergence) are not the
        // certified ones: they go, and with the block floor above them no receipt at or below
        // the snapshot's height is served as certified.
        batch.delete_cf(self.handle(cf::RECEIPT_LEAVES), height_key(cert.height));
        let meta = self.handle(cf::META);
        let head = Head {
            height: cert.height,
            block_hash: cert.block_hash,
            state_root: cert.state_root,
            receipts_root: cert.receipts_root,
        };
        batch.put_cf(meta, META_HEAD, head.to_bytes());
        batch.put_cf(meta, META_FLOOR, (cert.height + 1).to_bytes());
        self.write(batch, true)
    }
}
