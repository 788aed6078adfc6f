//! Installing a received snapshot (apply thread): the tree is rebuilt from the entries and the
//! snapshot replaces the stored state only if the rebuilt root is the certified one.

use super::Snapshot;
use crate::shared::Metrics;
use lanes_executor::smt;
use lanes_executor::state::{Key, Value};
use lanes_storage::{Head, StateInstall, Store};
use lanes_types::codec::Decode;
use std::time::Instant;

/// Rebuilds the state tree from a snapshot's entries and, if its root is the certified one,
/// installs the snapshot in place of the stored state (apply thread).
pub fn install(store: &Store, snapshot: &Snapshot, metrics: &Metrics) -> Result<Head, String> {
    let started = Instant::now();
    let mut updates = Vec::with_capacity(snapshot.entries.len());
    for (k, v) in &snapshot.entries {
        let key = Key::from_bytes(k).map_err(|e| format!("undecodable state key: {e}"))?;
        let value = Value::from_bytes(v).map_err(|e| format!("undecodable state value: {e}"))?;
        updates.push((smt::key_hash(&key), Some(smt::value_hash(&value))));
    }
    updates.sort_unstable_by_key(|u| u.0);
    if updates.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("two state entries share a tree path".into());
    }
    let tree = smt::update(&smt::MemNodeStore::default(), smt::EMPTY, &updates)
        .map_err(|e| format!("building the state tree: {e}"))?;
    let cert = &snapshot.certificate;
    if tree.root != cert.state_root {
        return Err(format!(
            "the snapshot's root {} is not the certified {}",
            tree.root, cert.state_root
        ));
    }
    let nodes = crate::execute::tree_writes(&tree.new_nodes);
    store
        .install_state(&StateInstall {
            certificate: cert,
            state: &snapshot.entries,
            tree: &nodes,
        })
        .map_err(|e| format!("storing the snapshot: {e}"))?;
    Metrics::add(&metrics.state_syncs, 1);
    tracing::info!(
        height = cert.height,
        root = %cert.state_root.short(),
        entries = snapshot.entries.len(),
        ms = started.elapsed().as_millis() as u64,
        "installed the certified state"
    );
    Ok(Head {
        height: cert.height,
        block_hash: cert.block_hash,
        state_root: cert.state_root,
        receipts_root: cert.receipts_root,
    })
}
