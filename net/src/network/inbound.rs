//! The inbound side: the acceptor (with a cap on handshakes in progress) and one reader per
//! inbound connection, which decodes frames into the inbound channel and disconnects a peer
//! that sends oversize frames or garbage.

use super::shared::{bump, lock, loggable, peer_key, Peer, Shared, STALE_AFTER};
use super::{close_code, Inbound};
use crate::frame::{FrameDecoder, FrameError};
use crate::log_limit::Verdict;
use quinn::{Connection, ConnectionError, Endpoint, Incoming, ReadError, VarInt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

/// Most bytes taken from a stream per read.
const READ_CHUNK: usize = 256 << 10;

/// Accepts connections until the endpoint closes; each one is served by its own task, owned
/// here so that aborting this task aborts them all.
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    tx: mpsc::Sender<Inbound>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if shared.handshakes_in_flight.load(Ordering::Relaxed) >= shared.max_handshakes {
                    if let Verdict::Log { suppressed } = shared.handshake_warnings.check(Instant::now()) {
                        warn!(peer = %incoming.remote_address(), suppressed, "too many handshakes in progress; refused");
                    }
                    incoming.refuse();
                    continue;
                }
                shared.handshakes_in_flight.fetch_add(1, Ordering::Relaxed);
                conns.spawn(serve_incoming(shared.clone(), incoming, tx.clone()).in_current_span());
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Decrements the in-flight handshake count when the handshake ends, however it ends.
struct HandshakeSlot<'a>(&'a AtomicUsize);

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a reader stopped.
enum ReadEnd {
    Oversize(FrameError),
    Garbage(String),
    Closed(String),
    ConsumerGone,
}

/// Logs a failed incoming handshake, within [`Shared::handshake_warnings`]' bound; `suppressed`
/// counts the failures not logged since the last one that was.
fn handshake_warning(shared: &Shared, addr: SocketAddr, why: &str) {
    if let Verdict::Log { suppressed } = shared.handshake_warnings.check(Instant::now()) {
        warn!(peer = %addr, suppressed, why = %loggable(why), "handshake failed");
    }
}

/// Serves one incoming connection: the handshake, then its reader until the link ends.
async fn serve_incoming(shared: Arc<Shared>, incoming: Incoming, tx: mpsc::Sender<Inbound>) {
    let addr = incoming.remote_address();
    let Some(conn) = handshake(&shared, incoming, addr).await else {
        return;
    };
    let Some(peer) = peer_key(&conn)
        .and_then(|k| shared.peer_by_key(&k))
        .cloned()
    else {
        // Unreachable while the verifier does its job.
        warn!(peer = %addr, "connection without a validator identity; closed");
        conn.close(VarInt::from_u32(close_code::GARBAGE), b"identity");
        return;
    };
    let id = conn.stable_id();
    register_inbound(&peer, id, &conn);
    debug!(validator = peer.index, peer = %addr, "inbound connection");
    peer.dialled_us.notify_one();

    let end = read_loop(&shared, &peer, &conn, &tx).await;
    close_after(&peer, &conn, addr, end);
    let mut slot = peer.inbound();
    if slot.as_ref().map(|(i, _)| *i) == Some(id) {
        *slot = None;
    }
}

/// Completes an incoming handshake within twice the idle timeout, holding a handshake slot
/// meanwhile; a failure is logged (within bounds) and gives `None`.
async fn handshake(shared: &Shared, incoming: Incoming, addr: SocketAddr) -> Option<Connection> {
    let _slot = HandshakeSlot(&shared.handshakes_in_flight);
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            handshake_warning(shared, addr, &e.to_string());
            return None;
        }
    };
    match tokio::time::timeout(shared.idle_timeout * 2, connecting).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            handshake_warning(shared, addr, &e.to_string());
            None
        }
        Err(_) => {
            handshake_warning(shared, addr, "timed out");
            None
        }
    }
}

/// Makes `conn` (quinn stable id `id`) the peer's inbound connection, closing the one it
/// replaces; then our own link to the peer, if not brand new, is told to redial.
fn register_inbound(peer: &Peer, id: usize, conn: &Connection) {
    if let Some((_, old)) = peer.inbound().replace((id, conn.clone())) {
        old.close(VarInt::from_u32(close_code::REPLACED), b"replaced");
        // The peer replaced its link to us: if ours is not brand new, it predates the peer's
        // restart. (A fresh one is kept, so two validators never keep redialling each other.)
        let ours = *lock(&peer.out_since);
        if ours.is_some_and(|t| t.elapsed() > STALE_AFTER) {
            peer.redial.notify_one();
        }
    }
}

/// Closes an inbound connection whose reader stopped, with the close code that says why,
/// counting and logging (within bounds) oversize frames and garbage.
fn close_after(peer: &Peer, conn: &Connection, addr: SocketAddr, end: ReadEnd) {
    match end {
        ReadEnd::Oversize(e) => {
            bump(&peer.counters.oversize, 1);
            if let Verdict::Log { suppressed } = peer.link_warnings.check(Instant::now()) {
                warn!(validator = peer.index, peer = %addr, suppressed, "disconnected: {e}");
            }
            conn.close(VarInt::from_u32(close_code::OVERSIZE), b"oversize frame");
        }
        ReadEnd::Garbage(e) => {
            bump(&peer.counters.garbage, 1);
            if let Verdict::Log { suppressed } = peer.link_warnings.check(Instant::now()) {
                let why = loggable(&e);
                warn!(validator = peer.index, peer = %addr, suppressed, why = %why, "disconnected: garbage");
            }
            conn.close(VarInt::from_u32(close_code::GARBAGE), b"garbage");
        }
        ReadEnd::Closed(why) => {
            debug!(validator = peer.index, peer = %addr, "inbound connection ended: {why}");
            conn.close(VarInt::from_u32(close_code::LINK_FAILED), b"link failed");
        }
        ReadEnd::ConsumerGone => {
            conn.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        }
    }
}

/// How a QUIC connection error ends a reader: a violation on the peer's side is garbage.
fn connection_end(e: ConnectionError) -> ReadEnd {
    match e {
        // Raised locally: the peer broke the QUIC rules (stream limits, datagrams, ...).
        ConnectionError::TransportError(t) => ReadEnd::Garbage(format!("QUIC violation: {t}")),
        other => ReadEnd::Closed(other.to_string()),
    }
}

/// Reads frames from the peer's one stream into the inbound channel until the link ends.
async fn read_loop(
    shared: &Shared,
    peer: &Peer,
    conn: &Connection,
    tx: &mpsc::Sender<Inbound>,
) -> ReadEnd {
    let mut stream = match conn.accept_uni().await {
        Ok(s) => s,
        Err(e) => return connection_end(e),
    };
    let mut decoder = FrameDecoder::new(shared.max_frame);
    loop {
        match stream.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => {
                if let Err(e) = decoder.push(&chunk.bytes) {
                    return ReadEnd::Garbage(e.to_string());
                }
                loop {
                    match decoder.next_frame() {
                        Ok(Some(msg)) => {
                            bump(&peer.counters.frames_in, 1);
                            bump(&peer.counters.bytes_in, msg.len() as u64);
                            let inbound = Inbound {
                                from: peer.index,
                                msg,
                            };
                            if tx.send(inbound).await.is_err() {
                                return ReadEnd::ConsumerGone;
                            }
                        }
                        Ok(None) => break,
                        Err(e @ FrameError::Oversize { .. }) => return ReadEnd::Oversize(e),
                        Err(e) => return ReadEnd::Garbage(e.to_string()),
                    }
                }
            }
            Ok(None) => {
                return match decoder.finish() {
                    Ok(()) => ReadEnd::Closed("peer finished its stream".into()),
                    Err(e) => ReadEnd::Garbage(e.to_string()),
                }
            }
            Err(ReadError::ConnectionLost(e)) => return connection_end(e),
            Err(e) => return ReadEnd::Closed(e.to_string()),
        }
    }
}
