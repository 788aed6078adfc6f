//! The node's HTTP JSON API (axum). Every error is a 4xx/5xx with `{"error": "..."}`; nothing a
//! client sends can crash the node.

use super::shared::{Input, Metrics, Shared};
use axum::body::Bytes as Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lanes_executor::smt;
use lanes_executor::state::{Key, Value};
use lanes_executor::tx::{
    check_stateless, check_stateless_unsigned, verify_signatures, SignedTransaction,
};
use lanes_executor::Receipt;
use lanes_storage::Store;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Address, Block, Hash};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

type AppState = Arc<Shared>;

/// An API error: status and message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

type ApiResult = Result<Json<Json_>, ApiError>;

/// The router for one node.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/validators", get(validators))
        .route("/tx", post(submit))
        .route("/txs", post(submit_batch))
        .route("/tx/{hash}", get(tx))
        .route("/blocks", get(blocks))
        .route("/block/{id}", get(block))
        .route("/account/{address}", get(account))
        .route("/pool/{id}", get(pool))
        .route("/proof/{key}", get(proof))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(|| async { not_found("no such endpoint") })
        .with_state(state)
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    match s.store.head() {
        Ok(Some(_)) => (StatusCode::OK, "ok").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response(),
    }
}

async fn status(State(s): State<AppState>) -> ApiResult {
    let st = s.status();
    let net = s.net.status();
    let connected = net
        .peers
        .iter()
        .filter(|p| p.connected_out || p.connected_in)
        .count();
    Ok(Json(json!({
        "chain_id": s.genesis.chain_id,
        "min_fee": s.genesis.params.min_fee,
        "validator": s.me,
        "name": s.genesis.validators[s.me as usize].name,
        "height": st.height,
        "block_hash": st.block_hash,
        "state_root": st.state_root,
        "view": st.view,
        "primary": st.primary,
        "in_view_change": st.in_view_change,
        "certified_height": st.certified_height,
        "mempool": st.mempool,
        "peers": connected,
        "diverged_at": st.diverged_at,
        "state_sync": st.state_sync,
        "voting": !st.voting_hold.holding(),
        "voting_hold_until": st.voting_hold.until(),
        "lowest_block": s.store.block_floor().unwrap_or(1),
    })))
}

async fn validators(State(s): State<AppState>) -> ApiResult {
    let net = s.net.status();
    let list: Vec<Json_> = s
        .genesis
        .validators
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let peer = net.peers.iter().find(|p| p.index == i as u32);
            json!({
                "index": i,
                "name": v.name,
                "public_key": v.public_key.to_string(),
                "address": v.address,
                "self": i as u32 == s.me,
                "connected": peer.map(|p| p.connected_out || p.connected_in),
            })
        })
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
struct TxBody {
    /// Hex of the encoded signed transaction.
    tx: String,
}

#[derive(Deserialize)]
struct TxsBody {
    /// Hex of each encoded signed transaction, in order.
    txs: Vec<String>,
}

/// Most transactions in one `POST /txs`.
const MAX_BATCH: usize = 4096;

/// Hands checked transactions to the consensus thread and waits for the mempool's answers.
async fn admit(
    s: &Shared,
    txs: Vec<lanes_types::Bytes>,
) -> Result<Vec<Result<Hash, String>>, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.inputs
        .try_send(Input::Submit { txs, reply })
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "node busy, retry".into()))?;
    let results = answer
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "node shutting down".into()))?;
    Ok(results
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect())
}

/// `POST /tx`: a hex-encoded signed transaction, as JSON `{"tx": "..."}` or a raw hex body.
async fn submit(State(s): State<AppState>, body: Body) -> ApiResult {
    let text = std::str::from_utf8(&body).map_err(|_| bad("body is not UTF-8"))?;
    let hex = match serde_json::from_str::<TxBody>(text) {
        Ok(b) => b.tx,
        Err(_) => text.trim().to_string(),
    };
    let raw = decode_hex(&hex).ok_or_else(|| bad("transaction is not hex"))?;
    let reject = |e: String| {
        Metrics::add(&s.metrics.rejected_txs, 1);
        bad(e)
    };
    let stx = check_stateless(&raw, &s.genesis.chain_id, &s.genesis.params)
        .map_err(|e| reject(e.to_string()))?;
    match admit(&s, vec![raw.into()]).await?.remove(0) {
        Ok(hash) => Ok(Json(json!({ "hash": hash.to_string() }))),
        Err(e) => Err(reject(format!("{e} ({})", stx.hash()))),
    }
}

/// `POST /txs`: `{"txs": [hex, ...]}`, up to 4,096 in order (one sender's nonces stay in
/// order). Signatures are verified in one batch. The answer has one entry per transaction:
/// `{"hash"}` or `{"error"}`.
async fn submit_batch(State(s): State<AppState>, body: Body) -> ApiResult {
    let body: TxsBody = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("expected {{\"txs\": [hex, ...]}}: {e}")))?;
    if body.txs.len() > MAX_BATCH {
        return Err(bad(format!("at most {MAX_BATCH} transactions per batch")));
    }
    let (chain_id, params) = (s.genesis.chain_id.clone(), s.genesis.params.clone());
    // Decoding and batch verification are CPU work: keep them off the tokio workers.
    let (mut out, slots, to_admit) =
        tokio::task::spawn_blocking(move || check_batch(&body.txs, &chain_id, &params))
            .await
            .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "verifier failed".into()))?;
    for (i, r) in slots.into_iter().zip(admit(&s, to_admit).await?) {
        out[i] = Some(match r {
            Ok(h) => json!({ "hash": h.to_string() }),
            Err(e) => json!({ "error": e }),
        });
    }
    let rejected = out
        .iter()
        .filter(|o| o.as_ref().is_some_and(|v| v.get("error").is_some()))
        .count();
    Metrics::add(&s.metrics.rejected_txs, rejected as u64);
    Ok(Json(json!(out)))
}

/// One checked batch: an answer slot per transaction (filled for the rejected ones), the
/// indices of the accepted ones, and their bytes for the mempool.
type CheckedBatch = (Vec<Option<Json_>>, Vec<usize>, Vec<lanes_types::Bytes>);

/// Stateless checks of a batch with its signatures verified together.
fn check_batch(
    txs: &[String],
    chain_id: &str,
    params: &lanes_types::ProtocolParams,
) -> CheckedBatch {
    let mut out: Vec<Option<Json_>> = vec![None; txs.len()];
    let mut decoded = Vec::with_capacity(txs.len());
    for (i, hex) in txs.iter().enumerate() {
        let checked = decode_hex(hex)
            .ok_or_else(|| "transaction is not hex".to_string())
            .and_then(|raw| {
                check_stateless_unsigned(&raw, chain_id, params)
                    .map(|stx| (raw, stx))
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(pair) => decoded.push((i, pair)),
            Err(e) => out[i] = Some(json!({ "error": e })),
        }
    }
    let stxs: Vec<SignedTransaction> = decoded.iter().map(|(_, (_, stx))| stx.clone()).collect();
    let mut bad_sig = vec![false; stxs.len()];
    for k in verify_signatures(&stxs).err().unwrap_or_default() {
        bad_sig[k] = true;
    }
    let mut slots = Vec::with_capacity(decoded.len());
    let mut accepted = Vec::with_capacity(decoded.len());
    for (k, (i, (raw, _))) in decoded.into_iter().enumerate() {
        if bad_sig[k] {
            out[i] = Some(json!({ "error": "bad signature" }));
        } else {
            slots.push(i);
            accepted.push(raw.into());
        }
    }
    (out, slots, accepted)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(s: &str) -> Result<Hash, ApiError> {
    s.parse().map_err(|e| bad(format!("bad hash {s:?}: {e}")))
}

async fn tx(State(s): State<AppState>, Path(hash): Path<String>) -> ApiResult {
    let hash = parse_hash(&hash)?;
    let loc = s
        .store
        .tx_location(&hash)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("transaction {hash} is not in a committed block")))?;
    let block = s
        .store
        .block(loc.height)
        .map_err(internal)?
        .ok_or_else(|| internal("indexed block missing"))?;
    let raw = block
        .txs
        .get(loc.index as usize)
        .ok_or_else(|| internal("index out of range"))?;
    let receipt = s
        .store
        .receipt(loc.height, loc.index)
        .map_err(internal)?
        .map(|r| Receipt::from_bytes(&r))
        .transpose()
        .map_err(|e| internal(format!("stored receipt does not decode: {e}")))?;
    let certified = s
        .store
        .checkpoint_certificate(loc.height)
        .map_err(internal)?
        .is_some();
    Ok(Json(json!({
        "hash": hash.to_string(),
        "height": loc.height,
        "index": loc.index,
        "block_hash": block.hash().to_string(),
        "certified": certified,
        "tx": tx_json(raw),
        "receipt": receipt.map(|r| receipt_json(&r)),
    })))
}

fn tx_json(raw: &[u8]) -> Json_ {
    match SignedTransaction::from_bytes(raw) {
        Ok(stx) => json!({
            "sender": stx.tx.sender_address().to_string(),
            "nonce": stx.tx.nonce,
            "fee": stx.tx.fee,
            "op": format!("{:?}", stx.tx.op),
            "raw": hex(raw),
        }),
        Err(_) => json!({ "raw": hex(raw) }),
    }
}

fn receipt_json(r: &Receipt) -> Json_ {
    json!({
        "status": format!("{:?}", r.status),
        "success": matches!(r.status, lanes_executor::Status::Success),
        "fee_paid": r.fee_paid,
        "outputs": r.outputs,
    })
}

fn block_summary(store: &Store, b: &Block) -> Result<Json_, ApiError> {
    let h = b.height();
    let state_root = store.state_root(h).map_err(internal)?;
    let certified = store.checkpoint_certificate(h).map_err(internal)?.is_some();
    Ok(json!({
        "height": h,
        "hash": b.hash().to_string(),
        "parent": b.header.parent.to_string(),
        "view": b.header.view,
        "proposer": b.header.proposer,
        "timestamp_ms": b.header.timestamp_ms,
        "txs": b.txs.len(),
        "state_root": state_root.map(|r| r.to_string()),
        "certified": certified,
    }))
}

#[derive(Deserialize)]
struct Range {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /blocks?from=H&limit=N`: up to N (default 20, at most 100) block summaries from H
/// (default: the latest N).
async fn blocks(State(s): State<AppState>, Query(r): Query<Range>) -> ApiResult {
    let limit = r.limit.unwrap_or(20).clamp(1, 100);
    let head = s.store.head().map_err(internal)?.map_or(0, |h| h.height);
    let from = r
        .from
        .unwrap_or_else(|| head.saturating_sub(limit as u64 - 1))
        .max(1);
    let list: Vec<Json_> = s
        .store
        .blocks(from, limit)
        .map_err(internal)?
        .iter()
        .map(|b| block_summary(&s.store, b))
        .collect::<Result<_, _>>()?;
    Ok(Json(json!(list)))
}

/// `GET /block/{height|hash}`: one block with its transactions and certificates.
async fn block(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let height = match id.parse::<u64>() {
        Ok(h) => h,
        Err(_) => {
            let hash = parse_hash(&id)?;
            s.store
                .block_height(&hash)
                .map_err(internal)?
                .ok_or_else(|| not_found(format!("no block with hash {hash}")))?
        }
    };
    let b = s
        .store
        .block(height)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no block at height {height}")))?;
    let mut out = block_summary(&s.store, &b)?;
    let txs: Vec<Json_> = b
        .txs
        .iter()
        .map(|raw| json!({"hash": lanes_types::tx_hash(raw).to_string(), "tx": tx_json(raw)}))
        .collect();
    out["transactions"] = json!(txs);
    if let Some(c) = s.store.commit_certificate(height).map_err(internal)? {
        out["commit_certificate"] = json!({
            "view": c.view,
            "signers": c.signatures.iter().map(|s| s.validator).collect::<Vec<_>>(),
        });
    }
    if let Some(c) = s.store.checkpoint_certificate(height).map_err(internal)? {
        out["execution_certificate"] = json!({
            "state_root": c.state_root.to_string(),
            "signers": c.signatures.iter().map(|s| s.validator).collect::<Vec<_>>(),
            "encoded": hex(&c.to_bytes()),
        });
    }
    Ok(Json(out))
}

fn state_get(store: &Store, key: &Key) -> Result<Option<Value>, ApiError> {
    match store.state_get(&key.to_bytes()).map_err(internal)? {
        Some(raw) => Value::from_bytes(&raw).map(Some).map_err(internal),
        None => Ok(None),
    }
}

fn u64_of(v: Option<Value>) -> u64 {
    match v {
        Some(Value::U64(x)) => x,
        _ => 0,
    }
}

fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse()
        .map_err(|e| bad(format!("bad address {s:?}: {e:?}")))
}

/// `GET /account/{address}`: nonce, balances, lending positions.
async fn account(State(s): State<AppState>, Path(address): Path<String>) -> ApiResult {
    let addr = parse_address(&address)?;
    let st = &s.store;
    let nonce = u64_of(state_get(st, &Key::Nonce(addr))?);
    let assets = u64_of(state_get(st, &Key::NextAssetId)?);
    let mut balances = Vec::new();
    for id in 0..assets.min(10_000) as u32 {
        let amount = u64_of(state_get(st, &Key::Balance(addr, id))?);
        if amount > 0 {
            let symbol = match state_get(st, &Key::Asset(id))? {
                Some(Value::Asset(a)) => a.symbol,
                _ => String::new(),
            };
            balances.push(json!({ "asset": id, "symbol": symbol, "amount": amount }));
        }
    }
    let positions = match state_get(st, &Key::Positions(addr))? {
        Some(Value::Positions(ps)) => ps
            .iter()
            .map(|p| json!({"asset": p.asset, "supplied": p.supplied, "borrowed": p.borrowed}))
            .collect(),
        _ => Vec::new(),
    };
    let stakes: Vec<Json_> = s
        .genesis
        .validators
        .iter()
        .map(|v| {
            let val = v.public_key.address();
            let amount = u64_of(state_get(st, &Key::Stake(addr, val))?);
            Ok((amount > 0).then(|| json!({"validator": val.to_string(), "amount": amount})))
        })
        .filter_map(Result::transpose)
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(json!({
        "address": addr.to_string(),
        "nonce": nonce,
        "balances": balances,
        "positions": positions,
        "stakes": stakes,
    })))
}

/// `GET /pool/{id}`.
async fn pool(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id: u32 = id.parse().map_err(|_| bad(format!("bad pool id {id:?}")))?;
    match state_get(&s.store, &Key::Pool(id))? {
        Some(Value::Pool(p)) => Ok(Json(json!({
            "id": id,
            "asset_a": p.asset_a,
            "asset_b": p.asset_b,
            "reserve_a": p.reserve_a,
            "reserve_b": p.reserve_b,
            "shares": p.shares,
        }))),
        _ => Err(not_found(format!("no pool {id}"))),
    }
}

/// `GET /proof/{key}`: a Merkle proof of a state key (hex of the encoded key, or an account
/// address for its native balance) at the latest certified height, with the certificate.
async fn proof(State(s): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let key = match parse_address(&key) {
        Ok(addr) => Key::Balance(addr, 0),
        Err(_) => {
            let raw = decode_hex(&key).ok_or_else(|| bad("key is neither an address nor hex"))?;
            Key::from_bytes(&raw).map_err(|e| bad(format!("bad state key: {e}")))?
        }
    };
    let head = s
        .store
        .head()
        .map_err(internal)?
        .ok_or_else(|| internal("no state"))?;
    let cert = s
        .store
        .checkpoint_certificate(head.height)
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the latest block has no execution certificate yet; retry".into(),
            )
        })?;
    let value = state_get(&s.store, &key)?;
    let nodes = super::execute::StoreNodes::new(&s.store);
    let proof = smt::prove(&nodes, head.state_root, &key);
    nodes.fault.check().map_err(internal)?;
    let proof = proof.map_err(internal)?;
    Ok(Json(json!({
        "height": head.height,
        "state_root": head.state_root.to_string(),
        "key": hex(&key.to_bytes()),
        "value": value.map(|v| hex(&v.to_bytes())),
        "proof": hex(&proof.to_bytes()),
        "certificate": hex(&cert.to_bytes()),
    })))
}

/// `GET /events`: server-sent events, one `block` event per committed block.
async fn events(
    State(s): State<AppState>,
) -> Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut rx = s.blocks.subscribe();
    let stream = async_stream(move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    if tx
                        .send(Ok(SseEvent::default().event("block").data(data)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

/// A stream fed by a task through a bounded channel.
fn async_stream<F, Fut>(f: F) -> tokio_stream_shim::ReceiverStream<Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_shim::ReceiverStream(rx)
}

mod tokio_stream_shim {
    //! A minimal `Stream` over a tokio mpsc receiver (saves a dependency).
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Wraps a receiver as a stream.
    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_core::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let st = s.status();
    let m = &s.metrics;
    let net = s.net.status();
    let peers = net
        .peers
        .iter()
        .filter(|p| p.connected_out || p.connected_in)
        .count();
    let g = Metrics::get;
    let lines = [
        (
            "lanes_height",
            "gauge",
            "Height of the last stored block.",
            st.height as f64,
        ),
        (
            "lanes_certified_height",
            "gauge",
            "Highest height with an execution certificate.",
            st.certified_height as f64,
        ),
        ("lanes_view", "gauge", "Current PBFT view.", st.view as f64),
        (
            "lanes_view_changes_total",
            "counter",
            "View changes started or joined.",
            g(&m.view_changes) as f64,
        ),
        (
            "lanes_committed_blocks_total",
            "counter",
            "Blocks executed and stored.",
            g(&m.committed_blocks) as f64,
        ),
        (
            "lanes_committed_txs_total",
            "counter",
            "Transactions in stored blocks.",
            g(&m.committed_txs) as f64,
        ),
        (
            "lanes_mempool_txs",
            "gauge",
            "Pending transactions.",
            st.mempool as f64,
        ),
        (
            "lanes_block_exec_seconds_last",
            "gauge",
            "Execution time of the last block.",
            g(&m.last_exec_us) as f64 / 1e6,
        ),
        (
            "lanes_block_exec_seconds_total",
            "counter",
            "Total block execution time.",
            g(&m.exec_us_total) as f64 / 1e6,
        ),
        (
            "lanes_quic_peers",
            "gauge",
            "Validators connected over QUIC.",
            peers as f64,
        ),
        (
            "lanes_divergence_alarms_total",
            "counter",
            "Certified roots that differed from ours.",
            g(&m.divergence_alarms) as f64,
        ),
        (
            "lanes_equivocation_alarms_total",
            "counter",
            "Validators seen signing two different blocks for one view and height.",
            g(&m.equivocation_alarms) as f64,
        ),
        (
            "lanes_state_syncs_total",
            "counter",
            "Certified state snapshots installed from peers.",
            g(&m.state_syncs) as f64,
        ),
        (
            "lanes_rejected_messages_total",
            "counter",
            "Invalid messages dropped (by consensus or by the node).",
            g(&m.rejected_messages) as f64,
        ),
        (
            "lanes_unsendable_messages_total",
            "counter",
            "Messages this node could not send: larger than a network frame, or refused by the network.",
            g(&m.unsendable_messages) as f64,
        ),
        (
            "lanes_rejected_txs_total",
            "counter",
            "Transactions refused by the API.",
            g(&m.rejected_txs) as f64,
        ),
        (
            "lanes_dropped_inputs_total",
            "counter",
            "Messages dropped because consensus was busy.",
            g(&m.dropped_inputs) as f64,
        ),
        (
            "lanes_rejected_handshakes_total",
            "counter",
            "QUIC handshakes refused.",
            net.rejected_handshakes as f64,
        ),
    ];
    let mut body = String::new();
    for (name, kind, help, value) in lines {
        body += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
