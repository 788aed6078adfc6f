//! The receipts root: a Merkle root ([`lanes_types::merkle`]) over a block's receipts in
//! block order, each leaf naming its transaction. The execution certificate signs it beside
//! the state root, so a receipt with its inclusion proof is checked by a light client against
//! a quorum's signatures alone.

use crate::ledger::Receipt;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{merkle, CheckpointCertificate, Hash, QuorumError, ValidatorSet};
use rayon::prelude::*;
use thiserror::Error;

/// The leaf of transaction `tx_hash`'s receipt: `H(0x00 || tx_hash || receipt)`, the receipt
/// in its canonical encoding (status, fee paid, outputs).
pub fn receipt_leaf(tx_hash: &Hash, receipt: &Receipt) -> Hash {
    let mut data = Vec::with_capacity(32 + 16 + 8 * receipt.outputs.len());
    tx_hash.encode(&mut data);
    receipt.encode(&mut data);
    merkle::leaf_hash(&data)
}

/// The leaves of a block's receipts, `tx_hashes[i]` naming the transaction of `receipts[i]`
/// (computed on the current rayon pool).
pub fn receipt_leaves(tx_hashes: &[Hash], receipts: &[Receipt]) -> Vec<Hash> {
    assert_eq!(
        tx_hashes.len(),
        receipts.len(),
        "one receipt per transaction"
    );
    tx_hashes
        .par_iter()
        .zip(receipts.par_iter())
        .map(|(hash, receipt)| receipt_leaf(hash, receipt))
        .collect()
}

/// The receipts root of a block whose transactions hash to `tx_hashes`.
pub fn receipts_root(tx_hashes: &[Hash], receipts: &[Receipt]) -> Hash {
    merkle::root(&receipt_leaves(tx_hashes, receipts))
}

/// Why a receipt is not shown certified.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReceiptProofError {
    /// The certificate's signatures are not a quorum of the validator set.
    #[error("the execution certificate is not a quorum's: {0}")]
    Certificate(#[from] QuorumError),
    /// The receipt bytes do not decode.
    #[error("the receipt does not decode: {0}")]
    Receipt(lanes_types::DecodeError),
    /// The proof does not lead from this transaction's receipt to the certified receipts root.
    #[error("the receipt's proof does not lead to the certified receipts root {0}")]
    Proof(Hash),
}

/// What a light client checks of a certified receipt, trusting only the validator set (from
/// genesis): `cert` carries a quorum's CHECKPOINT signatures on `chain_id`, and `proof` leads
/// from the leaf of (`tx_hash`, `receipt`) to the certified receipts root. Returns the receipt.
pub fn verify_certified(
    tx_hash: &Hash,
    receipt: &[u8],
    proof: &merkle::Proof,
    cert: &CheckpointCertificate,
    chain_id: &str,
    validators: &ValidatorSet,
) -> Result<Receipt, ReceiptProofError> {
    cert.verify(chain_id, validators)?;
    let receipt = Receipt::from_bytes(receipt).map_err(ReceiptProofError::Receipt)?;
    if !proof.verify(receipt_leaf(tx_hash, &receipt), &cert.receipts_root) {
        return Err(ReceiptProofError::Proof(cert.receipts_root));
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{FailReason, Status};

    fn receipt(fee_paid: u64, outputs: Vec<u64>) -> Receipt {
        Receipt {
            status: Status::Success,
            fee_paid,
            outputs,
        }
    }

    #[test]
    fn the_root_changes_with_any_receipt_field_its_transaction_or_the_order() {
        let hashes: Vec<Hash> = (0..5u8).map(|i| Hash::digest(&[i])).collect();
        let receipts: Vec<Receipt> = (0..5).map(|i| receipt(1, vec![i])).collect();
        let root = receipts_root(&hashes, &receipts);
        let mut changed = Vec::new();
        let mut r = receipts.clone();
        r[3].fee_paid = 2;
        changed.push(receipts_root(&hashes, &r));
        let mut r = receipts.clone();
        r[0].outputs.push(0);
        changed.push(receipts_root(&hashes, &r));
        let mut r = receipts.clone();
        r[4].status = Status::Failed(FailReason::InsufficientBalance);
        changed.push(receipts_root(&hashes, &r));
        let mut h = hashes.clone();
        h[2] = Hash::digest(b"another");
        changed.push(receipts_root(&h, &receipts));
        let (mut h, mut r) = (hashes.clone(), receipts.clone());
        h.swap(0, 1);
        r.swap(0, 1);
        changed.push(receipts_root(&h, &r));
        for other in changed {
            assert_ne!(other, root);
        }
        let leaves = receipt_leaves(&hashes, &receipts);
        let proof = merkle::prove(&leaves, 3).expect("a leaf");
        assert!(proof.verify(receipt_leaf(&hashes[3], &receipts[3]), &root));
    }

    #[test]
    fn a_light_client_accepts_a_quorums_receipt_and_names_every_other_failure() {
        use lanes_types::cert::checkpoint_message;
        use lanes_types::{ExecRoots, SecretKey, ValidatorInfo, ValidatorSignature};
        let keys: Vec<SecretKey> = (0..4)
            .map(|i| SecretKey::from_label(&format!("receipts-{i}")))
            .collect();
        let validators = ValidatorSet::new(ValidatorInfo::local(&keys, 7000));
        let hashes: Vec<Hash> = (0..3u8).map(|i| Hash::digest(&[i])).collect();
        let receipts: Vec<Receipt> = (0..3).map(|i| receipt(1, vec![i])).collect();
        let leaves = receipt_leaves(&hashes, &receipts);
        let roots = ExecRoots {
            state_root: Hash::digest(b"state"),
            receipts_root: merkle::root(&leaves),
        };
        let block = Hash::digest(b"block");
        let sign = |signers: &[usize], chain: &str| CheckpointCertificate {
            height: 7,
            block_hash: block,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            signatures: signers
                .iter()
                .map(|&v| ValidatorSignature {
                    validator: v as u32,
                    signature: keys[v].sign(&checkpoint_message(chain, 7, &block, &roots)),
                })
                .collect(),
        };
        let proof = merkle::prove(&leaves, 1).unwrap();
        let bytes = receipts[1].to_bytes();
        let check = |cert: &CheckpointCertificate, hash: &Hash, bytes: &[u8]| {
            verify_certified(hash, bytes, &proof, cert, "c", &validators)
        };
        let good = sign(&[0, 1, 3], "c");
        assert_eq!(check(&good, &hashes[1], &bytes), Ok(receipts[1].clone()));
        // Too few signers, or signatures for another chain.
        let few = sign(&[0, 1], "c");
        assert!(matches!(
            check(&few, &hashes[1], &bytes),
            Err(ReceiptProofError::Certificate(_))
        ));
        let other = sign(&[0, 1, 2], "other");
        assert!(matches!(
            check(&other, &hashes[1], &bytes),
            Err(ReceiptProofError::Certificate(_))
        ));
        // Another receipt, or this receipt for another transaction.
        let altered = receipt(2, vec![1]).to_bytes();
        assert_eq!(
            check(&good, &hashes[1], &altered),
            Err(ReceiptProofError::Proof(roots.receipts_root))
        );
        assert_eq!(
            check(&good, &hashes[0], &bytes),
            Err(ReceiptProofError::Proof(roots.receipts_root))
        );
        assert!(matches!(
            check(&good, &hashes[1], &[9]),
            Err(ReceiptProofError::Receipt(_))
        ));
    }
}
