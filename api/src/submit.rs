//! Submitting transactions: `POST /tx` and `POST /txs`.

use serde::{Deserialize, Serialize};

/// Most transactions in one `POST /txs`.
pub const MAX_BATCH: usize = 4096;

/// `POST /tx` as JSON (the node also takes the hex alone as the raw body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTx {
    /// Hex of the encoded signed transaction.
    pub tx: String,
}

/// `POST /tx`'s answer: the transaction is in the mempool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// Its hash (hex).
    pub hash: String,
}

/// `POST /txs`: up to [`MAX_BATCH`] transactions, admitted in order (one sender's nonces
/// stay in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitBatch {
    /// Hex of each encoded signed transaction.
    pub txs: Vec<String>,
}

/// `POST /txs` answers one of these per transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TxAnswer {
    /// In the mempool: `{"hash": ...}`.
    Accepted {
        /// Its hash (hex).
        hash: String,
    },
    /// Refused: `{"error": ...}`.
    Refused {
        /// Why.
        error: String,
    },
}

impl TxAnswer {
    /// The hash if accepted, else why it was refused.
    pub fn result(&self) -> Result<&str, &str> {
        match self {
            TxAnswer::Accepted { hash } => Ok(hash),
            TxAnswer::Refused { error } => Err(error),
        }
    }
}
