//! Store behaviour: identity checks, ordering, read-only access, clear errors on bad databases.

mod common;

use lanes_storage::{cf, BlockCommit, ChainIdentity, StorageError, Store, SCHEMA_VERSION};
use lanes_types::{CheckpointCertificate, Hash};

fn raw_db(dir: &std::path::Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(&opts, dir, cf::ALL).unwrap()
}

#[test]
fn blocks_commit_in_order_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..12 {
        common::commit_next(&store);
    }
    assert_eq!(common::assert_complete_prefix(&store), 12);
    let range = store.blocks(5, 3).unwrap();
    assert_eq!(
        range.iter().map(|b| b.height()).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    drop(store);
    let reopened = Store::open(dir.path(), &common::identity()).unwrap();
    assert_eq!(common::assert_complete_prefix(&reopened), 12);
}

#[test]
fn a_block_that_does_not_extend_the_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    let head = store.head().unwrap().unwrap();
    for (height, parent) in [
        (3, head.block_hash),
        (2, Hash::digest(b"fork")),
        (1, Hash::ZERO),
    ] {
        let f = common::fixture(height, parent);
        let err = store
            .commit_block(&BlockCommit {
                block: &f.block,
                certificate: &f.cert,
                receipts: &f.receipts,
                state_writes: &f.state,
                tree_writes: &f.tree,
                state_root: f.root,
                consensus_position: None,
            })
            .unwrap_err();
        assert!(
            matches!(err, StorageError::NotNextBlock { head_height: 1, .. }),
            "{err}"
        );
    }
    let f = common::fixture(2, head.block_hash);
    let other = common::fixture(2, Hash::digest(b"x"));
    let err = store
        .commit_block(&BlockCommit {
            block: &f.block,
            certificate: &other.cert,
            receipts: &f.receipts,
            state_writes: &f.state,
            tree_writes: &f.tree,
            state_root: f.root,
            consensus_position: None,
        })
        .unwrap_err();
    assert!(
        matches!(err, StorageError::InconsistentCommit { .. }),
        "{err}"
    );
    assert_eq!(
        common::assert_complete_prefix(&store),
        1,
        "refused commits wrote nothing"
    );
}

#[test]
fn checkpoint_certificates_attach_only_to_their_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    let block_hash = store.block(1).unwrap().unwrap().hash();
    let cert = CheckpointCertificate {
        height: 1,
        block_hash,
        state_root: common::root(1),
        signatures: vec![],
    };
    store.put_checkpoint_certificate(&cert).unwrap();
    assert_eq!(store.checkpoint_certificate(1).unwrap(), Some(cert.clone()));
    let wrong = CheckpointCertificate {
        block_hash: Hash::digest(b"other"),
        ..cert.clone()
    };
    assert!(store.put_checkpoint_certificate(&wrong).is_err());
    let missing = CheckpointCertificate { height: 9, ..cert };
    assert!(store.put_checkpoint_certificate(&missing).is_err());
}

#[test]
fn another_chain_is_refused_with_both_names() {
    let dir = tempfile::tempdir().unwrap();
    drop(common::open_with_genesis(dir.path()));
    let other = ChainIdentity {
        chain_id: "other-chain".into(),
        genesis_hash: Hash::digest(b"g2"),
    };
    let err = Store::open(dir.path(), &other).unwrap_err();
    assert!(matches!(err, StorageError::WrongChain { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("storage-test") && msg.contains("other-chain"),
        "{msg}"
    );
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(common::open_with_genesis(dir.path()));
    {
        let db = raw_db(dir.path());
        db.put_cf(
            db.cf_handle(cf::META).unwrap(),
            b"schema_version",
            99u32.to_be_bytes(),
        )
        .unwrap();
    }
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::WrongSchema {
                found: 99,
                expected: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("schema version 99"));
}

#[test]
fn unknown_column_families_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(common::open_with_genesis(dir.path()));
    {
        let mut db = raw_db(dir.path());
        db.create_cf("from_the_future", &rocksdb::Options::default())
            .unwrap();
    }
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(
        matches!(err, StorageError::UnknownColumnFamily { ref name, .. } if name == "from_the_future")
    );
}

#[test]
fn corrupt_records_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    drop(store);
    {
        let db = raw_db(dir.path());
        db.put_cf(
            db.cf_handle(cf::BLOCKS).unwrap(),
            1u64.to_be_bytes(),
            b"garbage",
        )
        .unwrap();
        db.put_cf(db.cf_handle(cf::META).unwrap(), b"head", b"short")
            .unwrap();
    }
    let store = Store::open(dir.path(), &common::identity()).unwrap();
    assert!(matches!(store.block(1), Err(StorageError::Corrupt { .. })));
    let err = store.head().unwrap_err();
    assert!(err.to_string().contains("corrupt head"), "{err}");
}

#[test]
fn damaged_database_files_give_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(common::open_with_genesis(dir.path()));
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-999999\n").unwrap();
    assert!(Store::open(dir.path(), &common::identity()).is_err());
    assert!(Store::open_read_only(dir.path()).is_err());
}

#[test]
fn read_only_open_sees_a_live_database_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    common::commit_next(&store);
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.identity(), &common::identity());
    assert_eq!(common::assert_complete_prefix(&reader), 2);
    assert!(matches!(
        reader.safety_put(&[(b"k", b"v")]),
        Err(StorageError::ReadOnly(_))
    ));
    // A second read-write open is refused by RocksDB's lock, with an error rather than a panic.
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(err.to_string().to_lowercase().contains("lock"), "{err}");
}

#[test]
fn read_only_open_of_a_non_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::NotALanesDatabase { .. }),
        "{err}"
    );
    let err = Store::open_read_only(&dir.path().join("missing")).unwrap_err();
    assert!(
        matches!(err, StorageError::NotALanesDatabase { .. }),
        "{err}"
    );
}

#[test]
fn safety_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    store
        .safety_put(&[(b"view", b"7"), (b"vote/1", b"abc")])
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), &common::identity()).unwrap();
    assert_eq!(
        store.safety_get(b"view").unwrap().as_deref(),
        Some(&b"7"[..])
    );
    assert_eq!(
        store.safety_get(b"vote/1").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(store.safety_get(b"none").unwrap(), None);
}
