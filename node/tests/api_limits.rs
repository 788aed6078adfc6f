//! The API's limits on a validator started in-process, over real HTTP from loopback: an
//! oversized body is 413, a client over its rate is 429, a subscriber beyond the cap is 503,
//! each with a JSON error, and each counted on `/metrics`.

mod common;

use common::{request, send};
use lanes_node::api::ApiLimits;
use lanes_node::{fixtures, Node};
use lanes_types::SecretKey;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Validator 0 of a four-validator genesis (alone: the API needs no peers), behind `limits`.
fn start(label: &str, dir: &Path, limits: ApiLimits) -> Node {
    let keys: Vec<SecretKey> = fixtures::keys(label);
    let g = common::genesis(label, &keys);
    Node::start(common::params(&g, &keys, 0, dir, limits)).expect("the node starts")
}

/// The value of one series on `/metrics`.
fn metric(addr: SocketAddr, series: &str) -> String {
    let (status, text) = request(addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    let line = text.lines().find(|l| l.starts_with(&format!("{series} ")));
    let line = line.unwrap_or_else(|| panic!("no {series} in {text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn an_oversized_body_is_413_and_a_subscriber_beyond_the_cap_is_503_both_counted() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ApiLimits {
        max_body_bytes: 1024,
        max_sse: 1,
        ..ApiLimits::default()
    };
    let node = start("api-limits-body", dir.path(), limits);
    let addr = node.api_addr();

    let (status, body) = request(addr, "POST", "/txs", "Content-Length: 10000000\r\n");
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("\"error\":\"body larger than 1024 bytes\""),
        "{body}"
    );
    assert_eq!(
        metric(addr, "lanes_api_rejected_total{reason=\"body\"}"),
        "1"
    );
    // A chunked body declares no size: axum's bound stops it while it is read.
    let mut c = send(addr, "POST", "/txs", "Transfer-Encoding: chunked\r\n");
    let chunk = format!("800\r\n{}\r\n", "0".repeat(2048));
    c.write_all(chunk.as_bytes()).expect("writes the chunk");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("reads the answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"error\":\"body larger than 1024 bytes\""),
        "{answer}"
    );
    assert_eq!(
        metric(addr, "lanes_api_rejected_total{reason=\"body\"}"),
        "2"
    );

    let mut first = send(addr, "GET", "/events", "");
    let mut head = [0u8; 12];
    first
        .read_exact(&mut head)
        .expect("the first subscriber's answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    let (status, body) = request(addr, "GET", "/events", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("at most 1 event subscribers"), "{body}");
    assert_eq!(
        metric(addr, "lanes_api_rejected_total{reason=\"sse\"}"),
        "1"
    );
    assert_eq!(metric(addr, "lanes_api_sse_subscribers"), "1");
    drop(first);
    node.stop().expect("stops");
}

#[test]
fn a_client_over_its_rate_is_429_with_a_json_error_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ApiLimits {
        rate_per_sec: 1.0,
        burst: 2.0,
        exempt_loopback: false,
        ..ApiLimits::default()
    };
    let node = start("api-limits-rate", dir.path(), limits);
    let addr = node.api_addr();
    assert_eq!(request(addr, "GET", "/validators", "").0, 200);
    assert_eq!(request(addr, "GET", "/validators", "").0, 200);
    let (status, body) = request(addr, "GET", "/validators", "");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"error\":\"rate limit"), "{body}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        metric(addr, "lanes_api_rejected_total{reason=\"rate\"}"),
        "1"
    );
    node.stop().expect("stops");
}
