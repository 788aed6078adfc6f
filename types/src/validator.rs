//! The validator set: who may vote, how many faults it tolerates, and quorum checks.

use crate::codec_struct;
use crate::crypto::{verify_batch, PublicKey, Signature, SignedMessage};
use thiserror::Error;

/// One validator: its name, its consensus key and where its peers reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// Human-readable name (unique in the set).
    pub name: String,
    /// The key that signs its votes and its TLS certificate.
    pub public_key: PublicKey,
    /// `host:port` of its validator-to-validator QUIC endpoint.
    pub address: String,
}
codec_struct!(ValidatorInfo {
    name,
    public_key,
    address
});

impl ValidatorInfo {
    /// Validators named `validator-<i>` at `127.0.0.1:<base_port + i>`, one per key: the
    /// layout local networks and tests use.
    pub fn local(keys: &[crate::crypto::SecretKey], base_port: u16) -> Vec<ValidatorInfo> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                name: format!("validator-{i}"),
                public_key: k.public_key(),
                address: format!("127.0.0.1:{}", base_port as usize + i),
            })
            .collect()
    }
}

/// A signature by the validator at `validator` (its index in the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatorSignature {
    /// Index of the signer in the validator set.
    pub validator: u32,
    /// Its signature.
    pub signature: crate::crypto::Signature,
}
codec_struct!(ValidatorSignature {
    validator,
    signature
});

/// Why a set of signatures is not a quorum certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuorumError {
    /// Fewer signatures than a quorum.
    #[error("{got} signatures, a quorum needs {need}")]
    NotEnoughSignatures {
        /// Signatures present.
        got: usize,
        /// Quorum size.
        need: usize,
    },
    /// Signer indexes not strictly ascending (duplicates or unsorted).
    #[error("signer indexes must be strictly ascending")]
    UnsortedSigners,
    /// A signer index outside the set.
    #[error("validator index {0} is not in the validator set")]
    UnknownValidator(u32),
    /// Signatures that do not verify.
    #[error("bad signature from validator(s) {0:?}")]
    BadSignatures(Vec<u32>),
}

/// The validators from genesis, in genesis order (a validator's index is its position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<ValidatorInfo>,
}

impl ValidatorSet {
    /// Wraps validated validator entries (genesis checks uniqueness and size).
    pub fn new(validators: Vec<ValidatorInfo>) -> Self {
        assert!(!validators.is_empty(), "a validator set cannot be empty");
        Self { validators }
    }

    /// All validators in index order.
    pub fn validators(&self) -> &[ValidatorInfo] {
        &self.validators
    }

    /// Number of validators, n.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The number of byzantine validators tolerated: f = floor((n - 1) / 3).
    pub fn max_faulty(&self) -> usize {
        (self.len() - 1) / 3
    }

    /// Quorum size: the smallest q with 2q - n >= f + 1, so two quorums share an honest member.
    /// It equals 2f + 1 when n = 3f + 1.
    pub fn quorum(&self) -> usize {
        (self.len() + self.max_faulty()) / 2 + 1
    }

    /// The validator that leads `view`: view mod n.
    pub fn primary(&self, view: u64) -> u32 {
        (view % self.len() as u64) as u32
    }

    /// The validator at `index`.
    pub fn get(&self, index: u32) -> Option<&ValidatorInfo> {
        self.validators.get(index as usize)
    }

    /// The index of the validator with this key.
    pub fn index_of(&self, key: &PublicKey) -> Option<u32> {
        self.validators
            .iter()
            .position(|v| v.public_key == *key)
            .map(|i| i as u32)
    }

    /// Checks that `signatures` are a quorum of distinct validators, sorted by index, that all
    /// signed `message`.
    pub fn verify_quorum(
        &self,
        message: &[u8],
        signatures: &[ValidatorSignature],
    ) -> Result<(), QuorumError> {
        if signatures.len() < self.quorum() {
            return Err(QuorumError::NotEnoughSignatures {
                got: signatures.len(),
                need: self.quorum(),
            });
        }
        if signatures
            .windows(2)
            .any(|w| w[0].validator >= w[1].validator)
        {
            return Err(QuorumError::UnsortedSigners);
        }
        let mut keys: Vec<&PublicKey> = Vec::with_capacity(signatures.len());
        for s in signatures {
            let v = self
                .get(s.validator)
                .ok_or(QuorumError::UnknownValidator(s.validator))?;
            keys.push(&v.public_key);
        }
        let items: Vec<SignedMessage> = signatures
            .iter()
            .zip(&keys)
            .map(|(s, k)| SignedMessage {
                public_key: k,
                message,
                signature: &s.signature,
            })
            .collect();
        verify_batch(&items).map_err(|bad| {
            QuorumError::BadSignatures(bad.into_iter().map(|i| signatures[i].validator).collect())
        })
    }

    /// Verifies one validator's signature.
    pub fn verify_one(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.get(validator)
            .is_some_and(|v| v.public_key.verify(message, signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn set(n: usize) -> (Vec<SecretKey>, ValidatorSet) {
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::from_label(&format!("v{i}")))
            .collect();
        let infos = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                name: format!("v{i}"),
                public_key: k.public_key(),
                address: format!("127.0.0.1:{}", 7000 + i),
            })
            .collect();
        (keys, ValidatorSet::new(infos))
    }

    #[test]
    fn quorum_sizes_intersect_in_an_honest_validator() {
        for n in 4..40 {
            let (_, vs) = set(n);
            let (f, q) = (vs.max_faulty(), vs.quorum());
            assert!(n > 3 * f && n <= 3 * f + 3);
            assert!(2 * q > n + f, "n={n}");
            assert!(
                q <= n - f,
                "n={n}: a quorum must be reachable without the faulty"
            );
            if n == 3 * f + 1 {
                assert_eq!(q, 2 * f + 1);
            }
        }
    }

    #[test]
    fn verify_quorum_checks_count_order_membership_and_signatures() {
        let (keys, vs) = set(4);
        let msg = b"m";
        let sig = |i: usize| ValidatorSignature {
            validator: i as u32,
            signature: keys[i].sign(msg),
        };
        assert_eq!(vs.verify_quorum(msg, &[sig(0), sig(1), sig(3)]), Ok(()));
        assert!(matches!(
            vs.verify_quorum(msg, &[sig(0), sig(1)]),
            Err(QuorumError::NotEnoughSignatures { got: 2, need: 3 })
        ));
        assert_eq!(
            vs.verify_quorum(msg, &[sig(0), sig(0), sig(1)]),
            Err(QuorumError::UnsortedSigners)
        );
        let mut forged = sig(2);
        forged.validator = 3;
        assert_eq!(
            vs.verify_quorum(msg, &[sig(0), sig(1), forged]),
            Err(QuorumError::BadSignatures(vec![3]))
        );
        let mut stranger = sig(2);
        stranger.validator = 9;
        assert_eq!(
            vs.verify_quorum(msg, &[sig(0), sig(1), stranger]),
            Err(QuorumError::UnknownValidator(9))
        );
    }
}
