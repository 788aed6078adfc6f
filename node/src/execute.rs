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
use std::sync::OnceLock;

/// The first storage fault seen while reading (a failed read, or bytes that do not decode):
/// the executor's read interfaces cannot return errors, so a view reads such an entry as absent,
/// remembers the fault, and the caller checks [`Fault::check`] before it uses, let alone stores,
/// what was computed from it.
#[derive(Default)]
pub struct Fault(OnceLock<String>);

impl Fault {
    fn record(&self, what: String) {
        let _ = self.0.set(what);
    }

    /// Decodes what a read of `what` returned; a failed read or bytes that do not decode are
    /// recorded and read as absent.
    fn decode<T: Decode>(
        &self,
        read: Result<Option<Vec<u8>>, lanes_storage::StorageError>,
        what: impl Fn() -> String,
    ) -> Option<T> {
        let fault = match read {
            Ok(None) => return None,
            Ok(Some(raw)) => match T::from_bytes(&raw) {
                Ok(v) => return Some(v),
                Err(e) => format!("{} does not decode: {e}", what()),
            },
            Err(e) => format!("reading {}: {e}", what()),
        };
        self.record(fault);
        None
    }

    /// An error naming the first fault, if there was one.
    pub fn check(&self) -> Result<()> {
        match self.0.get() {
            Some(what) => bail!("the database is damaged: {what}"),
            None => Ok(()),
        }
    }
}

/// Committed state as the executor reads it. A value that cannot be read or decoded is a
/// damaged database: it reads as absent and is recorded in the [`Fault`], so that nothing
/// computed from it is stored.
pub struct StoreState<'a> {
    store: &'a Store,
    /// The first fault seen.
    pub fault: Fault,
}

impl<'a> StoreState<'a> {
    /// A view of `store`'s committed state.
    pub fn new(store: &'a Store) -> Self {
        StoreState {
            store,
            fault: Fault::default(),
        }
    }
}

impl StateView for StoreState<'_> {
    fn get(&self, key: &Key) -> Option<Value> {
        self.fault
            .decode(self.store.state_get(&key.to_bytes()), || {
                format!("the state value of {key:?}")
            })
    }
}

/// State-tree nodes as the tree reads them. A node that cannot be read or decoded reads as
/// missing (the tree then fails with `MissingNode`) and is recorded in the [`Fault`].
pub struct StoreNodes<'a> {
    store: &'a Store,
    /// The first fault seen.
    pub fault: Fault,
}

impl<'a> StoreNodes<'a> {
    /// A view of `store`'s tree nodes.
    pub fn new(store: &'a Store) -> Self {
        StoreNodes {
            store,
            fault: Fault::default(),
        }
    }
}

impl NodeStore for StoreNodes<'_> {
    fn get_node(&self, hash: &Hash) -> Option<Node> {
        self.fault
            .decode(self.store.tree_get(&hash.0), || format!("tree node {hash}"))
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
#[derive(Debug)]
pub struct Executed {
    /// The state root after the block and the receipts root.
    pub roots: lanes_types::ExecRoots,
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
    let (state, nodes) = (StoreState::new(store), StoreNodes::new(store));
    let out = executor.execute_block(&state, &nodes, head.state_root, &genesis.params, &txs);
    // A damaged database is named first: it also explains a tree error.
    let out = state
        .fault
        .check()
        .and(nodes.fault.check())
        .and(out.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "executing committed block {} (nothing of it was stored)",
                block.height()
            )
        })?;
    let receipts: Vec<Bytes> = out.receipts.iter().map(|r| Bytes(r.to_bytes())).collect();
    let roots = lanes_types::ExecRoots {
        state_root: out.state_root,
        receipts_root: out.receipts_root,
    };
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
            receipt_leaves: &out.receipt_leaves,
            roots,
        })
        .context("storing a committed block")?;
    Ok(Executed {
        roots,
        ok_txs,
        exec_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_executor::state::Key;
    use lanes_executor::tx::{Operation, Transaction};
    use lanes_storage::ChainIdentity;
    use lanes_types::block::payload_digest;
    use lanes_types::BlockHeader;

    /// What to damage in a genesis database.
    enum Damage {
        None,
        /// The first account's native balance is stored as these bytes.
        Balance(Vec<u8>),
        /// The tree's root node is stored as these bytes.
        Root(Vec<u8>),
    }

    /// A database with the genesis state of `genesis`, damaged as `damage` says.
    fn store_with(dir: &std::path::Path, genesis: &Genesis, damage: Damage) -> Store {
        let identity = ChainIdentity {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
        };
        let store = Store::open(dir, &identity).unwrap();
        let writes = genesis_writes(genesis);
        let tree = smt::update(
            &smt::MemNodeStore::default(),
            smt::EMPTY,
            &smt::tree_updates(&writes),
        )
        .unwrap();
        let owner = Key::Balance(genesis.params.oracle, 0).to_bytes();
        let mut state = state_writes(&writes);
        let mut nodes = tree_writes(&tree.new_nodes);
        match damage {
            Damage::None => {}
            Damage::Balance(bytes) => {
                let entry = state.iter_mut().find(|(k, _)| k.0 == owner).unwrap();
                entry.1 = Some(Bytes(bytes));
            }
            Damage::Root(bytes) => {
                let entry = nodes.iter_mut().find(|(k, _)| k.0 == tree.root.0).unwrap();
                entry.1 = Some(Bytes(bytes));
            }
        }
        store.commit_genesis(&state, &nodes, tree.root).unwrap();
        store
    }

    /// Block 1 with one transfer from the first account, and a certificate for it.
    fn block_one(genesis: &Genesis, key: &lanes_types::SecretKey) -> (Block, CommitCertificate) {
        let tx = Transaction {
            chain_id: genesis.chain_id.clone(),
            sender: key.public_key(),
            nonce: 0,
            fee: genesis.params.min_fee,
            op: Operation::Transfer {
                asset: 0,
                to: key.public_key().address(),
                amount: 0,
            },
        }
        .sign(key);
        let txs = vec![Bytes(tx.to_bytes())];
        let header = BlockHeader {
            chain_id: genesis.chain_id.clone(),
            height: 1,
            parent: Hash::ZERO,
            view: 0,
            proposer: 0,
            timestamp_ms: 0,
            payload_digest: payload_digest(&txs),
        };
        let block = Block { header, txs };
        let certificate = CommitCertificate {
            view: 0,
            height: 1,
            block_hash: block.hash(),
            signatures: Vec::new(),
        };
        (block, certificate)
    }

    /// Runs block 1 on a genesis database damaged as `damage` says: the error message (`Ok` with
    /// the stored height when it succeeds) and the head height afterwards.
    fn run_block_one(damage: Damage) -> (Result<u64, String>, u64) {
        let keys = crate::fixtures::keys("ledger");
        let genesis = crate::fixtures::genesis("ledger-test", &keys);
        let (block, cert) = block_one(&genesis, &keys[0]);
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &genesis, damage);
        let executor = Executor::new(2).unwrap();
        let result = execute_and_store(&store, &executor, &genesis, &block, &cert)
            .map(|_| block.height())
            .map_err(|e| format!("{e:#}"));
        (result, store.head().unwrap().unwrap().height)
    }

    /// A state value that does not decode stops the block with an error naming it, and nothing
    /// of the block is stored; the same block on an intact database is stored.
    #[test]
    fn a_damaged_state_value_is_an_error_and_stores_nothing() {
        assert_eq!(run_block_one(Damage::None), (Ok(1), 1));
        let (result, height) = run_block_one(Damage::Balance(vec![0xff, 0x01]));
        let msg = result.unwrap_err();
        assert!(msg.contains("database is damaged"), "{msg}");
        assert!(msg.contains("does not decode"), "{msg}");
        assert!(msg.contains("nothing of it was stored"), "{msg}");
        assert_eq!(height, 0);
    }

    /// A tree node that does not decode is named as damage (not as a missing node), and
    /// nothing of the block is stored.
    #[test]
    fn a_damaged_tree_node_is_an_error_and_stores_nothing() {
        let (result, height) = run_block_one(Damage::Root(vec![7; 3]));
        let msg = result.unwrap_err();
        assert!(msg.contains("database is damaged"), "{msg}");
        assert!(
            msg.contains("tree node") && msg.contains("does not decode"),
            "{msg}"
        );
        assert_eq!(height, 0);
    }
}
