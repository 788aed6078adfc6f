//! Genesis loading and validation: a valid file loads and round-trips through `to_json`, and
//! every way of getting a field wrong is reported with its own `GenesisError` variant and a
//! message that names the problem.

use lanes_types::codec::Encode;
use lanes_types::{
    certified_block_overhead, Address, CryptoError, Genesis, GenesisError, ProtocolParams,
    PublicKey, SecretKey, MAX_FRAME_BYTES,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;

fn key(i: usize) -> PublicKey {
    SecretKey::from_label(&format!("genesis-validator-{i}")).public_key()
}

fn account(label: &str) -> Address {
    SecretKey::from_label(label).public_key().address()
}

fn oracle() -> Address {
    account("oracle")
}

fn validators_json(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "name": format!("v{i}"),
                    "public_key": key(i).to_string(),
                    "address": format!("127.0.0.1:{}", 7000 + i),
                })
            })
            .collect(),
    )
}

fn params_json() -> Value {
    serde_json::to_value(ProtocolParams::local_defaults(oracle())).unwrap()
}

/// A valid genesis with `n` validators and one asset, LANE, held by alice and bob.
fn genesis_json_n(n: usize) -> Value {
    json!({
        "chain_id": "lanes-test.1",
        "genesis_time_ms": 1_700_000_000_000u64,
        "validators": validators_json(n),
        "assets": [{
            "symbol": "LANE",
            "balances": [
                { "account": account("alice").to_string(), "amount": 1_000_000u64 },
                { "account": account("bob").to_string(), "amount": 250u64 },
            ],
        }],
        "params": params_json(),
    })
}

fn genesis_json() -> Value {
    genesis_json_n(4)
}

fn load(v: &Value) -> Result<Genesis, GenesisError> {
    Genesis::from_json(&v.to_string())
}

/// Applies `edit` to a valid genesis and returns the error, failing if it loads.
fn error_after(edit: impl FnOnce(&mut Value)) -> GenesisError {
    let mut v = genesis_json();
    edit(&mut v);
    match load(&v) {
        Ok(g) => panic!("edited genesis loaded: {g:?}\n{v:#}"),
        Err(e) => e,
    }
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    let obj = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    assert!(obj.remove(field).is_some(), "no {pointer}");
}

fn assert_mentions(e: &GenesisError, needles: &[&str]) {
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The valid genesis.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_valid_genesis_loads_with_every_field() {
    let g = load(&genesis_json()).expect("valid genesis");
    assert_eq!(g.chain_id, "lanes-test.1");
    assert_eq!(g.genesis_time_ms, 1_700_000_000_000);
    assert_eq!(g.validators.len(), 4);
    for (i, v) in g.validators.iter().enumerate() {
        assert_eq!(v.name, format!("v{i}"));
        assert_eq!(v.public_key, key(i));
        assert_eq!(v.address, format!("127.0.0.1:{}", 7000 + i));
    }
    assert_eq!(g.assets.len(), 1);
    assert_eq!(g.assets[0].symbol, "LANE");
    let balances: Vec<(Address, u64)> = g.assets[0]
        .balances
        .iter()
        .map(|b| (b.account, b.amount))
        .collect();
    assert_eq!(
        balances,
        vec![(account("alice"), 1_000_000), (account("bob"), 250)]
    );
    assert_eq!(g.params, ProtocolParams::local_defaults(oracle()));
}

#[test]
fn to_json_round_trips_to_an_equal_genesis_with_an_equal_hash() {
    let g = load(&genesis_json()).unwrap();
    let text = g.to_json();
    let back = Genesis::from_json(&text).expect("to_json output loads");
    assert_eq!(back, g);
    assert_eq!(back.hash(), g.hash());
    assert_eq!(back.to_json(), text);
    assert_eq!(
        g.hash(),
        lanes_types::Hash::tagged("lanes/genesis", &g.to_bytes())
    );
}

#[test]
fn the_hash_changes_with_any_field() {
    let base = load(&genesis_json()).unwrap().hash();
    let edits: Vec<(&str, Value)> = vec![
        ("/chain_id", json!("lanes-test.2")),
        ("/genesis_time_ms", json!(1)),
        ("/validators/3/name", json!("v3b")),
        ("/validators/3/address", json!("127.0.0.1:7100")),
        ("/validators/3/public_key", json!(key(99).to_string())),
        ("/assets/0/symbol", json!("LANF")),
        ("/assets/0/balances/1/amount", json!(251)),
        ("/params/min_fee", json!(2)),
        ("/params/oracle", json!(account("other-oracle").to_string())),
    ];
    for (pointer, value) in edits {
        let mut v = genesis_json();
        set(&mut v, pointer, value);
        let g = load(&v).unwrap_or_else(|e| panic!("{pointer}: {e}"));
        assert_ne!(g.hash(), base, "hash does not cover {pointer}");
    }
    // Validator order is part of the genesis (it fixes validator indexes).
    let mut v = genesis_json();
    v["validators"].as_array_mut().unwrap().swap(0, 1);
    assert_ne!(load(&v).unwrap().hash(), base);
}

#[test]
fn hex_may_be_uppercase_or_0x_prefixed() {
    let mut v = genesis_json();
    set(
        &mut v,
        "/validators/0/public_key",
        json!(key(0).to_string().to_uppercase()),
    );
    set(
        &mut v,
        "/validators/1/public_key",
        json!(format!("0x{}", key(1))),
    );
    set(
        &mut v,
        "/assets/0/balances/0/account",
        json!(format!("0x{}", account("alice"))),
    );
    assert_eq!(load(&v).unwrap(), load(&genesis_json()).unwrap());
}

#[test]
fn load_reads_a_file_and_reports_missing_paths() {
    let dir = std::env::temp_dir().join(format!("lanes-types-genesis-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("genesis.json");
    let g = load(&genesis_json()).unwrap();
    std::fs::write(&path, g.to_json()).unwrap();
    assert_eq!(Genesis::load(&path).unwrap(), g);

    let missing: PathBuf = dir.join("no-such-dir").join("genesis.json");
    let e = Genesis::load(&missing).unwrap_err();
    match &e {
        GenesisError::Io { path, source } => {
            assert_eq!(path, &missing.display().to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_mentions(
        &e,
        &["cannot read genesis file", &missing.display().to_string()],
    );

    // A file that exists but is not a genesis is a syntax error, not an I/O error.
    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(Genesis::load(&path), Err(GenesisError::Syntax(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fault_tolerance_and_quorum_from_genesis() {
    for (n, f, q) in [(4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)] {
        let g = load(&genesis_json_n(n)).unwrap();
        let vs = g.validator_set();
        assert_eq!(vs.len(), n);
        assert_eq!(vs.max_faulty(), f, "n={n}");
        assert_eq!(vs.quorum(), q, "n={n}");
        for i in 0..n {
            assert_eq!(vs.index_of(&key(i)), Some(i as u32));
            assert_eq!(vs.get(i as u32).unwrap().name, format!("v{i}"));
        }
        assert_eq!(vs.index_of(&key(n)), None);
        assert!(vs.get(n as u32).is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax: missing, unknown and mistyped fields.
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_fields_are_syntax_errors_naming_the_field() {
    let required = [
        "/chain_id",
        "/genesis_time_ms",
        "/validators",
        "/assets",
        "/params",
        "/validators/2/name",
        "/validators/2/public_key",
        "/validators/2/address",
        "/assets/0/symbol",
        "/assets/0/balances",
        "/assets/0/balances/0/account",
        "/assets/0/balances/0/amount",
        "/params/max_block_txs",
        "/params/max_tx_bytes",
        "/params/block_interval_ms",
        "/params/view_timeout_ms",
        "/params/watermark_window",
        "/params/min_fee",
        "/params/swap_fee_bps",
        "/params/collateral_factor_bps",
        "/params/liquidation_bonus_bps",
        "/params/oracle",
    ];
    for pointer in required {
        let e = error_after(|v| remove(v, pointer));
        assert!(matches!(e, GenesisError::Syntax(_)), "{pointer}: {e:?}");
        let field = pointer.rsplit('/').next().unwrap();
        assert_mentions(
            &e,
            &[
                "genesis is not valid",
                "missing field",
                &format!("`{field}`"),
            ],
        );
    }
}

#[test]
fn unknown_fields_are_syntax_errors_naming_the_field() {
    for parent in [
        "",
        "/validators/1",
        "/assets/0",
        "/assets/0/balances/1",
        "/params",
    ] {
        let e = error_after(|v| {
            let obj = if parent.is_empty() {
                &mut *v
            } else {
                v.pointer_mut(parent).unwrap()
            };
            obj.as_object_mut()
                .unwrap()
                .insert("colour".into(), json!("blue"));
        });
        assert!(matches!(e, GenesisError::Syntax(_)), "{parent}: {e:?}");
        assert_mentions(&e, &["unknown field", "`colour`"]);
    }
}

#[test]
fn mistyped_values_and_broken_json_are_syntax_errors() {
    let e = error_after(|v| set(v, "/chain_id", json!(5)));
    assert!(matches!(e, GenesisError::Syntax(_)));
    assert_mentions(&e, &["invalid type"]);
    let e = error_after(|v| set(v, "/genesis_time_ms", json!(-1)));
    assert!(matches!(e, GenesisError::Syntax(_)));
    // An amount that does not fit in u64.
    let text = genesis_json().to_string();
    assert!(text.contains("\"amount\":1000000"));
    let text = text.replace("\"amount\":1000000", "\"amount\":18446744073709551616");
    assert!(matches!(
        Genesis::from_json(&text),
        Err(GenesisError::Syntax(_))
    ));
    let e = Genesis::from_json("{\"chain_id\": ").unwrap_err();
    assert!(matches!(e, GenesisError::Syntax(_)));
    assert!(matches!(
        Genesis::from_json(""),
        Err(GenesisError::Syntax(_))
    ));
    assert!(matches!(
        Genesis::from_json("[]"),
        Err(GenesisError::Syntax(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Chain id and validators.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_chain_ids_are_rejected() {
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "has space",
        "slash/no",
        "ümlaut",
        "tab\t",
        too_long.as_str(),
    ] {
        let e = error_after(|v| set(v, "/chain_id", json!(bad)));
        assert!(
            matches!(&e, GenesisError::BadChainId(id) if id == bad),
            "{bad:?}: {e:?}"
        );
        assert_mentions(&e, &["chain_id", &format!("{bad:?}")]);
    }
    // The edges of the rule are accepted.
    for good in ["a".repeat(64), "A.b_c-9".into(), "0".into()] {
        let mut v = genesis_json();
        set(&mut v, "/chain_id", json!(good));
        assert_eq!(load(&v).unwrap().chain_id, good);
    }
}

#[test]
fn fewer_than_four_validators_are_rejected() {
    for n in [0usize, 1, 3] {
        let e = error_after(|v| set(v, "/validators", validators_json(n)));
        assert!(
            matches!(e, GenesisError::TooFewValidators(k) if k == n),
            "{e:?}"
        );
        assert_mentions(&e, &[&format!("genesis has {n} validators"), "at least 4"]);
    }
}

#[test]
fn duplicate_or_empty_validator_names_are_rejected() {
    let e = error_after(|v| set(v, "/validators/3/name", json!("v1")));
    assert!(
        matches!(&e, GenesisError::DuplicateValidatorName(n) if n == "v1"),
        "{e:?}"
    );
    assert_mentions(&e, &["\"v1\"", "used twice"]);

    let e = error_after(|v| set(v, "/validators/0/name", json!("")));
    assert!(
        matches!(&e, GenesisError::DuplicateValidatorName(n) if n.is_empty()),
        "{e:?}"
    );
    assert_mentions(&e, &["empty"]);
}

#[test]
fn duplicate_validator_keys_are_rejected() {
    let e = error_after(|v| set(v, "/validators/3/public_key", json!(key(1).to_string())));
    match &e {
        GenesisError::DuplicateValidatorKey { first, second } => {
            assert_eq!((first.as_str(), second.as_str()), ("v1", "v3"));
        }
        other => panic!("expected DuplicateValidatorKey, got {other:?}"),
    }
    assert_mentions(&e, &["\"v1\"", "\"v3\"", "same public key"]);

    // The same key written differently is still the same key.
    let e = error_after(|v| {
        set(
            v,
            "/validators/2/public_key",
            json!(format!("0x{}", key(0).to_string().to_uppercase())),
        )
    });
    assert!(
        matches!(e, GenesisError::DuplicateValidatorKey { .. }),
        "{e:?}"
    );
}

#[test]
fn duplicate_validator_addresses_are_rejected() {
    let e = error_after(|v| set(v, "/validators/2/address", json!("127.0.0.1:7000")));
    match &e {
        GenesisError::DuplicateValidatorAddress {
            first,
            second,
            address,
        } => {
            assert_eq!(
                (first.as_str(), second.as_str(), address.as_str()),
                ("v0", "v2", "127.0.0.1:7000")
            );
        }
        other => panic!("expected DuplicateValidatorAddress, got {other:?}"),
    }
    assert_mentions(&e, &["\"v0\"", "\"v2\"", "127.0.0.1:7000"]);
}

#[test]
fn malformed_validator_keys_are_rejected() {
    let cases = [
        ("zz".repeat(32), "not hexadecimal"),
        (
            key(0).to_string()[..62].to_string(),
            "expected 64 hex characters, got 62",
        ),
        (
            format!("{}00", key(0)),
            "expected 64 hex characters, got 66",
        ),
        (String::new(), "expected 64 hex characters, got 0"),
    ];
    for (bad, reason_part) in cases {
        let e = error_after(|v| set(v, "/validators/1/public_key", json!(bad)));
        match &e {
            GenesisError::BadValidatorKey { validator, reason } => {
                assert_eq!(validator, "v1");
                assert!(
                    reason.contains(reason_part),
                    "{reason:?} vs {reason_part:?}"
                );
            }
            other => panic!("expected BadValidatorKey for {bad:?}, got {other:?}"),
        }
        assert_mentions(&e, &["\"v1\"", "bad public key", reason_part]);
    }
}

/// 32 bytes that are well-formed hex but not the encoding of a curve point.
fn non_point() -> [u8; 32] {
    for b in 0u8..=255 {
        for pattern in [[b; 32], {
            let mut k = [0u8; 32];
            k[0] = b;
            k
        }] {
            if PublicKey(pattern).validate() == Err(CryptoError::InvalidPublicKey) {
                return pattern;
            }
        }
    }
    panic!("no non-point found among the patterns");
}

#[test]
fn keys_that_are_not_curve_points_are_rejected() {
    let bad = non_point();
    let e = error_after(|v| set(v, "/validators/2/public_key", json!(hex::encode(bad))));
    match &e {
        GenesisError::BadValidatorKey { validator, reason } => {
            assert_eq!(validator, "v2");
            assert!(reason.contains("not a valid ed25519 point"), "{reason:?}");
        }
        other => panic!("expected BadValidatorKey, got {other:?}"),
    }
    assert_mentions(
        &e,
        &["\"v2\"", "bad public key", "not a valid ed25519 point"],
    );
}

/// Keys that are points but unfit: small order (ZIP-215 verification would accept forged
/// signatures under them) or a non-canonical encoding of a point.
#[test]
fn weak_and_non_canonical_keys_are_rejected() {
    let identity = {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    };
    let cases = [
        (identity, "small-order"),
        ([0u8; 32], "small-order"),
        (non_canonical_key(), "not canonically encoded"),
    ];
    for (bad, reason_part) in cases {
        let e = error_after(|v| set(v, "/validators/0/public_key", json!(hex::encode(bad))));
        match &e {
            GenesisError::BadValidatorKey { validator, reason } => {
                assert_eq!(validator, "v0");
                assert!(
                    reason.contains(reason_part),
                    "{reason:?} vs {reason_part:?}"
                );
            }
            other => panic!(
                "expected BadValidatorKey for {}, got {other:?}",
                hex::encode(bad)
            ),
        }
        assert_mentions(&e, &["\"v0\"", "bad public key", reason_part]);
    }
}

/// The encoding y + p of a large-order point whose y is below 19.
fn non_canonical_key() -> [u8; 32] {
    let t = (2u8..19)
        .find(|&t| {
            let mut k = [0u8; 32];
            k[0] = t;
            PublicKey(k).validate().is_ok()
        })
        .expect("a large-order point with a small y");
    let mut k = [0xffu8; 32];
    k[0] = 0xed + t;
    k[31] = 0x7f;
    assert_eq!(
        PublicKey(k).validate(),
        Err(CryptoError::NonCanonicalPublicKey)
    );
    k
}

#[test]
fn validator_addresses_must_be_host_and_port() {
    for bad in [
        "127.0.0.1",
        "",
        ":7000",
        "host:",
        "host:0",
        "host:65536",
        "host:http",
        "host:-1",
    ] {
        let e = error_after(|v| set(v, "/validators/1/address", json!(bad)));
        match &e {
            GenesisError::BadValidatorAddress { validator, address } => {
                assert_eq!((validator.as_str(), address.as_str()), ("v1", bad));
            }
            other => panic!("expected BadValidatorAddress for {bad:?}, got {other:?}"),
        }
        assert_mentions(&e, &["\"v1\"", &format!("{bad:?}"), "host:port"]);
    }
    for good in ["localhost:1", "[::1]:65535", "node-1.example.org:7000"] {
        let mut v = genesis_json();
        set(&mut v, "/validators/1/address", json!(good));
        assert_eq!(load(&v).unwrap().validators[1].address, good);
    }
}

// ---------------------------------------------------------------------------------------------
// Assets and balances.
// ---------------------------------------------------------------------------------------------

#[test]
fn at_least_one_asset_is_required() {
    let e = error_after(|v| set(v, "/assets", json!([])));
    assert!(matches!(e, GenesisError::NoAssets), "{e:?}");
    assert_mentions(&e, &["at least one asset"]);
}

#[test]
fn bad_asset_symbols_are_rejected() {
    let too_long = "A".repeat(13);
    for bad in ["", "lane", "LA NE", "LANE!", "ŁANE", too_long.as_str()] {
        let e = error_after(|v| set(v, "/assets/0/symbol", json!(bad)));
        assert!(
            matches!(&e, GenesisError::BadAssetSymbol(s) if s == bad),
            "{bad:?}: {e:?}"
        );
        assert_mentions(&e, &[&format!("asset symbol {bad:?}"), "A-Z 0-9"]);
    }
    for good in ["A".repeat(12), "X1".into(), "9".into()] {
        let mut v = genesis_json();
        set(&mut v, "/assets/0/symbol", json!(good));
        assert_eq!(load(&v).unwrap().assets[0].symbol, good);
    }
}

#[test]
fn duplicate_asset_symbols_are_rejected() {
    let e = error_after(|v| {
        let assets = v["assets"].as_array_mut().unwrap();
        assets.push(json!({ "symbol": "USD", "balances": [] }));
        assets.push(json!({ "symbol": "LANE", "balances": [] }));
    });
    assert!(
        matches!(&e, GenesisError::BadAssetSymbol(s) if s == "LANE"),
        "{e:?}"
    );
    assert_mentions(&e, &["\"LANE\"", "repeated"]);
    // Distinct symbols are fine, and order is kept (the first is the native asset).
    let mut v = genesis_json();
    v["assets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "symbol": "USD", "balances": [] }));
    let g = load(&v).unwrap();
    let symbols: Vec<&str> = g.assets.iter().map(|a| a.symbol.as_str()).collect();
    assert_eq!(symbols, ["LANE", "USD"]);
}

#[test]
fn duplicate_balances_are_rejected() {
    let alice = account("alice").to_string();
    let e = error_after(|v| set(v, "/assets/0/balances/1/account", json!(alice)));
    match &e {
        GenesisError::DuplicateBalance { symbol, account } => {
            assert_eq!(
                (symbol.as_str(), account.as_str()),
                ("LANE", alice.as_str())
            );
        }
        other => panic!("expected DuplicateBalance, got {other:?}"),
    }
    assert_mentions(&e, &["asset LANE", &alice, "listed twice"]);

    // Written differently, still the same account.
    let e = error_after(|v| {
        set(
            v,
            "/assets/0/balances/1/account",
            json!(format!("0x{}", alice.to_uppercase())),
        )
    });
    assert!(matches!(e, GenesisError::DuplicateBalance { .. }), "{e:?}");

    // The same account may hold several assets.
    let mut v = genesis_json();
    v["assets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "symbol": "USD", "balances": [{ "account": alice, "amount": 5 }] }));
    assert!(load(&v).is_ok());
}

#[test]
fn bad_accounts_are_rejected_with_their_context() {
    let cases = [
        ("zz".repeat(20), "not hexadecimal"),
        ("abcd".to_string(), "expected 40 hex characters, got 4"),
        (key(0).to_string(), "expected 40 hex characters, got 64"),
    ];
    for (bad, reason_part) in &cases {
        let e = error_after(|v| set(v, "/assets/0/balances/0/account", json!(bad)));
        match &e {
            GenesisError::BadAccount {
                context,
                value,
                reason,
            } => {
                assert_eq!(context, "asset LANE");
                assert_eq!(value, bad);
                assert!(reason.contains(reason_part), "{reason:?}");
            }
            other => panic!("expected BadAccount, got {other:?}"),
        }
        assert_mentions(&e, &["asset LANE", "bad account", bad, reason_part]);

        let e = error_after(|v| set(v, "/params/oracle", json!(bad)));
        match &e {
            GenesisError::BadAccount { context, value, .. } => {
                assert_eq!(
                    (context.as_str(), value.as_str()),
                    ("params.oracle", bad.as_str())
                );
            }
            other => panic!("expected BadAccount for the oracle, got {other:?}"),
        }
        assert_mentions(&e, &["params.oracle", "bad account", reason_part]);
    }
}

#[test]
fn supply_overflow_is_rejected() {
    let e = error_after(|v| {
        set(v, "/assets/0/balances/0/amount", json!(u64::MAX));
        set(v, "/assets/0/balances/1/amount", json!(1));
    });
    assert!(
        matches!(&e, GenesisError::SupplyOverflow(s) if s == "LANE"),
        "{e:?}"
    );
    assert_mentions(&e, &["asset LANE", "overflows u64"]);

    // Exactly u64::MAX in total is fine.
    let mut v = genesis_json();
    set(&mut v, "/assets/0/balances/0/amount", json!(u64::MAX - 1));
    set(&mut v, "/assets/0/balances/1/amount", json!(1));
    let g = load(&v).unwrap();
    assert_eq!(
        g.assets[0]
            .balances
            .iter()
            .map(|b| u128::from(b.amount))
            .sum::<u128>(),
        u128::from(u64::MAX)
    );
    // Supplies are per asset: two assets each near u64::MAX do not overflow together.
    v["assets"].as_array_mut().unwrap().push(json!({
        "symbol": "USD",
        "balances": [{ "account": account("carol").to_string(), "amount": u64::MAX }],
    }));
    assert!(load(&v).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Protocol parameters.
// ---------------------------------------------------------------------------------------------

/// (parameter, out-of-range values, in-range boundary values)
fn param_ranges() -> Vec<(&'static str, Vec<u64>, Vec<u64>)> {
    vec![
        (
            "max_block_txs",
            vec![0, 100_001, u64::from(u32::MAX)],
            vec![1, 100_000],
        ),
        ("max_tx_bytes", vec![0, 127, 65_537], vec![128, 65_536]),
        (
            "block_interval_ms",
            vec![0, 60_001, u64::MAX],
            vec![1, 60_000],
        ),
        ("view_timeout_ms", vec![0, 49, 600_001], vec![50, 600_000]),
        ("watermark_window", vec![0, 1025], vec![1, 1024]),
        (
            "swap_fee_bps",
            vec![10_000, u64::from(u32::MAX)],
            vec![0, 9_999],
        ),
        ("collateral_factor_bps", vec![0, 10_000], vec![1, 9_999]),
        ("liquidation_bonus_bps", vec![5_001, 10_000], vec![0, 5_000]),
        ("min_fee", vec![], vec![0, u64::MAX]),
    ]
}

/// Sets `name` to `value`, and the other block size parameter low enough for the largest
/// block to fit a frame whatever `value` is.
fn set_param(v: &mut Value, name: &str, value: u64) {
    match name {
        "max_block_txs" => set(v, "/params/max_tx_bytes", json!(128)),
        "max_tx_bytes" => set(v, "/params/max_block_txs", json!(100)),
        _ => {}
    }
    set(v, &format!("/params/{name}"), json!(value));
}

#[test]
fn each_out_of_range_param_is_rejected_by_name() {
    for (name, bad, good) in param_ranges() {
        for value in bad {
            let e = error_after(|v| set_param(v, name, value));
            match &e {
                GenesisError::BadParam { name: n, reason } => {
                    assert_eq!(*n, name, "value {value}");
                    assert!(!reason.is_empty());
                }
                other => panic!("expected BadParam for {name}={value}, got {other:?}"),
            }
            assert_mentions(&e, &[&format!("params.{name}:")]);
        }
        for value in good {
            let mut v = genesis_json();
            set_param(&mut v, name, value);
            let g = load(&v).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
            let encoded = serde_json::to_value(&g.params).unwrap();
            assert_eq!(encoded[name], json!(value), "{name}");
        }
    }
}

#[test]
fn param_messages_state_the_accepted_range() {
    let expect = [
        ("max_block_txs", 0u64, "1 to 100000"),
        ("max_tx_bytes", 127, "128 to 65536"),
        ("block_interval_ms", 0, "1 to 60000"),
        ("view_timeout_ms", 49, "50 to 600000"),
        ("watermark_window", 0, "1 to 1024"),
        ("swap_fee_bps", 10_000, "below 10000"),
        ("collateral_factor_bps", 10_000, "1 to 9999"),
        ("liquidation_bonus_bps", 5_001, "at most 5000"),
    ];
    for (name, value, range) in expect {
        let e = error_after(|v| set_param(v, name, value));
        assert_mentions(&e, &[&format!("params.{name}: must be {range}")]);
    }
}

/// The most transactions per block for which a full block of `tx_bytes` transactions fits a
/// frame with `n` validators.
fn max_txs_fitting(tx_bytes: u64, n: usize) -> u64 {
    (MAX_FRAME_BYTES - certified_block_overhead(n)) / (tx_bytes + 4)
}

#[test]
fn a_full_block_must_fit_a_network_frame() {
    for (n, tx_bytes) in [(4, 128), (4, 1_024), (4, 65_536), (7, 65_536), (40, 300)] {
        let fit = max_txs_fitting(tx_bytes, n).min(100_000);
        let mut v = genesis_json_n(n);
        set(&mut v, "/params/max_tx_bytes", json!(tx_bytes));
        set(&mut v, "/params/max_block_txs", json!(fit));
        load(&v).unwrap_or_else(|e| panic!("n {n}, {fit} x {tx_bytes}: {e}"));
        if fit == 100_000 {
            continue; // every allowed block size fits
        }
        set(&mut v, "/params/max_block_txs", json!(fit + 1));
        let e = load(&v).expect_err("one more transaction does not fit");
        let bytes = (fit + 1) * (tx_bytes + 4) + certified_block_overhead(n);
        assert!(bytes > MAX_FRAME_BYTES);
        assert!(matches!(e, GenesisError::BlockTooLarge { .. }), "{e:?}");
        assert_mentions(
            &e,
            &[
                &format!("params.max_block_txs ({})", fit + 1),
                &format!("params.max_tx_bytes ({tx_bytes})"),
                &format!("is {bytes} bytes"),
                &format!("network frame of {MAX_FRAME_BYTES} bytes"),
                "lower max_block_txs or max_tx_bytes",
            ],
        );
    }
    // The largest block of each parameter alone at its maximum is refused.
    let e = error_after(|v| {
        set(v, "/params/max_block_txs", json!(100_000));
        set(v, "/params/max_tx_bytes", json!(65_536));
    });
    assert!(matches!(e, GenesisError::BlockTooLarge { .. }), "{e:?}");
}

#[test]
fn the_local_defaults_fit_a_frame() {
    let p = ProtocolParams::local_defaults(oracle());
    let bytes = u64::from(p.max_block_txs) * (u64::from(p.max_tx_bytes) + 4);
    assert!(bytes + certified_block_overhead(100) <= MAX_FRAME_BYTES);
    assert!(load(&genesis_json_n(100)).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Generated genesis files.
// ---------------------------------------------------------------------------------------------

fn arb_valid_genesis_json() -> impl Strategy<Value = Value> {
    let balances = vec((any::<[u8; 20]>(), any::<u32>()), 0..5);
    (
        "[A-Za-z0-9._-]{1,64}",
        any::<u64>(),
        4usize..9,
        vec(("[A-Z0-9]{1,12}", balances), 1..4),
        (
            any::<u32>(),
            128u32..=65_536,
            0u32..10_000,
            1u32..10_000,
            0u32..=5_000,
        ),
    )
        .prop_map(
            |(chain_id, time, n, assets, (txs, bytes, swap, cf, bonus))| {
                let mut seen = std::collections::BTreeSet::new();
                let assets: Vec<Value> = assets
                    .into_iter()
                    .filter(|(s, _)| seen.insert(s.clone()))
                    .map(|(symbol, balances)| {
                        let mut accounts = std::collections::BTreeSet::new();
                        let balances: Vec<Value> = balances
                        .into_iter()
                        .filter(|(a, _)| accounts.insert(*a))
                        .map(|(a, amount)| json!({ "account": hex::encode(a), "amount": amount }))
                        .collect();
                        json!({ "symbol": symbol, "balances": balances })
                    })
                    .collect();
                let mut params = params_json();
                // Any count from 1 up to the most whose full block fits a frame.
                let most = max_txs_fitting(u64::from(bytes), n).min(100_000);
                params["max_block_txs"] = json!(1 + u64::from(txs) % most);
                params["max_tx_bytes"] = json!(bytes);
                params["swap_fee_bps"] = json!(swap);
                params["collateral_factor_bps"] = json!(cf);
                params["liquidation_bonus_bps"] = json!(bonus);
                json!({
                    "chain_id": chain_id,
                    "genesis_time_ms": time,
                    "validators": validators_json(n),
                    "assets": assets,
                    "params": params,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_valid_genesis_round_trips(v in arb_valid_genesis_json()) {
        let g = load(&v).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let back = Genesis::from_json(&g.to_json()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(back.hash(), g.hash());
        prop_assert_eq!(&back, &g);
        let n = g.validators.len();
        let vs = g.validator_set();
        prop_assert_eq!(vs.max_faulty(), (n - 1) / 3);
        prop_assert!(3 * vs.max_faulty() < n);
    }

    /// Arbitrary text never panics the loader.
    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = Genesis::from_json(&s);
    }
}
