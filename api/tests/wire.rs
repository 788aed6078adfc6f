//! The wire types against the JSON the node sends: each decodes, encodes back to the same JSON,
//! and a missing or renamed field is a decode error, never a default.

use lanes_api::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Decodes `body` as `T`, checks that it encodes back to exactly `body`, and returns it.
fn round_trip<T: Serialize + DeserializeOwned>(body: Value) -> T {
    let typed: T = serde_json::from_value(body.clone()).expect("decodes");
    assert_eq!(serde_json::to_value(&typed).unwrap(), body);
    typed
}

/// The error decoding `body` as `T` (which must fail).
fn refused<T: DeserializeOwned + std::fmt::Debug>(body: Value) -> String {
    serde_json::from_value::<T>(body)
        .expect_err("must not decode")
        .to_string()
}

/// `body` without `field`, and with it renamed to `field_renamed`.
fn without(body: &Value, field: &str) -> [Value; 2] {
    let mut gone = body.clone();
    let v = gone.as_object_mut().unwrap().remove(field).unwrap();
    let mut renamed = gone.clone();
    renamed[format!("{field}_renamed")] = v;
    [gone, renamed]
}

fn status_body() -> Value {
    json!({
        "chain_id": "lanes-e2e", "min_fee": 1, "validator": 2, "name": "validator-2",
        "height": 17, "block_hash": "ab".repeat(32), "state_root": "cd".repeat(32),
        "view": 1, "primary": 1, "in_view_change": false, "certified_height": 16,
        "mempool": 3, "peers": 3, "diverged_at": null, "state_sync": null, "voting": true,
        "voting_hold_until": null, "lowest_block": 1,
    })
}

#[test]
fn status_round_trips_and_every_field_is_required() {
    let body = status_body();
    let s: Status = round_trip(body.clone());
    assert_eq!((s.height, s.certified_height, s.peers), (17, 16, 3));
    assert_eq!(s.diverged_at, None);
    let mut set = body.clone();
    set["diverged_at"] = json!(9);
    set["voting_hold_until"] = json!(40);
    set["state_sync"] = json!("from validator 1");
    let s: Status = round_trip(set);
    assert_eq!((s.diverged_at, s.voting_hold_until), (Some(9), Some(40)));
    // Even the fields that may be null must be there.
    for field in body.as_object().unwrap().keys() {
        for broken in without(&body, field) {
            let e = refused::<Status>(broken);
            assert!(e.contains(&format!("missing field `{field}`")), "{e}");
        }
    }
}

#[test]
fn a_mistyped_field_is_an_error_not_a_zero() {
    let mut body = status_body();
    body["height"] = json!("17");
    assert!(refused::<Status>(body).contains("invalid type"));
}

#[test]
fn validators_call_the_answering_one_self() {
    let body = json!([
        {"index": 0, "name": "v0", "public_key": "aa", "address": "127.0.0.1:1",
         "self": true, "connected": null},
        {"index": 1, "name": "v1", "public_key": "bb", "address": "127.0.0.1:2",
         "self": false, "connected": true},
    ]);
    let vs: Vec<Validator> = round_trip(body.clone());
    assert!(vs[0].is_self && vs[0].connected.is_none());
    assert_eq!(vs[1].connected, Some(true));
    for broken in without(&body[1], "connected") {
        refused::<Validator>(broken);
    }
}

#[test]
fn submissions_and_batch_answers() {
    let s: SubmitTx = round_trip(json!({"tx": "00ff"}));
    assert_eq!(s.tx, "00ff");
    round_trip::<SubmitBatch>(json!({"txs": ["00", "01"]}));
    round_trip::<Submitted>(json!({"hash": "ab"}));
    let answers: Vec<TxAnswer> = round_trip(json!([{"hash": "ab"}, {"error": "bad signature"}]));
    assert_eq!(answers[0].result(), Ok("ab"));
    assert_eq!(answers[1].result(), Err("bad signature"));
    refused::<TxAnswer>(json!({"hash_renamed": "ab"}));
    refused::<Submitted>(json!({"error": "no"}));
}

fn tx_body() -> Value {
    json!({
        "hash": "11".repeat(32), "status": "certified", "height": 4, "index": 0,
        "block_hash": "22".repeat(32),
        "tx": {"sender": "33".repeat(20), "nonce": 0, "fee": 1,
               "op": {"type": "transfer", "asset": 0, "to": "aa".repeat(20), "amount": 5},
               "raw": "0011"},
        "receipt": {"status": "Success", "success": true, "fee_paid": 1, "outputs": [],
                    "encoded": "00"},
        "certificate": {"height": 4, "state_root": "44".repeat(32),
                        "receipts_root": "55".repeat(32), "signers": [0, 1, 2],
                        "encoded": "66"},
        "receipt_proof": {"index": 0, "leaves": 1, "siblings": []},
    })
}

#[test]
fn a_transaction_with_its_receipt() {
    let t: TxInfo = round_trip(tx_body());
    assert_eq!(t.status, lanes_api::TxStatus::Certified);
    assert!(t.receipt.as_ref().unwrap().success);
    let tx = t.tx.as_ref().unwrap();
    assert_eq!(tx.decoded.as_ref().unwrap().nonce, 0);
    assert_eq!(tx.op(), Some("transfer"));
    let op = &tx.decoded.as_ref().unwrap().op;
    assert_eq!(op.fields["to"], json!("aa".repeat(20)), "addresses whole");
    assert_eq!(op.fields["amount"], json!(5), "amounts as numbers");
    for field in ["receipt", "status", "certificate", "receipt_proof"] {
        for broken in without(&tx_body(), field) {
            refused::<TxInfo>(broken);
        }
    }
    let mut unknown = tx_body();
    unknown["status"] = json!("done");
    refused::<TxInfo>(unknown);
    // Pending: nothing but the hash and the status.
    let pending: TxInfo = round_trip(json!({
        "hash": "11".repeat(32), "status": "pending", "height": null, "index": null,
        "block_hash": null, "tx": null, "receipt": null, "certificate": null,
        "receipt_proof": null,
    }));
    assert!(pending.status < lanes_api::TxStatus::Committed);
    for broken in without(&tx_body()["receipt"], "success") {
        refused::<ReceiptView>(broken);
    }
}

#[test]
fn a_transaction_view_is_decoded_whole_or_raw_only() {
    let raw: TxView = round_trip(json!({"raw": "0011"}));
    assert_eq!((raw.decoded, raw.raw.as_str()), (None, "0011"));
    let whole = tx_body()["tx"].clone();
    for broken in without(&whole, "nonce") {
        let e = refused::<TxView>(broken);
        assert!(e.contains("all of sender, nonce, fee and op"), "{e}");
    }
    refused::<TxView>(without(&whole, "raw")[0].clone());
}

fn block_body() -> Value {
    json!({
        "height": 4, "hash": "44".repeat(32), "parent": "55".repeat(32), "view": 0,
        "proposer": 0, "timestamp_ms": 1_700_000_000_000u64, "txs": 1,
        "state_root": "66".repeat(32), "certified": true,
    })
}

#[test]
fn blocks_and_a_block_with_certificates() {
    let list: Vec<BlockSummary> = round_trip(json!([block_body()]));
    assert_eq!(
        list[0].state_root.as_deref(),
        Some("66".repeat(32).as_str())
    );
    for broken in without(&block_body(), "state_root") {
        refused::<BlockSummary>(broken);
    }
    let mut full = block_body();
    full["transactions"] = json!([{"hash": "11".repeat(32), "tx": {"raw": "00"}}]);
    let bare: BlockInfo = round_trip(full.clone());
    assert!(bare.commit_certificate.is_none() && bare.execution_certificate.is_none());
    full["commit_certificate"] = json!({"view": 0, "signers": [0, 1, 2]});
    full["execution_certificate"] = json!({"height": 4, "state_root": "66".repeat(32), "receipts_root": "77".repeat(32),
               "signers": [0, 1, 3], "encoded": "00"});
    let b: BlockInfo = round_trip(full.clone());
    assert_eq!(b.summary.height, 4);
    assert_eq!(b.execution_certificate.unwrap().signers, [0, 1, 3]);
    // The flattened summary's fields are required too.
    for broken in without(&full, "hash") {
        refused::<BlockInfo>(broken);
    }
    round_trip::<BlocksQuery>(json!({"from": 3, "limit": null}));
}

#[test]
fn accounts_pools_and_proofs() {
    let body = json!({
        "address": "77".repeat(20), "nonce": 3,
        "balances": [{"asset": 0, "symbol": "LANE", "amount": 10}, {"asset": 1, "symbol": "USD", "amount": 4}],
        "positions": [{"asset": 1, "supplied": 5, "borrowed": 2}],
        "stakes": [{"validator": "88".repeat(20), "amount": 9}],
    });
    let a: Account = round_trip(body.clone());
    assert_eq!((a.balance(0), a.balance(1), a.balance(7)), (10, 4, 0));
    for broken in without(&body, "nonce") {
        refused::<Account>(broken);
    }
    round_trip::<Pool>(json!({
        "id": 0, "asset_a": 0, "asset_b": 1, "reserve_a": 5, "reserve_b": 6, "shares": 7,
    }));
    let proof = json!({
        "height": 4, "state_root": "66".repeat(32), "key": "01", "value": null,
        "proof": "02", "certificate": "03",
    });
    let p: StateProof = round_trip(proof.clone());
    assert_eq!(p.value, None);
    for broken in without(&proof, "value") {
        refused::<StateProof>(broken);
    }
}

#[test]
fn block_events_and_error_bodies() {
    round_trip::<BlockEvent>(json!({
        "height": 4, "hash": "44", "txs": 3, "ok_txs": 2, "state_root": "66",
        "timestamp_ms": 5, "view": 0, "exec_ms": 1.5,
    }));
    let e: ErrorBody = round_trip(json!({"error": "no pool 9"}));
    assert_eq!(e.error, "no pool 9");
}
