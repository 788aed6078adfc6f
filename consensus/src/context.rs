//! What a replica needs from its host that is not pure bookkeeping: signing with its key,
//! verifying other validators' signatures, and checking transactions. The node implements it
//! with ed25519 and the executor's stateless checks; the simulator with a cheap deterministic
//! scheme. Everything here is a pure function of its arguments (no clock, socket or thread).

use crate::mempool::TxMeta;
use lanes_types::{Block, Bytes, Hash, SecretKey, Signature, ValidatorSet, ValidatorSignature};

/// Services a [`crate::Replica`] calls synchronously while it handles an event.
pub trait Context {
    /// Signs `message` with this replica's validator key.
    fn sign(&self, message: &[u8]) -> Signature;

    /// Whether `signature` is validator `validator`'s signature over `message`.
    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool;

    /// Whether every signature verifies over `message` (the caller checks count, order and
    /// membership). Implementations may batch.
    fn verify_all(&self, message: &[u8], signatures: &[ValidatorSignature]) -> bool {
        signatures
            .iter()
            .all(|s| self.verify(s.validator, message, &s.signature))
    }

    /// Checks a proposed block's transactions before the replica votes for it: each decodes,
    /// is for this chain and carries a valid signature (checked in one parallel batch by the
    /// node). `verified(i)` says the i-th transaction is already in this replica's mempool, so
    /// its signature was checked on admission and need not be checked again. Header fields are
    /// the replica's job.
    fn check_block_txs(
        &self,
        block: &Block,
        verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String>;

    /// Checks transactions forwarded by a peer before they enter the mempool; one answer per
    /// transaction: its [`TxMeta`] if it passes, `None` if refused (implementations decode
    /// each once and verify the signatures in one batch).
    fn check_txs(&self, txs: &[Bytes]) -> Vec<Option<TxMeta>>;

    /// The sender, nonce and fee of a transaction, for the mempool's policy (the replica
    /// cannot decode transactions); `None` if it does not decode, and the replica refuses it
    /// and remembers its hash as rejected. Must be a pure function of the bytes.
    fn tx_meta(&self, tx: &[u8]) -> Option<TxMeta>;

    /// Whether a block this replica stored already contains the transaction with this hash
    /// (the node asks its transaction index). With the mempool's memory of recent commits this
    /// keeps a transaction from being ordered twice, even after a restart.
    fn tx_committed(&self, hash: &Hash) -> bool;
}

/// Ed25519 signing and verification against the genesis validator set; the node's
/// [`Context`] delegates its signature methods here.
#[derive(Debug, Clone)]
pub struct Ed25519Keys {
    key: SecretKey,
    validators: ValidatorSet,
}

impl Ed25519Keys {
    /// Keys for the validator holding `key` in `validators`.
    pub fn new(key: SecretKey, validators: ValidatorSet) -> Self {
        Ed25519Keys { key, validators }
    }

    /// Signs with this validator's key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }

    /// Verifies one validator's signature.
    pub fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.validators.verify_one(validator, message, signature)
    }

    /// Verifies a set of signatures in one batch (ZIP-215: same answer as one by one).
    pub fn verify_all(&self, message: &[u8], signatures: &[ValidatorSignature]) -> bool {
        let mut keys = Vec::with_capacity(signatures.len());
        for s in signatures {
            match self.validators.get(s.validator) {
                Some(v) => keys.push(v.public_key),
                None => return false,
            }
        }
        let items: Vec<lanes_types::SignedMessage> = signatures
            .iter()
            .zip(&keys)
            .map(|(s, k)| lanes_types::SignedMessage {
                public_key: k,
                message,
                signature: &s.signature,
            })
            .collect();
        lanes_types::verify_batch(&items).is_ok()
    }
}
