//! The messages byzantine validators send, in one place for the simulator's byzantine replicas
//! ([`crate::sim`]) and the `lanes` binary's fault-injection build (`--features byzantine`).
//! Pure constructors: when and to whom to misbehave, and any randomness, stay with the caller.

use crate::messages::{CertifiedBlock, Message, NewView, Phase, Vote};
use lanes_types::codec::Encode;
use lanes_types::{Block, Hash, Signature};

/// Whether validator `to` of `n` is in the upper half, the one equivocation and conflicting
/// votes are aimed at (the lower half sees the honest messages).
pub fn upper_half(to: u32, n: u32) -> bool {
    to >= n / 2
}

/// What an equivocating primary `me` sends instead of proposing `block` in `view`: a second
/// block for the same height, and its own PREPARE vote for it, signed by `sign` over the
/// vote's bytes on `chain_id`.
pub fn equivocation(
    view: u64,
    block: &Block,
    me: u32,
    chain_id: &str,
    sign: impl Fn(&[u8]) -> Signature,
) -> [Message; 2] {
    let mut evil = block.clone();
    evil.header.timestamp_ms += 1;
    let mut vote = Vote {
        view,
        height: evil.height(),
        block_hash: evil.hash(),
        validator: me,
        signature: Signature([0; 64]),
    };
    vote.signature = sign(&vote.signed_bytes(Phase::Prepare, chain_id));
    [
        Message::PrePrepare { view, block: evil },
        Message::Prepare(vote),
    ]
}

/// `vote` turned into a validly signed vote of the same phase for a block that does not exist.
pub fn conflicting_vote(
    phase: Phase,
    vote: &Vote,
    chain_id: &str,
    sign: impl Fn(&[u8]) -> Signature,
) -> Vote {
    let mut v = vote.clone();
    v.block_hash = Hash::tagged("lanes/byzantine-conflict", &vote.block_hash.0);
    v.signature = sign(&v.signed_bytes(phase, chain_id));
    v
}

/// What an equivocating primary `me` of `n` validators sends validator `to` in place of
/// `message`: to the upper half, a second block and its PREPARE instead of its proposal;
/// otherwise (`None`) the message unchanged.
pub fn equivocate(
    message: &Message,
    to: u32,
    n: u32,
    me: u32,
    chain_id: &str,
    sign: impl Fn(&[u8]) -> Signature,
) -> Option<Vec<Vec<u8>>> {
    match message {
        Message::PrePrepare { view, block } if upper_half(to, n) => Some(
            equivocation(*view, block, me, chain_id, sign)
                .iter()
                .map(Message::to_bytes)
                .collect(),
        ),
        _ => None,
    }
}

/// What a conflicting voter sends validator `to` of `n` in place of `message`: to the upper
/// half, its PREPARE or COMMIT for a block that does not exist; otherwise (`None`) the message
/// unchanged.
pub fn conflict(
    message: &Message,
    to: u32,
    n: u32,
    chain_id: &str,
    sign: impl Fn(&[u8]) -> Signature,
) -> Option<Vec<Vec<u8>>> {
    if !upper_half(to, n) {
        return None;
    }
    let bytes = match message {
        Message::Prepare(v) => {
            Message::Prepare(conflicting_vote(Phase::Prepare, v, chain_id, sign))
        }
        Message::Commit(v) => Message::Commit(conflicting_vote(Phase::Commit, v, chain_id, sign)),
        _ => return None,
    }
    .to_bytes();
    Some(vec![bytes])
}

/// `message`'s encoding with its last byte flipped (for a vote: a bad signature).
pub fn corrupted(message: &Message) -> Vec<u8> {
    let mut bad = message.to_bytes();
    if let Some(last) = bad.last_mut() {
        *last ^= 0x5a;
    }
    bad
}

/// A NEW-VIEW for `view` with no proof and a made-up signature.
pub fn forged_new_view(view: u64) -> Message {
    Message::NewView(NewView {
        view,
        view_changes: Vec::new(),
        signature: Signature([7; 64]),
    })
}

/// Whether a message is one its sender signs on its own account (a proposal, a vote, a
/// VIEW-CHANGE or a NEW-VIEW): what a selective byzantine validator shows only to some peers.
pub fn is_signed_by_sender(message: &Message) -> bool {
    matches!(
        message,
        Message::PrePrepare { .. }
            | Message::Prepare(_)
            | Message::Commit(_)
            | Message::ViewChange { .. }
            | Message::NewView(_)
    )
}

/// Whether validator `to` is in `mask` (bit i: validator i), the peers a selective byzantine
/// validator still talks to.
pub fn in_mask(to: u32, mask: u32) -> bool {
    to < 32 && mask & (1 << to) != 0
}

/// Whether a message is one of the sender's own PREPARE or COMMIT votes.
pub fn is_vote(message: &Message) -> bool {
    matches!(message, Message::Prepare(_) | Message::Commit(_))
}

/// Blocks of the sender's own chain, certificates included, as an unsolicited catch-up answer
/// (`len` blocks from index `start`, clamped to the chain).
pub fn replayed_blocks(chain: &[CertifiedBlock], start: usize, len: usize) -> Message {
    let start = start.min(chain.len());
    let end = start.saturating_add(len).min(chain.len());
    Message::SyncResponse(chain[start..end].to_vec())
}

/// The encoding of a transactions message of exactly `size` bytes (at least 9: tag, count and
/// one length prefix), its one transaction being filler no validator accepts.
pub fn message_of_size(size: usize) -> Vec<u8> {
    let filler = size.saturating_sub(9);
    let bytes = Message::Txs(vec![lanes_types::Bytes(vec![0xee; filler])]).to_bytes();
    debug_assert!(size < 9 || bytes.len() == size);
    bytes
}
