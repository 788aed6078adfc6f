//! Transactions: what an account signs, its canonical encoding, the stateless checks a node runs
//! before a transaction enters the mempool, and batched parallel signature verification.

use lanes_types::codec::{Decode, DecodeError, Encode};
use lanes_types::{
    codec_struct, verify_batch, Address, CryptoError, Hash, ProtocolParams, PublicKey, SecretKey,
    Signature, SignedMessage,
};
use rayon::prelude::*;
use thiserror::Error;

/// Domain tag of the bytes a transaction's signature covers.
pub const TX_SIGN_TAG: &str = "lanes/tx-sign";

/// Identifier of an asset. Genesis assets are `0..n` in genesis order; asset 0 pays fees.
pub type AssetId = u32;

/// Identifier of an AMM pool, allocated sequentially from 0.
pub type PoolId = u32;

pub use crate::operation::{FieldValue, Operation};

/// The native asset: fees are paid in it and stakes are made in it.
pub const NATIVE_ASSET: AssetId = 0;

/// The signed content of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The chain this transaction is meant for (replay protection across chains).
    pub chain_id: String,
    /// The signing key; the sender's address is derived from it.
    pub sender: PublicKey,
    /// Must equal the sender's current nonce (0 for a fresh account).
    pub nonce: u64,
    /// Fee in the native asset; at least `min_fee`.
    pub fee: u64,
    /// What the transaction does.
    pub op: Operation,
}
codec_struct!(Transaction {
    chain_id,
    sender,
    nonce,
    fee,
    op
});

impl Transaction {
    /// The bytes the sender signs: the domain tag, then the canonical encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TX_SIGN_TAG.len() + 128);
        out.extend_from_slice(TX_SIGN_TAG.as_bytes());
        self.encode(&mut out);
        out
    }

    /// The sender's account address.
    pub fn sender_address(&self) -> Address {
        self.sender.address()
    }

    /// Signs the transaction with `key`. The caller makes sure `key` matches `self.sender`.
    pub fn sign(self, key: &SecretKey) -> SignedTransaction {
        let signature = key.sign(&self.signing_bytes());
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its sender's signature: what clients submit and blocks carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The signed content.
    pub tx: Transaction,
    /// ed25519 signature of [`Transaction::signing_bytes`] by `tx.sender`.
    pub signature: Signature,
}
codec_struct!(SignedTransaction { tx, signature });

impl SignedTransaction {
    /// The transaction hash (a tagged hash of the encoded signed transaction, as in blocks).
    pub fn hash(&self) -> Hash {
        lanes_types::tx_hash(&self.to_bytes())
    }

    /// Verifies the signature: the sender key must pass [`PublicKey::validate`] (ed25519
    /// verification under ZIP-215 accepts forged signatures for small-order keys) and the
    /// signature must verify under it.
    pub fn verify_signature(&self) -> Result<(), TxError> {
        self.tx.sender.validate().map_err(TxError::BadSenderKey)?;
        self.tx
            .sender
            .verify(&self.tx.signing_bytes(), &self.signature)
            .map_err(|_| TxError::BadSignature)
    }
}

/// Why a transaction was refused before execution.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    /// The bytes are larger than `params.max_tx_bytes`.
    #[error("transaction is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The bytes are not a canonically encoded signed transaction.
    #[error("transaction does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The transaction names another chain.
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The chain in the transaction.
        got: String,
    },
    /// The fee is below `params.min_fee`.
    #[error("fee {fee} is below the minimum {min}")]
    FeeTooLow {
        /// The fee offered.
        fee: u64,
        /// The minimum.
        min: u64,
    },
    /// The sender key is not a usable ed25519 key: not a curve point, a small-order point (for
    /// which forged signatures verify) or a non-canonical encoding.
    #[error("sender key rejected: {0}")]
    BadSenderKey(CryptoError),
    /// The signature does not verify against the sender key.
    #[error("signature does not verify")]
    BadSignature,
}

/// Everything a node checks about a transaction without looking at state: size, canonical
/// encoding, chain id, minimum fee, sender key and signature. Returns the decoded transaction.
pub fn check_stateless(
    raw: &[u8],
    chain_id: &str,
    params: &ProtocolParams,
) -> Result<SignedTransaction, TxError> {
    let stx = check_stateless_unsigned(raw, chain_id, params)?;
    stx.verify_signature()?;
    Ok(stx)
}

/// [`check_stateless`] without the sender key and signature checks, for callers that verify
/// signatures in a batch afterwards with [`verify_signatures`] (which checks keys too).
pub fn check_stateless_unsigned(
    raw: &[u8],
    chain_id: &str,
    params: &ProtocolParams,
) -> Result<SignedTransaction, TxError> {
    if raw.len() > params.max_tx_bytes as usize {
        return Err(TxError::TooLarge {
            size: raw.len(),
            max: params.max_tx_bytes,
        });
    }
    let stx = SignedTransaction::from_bytes(raw)?;
    if stx.tx.chain_id != chain_id {
        return Err(TxError::WrongChain {
            expected: chain_id.to_string(),
            got: stx.tx.chain_id.clone(),
        });
    }
    if stx.tx.fee < params.min_fee {
        return Err(TxError::FeeTooLow {
            fee: stx.tx.fee,
            min: params.min_fee,
        });
    }
    Ok(stx)
}

/// Signatures checked per `verify_batch` call in [`verify_signatures`].
pub const SIG_BATCH: usize = 64;

/// Verifies the signatures of a block's transactions: chunks of [`SIG_BATCH`] in parallel on the
/// current rayon pool (call it inside [`crate::Executor::install`] or any pool that is not a
/// tokio worker), each chunk one `lanes_types::verify_batch` call over the transactions whose
/// sender key passes [`PublicKey::validate`]. Returns the indexes of the transactions whose key
/// or signature fails, ascending; `Ok` when all verify.
pub fn verify_signatures(txs: &[SignedTransaction]) -> Result<(), Vec<usize>> {
    let bad: Vec<usize> = txs
        .par_chunks(SIG_BATCH)
        .enumerate()
        .flat_map_iter(|(chunk_idx, chunk)| {
            let base = chunk_idx * SIG_BATCH;
            // A small-order key would let a forged signature through the batch: leave such
            // transactions out of it and count them as failed.
            let (usable, weak): (Vec<usize>, Vec<usize>) =
                (0..chunk.len()).partition(|&i| chunk[i].tx.sender.validate().is_ok());
            let messages: Vec<Vec<u8>> = usable
                .iter()
                .map(|&i| chunk[i].tx.signing_bytes())
                .collect();
            let items: Vec<SignedMessage<'_>> = usable
                .iter()
                .zip(&messages)
                .map(|(&i, m)| SignedMessage {
                    public_key: &chunk[i].tx.sender,
                    message: m,
                    signature: &chunk[i].signature,
                })
                .collect();
            let failed = verify_batch(&items).err().unwrap_or_default();
            let mut bad: Vec<usize> = weak
                .into_iter()
                .chain(failed.into_iter().map(|j| usable[j]))
                .map(|i| base + i)
                .collect();
            bad.sort_unstable();
            bad.into_iter()
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ProtocolParams {
        ProtocolParams::local_defaults(Address([9; 20]))
    }

    fn sample(key: &SecretKey, nonce: u64) -> SignedTransaction {
        Transaction {
            chain_id: "test".into(),
            sender: key.public_key(),
            nonce,
            fee: 5,
            op: Operation::Swap {
                pool: 1,
                asset_in: 2,
                amount_in: 300,
                min_out: 4,
            },
        }
        .sign(key)
    }

    #[test]
    fn round_trip_and_stateless_check() {
        let k = SecretKey::from_label("a");
        let s = sample(&k, 3);
        let raw = s.to_bytes();
        assert_eq!(check_stateless(&raw, "test", &params()), Ok(s.clone()));
        assert!(matches!(
            check_stateless(&raw, "other", &params()),
            Err(TxError::WrongChain { .. })
        ));
        let mut p = params();
        p.min_fee = 6;
        assert_eq!(
            check_stateless(&raw, "test", &p),
            Err(TxError::FeeTooLow { fee: 5, min: 6 })
        );
        p = params();
        p.max_tx_bytes = 128;
        assert!(matches!(
            check_stateless(&raw, "test", &p),
            Err(TxError::TooLarge { .. })
        ));
        let mut bad = s.clone();
        bad.tx.nonce = 4;
        assert_eq!(
            check_stateless(&bad.to_bytes(), "test", &params()),
            Err(TxError::BadSignature)
        );
        assert!(matches!(
            check_stateless(&raw[..raw.len() - 1], "test", &params()),
            Err(TxError::Decode(_))
        ));
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(matches!(
            check_stateless(&trailing, "test", &params()),
            Err(TxError::Decode(_))
        ));
    }

    #[test]
    fn fields_name_every_field_whole_in_encoding_order() {
        let to = Address([9; 20]);
        let op = Operation::Transfer {
            asset: 3,
            to,
            amount: u64::MAX,
        };
        assert_eq!(
            op.fields(),
            vec![
                ("asset", FieldValue::Number(3)),
                ("to", FieldValue::Address(to)),
                ("amount", FieldValue::Number(u64::MAX)),
            ]
        );
        let op = Operation::CreateAsset {
            symbol: "LANE".into(),
            supply: 1,
        };
        assert_eq!(op.fields()[0], ("symbol", FieldValue::Text("LANE".into())));
    }

    /// The encoding of every operation, byte for byte: a change of tag, field order or width
    /// shows here.
    #[test]
    fn operation_encodings_are_fixed() {
        let a = Address([7; 20]);
        const EXPECTED: [&str; 14] = [
            "000000000107070707070707070707070707070707070707070000000000000002",
            "010000000241420000000000000003",
            "020000000400000005",
            "0300000006000000000000000700000000000000080000000000000009",
            "040000000a000000000000000b000000000000000c000000000000000d",
            "050000000e0000000f00000000000000100000000000000011",
            "0607070707070707070707070707070707070707070000000000000012",
            "0707070707070707070707070707070707070707070000000000000013",
            "08000000140000000000000015",
            "09000000160000000000000017",
            "0a000000180000000000000019",
            "0b0000001a000000000000001b",
            "0c07070707070707070707070707070707070707070000001c0000001d000000000000001e",
            "0d0000001f0000000000000020",
        ];
        let ops = [
            Operation::Transfer {
                asset: 1,
                to: a,
                amount: 2,
            },
            Operation::CreateAsset {
                symbol: "AB".into(),
                supply: 3,
            },
            Operation::CreatePool { a: 4, b: 5 },
            Operation::AddLiquidity {
                pool: 6,
                amount_a: 7,
                amount_b: 8,
                min_shares: 9,
            },
            Operation::RemoveLiquidity {
                pool: 10,
                shares: 11,
                min_a: 12,
                min_b: 13,
            },
            Operation::Swap {
                pool: 14,
                asset_in: 15,
                amount_in: 16,
                min_out: 17,
            },
            Operation::Stake {
                validator: a,
                amount: 18,
            },
            Operation::Unstake {
                validator: a,
                amount: 19,
            },
            Operation::Supply {
                asset: 20,
                amount: 21,
            },
            Operation::Withdraw {
                asset: 22,
                amount: 23,
            },
            Operation::Borrow {
                asset: 24,
                amount: 25,
            },
            Operation::Repay {
                asset: 26,
                amount: 27,
            },
            Operation::Liquidate {
                borrower: a,
                debt_asset: 28,
                collateral_asset: 29,
                amount: 30,
            },
            Operation::SetPrice {
                asset: 31,
                price: 32,
            },
        ];
        let got: Vec<String> = ops
            .iter()
            .map(|op| lanes_types::to_hex(op.to_bytes()))
            .collect();
        assert_eq!(got, EXPECTED);
        for op in &ops {
            assert_eq!(Operation::from_bytes(&op.to_bytes()).as_ref(), Ok(op));
        }
    }

    #[test]
    fn unknown_operation_tag_is_rejected() {
        let k = SecretKey::from_label("a");
        let s = sample(&k, 0);
        let mut raw = s.to_bytes();
        // chain id (4 + 4) + key 32 + nonce 8 + fee 8 = offset of the operation tag.
        let tag_at = 8 + 32 + 8 + 8;
        assert_eq!(raw[tag_at], 5);
        raw[tag_at] = 200;
        assert!(matches!(
            check_stateless(&raw, "test", &params()),
            Err(TxError::Decode(DecodeError::InvalidTag { tag: 200, .. }))
        ));
    }

    #[test]
    fn batch_verification_reports_bad_indexes() {
        let txs: Vec<SignedTransaction> = (0..150)
            .map(|i| sample(&SecretKey::from_label(&format!("k{}", i % 7)), i))
            .collect();
        assert_eq!(verify_signatures(&txs), Ok(()));
        let mut broken = txs.clone();
        broken[3].tx.fee += 1;
        broken[130].signature.0[0] ^= 1;
        assert_eq!(verify_signatures(&broken), Err(vec![3, 130]));
        assert_eq!(verify_signatures(&[]), Ok(()));
    }
}
