//! The node's HTTP JSON API (axum). Every body is a `lanes_api` type; every error is a 4xx/5xx
//! with `{"error": "..."}` ([`lanes_api::ErrorBody`]); nothing a client sends can crash the node.
//!
//! `submit.rs` takes transactions (`POST /tx`, `POST /txs`), `read.rs` answers the reads of
//! the node, the chain and the state, `events.rs` streams blocks (`GET /events`) and
//! `metrics.rs` exposes the Prometheus counters (`GET /metrics`), `tx.rs` answers `GET /tx/{hash}`
//! (whose answers `crate::light` checks as a light client does). `limits.rs` protects them all
//! ([`ApiLimits`]): storage reads run on the blocking pool, off the workers that drive QUIC.

mod admit;
mod events;
mod limits;
mod metrics;
mod read;
mod submit;
pub(crate) mod tx;

use super::shared::Shared;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lanes_api::ErrorBody;
use lanes_types::{Address, Hash};
use std::sync::Arc;

pub use admit::NONCE_WINDOW;
pub use limits::{ApiLimits, Guard, Rejected};

/// What every handler sees: the node's shared state (through `Deref`) and the limits'.
pub struct ApiState {
    /// The node's shared state.
    pub shared: Arc<Shared>,
    /// The limits and their counters.
    pub guard: Arc<Guard>,
}

impl std::ops::Deref for ApiState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

type AppState = Arc<ApiState>;

/// An API error: the status and the message of its `{"error": ...}` body.
pub struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// A handler's JSON answer or its error.
type ApiResult<T> = Result<Json<T>, HttpError>;

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::NOT_FOUND, msg.into())
}

fn unavailable(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::SERVICE_UNAVAILABLE, msg.into())
}

fn conflict(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::CONFLICT, msg.into())
}

fn internal(e: impl std::fmt::Display) -> HttpError {
    HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn parse_hash(s: &str) -> Result<Hash, HttpError> {
    s.parse().map_err(|e| bad(format!("bad hash {s:?}: {e}")))
}

fn parse_address(s: &str) -> Result<Address, HttpError> {
    s.parse()
        .map_err(|e| bad(format!("bad address {s:?}: {e:?}")))
}

/// The router for one node, behind `limits`.
pub fn router(shared: Arc<Shared>, limits: ApiLimits) -> Router {
    let guard = Arc::new(Guard::new(limits));
    let state = Arc::new(ApiState {
        shared,
        guard: guard.clone(),
    });
    let routes = Router::new()
        .route("/health", get(read::health))
        .route("/status", get(read::status))
        .route("/validators", get(read::validators))
        .route("/tx", post(submit::submit))
        .route("/txs", post(submit::submit_batch))
        .route("/tx/{hash}", get(tx::tx))
        .route("/blocks", get(read::blocks))
        .route("/block/{id}", get(read::block))
        .route("/account/{address}", get(read::account))
        .route("/pool/{id}", get(read::pool))
        .route("/proof/{key}", get(read::proof))
        .route("/events", get(events::events))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { not_found("no such endpoint") })
        .with_state(state);
    limits::protect(routes, guard)
}
