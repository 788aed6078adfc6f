//! Creating a database: a creation interrupted by a crash (RocksDB has created the database and
//! some, none or all of our column families, but no chain identity is recorded) is completed by
//! the next open; a database holding data but no lanes identity is refused and left untouched.

mod common;

use lanes_storage::{cf, ChainIdentity, StorageError, Store};
use lanes_types::Hash;
use std::path::Path;

/// Creates a RocksDB database with `default` plus `families` (what an interrupted creation, or
/// another program, leaves) and writes `data` as (family, key) records.
fn raw_database(dir: &Path, families: &[&str], data: &[(&str, &[u8])]) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let db = rocksdb::DB::open_cf(&opts, dir, with_default(families)).unwrap();
    for (family, key) in data {
        db.put_cf(db.cf_handle(family).unwrap(), key, b"their value")
            .unwrap();
    }
}

/// `families` and `default` (so that `cf_handle("default")` works).
fn with_default<'a>(families: &[&'a str]) -> Vec<&'a str> {
    [&["default"], families].concat()
}

fn families(dir: &Path) -> Vec<String> {
    let mut names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    names.sort();
    names
}

/// The column family layouts a crash during creation can leave (RocksDB creates the families
/// one by one; any subset is tested, not only the order this RocksDB version uses).
fn interrupted_layouts() -> Vec<Vec<&'static str>> {
    let all_but_meta: Vec<&str> = cf::ALL.iter().copied().filter(|n| *n != cf::META).collect();
    vec![
        vec![],
        vec![cf::META],
        vec![cf::BLOCKS, cf::STATE],
        cf::ALL[..5].to_vec(),
        all_but_meta,
        cf::ALL.to_vec(),
    ]
}

#[test]
fn an_interrupted_creation_is_completed_into_a_normal_empty_store() {
    for layout in interrupted_layouts() {
        let dir = tempfile::tempdir().unwrap();
        raw_database(dir.path(), &layout, &[]);
        let store = Store::open(dir.path(), &common::identity())
            .unwrap_or_else(|e| panic!("layout {layout:?}: {e}"));
        assert_eq!(store.identity(), &common::identity());
        assert_eq!(store.head().unwrap(), None, "layout {layout:?}");
        drop(store);
        let mut expected: Vec<String> = cf::ALL.iter().map(|n| n.to_string()).collect();
        expected.push("default".into());
        expected.sort();
        assert_eq!(families(dir.path()), expected, "layout {layout:?}");
        let store = common::open_with_genesis(dir.path());
        common::commit_next(&store);
        drop(store);
        let store = Store::open(dir.path(), &common::identity()).unwrap();
        assert_eq!(common::assert_complete_prefix(&store), 1);
        drop(store);
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.identity(), &common::identity());
    }
}

#[test]
fn a_completed_creation_belongs_to_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    raw_database(dir.path(), &[], &[]);
    drop(Store::open(dir.path(), &common::identity()).unwrap());
    let other = ChainIdentity {
        chain_id: "other-chain".into(),
        genesis_hash: Hash::digest(b"g2"),
    };
    let err = Store::open(dir.path(), &other).unwrap_err();
    assert!(matches!(err, StorageError::WrongChain { .. }), "{err}");
}

#[test]
fn data_without_a_lanes_identity_is_refused_and_left_untouched() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "default"),
        (vec![cf::META], "default"),
        (vec![cf::BLOCKS], cf::BLOCKS),
        (cf::ALL.to_vec(), cf::STATE),
        (cf::ALL.to_vec(), "default"),
        (cf::ALL.to_vec(), cf::META),
    ];
    for (layout, holder) in cases {
        let dir = tempfile::tempdir().unwrap();
        raw_database(dir.path(), &layout, &[(holder, b"their key")]);
        let before = families(dir.path());
        let err = Store::open(dir.path(), &common::identity()).unwrap_err();
        assert!(
            matches!(err, StorageError::NotALanesDatabase { .. }),
            "layout {layout:?}, data in {holder}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("another program") && msg.contains(&format!("{holder:?}")),
            "{msg}"
        );
        assert_eq!(families(dir.path()), before, "families were added");
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path(),
            with_default(&layout),
        )
        .unwrap();
        let value = db.get_cf(db.cf_handle(holder).unwrap(), b"their key");
        assert_eq!(value.unwrap().as_deref(), Some(&b"their value"[..]));
        if let Some(meta) = db.cf_handle(cf::META) {
            assert!(db.get_cf(meta, b"chain_id").unwrap().is_none(), "adopted");
        }
    }
}

#[test]
fn unknown_families_of_another_program_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    raw_database(dir.path(), &["their_table"], &[("their_table", b"k")]);
    let before = families(dir.path());
    let err = Store::open(dir.path(), &common::identity()).unwrap_err();
    assert!(
        matches!(err, StorageError::UnknownColumnFamily { ref name, .. } if name == "their_table"),
        "{err}"
    );
    assert_eq!(families(dir.path()), before);
}
