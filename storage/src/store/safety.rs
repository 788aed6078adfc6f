//! Consensus safety records (synced on every write) and the voting hold kept in `meta`.

use super::layout::{cf, META_VOTING_HOLD};
use super::{Record, Store};
use crate::error::StorageError;
use lanes_types::codec::Encode;
use rocksdb::WriteBatch;

impl Store {
    /// A consensus safety record.
    pub fn safety_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::SAFETY, key)
    }

    /// Durably stores consensus safety records (synced before returning): a vote may leave the
    /// node only after this returns.
    pub fn safety_put(&self, records: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        self.safety_write(records, &[])
    }

    /// Durably applies safety record changes in one synced batch: `puts`, then deletion of every
    /// key in each half-open range `[from, to)`.
    pub fn safety_write(
        &self,
        puts: &[(&[u8], &[u8])],
        delete_ranges: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), StorageError> {
        let handle = self.handle(cf::SAFETY);
        let mut batch = WriteBatch::default();
        for (k, v) in puts {
            batch.put_cf(handle, k, v);
        }
        for (from, to) in delete_ranges {
            batch.delete_range_cf(handle, from, to);
        }
        self.write(batch, true)
    }

    /// Every consensus safety record, in key order (read once at start-up).
    pub fn safety_records(&self) -> Result<Vec<Record>, StorageError> {
        self.db
            .iterator_cf(self.handle(cf::SAFETY), rocksdb::IteratorMode::Start)
            .map(|item| {
                item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(self.rocks("read safety records"))
            })
            .collect()
    }

    /// The height this validator must execute before it votes again, if it is holding its
    /// votes (it started without its safety state; `u64::MAX`: not known yet).
    pub fn voting_hold(&self) -> Result<Option<u64>, StorageError> {
        self.get_decoded(cf::META, META_VOTING_HOLD, || "voting hold".into())
    }

    /// Sets (`Some`) or lifts (`None`) the voting hold, durably (synced).
    pub fn set_voting_hold(&self, hold: Option<u64>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let meta = self.handle(cf::META);
        match hold {
            Some(h) => batch.put_cf(meta, META_VOTING_HOLD, h.to_bytes()),
            None => batch.delete_cf(meta, META_VOTING_HOLD),
        }
        self.write(batch, true)
    }
}
