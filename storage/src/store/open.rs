//! Opening a database: read-write (creating it and recording its chain identity), read-only
//! and as a secondary; the schema, identity and column family checks; RocksDB's options.

use super::layout::{cf, META_CHAIN, META_GENESIS, META_SCHEMA, SCHEMA_VERSION};
use super::Store;
use crate::error::StorageError;
use lanes_types::codec::Encode;
use lanes_types::Hash;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, Options,
    WriteBatch, DB, DEFAULT_COLUMN_FAMILY_NAME as DEFAULT,
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
    /// schema, if it holds data of another program, and if another process holds it open. A
    /// creation interrupted by a crash is completed (see `complete_creation` for why that is safe).
    pub fn open(path: &Path, identity: &ChainIdentity) -> Result<Store, StorageError> {
        let path_s = path.display().to_string();
        if let Some(existing) = check_column_families(path, &path_s)? {
            if cf::ALL
                .iter()
                .any(|name| !existing.iter().any(|e| e == name))
            {
                refuse_foreign_data(path, &path_s, &existing)?;
            }
        }
        let db = open_read_write(path, &path_s)?;
        let store = Store::wrap(db, path_s, false, identity.clone());
        match store.read_identity()? {
            Some(found) if found != *identity => Err(StorageError::WrongChain {
                path: store.path.clone(),
                found_chain: found.chain_id,
                found_genesis: found.genesis_hash.to_string(),
                expected_chain: identity.chain_id.clone(),
                expected_genesis: identity.genesis_hash.to_string(),
            }),
            Some(_) => Ok(store),
            None => {
                store.complete_creation()?;
                Ok(store)
            }
        }
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

    /// Records the chain identity in a database that has none: a new one, or one whose
    /// creation a crash interrupted. Refused if any column family holds data.
    ///
    /// Why creation is crash-safe: it is a sequence of steps, each atomic on disk. (1) RocksDB
    /// writes a MANIFEST and renames `CURRENT` into place; without `CURRENT` there is no
    /// database and the next open creates it afresh. (2) The open adds our column families one
    /// by one, one MANIFEST record each (a torn record is dropped on recovery). (3) The
    /// identity (schema version, chain id, genesis hash) is written in one synced batch, one
    /// WAL record. No data is written before (3): a [`Store`] exists only after it. So a kill
    /// leaves no database, or `default` plus some of our families, all empty, without identity,
    /// or a complete database. `open` completes the middle state by redoing (2) and (3), and a
    /// kill during that again leaves one of the three. Conversely, a database without identity
    /// is adopted only when every family, `default` included, is empty: checked here under
    /// RocksDB's lock, and before families are added by [`refuse_foreign_data`], read-only.
    fn complete_creation(&self) -> Result<(), StorageError> {
        let families = std::iter::once(DEFAULT).chain(cf::ALL.iter().copied());
        if let Some(family) = first_family_with_data(&self.db, families)
            .map_err(self.rocks("look for data in a database without identity"))?
        {
            return Err(foreign_data(&self.path, &family));
        }
        self.write_identity()
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

/// Opens read-write with every column family, creating the database and missing families.
fn open_read_write(path: &Path, path_s: &str) -> Result<DB, StorageError> {
    DB::open_cf_descriptors(&db_options(true), path, cf_descriptors()).map_err(|source| {
        if source.to_string().to_lowercase().contains("lock") {
            StorageError::Locked {
                path: path_s.to_string(),
                source,
            }
        } else {
            StorageError::Rocks {
                path: path_s.to_string(),
                context: "open",
                source,
            }
        }
    })
}

/// Before column families are added to an existing database that lacks some of ours: reads
/// it without writing anything (read-only, no lock) and refuses it if it holds data but no
/// schema version, so another program's database is never changed.
fn refuse_foreign_data(path: &Path, path_s: &str, existing: &[String]) -> Result<(), StorageError> {
    let rocks = |context| {
        move |source| StorageError::Rocks {
            path: path_s.to_string(),
            context,
            source,
        }
    };
    let db = DB::open_cf_for_read_only(&Options::default(), path, existing, false).map_err(
        rocks("inspect a database lacking some of our column families"),
    )?;
    if let Some(meta) = db.cf_handle(cf::META) {
        let schema = db.get_cf(meta, META_SCHEMA);
        if schema.map_err(rocks("read the schema version"))?.is_some() {
            return Ok(()); // ours; `open` checks the identity
        }
    }
    let families = existing.iter().map(String::as_str);
    match first_family_with_data(&db, families).map_err(rocks("look for data"))? {
        Some(family) => Err(foreign_data(path_s, &family)),
        None => Ok(()),
    }
}

/// The first of `families` (those `db` has open) that holds at least one record.
fn first_family_with_data<'a>(
    db: &DB,
    families: impl IntoIterator<Item = &'a str>,
) -> Result<Option<String>, rocksdb::Error> {
    for name in families {
        let Some(handle) = db.cf_handle(name) else {
            continue;
        };
        if let Some(record) = db.iterator_cf(handle, IteratorMode::Start).next() {
            record?;
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

/// The refusal of a database that holds data but no lanes identity.
fn foreign_data(path: &str, family: &str) -> StorageError {
    StorageError::NotALanesDatabase {
        path: path.to_string(),
        reason: format!(
            "a RocksDB database of another program: column family {family:?} holds data but \
             no lanes chain identity is recorded (lanes records it before anything else)"
        ),
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
        if name != DEFAULT && !cf::ALL.contains(&name.as_str()) {
            return Err(StorageError::UnknownColumnFamily {
                path: path_s.to_string(),
                name: name.clone(),
            });
        }
    }
    Ok(Some(existing))
}
