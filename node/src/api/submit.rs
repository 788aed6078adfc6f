//! `POST /tx` and `POST /txs`: stateless checks and the sender's account (`admit.rs`) here,
//! then the mempool on the consensus thread.

use super::admit::{self, Claim};
use super::{bad, internal, limits, unavailable, ApiResult, AppState, HttpError};
use crate::shared::{Input, Metrics, Shared};
use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lanes_api::{SubmitBatch, SubmitTx, Submitted, TxAnswer, MAX_BATCH};
use lanes_consensus::AdmitError;
use lanes_executor::tx::{
    check_stateless, check_stateless_unsigned, verify_signatures, SignedTransaction,
};
use lanes_types::{parse_hex, Hash};

/// Hands checked transactions to the consensus thread and waits for the mempool's answers.
async fn admit(
    s: &Shared,
    txs: Vec<lanes_types::Bytes>,
) -> Result<Vec<Result<Hash, String>>, HttpError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.inputs
        .try_send(Input::Submit { txs, reply })
        .map_err(|_| unavailable("node busy, retry"))?;
    let results = answer
        .await
        .map_err(|_| unavailable("node shutting down"))?;
    Ok(results
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect())
}

/// The status of a mempool refusal: 409 for what is already known or outbid, 503 when the
/// pool is full (retry later), 413 too large, 429 when the sender has too many pending, 400
/// for an invalid transaction.
fn admit_status(e: &AdmitError) -> StatusCode {
    match e {
        AdmitError::Duplicate | AdmitError::AlreadyCommitted | AdmitError::Underpriced => {
            StatusCode::CONFLICT
        }
        AdmitError::Full => StatusCode::SERVICE_UNAVAILABLE,
        AdmitError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AdmitError::SenderFull => StatusCode::TOO_MANY_REQUESTS,
        AdmitError::Rejected => StatusCode::BAD_REQUEST,
    }
}

/// Hands one checked transaction to the consensus thread: its hash, or the mempool's refusal
/// with its status.
async fn admit_one(s: &Shared, raw: Vec<u8>) -> Result<Hash, (StatusCode, String)> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = |m: &str| (StatusCode::SERVICE_UNAVAILABLE, m.to_string());
    s.inputs
        .try_send(Input::Submit {
            txs: vec![raw.into()],
            reply,
        })
        .map_err(|_| unavailable("node busy, retry"))?;
    let mut results = answer
        .await
        .map_err(|_| unavailable("node shutting down"))?;
    match results.pop() {
        Some(Ok(hash)) => Ok(hash),
        Some(Err(e)) => Err((admit_status(&e), e.to_string())),
        None => Err(unavailable("the mempool did not answer")),
    }
}

/// `POST /tx`: a hex-encoded signed transaction, as JSON `{"tx": "..."}` ([`SubmitTx`]) or a
/// raw hex body.
pub(super) async fn submit(State(s): State<AppState>, body: Body) -> ApiResult<Submitted> {
    let text = std::str::from_utf8(&body).map_err(|_| bad("body is not UTF-8"))?;
    let hex = match serde_json::from_str::<SubmitTx>(text) {
        Ok(b) => b.tx,
        Err(_) => text.trim().to_string(),
    };
    let raw = parse_hex(&hex).map_err(|_| bad("transaction is not hex"))?;
    let reject = |e: String| {
        Metrics::add(&s.metrics.rejected_txs, 1);
        bad(e)
    };
    let stx = check_stateless(&raw, &s.genesis.chain_id, &s.genesis.params)
        .map_err(|e| reject(e.to_string()))?;
    let claim = Claim::of(&stx);
    let mut checked = limits::blocking(&s.shared, move |sh| admit::check(sh, &[claim])).await?;
    if let Some(Err(e)) = checked.pop() {
        return Err(reject(format!("{e} ({})", stx.hash())));
    }
    match admit_one(&s, raw).await {
        Ok(hash) => Ok(Json(Submitted {
            hash: hash.to_string(),
        })),
        Err((status, e)) => {
            Metrics::add(&s.metrics.rejected_txs, 1);
            Err(HttpError(status, format!("{e} ({})", stx.hash())))
        }
    }
}

/// `POST /txs`: [`SubmitBatch`], up to [`MAX_BATCH`] in order (one sender's nonces stay in
/// order). Signatures are verified in one batch. The answer has one [`TxAnswer`] per
/// transaction.
pub(super) async fn submit_batch(
    State(s): State<AppState>,
    body: Body,
) -> ApiResult<Vec<TxAnswer>> {
    let body: SubmitBatch = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("expected {{\"txs\": [hex, ...]}}: {e}")))?;
    if body.txs.len() > MAX_BATCH {
        return Err(bad(format!("at most {MAX_BATCH} transactions per batch")));
    }
    let (chain_id, params) = (s.genesis.chain_id.clone(), s.genesis.params.clone());
    // Decoding and batch verification are CPU work: keep them off the tokio workers.
    let (mut out, slots, to_admit, claims) =
        tokio::task::spawn_blocking(move || check_batch(&body.txs, &chain_id, &params))
            .await
            .map_err(|_| internal("verifier failed"))?;
    let (slots, to_admit) = check_accounts(&s, &mut out, (slots, to_admit), claims).await?;
    for (i, r) in slots.into_iter().zip(admit(&s, to_admit).await?) {
        out[i] = Some(match r {
            Ok(h) => TxAnswer::Accepted {
                hash: h.to_string(),
            },
            Err(error) => TxAnswer::Refused { error },
        });
    }
    let out: Vec<TxAnswer> = out
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| TxAnswer::Refused {
                error: "the mempool did not answer".into(),
            })
        })
        .collect();
    let rejected = out.iter().filter(|a| a.result().is_err()).count();
    Metrics::add(&s.metrics.rejected_txs, rejected as u64);
    Ok(Json(out))
}

/// The indices of a batch's accepted transactions and their bytes for the mempool.
type Accepted = (Vec<usize>, Vec<lanes_types::Bytes>);

/// One checked batch: an answer slot per transaction (filled for the rejected ones), the
/// indices of the accepted ones, their bytes for the mempool and their claims on accounts.
type CheckedBatch = (
    Vec<Option<TxAnswer>>,
    Vec<usize>,
    Vec<lanes_types::Bytes>,
    Vec<Claim>,
);

/// The accepted transactions of a batch checked against their senders' accounts: a refused
/// one gets its answer in `out` and leaves the accepted ones.
async fn check_accounts(
    s: &AppState,
    out: &mut [Option<TxAnswer>],
    (slots, txs): Accepted,
    claims: Vec<Claim>,
) -> Result<Accepted, HttpError> {
    let verdicts = limits::blocking(&s.shared, move |sh| admit::check(sh, &claims)).await?;
    let mut kept = (
        Vec::with_capacity(slots.len()),
        Vec::with_capacity(txs.len()),
    );
    for ((i, raw), v) in slots.into_iter().zip(txs).zip(verdicts) {
        match v {
            Ok(()) => {
                kept.0.push(i);
                kept.1.push(raw);
            }
            Err(error) => out[i] = Some(TxAnswer::Refused { error }),
        }
    }
    Ok(kept)
}

/// Stateless checks of a batch with its signatures verified together.
fn check_batch(
    txs: &[String],
    chain_id: &str,
    params: &lanes_types::ProtocolParams,
) -> CheckedBatch {
    let refused = |error: String| Some(TxAnswer::Refused { error });
    let mut out: Vec<Option<TxAnswer>> = vec![None; txs.len()];
    let mut decoded = Vec::with_capacity(txs.len());
    for (i, hex) in txs.iter().enumerate() {
        let checked = parse_hex(hex)
            .map_err(|_| "transaction is not hex".to_string())
            .and_then(|raw| {
                check_stateless_unsigned(&raw, chain_id, params)
                    .map(|stx| (raw, stx))
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(pair) => decoded.push((i, pair)),
            Err(e) => out[i] = refused(e),
        }
    }
    let stxs: Vec<SignedTransaction> = decoded.iter().map(|(_, (_, stx))| stx.clone()).collect();
    let mut bad_sig = vec![false; stxs.len()];
    for k in verify_signatures(&stxs).err().unwrap_or_default() {
        bad_sig[k] = true;
    }
    let mut slots = Vec::with_capacity(decoded.len());
    let mut accepted = Vec::with_capacity(decoded.len());
    let mut claims = Vec::with_capacity(decoded.len());
    for (k, (i, (raw, stx))) in decoded.into_iter().enumerate() {
        if bad_sig[k] {
            out[i] = refused("bad signature".into());
        } else {
            slots.push(i);
            accepted.push(raw.into());
            claims.push(Claim::of(&stx));
        }
    }
    (out, slots, accepted, claims)
}
