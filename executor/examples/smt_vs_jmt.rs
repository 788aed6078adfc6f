//! Compares our sparse Merkle tree with the `jmt` crate (Jellyfish Merkle tree, sha2-256) on the
//! same workload: a tree of BASE keys, then one batch of UPDATES writes (half new keys, half
//! updates), in memory. Prints one JSON object per tree.
//!
//! `cargo run --release -p lanes-executor --features compare-jmt --example smt_vs_jmt -- BASE UPDATES THREADS`

use jmt::mock::MockTreeStore;
use jmt::{KeyHash, Sha256Jmt};
use lanes_executor::smt::{self, MemNodeStore};
use lanes_executor::{Key, Value, Write};
use lanes_types::codec::Encode;
use lanes_types::Address;
use std::time::Instant;

fn key(i: u64) -> Key {
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&i.to_be_bytes());
    Key::Balance(Address(a), 0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let updates: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let initial: Vec<Write> = (0..base)
        .map(|i| (key(i), Some(Value::U64(i + 1))))
        .collect();
    // Half updates of existing keys, half new keys.
    let batch: Vec<Write> = (0..updates)
        .map(|i| {
            (
                key(if i % 2 == 0 {
                    i * 2 % base.max(1)
                } else {
                    base + i
                }),
                Some(Value::U64(7)),
            )
        })
        .collect();
    let mut batch_sorted = batch.clone();
    batch_sorted.sort_by_key(|w| w.0);
    batch_sorted.dedup_by_key(|w| w.0);

    // Ours: hashing keys and values is part of the work, as in execute_block.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut store = MemNodeStore::default();
    let t = Instant::now();
    let up = pool
        .install(|| smt::update(&store, smt::EMPTY, &smt::tree_updates(&initial)))
        .expect("smt");
    let ours_build_ms = t.elapsed().as_secs_f64() * 1e3;
    up.persist(&mut store);
    let t = Instant::now();
    let up2 = pool
        .install(|| smt::update(&store, up.root, &smt::tree_updates(&batch_sorted)))
        .expect("smt");
    let ours_batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let ours_nodes = up2.new_nodes.len();

    // jmt: same key paths (our key hash), values are the canonical value bytes.
    let jstore = MockTreeStore::default();
    let tree = Sha256Jmt::new(&jstore);
    let kv = |w: &Write| {
        (
            KeyHash(smt::key_hash(&w.0).0),
            w.1.as_ref().map(|v| v.to_bytes()),
        )
    };
    let t = Instant::now();
    let (_, b0) = tree.put_value_set(initial.iter().map(kv), 0).expect("jmt");
    let jmt_build_ms = t.elapsed().as_secs_f64() * 1e3;
    jstore.write_tree_update_batch(b0).expect("jmt store");
    let t = Instant::now();
    let (_, b1) = tree
        .put_value_set(batch_sorted.iter().map(kv), 1)
        .expect("jmt");
    let jmt_batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let jmt_nodes = b1.node_batch.nodes().len();

    println!(
        "{{\"tree\":\"lanes-smt\",\"base\":{base},\"updates\":{},\"threads\":{threads},\"build_ms\":{ours_build_ms:.1},\"batch_ms\":{ours_batch_ms:.1},\"new_nodes\":{ours_nodes}}}",
        batch_sorted.len()
    );
    println!(
        "{{\"tree\":\"jmt-0.12\",\"base\":{base},\"updates\":{},\"threads\":1,\"build_ms\":{jmt_build_ms:.1},\"batch_ms\":{jmt_batch_ms:.1},\"new_nodes\":{jmt_nodes}}}",
        batch_sorted.len()
    );
}
