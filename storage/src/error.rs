//! Storage errors, each saying which database and what went wrong.

use lanes_types::{DecodeError, Hash};
use thiserror::Error;

/// What went wrong opening, reading or writing the database.
#[derive(Debug, Error)]
pub enum StorageError {
    /// RocksDB itself failed (I/O error, corruption, lock held by another process...).
    #[error("database {path}: {context}: {source}")]
    Rocks {
        /// Database directory.
        path: String,
        /// What we were doing.
        context: &'static str,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// The directory holds a database written for another chain.
    #[error(
        "database {path} belongs to chain {found_chain:?} (genesis {found_genesis}), \
         but this node runs chain {expected_chain:?} (genesis {expected_genesis}); \
         point --home at the right directory or move the old data away"
    )]
    WrongChain {
        /// Database directory.
        path: String,
        /// Chain recorded in the database.
        found_chain: String,
        /// Genesis hash recorded in the database (hex).
        found_genesis: String,
        /// Chain this node was started for.
        expected_chain: String,
        /// Genesis hash this node was started for (hex).
        expected_genesis: String,
    },
    /// The database was written by an incompatible version of lanes.
    #[error(
        "database {path} has schema version {found}; this build of lanes reads schema version \
         {expected}: start this validator on an empty data directory (it fetches the chain from \
         its peers), or start a new local network with `lanes localnet --reset`"
    )]
    WrongSchema {
        /// Database directory.
        path: String,
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        expected: u32,
    },
    /// A column family this build does not know: written by a newer version.
    #[error("database {path} has unknown column family {name:?}: written by a newer lanes?")]
    UnknownColumnFamily {
        /// Database directory.
        path: String,
        /// The unknown family.
        name: String,
    },
    /// The directory is not a lanes database (read-only opens never create one).
    #[error("{path} is not a lanes database: {reason}")]
    NotALanesDatabase {
        /// Directory given.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// A stored record does not decode: the database is corrupt.
    #[error("database {path}: corrupt {what}: {source}")]
    Corrupt {
        /// Database directory.
        path: String,
        /// Which record.
        what: String,
        /// Decoding error.
        source: DecodeError,
    },
    /// A block that does not extend the current head.
    #[error("cannot commit block {height} (parent {parent}): head is {head_height} ({head_hash})")]
    NotNextBlock {
        /// Height of the rejected block.
        height: u64,
        /// Its parent hash.
        parent: Hash,
        /// Current head height.
        head_height: u64,
        /// Current head hash.
        head_hash: Hash,
    },
    /// The commit's parts do not belong together (certificate for another block, etc.).
    #[error("inconsistent commit for block {height}: {reason}")]
    InconsistentCommit {
        /// Height of the rejected block.
        height: u64,
        /// What does not match.
        reason: &'static str,
    },
    /// Another process (probably a running node) holds the database's lock.
    #[error(
        "database {path} is in use by another process (a running node?); tools can read it \
         with `lanes db status {path}`: {source}"
    )]
    Locked {
        /// Database directory.
        path: String,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A block was committed before the genesis state was written.
    #[error("database {0} has no genesis state yet: commit genesis first")]
    NoGenesis(String),
    /// A quorum certified a state root that differs from the one this replica computed.
    #[error(
        "divergence at height {height}: this replica computed state root {ours}, the quorum \
         certified {certified}"
    )]
    Divergence {
        /// Height of the block.
        height: u64,
        /// Root computed here (hex).
        ours: String,
        /// Root in the certificate (hex).
        certified: String,
    },
    /// A state snapshot that would not move the head forward: installing it would roll the
    /// replica back below heights it may already have voted on.
    #[error(
        "refusing to install the state snapshot of height {height}: the stored head is at \
         {head}, and a snapshot must be above it (or at it, with the head's block and another \
         root, to repair a divergence)"
    )]
    StaleSnapshot {
        /// Height of the refused snapshot's certificate.
        height: u64,
        /// The stored head's height.
        head: u64,
    },
    /// A write on a store opened read-only.
    #[error("database {0} is open read-only")]
    ReadOnly(String),
}
