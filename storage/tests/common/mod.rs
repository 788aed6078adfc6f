//! Deterministic blocks and commits for storage tests.

#![allow(dead_code)]

use lanes_storage::{BlockCommit, ChainIdentity, Store};
use lanes_types::{
    merkle, payload_digest, Block, BlockHeader, Bytes, CommitCertificate, ExecRoots, Hash,
    Signature, ValidatorSignature,
};

pub const CHAIN: &str = "storage-test";

pub fn identity() -> ChainIdentity {
    ChainIdentity {
        chain_id: CHAIN.into(),
        genesis_hash: Hash::digest(b"genesis"),
    }
}

/// Everything block `height` writes, derived from the height alone.
pub struct Fixture {
    pub block: Block,
    pub cert: CommitCertificate,
    pub receipts: Vec<Bytes>,
    pub state: Vec<(Bytes, Option<Bytes>)>,
    pub tree: Vec<(Bytes, Option<Bytes>)>,
    pub root: Hash,
    pub leaves: Vec<Hash>,
}

pub fn state_key(height: u64) -> Vec<u8> {
    format!("h/{height}").into_bytes()
}

pub fn tree_key(height: u64) -> Vec<u8> {
    format!("n/{height}").into_bytes()
}

pub fn root(height: u64) -> Hash {
    Hash::tagged("root", &height.to_be_bytes())
}

/// The roots block `height` commits: [`root`] and the Merkle root of its receipts.
pub fn roots(height: u64) -> ExecRoots {
    ExecRoots {
        state_root: root(height),
        receipts_root: merkle::root(&fixture(height, Hash::ZERO).leaves),
    }
}

pub fn fixture(height: u64, parent: Hash) -> Fixture {
    let txs: Vec<Bytes> = (0..(height % 5 + 1))
        .map(|i| Bytes(format!("tx {height} {i}").into_bytes()))
        .collect();
    let block = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height,
            parent,
            view: 0,
            proposer: (height % 4) as u32,
            timestamp_ms: height * 10,
            payload_digest: payload_digest(&txs),
        },
        txs,
    };
    let cert = CommitCertificate {
        view: 0,
        height,
        block_hash: block.hash(),
        signatures: (0..3)
            .map(|v| ValidatorSignature {
                validator: v,
                signature: Signature([v as u8; 64]),
            })
            .collect(),
    };
    let receipts: Vec<Bytes> = block
        .txs
        .iter()
        .map(|t| Bytes([b"ok ".as_slice(), &t.0].concat()))
        .collect();
    let leaves = receipts.iter().map(|r| merkle::leaf_hash(&r.0)).collect();
    let mut state = vec![
        (
            Bytes(state_key(height)),
            Some(Bytes(height.to_be_bytes().to_vec())),
        ),
        (
            Bytes(b"count".to_vec()),
            Some(Bytes(height.to_be_bytes().to_vec())),
        ),
    ];
    if height > 3 {
        state.push((Bytes(state_key(height - 3)), None));
    }
    let tree = vec![(
        Bytes(tree_key(height)),
        Some(Bytes(root(height).0.to_vec())),
    )];
    Fixture {
        block,
        cert,
        receipts,
        state,
        tree,
        root: root(height),
        leaves,
    }
}

impl Fixture {
    /// The commit of this block.
    pub fn commit(&self) -> BlockCommit<'_> {
        BlockCommit {
            block: &self.block,
            certificate: &self.cert,
            receipts: &self.receipts,
            state_writes: &self.state,
            tree_writes: &self.tree,
            receipt_leaves: &self.leaves,
            roots: ExecRoots {
                state_root: self.root,
                receipts_root: merkle::root(&self.leaves),
            },
        }
    }
}

/// Commits the next block after the store's head; returns its height.
pub fn commit_next(store: &Store) -> u64 {
    let head = store.head().unwrap().expect("genesis written");
    let f = fixture(head.height + 1, head.block_hash);
    store.commit_block(&f.commit()).unwrap();
    head.height + 1
}

pub fn open_with_genesis(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, &identity()).unwrap();
    if store.head().unwrap().is_none() {
        store
            .commit_genesis(
                &[(
                    Bytes(b"count".to_vec()),
                    Some(Bytes(0u64.to_be_bytes().to_vec())),
                )],
                &[],
                root(0),
            )
            .unwrap();
    }
    store
}

/// Checks that the store holds exactly blocks 1..=head, each complete (with its state root),
/// and nothing of the block above: what the crash test needs after every kill.
pub fn assert_complete_prefix(store: &Store) -> u64 {
    let head = store.head().unwrap().expect("genesis written");
    let mut parent = Hash::ZERO;
    for h in 1..=head.height {
        let f = fixture(h, parent);
        let block = store
            .block(h)
            .unwrap()
            .unwrap_or_else(|| panic!("block {h} missing"));
        assert_eq!(block, f.block, "block {h} differs");
        assert_eq!(store.block_height(&block.hash()).unwrap(), Some(h));
        assert_eq!(
            store.commit_certificate(h).unwrap().as_ref(),
            Some(&f.cert),
            "cert {h}"
        );
        for (i, (tx, r)) in f.block.txs.iter().zip(&f.receipts).enumerate() {
            assert_eq!(
                store.receipt(h, i as u32).unwrap().as_deref(),
                Some(&r.0[..])
            );
            let loc = store
                .tx_location(&lanes_types::tx_hash(tx))
                .unwrap()
                .expect("indexed");
            assert_eq!((loc.height, loc.index), (h, i as u32));
        }
        let expect_state = if h + 3 <= head.height {
            None
        } else {
            Some(h.to_be_bytes().to_vec())
        };
        assert_eq!(
            store.state_get(&state_key(h)).unwrap(),
            expect_state,
            "state of block {h}"
        );
        assert!(
            store.tree_get(&tree_key(h)).unwrap().is_some(),
            "tree node of block {h}"
        );
        assert_eq!(store.state_root(h).unwrap(), Some(root(h)), "root {h}");
        parent = block.hash();
    }
    assert_eq!(head.block_hash, parent);
    assert_eq!(head.state_root, root(head.height));
    assert_eq!(
        store.state_get(b"count").unwrap(),
        Some(head.height.to_be_bytes().to_vec())
    );
    let next = head.height + 1;
    assert!(store.block(next).unwrap().is_none(), "partial block {next}");
    assert!(
        store.commit_certificate(next).unwrap().is_none(),
        "partial cert {next}"
    );
    assert!(
        store.state_get(&state_key(next)).unwrap().is_none(),
        "partial state {next}"
    );
    assert!(
        store.tree_get(&tree_key(next)).unwrap().is_none(),
        "partial tree {next}"
    );
    assert!(
        store.receipt(next, 0).unwrap().is_none(),
        "partial receipt {next}"
    );
    assert!(
        store.state_root(next).unwrap().is_none(),
        "partial root {next}"
    );
    let above = fixture(next, parent);
    assert!(
        store.block_height(&above.block.hash()).unwrap().is_none(),
        "partial hash index {next}"
    );
    for tx in &above.block.txs {
        assert!(
            store
                .tx_location(&lanes_types::tx_hash(tx))
                .unwrap()
                .is_none(),
            "partial tx index {next}"
        );
    }
    head.height
}
