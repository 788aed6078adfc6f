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
/// `state_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVote {
    /// Height of the executed block.
    pub height: u64,
    /// Hash of the executed block.
    pub block_hash: Hash,
    /// State root the voter computed.
    pub state_root: Hash,
    /// Index of the voter.
    pub validator: u32,
    /// Signature over [`lanes_types::cert::checkpoint_message`].
    pub signature: Signature,
}
codec_struct!(CheckpointVote {
    height,
    block_hash,
    state_root,
    validator,
    signature
});

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

/// One piece of a validator's state, streamed to a replica that fetches the state because the
/// blocks it misses are pruned (or its own state diverged). Handled by the node, not the
/// consensus core: the receiver checks the certificate's quorum and rebuilds the state tree
/// from the entries before it installs anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChunk {
    /// The requester's session id, echoed.
    pub session: u64,
    /// Height of the state (the sender's head when it took its snapshot).
    pub height: u64,
    /// Hash of the block at `height`.
    pub block_hash: Hash,
    /// The state root the sender computed at `height`.
    pub state_root: Hash,
    /// Position of this chunk in the stream, from 0.
    pub seq: u32,
    /// State entries (encoded key, encoded value), ascending by key.
    pub entries: Vec<(Bytes, Bytes)>,
    /// Whether this is the stream's last chunk.
    pub last: bool,
    /// In the last chunk: the execution certificate of `height`.
    pub certificate: Option<CheckpointCertificate>,
}
codec_struct!(StateChunk {
    session,
    height,
    block_hash,
    state_root,
    seq,
    entries,
    last,
    certificate
});

/// Everything one validator sends another.
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
    /// Asks for a snapshot of the receiver's latest certified state (state transfer).
    StateRequest {
        /// Chosen by the requester; echoed in every chunk.
        session: u64,
    },
    /// A piece of a state snapshot.
    StateChunk(StateChunk),
    /// Asks for the receiver's executed height (a validator that lost its data asks before it
    /// votes again).
    HeightQuery,
    /// The sender's executed height, and whether it has received votes from the asker since
    /// it started (if not, the asker signed nothing the sender could count).
    HeightReply {
        /// Height of its last executed block.
        height: u64,
        /// Whether the sender has received a proposal, vote, VIEW-CHANGE or NEW-VIEW from the
        /// asker.
        seen_votes: bool,
    },
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

impl Message {
    /// The short name of each kind, indexed by its encoding tag.
    pub const KINDS: [&'static str; 15] = [
        "txs",
        "pre-prepare",
        "prepare",
        "commit",
        "checkpoint",
        "view-change",
        "new-view",
        "sync-request",
        "sync-response",
        "state-request",
        "state-chunk",
        "height-query",
        "height-reply",
        "block-request",
        "block-reply",
    ];

    /// Whether encoded bytes are a [`Message::SyncResponse`] without blocks: the sender no
    /// longer has the blocks asked for (pruned).
    pub fn is_empty_sync_response(bytes: &[u8]) -> bool {
        bytes == [8, 0, 0, 0, 0]
    }

    /// Whether encoded bytes are a message its sender signs on its own account: a proposal, a
    /// vote, a VIEW-CHANGE or a NEW-VIEW.
    pub fn is_signed_by_sender(bytes: &[u8]) -> bool {
        matches!(bytes.first(), Some(1 | 2 | 3 | 5 | 6))
    }

    /// Whether encoded bytes are a message the node handles itself (state transfer, height
    /// queries), not the consensus core.
    pub fn is_for_node(bytes: &[u8]) -> bool {
        matches!(bytes.first(), Some(9..=12))
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        let tag = match self {
            Message::Txs(_) => 0,
            Message::PrePrepare { .. } => 1,
            Message::Prepare(_) => 2,
            Message::Commit(_) => 3,
            Message::Checkpoint(_) => 4,
            Message::ViewChange { .. } => 5,
            Message::NewView(_) => 6,
            Message::SyncRequest { .. } => 7,
            Message::SyncResponse(_) => 8,
            Message::StateRequest { .. } => 9,
            Message::StateChunk(_) => 10,
            Message::HeightQuery => 11,
            Message::HeightReply { .. } => 12,
            Message::BlockRequest { .. } => 13,
            Message::BlockReply(_) => 14,
        };
        Self::KINDS[tag]
    }
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Txs(txs) => {
                out.push(0);
                txs.encode(out);
            }
            Message::PrePrepare { view, block } => {
                out.push(1);
                view.encode(out);
                block.encode(out);
            }
            Message::Prepare(vote) => {
                out.push(2);
                vote.encode(out);
            }
            Message::Commit(vote) => {
                out.push(3);
                vote.encode(out);
            }
            Message::Checkpoint(vote) => {
                out.push(4);
                vote.encode(out);
            }
            Message::ViewChange(view_change) => {
                out.push(5);
                view_change.encode(out);
            }
            Message::NewView(nv) => {
                out.push(6);
                nv.encode(out);
            }
            Message::SyncRequest { from, to } => {
                out.push(7);
                from.encode(out);
                to.encode(out);
            }
            Message::SyncResponse(blocks) => {
                out.push(8);
                blocks.encode(out);
            }
            Message::StateRequest { session } => {
                out.push(9);
                session.encode(out);
            }
            Message::StateChunk(chunk) => {
                out.push(10);
                chunk.encode(out);
            }
            Message::HeightQuery => out.push(11),
            Message::HeightReply { height, seen_votes } => {
                out.push(12);
                height.encode(out);
                seen_votes.encode(out);
            }
            Message::BlockRequest { height, hash } => {
                out.push(13);
                height.encode(out);
                hash.encode(out);
            }
            Message::BlockReply(block) => {
                out.push(14);
                block.encode(out);
            }
        }
    }
}

impl Decode for Message {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = u8::decode(r)?;
        Ok(match tag {
            0 => Message::Txs(Decode::decode(r)?),
            1 => Message::PrePrepare {
                view: Decode::decode(r)?,
                block: Decode::decode(r)?,
            },
            2 => Message::Prepare(Decode::decode(r)?),
            3 => Message::Commit(Decode::decode(r)?),
            4 => Message::Checkpoint(Decode::decode(r)?),
            5 => Message::ViewChange(Decode::decode(r)?),
            6 => Message::NewView(Decode::decode(r)?),
            7 => Message::SyncRequest {
                from: Decode::decode(r)?,
                to: Decode::decode(r)?,
            },
            8 => Message::SyncResponse(Decode::decode(r)?),
            9 => Message::StateRequest {
                session: Decode::decode(r)?,
            },
            10 => Message::StateChunk(Decode::decode(r)?),
            11 => Message::HeightQuery,
            12 => Message::HeightReply {
                height: Decode::decode(r)?,
                seen_votes: Decode::decode(r)?,
            },
            13 => Message::BlockRequest {
                height: Decode::decode(r)?,
                hash: Decode::decode(r)?,
            },
            14 => Message::BlockReply(Decode::decode(r)?),
            tag => return Err(DecodeError::InvalidTag { ty: "Message", tag }),
        })
    }
}
