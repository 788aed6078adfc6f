//! lanes-api: the node's HTTP API as types, and a blocking client for it.
//!
//! Every JSON body the node accepts or answers is a struct or enum here, with the field names
//! the server emits; the server (`lanes-node`) builds its answers from them and every client
//! (the `lanes` commands, the harness, the end-to-end tests) reads them through [`Client`].
//! Decoding is strict where it matters: a field the server always sends (even as `null`) is
//! required, so a renamed or missing field is a decode error naming the endpoint, never a
//! silent 0 or `None`. Unknown extra fields are ignored.
//!
//! Hex on the wire: hashes, addresses, keys and encoded objects are lowercase hex strings
//! without a `0x` prefix, and stay strings here; the node accepts hex with or without `0x`
//! (`lanes_types::hash::parse_hex` states that rule once).
//!
//! Endpoints: `GET /health` (text), [`Status`], [`Validator`]s, [`SubmitTx`] → [`Submitted`],
//! [`SubmitBatch`] → [`TxAnswer`]s, [`TxInfo`], [`BlockSummary`]s ([`BlocksQuery`]),
//! [`BlockInfo`], [`Account`], [`Pool`], [`StateProof`], `GET /events` ([`BlockEvent`]s),
//! `GET /metrics` (Prometheus text). Errors are an [`ErrorBody`] with a 4xx/5xx.

mod chain;
mod client;
mod error;
mod state;
mod status;
mod submit;

pub use chain::{
    BlockInfo, BlockSummary, BlockTx, BlocksQuery, CommitCertificateInfo, DecodedTx,
    ExecutionCertificateInfo, OperationView, ReceiptProof, ReceiptView, TxInfo, TxStatus, TxView,
};
pub use client::{metric, Client, Events, DEFAULT_TIMEOUT};
pub use error::{ApiError, ErrorBody};
pub use state::{Account, Balance, Pool, Position, Stake, StateProof};
pub use status::{BlockEvent, Status, Validator};
pub use submit::{SubmitBatch, SubmitTx, Submitted, TxAnswer, MAX_BATCH};

/// Deserializes an `Option` field that the server always sends (as a value or `null`): with
/// it a missing field is a decode error instead of `None`.
fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d)
}
