//! The state the endpoint's tasks share: the peers (queue, links, counters, log limits), the
//! endpoint-wide settings and counters, and small helpers they all use.

use crate::config::{NetConfig, PeerAddr};
use crate::log_limit::LogLimit;
use crate::queue::OutQueue;
use crate::tls;
use lanes_types::PublicKey;
use quinn::Connection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per-peer event counters, read by [`Shared::status`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connects: AtomicU64,
    pub(super) frames_in: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) frames_out: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) oversize: AtomicU64,
    pub(super) garbage: AtomicU64,
}

/// Adds `n` to a counter.
pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One peer: its identity and address, its outbound queue and the state of both links.
pub(super) struct Peer {
    pub(super) index: u32,
    pub(super) key: PublicKey,
    pub(super) addr: SocketAddr,
    pub(super) queue: OutQueue,
    pub(super) connected_out: AtomicBool,
    /// The current inbound connection from this peer: (quinn stable id, connection).
    pub(super) inbound: Mutex<Option<(usize, Connection)>>,
    /// Signalled when the peer dials us: it is up, so a dial loop sleeping off its back-off
    /// (which grows to `backoff_max` while the peer was down) dials at once.
    pub(super) dialled_us: tokio::sync::Notify,
    /// Signalled when the peer dialled us again while our link to it is old: it restarted (or
    /// lost its link), so ours is most likely dead too and is replaced at once instead of
    /// waiting for QUIC's idle timeout.
    pub(super) redial: tokio::sync::Notify,
    /// When our current outbound connection to the peer came up.
    pub(super) out_since: Mutex<Option<Instant>>,
    pub(super) counters: Counters,
    /// Bounds the warnings about this peer's links (a faulty validator can reconnect and send
    /// garbage again and again; the counters still count every time).
    pub(super) link_warnings: LogLimit,
}

impl Peer {
    /// The peer `p` of `config`, not connected yet.
    pub(super) fn new(p: &PeerAddr, config: &NetConfig) -> Peer {
        Peer {
            index: p.index,
            key: p.public_key,
            addr: p.addr,
            queue: OutQueue::new(config.queue_len, config.queue_bytes),
            connected_out: AtomicBool::new(false),
            inbound: Mutex::new(None),
            dialled_us: tokio::sync::Notify::new(),
            redial: tokio::sync::Notify::new(),
            out_since: Mutex::new(None),
            counters: Counters::default(),
            link_warnings: LogLimit::new(LINK_WARNING_WINDOW, LINK_WARNINGS),
        }
    }

    /// The current inbound connection from this peer, locked.
    pub(super) fn inbound(&self) -> std::sync::MutexGuard<'_, Option<(usize, Connection)>> {
        lock(&self.inbound)
    }
}

/// At most [`HANDSHAKE_WARNINGS`] failed or refused incoming handshakes are logged per
/// [`HANDSHAKE_WARNING_WINDOW`]; the next logged one says how many were not.
const HANDSHAKE_WARNINGS: u32 = 10;
const HANDSHAKE_WARNING_WINDOW: Duration = Duration::from_secs(10);

/// At most [`LINK_WARNINGS`] warnings and link up/down lines per peer and
/// [`LINK_WARNING_WINDOW`].
const LINK_WARNINGS: u32 = 10;
const LINK_WARNING_WINDOW: Duration = Duration::from_secs(10);

/// At most this many bytes of a remote-supplied reason go into a log line.
const MAX_LOGGED_REASON: usize = 200;

/// `why` as a log field: cut to [`MAX_LOGGED_REASON`] bytes and `Debug`-escaped, so a peer that
/// controls part of it (a QUIC close reason) cannot forge log lines with newlines.
pub(super) fn loggable(why: &str) -> String {
    let mut end = why.len().min(MAX_LOGGED_REASON);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &why[..end])
}

/// An outbound link older than this is assumed dead when its peer dials us anew.
pub(super) const STALE_AFTER: Duration = Duration::from_secs(2);

/// What the endpoint's tasks share.
pub(super) struct Shared {
    pub(super) me: u32,
    pub(super) local_addr: SocketAddr,
    pub(super) max_frame: usize,
    pub(super) idle_timeout: Duration,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    pub(super) max_handshakes: usize,
    /// By ascending index.
    pub(super) peers: Vec<Arc<Peer>>,
    pub(super) rejected_handshakes: Arc<AtomicU64>,
    pub(super) handshakes_in_flight: AtomicUsize,
    /// Bounds the warnings about failed or refused handshakes (anyone can cause them).
    pub(super) handshake_warnings: LogLimit,
}

impl Shared {
    /// The endpoint's state for `config`, bound to `local_addr`; `peers` by ascending index.
    pub(super) fn new(
        config: &NetConfig,
        local_addr: SocketAddr,
        peers: Vec<Arc<Peer>>,
        rejected_handshakes: Arc<AtomicU64>,
    ) -> Shared {
        Shared {
            me: config.me,
            local_addr,
            max_frame: config.max_frame,
            idle_timeout: config.idle_timeout,
            backoff_min: config.backoff_min,
            backoff_max: config.backoff_max,
            max_handshakes: config.max_handshakes,
            peers,
            rejected_handshakes,
            handshakes_in_flight: AtomicUsize::new(0),
            handshake_warnings: LogLimit::new(HANDSHAKE_WARNING_WINDOW, HANDSHAKE_WARNINGS),
        }
    }

    /// The peer with this index.
    pub(super) fn peer(&self, index: u32) -> Option<&Arc<Peer>> {
        self.peers
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|i| &self.peers[i])
    }

    /// The peer with this validator key.
    pub(super) fn peer_by_key(&self, key: &PublicKey) -> Option<&Arc<Peer>> {
        self.peers.iter().find(|p| p.key == *key)
    }
}

/// Locks `m`, ignoring poisoning (the data stays consistent: no holder panics mid-update).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The validator key in a connection's peer certificate.
pub(super) fn peer_key(conn: &Connection) -> Option<PublicKey> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::certificate_key(certs.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote-supplied reason cannot break a log line or make it long.
    #[test]
    fn loggable_reasons_are_escaped_and_cut() {
        let forged = "closed\n2026-12-01T00:00:00Z  INFO lanes: committed height=9";
        let out = loggable(forged);
        assert!(!out.contains('\n'), "{out}");
        assert!(out.contains("\\n"), "{out}");
        let long = "é".repeat(MAX_LOGGED_REASON);
        let out = loggable(&long);
        assert!(out.len() <= MAX_LOGGED_REASON + 2, "{}", out.len());
        assert!(out.starts_with("\"é"));
        assert_eq!(loggable("\u{1b}[31mred"), "\"\\u{1b}[31mred\"");
    }
}
