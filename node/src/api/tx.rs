//! `GET /tx/{hash}`: a transaction's status through its life (pending in this node's mempool or
//! in a block not executed yet, committed and executed here, certified by a quorum), with its
//! receipt and, once certified, the execution certificate and the receipt's Merkle proof under
//! the certified receipts root.
//!
//! A receipt is served as certified only when the proof built from this node's receipt leaves
//! leads from this receipt to the certified receipts root: a node whose result diverged
//! answers 409 rather than pass its own receipt off as the quorum's. Heights below the block
//! floor (pruned, or replaced by a state snapshot) are not served at all.

use super::limits::blocking;
use super::HttpError;
use super::{conflict, internal, not_found, parse_hash, unavailable, ApiResult, AppState};
use crate::shared::{Input, Shared};
use axum::extract::{Path, State};
use axum::Json;
use lanes_api::{
    DecodedTx, ExecutionCertificateInfo, OperationView, ReceiptProof, ReceiptView, TxInfo,
    TxStatus, TxView,
};
use lanes_executor::tx::{FieldValue, SignedTransaction};
use lanes_executor::{receipt_leaf, Receipt};
use lanes_storage::TxLocation;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{merkle, to_hex, CheckpointCertificate, Hash};

/// `GET /tx/{hash}`.
pub(super) async fn tx(State(s): State<AppState>, Path(hash): Path<String>) -> ApiResult<TxInfo> {
    let hash = parse_hash(&hash)?;
    let stored = move |s: &Shared| match s.store.tx_location(&hash).map_err(internal)? {
        Some(loc) => committed(s, hash, loc).map(Some),
        None => Ok(None),
    };
    if let Some(info) = blocking(&s.shared, stored).await? {
        return Ok(Json(info));
    }
    // Not executed when we looked. The consensus thread says pending until the block holding
    // it is stored, so if it says no, the transaction is stored now or unknown.
    let pending = pending(&s, hash).await?;
    match blocking(&s.shared, stored).await? {
        Some(info) => Ok(Json(info)),
        None if pending => Ok(Json(TxInfo {
            hash: hash.to_string(),
            status: TxStatus::Pending,
            height: None,
            index: None,
            block_hash: None,
            tx: None,
            receipt: None,
            certificate: None,
            receipt_proof: None,
        })),
        None => Err(not_found(format!(
            "transaction {hash} is neither in a committed block nor in this node's mempool"
        ))),
    }
}

/// Whether `hash` is pending on the consensus thread: in its mempool, or in a committed block
/// handed to the apply thread and not stored yet.
async fn pending(s: &Shared, hash: Hash) -> Result<bool, HttpError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.inputs
        .try_send(Input::Pending { hash, reply })
        .map_err(|_| unavailable("node busy, retry"))?;
    answer.await.map_err(|_| unavailable("node shutting down"))
}

/// A transaction in a block this node executed: committed, or certified with its proof.
fn committed(s: &Shared, hash: Hash, loc: TxLocation) -> Result<TxInfo, HttpError> {
    let floor = s.store.block_floor().map_err(internal)?;
    if loc.height < floor {
        return Err(not_found(format!(
            "transaction {hash} is at height {}, below this node's lowest block {floor} \
             (pruned, or replaced by a certified state snapshot): ask another node",
            loc.height
        )));
    }
    let block = s.store.block(loc.height).map_err(internal)?;
    let block = block.ok_or_else(|| internal("indexed block missing"))?;
    let raw = block.txs.get(loc.index as usize);
    let raw = raw.ok_or_else(|| internal("index out of range"))?;
    let stored = s.store.receipt(loc.height, loc.index).map_err(internal)?;
    let stored = stored.ok_or_else(|| internal("stored receipt missing"))?;
    let receipt = Receipt::from_bytes(&stored)
        .map_err(|e| internal(format!("stored receipt does not decode: {e}")))?;
    let cert = s
        .store
        .checkpoint_certificate(loc.height)
        .map_err(internal)?;
    let proof = match &cert {
        Some(cert) => Some(certified_proof(s, hash, loc, &receipt, cert)?),
        None => None,
    };
    Ok(TxInfo {
        hash: hash.to_string(),
        status: match cert {
            Some(_) => TxStatus::Certified,
            None => TxStatus::Committed,
        },
        height: Some(loc.height),
        index: Some(loc.index),
        block_hash: Some(block.hash().to_string()),
        tx: Some(tx_view(raw)),
        receipt: Some(receipt_view(&receipt)),
        certificate: cert.as_ref().map(certificate_info),
        receipt_proof: proof,
    })
}

/// The receipt's proof under `cert`'s receipts root, or 409 when this node's receipts for the
/// block are not the certified ones.
fn certified_proof(
    s: &Shared,
    hash: Hash,
    loc: TxLocation,
    receipt: &Receipt,
    cert: &CheckpointCertificate,
) -> Result<ReceiptProof, HttpError> {
    let diverged = || {
        conflict(format!(
            "this node's receipts at height {} are not the certified ones (its result \
             diverged): ask another node",
            loc.height
        ))
    };
    let leaves = s.store.receipt_leaves(loc.height).map_err(internal)?;
    let leaves = leaves.ok_or_else(diverged)?;
    // The proof is built from our leaves and checked from this receipt's leaf: it leads to the
    // certified root only if our receipts are the certified ones (one pass over the leaves).
    let proof = merkle::prove(&leaves, loc.index as usize).ok_or_else(diverged)?;
    if !proof.verify(receipt_leaf(&hash, receipt), &cert.receipts_root) {
        return Err(diverged());
    }
    Ok(ReceiptProof {
        index: proof.index,
        leaves: proof.leaves,
        siblings: proof.siblings.iter().map(Hash::to_string).collect(),
    })
}

/// An execution certificate as the API shows it.
pub(crate) fn certificate_info(c: &CheckpointCertificate) -> ExecutionCertificateInfo {
    ExecutionCertificateInfo {
        height: c.height,
        state_root: c.state_root.to_string(),
        receipts_root: c.receipts_root.to_string(),
        signers: c.signatures.iter().map(|s| s.validator).collect(),
        encoded: to_hex(c.to_bytes()),
    }
}

/// A transaction as the API shows it: decoded whole, and its bytes.
pub(crate) fn tx_view(raw: &[u8]) -> TxView {
    let decoded = SignedTransaction::from_bytes(raw)
        .ok()
        .map(|stx| DecodedTx {
            sender: stx.tx.sender_address().to_string(),
            nonce: stx.tx.nonce,
            fee: stx.tx.fee,
            op: operation_view(&stx.tx.op),
        });
    TxView {
        decoded,
        raw: to_hex(raw),
    }
}

/// Every field of an operation, typed.
fn operation_view(op: &lanes_executor::Operation) -> OperationView {
    let fields = op
        .fields()
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                FieldValue::Number(n) => serde_json::Value::from(n),
                FieldValue::Address(a) => serde_json::Value::from(a.to_string()),
                FieldValue::Text(t) => serde_json::Value::from(t),
            };
            (name.to_string(), value)
        })
        .collect();
    OperationView {
        kind: op.name().to_string(),
        fields,
    }
}

/// A receipt as the API shows it, with its canonical encoding.
pub(crate) fn receipt_view(r: &Receipt) -> ReceiptView {
    ReceiptView {
        status: format!("{:?}", r.status),
        success: matches!(r.status, lanes_executor::Status::Success),
        fee_paid: r.fee_paid,
        outputs: r.outputs.clone(),
        encoded: to_hex(r.to_bytes()),
    }
}
