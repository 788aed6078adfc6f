//! ed25519 keys, signatures and account addresses.
//!
//! Verification follows ZIP-215 (through `ed25519-zebra`), so a batch of signatures is accepted
//! exactly when every signature in it is accepted on its own: replicas that verify one by one
//! and replicas that verify in batches always agree.

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::hash::{parse_hex_array, Hash, ParseHexError};
use crate::serde_as_hex;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::{batch, SigningKey, VerificationKey, VerificationKeyBytes};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Why a signature or key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The 32 bytes are not an encoding of a curve point.
    #[error("public key is not a valid ed25519 point")]
    InvalidPublicKey,
    /// The key is a point of small order: it would accept forged signatures.
    #[error("public key is a small-order point")]
    WeakPublicKey,
    /// The key is not in the canonical encoding of its point.
    #[error("public key is not canonically encoded")]
    NonCanonicalPublicKey,
    /// The signature does not verify for this key and message.
    #[error("signature does not verify")]
    BadSignature,
}

/// A validator's or account's secret signing key (the 32-byte ed25519 seed).
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::new(rand::rngs::OsRng))
    }

    /// The key with this 32-byte seed (deterministic: for tests and key files).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from(seed))
    }

    /// A deterministic test key derived from a label; never use for real funds.
    pub fn from_label(label: &str) -> SecretKey {
        Self::from_seed(Hash::tagged("lanes/test-key", label.as_bytes()).0)
    }

    /// The 32-byte seed, to be written to a key file.
    pub fn seed(&self) -> [u8; 32] {
        <[u8; 32]>::from(self.0)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(VerificationKeyBytes::from(VerificationKey::from(&self.0)).into())
    }

    /// Signs `message` (callers include a domain tag in the message).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// An ed25519 public key (32 bytes). Whether it is a valid point is checked on verification and
/// by [`PublicKey::validate`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Checks that the key is fit to be a validator's or account's key: a canonically encoded
    /// curve point that is not of small order. (ZIP-215 verification accepts small-order keys,
    /// and such a key accepts forged signatures, so keys are vetted where they enter: genesis
    /// and transactions.)
    pub fn validate(&self) -> Result<(), CryptoError> {
        let point = CompressedEdwardsY(self.0)
            .decompress()
            .ok_or(CryptoError::InvalidPublicKey)?;
        if point.is_small_order() {
            return Err(CryptoError::WeakPublicKey);
        }
        if point.compress().0 != self.0 {
            return Err(CryptoError::NonCanonicalPublicKey);
        }
        Ok(())
    }

    /// Verifies one signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let key = VerificationKey::try_from(self.0).map_err(|_| CryptoError::InvalidPublicKey)?;
        key.verify(&ed25519_zebra::Signature::from(signature.0), message)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// The account address controlled by this key.
    pub fn address(&self) -> Address {
        let h = Hash::tagged("lanes/address", &self.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

/// An account address: the first 20 bytes of a tagged SHA-256 of the account's public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The first 8 hex characters, for tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

macro_rules! hex_bytes_type {
    ($ty:ident, $n:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), hex::encode(&self.0[..4]))
            }
        }
        impl FromStr for $ty {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex_array::<$n>(s).map($ty)
            }
        }
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }
        impl Decode for $ty {
            const MIN_SIZE: usize = $n;
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($ty(r.take_array()?))
            }
        }
        serde_as_hex!($ty);
    };
}
hex_bytes_type!(PublicKey, 32);
hex_bytes_type!(Signature, 64);
hex_bytes_type!(Address, 20);

/// One signature to check in a batch.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    /// Who claims to have signed.
    pub public_key: &'a PublicKey,
    /// What was signed.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// Verifies many signatures at once. Returns `Ok` when all verify; otherwise the indexes of the
/// ones that fail, found by checking each individually (ZIP-215 makes both answers agree).
/// An empty batch verifies.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), Vec<usize>> {
    if items.is_empty() {
        return Ok(());
    }
    let mut verifier = batch::Verifier::new();
    for item in items {
        verifier.queue((
            VerificationKeyBytes::from(item.public_key.0),
            ed25519_zebra::Signature::from(item.signature.0),
            item.message,
        ));
    }
    if verifier.verify(rand::thread_rng()).is_ok() {
        return Ok(());
    }
    let invalid: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.public_key.verify(it.message, it.signature).is_err())
        .map(|(i, _)| i)
        .collect();
    // ZIP-215: a batch fails only if some member fails on its own.
    assert!(
        !invalid.is_empty(),
        "batch and single ed25519 verification disagree"
    );
    Err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SecretKey::from_label("alice");
        let sig = k.sign(b"hello");
        assert!(k.public_key().verify(b"hello", &sig).is_ok());
        assert_eq!(
            k.public_key().verify(b"hellO", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(SecretKey::from_seed(k.seed()).public_key(), k.public_key());
    }

    #[test]
    fn batch_reports_the_bad_members() {
        let keys: Vec<SecretKey> = (0..5)
            .map(|i| SecretKey::from_label(&i.to_string()))
            .collect();
        let pks: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        sigs[3] = keys[3].sign(b"other");
        let items: Vec<SignedMessage> = (0..5)
            .map(|i| SignedMessage {
                public_key: &pks[i],
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        assert_eq!(verify_batch(&items), Err(vec![3]));
        assert_eq!(verify_batch(&items[..3]), Ok(()));
    }
}
