//! What [`NetHandle::status`](super::NetHandle::status) reports: links and counters, per peer
//! and for the endpoint.

use super::shared::Shared;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the endpoint's links and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetStatus {
    /// This validator's index.
    pub me: u32,
    /// The bound UDP address.
    pub local_addr: SocketAddr,
    /// Handshakes refused because the peer's certificate key was not acceptable (not a
    /// validator, or not the validator dialed) or its handshake signature did not verify.
    pub rejected_handshakes: u64,
    /// One entry per peer, by ascending index.
    pub peers: Vec<PeerStatus>,
}

impl NetStatus {
    /// The entry for validator `index`.
    pub fn peer(&self, index: u32) -> Option<&PeerStatus> {
        self.peers.iter().find(|p| p.index == index)
    }

    /// Oversize disconnects over all peers.
    pub fn oversize_disconnects(&self) -> u64 {
        self.peers.iter().map(|p| p.oversize_disconnects).sum()
    }

    /// Garbage disconnects over all peers.
    pub fn garbage_disconnects(&self) -> u64 {
        self.peers.iter().map(|p| p.garbage_disconnects).sum()
    }
}

/// The state of the links with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's index.
    pub index: u32,
    /// Where it is dialed.
    pub addr: SocketAddr,
    /// Our connection to it is up (messages to it are flowing).
    pub connected_out: bool,
    /// Its connection to us is up.
    pub connected_in: bool,
    /// Successful outbound handshakes so far (1 plus the number of reconnects).
    pub connects: u64,
    /// Frames received from it.
    pub frames_in: u64,
    /// Message bytes received from it.
    pub bytes_in: u64,
    /// Frames written to its connection.
    pub frames_out: u64,
    /// Message bytes written to its connection.
    pub bytes_out: u64,
    /// Messages waiting in its queue.
    pub queued: usize,
    /// Messages dropped from its queue because it was full.
    pub dropped_queue_full: u64,
    /// Times it was disconnected for announcing an oversize frame.
    pub oversize_disconnects: u64,
    /// Times it was disconnected for garbage or a QUIC protocol violation.
    pub garbage_disconnects: u64,
}

impl PeerStatus {
    /// Whether messages to this peer are currently being delivered.
    pub fn connected(&self) -> bool {
        self.connected_out
    }
}

impl Shared {
    /// Links and counters now.
    pub(super) fn status(&self) -> NetStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStatus {
            me: self.me,
            local_addr: self.local_addr,
            rejected_handshakes: get(&self.rejected_handshakes),
            peers: self
                .peers
                .iter()
                .map(|p| {
                    let c = &p.counters;
                    PeerStatus {
                        index: p.index,
                        addr: p.addr,
                        connected_out: p.connected_out.load(Ordering::Relaxed),
                        connected_in: p.inbound().is_some(),
                        connects: get(&c.connects),
                        frames_in: get(&c.frames_in),
                        bytes_in: get(&c.bytes_in),
                        frames_out: get(&c.frames_out),
                        bytes_out: get(&c.bytes_out),
                        queued: p.queue.len(),
                        dropped_queue_full: get(&c.dropped_queue_full),
                        oversize_disconnects: get(&c.oversize),
                        garbage_disconnects: get(&c.garbage),
                    }
                })
                .collect(),
        }
    }
}
