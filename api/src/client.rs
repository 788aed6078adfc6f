//! A blocking client of one node's API: one typed method per endpoint.

use crate::{
    Account, ApiError, BlockEvent, BlockInfo, BlockSummary, BlocksQuery, ErrorBody, Pool,
    StateProof, Status, SubmitBatch, SubmitTx, Submitted, TxAnswer, TxInfo, Validator,
};
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::io::{BufRead, BufReader, Lines};
use std::time::Duration;

/// How long a request may take unless the client is built with another timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read (a full block's JSON is a few MiB).
const MAX_BODY: u64 = 64 << 20;

/// A node's API at one base URL (`http://127.0.0.1:7100`).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the node at `node` (`http://host:port`; `host:port` means `http://`), whose
    /// requests give up after [`DEFAULT_TIMEOUT`].
    pub fn new(node: &str) -> Client {
        Client::with_timeout(node, DEFAULT_TIMEOUT)
    }

    /// Like [`Client::new`], with requests giving up after `timeout`.
    pub fn with_timeout(node: &str, timeout: Duration) -> Client {
        Client {
            base: base_url(node),
            agent: agent(Some(timeout)),
        }
    }

    /// A client of another node sharing this one's connections and timeout.
    pub fn at(&self, node: &str) -> Client {
        Client {
            base: base_url(node),
            agent: self.agent.clone(),
        }
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /health`: `Ok` once the node has a head (it answers 503 while starting).
    pub fn health(&self) -> Result<(), ApiError> {
        self.text("/health").map(drop)
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<Status, ApiError> {
        self.get("/status")
    }

    /// `GET /validators`.
    pub fn validators(&self) -> Result<Vec<Validator>, ApiError> {
        self.get("/validators")
    }

    /// `POST /tx` of an encoded signed transaction (sent as `{"tx": hex}`).
    pub fn submit(&self, tx: &[u8]) -> Result<Submitted, ApiError> {
        let body = SubmitTx {
            tx: hex::encode(tx),
        };
        self.post("/tx", self.agent.post(self.url("/tx")).send_json(&body))
    }

    /// `POST /tx` with `body` sent as it is (the node takes `{"tx": hex}` or the hex alone).
    pub fn submit_body(&self, body: &str) -> Result<Submitted, ApiError> {
        self.post("/tx", self.agent.post(self.url("/tx")).send(body))
    }

    /// `POST /txs` of encoded signed transactions: one answer per transaction, in order.
    pub fn submit_batch<T: AsRef<[u8]>>(&self, txs: &[T]) -> Result<Vec<TxAnswer>, ApiError> {
        let body = SubmitBatch {
            txs: txs.iter().map(hex::encode).collect(),
        };
        self.post("/txs", self.agent.post(self.url("/txs")).send_json(&body))
    }

    /// `POST /txs` with `body` sent as it is.
    pub fn submit_batch_body(&self, body: &str) -> Result<Vec<TxAnswer>, ApiError> {
        self.post("/txs", self.agent.post(self.url("/txs")).send(body))
    }

    /// `GET /tx/{hash}`: a committed transaction (404 while it is not).
    pub fn tx(&self, hash: impl Display) -> Result<TxInfo, ApiError> {
        self.get(&format!("/tx/{hash}"))
    }

    /// `GET /blocks?from&limit`.
    pub fn blocks(&self, query: BlocksQuery) -> Result<Vec<BlockSummary>, ApiError> {
        let mut params = Vec::new();
        if let Some(from) = query.from {
            params.push(format!("from={from}"));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        self.get(&format!("/blocks{query}"))
    }

    /// `GET /block/{id}`: a block by height or hash.
    pub fn block(&self, id: impl Display) -> Result<BlockInfo, ApiError> {
        self.get(&format!("/block/{id}"))
    }

    /// `GET /account/{address}`.
    pub fn account(&self, address: impl Display) -> Result<Account, ApiError> {
        self.get(&format!("/account/{address}"))
    }

    /// `GET /pool/{id}`.
    pub fn pool(&self, id: u32) -> Result<Pool, ApiError> {
        self.get(&format!("/pool/{id}"))
    }

    /// `GET /proof/{key}`: `key` is an account address (its native balance) or the hex of an
    /// encoded state key. 503 until the latest block is certified.
    pub fn proof(&self, key: impl Display) -> Result<StateProof, ApiError> {
        self.get(&format!("/proof/{key}"))
    }

    /// `GET /metrics`: Prometheus text (see [`metric`]).
    pub fn metrics(&self) -> Result<String, ApiError> {
        self.text("/metrics")
    }

    /// `GET /events`: every block committed from now on, as it commits. The stream has no
    /// timeout; it ends when the node closes it.
    pub fn events(&self) -> Result<Events, ApiError> {
        let endpoint = "GET /events".to_string();
        let resp = agent(None)
            .get(self.url("/events"))
            .call()
            .map_err(|e| self.unreachable(&endpoint, e))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status >= 400 {
            let text = body.read_to_string().unwrap_or_default();
            return Err(status_error(endpoint, status, &text));
        }
        let reader: Box<dyn std::io::Read + Send> =
            Box::new(body.into_with_config().limit(u64::MAX).reader());
        Ok(Events {
            endpoint,
            lines: BufReader::new(reader).lines(),
        })
    }

    /// `GET path`, decoded as `T`: for paths without a method of their own.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let text = self.text(path)?;
        decode(format!("GET {path}"), &text)
    }

    /// `GET path`: the answer's text.
    fn text(&self, path: &str) -> Result<String, ApiError> {
        let sent = self.agent.get(self.url(path)).call();
        self.answer(format!("GET {path}"), sent)
    }

    /// The decoded answer to a POST to `path`.
    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ApiError> {
        let endpoint = format!("POST {path}");
        let text = self.answer(endpoint.clone(), sent)?;
        decode(endpoint, &text)
    }

    /// The text of an answer to `endpoint`, or the error it is.
    fn answer(
        &self,
        endpoint: String,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ApiError> {
        let mut resp = sent.map_err(|e| self.unreachable(&endpoint, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| ApiError::Read {
                endpoint: endpoint.clone(),
                source: Box::new(e),
            })?;
        if status >= 400 {
            return Err(status_error(endpoint, status, &text));
        }
        Ok(text)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, endpoint: &str, e: ureq::Error) -> ApiError {
        ApiError::Unreachable {
            endpoint: endpoint.to_string(),
            base: self.base.clone(),
            source: Box::new(e),
        }
    }
}

/// The blocks `GET /events` streams ([`Client::events`]).
pub struct Events {
    endpoint: String,
    lines: Lines<BufReader<Box<dyn std::io::Read + Send>>>,
}

impl Iterator for Events {
    type Item = Result<BlockEvent, ApiError>;

    /// The next block, an error if the stream broke or an event does not decode, or `None`
    /// once the node closed the stream.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(e) => {
                    return Some(Err(ApiError::Read {
                        endpoint: self.endpoint.clone(),
                        source: Box::new(e),
                    }))
                }
            };
            if let Some(data) = line.strip_prefix("data:") {
                return Some(serde_json::from_str(data.trim()).map_err(|source| {
                    ApiError::Decode {
                        endpoint: self.endpoint.clone(),
                        source,
                    }
                }));
            }
        }
    }
}

/// `text` decoded as `T`, or a decode error naming `endpoint`.
fn decode<T: DeserializeOwned>(endpoint: String, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|source| ApiError::Decode { endpoint, source })
}

/// The value of the sample `name` (without labels) in Prometheus text, if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `http://` added when `node` has no scheme; no trailing `/`.
fn base_url(node: &str) -> String {
    let node = node.trim_end_matches('/');
    if node.contains("://") {
        node.to_string()
    } else {
        format!("http://{node}")
    }
}

/// An agent for which a 4xx or 5xx answer is an answer (its body carries the reason).
fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(timeout)
        .http_status_as_error(false)
        .build()
        .into()
}

/// The error for a 4xx/5xx answer: the node's `{"error": ...}` message, else the body's text.
fn status_error(endpoint: String, status: u16, body: &str) -> ApiError {
    let message = match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => body.trim().chars().take(500).collect(),
    };
    ApiError::Status {
        endpoint,
        status,
        message,
    }
}
