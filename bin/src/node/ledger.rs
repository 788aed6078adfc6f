//! The executor over RocksDB: state and tree reads from storage, genesis, and executing one
//! committed block into one atomic storage write.

use anyhow::{bail, Context, Result};
use lanes_executor::smt::{self, Node, NodeStore};
use lanes_executor::state::{Key, Value};
use lanes_executor::tx::{check_stateless_unsigned, SignedTransaction};
use lanes_executor::{genesis_writes, Executor, StateView};
use lanes_storage::{BlockCommit, Store};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Block, Bytes, CommitCertificate, Genesis, Hash};

/// Committed state as the executor reads it. A value that does not decode is a corrupt
/// database: the node stops rather than execute on it.
pub struct StoreState<'a>(pub &'a Store);

impl StateView for StoreState<'_> {
    fn get(&self, key: &Key) -> Option<Value> {
        let raw = self
            .0
            .state_get(&key.to_bytes())
            .unwrap_or_else(|e| panic!("state read failed: {e}"))?;
        Some(Value::from_bytes(&raw).unwrap_or_else(|e| panic!("corrupt state value: {e}")))
    }
}

/// State-tree nodes as the tree reads them.
pub struct StoreNodes<'a>(pub &'a Store);

impl NodeStore for StoreNodes<'_> {
    fn get_node(&self, hash: &Hash) -> Option<Node> {
        let raw = self
            .0
            .tree_get(&hash.0)
            .unwrap_or_else(|e| panic!("tree read failed: {e}"))?;
        Some(Node::from_bytes(&raw).unwrap_or_else(|e| panic!("corrupt tree node: {e}")))
    }

    fn put_node(&mut self, _hash: Hash, _node: Node) {
        unreachable!("tree nodes are written with the block, never one by one");
    }
}

/// Tree nodes as storage writes.
pub fn tree_writes(nodes: &[(Hash, Node)]) -> Vec<(Bytes, Option<Bytes>)> {
    nodes
        .iter()
        .map(|(h, n)| (Bytes(h.0.to_vec()), Some(Bytes(n.to_bytes()))))
        .collect()
}

fn state_writes(writes: &[(Key, Option<Value>)]) -> Vec<(Bytes, Option<Bytes>)> {
    writes
        .iter()
        .map(|(k, v)| (Bytes(k.to_bytes()), v.as_ref().map(|v| Bytes(v.to_bytes()))))
        .collect()
}

/// Writes the genesis state if the database has none yet.
pub fn ensure_genesis(store: &Store, genesis: &Genesis) -> Result<()> {
    if store.head()?.is_some() {
        return Ok(());
    }
    let writes = genesis_writes(genesis);
    let empty = smt::MemNodeStore::default();
    let tree = smt::update(&empty, smt::EMPTY, &smt::tree_updates(&writes))
        .context("building the genesis state tree")?;
    store
        .commit_genesis(
            &state_writes(&writes),
            &tree_writes(&tree.new_nodes),
            tree.root,
        )
        .context("writing the genesis state")?;
    tracing::info!(root = %tree.root, "genesis state written");
    Ok(())
}

/// What executing one block produced.
pub struct Executed {
    /// The state root after the block.
    pub state_root: Hash,
    /// Successful transactions.
    pub ok_txs: usize,
    /// Execution wall time in milliseconds.
    pub exec_ms: f64,
}

/// Decodes a committed block's transactions. They were checked before the quorum voted; one
/// that does not decode means more than f faulty validators, so the node stops.
pub fn decode_txs(block: &Block, genesis: &Genesis) -> Result<Vec<SignedTransaction>> {
    block
        .txs
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            check_stateless_unsigned(raw, &genesis.chain_id, &genesis.params).with_context(|| {
                format!(
                    "committed block {} carries an invalid transaction at {i}",
                    block.height()
                )
            })
        })
        .collect()
}

/// Executes a committed block on top of the stored head and stores everything it produced in
/// one atomic, synced write.
pub fn execute_and_store(
    store: &Store,
    executor: &Executor,
    genesis: &Genesis,
    block: &Block,
    certificate: &CommitCertificate,
) -> Result<Executed> {
    let start = std::time::Instant::now();
    let head = store.head()?.context("no genesis state")?;
    if block.height() != head.height + 1 {
        bail!(
            "block {} does not follow the stored head {}",
            block.height(),
            head.height
        );
    }
    let txs = decode_txs(block, genesis)?;
    let out = executor
        .execute_block(
            &StoreState(store),
            &StoreNodes(store),
            head.state_root,
            &genesis.params,
            &txs,
        )
        .context("executing a committed block")?;
    let receipts: Vec<Bytes> = out.receipts.iter().map(|r| Bytes(r.to_bytes())).collect();
    let ok_txs = out
        .receipts
        .iter()
        .filter(|r| matches!(r.status, lanes_executor::Status::Success))
        .count();
    store
        .commit_block(&BlockCommit {
            block,
            certificate,
            receipts: &receipts,
            state_writes: &state_writes(&out.writes),
            tree_writes: &tree_writes(&out.new_nodes),
            state_root: out.state_root,
            consensus_position: None,
        })
        .context("storing a committed block")?;
    Ok(Executed {
        state_root: out.state_root,
        ok_txs,
        exec_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}
