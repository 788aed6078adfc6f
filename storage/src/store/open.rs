//! Opening a database: read-write (creating it and recording its chain identity), read-only
//! and as a secondary; the schema, identity and column family checks; RocksDB's options.

use super::layout::{cf, META_CHAIN, META_GENESIS, META_SCHEMA, SCHEMA_VERSION};
use super::Store;
use crate::error::StorageError;
use lanes_types::codec::Encode;
use lanes_types::Hash;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch, DB,
};
use std::path::Path;
use std::sync::Mutex;

/// Which chain a database belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainIdentity {
    /// Chain id from genesis.
    pub chain_id: String,
    /// Hash of the genesis file.
    pub genesis_hash: Hash,
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
}

/// Database-wide options; `create`: create the database and its families if missing.
fn db_options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.create_missing_column_families(create);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_keep_log_file_num(4);
    opts.set_max_background_jobs(2);
    opts
}

/// One descriptor per column family, sharing one block cache; point-lookup families get
/// bloom filters.
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
