//! lanes-net: authenticated QUIC links between validators.
//!
//! The node starts one [`Network`] per validator and gets a [`NetHandle`] to send with and a
//! channel of [`Inbound`] messages. Messages are opaque [`bytes::Bytes`]; there is no
//! consensus logic here.
//!
//! # Identity
//!
//! Each validator's TLS certificate is self-signed with its validator ed25519 key (see
//! [`tls`]). Both ends present certificates (mutual TLS 1.3 over QUIC, ring provider chosen
//! explicitly, no resumption, no 0-RTT). A server accepts a client only if the client's key is
//! one of the other validators' keys from genesis; a dialer accepts a server only if its key is
//! exactly the key of the validator it dialed. Failed handshakes are logged with the peer's
//! address and counted ([`NetStatus::rejected_handshakes`]).
//!
//! # Connection model
//!
//! Every ordered pair of validators has its own connection: validator A *dials* B to send to
//! B, and B dials A to send to A. So there are two connections per pair and no tie-break: each
//! connection carries traffic in one direction only, on one long-lived unidirectional stream
//! opened by the dialer, which keeps messages from one sender to one receiver in order. The
//! acceptor allows exactly one unidirectional stream and no bidirectional streams or datagrams
//! per connection; the dialer allows none. A validator has at most one live inbound connection
//! at a time: a newer one from the same key replaces the older.
//!
//! The dialer owns reconnection: when its connection dies (peer restarted, idle timeout,
//! closed) it redials with exponential back-off (`backoff_min` doubling to `backoff_max`, with
//! jitter); a peer that dials us cuts that back-off short, so a restarted validator is
//! reached as soon as it is up. The QUIC stateless-reset key is derived from the validator key, so a validator
//! restarted on the same address resets its peers' stale connections at once instead of
//! leaving them to time out.
//!
//! # Framing and misbehaving peers
//!
//! See [`frame`]: a preamble, then `u32` big-endian length-prefixed frames, each at most
//! `max_frame` bytes. A peer that announces an oversize frame, sends garbage (bad preamble,
//! stream ending inside a frame) or violates QUIC (e.g. more streams than allowed, which QUIC
//! itself enforces) is disconnected and counted; every other link keeps running.
//!
//! # Queues and limits
//!
//! Each peer has a bounded outbound queue (`queue_len` messages and `queue_bytes` bytes). When
//! it is full the **oldest** queued message is dropped and counted
//! ([`PeerStatus::dropped_queue_full`]): consensus tolerates loss, and its newest messages are
//! the ones worth delivering. Messages queued while a peer is unreachable are sent when it
//! comes back (as many as fit). A message already handed to a connection that then dies is
//! lost. [`NetHandle::send_wait`] waits for room instead, for callers that prefer back-pressure.
//!
//! Inbound messages go through one bounded channel (`inbound_len`); when the node does not
//! keep up, readers stop reading and QUIC flow control pushes back on the senders, whose
//! queues then drop. Inbound handshakes in progress are capped (`max_handshakes`).
//!
//! Memory per peer is therefore bounded by its queue (`queue_bytes`), quinn's send buffer
//! (16 MiB), the stream flow-control window of its inbound connection (8 MiB) and one
//! partially received frame (`max_frame`).

#![warn(missing_docs)]

mod config;
pub mod frame;
mod log_limit;
mod network;
mod queue;
pub mod tls;

pub use config::{NetConfig, PeerAddr, DEFAULT_MAX_FRAME};
pub use network::{close_code, Inbound, NetHandle, NetStatus, Network, PeerStatus};

use std::net::SocketAddr;
use thiserror::Error;

/// Why the network could not start or a message could not be queued.
#[derive(Debug, Error)]
pub enum NetError {
    /// The configuration is inconsistent.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// A validator's address from genesis does not resolve.
    #[error("cannot resolve validator {index}'s address {address:?}: {reason}")]
    Resolve {
        /// The validator's index.
        index: u32,
        /// The address as written in genesis.
        address: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The UDP socket could not be bound or set up.
    #[error("cannot open the QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The certificate could not be generated.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// [`Network::start`] was called outside a tokio runtime.
    #[error("the network must be started from inside a tokio runtime")]
    NoRuntime,
    /// The index is not one of this node's peers (unknown, or this validator itself).
    #[error("validator {0} is not a peer of this node")]
    UnknownPeer(u32),
    /// The message is larger than `max_frame`.
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    FrameTooLarge {
        /// The message's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The network has been shut down.
    #[error("the network is shut down")]
    Shutdown,
}
