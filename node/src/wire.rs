//! The wire envelope: every message one validator sends another is either a consensus message
//! (for the replica) or one of the node's own (state transfer, height queries). The first byte
//! says which; each tag is named once, here and in `lanes_consensus::messages::tag`.
//!
//! A consensus message stays encoded: the replica decodes (and checks) it itself, so the
//! envelope only strips its tag byte.

use lanes_consensus::messages::Message;
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{codec_struct, Bytes, CheckpointCertificate, Hash};

/// Envelope tag of a consensus message.
pub const CONSENSUS: u8 = 0;
/// Envelope tag of a node message.
pub const NODE: u8 = 1;

/// A message as received, routed by its envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire {
    /// An encoded [`Message`], for the replica.
    Consensus(Vec<u8>),
    /// One of the node's own messages, decoded.
    Node(NodeMessage),
}

impl Wire {
    /// Routes received bytes by their envelope tag.
    pub fn parse(mut bytes: Vec<u8>) -> Result<Wire, DecodeError> {
        match bytes.first().copied() {
            Some(CONSENSUS) => {
                bytes.remove(0);
                Ok(Wire::Consensus(bytes))
            }
            Some(NODE) => NodeMessage::from_bytes(&bytes[1..]).map(Wire::Node),
            Some(tag) => Err(DecodeError::InvalidTag { ty: "Wire", tag }),
            None => Err(DecodeError::Invalid("empty message")),
        }
    }
}

/// A consensus message in its envelope, ready to send.
pub fn consensus_bytes(message: &Message) -> Vec<u8> {
    let mut out = vec![CONSENSUS];
    message.encode(&mut out);
    out
}

/// Bytes that a byzantine test build made up in place of a consensus message, in the consensus
/// envelope.
pub fn consensus_raw(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(CONSENSUS);
    out.extend_from_slice(bytes);
    out
}

/// A node message in its envelope, ready to send.
pub fn node_bytes(message: &NodeMessage) -> Vec<u8> {
    let mut out = vec![NODE];
    message.encode(&mut out);
    out
}

/// The node's own messages, handled by the consensus thread beside the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeMessage {
    /// Asks for a snapshot of the receiver's latest certified state (state transfer).
    StateRequest {
        /// Chosen by the requester; echoed in every chunk.
        session: u64,
    },
    /// A piece of a state snapshot (boxed: it is much larger than the other messages).
    StateChunk(Box<StateChunk>),
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
}

/// The tag of each kind of [`NodeMessage`], named once.
mod tag {
    pub const STATE_REQUEST: u8 = 0;
    pub const STATE_CHUNK: u8 = 1;
    pub const HEIGHT_QUERY: u8 = 2;
    pub const HEIGHT_REPLY: u8 = 3;
}

impl NodeMessage {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeMessage::StateRequest { .. } => "state-request",
            NodeMessage::StateChunk(_) => "state-chunk",
            NodeMessage::HeightQuery => "height-query",
            NodeMessage::HeightReply { .. } => "height-reply",
        }
    }
}

impl Encode for NodeMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NodeMessage::StateRequest { session } => {
                out.push(tag::STATE_REQUEST);
                session.encode(out);
            }
            NodeMessage::StateChunk(chunk) => {
                out.push(tag::STATE_CHUNK);
                chunk.encode(out);
            }
            NodeMessage::HeightQuery => out.push(tag::HEIGHT_QUERY),
            NodeMessage::HeightReply { height, seen_votes } => {
                out.push(tag::HEIGHT_REPLY);
                height.encode(out);
                seen_votes.encode(out);
            }
        }
    }
}

impl Decode for NodeMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            tag::STATE_REQUEST => NodeMessage::StateRequest {
                session: Decode::decode(r)?,
            },
            tag::STATE_CHUNK => NodeMessage::StateChunk(Box::new(Decode::decode(r)?)),
            tag::HEIGHT_QUERY => NodeMessage::HeightQuery,
            tag::HEIGHT_REPLY => NodeMessage::HeightReply {
                height: Decode::decode(r)?,
                seen_votes: Decode::decode(r)?,
            },
            tag => {
                return Err(DecodeError::InvalidTag {
                    ty: "NodeMessage",
                    tag,
                })
            }
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::{Signature, ValidatorSignature};
    use rand::{Rng, SeedableRng};

    /// A height query and reply, a state request and two chunks (a middle one, and a last one
    /// with a certificate).
    fn samples() -> Vec<NodeMessage> {
        let chunk = |seq, last: bool| StateChunk {
            session: 42,
            height: 9,
            block_hash: Hash::tagged("test", b"block"),
            state_root: Hash::tagged("test", b"root"),
            seq,
            entries: vec![(Bytes(vec![1, 2]), Bytes(vec![3; 40]))],
            last,
            certificate: last.then(|| CheckpointCertificate {
                height: 9,
                block_hash: Hash::tagged("test", b"block"),
                state_root: Hash::tagged("test", b"root"),
                receipts_root: Hash::tagged("test", b"receipts"),
                signatures: (0..3)
                    .map(|v| ValidatorSignature {
                        validator: v,
                        signature: Signature([v as u8; 64]),
                    })
                    .collect(),
            }),
        };
        vec![
            NodeMessage::HeightQuery,
            NodeMessage::HeightReply {
                height: 12,
                seen_votes: true,
            },
            NodeMessage::StateRequest { session: 42 },
            NodeMessage::StateChunk(Box::new(chunk(0, false))),
            NodeMessage::StateChunk(Box::new(chunk(1, true))),
        ]
    }

    #[test]
    fn node_messages_round_trip_and_truncations_are_refused() {
        for m in samples() {
            let bytes = node_bytes(&m);
            assert_eq!(
                Wire::parse(bytes.clone()),
                Ok(Wire::Node(m.clone())),
                "{}",
                m.kind()
            );
            for cut in 0..bytes.len() {
                assert!(
                    Wire::parse(bytes[..cut].to_vec()).is_err(),
                    "{} cut at {cut}",
                    m.kind()
                );
            }
        }
    }

    #[test]
    fn a_consensus_message_reaches_the_replica_as_its_own_encoding() {
        let m = Message::SyncRequest { from: 3, to: 9 };
        assert_eq!(
            Wire::parse(consensus_bytes(&m)),
            Ok(Wire::Consensus(m.to_bytes()))
        );
        assert!(Wire::parse(vec![7, 1, 2]).is_err(), "an unknown envelope");
        assert!(Wire::parse(Vec::new()).is_err(), "nothing at all");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(first) = bytes.first_mut() {
                *first %= 2;
            }
            let _ = Wire::parse(bytes);
        }
    }
}
