//! The RocksDB-backed [`Store`].

use crate::error::StorageError;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{codec_struct, Block, Bytes, CheckpointCertificate, CommitCertificate, Hash};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The on-disk schema this build reads and writes. Bump it on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Column family names, one per concern.
pub mod cf {
    /// Schema version, chain identity, head, block floor, voting hold.
    pub const META: &str = "meta";
    /// height (u64 BE) -> encoded `Block`.
    pub const BLOCKS: &str = "blocks";
    /// block hash -> height (u64 BE).
    pub const BLOCK_HASHES: &str = "block_hashes";
    /// height (u64 BE) ++ kind (0 commit, 1 checkpoint) -> encoded certificate.
    pub const CERTIFICATES: &str = "certificates";
    /// Consensus safety state: keys and values chosen by the consensus driver.
    pub const SAFETY: &str = "safety";
    /// State key -> state value (latest version).
    pub const STATE: &str = "state";
    /// State-tree node key -> node bytes.
    pub const TREE: &str = "tree";
    /// Transaction hash -> height (u64 BE) ++ index (u32 BE).
    pub const TX_INDEX: &str = "tx_index";
    /// height (u64 BE) ++ index (u32 BE) -> receipt bytes.
    pub const RECEIPTS: &str = "receipts";
    /// height (u64 BE) -> the state root this replica computed after that block.
    pub const ROOTS: &str = "roots";
    /// Every column family, in the order they are opened.
    pub const ALL: &[&str] = &[
        META,
        BLOCKS,
        BLOCK_HASHES,
        CERTIFICATES,
        SAFETY,
        STATE,
        TREE,
        TX_INDEX,
        RECEIPTS,
        ROOTS,
    ];
}

const META_SCHEMA: &[u8] = b"schema_version";
const META_CHAIN: &[u8] = b"chain_id";
const META_GENESIS: &[u8] = b"genesis_hash";
const META_HEAD: &[u8] = b"head";
// `consensus_position` is no longer written or read. No node ever wrote it (only storage
// tests did); a database that holds it still opens and reads: an unknown meta key is ignored.
const META_FLOOR: &[u8] = b"block_floor";
const META_VOTING_HOLD: &[u8] = b"voting_hold";
const CERT_COMMIT: u8 = 0;
const CERT_CHECKPOINT: u8 = 1;

/// Which chain a database belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainIdentity {
    /// Chain id from genesis.
    pub chain_id: String,
    /// Hash of the genesis file.
    pub genesis_hash: Hash,
}

/// The last block whose execution is on disk, with the state root it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Height of the last committed block (0: genesis state only).
    pub height: u64,
    /// Its hash ([`Hash::ZERO`] at height 0).
    pub block_hash: Hash,
    /// The state root after executing it.
    pub state_root: Hash,
}
codec_struct!(Head {
    height,
    block_hash,
    state_root
});

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}
codec_struct!(TxLocation { height, index });

/// A state or tree write: the key and the new value, or `None` to delete.
pub type Write = (Bytes, Option<Bytes>);

/// A raw key-value record.
pub type Record = (Vec<u8>, Vec<u8>);

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
    /// State root after the block.
    pub state_root: Hash,
}

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

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn cert_key(height: u64, kind: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8] = kind;
    k
}

fn receipt_key(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

fn db_options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.create_missing_column_families(create);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_keep_log_file_num(4);
    opts.set_max_background_jobs(2);
    opts
}

fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    let cache = Cache::new_lru_cache(64 << 20);
    cf::ALL
        .iter()
        .map(|name| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if matches!(
                *name,
                cf::STATE | cf::TREE | cf::BLOCK_HASHES | cf::TX_INDEX
            ) {
                table.set_bloom_filter(10.0, false);
            }
            let mut opts = Options::default();
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, opts)
        })
        .collect()
}

impl Store {
    /// Opens (creating if needed) the read-write database of the chain `identity` at `path`.
    /// Fails with a message naming the mismatch if the database belongs to another chain or
    /// schema, and if another process holds it open.
    pub fn open(path: &Path, identity: &ChainIdentity) -> Result<Store, StorageError> {
        let path_s = path.display().to_string();
        let existing = check_column_families(path, &path_s)?;
        if existing
            .as_ref()
            .is_some_and(|cfs| !cfs.iter().any(|c| c == cf::META))
        {
            return Err(StorageError::NotALanesDatabase {
                path: path_s,
                reason: "a RocksDB database of another program (no meta column family)".into(),
            });
        }
        let db = DB::open_cf_descriptors(&db_options(true), path, cf_descriptors()).map_err(
            |source| {
                if source.to_string().to_lowercase().contains("lock") {
                    StorageError::Locked {
                        path: path_s.clone(),
                        source,
                    }
                } else {
                    StorageError::Rocks {
                        path: path_s.clone(),
                        context: "open",
                        source,
                    }
                }
            },
        )?;
        let store = Store::wrap(db, path_s, false, identity.clone());
        match store.read_identity()? {
            Some(found) => {
                if found != *identity {
                    return Err(StorageError::WrongChain {
                        path: store.path.clone(),
                        found_chain: found.chain_id,
                        found_genesis: found.genesis_hash.to_string(),
                        expected_chain: identity.chain_id.clone(),
                        expected_genesis: identity.genesis_hash.to_string(),
                    });
                }
            }
            // A new database, or one whose creation was interrupted before its identity was
            // written (our column families exist, nothing else does).
            None => store.write_identity()?,
        }
        Ok(store)
    }

    /// Opens an existing database read-only, without taking its lock: for tools that inspect a
    /// running node's data. It sees the data as of the moment it was opened.
    pub fn open_read_only(path: &Path) -> Result<Store, StorageError> {
        let path_s = Self::existing_database(path)?;
        let db =
            DB::open_cf_descriptors_read_only(&db_options(false), path, cf_descriptors(), false)
                .map_err(|source| StorageError::Rocks {
                    path: path_s.clone(),
                    context: "open read-only",
                    source,
                })?;
        Self::read_only_store(db, path_s)
    }

    /// Opens a secondary instance of a database another process has open read-write: it
    /// follows the primary through [`Store::catch_up`]. `secondary_dir` holds the secondary's
    /// own logs (an empty or previously used directory).
    pub fn open_secondary(path: &Path, secondary_dir: &Path) -> Result<Store, StorageError> {
        let path_s = Self::existing_database(path)?;
        let mut opts = db_options(false);
        opts.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(&opts, path, secondary_dir, cf_descriptors())
            .map_err(|source| StorageError::Rocks {
                path: path_s.clone(),
                context: "open as secondary",
                source,
            })?;
        Self::read_only_store(db, path_s)
    }

    /// Makes a secondary instance see the primary's latest writes.
    pub fn catch_up(&self) -> Result<(), StorageError> {
        self.db
            .try_catch_up_with_primary()
            .map_err(self.rocks("catch up with primary"))
    }

    fn existing_database(path: &Path) -> Result<String, StorageError> {
        let path_s = path.display().to_string();
        if !path.join("CURRENT").is_file() {
            return Err(StorageError::NotALanesDatabase {
                path: path_s,
                reason: "no RocksDB database in this directory".into(),
            });
        }
        check_column_families(path, &path_s)?;
        Ok(path_s)
    }

    fn wrap(db: DB, path: String, read_only: bool, identity: ChainIdentity) -> Store {
        Store {
            db,
            path,
            read_only,
            identity,
            commit_lock: Mutex::new(()),
        }
    }

    fn read_only_store(db: DB, path: String) -> Result<Store, StorageError> {
        let unknown = ChainIdentity {
            chain_id: String::new(),
            genesis_hash: Hash::ZERO,
        };
        let mut store = Store::wrap(db, path.clone(), true, unknown);
        store.identity = store
            .read_identity()?
            .ok_or(StorageError::NotALanesDatabase {
                path,
                reason: "no chain identity recorded".into(),
            })?;
        Ok(store)
    }

    /// The directory of this database.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// The chain this database belongs to.
    pub fn identity(&self) -> &ChainIdentity {
        &self.identity
    }

    fn rocks(&self, context: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError + '_ {
        move |source| StorageError::Rocks {
            path: self.path.clone(),
            context,
            source,
        }
    }

    fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let handle = self
            .db
            .cf_handle(family)
            .expect("every column family is opened");
        self.db.get_cf(handle, key).map_err(self.rocks("read"))
    }

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

    fn read_identity(&self) -> Result<Option<ChainIdentity>, StorageError> {
        let schema: Option<u32> =
            self.get_decoded(cf::META, META_SCHEMA, || "schema version".into())?;
        let Some(schema) = schema else {
            return Ok(None);
        };
        if schema != SCHEMA_VERSION {
            return Err(StorageError::WrongSchema {
                path: self.path.clone(),
                found: schema,
                expected: SCHEMA_VERSION,
            });
        }
        let chain_id: Option<String> =
            self.get_decoded(cf::META, META_CHAIN, || "chain id".into())?;
        let genesis: Option<Hash> =
            self.get_decoded(cf::META, META_GENESIS, || "genesis hash".into())?;
        match (chain_id, genesis) {
            (Some(chain_id), Some(genesis_hash)) => Ok(Some(ChainIdentity {
                chain_id,
                genesis_hash,
            })),
            _ => Err(StorageError::NotALanesDatabase {
                path: self.path.clone(),
                reason: "schema version present but chain identity missing".into(),
            }),
        }
    }

    fn write_identity(&self) -> Result<(), StorageError> {
        let meta = self.db.cf_handle(cf::META).expect("meta opened");
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_bytes());
        batch.put_cf(meta, META_CHAIN, self.identity.chain_id.to_bytes());
        batch.put_cf(meta, META_GENESIS, self.identity.genesis_hash.to_bytes());
        self.write(batch, true)
    }

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
        };
        batch.put_cf(self.handle(cf::META), META_HEAD, head.to_bytes());
        batch.put_cf(self.handle(cf::ROOTS), height_key(0), state_root.0);
        self.write(batch, true)
    }

    fn handle(&self, family: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(family)
            .expect("every column family is opened")
    }

    fn put_writes(&self, batch: &mut WriteBatch, family: &str, writes: &[Write]) {
        let handle = self.handle(family);
        for (key, value) in writes {
            match value {
                Some(v) => batch.put_cf(handle, &key.0, &v.0),
                None => batch.delete_cf(handle, &key.0),
            }
        }
    }

    /// Writes everything one block changes (block, commit certificate, receipts, transaction
    /// index, state and tree changes, new head) in ONE synced atomic batch. The block must extend the current head.
    pub fn commit_block(&self, c: &BlockCommit<'_>) -> Result<(), StorageError> {
        let block_hash = c.block.hash();
        let height = c.block.height();
        let inconsistent = |reason| StorageError::InconsistentCommit { height, reason };
        if c.certificate.height != height || c.certificate.block_hash != block_hash {
            return Err(inconsistent("certificate is for another block"));
        }
        if c.receipts.len() != c.block.txs.len() {
            return Err(inconsistent("receipt count differs from transaction count"));
        }
        if c.block.header.chain_id != self.identity.chain_id {
            return Err(inconsistent("block is for another chain"));
        }
        if !c.block.payload_matches() {
            return Err(inconsistent(
                "transactions do not match the header's payload digest",
            ));
        }
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self
            .head()?
            .ok_or_else(|| StorageError::NoGenesis(self.path.clone()))?;
        if height != head.height + 1 || c.block.header.parent != head.block_hash {
            return Err(StorageError::NotNextBlock {
                height,
                parent: c.block.header.parent,
                head_height: head.height,
                head_hash: head.block_hash,
            });
        }

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
        batch.put_cf(self.handle(cf::ROOTS), height_key(height), c.state_root.0);
        let meta = self.handle(cf::META);
        let new_head = Head {
            height,
            block_hash,
            state_root: c.state_root,
        };
        batch.put_cf(meta, META_HEAD, new_head.to_bytes());
        self.write(batch, true)
    }

    /// Stores the execution certificate of an already committed block. Refuses a certificate
    /// for another block, and reports [`StorageError::Divergence`] when the quorum's root is not
    /// the one this replica computed. Not synced: a lost certificate is fetched again from
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
        if let Some(ours) = self.state_root(cert.height)? {
            if ours != cert.state_root {
                return Err(StorageError::Divergence {
                    height: cert.height,
                    ours: ours.to_string(),
                    certified: cert.state_root.to_string(),
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

    /// The state root this replica computed after the block at `height` (0: genesis state).
    pub fn state_root(&self, height: u64) -> Result<Option<Hash>, StorageError> {
        self.get_decoded(cf::ROOTS, &height_key(height), || {
            format!("state root {height}")
        })
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

    /// The current value of a state key.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::STATE, key)
    }

    /// A state-tree node.
    pub fn tree_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(cf::TREE, key)
    }

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

    /// Lowest height whose block may still be stored: 1 unless blocks were pruned or the state
    /// was installed from a snapshot.
    pub fn block_floor(&self) -> Result<u64, StorageError> {
        Ok(self
            .get_decoded(cf::META, META_FLOOR, || "block floor".into())?
            .unwrap_or(1))
    }

    /// Deletes stored blocks below `below` (bodies, hash index, certificates, receipts and
    /// transaction index), at most `max_blocks` of them per call, oldest first. Returns the new
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
    /// head unless it repairs a diverged state (same block, another root).
    pub fn install_state(&self, s: &StateInstall<'_>) -> Result<(), StorageError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cert = s.certificate;
        if let Some(head) = self.head()? {
            let repair = cert.height == head.height
                && cert.block_hash == head.block_hash
                && cert.state_root != head.state_root;
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
            cert.state_root.0,
        );
        let meta = self.handle(cf::META);
        let head = Head {
            height: cert.height,
            block_hash: cert.block_hash,
            state_root: cert.state_root,
        };
        batch.put_cf(meta, META_HEAD, head.to_bytes());
        batch.put_cf(meta, META_FLOOR, (cert.height + 1).to_bytes());
        self.write(batch, true)
    }
}

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses databases with column families this build does not know (written by a newer
/// version). Returns the existing families, or `None` when there is no database yet.
fn check_column_families(path: &Path, path_s: &str) -> Result<Option<Vec<String>>, StorageError> {
    let Ok(existing) = DB::list_cf(&Options::default(), path) else {
        return Ok(None); // no database yet
    };
    for name in &existing {
        if name != "default" && !cf::ALL.contains(&name.as_str()) {
            return Err(StorageError::UnknownColumnFamily {
                path: path_s.to_string(),
                name: name.clone(),
            });
        }
    }
    Ok(Some(existing))
}
