//! lanes-storage: everything a validator keeps on disk, in one RocksDB database.
//!
//! One column family per concern (see [`cf`]); integer keys are big-endian so iteration follows
//! height. Everything one committed block changes is written by [`Store::commit_block`] in ONE
//! atomic, synced write batch, so after a crash the database holds a prefix of complete blocks.
//! The storage layer does not interpret transactions, receipts or state values: they are bytes.

mod error;
mod store;

pub use error::StorageError;
pub use store::{
    cf, BlockCommit, ChainIdentity, Head, Record, StateInstall, Store, TxLocation, Write,
    SCHEMA_VERSION,
};
