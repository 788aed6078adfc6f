//! The serving side: a snapshot of our state streamed to one requester, on a thread of its
//! own, at most [`MAX_SERVING`] at once.

use super::{CERT_WAIT, CHUNK_BYTES, MAX_SERVING};
use crate::shared::Shared;
use crate::wire::{self, NodeMessage, StateChunk};
use lanes_storage::Head;
use lanes_types::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Serves a snapshot of this node's state to validator `to` on a thread of its own.
pub fn serve(shared: &Arc<Shared>, runtime: &tokio::runtime::Handle, to: u32, session: u64) {
    if SERVING.fetch_add(1, Ordering::SeqCst) >= MAX_SERVING {
        SERVING.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!(to, "state request ignored: already serving {MAX_SERVING}");
        return;
    }
    let (shared, runtime) = (shared.clone(), runtime.clone());
    let spawned = std::thread::Builder::new()
        .name("state-serve".into())
        .spawn(move || {
            if let Err(e) = stream_state(&shared, &runtime, to, session) {
                tracing::warn!(to, error = %e, "state transfer to a peer failed");
            }
            SERVING.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        SERVING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn stream_state(
    shared: &Shared,
    runtime: &tokio::runtime::Handle,
    to: u32,
    session: u64,
) -> anyhow::Result<()> {
    let send = |chunk: StateChunk| -> anyhow::Result<()> {
        let bytes = wire::node_bytes(&NodeMessage::StateChunk(Box::new(chunk)));
        runtime
            .block_on(shared.net.send_wait(to, bytes.into()))
            .map_err(|e| anyhow::anyhow!("sending a state chunk: {e}"))
    };
    let (head, sent) = shared.store.with_state_snapshot(|head, entries| {
        let mut seq = 0u32;
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        for entry in entries {
            let (k, v) = entry?;
            bytes += k.len() + v.len() + 8;
            chunk.push((Bytes(k), Bytes(v)));
            if bytes >= CHUNK_BYTES {
                send(chunk_of(session, &head, seq, std::mem::take(&mut chunk)))?;
                seq += 1;
                bytes = 0;
            }
        }
        anyhow::Ok((head, (seq, chunk)))
    })??;
    let (seq, rest) = sent;
    // The certificate of the snapshot's height arrives shortly after its block executed.
    let deadline = Instant::now() + CERT_WAIT;
    let certificate = loop {
        if let Some(c) = shared.store.checkpoint_certificate(head.height)? {
            break Some(c);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut last = chunk_of(session, &head, seq, rest);
    last.last = true;
    last.certificate = certificate;
    let certified = last.certificate.is_some();
    send(last)?;
    tracing::info!(
        to,
        height = head.height,
        chunks = seq + 1,
        certified,
        "served a state snapshot"
    );
    Ok(())
}

fn chunk_of(session: u64, head: &Head, seq: u32, entries: Vec<(Bytes, Bytes)>) -> StateChunk {
    StateChunk {
        session,
        height: head.height,
        block_hash: head.block_hash,
        state_root: head.state_root,
        seq,
        entries,
        last: false,
        certificate: None,
    }
}
