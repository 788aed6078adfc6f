//! The chain: `GET /tx/{hash}`, `GET /blocks`, `GET /block/{height|hash}`.

use crate::required;
use serde::{Deserialize, Serialize};

/// Where a transaction stands on the node asked, in the order it gets there. "Acknowledged"
/// means [`TxStatus::Certified`]: a quorum of validators signed the block's result, receipts
/// included, and the answer carries the certificate and the receipt's proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxStatus {
    /// In this node's mempool, or in a block it has not executed yet.
    Pending,
    /// In a block this node committed and executed; its result is not certified yet.
    Committed,
    /// Its block's result (state root and receipts root) is certified by a quorum.
    Certified,
}

impl std::fmt::Display for TxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxStatus::Pending => "pending",
            TxStatus::Committed => "committed",
            TxStatus::Certified => "certified",
        })
    }
}

impl std::str::FromStr for TxStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(TxStatus::Pending),
            "committed" => Ok(TxStatus::Committed),
            "certified" => Ok(TxStatus::Certified),
            other => Err(format!(
                "unknown status {other:?} (pending, committed or certified)"
            )),
        }
    }
}

/// `GET /tx/{hash}`: a transaction's status; once committed, where it is and its receipt; once
/// certified, the execution certificate and the receipt's Merkle proof under its receipts
/// root. An unknown transaction is a 404.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    /// Transaction hash (hex).
    pub hash: String,
    /// Where it stands.
    pub status: TxStatus,
    /// Height of its block (`None` while pending).
    #[serde(deserialize_with = "required")]
    pub height: Option<u64>,
    /// Its index in the block (`None` while pending).
    #[serde(deserialize_with = "required")]
    pub index: Option<u32>,
    /// Its block's hash, hex (`None` while pending).
    #[serde(deserialize_with = "required")]
    pub block_hash: Option<String>,
    /// The transaction (`None` while pending).
    #[serde(deserialize_with = "required")]
    pub tx: Option<TxView>,
    /// Its receipt (`None` while pending).
    #[serde(deserialize_with = "required")]
    pub receipt: Option<ReceiptView>,
    /// The execution certificate of its block (`Some` exactly when certified).
    #[serde(deserialize_with = "required")]
    pub certificate: Option<ExecutionCertificateInfo>,
    /// The receipt's proof under the certificate's receipts root (`Some` exactly when
    /// certified).
    #[serde(deserialize_with = "required")]
    pub receipt_proof: Option<ReceiptProof>,
}

/// A Merkle proof of one receipt (`lanes_types::merkle::Proof`): its leaf is
/// `H(0x00 || tx hash || encoded receipt)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptProof {
    /// Position of the receipt in the block.
    pub index: u64,
    /// Receipts in the block.
    pub leaves: u64,
    /// Sibling roots from the leaf up (hex).
    pub siblings: Vec<String>,
}

/// An operation, whole: its name and every field by name (amounts and ids as numbers,
/// addresses as hex, symbols as strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationView {
    /// Its short name (`transfer`, `swap`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its fields, in encoding order.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
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
    /// The operation's name, if the transaction decodes.
    pub fn op(&self) -> Option<&str> {
        self.decoded.as_ref().map(|d| d.op.kind.as_str())
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
    /// The operation, whole.
    pub op: OperationView,
}

/// [`TxView`] as it arrives: the decoded fields all present or all absent.
#[derive(Deserialize)]
struct TxViewWire {
    sender: Option<String>,
    nonce: Option<u64>,
    fee: Option<u64>,
    op: Option<OperationView>,
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
    /// Hex of the canonical encoding, what the receipt's Merkle leaf hashes.
    pub encoded: String,
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

/// The execution certificate of a block: a quorum's CHECKPOINT signatures on its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionCertificateInfo {
    /// The certified height.
    pub height: u64,
    /// The certified state root (hex).
    pub state_root: String,
    /// The certified receipts root (hex).
    pub receipts_root: String,
    /// Signers' validator indices, ascending.
    pub signers: Vec<u32>,
    /// Hex of the encoded certificate (`lanes_types::CheckpointCertificate`).
    pub encoded: String,
}
