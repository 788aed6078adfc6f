//! What a failed API call says: the error body the node sends, and the client's error.

use serde::{Deserialize, Serialize};

/// The body of every 4xx/5xx answer of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// Why a [`crate::Client`] call failed; every variant names the endpoint (`GET /status`).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request did not get an answer (connection refused, timeout, ...).
    #[error("{endpoint}: node unreachable at {base}: {source}")]
    Unreachable {
        /// Method and path.
        endpoint: String,
        /// The node's base URL.
        base: String,
        /// The transport's error.
        source: Box<ureq::Error>,
    },
    /// The answer's body could not be read.
    #[error("{endpoint}: reading the answer failed: {source}")]
    Read {
        /// Method and path.
        endpoint: String,
        /// The read error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node answered with a 4xx or 5xx status.
    #[error("{endpoint}: {status} {message}")]
    Status {
        /// Method and path.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The node's error message (`{"error": ...}`), or the body's text if it is not one.
        message: String,
    },
    /// The answer is not the JSON the endpoint sends (a field missing, renamed or mistyped).
    #[error("{endpoint}: the answer does not decode: {source}")]
    Decode {
        /// Method and path.
        endpoint: String,
        /// serde's error, naming the field.
        source: serde_json::Error,
    },
}

impl ApiError {
    /// The HTTP status, if the node answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The node's error message, if it answered with an error status.
    pub fn message(&self) -> Option<&str> {
        match self {
            ApiError::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}
