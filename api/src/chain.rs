//! The chain: `GET /tx/{hash}`, `GET /blocks`, `GET /block/{height|hash}`.

use crate::required;
use serde::{Deserialize, Serialize};

/// `GET /tx/{hash}`: a committed transaction, where it is, and its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    /// Transaction hash (hex).
    pub hash: String,
    /// Height of its block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Its block's hash (hex).
    pub block_hash: String,
    /// Whether its block has an execution certificate (a quorum signed the resulting state).
    pub certified: bool,
    /// The transaction.
    pub tx: TxView,
    /// Its receipt (`None` only if the node lost it).
    #[serde(deserialize_with = "required")]
    pub receipt: Option<ReceiptView>,
}

/// A transaction in an answer: its decoded fields and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TxViewWire")]
pub struct TxView {
    /// The decoded fields (`None` when the bytes do not decode, not expected on a chain).
    #[serde(flatten)]
    pub decoded: Option<DecodedTx>,
    /// Hex of the encoded signed transaction.
    pub raw: String,
}

impl TxView {
    /// The operation's debug text, if the transaction decodes.
    pub fn op(&self) -> Option<&str> {
        self.decoded.as_ref().map(|d| d.op.as_str())
    }
}

/// The decoded fields of a [`TxView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedTx {
    /// Sender's address (hex).
    pub sender: String,
    /// Sender's nonce.
    pub nonce: u64,
    /// Fee offered (native asset).
    pub fee: u64,
    /// The operation, as its Rust debug text (e.g. `Transfer { asset: 0, .. }`).
    pub op: String,
}

/// [`TxView`] as it arrives: the decoded fields all present or all absent.
#[derive(Deserialize)]
struct TxViewWire {
    sender: Option<String>,
    nonce: Option<u64>,
    fee: Option<u64>,
    op: Option<String>,
    raw: String,
}

impl TryFrom<TxViewWire> for TxView {
    type Error = String;
    fn try_from(w: TxViewWire) -> Result<TxView, String> {
        let decoded = match (w.sender, w.nonce, w.fee, w.op) {
            (Some(sender), Some(nonce), Some(fee), Some(op)) => Some(DecodedTx {
                sender,
                nonce,
                fee,
                op,
            }),
            (None, None, None, None) => None,
            _ => return Err("a transaction has all of sender, nonce, fee and op, or none".into()),
        };
        Ok(TxView {
            decoded,
            raw: w.raw,
        })
    }
}

/// A transaction's receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    /// `Success`, or `Failed(..)` / `Rejected(..)` with the reason (Rust debug text).
    pub status: String,
    /// Whether the operation was applied.
    pub success: bool,
    /// Native asset paid.
    pub fee_paid: u64,
    /// Operation-specific results (e.g. a swap's amount out).
    pub outputs: Vec<u64>,
}

/// The query of `GET /blocks`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksQuery {
    /// First height (default: the latest `limit` blocks).
    pub from: Option<u64>,
    /// How many (default 20, at most 100).
    pub limit: Option<usize>,
}

/// One block of `GET /blocks`, and the head of [`BlockInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Block hash (hex).
    pub hash: String,
    /// Parent's hash (hex).
    pub parent: String,
    /// View it was proposed in.
    pub view: u64,
    /// Proposer's validator index.
    pub proposer: u32,
    /// Proposer's timestamp, milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// Transactions in it.
    pub txs: usize,
    /// The state root this node computed after it (`None` if it has none stored).
    #[serde(deserialize_with = "required")]
    pub state_root: Option<String>,
    /// Whether it has an execution certificate.
    pub certified: bool,
}

/// `GET /block/{height|hash}`: a block with its transactions and certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The summary's fields.
    #[serde(flatten)]
    pub summary: BlockSummary,
    /// Its transactions, in order.
    pub transactions: Vec<BlockTx>,
    /// The commit certificate, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_certificate: Option<CommitCertificateInfo>,
    /// The execution certificate, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_certificate: Option<ExecutionCertificateInfo>,
}

/// One transaction of a [`BlockInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTx {
    /// Transaction hash (hex).
    pub hash: String,
    /// The transaction.
    pub tx: TxView,
}

/// The commit certificate of a block: who signed its COMMIT, in which view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificateInfo {
    /// The view.
    pub view: u64,
    /// Signers' validator indices, ascending.
    pub signers: Vec<u32>,
}

/// The execution certificate of a block: a quorum's CHECKPOINT signatures on its state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionCertificateInfo {
    /// The certified state root (hex).
    pub state_root: String,
    /// Signers' validator indices, ascending.
    pub signers: Vec<u32>,
    /// Hex of the encoded certificate (`lanes_types::CheckpointCertificate`).
    pub encoded: String,
}
