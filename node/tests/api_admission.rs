//! Stateful admission at the API on four validators started in-process: a transaction
//! whose nonce is used or too far ahead, or whose sender cannot pay the fee, is refused with
//! its message and counted; a good one is admitted; `POST /txs` answers per entry; the
//! mempool's own refusals have their statuses.

mod common;

use lanes_api::{Client, TxAnswer};
use lanes_node::api::{ApiLimits, NONCE_WINDOW};
use lanes_node::{fixtures, Node};
use lanes_types::{Genesis, SecretKey};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Four in-process validators (PBFT needs four) whose first key is the funded account.
fn start(dir: &Path) -> (Vec<Node>, Genesis, SecretKey) {
    let keys: Vec<SecretKey> = fixtures::keys("api-admission");
    let mut g = common::genesis("api-admission", &keys);
    g.assets[0].balances[0].amount = 1_000;
    let nodes = (0..4)
        .map(|i| {
            let params = common::params(&g, &keys, i, dir, ApiLimits::default());
            Node::start(params).expect("the node starts")
        })
        .collect();
    (nodes, g, keys[0].clone())
}

/// A signed zero-amount transfer from `key` with `nonce`, paying the minimum fee, in hex.
fn transfer(g: &Genesis, key: &SecretKey, nonce: u64) -> String {
    lanes_types::to_hex(common::transfer(g, key, nonce).0)
}

/// `POST /tx` with a JSON body: the status and the body.
fn post_tx(addr: SocketAddr, hex: &str) -> (u16, String) {
    common::post_json(addr, "/tx", &format!("{{\"tx\":\"{hex}\"}}"))
}

/// The value of one series on `/metrics`.
fn metric(api: &Client, series: &str) -> f64 {
    let text = api.metrics().expect("/metrics");
    lanes_api::metric(&text, series).unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// Waits until the account of `key` has nonce `nonce`.
fn wait_nonce(api: &Client, key: &SecretKey, nonce: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = key.public_key().address();
    while api.account(addr).ok().map(|a| a.nonce) != Some(nonce) {
        assert!(Instant::now() < deadline, "the nonce never reached {nonce}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wrong_nonces_and_unpayable_fees_are_refused_and_counted_a_good_one_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, g, owner) = start(dir.path());
    let addr = nodes[0].api_addr();
    let api = Client::new(&format!("http://{addr}"));
    let refused = |reason: &str| {
        metric(
            &api,
            &format!("lanes_api_refused_txs_total{{reason=\"{reason}\"}}"),
        )
    };

    let first = transfer(&g, &owner, 0);
    let (status, body) = post_tx(addr, &first);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_tx(addr, &first);
    assert_eq!(status, 409, "the mempool's duplicate: {body}");
    wait_nonce(&api, &owner, 1);

    let (status, body) = post_tx(addr, &transfer(&g, &owner, 0));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("nonce 0 already used; the account's next nonce is 1"),
        "{body}"
    );
    let ahead = 1 + NONCE_WINDOW + 1;
    let (status, body) = post_tx(addr, &transfer(&g, &owner, ahead));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("nonce {ahead} too far ahead")),
        "{body}"
    );
    let throwaway = SecretKey::from_label("api-admission-throwaway");
    let (status, body) = post_tx(addr, &transfer(&g, &throwaway, 0));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cannot pay the fee 1: balance 0"), "{body}");
    assert_eq!(refused("nonce_used"), 1.0);
    assert_eq!(refused("nonce_ahead"), 1.0);
    assert_eq!(refused("fee"), 1.0);

    // A batch: each entry its own answer, the good one admitted.
    let batch = [
        transfer(&g, &owner, 0),
        transfer(&g, &throwaway, 0),
        transfer(&g, &owner, 1),
        transfer(&g, &owner, ahead),
    ];
    let bytes: Vec<Vec<u8>> = batch
        .iter()
        .map(|h| lanes_types::parse_hex(h).unwrap())
        .collect();
    let answers = api.submit_batch(&bytes).expect("POST /txs");
    let error = |i: usize| match &answers[i] {
        TxAnswer::Refused { error } => error.clone(),
        a => panic!("entry {i} admitted: {a:?}"),
    };
    assert!(error(0).contains("nonce 0 already used"), "{answers:?}");
    assert!(error(1).contains("cannot pay the fee"), "{answers:?}");
    assert!(
        matches!(answers[2], TxAnswer::Accepted { .. }),
        "{answers:?}"
    );
    assert!(error(3).contains("too far ahead"), "{answers:?}");
    assert_eq!(refused("nonce_used"), 2.0);
    assert_eq!(refused("nonce_ahead"), 2.0);
    assert_eq!(refused("fee"), 2.0);
    assert_eq!(metric(&api, "lanes_rejected_txs_total"), 7.0);
    for node in nodes {
        node.stop().expect("stops");
    }
}
