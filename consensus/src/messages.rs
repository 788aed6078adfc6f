//! Every message replicas exchange, in one place: its canonical encoding and the exact bytes each
//! signature covers.
//!
//! Nothing decoded from the network is trusted: decoding only proves the bytes are well formed.
//! The replica checks senders, signatures, views, heights and sizes before it uses anything.

use lanes_types::cert::{prepare_vote_message, signed_message};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{
    codec_struct, Block, BlockHeader, Bytes, CheckpointCertificate, CommitCertificate, Hash,
    Signature, ValidatorSignature,
};

/// Which phase a [`Vote`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// PREPARE: the voter accepted the primary's proposal for (view, height).
    Prepare,
    /// COMMIT: the voter saw a quorum of PREPAREs for the block.
    Commit,
}

/// A signed PREPARE or COMMIT for `block_hash` at (`view`, `height`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// View the vote is cast in.
    pub view: u64,
    /// Height of the block.
    pub height: u64,
    /// Hash of the block voted for.
    pub block_hash: Hash,
    /// Index of the voter.
    pub validator: u32,
    /// The voter's signature over [`Vote::signed_bytes`].
    pub signature: Signature,
}
codec_struct!(Vote {
    view,
    height,
    block_hash,
    validator,
    signature
});

impl Vote {
    /// The bytes a voter signs for this phase.
    pub fn signed_bytes(&self, phase: Phase, chain_id: &str) -> Vec<u8> {
        vote_bytes(phase, chain_id, self.view, self.height, &self.block_hash)
    }
}

/// The bytes signed by a vote of `phase` (the same bytes the certificates in `lanes-types`
/// verify).
pub fn vote_bytes(phase: Phase, chain_id: &str, view: u64, height: u64, hash: &Hash) -> Vec<u8> {
    match phase {
        Phase::Prepare => prepare_vote_message(chain_id, view, height, hash),
        Phase::Commit => lanes_types::cert::commit_vote_message(chain_id, view, height, hash),
    }
}

/// A signed CHECKPOINT: after executing the block at `height` the voter's state root was
/// `state_root` and its receipts root `receipts_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVote {
    /// Height of the executed block.
    pub height: u64,
    /// Hash of the executed block.
    pub block_hash: Hash,
    /// State root the voter computed.
    pub state_root: Hash,
    /// Receipts root the voter computed.
    pub receipts_root: Hash,
    /// Index of the voter.
    pub validator: u32,
    /// Signature over [`lanes_types::cert::checkpoint_message`].
    pub signature: Signature,
}
codec_struct!(CheckpointVote {
    height,
    block_hash,
    state_root,
    receipts_root,
    validator,
    signature
});

impl CheckpointVote {
    /// The roots it signs.
    pub fn roots(&self) -> lanes_types::ExecRoots {
        lanes_types::ExecRoots {
            state_root: self.state_root,
            receipts_root: self.receipts_root,
        }
    }
}

/// Proof that a quorum PREPAREd the block with this header at (`view`, `header.height`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCert {
    /// The view the block was prepared in (not necessarily the view it was proposed in).
    pub view: u64,
    /// The prepared block's header (its hash is what was voted for).
    pub header: BlockHeader,
    /// A quorum of PREPARE signatures, strictly ascending by validator.
    pub signatures: Vec<ValidatorSignature>,
}
codec_struct!(PreparedCert { view, header, signatures } check signers_ascending);

fn signers_ascending(cert: &PreparedCert) -> Result<(), &'static str> {
    if cert
        .signatures
        .windows(2)
        .all(|w| w[0].validator < w[1].validator)
    {
        Ok(())
    } else {
        Err("prepared certificate signers must be strictly ascending")
    }
}

/// VIEW-CHANGE: the sender gives up on views below `view` and reports its last stable
/// checkpoint and the certificate of every block it prepared above it. Signed. It carries
/// headers, not payloads, so its size does not depend on how full blocks are: a replica that
/// lacks a re-proposed block's payload fetches it by hash ([`Message::BlockRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    /// The view the sender wants to move to.
    pub view: u64,
    /// The sender.
    pub validator: u32,
    /// Its latest execution certificate (none before the first one).
    pub stable: Option<CheckpointCertificate>,
    /// Its prepared certificates above the stable height, ascending by height.
    pub prepared: Vec<PreparedCert>,
    /// Signature over [`ViewChange::signed_bytes`].
    pub signature: Signature,
}
codec_struct!(ViewChange {
    view,
    validator,
    stable,
    prepared,
    signature
});

impl ViewChange {
    /// The bytes the sender signs: everything but the signature.
    pub fn signed_bytes(&self, chain_id: &str) -> Vec<u8> {
        let mut out = signed_message("lanes/view-change", chain_id);
        self.view.encode(&mut out);
        self.validator.encode(&mut out);
        self.stable.encode(&mut out);
        self.prepared.encode(&mut out);
        out
    }

    /// Height of the stable checkpoint it reports (0 for genesis).
    pub fn stable_height(&self) -> u64 {
        self.stable.as_ref().map_or(0, |c| c.height)
    }
}

/// NEW-VIEW: the primary of `view` proves with a quorum of VIEW-CHANGEs that the view starts.
/// The blocks it re-proposes are a pure function of those VIEW-CHANGEs
/// ([`crate::plan_new_view`]): their headers are in the prepared certificates, so a NEW-VIEW
/// is as small as its VIEW-CHANGEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewView {
    /// The view being started.
    pub view: u64,
    /// A quorum of VIEW-CHANGEs for `view` from distinct validators, ascending by validator.
    pub view_changes: Vec<ViewChange>,
    /// The primary's signature over [`NewView::signed_bytes`].
    pub signature: Signature,
}
codec_struct!(NewView {
    view,
    view_changes,
    signature
});

impl NewView {
    /// The bytes the primary signs: the view and the view-changes.
    pub fn signed_bytes(&self, chain_id: &str) -> Vec<u8> {
        let mut out = signed_message("lanes/new-view", chain_id);
        self.view.encode(&mut out);
        self.view_changes.encode(&mut out);
        out
    }
}

/// A committed block with the certificate that proves it, as served to a replica catching up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedBlock {
    /// The block.
    pub block: Block,
    /// A quorum of COMMITs for it.
    pub certificate: CommitCertificate,
}
codec_struct!(CertifiedBlock { block, certificate });

/// Every consensus message one validator sends another (the node's own messages travel beside
/// them in the node's wire envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client transactions forwarded to the other validators.
    Txs(Vec<Bytes>),
    /// The primary's proposal for a height in its view.
    PrePrepare {
        /// The primary's view.
        view: u64,
        /// The proposed block.
        block: Block,
    },
    /// A PREPARE vote.
    Prepare(Vote),
    /// A COMMIT vote.
    Commit(Vote),
    /// A CHECKPOINT vote after execution.
    Checkpoint(CheckpointVote),
    /// A VIEW-CHANGE.
    ViewChange(ViewChange),
    /// A NEW-VIEW.
    NewView(NewView),
    /// Asks for committed blocks `from..=to` with their commit certificates.
    SyncRequest {
        /// First height wanted.
        from: u64,
        /// Last height wanted.
        to: u64,
    },
    /// Committed blocks, ascending by height.
    SyncResponse(Vec<CertifiedBlock>),
    /// Asks for the block with this hash at this height (a payload a replica needs to vote on
    /// or deliver a block it knows only by header, e.g. after a restart or a NEW-VIEW).
    BlockRequest {
        /// Height of the block.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
    /// A block, answering [`Message::BlockRequest`]; the receiver keeps it only if it asked for
    /// its hash.
    BlockReply(Block),
}

/// The encoding tag of each kind of [`Message`], named once: encoding, decoding, names and the
/// byte-level predicates all use these.
pub mod tag {
    /// [`super::Message::Txs`].
    pub const TXS: u8 = 0;
    /// [`super::Message::PrePrepare`].
    pub const PRE_PREPARE: u8 = 1;
    /// [`super::Message::Prepare`].
    pub const PREPARE: u8 = 2;
    /// [`super::Message::Commit`].
    pub const COMMIT: u8 = 3;
    /// [`super::Message::Checkpoint`].
    pub const CHECKPOINT: u8 = 4;
    /// [`super::Message::ViewChange`].
    pub const VIEW_CHANGE: u8 = 5;
    /// [`super::Message::NewView`].
    pub const NEW_VIEW: u8 = 6;
    /// [`super::Message::SyncRequest`].
    pub const SYNC_REQUEST: u8 = 7;
    /// [`super::Message::SyncResponse`].
    pub const SYNC_RESPONSE: u8 = 8;
    /// [`super::Message::BlockRequest`].
    pub const BLOCK_REQUEST: u8 = 9;
    /// [`super::Message::BlockReply`].
    pub const BLOCK_REPLY: u8 = 10;
}

impl Message {
    /// The short name of each kind, indexed by its encoding tag.
    pub const KINDS: [&'static str; 11] = [
        "txs",
        "pre-prepare",
        "prepare",
        "commit",
        "checkpoint",
        "view-change",
        "new-view",
        "sync-request",
        "sync-response",
        "block-request",
        "block-reply",
    ];

    /// Whether encoded bytes are a [`Message::SyncResponse`] without blocks: the sender no
    /// longer has the blocks asked for (pruned).
    pub fn is_empty_sync_response(bytes: &[u8]) -> bool {
        bytes == [tag::SYNC_RESPONSE, 0, 0, 0, 0]
    }

    /// Whether encoded bytes are a message its sender signs on its own account: a proposal, a
    /// vote, a VIEW-CHANGE or a NEW-VIEW.
    pub fn is_signed_by_sender(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|t| {
            [
                tag::PRE_PREPARE,
                tag::PREPARE,
                tag::COMMIT,
                tag::VIEW_CHANGE,
                tag::NEW_VIEW,
            ]
            .contains(t)
        })
    }

    /// Its encoding tag.
    pub fn tag(&self) -> u8 {
        match self {
            Message::Txs(_) => tag::TXS,
            Message::PrePrepare { .. } => tag::PRE_PREPARE,
            Message::Prepare(_) => tag::PREPARE,
            Message::Commit(_) => tag::COMMIT,
            Message::Checkpoint(_) => tag::CHECKPOINT,
            Message::ViewChange(_) => tag::VIEW_CHANGE,
            Message::NewView(_) => tag::NEW_VIEW,
            Message::SyncRequest { .. } => tag::SYNC_REQUEST,
            Message::SyncResponse(_) => tag::SYNC_RESPONSE,
            Message::BlockRequest { .. } => tag::BLOCK_REQUEST,
            Message::BlockReply(_) => tag::BLOCK_REPLY,
        }
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.tag() as usize]
    }
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            Message::Txs(txs) => txs.encode(out),
            Message::PrePrepare { view, block } => {
                view.encode(out);
                block.encode(out);
            }
            Message::Prepare(vote) | Message::Commit(vote) => vote.encode(out),
            Message::Checkpoint(vote) => vote.encode(out),
            Message::ViewChange(view_change) => view_change.encode(out),
            Message::NewView(nv) => nv.encode(out),
            Message::SyncRequest { from, to } => {
                from.encode(out);
                to.encode(out);
            }
            Message::SyncResponse(blocks) => blocks.encode(out),
            Message::BlockRequest { height, hash } => {
                height.encode(out);
                hash.encode(out);
            }
            Message::BlockReply(block) => block.encode(out),
        }
    }
}

impl Decode for Message {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            tag::TXS => Message::Txs(Decode::decode(r)?),
            tag::PRE_PREPARE => Message::PrePrepare {
                view: Decode::decode(r)?,
                block: Decode::decode(r)?,
            },
            tag::PREPARE => Message::Prepare(Decode::decode(r)?),
            tag::COMMIT => Message::Commit(Decode::decode(r)?),
            tag::CHECKPOINT => Message::Checkpoint(Decode::decode(r)?),
            tag::VIEW_CHANGE => Message::ViewChange(Decode::decode(r)?),
            tag::NEW_VIEW => Message::NewView(Decode::decode(r)?),
            tag::SYNC_REQUEST => Message::SyncRequest {
                from: Decode::decode(r)?,
                to: Decode::decode(r)?,
            },
            tag::SYNC_RESPONSE => Message::SyncResponse(Decode::decode(r)?),
            tag::BLOCK_REQUEST => Message::BlockRequest {
                height: Decode::decode(r)?,
                hash: Decode::decode(r)?,
            },
            tag::BLOCK_REPLY => Message::BlockReply(Decode::decode(r)?),
            tag => return Err(DecodeError::InvalidTag { ty: "Message", tag }),
        })
    }
}
