//! The node's own protocol beside the replica, as a pure state machine in the replica's style:
//! [`NodeProtocol::handle`] takes what happened and returns what to do. It owns the voting hold
//! (`hold.rs`), the decision to fetch the certified state (`state_sync.rs`) and the answers to
//! height queries; the consensus thread (`driver.rs`) only routes inputs to it and carries out
//! its [`NodeAction`]s. No clock, socket or thread inside: time comes with each event.

use super::hold::{Hold, VotingHold};
use super::state_sync::{Snapshot, StateSync};
use super::wire::NodeMessage;
use lanes_consensus::Message;
use lanes_types::Genesis;

/// Something the node protocol learns.
#[derive(Debug)]
pub enum NodeEvent<'a> {
    /// One of the node's own messages from validator `from`.
    Message {
        /// The sender (authenticated by the transport).
        from: u32,
        /// The message.
        message: NodeMessage,
    },
    /// An encoded consensus message from `from`, on its way to the replica.
    Consensus {
        /// The sender.
        from: u32,
        /// The encoded [`Message`].
        bytes: &'a [u8],
        /// The peer the replica's outstanding catch-up request went to, if any.
        sync_peer: Option<u32>,
    },
    /// A block up to `height` is executed and stored.
    Executed(u64),
    /// The apply thread installed a snapshot at `Some(height)`, or refused it (`None`).
    Installed(Option<u64>),
    /// After every input: what the replica knows of the network.
    Tick {
        /// A height at least one honest validator has executed.
        network_height: u64,
        /// Whether a quorum certified a root other than ours.
        diverged: bool,
        /// Each validator's highest checkpoint height.
        claims: &'a [u64],
        /// The replica's committed height.
        committed: u64,
    },
}

/// What the consensus thread must do for the node protocol.
#[derive(Debug)]
pub enum NodeAction {
    /// Send a node message to one validator, or to every other one (`None`).
    Send {
        /// The recipient.
        to: Option<u32>,
        /// The message.
        message: NodeMessage,
    },
    /// Store the voting hold (synced) and mute or unmute the replica to match it.
    PersistHold(Hold),
    /// Serve a snapshot of our state to `to` (on a thread of its own).
    ServeState {
        /// The asking validator.
        to: u32,
        /// Its session id.
        session: u64,
    },
    /// Hand a verified snapshot to the apply thread to install.
    Install(Snapshot),
    /// An invalid message from `from` was dropped: count it, log why.
    Reject {
        /// The sender.
        from: u32,
        /// Why.
        reason: String,
    },
}

/// The node protocol's state. See the module documentation.
pub struct NodeProtocol {
    hold: VotingHold,
    sync: StateSync,
    genesis: Genesis,
    /// Which validators sent us something they signed on their own account since we started
    /// (asked by a validator that lost its data, see `hold`).
    signed_by: Vec<bool>,
    executed: u64,
    committed: u64,
    out: Vec<NodeAction>,
}

impl NodeProtocol {
    /// The protocol of validator `me` under `genesis`, with the stored `hold`, at executed
    /// height `executed`, at time `now`.
    pub fn new(genesis: Genesis, me: u32, hold: Hold, executed: u64, now: u64) -> Self {
        let n = genesis.validators.len();
        let stuck_ms = (30 * genesis.params.view_timeout_ms).max(30_000);
        let mut sync = StateSync::new(me, n as u32, stuck_ms, now);
        sync.executed(executed, now);
        NodeProtocol {
            hold: VotingHold::new(hold, n, genesis.params.watermark_window),
            sync,
            genesis,
            signed_by: vec![false; n],
            executed,
            committed: executed,
            out: Vec::new(),
        }
    }

    /// Whether the replica must be muted (votes held).
    pub fn holding(&self) -> bool {
        self.hold.holding()
    }

    /// Where the votes stand.
    pub fn hold(&self) -> Hold {
        self.hold.hold()
    }

    /// A one-line description of a state transfer under way, for `/status`.
    pub fn state_sync(&self) -> Option<String> {
        self.sync.describe()
    }

    /// Handles one event at time `now` and returns what to do, in order.
    pub fn handle(&mut self, event: NodeEvent<'_>, now: u64) -> Vec<NodeAction> {
        match event {
            NodeEvent::Message { from, message } => self.on_message(from, message, now),
            NodeEvent::Consensus {
                from,
                bytes,
                sync_peer,
            } => self.on_consensus(from, bytes, sync_peer, now),
            NodeEvent::Executed(height) => self.on_executed(height, now),
            NodeEvent::Installed(head) => {
                self.sync.installed(head.is_some(), now);
                if let Some(height) = head {
                    self.on_executed(height, now);
                }
            }
            NodeEvent::Tick {
                network_height,
                diverged,
                claims,
                committed,
            } => self.on_tick(network_height, diverged, claims, committed, now),
        }
        std::mem::take(&mut self.out)
    }

    fn on_message(&mut self, from: u32, message: NodeMessage, now: u64) {
        match message {
            NodeMessage::HeightQuery => {
                let seen_votes = self.signed_by.get(from as usize).is_some_and(|s| *s);
                let reply = NodeMessage::HeightReply {
                    height: self.executed,
                    seen_votes,
                };
                self.send(Some(from), reply);
            }
            NodeMessage::HeightReply { height, seen_votes } => {
                if let Some(decided) = self.hold.on_reply(from, height, seen_votes) {
                    tracing::info!(hold = ?decided, "voting hold decided from peers' heights");
                    self.out.push(NodeAction::PersistHold(decided));
                }
            }
            NodeMessage::StateRequest { session } => {
                self.out.push(NodeAction::ServeState { to: from, session });
            }
            NodeMessage::StateChunk(chunk) => {
                let taken = self
                    .sync
                    .on_chunk(from, *chunk, &self.genesis, self.committed, now);
                match taken {
                    Ok(Some(snapshot)) => self.out.push(NodeAction::Install(snapshot)),
                    Ok(None) => {}
                    Err(reason) => self.out.push(NodeAction::Reject { from, reason }),
                }
            }
        }
    }

    fn on_consensus(&mut self, from: u32, bytes: &[u8], sync_peer: Option<u32>, now: u64) {
        if Message::is_signed_by_sender(bytes) {
            if let Some(seen) = self.signed_by.get_mut(from as usize) {
                *seen = true;
            }
        }
        // Only the peer asked can tell us it pruned the blocks: an unsolicited empty answer
        // must not send us fetching the whole state.
        if Message::is_empty_sync_response(bytes) && sync_peer == Some(from) {
            self.sync.blocks_unavailable(now);
        }
    }

    fn on_executed(&mut self, height: u64, now: u64) {
        self.sync.executed(height, now);
        self.executed = self.executed.max(height);
        if self.hold.on_executed(self.executed) {
            tracing::info!(height = self.executed, "caught up: voting again");
            self.out.push(NodeAction::PersistHold(Hold::Voting));
        }
    }

    fn on_tick(&mut self, network: u64, diverged: bool, claims: &[u64], committed: u64, now: u64) {
        self.committed = committed;
        if self.hold.wants_query(now) {
            self.send(None, NodeMessage::HeightQuery);
        }
        let need = self.sync.need(network, diverged, now);
        if let Some((peer, request)) = self.sync.tick(need, claims, committed, now) {
            self.send(Some(peer), request);
        }
    }

    fn send(&mut self, to: Option<u32>, message: NodeMessage) {
        self.out.push(NodeAction::Send { to, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_consensus::messages::Vote;
    use lanes_types::codec::Encode;
    use lanes_types::{Hash, Signature};

    fn protocol(hold: Hold) -> NodeProtocol {
        let keys = crate::fixtures::keys("protocol");
        let genesis = crate::fixtures::genesis("protocol-test", &keys);
        NodeProtocol::new(genesis, 0, hold, 5, 0)
    }

    fn vote_bytes() -> Vec<u8> {
        let vote = Vote {
            view: 0,
            height: 1,
            block_hash: Hash::ZERO,
            validator: 2,
            signature: Signature([0; 64]),
        };
        Message::Prepare(vote).to_bytes()
    }

    #[test]
    fn a_height_query_is_answered_with_our_height_and_whether_the_asker_spoke() {
        let mut p = protocol(Hold::Voting);
        let ask = |p: &mut NodeProtocol| {
            let message = NodeMessage::HeightQuery;
            p.handle(NodeEvent::Message { from: 2, message }, 10)
        };
        let reply = |seen_votes| NodeMessage::HeightReply {
            height: 5,
            seen_votes,
        };
        let actions = ask(&mut p);
        assert!(
            matches!(&actions[..], [NodeAction::Send { to: Some(2), message }] if *message == reply(false))
        );
        let bytes = vote_bytes();
        let event = NodeEvent::Consensus {
            from: 2,
            bytes: &bytes,
            sync_peer: None,
        };
        assert!(p.handle(event, 11).is_empty());
        p.handle(NodeEvent::Executed(7), 12);
        let actions = ask(&mut p);
        let expected = NodeMessage::HeightReply {
            height: 7,
            seen_votes: true,
        };
        assert!(
            matches!(&actions[..], [NodeAction::Send { to: Some(2), message }] if *message == expected)
        );
    }

    #[test]
    fn a_held_validator_asks_decides_from_f_plus_one_replies_and_is_lifted_by_execution() {
        let mut p = protocol(Hold::Asking);
        assert!(p.holding());
        let tick = |p: &mut NodeProtocol, now| {
            let claims = [0; 4];
            let event = NodeEvent::Tick {
                network_height: 0,
                diverged: false,
                claims: &claims,
                committed: 5,
            };
            p.handle(event, now)
        };
        let actions = tick(&mut p, 1);
        assert!(matches!(
            &actions[..],
            [NodeAction::Send {
                to: None,
                message: NodeMessage::HeightQuery
            }]
        ));
        for (from, height) in [(1, 20), (2, 22)] {
            let message = NodeMessage::HeightReply {
                height,
                seen_votes: true,
            };
            let actions = p.handle(NodeEvent::Message { from, message }, 2);
            if from == 2 {
                let until = 22
                    + crate::fixtures::genesis("x", &crate::fixtures::keys("x"))
                        .params
                        .watermark_window;
                assert!(
                    matches!(&actions[..], [NodeAction::PersistHold(Hold::Until(u))] if *u == until)
                );
            }
        }
        assert!(p.holding());
        let Hold::Until(until) = p.hold() else {
            panic!("holding until a height")
        };
        assert!(p.handle(NodeEvent::Executed(until - 1), 3).is_empty());
        let actions = p.handle(NodeEvent::Executed(until), 4);
        assert!(matches!(
            &actions[..],
            [NodeAction::PersistHold(Hold::Voting)]
        ));
        assert!(!p.holding());
    }

    #[test]
    fn a_state_chunk_nobody_asked_for_is_ignored_and_a_bad_one_is_rejected() {
        let mut p = protocol(Hold::Voting);
        let chunk = |session| crate::wire::StateChunk {
            session,
            height: 9,
            block_hash: Hash::ZERO,
            state_root: Hash::ZERO,
            seq: 0,
            entries: Vec::new(),
            last: true,
            certificate: None,
        };
        let message = NodeMessage::StateChunk(Box::new(chunk(1)));
        assert!(p
            .handle(NodeEvent::Message { from: 1, message }, 0)
            .is_empty());
        // Behind and told by the peer asked that the blocks are pruned: a transfer starts.
        let claims = [0, 9, 9, 9];
        let empty_sync = Message::SyncResponse(Vec::new()).to_bytes();
        let event = NodeEvent::Consensus {
            from: 1,
            bytes: &empty_sync,
            sync_peer: Some(1),
        };
        p.handle(event, 100);
        let tick = NodeEvent::Tick {
            network_height: 9,
            diverged: false,
            claims: &claims,
            committed: 5,
        };
        let actions = p.handle(tick, 100);
        let Some(NodeAction::Send {
            to: Some(peer),
            message: NodeMessage::StateRequest { session },
        }) = actions.into_iter().next()
        else {
            panic!("a state request")
        };
        // The last chunk without a certificate is refused, and says why.
        let message = NodeMessage::StateChunk(Box::new(chunk(session)));
        let actions = p.handle(
            NodeEvent::Message {
                from: peer,
                message,
            },
            101,
        );
        assert!(matches!(&actions[..], [NodeAction::Reject { from, .. }] if *from == peer));
        assert_eq!(p.state_sync(), None, "the transfer was aborted");
    }
}
