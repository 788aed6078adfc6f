//! The receipts root: a Merkle root ([`lanes_types::merkle`]) over a block's receipts in
//! block order, each leaf naming its transaction. The execution certificate signs it beside
//! the state root, so a receipt with its inclusion proof is checked by a light client against
//! a quorum's signatures alone.

use crate::ledger::Receipt;
use lanes_types::codec::Encode;
use lanes_types::{merkle, Hash};
use rayon::prelude::*;

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
}
