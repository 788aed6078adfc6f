//! Certificates: a quorum's signatures over a commit decision or an execution result.
//!
//! The signed messages are built here, in one place, so that consensus (which signs), storage
//! (which keeps) and light clients (which verify) agree byte for byte.

use crate::codec::Encode;
use crate::codec_struct;
use crate::hash::Hash;
use crate::validator::{QuorumError, ValidatorSet, ValidatorSignature};

/// Starts a signed message with its domain tag, length-prefixed like [`Hash::tagged`], and the
/// chain id. Every message a validator signs starts this way, each kind with its own tag.
pub fn signed_message(tag: &str, chain_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    tag.to_string().encode(&mut out);
    chain_id.to_string().encode(&mut out);
    out
}

/// Certificates list signers strictly ascending by index: one canonical form, no duplicates.
fn signers_ascending<T: HasSignatures>(cert: &T) -> Result<(), &'static str> {
    if cert
        .signatures()
        .windows(2)
        .all(|w| w[0].validator < w[1].validator)
    {
        Ok(())
    } else {
        Err("certificate signers must be strictly ascending")
    }
}

trait HasSignatures {
    fn signatures(&self) -> &[ValidatorSignature];
}

/// The bytes a validator signs to PREPARE `block_hash` at (`view`, `height`) on `chain_id`.
pub fn prepare_vote_message(chain_id: &str, view: u64, height: u64, block_hash: &Hash) -> Vec<u8> {
    let mut out = signed_message("lanes/prepare", chain_id);
    view.encode(&mut out);
    height.encode(&mut out);
    block_hash.encode(&mut out);
    out
}

/// The bytes a validator signs to COMMIT `block_hash` at (`view`, `height`) on `chain_id`.
pub fn commit_vote_message(chain_id: &str, view: u64, height: u64, block_hash: &Hash) -> Vec<u8> {
    let mut out = signed_message("lanes/commit", chain_id);
    view.encode(&mut out);
    height.encode(&mut out);
    block_hash.encode(&mut out);
    out
}

/// What executing a block produced, as a CHECKPOINT signs it: the state root after the block
/// and the Merkle root over its receipts (`lanes_executor::receipts`). Two replicas agree on a
/// block's result only when both are equal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecRoots {
    /// State root after the block.
    pub state_root: Hash,
    /// Merkle root over the block's receipts, each naming its transaction.
    pub receipts_root: Hash,
}
codec_struct!(ExecRoots {
    state_root,
    receipts_root
});

impl std::fmt::Display for ExecRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state {} receipts {}",
            self.state_root.short(),
            self.receipts_root.short()
        )
    }
}

/// The bytes a validator signs in CHECKPOINT: after executing the block at `height` with hash
/// `block_hash`, it computed `roots` (state root, then receipts root).
pub fn checkpoint_message(
    chain_id: &str,
    height: u64,
    block_hash: &Hash,
    roots: &ExecRoots,
) -> Vec<u8> {
    let mut out = signed_message("lanes/checkpoint", chain_id);
    height.encode(&mut out);
    block_hash.encode(&mut out);
    roots.encode(&mut out);
    out
}

/// Proof that a quorum committed `block_hash` at `height` in `view`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCertificate {
    /// The view the quorum committed in.
    pub view: u64,
    /// Height of the committed block.
    pub height: u64,
    /// Hash of the committed block.
    pub block_hash: Hash,
    /// COMMIT signatures, strictly ascending by validator index.
    pub signatures: Vec<ValidatorSignature>,
}
codec_struct!(CommitCertificate { view, height, block_hash, signatures } check signers_ascending);

impl HasSignatures for CommitCertificate {
    fn signatures(&self) -> &[ValidatorSignature] {
        &self.signatures
    }
}

impl CommitCertificate {
    /// Checks the certificate's quorum of signatures against the validator set.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), QuorumError> {
        let msg = commit_vote_message(chain_id, self.view, self.height, &self.block_hash);
        validators.verify_quorum(&msg, &self.signatures)
    }
}

/// The execution certificate: a quorum signed that executing the block at `height` gives
/// `state_root` and receipts under `receipts_root`. Together with a Merkle proof (of a state
/// entry or of a receipt) it is all a light client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCertificate {
    /// Height of the executed block.
    pub height: u64,
    /// Hash of the executed block.
    pub block_hash: Hash,
    /// State root after executing it.
    pub state_root: Hash,
    /// Merkle root over its receipts.
    pub receipts_root: Hash,
    /// CHECKPOINT signatures, strictly ascending by validator index.
    pub signatures: Vec<ValidatorSignature>,
}
codec_struct!(CheckpointCertificate { height, block_hash, state_root, receipts_root, signatures } check signers_ascending);

impl HasSignatures for CheckpointCertificate {
    fn signatures(&self) -> &[ValidatorSignature] {
        &self.signatures
    }
}

impl CheckpointCertificate {
    /// The roots it certifies.
    pub fn roots(&self) -> ExecRoots {
        ExecRoots {
            state_root: self.state_root,
            receipts_root: self.receipts_root,
        }
    }

    /// Checks the certificate's quorum of signatures against the validator set.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), QuorumError> {
        let msg = checkpoint_message(chain_id, self.height, &self.block_hash, &self.roots());
        validators.verify_quorum(&msg, &self.signatures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::validator::ValidatorInfo;

    #[test]
    fn a_certificate_does_not_verify_for_another_block_or_chain() {
        let keys: Vec<SecretKey> = (0..4)
            .map(|i| SecretKey::from_label(&format!("c{i}")))
            .collect();
        let vs = ValidatorSet::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| ValidatorInfo {
                    name: format!("c{i}"),
                    public_key: k.public_key(),
                    address: String::new(),
                })
                .collect(),
        );
        let block_hash = Hash::digest(b"b");
        let msg = commit_vote_message("main", 2, 7, &block_hash);
        let cert = CommitCertificate {
            view: 2,
            height: 7,
            block_hash,
            signatures: (0..3)
                .map(|i| ValidatorSignature {
                    validator: i,
                    signature: keys[i as usize].sign(&msg),
                })
                .collect(),
        };
        assert_eq!(cert.verify("main", &vs), Ok(()));
        assert!(cert.verify("other", &vs).is_err());
        let mut moved = cert.clone();
        moved.height = 8;
        assert!(moved.verify("main", &vs).is_err());
    }
}
