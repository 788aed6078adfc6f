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
        let err = store.commit_block(&f.commit()).unwrap_err();
        assert!(
            matches!(err, StorageError::NotNextBlock { head_height: 1, .. }),
            "{err}"
        );
    }
    let f = common::fixture(2, head.block_hash);
    let other = common::fixture(2, Hash::digest(b"x"));
    let err = store
        .commit_block(&BlockCommit {
            certificate: &other.cert,
            ..f.commit()
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
        receipts_root: common::roots(1).receipts_root,
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

/// Earlier builds could write a `consensus_position` meta key with each block (only these tests
/// ever did); nothing reads it any more, and a database that holds it still opens and commits.
#[test]
fn a_database_with_the_retired_consensus_position_key_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    drop(store);
    {
        let db = raw_db(dir.path());
        db.put_cf(
            db.cf_handle(cf::META).unwrap(),
            b"consensus_position",
            1u64.to_be_bytes(),
        )
        .unwrap();
    }
    let store = Store::open(dir.path(), &common::identity()).unwrap();
    assert_eq!(common::assert_complete_prefix(&store), 1);
    common::commit_next(&store);
    assert_eq!(common::assert_complete_prefix(&store), 2);
    drop(store);
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(common::assert_complete_prefix(&reader), 2);
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
    // A second read-write open is refused by RocksDB's lock, with an error naming the cause.
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
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

#[test]
fn blocks_before_genesis_or_of_another_chain_or_with_foreign_txs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &common::identity()).unwrap();
    let f = common::fixture(1, Hash::ZERO);
    assert!(matches!(
        store.commit_block(&f.commit()),
        Err(StorageError::NoGenesis(_))
    ));
    drop(store);
    let store = common::open_with_genesis(dir.path());

    let mut other_chain = common::fixture(1, Hash::ZERO);
    other_chain.block.header.chain_id = "elsewhere".into();
    other_chain.cert.block_hash = other_chain.block.hash();
    let err = store.commit_block(&other_chain.commit()).unwrap_err();
    assert!(err.to_string().contains("another chain"), "{err}");

    let mut smuggled = common::fixture(1, Hash::ZERO);
    smuggled.block.txs[0] = lanes_types::Bytes(b"not in the digest".to_vec());
    let err = store.commit_block(&smuggled.commit()).unwrap_err();
    assert!(err.to_string().contains("payload digest"), "{err}");
    assert_eq!(store.head().unwrap().unwrap().height, 0);
}

#[test]
fn a_certified_root_that_differs_from_ours_is_a_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    assert_eq!(store.state_root(1).unwrap(), Some(common::root(1)));
    assert_eq!(store.state_root(0).unwrap(), Some(common::root(0)));
    let cert = CheckpointCertificate {
        height: 1,
        block_hash: store.block(1).unwrap().unwrap().hash(),
        state_root: Hash::digest(b"a root we never computed"),
        receipts_root: common::roots(1).receipts_root,
        signatures: vec![],
    };
    let err = store.put_checkpoint_certificate(&cert).unwrap_err();
    assert!(
        matches!(err, StorageError::Divergence { height: 1, .. }),
        "{err}"
    );
    assert_eq!(store.checkpoint_certificate(1).unwrap(), None);
    // The same state under other receipts is a divergence too.
    let cert = CheckpointCertificate {
        state_root: common::root(1),
        receipts_root: Hash::digest(b"receipts we never computed"),
        ..cert
    };
    let err = store.put_checkpoint_certificate(&cert).unwrap_err();
    assert!(
        matches!(err, StorageError::Divergence { height: 1, .. }),
        "{err}"
    );
    assert_eq!(store.checkpoint_certificate(1).unwrap(), None);
    assert_eq!(
        store
            .receipt_leaves(1)
            .unwrap()
            .map(|l| lanes_types::merkle::root(&l)),
        Some(common::roots(1).receipts_root),
        "the stored leaves are the committed receipts root's"
    );
}

#[test]
fn concurrent_commits_never_both_extend_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    let f = common::fixture(1, Hash::ZERO);
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.commit_block(&f.commit()).is_ok()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    assert_eq!(common::assert_complete_prefix(&store), 1);
}

#[test]
fn a_foreign_rocksdb_database_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = rocksdb::DB::open(&opts, dir.path()).unwrap();
        db.put(b"someone", b"else").unwrap();
    }
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(
        matches!(err, StorageError::NotALanesDatabase { .. }),
        "{err}"
    );
}

#[test]
fn a_secondary_open_follows_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    let secondary = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    common::commit_next(&store);
    let follower = Store::open_secondary(dir.path(), secondary.path()).unwrap();
    assert_eq!(follower.head().unwrap().unwrap().height, 1);
    common::commit_next(&store);
    common::commit_next(&store);
    follower.catch_up().unwrap();
    assert_eq!(common::assert_complete_prefix(&follower), 3);
}

#[test]
fn pruning_deletes_old_blocks_in_steps_and_keeps_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..10 {
        common::commit_next(&store);
    }
    let old = store.block(3).unwrap().unwrap();
    assert_eq!(store.block_floor().unwrap(), 1);
    assert_eq!(
        store.prune_blocks(8, 4).unwrap(),
        5,
        "at most 4 blocks per call"
    );
    assert_eq!(store.prune_blocks(8, 4).unwrap(), 8);
    assert_eq!(store.prune_blocks(100, 100).unwrap(), 10, "never the head");
    for h in 1..10 {
        assert!(store.block(h).unwrap().is_none(), "block {h} pruned");
        assert!(store.commit_certificate(h).unwrap().is_none());
        assert!(store.receipt(h, 0).unwrap().is_none());
    }
    assert!(store.block_height(&old.hash()).unwrap().is_none());
    assert!(store
        .tx_location(&lanes_types::tx_hash(&old.txs[0]))
        .unwrap()
        .is_none());
    assert!(store.block(10).unwrap().is_some());
    // The next block still commits on top, and the floor survives a reopen.
    common::commit_next(&store);
    drop(store);
    let store = Store::open(dir.path(), &common::identity()).unwrap();
    assert_eq!(store.block_floor().unwrap(), 10);
    assert_eq!(store.head().unwrap().unwrap().height, 11);
}

#[test]
fn a_state_snapshot_is_consistent_and_installs_in_place_of_the_state() {
    use lanes_storage::StateInstall;
    use lanes_types::{Bytes, ValidatorSignature};
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..5 {
        common::commit_next(&store);
    }
    // The snapshot sees the head and state as of its start, whatever commits meanwhile.
    let (head, entries) = store
        .with_state_snapshot(|head, entries| {
            common::commit_next(&store);
            (head, entries.collect::<Result<Vec<_>, _>>().unwrap())
        })
        .unwrap();
    assert_eq!(head.height, 5);
    assert!(entries.contains(&(b"count".to_vec(), 5u64.to_be_bytes().to_vec())));
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "key order");

    // A second database takes the snapshot: its head, floor, certificate and state follow.
    let other = tempfile::tempdir().unwrap();
    let target = common::open_with_genesis(other.path());
    common::commit_next(&target);
    let cert = CheckpointCertificate {
        height: head.height,
        block_hash: head.block_hash,
        state_root: head.state_root,
        receipts_root: head.receipts_root,
        signatures: (0..3)
            .map(|v| ValidatorSignature {
                validator: v,
                signature: lanes_types::Signature([v as u8; 64]),
            })
            .collect(),
    };
    let tree = vec![(Bytes(b"node".to_vec()), Some(Bytes(b"bytes".to_vec())))];
    target
        .install_state(&StateInstall {
            certificate: &cert,
            state: &entries,
            tree: &tree,
        })
        .unwrap();
    let new_head = target.head().unwrap().unwrap();
    assert_eq!(new_head, head);
    assert_eq!(target.block_floor().unwrap(), 6);
    assert_eq!(target.checkpoint_certificate(5).unwrap(), Some(cert));
    assert_eq!(target.state_root(5).unwrap(), Some(head.state_root));
    assert_eq!(
        target.state_get(b"count").unwrap(),
        Some(5u64.to_be_bytes().to_vec())
    );
    assert_eq!(
        target.tree_get(&common::tree_key(1)).unwrap(),
        None,
        "old tree gone"
    );
    assert_eq!(target.tree_get(b"node").unwrap(), Some(b"bytes".to_vec()));
    // The chain goes on from the installed head.
    let f = common::fixture(6, head.block_hash);
    target.commit_block(&f.commit()).unwrap();
}

/// Everything a state install could change, to check that a refused one changed nothing.
fn installable_view(store: &Store) -> impl PartialEq + std::fmt::Debug {
    let head = store.head().unwrap();
    let height = head.map_or(0, |h| h.height);
    (
        head,
        store.block_floor().unwrap(),
        store.latest_checkpoint_certificate().unwrap(),
        store.state_get(b"count").unwrap(),
        store.state_get(&common::state_key(height)).unwrap(),
        store.tree_get(&common::tree_key(height)).unwrap(),
        store.tree_get(b"node").unwrap(),
    )
}

#[test]
fn a_state_snapshot_at_or_below_the_head_is_refused_and_changes_nothing() {
    use lanes_storage::StateInstall;
    use lanes_types::{Bytes, ValidatorSignature};
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..6 {
        common::commit_next(&store);
    }
    let head = store.head().unwrap().unwrap();
    let state = vec![(b"count".to_vec(), 99u64.to_be_bytes().to_vec())];
    let tree = vec![(Bytes(b"node".to_vec()), Some(Bytes(b"bytes".to_vec())))];
    let before = installable_view(&store);
    for height in [3, head.height] {
        let cert = CheckpointCertificate {
            height,
            block_hash: Hash::tagged("t", &height.to_be_bytes()),
            state_root: Hash::tagged("r", &height.to_be_bytes()),
            receipts_root: Hash::tagged("receipts", &height.to_be_bytes()),
            signatures: (0..3)
                .map(|v| ValidatorSignature {
                    validator: v,
                    signature: lanes_types::Signature([v as u8; 64]),
                })
                .collect(),
        };
        let refused = store.install_state(&StateInstall {
            certificate: &cert,
            state: &state,
            tree: &tree,
        });
        match refused {
            Err(e @ StorageError::StaleSnapshot { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("height {height}")), "{msg}");
                assert!(
                    msg.contains(&format!("head is at {}", head.height)),
                    "{msg}"
                );
            }
            other => panic!("snapshot at {height} with head {}: {other:?}", head.height),
        }
        assert_eq!(installable_view(&store), before, "snapshot at {height}");
        assert_eq!(store.checkpoint_certificate(height).unwrap(), None);
    }
    // At the head with the head's block and root: nothing to repair, refused as well.
    let same = CheckpointCertificate {
        height: head.height,
        block_hash: head.block_hash,
        state_root: head.state_root,
        receipts_root: head.receipts_root,
        signatures: Vec::new(),
    };
    let refused = store.install_state(&StateInstall {
        certificate: &same,
        state: &state,
        tree: &tree,
    });
    assert!(matches!(refused, Err(StorageError::StaleSnapshot { .. })));
    assert_eq!(installable_view(&store), before);
    // The chain still goes on from the untouched head.
    assert_eq!(common::commit_next(&store), head.height + 1);
    assert_eq!(common::assert_complete_prefix(&store), head.height + 1);
}

#[test]
fn a_certified_root_at_the_head_repairs_a_diverged_state() {
    use lanes_storage::StateInstall;
    use lanes_types::Bytes;
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..4 {
        common::commit_next(&store);
    }
    let head = store.head().unwrap().unwrap();
    let cert = CheckpointCertificate {
        height: head.height,
        block_hash: head.block_hash,
        state_root: Hash::tagged("r", b"certified"),
        receipts_root: head.receipts_root,
        signatures: Vec::new(),
    };
    let state = vec![(b"count".to_vec(), 99u64.to_be_bytes().to_vec())];
    let tree = vec![(Bytes(b"node".to_vec()), Some(Bytes(b"bytes".to_vec())))];
    store
        .install_state(&StateInstall {
            certificate: &cert,
            state: &state,
            tree: &tree,
        })
        .unwrap();
    let repaired = store.head().unwrap().unwrap();
    assert_eq!(
        (repaired.height, repaired.block_hash, repaired.state_root),
        (head.height, head.block_hash, cert.state_root)
    );
    assert_eq!(
        store.state_get(b"count").unwrap(),
        Some(99u64.to_be_bytes().to_vec())
    );
}

#[test]
fn certified_receipts_at_the_head_repair_a_diverged_result_and_drop_our_leaves() {
    use lanes_storage::StateInstall;
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_with_genesis(dir.path());
    for _ in 0..4 {
        common::commit_next(&store);
    }
    let head = store.head().unwrap().unwrap();
    assert!(store.receipt_leaves(head.height).unwrap().is_some());
    // Same block and state, other receipts: the quorum's result is not ours.
    let cert = CheckpointCertificate {
        height: head.height,
        block_hash: head.block_hash,
        state_root: head.state_root,
        receipts_root: Hash::tagged("r", b"certified receipts"),
        signatures: Vec::new(),
    };
    store
        .install_state(&StateInstall {
            certificate: &cert,
            state: &[],
            tree: &[],
        })
        .unwrap();
    let repaired = store.head().unwrap().unwrap();
    assert_eq!(repaired.roots(), cert.roots());
    assert_eq!(store.roots(head.height).unwrap(), Some(cert.roots()));
    assert_eq!(
        store.receipt_leaves(head.height).unwrap(),
        None,
        "our receipts' leaves at the repaired height are gone"
    );
    assert_eq!(store.block_floor().unwrap(), head.height + 1);
}
