//! The client against a tiny in-process axum server: typed answers, the node's error messages,
//! decode errors naming the endpoint, and the event stream.

use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use lanes_api::{ApiError, BlocksQuery, Client, SubmitBatch, SubmitTx, TxAnswer};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Serves `router` on a free loopback port from a thread of its own.
fn serve(router: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    addr
}

fn status(height_field: &str) -> Value {
    let mut s = json!({
        "chain_id": "c", "min_fee": 1, "validator": 0, "name": "v0",
        "block_hash": "ab", "state_root": "cd", "view": 0, "primary": 0,
        "in_view_change": false, "certified_height": 6, "mempool": 0, "peers": 3,
        "diverged_at": null, "state_sync": null, "voting": true, "voting_hold_until": null,
        "lowest_block": 1,
    });
    s[height_field] = json!(7);
    s
}

const EVENTS: &str = "event: block\ndata: {\"height\":5,\"hash\":\"aa\",\"txs\":2,\"ok_txs\":2,\
    \"state_root\":\"bb\",\"timestamp_ms\":1,\"view\":0,\"exec_ms\":0.5}\n\n: keep-alive\n\n\
    event: block\ndata: {\"height\":6}\n\n";

fn node() -> Router {
    Router::new()
        .route("/status", get(|| async { Json(status("height")) }))
        .route(
            "/health",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "starting") }),
        )
        .route(
            "/tx",
            post(|body: String| async move {
                // Like the node: JSON or not, whatever the content type says.
                let b: SubmitTx = serde_json::from_str(&body).unwrap();
                Json(json!({ "hash": b.tx }))
            }),
        )
        .route(
            "/txs",
            post(|Json(b): Json<SubmitBatch>| async move {
                let answers: Vec<Value> = b.txs.iter().map(|t| json!({ "error": t })).collect();
                Json(answers)
            }),
        )
        .route(
            "/blocks",
            get(|q: axum::extract::RawQuery| async move { Json(json!([{ "echo": q.0 }])) }),
        )
        .route(
            "/pool/{id}",
            get(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "no pool 9"}))) }),
        )
        .route(
            "/events",
            get(|| async { ([(header::CONTENT_TYPE, "text/event-stream")], EVENTS) }),
        )
        .route("/metrics", get(|| async { "# HELP x y\nlanes_height 7\n" }))
}

#[test]
fn typed_answers_and_what_the_node_sent() {
    let c = Client::new(&serve(node()).to_string());
    assert_eq!(c.status().unwrap().height, 7);
    // What the client sends is what the node decodes.
    assert_eq!(c.submit(&[0, 0xff]).unwrap().hash, "00ff");
    assert_eq!(c.submit_body("{\"tx\": \"0a\"}").unwrap().hash, "0a");
    let answers = c.submit_batch(&[vec![1u8], vec![2]]).unwrap();
    assert_eq!(
        answers,
        [
            TxAnswer::Refused { error: "01".into() },
            TxAnswer::Refused { error: "02".into() }
        ]
    );
    let text = c.metrics().unwrap();
    assert_eq!(lanes_api::metric(&text, "lanes_height"), Some(7.0));
    assert_eq!(lanes_api::metric(&text, "lanes_view"), None);
}

#[test]
fn errors_name_the_endpoint_and_carry_the_node_s_message() {
    let c = Client::new(&format!("http://{}/", serve(node())));
    let e = c.pool(9).unwrap_err();
    assert_eq!((e.status(), e.message()), (Some(404), Some("no pool 9")));
    assert_eq!(e.to_string(), "GET /pool/9: 404 no pool 9");
    // A body that is not an error body is quoted as text.
    let e = c.health().unwrap_err();
    assert_eq!((e.status(), e.message()), (Some(503), Some("starting")));
    // The query is sent as asked, and an answer of another shape is a decode error.
    let e = c
        .blocks(BlocksQuery {
            from: Some(3),
            limit: Some(2),
        })
        .unwrap_err();
    assert!(matches!(e, ApiError::Decode { .. }), "{e}");
    assert!(
        e.to_string().starts_with(
            "GET /blocks?from=3&limit=2: the answer does not decode: missing field `height`"
        ),
        "{e}"
    );
    let down = Client::new("127.0.0.1:1").status().unwrap_err();
    assert!(matches!(down, ApiError::Unreachable { .. }), "{down}");
    assert!(down
        .to_string()
        .contains("unreachable at http://127.0.0.1:1"));
}

#[test]
fn a_renamed_field_is_a_decode_error_not_a_zero() {
    let renamed = Router::new().route("/status", get(|| async { Json(status("head_height")) }));
    let e = Client::new(&serve(renamed).to_string())
        .status()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("GET /status: the answer does not decode: missing field `height`"),
        "{e}"
    );
}

#[test]
fn events_arrive_typed_and_a_bad_one_is_an_error() {
    let c = Client::new(&serve(node()).to_string());
    let mut events = c.events().unwrap();
    let first = events.next().unwrap().unwrap();
    assert_eq!((first.height, first.txs, first.exec_ms), (5, 2, 0.5));
    let e = events.next().unwrap().unwrap_err();
    assert!(e
        .to_string()
        .starts_with("GET /events: the answer does not decode"));
    assert!(events.next().is_none());
}
