//! Property tests of ed25519 signatures: batch verification (`verify_batch`) must give exactly the
//! answer of verifying each signature on its own (`PublicKey::verify`), on honest inputs and on
//! adversarial ones (wrong keys, wrong messages, flipped bits, keys that are not points, small-order
//! keys); `ValidatorSet::verify_quorum` and the certificates must agree with per-signature checks.

use lanes_types::cert::{checkpoint_message, commit_vote_message};
use lanes_types::codec::Encode;
use lanes_types::{
    verify_batch, CheckpointCertificate, CommitCertificate, CryptoError, Hash, PublicKey,
    QuorumError, SecretKey, Signature, SignedMessage, ValidatorInfo, ValidatorSet,
    ValidatorSignature,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Encodings of points of order 1, 2, 4 and 8, canonical and not (ZIP-215 accepts both).
fn small_order_encodings() -> Vec<[u8; 32]> {
    [
        // identity (y = 1), and with the sign bit set ("negative zero" x)
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        // identity, non-canonical y = p + 1
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 2 (y = -1)
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 4 (y = 0), both signs: the all-zero key
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ]
    .iter()
    .map(|s| hex32(s))
    .collect()
}

/// The signature (R = identity, s = 0).
fn trivial_signature() -> Signature {
    let mut s = [0u8; 64];
    s[0] = 1;
    Signature(s)
}

fn single_ok(pk: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
    pk.verify(msg, sig).is_ok()
}

fn batch_of(items: &[(PublicKey, Vec<u8>, Signature)]) -> Result<(), Vec<usize>> {
    let refs: Vec<SignedMessage> = items
        .iter()
        .map(|(public_key, message, signature)| SignedMessage {
            public_key,
            message,
            signature,
        })
        .collect();
    verify_batch(&refs)
}

/// What verify_batch must answer: the indexes that fail on their own, or Ok if none do.
fn expected_from_singles(items: &[(PublicKey, Vec<u8>, Signature)]) -> Result<(), Vec<usize>> {
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (pk, m, s))| !single_ok(pk, m, s))
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

fn msg() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..80)
}

/// One entry of an adversarial batch.
#[derive(Debug, Clone)]
enum Kind {
    /// An honest signature.
    Valid,
    /// Signed by one key, presented under another.
    WrongKey,
    /// Presented with a different message than the one signed.
    WrongMessage,
    /// One bit of an honest signature flipped (0..512).
    FlipBit(usize),
    /// Random 32 bytes as the key (often not a point) with an honest signature.
    RandomKey([u8; 32]),
    /// A small-order key with an arbitrary signature.
    SmallOrderKey(Index, [u8; 64]),
    /// A small-order key with the (identity, 0) signature, which ZIP-215 accepts.
    SmallOrderForgery(Index),
    /// A random 64-byte signature under an honest key.
    RandomSignature([u8; 64]),
}

fn arb_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Valid),
        1 => Just(Kind::WrongKey),
        1 => Just(Kind::WrongMessage),
        2 => (0usize..512).prop_map(Kind::FlipBit),
        1 => any::<[u8; 32]>().prop_map(Kind::RandomKey),
        1 => (any::<Index>(), any::<[u8; 64]>()).prop_map(|(i, s)| Kind::SmallOrderKey(i, s)),
        1 => any::<Index>().prop_map(Kind::SmallOrderForgery),
        1 => any::<[u8; 64]>().prop_map(Kind::RandomSignature),
    ]
}

/// Builds the (key, message, signature) triple for one entry; `signer` indexes the key pool.
fn build(
    kind: &Kind,
    pool: &[SecretKey],
    signer: usize,
    message: &[u8],
) -> (PublicKey, Vec<u8>, Signature) {
    let sk = &pool[signer % pool.len()];
    let pk = sk.public_key();
    let sig = sk.sign(message);
    let small = small_order_encodings();
    match kind {
        Kind::Valid => (pk, message.to_vec(), sig),
        Kind::WrongKey => (
            pool[(signer + 1) % pool.len()].public_key(),
            message.to_vec(),
            sig,
        ),
        Kind::WrongMessage => {
            let mut other = message.to_vec();
            match other.first_mut() {
                Some(b) => *b ^= 0x01,
                None => other.push(0),
            }
            (pk, other, sig)
        }
        Kind::FlipBit(bit) => {
            let mut s = sig.0;
            s[bit / 8] ^= 1 << (bit % 8);
            (pk, message.to_vec(), Signature(s))
        }
        Kind::RandomKey(k) => (PublicKey(*k), message.to_vec(), sig),
        Kind::SmallOrderKey(i, s) => (PublicKey(*i.get(&small)), message.to_vec(), Signature(*s)),
        Kind::SmallOrderForgery(i) => (
            PublicKey(*i.get(&small)),
            message.to_vec(),
            trivial_signature(),
        ),
        Kind::RandomSignature(s) => (pk, message.to_vec(), Signature(*s)),
    }
}

/// Whether an entry of this kind must verify on its own (`Some(true)`), must fail
/// (`Some(false)`), or may go either way (`None`).
fn must_verify(kind: &Kind) -> Option<bool> {
    match kind {
        Kind::Valid | Kind::SmallOrderForgery(_) => Some(true),
        Kind::WrongKey | Kind::WrongMessage | Kind::FlipBit(_) => Some(false),
        Kind::RandomKey(_) | Kind::SmallOrderKey(..) | Kind::RandomSignature(_) => None,
    }
}

fn key_pool(seeds: &[[u8; 32]]) -> Vec<SecretKey> {
    seeds.iter().map(|s| SecretKey::from_seed(*s)).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn honest_signatures_verify_singly_and_in_batch(seed in any::<[u8; 32]>(), m in msg()) {
        let sk = SecretKey::from_seed(seed);
        let pk = sk.public_key();
        prop_assert_eq!(pk.validate(), Ok(()));
        prop_assert_eq!(SecretKey::from_seed(sk.seed()).public_key(), pk);
        let sig = sk.sign(&m);
        // Signing is deterministic.
        prop_assert_eq!(sk.sign(&m), sig);
        prop_assert_eq!(pk.verify(&m, &sig), Ok(()));
        prop_assert_eq!(batch_of(&[(pk, m.clone(), sig)]), Ok(()));
    }

    #[test]
    fn wrong_key_fails_singly_and_in_batch(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), m in msg()) {
        prop_assume!(a != b);
        let (ska, skb) = (SecretKey::from_seed(a), SecretKey::from_seed(b));
        let sig = ska.sign(&m);
        prop_assert_eq!(skb.public_key().verify(&m, &sig), Err(CryptoError::BadSignature));
        prop_assert_eq!(batch_of(&[(skb.public_key(), m.clone(), sig)]), Err(vec![0]));
        // The honest entry next to it is not blamed.
        prop_assert_eq!(
            batch_of(&[(ska.public_key(), m.clone(), sig), (skb.public_key(), m.clone(), sig)]),
            Err(vec![1])
        );
    }

    #[test]
    fn wrong_message_fails_singly_and_in_batch(seed in any::<[u8; 32]>(), m in msg(), other in msg()) {
        prop_assume!(m != other);
        let sk = SecretKey::from_seed(seed);
        let sig = sk.sign(&m);
        prop_assert_eq!(sk.public_key().verify(&other, &sig), Err(CryptoError::BadSignature));
        prop_assert_eq!(batch_of(&[(sk.public_key(), other.clone(), sig)]), Err(vec![0]));
    }

    #[test]
    fn flipping_any_signature_bit_fails_singly_and_in_batch(seed in any::<[u8; 32]>(), m in msg(), bit in 0usize..512) {
        let sk = SecretKey::from_seed(seed);
        let mut s = sk.sign(&m).0;
        s[bit / 8] ^= 1 << (bit % 8);
        let sig = Signature(s);
        prop_assert_eq!(sk.public_key().verify(&m, &sig), Err(CryptoError::BadSignature));
        prop_assert_eq!(batch_of(&[(sk.public_key(), m.clone(), sig)]), Err(vec![0]));
    }

    #[test]
    fn flipping_any_key_bit_never_verifies(seed in any::<[u8; 32]>(), m in msg(), bit in 0usize..256) {
        let sk = SecretKey::from_seed(seed);
        let sig = sk.sign(&m);
        let mut k = sk.public_key().0;
        k[bit / 8] ^= 1 << (bit % 8);
        let pk = PublicKey(k);
        let single = pk.verify(&m, &sig);
        prop_assert!(single.is_err());
        // A non-point is reported as such by both, and only then.
        prop_assert_eq!(
            single == Err(CryptoError::InvalidPublicKey),
            pk.validate() == Err(CryptoError::InvalidPublicKey)
        );
        prop_assert_eq!(batch_of(&[(pk, m.clone(), sig)]), Err(vec![0]));
    }

    /// Random 32-byte strings as keys (about half are not points) with random or honest-looking
    /// signatures: the batch answer equals the single answer, and a key is reported as not a point
    /// by `verify` exactly when `validate` says so.
    #[test]
    fn random_keys_agree(key in any::<[u8; 32]>(), sig in any::<[u8; 64]>(), m in msg(), seed in any::<[u8; 32]>()) {
        let pk = PublicKey(key);
        let honest = SecretKey::from_seed(seed).sign(&m);
        for s in [Signature(sig), honest] {
            let single = pk.verify(&m, &s);
            prop_assert_eq!(
                pk.validate() == Err(CryptoError::InvalidPublicKey),
                single == Err(CryptoError::InvalidPublicKey)
            );
            let batch = batch_of(&[(pk, m.clone(), s)]);
            prop_assert_eq!(batch.is_ok(), single.is_ok());
        }
    }

    /// The all-zero key, the identity and the other small-order points, with arbitrary
    /// signatures and with signatures whose R is itself a small-order point.
    #[test]
    fn small_order_keys_agree(i in any::<Index>(), j in any::<Index>(), sig in any::<[u8; 64]>(), s_zero in any::<bool>(), m in msg()) {
        let small = small_order_encodings();
        let pk = PublicKey(*i.get(&small));
        // ZIP-215 verification accepts small-order keys, so `validate` must refuse them.
        prop_assert_eq!(pk.validate(), Err(CryptoError::WeakPublicKey));
        prop_assert_ne!(pk.verify(&m, &Signature(sig)), Err(CryptoError::InvalidPublicKey));
        let mut crafted = [0u8; 64];
        crafted[..32].copy_from_slice(j.get::<[u8; 32]>(&small));
        if !s_zero {
            crafted[32..].copy_from_slice(&sig[32..]);
        }
        for s in [Signature(sig), Signature(crafted)] {
            let single = single_ok(&pk, &m, &s);
            prop_assert_eq!(batch_of(&[(pk, m.clone(), s)]).is_ok(), single);
        }
    }

    /// ZIP-215 consequence, and the reason `validate` rejects small-order keys: under a small-order
    /// key, a signature with a small-order R and s = 0 verifies for every message.
    #[test]
    fn small_order_keys_accept_trivial_forgeries(i in any::<Index>(), j in any::<Index>(), m in msg()) {
        let small = small_order_encodings();
        let pk = PublicKey(*i.get(&small));
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(j.get::<[u8; 32]>(&small));
        let sig = Signature(s);
        prop_assert_eq!(pk.verify(&m, &sig), Ok(()));
        prop_assert_eq!(pk.verify(&m, &trivial_signature()), Ok(()));
        prop_assert_eq!(batch_of(&[(pk, m.clone(), sig), (pk, m.clone(), trivial_signature())]), Ok(()));
    }

    /// A non-canonical s (s >= l) is rejected even when the rest of the signature is honest.
    #[test]
    fn non_canonical_s_is_rejected(seed in any::<[u8; 32]>(), m in msg()) {
        let sk = SecretKey::from_seed(seed);
        let mut s = sk.sign(&m).0;
        // s + l, where l = 2^252 + 27742317777372353535851937790883648493 (little-endian).
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for k in 0..32 {
            let v = u16::from(s[32 + k]) + u16::from(L[k]) + carry;
            s[32 + k] = v as u8;
            carry = v >> 8;
        }
        prop_assert_eq!(carry, 0, "s + l fits in 256 bits");
        let sig = Signature(s);
        prop_assert_eq!(sk.public_key().verify(&m, &sig), Err(CryptoError::BadSignature));
        prop_assert_eq!(batch_of(&[(sk.public_key(), m.clone(), sig)]), Err(vec![0]));
    }

    /// Mixed batches: the error list is exactly the set of entries that fail on their own, and
    /// each entry whose fate is known (honest, forged under a small-order key, wrong key, wrong
    /// message, flipped bit) fails on its own exactly when it should. Keys repeat across entries
    /// (a pool of three signers) so the batch verifier's per-key grouping is exercised.
    #[test]
    fn mixed_batches_report_exactly_the_failing_entries(
        seeds in [any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>()],
        entries in vec((arb_kind(), 0usize..3, msg()), 0..12),
    ) {
        prop_assume!(seeds[0] != seeds[1] && seeds[1] != seeds[2] && seeds[0] != seeds[2]);
        let pool = key_pool(&seeds);
        let items: Vec<(PublicKey, Vec<u8>, Signature)> =
            entries.iter().map(|(k, signer, m)| build(k, &pool, *signer, m)).collect();
        for ((kind, _, _), (pk, m, s)) in entries.iter().zip(&items) {
            if let Some(ok) = must_verify(kind) {
                prop_assert_eq!(single_ok(pk, m, s), ok, "{:?}", kind);
            }
        }
        let expected = expected_from_singles(&items);
        prop_assert_eq!(batch_of(&items), expected.clone());
        // Every prefix of the batch agrees too (and the empty batch verifies).
        for cut in 0..items.len() {
            let prefix = &items[..cut];
            prop_assert_eq!(batch_of(prefix), expected_from_singles(prefix));
        }
        // The batch answer does not depend on the order of entries.
        let mut reversed = items.clone();
        reversed.reverse();
        let n = items.len();
        let expected_rev = expected.map_err(|bad| {
            let mut r: Vec<usize> = bad.into_iter().map(|i| n - 1 - i).collect();
            r.sort();
            r
        });
        prop_assert_eq!(batch_of(&reversed), expected_rev);
    }

    /// The same key signing several messages, one of them swapped: only that entry is blamed.
    #[test]
    fn one_key_many_messages(seed in any::<[u8; 32]>(), msgs in vec(msg(), 1..8), bad in any::<Index>()) {
        let sk = SecretKey::from_seed(seed);
        let pk = sk.public_key();
        let mut items: Vec<(PublicKey, Vec<u8>, Signature)> =
            msgs.iter().map(|m| (pk, m.clone(), sk.sign(m))).collect();
        prop_assert_eq!(batch_of(&items), Ok(()));
        let b = bad.index(items.len());
        items[b].1.push(0x42);
        let expected: Vec<usize> = (0..items.len())
            .filter(|&i| i == b || !single_ok(&items[i].0, &items[i].1, &items[i].2))
            .collect();
        prop_assert!(expected.contains(&b));
        prop_assert_eq!(batch_of(&items), Err(expected));
    }
}

#[test]
fn empty_batch_verifies() {
    assert_eq!(verify_batch(&[]), Ok(()));
}

#[test]
fn known_points_and_non_points() {
    for k in small_order_encodings() {
        assert_eq!(
            PublicKey(k).validate(),
            Err(CryptoError::WeakPublicKey),
            "{}",
            hex::encode(k)
        );
    }
    // A point of large order with y < 19 also has the non-canonical encoding y + p.
    let (t, canonical) = (2u8..19)
        .map(|t| {
            let mut k = [0u8; 32];
            k[0] = t;
            (t, k)
        })
        .find(|(_, k)| PublicKey(*k).validate().is_ok())
        .expect("a large-order point with a small y");
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xed + t;
    non_canonical[31] = 0x7f;
    assert_eq!(
        PublicKey(non_canonical).validate(),
        Err(CryptoError::NonCanonicalPublicKey),
        "y = p + {t}"
    );
    // Both encodings are points to the ZIP-215 verifier; batch and single still agree.
    let m = b"m".to_vec();
    for k in [canonical, non_canonical] {
        for sig in [
            trivial_signature(),
            Signature([7; 64]),
            SecretKey::from_label("x").sign(&m),
        ] {
            let single = PublicKey(k).verify(&m, &sig);
            assert_ne!(single, Err(CryptoError::InvalidPublicKey));
            assert_eq!(
                batch_of(&[(PublicKey(k), m.clone(), sig)]).is_ok(),
                single.is_ok()
            );
        }
    }
    // Some small y is not the y-coordinate of any curve point (about half of all y are not).
    let non_point = (2u8..=255)
        .map(|y| {
            let mut k = [0u8; 32];
            k[0] = y;
            k
        })
        .find(|k| PublicKey(*k).validate().is_err())
        .expect("a non-point among small y");
    assert_eq!(
        PublicKey(non_point).validate(),
        Err(CryptoError::InvalidPublicKey)
    );
    let sig = SecretKey::from_label("x").sign(b"m");
    assert_eq!(
        PublicKey(non_point).verify(b"m", &sig),
        Err(CryptoError::InvalidPublicKey)
    );
    assert_eq!(
        batch_of(&[(PublicKey(non_point), b"m".to_vec(), sig)]),
        Err(vec![0])
    );
}

// ---------------------------------------------------------------------------------------------
// Validator sets, quorums and certificates.
// ---------------------------------------------------------------------------------------------

fn validator_set(n: usize) -> (Vec<SecretKey>, ValidatorSet) {
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| SecretKey::from_label(&format!("val-{i}")))
        .collect();
    let infos = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ValidatorInfo {
            name: format!("val-{i}"),
            public_key: k.public_key(),
            address: format!("127.0.0.1:{}", 7000 + i),
        })
        .collect();
    (keys, ValidatorSet::new(infos))
}

/// What one validator contributes to a quorum attempt.
#[derive(Debug, Clone)]
enum Vote {
    Absent,
    Good,
    OtherMessage,
    OtherValidatorsSignature,
    Garbage([u8; 64]),
}

fn arb_vote() -> impl Strategy<Value = Vote> {
    prop_oneof![
        2 => Just(Vote::Absent),
        6 => Just(Vote::Good),
        1 => Just(Vote::OtherMessage),
        1 => Just(Vote::OtherValidatorsSignature),
        1 => any::<[u8; 64]>().prop_map(Vote::Garbage),
    ]
}

fn cast(votes: &[Vote], keys: &[SecretKey], m: &[u8]) -> Vec<ValidatorSignature> {
    let n = keys.len();
    votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let signature = match v {
                Vote::Absent => return None,
                Vote::Good => keys[i].sign(m),
                Vote::OtherMessage => keys[i].sign(&[m, b"!"].concat()),
                Vote::OtherValidatorsSignature => keys[(i + 1) % n].sign(m),
                Vote::Garbage(s) => Signature(*s),
            };
            Some(ValidatorSignature {
                validator: i as u32,
                signature,
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn quorum_sizes(n in 1usize..200) {
        let (_, vs) = validator_set(n.min(12));
        // Only the size matters for f and q; build big sets cheaply from repeated entries.
        let infos: Vec<ValidatorInfo> = (0..n).map(|i| vs.validators()[i % vs.len()].clone()).collect();
        let vs = ValidatorSet::new(infos);
        let (f, q) = (vs.max_faulty(), vs.quorum());
        prop_assert_eq!(f, (n - 1) / 3);
        prop_assert!(n > 3 * f);
        // Two quorums intersect in at least f + 1 validators (so in an honest one) ...
        prop_assert!(2 * q > n + f);
        // ... and q is the smallest such size.
        prop_assert!(2 * (q - 1) < n + f + 1);
        if n >= 4 {
            prop_assert!(q <= n - f, "a quorum must be reachable without the faulty");
        }
        prop_assert_eq!(vs.primary(n as u64 + 3), (3 % n) as u32);
    }

    /// verify_quorum agrees with verify_one: not enough signatures first, then exactly the
    /// validators whose signature fails on its own, otherwise Ok.
    #[test]
    fn verify_quorum_matches_per_signature_checks(
        n in 4usize..11,
        votes in vec(arb_vote(), 10),
        m in msg(),
    ) {
        let (keys, vs) = validator_set(n);
        let votes = &votes[..n];
        let sigs = cast(votes, &keys, &m);
        // Non-tautology: the vote kinds decide single verification.
        for s in &sigs {
            let kind = &votes[s.validator as usize];
            let ok = vs.verify_one(s.validator, &m, &s.signature);
            match kind {
                Vote::Good => prop_assert!(ok),
                Vote::OtherMessage | Vote::OtherValidatorsSignature => prop_assert!(!ok),
                _ => {}
            }
        }
        let bad: Vec<u32> = sigs
            .iter()
            .filter(|s| !vs.verify_one(s.validator, &m, &s.signature))
            .map(|s| s.validator)
            .collect();
        let expected = if sigs.len() < vs.quorum() {
            Err(QuorumError::NotEnoughSignatures { got: sigs.len(), need: vs.quorum() })
        } else if !bad.is_empty() {
            Err(QuorumError::BadSignatures(bad))
        } else {
            Ok(())
        };
        prop_assert_eq!(vs.verify_quorum(&m, &sigs), expected);
    }

    /// Signer lists that are not strictly ascending are rejected whatever the signatures.
    #[test]
    fn unsorted_or_repeated_signers_are_rejected(n in 4usize..11, m in msg(), swap in any::<(Index, Index)>(), dup in any::<bool>()) {
        let (keys, vs) = validator_set(n);
        let mut sigs: Vec<ValidatorSignature> = (0..n)
            .map(|i| ValidatorSignature { validator: i as u32, signature: keys[i].sign(&m) })
            .collect();
        prop_assert_eq!(vs.verify_quorum(&m, &sigs), Ok(()));
        let (a, b) = (swap.0.index(n), swap.1.index(n));
        if dup {
            let copy = sigs[a];
            sigs.insert(a, copy);
        } else {
            prop_assume!(a != b);
            sigs.swap(a, b);
        }
        prop_assert_eq!(vs.verify_quorum(&m, &sigs), Err(QuorumError::UnsortedSigners));
    }

    /// An index outside the set is reported (the smallest such one, as signers are sorted).
    #[test]
    fn unknown_signers_are_rejected(n in 4usize..11, m in msg(), extra in vec(0u32..1000, 1..4)) {
        let (keys, vs) = validator_set(n);
        let mut sigs: Vec<ValidatorSignature> = (0..n)
            .map(|i| ValidatorSignature { validator: i as u32, signature: keys[i].sign(&m) })
            .collect();
        let mut extra: Vec<u32> = extra.into_iter().map(|e| e + n as u32).collect();
        extra.sort();
        extra.dedup();
        for &e in &extra {
            sigs.push(ValidatorSignature { validator: e, signature: keys[0].sign(&m) });
            prop_assert!(!vs.verify_one(e, &m, &sigs[0].signature));
        }
        prop_assert_eq!(vs.verify_quorum(&m, &sigs), Err(QuorumError::UnknownValidator(extra[0])));
    }

    /// Certificates verify exactly for their own chain, view, height, block and state root.
    #[test]
    fn certificates_bind_every_field(
        n in 4usize..8,
        chain in select(vec!["main", "test-1", "x"]),
        view in any::<u64>(),
        height in any::<u64>(),
        block in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
        signers in any::<Index>(),
        field in 0usize..5,
    ) {
        let (keys, vs) = validator_set(n);
        let (block_hash, state_root) = (Hash(block), Hash(root));
        // Any quorum-sized or larger prefix of validators.
        let count = vs.quorum() + signers.index(n - vs.quorum() + 1);
        let commit_msg = commit_vote_message(chain, view, height, &block_hash);
        let cert = CommitCertificate {
            view,
            height,
            block_hash,
            signatures: (0..count)
                .map(|i| ValidatorSignature { validator: i as u32, signature: keys[i].sign(&commit_msg) })
                .collect(),
        };
        prop_assert_eq!(cert.verify(chain, &vs), Ok(()));
        let all: Vec<u32> = (0..count as u32).collect();
        let mut moved = cert.clone();
        let mut moved_chain = chain.to_string();
        match field {
            0 => moved.view = view.wrapping_add(1),
            1 => moved.height = height.wrapping_add(1),
            2 => moved.block_hash.0[0] ^= 1,
            _ => moved_chain.push('2'),
        }
        prop_assert_eq!(moved.verify(&moved_chain, &vs), Err(QuorumError::BadSignatures(all.clone())));
        let mut short = cert.clone();
        short.signatures.truncate(vs.quorum() - 1);
        prop_assert_eq!(
            short.verify(chain, &vs),
            Err(QuorumError::NotEnoughSignatures { got: vs.quorum() - 1, need: vs.quorum() })
        );

        // The signed bytes, exactly: domain tag, then the canonical encodings of the fields.
        let chain_enc = chain.to_string().to_bytes();
        let expected_commit = [
            "lanes/commit".to_string().to_bytes().as_slice(),
            &chain_enc,
            &view.to_be_bytes(),
            &height.to_be_bytes(),
            &block_hash.0,
        ]
        .concat();
        prop_assert_eq!(&commit_msg, &expected_commit);
        let receipts_root = lanes_types::Hash::tagged("receipts", &state_root.0);
        let roots = lanes_types::ExecRoots { state_root, receipts_root };
        let cp_msg = checkpoint_message(chain, height, &block_hash, &roots);
        let expected_checkpoint = [
            "lanes/checkpoint".to_string().to_bytes().as_slice(),
            &chain_enc,
            &height.to_be_bytes(),
            &block_hash.0,
            &state_root.0,
            &receipts_root.0,
        ]
        .concat();
        prop_assert_eq!(&cp_msg, &expected_checkpoint);
        prop_assert_ne!(&cp_msg, &commit_msg);
        let cp = CheckpointCertificate {
            height,
            block_hash,
            state_root,
            receipts_root,
            signatures: (0..count)
                .map(|i| ValidatorSignature { validator: i as u32, signature: keys[i].sign(&cp_msg) })
                .collect(),
        };
        prop_assert_eq!(cp.verify(chain, &vs), Ok(()));
        let mut moved = cp.clone();
        let mut moved_chain = chain.to_string();
        match field {
            0 => moved.state_root.0[31] ^= 0x80,
            1 => moved.height = height.wrapping_add(1),
            2 => moved.block_hash.0[0] ^= 1,
            3 => moved.receipts_root.0[7] ^= 4,
            _ => moved_chain.push('2'),
        }
        prop_assert_eq!(moved.verify(&moved_chain, &vs), Err(QuorumError::BadSignatures(all.clone())));
        // A commit vote is never a checkpoint signature (domain separation).
        let crossed = CheckpointCertificate { signatures: cert.signatures.clone(), ..cp.clone() };
        prop_assert_eq!(crossed.verify(chain, &vs), Err(QuorumError::BadSignatures(all)));
    }
}
