//! The RocksDB-backed [`Store`]: the type and its shared read and write helpers here, and one
//! module per concern: `layout` (schema, families and keys), `open` (opening and identity
//! checks), `blocks` (the atomic per-block commit, certificates, block reads), `state` (state,
//! tree and snapshots), `safety` (consensus safety records, voting hold) and `prune`.

mod blocks;
mod layout;
mod open;
mod prune;
mod safety;
mod state;

pub use blocks::{BlockCommit, TxLocation};
pub use layout::{cf, SCHEMA_VERSION};
pub use open::ChainIdentity;
pub use state::StateInstall;

use crate::error::StorageError;
use lanes_types::codec::Decode;
use lanes_types::{codec_struct, Bytes, Hash};
use layout::META_HEAD;
use rocksdb::{WriteBatch, WriteOptions, DB};
use std::path::PathBuf;
use std::sync::Mutex;

/// The last block whose execution is on disk, with the state root it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Height of the last committed block (0: genesis state only).
    pub height: u64,
    /// Its hash ([`Hash::ZERO`] at height 0).
    pub block_hash: Hash,
    /// The state root after executing it.
    pub state_root: Hash,
    /// The Merkle root over its receipts (of no receipts at height 0).
    pub receipts_root: Hash,
}
codec_struct!(Head {
    height,
    block_hash,
    state_root,
    receipts_root
});

impl Head {
    /// The roots it was executed to.
    pub fn roots(&self) -> lanes_types::ExecRoots {
        lanes_types::ExecRoots {
            state_root: self.state_root,
            receipts_root: self.receipts_root,
        }
    }
}

/// A state or tree write: the key and the new value, or `None` to delete.
pub type Write = (Bytes, Option<Bytes>);

/// A raw key-value record.
pub type Record = (Vec<u8>, Vec<u8>);

/// The database of one validator (or a read-only view of it).
pub struct Store {
    db: DB,
    path: String,
    read_only: bool,
    identity: ChainIdentity,
    /// Serialises commits so that the head check and the write are one step.
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Store {
    /// The directory of this database.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// The chain this database belongs to.
    pub fn identity(&self) -> &ChainIdentity {
        &self.identity
    }

    /// Turns a RocksDB error into ours, naming this database and what we were doing.
    fn rocks(&self, context: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError + '_ {
        move |source| StorageError::Rocks {
            path: self.path.clone(),
            context,
            source,
        }
    }

    /// The raw value of `key` in `family`.
    fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let handle = self
            .db
            .cf_handle(family)
            .expect("every column family is opened");
        self.db.get_cf(handle, key).map_err(self.rocks("read"))
    }

    /// The decoded value of `key` in `family`; a value that does not decode is `Corrupt` and
    /// `what` names it.
    fn get_decoded<T: Decode>(
        &self,
        family: &str,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, StorageError> {
        match self.get(family, key)? {
            None => Ok(None),
            Some(bytes) => {
                T::from_bytes(&bytes)
                    .map(Some)
                    .map_err(|source| StorageError::Corrupt {
                        path: self.path.clone(),
                        what: what(),
                        source,
                    })
            }
        }
    }

    /// Writes `batch` atomically (synced if `sync`); refused on a read-only open.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly(self.path.clone()));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(self.rocks("write"))
    }

    /// The last executed block and its state root; `None` before genesis state is written.
    pub fn head(&self) -> Result<Option<Head>, StorageError> {
        self.get_decoded(cf::META, META_HEAD, || "head".into())
    }

    /// The handle of a column family (all are opened).
    fn handle(&self, family: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(family)
            .expect("every column family is opened")
    }

    /// Adds state or tree writes (puts and deletes) to `batch`.
    fn put_writes(&self, batch: &mut WriteBatch, family: &str, writes: &[Write]) {
        let handle = self.handle(family);
        for (key, value) in writes {
            match value {
                Some(v) => batch.put_cf(handle, &key.0, &v.0),
                None => batch.delete_cf(handle, &key.0),
            }
        }
    }
}
