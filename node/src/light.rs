//! The light client's check of a `GET /tx/{hash}` answer ([`TxInfo`]), trusting nothing but
//! the validator set from genesis: the inverse of what `api/tx.rs` builds, kept next to it so
//! the two cannot drift apart. `lanes tx --verify` and the tests call [`verify_tx`].
//!
//! Verified means: the execution certificate is signed by a quorum of the genesis validators,
//! the receipt's Merkle proof leads from the leaf of (the transaction asked for, its receipt)
//! to the certified receipts root ([`lanes_executor::verify_certified`]), and everything else
//! the answer shows (height, block hash, index, the receipt's fields, the transaction's
//! fields) is what those checked bytes say.

use crate::api::tx::{receipt_view, tx_view};
use lanes_api::{TxInfo, TxStatus};
use lanes_executor::{verify_certified, Receipt, ReceiptProofError};
use lanes_types::codec::Decode;
use lanes_types::{merkle, parse_hex, tx_hash, CheckpointCertificate, Genesis, Hash};
use thiserror::Error;

/// A receipt a quorum certified, as [`verify_tx`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The certificate behind it.
    pub certificate: CheckpointCertificate,
    /// Its position in the block.
    pub index: u64,
}

/// Why a `/tx` answer is not a verified, certified receipt.
#[derive(Debug, Error)]
pub enum LightError {
    /// The node does not report the transaction certified (yet).
    #[error("not certified yet: the node reports it {0}")]
    NotCertified(TxStatus),
    /// A certified answer lacks a part, or a part does not decode.
    #[error("the answer is malformed: {0}")]
    Malformed(String),
    /// The certificate or the receipt's proof does not check out.
    #[error(transparent)]
    Check(#[from] ReceiptProofError),
    /// The answer shows something the checked bytes do not say.
    #[error("the answer's {0} is not what the certified data says")]
    Mismatch(&'static str),
}

/// Checks that `info`, the answer to `GET /tx/{asked}`, carries a receipt of transaction
/// `asked` certified by a quorum of `genesis`'s validators, and that all it shows is what the
/// checked bytes say. Returns the verified receipt and its certificate.
pub fn verify_tx(
    asked: &Hash,
    info: &TxInfo,
    genesis: &Genesis,
) -> Result<VerifiedReceipt, LightError> {
    if info.status != TxStatus::Certified {
        return Err(LightError::NotCertified(info.status));
    }
    let malformed = |what: &str| LightError::Malformed(what.to_string());
    let cert_info = info
        .certificate
        .as_ref()
        .ok_or_else(|| malformed("no certificate"))?;
    let proof = info
        .receipt_proof
        .as_ref()
        .ok_or_else(|| malformed("no receipt proof"))?;
    let receipt = info
        .receipt
        .as_ref()
        .ok_or_else(|| malformed("no receipt"))?;
    let cert = hex_field(&cert_info.encoded, "certificate")?;
    let cert = CheckpointCertificate::from_bytes(&cert)
        .map_err(|e| LightError::Malformed(format!("the certificate does not decode: {e}")))?;
    let siblings = proof.siblings.iter().map(|s| s.parse::<Hash>());
    let proof = merkle::Proof {
        index: proof.index,
        leaves: proof.leaves,
        siblings: siblings
            .collect::<Result<_, _>>()
            .map_err(|e| LightError::Malformed(format!("a proof sibling is not a hash: {e}")))?,
    };
    let encoded = hex_field(&receipt.encoded, "receipt")?;
    let vs = genesis.validator_set();
    let checked = verify_certified(asked, &encoded, &proof, &cert, &genesis.chain_id, &vs)?;
    let verified = VerifiedReceipt {
        receipt: checked,
        certificate: cert,
        index: proof.index,
    };
    check_shown(asked, info, &verified)?;
    Ok(verified)
}

/// The bytes of a hex field of the answer.
fn hex_field(s: &str, what: &str) -> Result<Vec<u8>, LightError> {
    parse_hex(s).map_err(|e| LightError::Malformed(format!("the {what} is not hex: {e}")))
}

/// Checks that what `info` shows beside the checked bytes agrees with them.
fn check_shown(asked: &Hash, info: &TxInfo, v: &VerifiedReceipt) -> Result<(), LightError> {
    let cert = &v.certificate;
    let same = [
        (info.hash == asked.to_string(), "transaction hash"),
        (info.height == Some(cert.height), "height"),
        (
            info.block_hash.as_deref() == Some(&cert.block_hash.to_string()),
            "block hash",
        ),
        (info.index.map(u64::from) == Some(v.index), "index"),
        (
            info.receipt.as_ref() == Some(&receipt_view(&v.receipt)),
            "receipt",
        ),
        (
            info.certificate.as_ref() == Some(&crate::api::tx::certificate_info(cert)),
            "certificate summary",
        ),
    ];
    if let Some((_, what)) = same.iter().find(|(ok, _)| !ok) {
        return Err(LightError::Mismatch(what));
    }
    // The transaction itself, when shown, must be the one asked for, decoded faithfully.
    if let Some(tx) = &info.tx {
        let raw = hex_field(&tx.raw, "transaction")?;
        if tx_hash(&raw) != *asked {
            return Err(LightError::Mismatch(
                "transaction (its bytes hash to another)",
            ));
        }
        if tx_view(&raw) != *tx {
            return Err(LightError::Mismatch("transaction's fields"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tx::certificate_info;
    use crate::fixtures;
    use lanes_api::ReceiptProof;
    use lanes_executor::tx::{Operation, Transaction};
    use lanes_executor::{receipt_leaves, Status};
    use lanes_types::cert::checkpoint_message;
    use lanes_types::codec::Encode;
    use lanes_types::{to_hex, ExecRoots, QuorumError, SecretKey, ValidatorSignature};

    /// A block of three transfers, certified by `signers`: the answer about its second one.
    fn answer(g: &Genesis, keys: &[SecretKey], signers: &[u32]) -> (Hash, TxInfo) {
        let raws: Vec<Vec<u8>> = (0..3u64)
            .map(|nonce| {
                let op = Operation::Transfer {
                    asset: 0,
                    to: keys[1].public_key().address(),
                    amount: 10 + nonce,
                };
                let tx = Transaction {
                    chain_id: g.chain_id.clone(),
                    sender: keys[0].public_key(),
                    nonce,
                    fee: g.params.min_fee,
                    op,
                };
                tx.sign(&keys[0]).to_bytes()
            })
            .collect();
        let hashes: Vec<Hash> = raws.iter().map(|r| tx_hash(r)).collect();
        let receipts: Vec<Receipt> = (0..3)
            .map(|i| Receipt {
                status: Status::Success,
                fee_paid: g.params.min_fee,
                outputs: vec![i],
            })
            .collect();
        let leaves = receipt_leaves(&hashes, &receipts);
        let (height, block_hash) = (7, Hash::digest(b"block 7"));
        let roots = ExecRoots {
            state_root: Hash::digest(b"state"),
            receipts_root: merkle::root(&leaves),
        };
        let msg = checkpoint_message(&g.chain_id, height, &block_hash, &roots);
        let signatures = signers
            .iter()
            .map(|&i| ValidatorSignature {
                validator: i,
                signature: keys[i as usize].sign(&msg),
            })
            .collect();
        let cert = CheckpointCertificate {
            height,
            block_hash,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            signatures,
        };
        let proof = merkle::prove(&leaves, 1).expect("a leaf");
        let info = TxInfo {
            hash: hashes[1].to_string(),
            status: TxStatus::Certified,
            height: Some(height),
            index: Some(1),
            block_hash: Some(block_hash.to_string()),
            tx: Some(tx_view(&raws[1])),
            receipt: Some(receipt_view(&receipts[1])),
            certificate: Some(certificate_info(&cert)),
            receipt_proof: Some(ReceiptProof {
                index: proof.index,
                leaves: proof.leaves,
                siblings: proof.siblings.iter().map(Hash::to_string).collect(),
            }),
        };
        (hashes[1], info)
    }

    #[test]
    fn a_quorums_receipt_verifies_and_every_tampering_is_named() {
        let keys = fixtures::keys("light");
        let g = fixtures::genesis("light", &keys);
        let (hash, info) = answer(&g, &keys, &[0, 1, 3]);
        let v = verify_tx(&hash, &info, &g).expect("verified");
        assert_eq!((v.index, v.receipt.outputs.clone()), (1, vec![1]));

        let mut committed = info.clone();
        committed.status = TxStatus::Committed;
        let e = verify_tx(&hash, &committed, &g).unwrap_err();
        assert!(
            matches!(e, LightError::NotCertified(TxStatus::Committed)),
            "{e}"
        );

        let (_, few) = answer(&g, &keys, &[0, 2]);
        let e = verify_tx(&hash, &few, &g).unwrap_err();
        let want = QuorumError::NotEnoughSignatures { got: 2, need: 3 };
        assert!(
            matches!(&e, LightError::Check(ReceiptProofError::Certificate(q)) if *q == want),
            "{e}"
        );
        assert!(e.to_string().contains("not a quorum's"), "{e}");

        let mut altered = info.clone();
        let mut receipt = v.receipt.clone();
        receipt.fee_paid += 1;
        altered.receipt = Some(receipt_view(&receipt));
        let e = verify_tx(&hash, &altered, &g).unwrap_err();
        assert!(
            matches!(e, LightError::Check(ReceiptProofError::Proof(_))),
            "{e}"
        );

        let mut shown = info.clone();
        shown.receipt.as_mut().unwrap().outputs = vec![99];
        let e = verify_tx(&hash, &shown, &g).unwrap_err();
        assert!(matches!(e, LightError::Mismatch("receipt")), "{e}");

        let mut moved = info.clone();
        moved.height = Some(8);
        let e = verify_tx(&hash, &moved, &g).unwrap_err();
        assert!(matches!(e, LightError::Mismatch("height")), "{e}");

        let other = Hash::digest(b"another transaction");
        let e = verify_tx(&other, &info, &g).unwrap_err();
        assert!(
            matches!(e, LightError::Check(ReceiptProofError::Proof(_))),
            "{e}"
        );

        let mut broken = info;
        broken.certificate.as_mut().unwrap().encoded = to_hex([1u8, 2, 3]);
        let e = verify_tx(&hash, &broken, &g).unwrap_err();
        assert!(matches!(e, LightError::Malformed(_)), "{e}");
    }
}
