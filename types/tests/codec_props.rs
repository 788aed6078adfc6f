//! Property tests of the canonical encoding (`lanes_types::codec`) for every encodable type.
//!
//! For each type:
//! - `encode -> from_bytes` gives back the value and re-encoding gives the same bytes;
//! - `encode` appends to what is already in the buffer and `decode` stops at the value's end;
//! - every strict prefix of a valid encoding is rejected;
//! - a valid encoding followed by extra bytes is rejected with `TrailingBytes(extra)`;
//! - random bytes and single-byte mutations of valid encodings never panic, and whenever they do
//!   decode, re-encoding gives back exactly those bytes (one valid encoding per value);
//! - two values are equal exactly when their encodings are equal.

use lanes_types::codec::{encode_len, Decode, DecodeError, Encode, Reader, MAX_SEQUENCE_LEN};
use lanes_types::{
    payload_digest, Address, Block, BlockHeader, Bytes, CheckpointCertificate, CommitCertificate,
    Genesis, GenesisAsset, GenesisBalance, Hash, ProtocolParams, PublicKey, Signature,
    ValidatorInfo, ValidatorSignature,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::fmt::Debug;

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

/// Short strings over all of Unicode (multi-byte characters exercise the byte-length prefix).
fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(16).collect()),
    ]
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes)
}

fn arb_hash() -> impl Strategy<Value = Hash> {
    prop_oneof![
        1 => Just(Hash::ZERO),
        8 => any::<[u8; 32]>().prop_map(Hash),
    ]
}

fn arb_public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn arb_signature() -> impl Strategy<Value = Signature> {
    any::<[u8; 64]>().prop_map(Signature)
}

fn arb_address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (
        arb_string(),
        any::<u64>(),
        arb_hash(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        arb_hash(),
    )
        .prop_map(
            |(chain_id, height, parent, view, proposer, timestamp_ms, payload_digest)| {
                BlockHeader {
                    chain_id,
                    height,
                    parent,
                    view,
                    proposer,
                    timestamp_ms,
                    payload_digest,
                }
            },
        )
}

fn arb_block() -> impl Strategy<Value = Block> {
    (arb_header(), vec(arb_bytes(), 0..6)).prop_map(|(header, txs)| Block { header, txs })
}

fn arb_validator_signature() -> impl Strategy<Value = ValidatorSignature> {
    (any::<u32>(), arb_signature()).prop_map(|(validator, signature)| ValidatorSignature {
        validator,
        signature,
    })
}

fn arb_validator_info() -> impl Strategy<Value = ValidatorInfo> {
    (arb_string(), arb_public_key(), arb_string()).prop_map(|(name, public_key, address)| {
        ValidatorInfo {
            name,
            public_key,
            address,
        }
    })
}

/// Certificate signatures: strictly ascending by validator index, as decoding requires.
fn arb_signer_list() -> impl Strategy<Value = Vec<ValidatorSignature>> {
    vec(arb_validator_signature(), 0..6).prop_map(|mut sigs| {
        sigs.sort_by_key(|s| s.validator);
        sigs.dedup_by_key(|s| s.validator);
        sigs
    })
}

fn arb_commit_cert() -> impl Strategy<Value = CommitCertificate> {
    (any::<u64>(), any::<u64>(), arb_hash(), arb_signer_list()).prop_map(
        |(view, height, block_hash, signatures)| CommitCertificate {
            view,
            height,
            block_hash,
            signatures,
        },
    )
}

fn arb_checkpoint_cert() -> impl Strategy<Value = CheckpointCertificate> {
    (
        any::<u64>(),
        arb_hash(),
        arb_hash(),
        arb_hash(),
        arb_signer_list(),
    )
        .prop_map(
            |(height, block_hash, state_root, receipts_root, signatures)| CheckpointCertificate {
                height,
                block_hash,
                state_root,
                receipts_root,
                signatures,
            },
        )
}

fn arb_balance() -> impl Strategy<Value = GenesisBalance> {
    (arb_address(), any::<u64>()).prop_map(|(account, amount)| GenesisBalance { account, amount })
}

fn arb_asset() -> impl Strategy<Value = GenesisAsset> {
    (arb_string(), vec(arb_balance(), 0..4))
        .prop_map(|(symbol, balances)| GenesisAsset { symbol, balances })
}

fn arb_params() -> impl Strategy<Value = ProtocolParams> {
    (
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            arb_address(),
        ),
    )
        .prop_map(
            |(
                (max_block_txs, max_tx_bytes, block_interval_ms, view_timeout_ms, watermark_window),
                (min_fee, swap_fee_bps, collateral_factor_bps, liquidation_bonus_bps, oracle),
            )| ProtocolParams {
                max_block_txs,
                max_tx_bytes,
                block_interval_ms,
                view_timeout_ms,
                watermark_window,
                min_fee,
                swap_fee_bps,
                collateral_factor_bps,
                liquidation_bonus_bps,
                oracle,
            },
        )
}

/// Any genesis the codec can carry (the codec does not validate, so neither does this).
fn arb_genesis() -> impl Strategy<Value = Genesis> {
    (
        arb_string(),
        any::<u64>(),
        vec(arb_validator_info(), 0..6),
        vec(arb_asset(), 0..4),
        arb_params(),
    )
        .prop_map(
            |(chain_id, genesis_time_ms, validators, assets, params)| Genesis {
                chain_id,
                genesis_time_ms,
                validators,
                assets,
                params,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Checks shared by every type.
// ---------------------------------------------------------------------------------------------

fn check_round_trip<T: Encode + Decode + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = v.to_bytes();
    let back = T::from_bytes(&bytes);
    prop_assert_eq!(back.as_ref(), Ok(v), "from_bytes(to_bytes(v)) != v");
    prop_assert_eq!(
        back.unwrap().to_bytes(),
        bytes.clone(),
        "re-encoding changed the bytes"
    );

    // `encode` appends after existing content and writes exactly what `to_bytes` gives.
    let mut out = vec![0xa5, 0x5a];
    v.encode(&mut out);
    prop_assert_eq!(&out[..2], &[0xa5u8, 0x5a][..]);
    prop_assert_eq!(&out[2..], &bytes[..]);

    // Two values back to back: `decode` consumes exactly one value each time.
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes);
    let mut r = Reader::new(&twice);
    let first = T::decode(&mut r);
    prop_assert_eq!(first.as_ref(), Ok(v));
    prop_assert_eq!(r.remaining(), bytes.len());
    let second = T::decode(&mut r);
    prop_assert_eq!(second.as_ref(), Ok(v));
    prop_assert_eq!(r.remaining(), 0);
    prop_assert_eq!(r.finish(), Ok(()));

    // The encoding is at least as long as the declared lower bound used to size allocations.
    prop_assert!(
        bytes.len() >= T::MIN_SIZE,
        "{} bytes < MIN_SIZE {}",
        bytes.len(),
        T::MIN_SIZE
    );
    Ok(())
}

fn check_prefixes<T: Encode + Decode + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = v.to_bytes();
    for cut in 0..bytes.len() {
        let res = T::from_bytes(&bytes[..cut]);
        prop_assert!(
            res.is_err(),
            "prefix of {} of {} bytes decoded to {:?}",
            cut,
            bytes.len(),
            res
        );
        // A truncated value is an end-of-input or a length problem, never "trailing bytes".
        prop_assert!(
            matches!(
                res,
                Err(DecodeError::UnexpectedEnd { .. }) | Err(DecodeError::LengthTooLarge { .. })
            ),
            "prefix of {} bytes: unexpected error {:?}",
            cut,
            res
        );
    }
    Ok(())
}

fn check_trailing<T: Encode + Decode + Debug>(v: &T, extra: &[u8]) -> Result<(), TestCaseError> {
    assert!(!extra.is_empty());
    let mut bytes = v.to_bytes();
    bytes.extend_from_slice(extra);
    prop_assert_eq!(
        T::from_bytes(&bytes).err(),
        Some(DecodeError::TrailingBytes(extra.len()))
    );
    Ok(())
}

/// Decoding arbitrary bytes must not panic; if it succeeds the bytes were the canonical encoding.
fn check_arbitrary_bytes<T: Encode + Decode + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = T::from_bytes(bytes) {
        prop_assert_eq!(
            v.to_bytes(),
            bytes.to_vec(),
            "non-canonical bytes accepted as {:?}",
            v
        );
    }
    // Reading from a reader must not panic either, and must not consume more than there is.
    let mut r = Reader::new(bytes);
    if T::decode(&mut r).is_ok() {
        prop_assert!(r.remaining() <= bytes.len());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Xor(Index, u8),
    Delete(Index),
    Insert(Index, u8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Xor(i, x)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

/// A mutated valid encoding either fails to decode or decodes to a *different* value whose
/// encoding is exactly the mutated bytes.
fn check_mutation<T: Encode + Decode + PartialEq + Debug>(
    v: &T,
    m: &Mutation,
) -> Result<(), TestCaseError> {
    let original = v.to_bytes();
    let mut bytes = original.clone();
    match m {
        Mutation::Xor(i, x) => {
            if bytes.is_empty() {
                return Ok(());
            }
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Delete(i) => {
            if bytes.is_empty() {
                return Ok(());
            }
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Insert(i, b) => {
            let i = i.index(bytes.len() + 1);
            bytes.insert(i, *b);
        }
    }
    prop_assert_ne!(&bytes, &original);
    if let Ok(w) = T::from_bytes(&bytes) {
        prop_assert!(&w != v, "different bytes decoded to the same value {:?}", w);
        prop_assert_eq!(w.to_bytes(), bytes, "non-canonical mutation accepted");
    }
    Ok(())
}

fn check_equality<T: Encode + PartialEq + Debug>(a: &T, b: &T) -> Result<(), TestCaseError> {
    let (ba, bb) = (a.to_bytes(), b.to_bytes());
    prop_assert_eq!(a == b, ba == bb, "a={:?} b={:?}", a, b);
    Ok(())
}

/// Generates the full set of codec properties for one type, in a module of its own.
macro_rules! codec_props {
    ($name:ident, $ty:ty, $strat:expr) => {
        mod $name {
            use super::*;

            proptest! {
                #[test]
                fn round_trips(v in $strat) {
                    check_round_trip::<$ty>(&v)?;
                }

                #[test]
                fn every_strict_prefix_is_rejected(v in $strat) {
                    check_prefixes::<$ty>(&v)?;
                }

                #[test]
                fn extra_bytes_are_trailing_bytes(v in $strat, extra in vec(any::<u8>(), 1..40)) {
                    check_trailing::<$ty>(&v, &extra)?;
                }

                #[test]
                fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
                    check_arbitrary_bytes::<$ty>(&bytes)?;
                }

                #[test]
                fn mutations_never_panic_and_stay_canonical(v in $strat, m in arb_mutation()) {
                    check_mutation::<$ty>(&v, &m)?;
                }

                #[test]
                fn equal_values_iff_equal_bytes(a in $strat, b in $strat) {
                    check_equality::<$ty>(&a, &a)?;
                    check_equality::<$ty>(&a, &b)?;
                }
            }
        }
    };
}

codec_props!(prop_u8, u8, any::<u8>());
codec_props!(prop_u16, u16, any::<u16>());
codec_props!(prop_u32, u32, any::<u32>());
codec_props!(prop_u64, u64, any::<u64>());
codec_props!(prop_u128, u128, any::<u128>());
codec_props!(prop_bool, bool, any::<bool>());
codec_props!(prop_byte_array, [u8; 7], any::<[u8; 7]>());
codec_props!(prop_option_u64, Option<u64>, any::<Option<u64>>());
codec_props!(prop_option_bool, Option<bool>, any::<Option<bool>>());
codec_props!(
    prop_option_hash,
    Option<Hash>,
    proptest::option::of(arb_hash())
);
codec_props!(
    prop_option_option,
    Option<Option<u8>>,
    any::<Option<Option<u8>>>()
);
codec_props!(prop_vec_u8, Vec<u8>, vec(any::<u8>(), 0..40));
codec_props!(prop_vec_u32, Vec<u32>, vec(any::<u32>(), 0..20));
codec_props!(prop_vec_bool, Vec<bool>, vec(any::<bool>(), 0..4));
codec_props!(prop_vec_string, Vec<String>, vec(arb_string(), 0..6));
codec_props!(
    prop_vec_vec,
    Vec<Vec<u16>>,
    vec(vec(any::<u16>(), 0..5), 0..5)
);
codec_props!(
    prop_vec_option,
    Vec<Option<u16>>,
    vec(any::<Option<u16>>(), 0..8)
);
codec_props!(prop_tuple, (u8, String), (any::<u8>(), arb_string()));
codec_props!(prop_string, String, arb_string());
codec_props!(prop_bytes, Bytes, arb_bytes());
codec_props!(prop_hash, Hash, arb_hash());
codec_props!(prop_public_key, PublicKey, arb_public_key());
codec_props!(prop_signature, Signature, arb_signature());
codec_props!(prop_address, Address, arb_address());
codec_props!(prop_block_header, BlockHeader, arb_header());
codec_props!(prop_block, Block, arb_block());
codec_props!(
    prop_validator_signature,
    ValidatorSignature,
    arb_validator_signature()
);
codec_props!(prop_validator_info, ValidatorInfo, arb_validator_info());
codec_props!(
    prop_commit_certificate,
    CommitCertificate,
    arb_commit_cert()
);
codec_props!(
    prop_checkpoint_certificate,
    CheckpointCertificate,
    arb_checkpoint_cert()
);
codec_props!(prop_genesis_balance, GenesisBalance, arb_balance());
codec_props!(prop_genesis_asset, GenesisAsset, arb_asset());
codec_props!(prop_protocol_params, ProtocolParams, arb_params());

// ---------------------------------------------------------------------------------------------
// The exact layout described in the codec's module documentation.
// ---------------------------------------------------------------------------------------------

fn len_prefix(n: usize) -> Vec<u8> {
    (n as u32).to_be_bytes().to_vec()
}

proptest! {
    #[test]
    fn integers_are_fixed_width_big_endian(a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(), e in any::<u128>()) {
        prop_assert_eq!(a.to_bytes(), vec![a]);
        prop_assert_eq!(b.to_bytes(), b.to_be_bytes().to_vec());
        prop_assert_eq!(c.to_bytes(), c.to_be_bytes().to_vec());
        prop_assert_eq!(d.to_bytes(), d.to_be_bytes().to_vec());
        prop_assert_eq!(e.to_bytes(), e.to_be_bytes().to_vec());
    }

    #[test]
    fn bools_accept_only_zero_and_one(b in any::<u8>()) {
        let res = bool::from_bytes(&[b]);
        match b {
            0 => prop_assert_eq!(res, Ok(false)),
            1 => prop_assert_eq!(res, Ok(true)),
            _ => prop_assert_eq!(res, Err(DecodeError::InvalidBool(b))),
        }
    }

    #[test]
    fn option_tags_other_than_zero_and_one_are_rejected(tag in 2u8..=255, rest in vec(any::<u8>(), 0..10)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(
            Option::<u8>::from_bytes(&bytes),
            Err(DecodeError::InvalidTag { ty: "Option", tag })
        );
    }

    #[test]
    fn option_layout_is_tag_then_value(v in any::<Option<u32>>()) {
        let expected = match v {
            None => vec![0],
            Some(x) => [vec![1], x.to_be_bytes().to_vec()].concat(),
        };
        prop_assert_eq!(v.to_bytes(), expected);
    }

    #[test]
    fn sequences_are_count_then_items(items in vec(any::<u16>(), 0..20), s in arb_string(), raw in vec(any::<u8>(), 0..40)) {
        let mut expected = len_prefix(items.len());
        for i in &items {
            expected.extend_from_slice(&i.to_be_bytes());
        }
        prop_assert_eq!(items.to_bytes(), expected);
        // Strings count bytes, not characters.
        prop_assert_eq!(s.to_bytes(), [len_prefix(s.len()), s.as_bytes().to_vec()].concat());
        prop_assert_eq!(Bytes(raw.clone()).to_bytes(), [len_prefix(raw.len()), raw.clone()].concat());
        // Bytes and Vec<u8> share a layout.
        prop_assert_eq!(Bytes(raw.clone()).to_bytes(), raw.to_bytes());
    }

    #[test]
    fn strings_decode_exactly_when_utf8(raw in prop_oneof![
        vec(any::<u8>(), 0..16),
        any::<String>().prop_map(String::into_bytes),
    ]) {
        let bytes = [len_prefix(raw.len()), raw.clone()].concat();
        match std::str::from_utf8(&raw) {
            Ok(s) => prop_assert_eq!(String::from_bytes(&bytes), Ok(s.to_string())),
            Err(_) => prop_assert_eq!(String::from_bytes(&bytes), Err(DecodeError::InvalidUtf8)),
        }
    }

    /// A declared count that the remaining input cannot hold is rejected up front, with the
    /// largest count that would have fit; counts that fit decode or leave trailing bytes.
    /// Checked for a random count and for every count near the boundary.
    #[test]
    fn counts_larger_than_the_input_are_rejected(
        random_count in any::<u32>(),
        body in vec(any::<u8>(), 0..100),
    ) {
        fn check<T: Decode + Debug>(count: usize, body: &[u8], width: usize) -> Result<(), TestCaseError> {
            let bytes = [len_prefix(count), body.to_vec()].concat();
            let res = T::from_bytes(&bytes);
            let fits = body.len() / width;
            if count > fits {
                prop_assert_eq!(res.err(), Some(DecodeError::LengthTooLarge { len: count, max: fits }));
            } else if count * width == body.len() {
                prop_assert!(res.is_ok(), "{:?}", res);
            } else {
                prop_assert_eq!(res.err(), Some(DecodeError::TrailingBytes(body.len() - count * width)));
            }
            Ok(())
        }
        for width in [1usize, 8, 32] {
            let fits = body.len() / width;
            let mut counts = vec![random_count as usize, fits + 1, fits + 2, fits];
            counts.extend(fits.checked_sub(1));
            for count in counts {
                match width {
                    1 => {
                        check::<Bytes>(count, &body, 1)?;
                        check::<Vec<u8>>(count, &body, 1)?;
                        check::<Vec<bool>>(count, &body, 1).or_else(|e| {
                            // Bytes other than 0 and 1 are not booleans.
                            if body.iter().take(count).any(|b| *b > 1) { Ok(()) } else { Err(e) }
                        })?;
                    }
                    8 => check::<Vec<u64>>(count, &body, 8)?,
                    _ => check::<Vec<Hash>>(count, &body, 32)?,
                }
            }
        }
    }

    /// Structs are their fields in declaration order with nothing in between.
    #[test]
    fn block_header_layout_is_fields_in_order(h in arb_header()) {
        let mut expected = h.chain_id.to_bytes();
        expected.extend_from_slice(&h.height.to_be_bytes());
        expected.extend_from_slice(&h.parent.0);
        expected.extend_from_slice(&h.view.to_be_bytes());
        expected.extend_from_slice(&h.proposer.to_be_bytes());
        expected.extend_from_slice(&h.timestamp_ms.to_be_bytes());
        expected.extend_from_slice(&h.payload_digest.0);
        prop_assert_eq!(h.to_bytes(), expected.clone());
        // The block hash commits to exactly this encoding under the "lanes/block" tag.
        prop_assert_eq!(h.hash(), Hash::tagged("lanes/block", &expected));
    }

    #[test]
    fn block_and_certificate_layouts(b in arb_block(), c in arb_commit_cert(), k in arb_checkpoint_cert()) {
        prop_assert_eq!(b.to_bytes(), [b.header.to_bytes(), b.txs.to_bytes()].concat());
        prop_assert_eq!(b.hash(), b.header.hash());

        let mut expected = c.view.to_be_bytes().to_vec();
        expected.extend_from_slice(&c.height.to_be_bytes());
        expected.extend_from_slice(&c.block_hash.0);
        expected.extend_from_slice(&len_prefix(c.signatures.len()));
        for s in &c.signatures {
            expected.extend_from_slice(&s.validator.to_be_bytes());
            expected.extend_from_slice(&s.signature.0);
        }
        prop_assert_eq!(c.to_bytes(), expected);

        let mut expected = k.height.to_be_bytes().to_vec();
        expected.extend_from_slice(&k.block_hash.0);
        expected.extend_from_slice(&k.state_root.0);
        expected.extend_from_slice(&k.receipts_root.0);
        expected.extend_from_slice(&k.signatures.to_bytes());
        prop_assert_eq!(k.to_bytes(), expected);
    }

    #[test]
    fn genesis_layout_is_fields_in_order(g in arb_genesis()) {
        let p = &g.params;
        let mut params = Vec::new();
        params.extend_from_slice(&p.max_block_txs.to_be_bytes());
        params.extend_from_slice(&p.max_tx_bytes.to_be_bytes());
        params.extend_from_slice(&p.block_interval_ms.to_be_bytes());
        params.extend_from_slice(&p.view_timeout_ms.to_be_bytes());
        params.extend_from_slice(&p.watermark_window.to_be_bytes());
        params.extend_from_slice(&p.min_fee.to_be_bytes());
        params.extend_from_slice(&p.swap_fee_bps.to_be_bytes());
        params.extend_from_slice(&p.collateral_factor_bps.to_be_bytes());
        params.extend_from_slice(&p.liquidation_bonus_bps.to_be_bytes());
        params.extend_from_slice(&p.oracle.0);
        prop_assert_eq!(p.to_bytes(), params.clone());

        let mut validators = len_prefix(g.validators.len());
        for v in &g.validators {
            validators.extend_from_slice(&v.name.to_bytes());
            validators.extend_from_slice(&v.public_key.0);
            validators.extend_from_slice(&v.address.to_bytes());
        }
        let mut assets = len_prefix(g.assets.len());
        for a in &g.assets {
            assets.extend_from_slice(&a.symbol.to_bytes());
            assets.extend_from_slice(&len_prefix(a.balances.len()));
            for b in &a.balances {
                assets.extend_from_slice(&b.account.0);
                assets.extend_from_slice(&b.amount.to_be_bytes());
            }
        }
        let expected = [
            g.chain_id.to_bytes(),
            g.genesis_time_ms.to_be_bytes().to_vec(),
            validators,
            assets,
            params,
        ]
        .concat();
        prop_assert_eq!(g.to_bytes(), expected.clone());
        prop_assert_eq!(g.hash(), Hash::tagged("lanes/genesis", &expected));
    }

    /// Changing any single header field changes the block hash.
    #[test]
    fn header_hash_covers_every_field(h in arb_header(), field in 0usize..7, bump in 1u8..=255) {
        let mut o = h.clone();
        match field {
            0 => o.chain_id.push(char::from(b'a' + bump % 26)),
            1 => o.height ^= u64::from(bump),
            2 => o.parent.0[usize::from(bump) % 32] ^= bump,
            3 => o.view ^= u64::from(bump),
            4 => o.proposer ^= u32::from(bump),
            5 => o.timestamp_ms ^= u64::from(bump),
            _ => o.payload_digest.0[usize::from(bump) % 32] ^= bump,
        }
        prop_assert_ne!(&o, &h);
        prop_assert_ne!(o.hash(), h.hash());
    }

    /// The payload digest binds the number, order and content of transactions, and
    /// `payload_matches` reports exactly whether the header's digest is that digest.
    #[test]
    fn payload_digest_binds_transactions(b in arb_block(), other in vec(arb_bytes(), 0..6)) {
        let mut b = b;
        b.header.payload_digest = payload_digest(&b.txs);
        prop_assert!(b.payload_matches());
        let same = other == b.txs;
        prop_assert_eq!(payload_digest(&other) == b.header.payload_digest, same);
        let mut swapped = b.clone();
        swapped.txs = other;
        prop_assert_eq!(swapped.payload_matches(), same);
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates: signer lists are a sorted set, and only that form decodes.
// ---------------------------------------------------------------------------------------------

/// Makes a signer list that is not strictly ascending: a repeated signer, or two swapped.
fn disorder(sigs: &mut Vec<ValidatorSignature>, at: &Index, swap: bool) {
    let i = at.index(sigs.len());
    if swap && sigs.len() >= 2 {
        let j = if i + 1 < sigs.len() { i + 1 } else { i - 1 };
        sigs.swap(i, j);
    } else {
        let copy = sigs[i];
        sigs.insert(i, copy);
    }
}

proptest! {
    #[test]
    fn certificates_with_unsorted_signers_do_not_decode(
        c in arb_commit_cert(),
        k in arb_checkpoint_cert(),
        extra in arb_validator_signature(),
        at in any::<Index>(),
        swap in any::<bool>(),
    ) {
        let (mut c, mut k) = (c, k);
        if c.signatures.is_empty() {
            c.signatures.push(extra);
        }
        if k.signatures.is_empty() {
            k.signatures.push(extra);
        }
        disorder(&mut c.signatures, &at, swap);
        disorder(&mut k.signatures, &at, swap);
        prop_assert!(matches!(
            CommitCertificate::from_bytes(&c.to_bytes()),
            Err(DecodeError::Invalid(_))
        ));
        prop_assert!(matches!(
            CheckpointCertificate::from_bytes(&k.to_bytes()),
            Err(DecodeError::Invalid(_))
        ));
        // The signatures themselves still decode as a plain list.
        prop_assert_eq!(Vec::<ValidatorSignature>::from_bytes(&c.signatures.to_bytes()), Ok(c.signatures.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// Hash tagging, hex and serde (hash.rs / crypto.rs display types).
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn tagged_hash_is_sha256_of_length_prefixed_tag(tag in "[a-z/]{0,20}", parts in vec(vec(any::<u8>(), 0..20), 0..4)) {
        let mut pre = (tag.len() as u32).to_be_bytes().to_vec();
        pre.extend_from_slice(tag.as_bytes());
        for p in &parts {
            pre.extend_from_slice(p);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        prop_assert_eq!(Hash::tagged_parts(&tag, &refs), Hash::digest(&pre));
        prop_assert_eq!(Hash::tagged(&tag, &refs.concat()), Hash::digest(&pre));
    }

    #[test]
    fn hex_round_trips(h in arb_hash(), pk in arb_public_key(), sig in arb_signature(), a in arb_address()) {
        let s = h.to_string();
        prop_assert_eq!(s.len(), 64);
        prop_assert!(s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        prop_assert_eq!(s.parse::<Hash>(), Ok(h));
        prop_assert_eq!(format!("0x{s}").parse::<Hash>(), Ok(h));
        prop_assert_eq!(s.to_uppercase().parse::<Hash>(), Ok(h));
        prop_assert_eq!(&h.short(), &s[..8]);
        prop_assert_eq!(pk.to_string().parse::<PublicKey>(), Ok(pk));
        prop_assert_eq!(sig.to_string().len(), 128);
        prop_assert_eq!(sig.to_string().parse::<Signature>(), Ok(sig));
        prop_assert_eq!(a.to_string().len(), 40);
        prop_assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        // Wrong lengths are rejected, whatever the type.
        prop_assert!(s[..62].parse::<Hash>().is_err());
        prop_assert!(a.to_string().parse::<Hash>().is_err());
        prop_assert!(s.parse::<Address>().is_err());
        // serde goes through the same hex.
        let json = serde_json::to_string(&h).unwrap();
        prop_assert_eq!(&json, &format!("\"{s}\""));
        prop_assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        prop_assert_eq!(serde_json::from_str::<PublicKey>(&serde_json::to_string(&pk).unwrap()).unwrap(), pk);
        prop_assert_eq!(serde_json::from_str::<Signature>(&serde_json::to_string(&sig).unwrap()).unwrap(), sig);
        prop_assert_eq!(serde_json::from_str::<Address>(&serde_json::to_string(&a).unwrap()).unwrap(), a);
    }

    #[test]
    fn non_hex_strings_never_parse(s in "[^0-9a-fA-F]{64}") {
        prop_assert!(s.parse::<Hash>().is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Limits.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_sequence_of_exactly_the_limit_decodes_and_one_more_is_rejected() {
    let mut bytes = len_prefix(MAX_SEQUENCE_LEN);
    bytes.resize(4 + MAX_SEQUENCE_LEN, 7);
    let ok = Bytes::from_bytes(&bytes).expect("a sequence of MAX_SEQUENCE_LEN items decodes");
    assert_eq!(ok.len(), MAX_SEQUENCE_LEN);
    assert_eq!(ok.to_bytes(), bytes);

    let mut bytes = len_prefix(MAX_SEQUENCE_LEN + 1);
    bytes.resize(4 + MAX_SEQUENCE_LEN + 1, 7);
    assert_eq!(
        Bytes::from_bytes(&bytes),
        Err(DecodeError::LengthTooLarge {
            len: MAX_SEQUENCE_LEN + 1,
            max: MAX_SEQUENCE_LEN
        })
    );
    assert_eq!(
        Vec::<u8>::from_bytes(&bytes),
        Err(DecodeError::LengthTooLarge {
            len: MAX_SEQUENCE_LEN + 1,
            max: MAX_SEQUENCE_LEN
        })
    );
}

#[test]
#[should_panic(expected = "exceeds the codec limit")]
fn encoding_a_sequence_over_the_limit_panics() {
    let mut out = Vec::new();
    encode_len(MAX_SEQUENCE_LEN + 1, &mut out);
}

#[test]
fn empty_input_is_an_unexpected_end_for_every_type() {
    fn empty<T: Decode + Debug>() {
        assert!(
            matches!(
                T::from_bytes(&[]),
                Err(DecodeError::UnexpectedEnd { remaining: 0, .. })
            ),
            "{}",
            std::any::type_name::<T>()
        );
    }
    empty::<u8>();
    empty::<u128>();
    empty::<bool>();
    empty::<Option<u8>>();
    empty::<Vec<u8>>();
    empty::<String>();
    empty::<Bytes>();
    empty::<Hash>();
    empty::<PublicKey>();
    empty::<Signature>();
    empty::<Address>();
    empty::<BlockHeader>();
    empty::<Block>();
    empty::<ValidatorSignature>();
    empty::<ValidatorInfo>();
    empty::<CommitCertificate>();
    empty::<CheckpointCertificate>();
    empty::<GenesisBalance>();
    empty::<GenesisAsset>();
    empty::<ProtocolParams>();
}
