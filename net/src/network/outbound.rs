//! The outbound side: one dial loop per peer keeps a connection up (back-off with jitter,
//! redial when the peer restarted) and writes the peer's queue to it in batches of frames.

use super::close_code;
use super::shared::{bump, lock, loggable, peer_key, Peer, Shared, STALE_AFTER};
use crate::frame::{LEN_BYTES, PREAMBLE};
use crate::log_limit::Verdict;
use crate::tls;
use bytes::{BufMut, Bytes, BytesMut};
use quinn::{Connection, Endpoint, VarInt};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// Most messages written to a stream in one batch.
const MAX_BATCH_MSGS: usize = 256;
/// Most bytes written to a stream in one batch (a single larger message still goes alone).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Messages up to this size are copied next to their length prefix; larger ones are written
/// from their own buffer.
const COPY_LIMIT: usize = 4096;

/// `d` give or take a quarter, so that peers do not redial in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

/// Keeps a connection to one peer and feeds it from the peer's queue, forever.
pub(super) async fn dial_loop(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    endpoint: Endpoint,
    config: quinn::ClientConfig,
) {
    let mut backoff = shared.backoff_min;
    let mut batch = Vec::new();
    let mut chunks = Vec::new();
    loop {
        match dial(&shared, &peer, &endpoint, &config).await {
            Ok(conn) => {
                backoff = shared.backoff_min;
                bump(&peer.counters.connects, 1);
                if let Verdict::Log { suppressed } = peer.link_warnings.check(Instant::now()) {
                    info!(validator = peer.index, peer = %peer.addr, suppressed, "connected");
                }
                let why = send_loop(&peer, &conn, &mut batch, &mut chunks).await;
                peer.connected_out.store(false, Ordering::Relaxed);
                *lock(&peer.out_since) = None;
                conn.close(VarInt::from_u32(close_code::LINK_FAILED), b"link failed");
                if let Verdict::Log { suppressed } = peer.link_warnings.check(Instant::now()) {
                    let why = loggable(&why.to_string());
                    info!(validator = peer.index, peer = %peer.addr, suppressed, why = %why, "disconnected");
                }
            }
            Err(why) => {
                debug!(validator = peer.index, peer = %peer.addr, "dial failed: {why}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(backoff)) => {
                backoff = backoff.saturating_mul(2).min(shared.backoff_max);
            }
            _ = peer.dialled_us.notified() => backoff = shared.backoff_min,
        }
    }
}

/// One connection attempt to `peer`, checking that it presents the peer's key.
async fn dial(
    shared: &Shared,
    peer: &Peer,
    endpoint: &Endpoint,
    config: &quinn::ClientConfig,
) -> Result<Connection, String> {
    let connecting = endpoint
        .connect_with(config.clone(), peer.addr, tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(shared.idle_timeout * 2, connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    // The verifier already checked the key; a second look costs nothing.
    if peer_key(&conn) != Some(peer.key) {
        conn.close(VarInt::from_u32(close_code::LINK_FAILED), b"identity");
        return Err("server identity does not match".into());
    }
    Ok(conn)
}

/// Sends queued messages on one stream until the connection fails; returns why.
async fn send_loop(
    peer: &Peer,
    conn: &Connection,
    batch: &mut Vec<Bytes>,
    chunks: &mut Vec<Bytes>,
) -> String {
    let opened = tokio::select! {
        s = conn.open_uni() => s,
        e = conn.closed() => Err(e),
    };
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => return format!("cannot open stream: {e}"),
    };
    if let Err(e) = stream.write_all(&PREAMBLE).await {
        return e.to_string();
    }
    peer.connected_out.store(true, Ordering::Relaxed);
    *lock(&peer.out_since) = Some(Instant::now());
    loop {
        batch.clear();
        peer.queue.pop_batch(MAX_BATCH_MSGS, MAX_BATCH_BYTES, batch);
        if batch.is_empty() {
            tokio::select! {
                _ = peer.queue.wait_data() => continue,
                e = conn.closed() => return e.to_string(),
                _ = peer.redial.notified() => {
                    // A signal meant for an older link finds a fresh one: keep it.
                    let age = lock(&peer.out_since).map_or(Duration::ZERO, |t| t.elapsed());
                    if age > STALE_AFTER {
                        return "the peer dialled us anew".into();
                    }
                }
            }
        }
        let bytes = encode_batch(batch, chunks);
        if let Err(e) = stream.write_all_chunks(chunks).await {
            return e.to_string();
        }
        bump(&peer.counters.frames_out, batch.len() as u64);
        bump(&peer.counters.bytes_out, bytes as u64);
    }
}

/// Lays out `batch` as frames in `chunks`: small messages are copied next to their length
/// prefix, large ones are written from their own buffers. Returns the message bytes.
fn encode_batch(batch: &[Bytes], chunks: &mut Vec<Bytes>) -> usize {
    chunks.clear();
    let mut buf = BytesMut::new();
    let mut total = 0;
    for m in batch {
        total += m.len();
        buf.put_u32(m.len() as u32);
        if m.len() <= COPY_LIMIT {
            buf.put_slice(m);
        } else {
            chunks.push(buf.split().freeze());
            chunks.push(m.clone());
        }
    }
    if !buf.is_empty() {
        chunks.push(buf.freeze());
    }
    debug_assert!(chunks.iter().map(Bytes::len).sum::<usize>() == total + LEN_BYTES * batch.len());
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    #[test]
    fn batches_encode_as_frames() {
        let batch: Vec<Bytes> = vec![
            Bytes::from_static(b"small"),
            Bytes::from(vec![9u8; COPY_LIMIT + 1]),
            Bytes::new(),
            Bytes::from_static(b"tail"),
        ];
        let mut chunks = Vec::new();
        let total = encode_batch(&batch, &mut chunks);
        assert_eq!(total, 5 + COPY_LIMIT + 1 + 4);
        let wire: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut expect = BytesMut::new();
        for m in &batch {
            encode_frame(m, &mut expect);
        }
        assert_eq!(wire, expect.to_vec());
    }
}
