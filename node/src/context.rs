//! What the replica needs from the node ([`NodeContext`]: keys, the executor's stateless
//! checks, the transaction index) and the node's clock.

use lanes_consensus::{Context, Ed25519Keys, TxMeta};
use lanes_executor::tx::{check_stateless_unsigned, verify_signatures, SignedTransaction};
use lanes_storage::Store;
use lanes_types::{Block, Decode, Genesis, Hash, Signature};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds on a monotonic clock that starts at the Unix time of the node's start.
#[derive(Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            base_ms,
            start: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, never going backwards.
    pub fn now(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The node's [`Context`]: ed25519 keys, the executor's stateless checks, the transaction index.
pub struct NodeContext {
    /// Signing and verification.
    pub keys: Ed25519Keys,
    /// Chain id and parameters for the stateless checks.
    pub genesis: Genesis,
    /// Storage, for the transaction index.
    pub store: Arc<Store>,
}

impl Context for NodeContext {
    fn sign(&self, message: &[u8]) -> Signature {
        self.keys.sign(message)
    }

    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.keys.verify(validator, message, signature)
    }

    fn verify_all(&self, message: &[u8], signatures: &[lanes_types::ValidatorSignature]) -> bool {
        self.keys.verify_all(message, signatures)
    }

    fn check_block_txs(
        &self,
        block: &Block,
        verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        let mut unverified = Vec::new();
        for (i, raw) in block.txs.iter().enumerate() {
            let stx = check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params)
                .map_err(|e| e.to_string())?;
            if !verified(i) {
                unverified.push(stx);
            }
        }
        verify_signatures(&unverified).map_err(|bad| format!("bad signatures at {bad:?}"))
    }

    fn check_txs(&self, txs: &[lanes_types::Bytes]) -> Vec<Option<TxMeta>> {
        let decoded: Vec<Option<_>> = txs
            .iter()
            .map(|raw| {
                check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params).ok()
            })
            .collect();
        let candidates: Vec<_> = decoded.iter().flatten().cloned().collect();
        let bad: Vec<usize> = verify_signatures(&candidates).err().unwrap_or_default();
        let mut k = 0;
        decoded
            .iter()
            .map(|d| {
                let stx = d.as_ref()?;
                let ok = !bad.contains(&k);
                k += 1;
                ok.then(|| meta_of(stx))
            })
            .collect()
    }

    fn tx_meta(&self, tx: &[u8]) -> Option<TxMeta> {
        SignedTransaction::from_bytes(tx)
            .ok()
            .map(|stx| meta_of(&stx))
    }

    fn tx_committed(&self, hash: &Hash) -> bool {
        matches!(self.store.tx_location(hash), Ok(Some(_)))
    }
}

/// The mempool's view of a decoded transaction: sender, nonce and fee.
fn meta_of(stx: &SignedTransaction) -> TxMeta {
    TxMeta {
        sender: stx.tx.sender.address(),
        nonce: stx.tx.nonce,
        fee: stx.tx.fee,
    }
}
