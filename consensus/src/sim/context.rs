//! The simulated validators' side of the host: signatures by keyed hash, transactions, and
//! the replica configuration every simulated replica uses.

use crate::context::Context;
use crate::replica::{Config, Recovered, Replica};
use crate::{MempoolLimits, TxMeta};
use lanes_types::{Block, Bytes, Hash, Signature, ValidatorInfo, ValidatorSet};
use std::collections::HashSet;
use std::rc::Rc;

/// The chain id of simulated replicas.
pub(crate) const CHAIN_ID: &str = "lanes-sim";

/// The simulation's signature scheme: a keyed hash, 64 bytes.
pub(super) fn sim_sign(key: &[u8; 32], message: &[u8]) -> Signature {
    let a = Hash::tagged_parts("lanes/sim-sig-a", &[key, message]);
    let b = Hash::tagged_parts("lanes/sim-sig-b", &[key, message]);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&a.0);
    sig[32..].copy_from_slice(&b.0);
    Signature(sig)
}

/// A simulated transaction: `tx` ++ seed ++ index.
pub(super) fn sim_tx(seed: u64, index: usize) -> Bytes {
    let mut tx = b"tx".to_vec();
    tx.extend_from_slice(&seed.to_be_bytes());
    tx.extend_from_slice(&(index as u64).to_be_bytes());
    Bytes(tx)
}

/// The metadata of a simulated transaction: the `index`-th of seed `seed` is nonce
/// `index % 4` of sender `(seed, index / 4)`, so senders have short nonce chains, and pays a
/// fee from 1 to 16 drawn from its hash, so fee priority reorders the proposals.
fn sim_tx_meta(tx: &[u8]) -> Option<TxMeta> {
    if !sim_tx_valid(tx) {
        return None;
    }
    let index = u64::from_be_bytes(tx[10..18].try_into().ok()?);
    let who = (index / 4).to_be_bytes();
    let id = Hash::tagged_parts("lanes/sim-sender", &[&tx[2..10], &who]);
    let mut sender = [0u8; 20];
    sender.copy_from_slice(&id.0[..20]);
    Some(TxMeta {
        sender: lanes_types::Address(sender),
        nonce: index % 4,
        fee: 1 + u64::from(lanes_types::tx_hash(tx).0[0] % 16),
    })
}

/// Whether `tx` has the shape of a simulated transaction.
fn sim_tx_valid(tx: &[u8]) -> bool {
    tx.len() == 18 && tx.starts_with(b"tx")
}

/// The [`Context`] of a simulated replica.
#[derive(Clone)]
pub struct SimContext {
    /// The validator it signs for.
    pub(super) me: u32,
    /// Every validator's key.
    pub(super) keys: Rc<Vec<[u8; 32]>>,
    /// The node's transaction index (survives crashes, like storage).
    ledger: Rc<std::cell::RefCell<HashSet<Hash>>>,
}

impl SimContext {
    /// The validator this context signs for.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// Signs `message` as validator `validator` (the simulation knows every key; used to forge
    /// a byzantine validator's messages). Unknown validators get an all-zero signature.
    pub fn sign_as(&self, validator: u32, message: &[u8]) -> Signature {
        match self.keys.get(validator as usize) {
            Some(key) => sim_sign(key, message),
            None => Signature([0; 64]),
        }
    }

    /// The same validator's context with its own, empty transaction index: a second replica
    /// of one validator (Twins) has its own storage.
    pub fn twin(&self) -> SimContext {
        SimContext {
            me: self.me,
            keys: self.keys.clone(),
            ledger: Default::default(),
        }
    }

    /// Records a delivered block's transactions in the node's transaction index.
    pub fn record_delivered(&self, block: &Block) {
        let mut ledger = self.ledger.borrow_mut();
        ledger.extend(block.txs.iter().map(|t| lanes_types::tx_hash(t)));
    }
}

impl Context for SimContext {
    fn sign(&self, message: &[u8]) -> Signature {
        sim_sign(&self.keys[self.me as usize], message)
    }
    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.keys
            .get(validator as usize)
            .is_some_and(|k| sim_sign(k, message) == *signature)
    }
    fn check_block_txs(
        &self,
        block: &Block,
        _verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        if block.txs.iter().all(|t| sim_tx_valid(t)) {
            Ok(())
        } else {
            Err("malformed transaction".into())
        }
    }
    fn check_txs(&self, txs: &[Bytes]) -> Vec<Option<TxMeta>> {
        txs.iter().map(|t| sim_tx_meta(t)).collect()
    }
    fn tx_meta(&self, tx: &[u8]) -> Option<TxMeta> {
        sim_tx_meta(tx)
    }
    fn tx_committed(&self, hash: &Hash) -> bool {
        self.ledger.borrow().contains(hash)
    }
}

/// The contexts (signing keys) of `n` simulated validators for `seed`.
pub fn sim_contexts(n: u32, seed: u64) -> Vec<SimContext> {
    let keys: Rc<Vec<[u8; 32]>> = Rc::new(
        (0..n)
            .map(|i| {
                Hash::tagged_parts("lanes/sim-key", &[&seed.to_be_bytes(), &i.to_be_bytes()]).0
            })
            .collect(),
    );
    (0..n)
        .map(|me| SimContext {
            me,
            keys: keys.clone(),
            ledger: Default::default(),
        })
        .collect()
}

/// A transaction the simulated validators accept (`index` makes it unique).
pub fn sim_transaction(seed: u64, index: usize) -> Bytes {
    sim_tx(seed, index)
}

/// The replica configuration the simulator uses.
pub fn sim_replica_config(validators: u32, me: u32) -> Config {
    let infos = (0..validators)
        .map(|i| ValidatorInfo {
            name: format!("n{i}"),
            public_key: lanes_types::SecretKey::from_seed([i as u8 + 1; 32]).public_key(),
            address: String::new(),
        })
        .collect();
    Config {
        chain_id: CHAIN_ID.into(),
        validators: ValidatorSet::new(infos),
        me,
        window: 4,
        max_block_txs: 8,
        max_block_bytes: 1 << 16,
        max_tx_bytes: 64,
        block_interval_ms: 50,
        view_timeout_ms: 400,
        max_view_timeout_ms: 400 * 16,
        sync_batch: 16,
        mempool: MempoolLimits {
            max_txs: 10_000,
            max_bytes: 1 << 20,
            committed_memory: 100_000,
            ..MempoolLimits::default()
        },
    }
}

/// A simulated replica of `ctx`'s validator among `n`, from what it recovered.
pub(super) fn new_replica(
    ctx: &SimContext,
    n: u32,
    recovered: Recovered,
) -> Result<Replica<SimContext>, crate::RestoreError> {
    Replica::new(sim_replica_config(n, ctx.me), ctx.clone(), recovered)
}
