//! Where messages leave the node: every consensus and node message goes through [`send`] or
//! [`send_node`], which check the frame limit, count what cannot be sent, and (in a
//! fault-injection build) let `byzantine.rs` rewrite what consensus says.

use super::shared::{Metrics, Shared};
use super::wire::{self, NodeMessage};
use lanes_consensus::messages::Message;
use lanes_types::ExecRoots;

/// Sends `message` to `to`, or to every other validator: the one place consensus messages
/// leave the node, so a byzantine test build can rewrite them (`node/byzantine.rs`).
pub fn send(shared: &Shared, to: Option<u32>, message: &Message) {
    #[cfg(feature = "byzantine")]
    if let Some(b) = &shared.byzantine {
        let out = b
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outgoing(to, message);
        for (to, bytes) in out {
            send_wire(
                shared,
                Some(to),
                wire::consensus_raw(&bytes),
                message.kind(),
            );
        }
        return;
    }
    send_wire(shared, to, wire::consensus_bytes(message), message.kind());
}

/// Sends one of the node's own messages to `to`, or to every other validator.
pub fn send_node(shared: &Shared, to: Option<u32>, message: &NodeMessage) {
    send_wire(shared, to, wire::node_bytes(message), message.kind());
}

/// Sends an enveloped message of `kind` (for the logs) to `to`, or to every other validator,
/// if it fits a frame; a message that cannot be sent is an error line and a count.
fn send_wire(shared: &Shared, to: Option<u32>, bytes: Vec<u8>, kind: &'static str) {
    if !fits_frame(bytes.len(), kind, shared.max_frame, &shared.metrics, to) {
        return;
    }
    let result = match to {
        Some(to) => shared.net.send(to, bytes.into()),
        None => shared.net.broadcast(bytes.into()),
    };
    match result {
        Ok(()) => {}
        // Every send fails this way while the node stops: nothing is wrong with the message.
        Err(lanes_net::NetError::Shutdown) => tracing::debug!(?to, "network shut down"),
        Err(e) => {
            Metrics::add(&shared.metrics.unsendable_messages, 1);
            tracing::error!(?to, kind, error = %e, "message not sent");
        }
    }
}

/// Whether a message of `len` bytes fits a frame of `max_frame` bytes; if not, logs an error
/// and counts it as unsendable (the network would refuse it).
fn fits_frame(
    len: usize,
    kind: &'static str,
    max_frame: usize,
    metrics: &Metrics,
    to: Option<u32>,
) -> bool {
    if len <= max_frame {
        return true;
    }
    Metrics::add(&metrics.unsendable_messages, 1);
    tracing::error!(
        ?to,
        kind,
        bytes = len,
        max_frame,
        "message larger than a network frame: not sent"
    );
    false
}

/// The roots reported to consensus for an executed block (a byzantine test build may lie
/// about them).
pub fn reported_roots(shared: &Shared, roots: ExecRoots) -> ExecRoots {
    #[cfg(feature = "byzantine")]
    if let Some(b) = &shared.byzantine {
        return b.lock().unwrap_or_else(|e| e.into_inner()).roots(roots);
    }
    let _ = shared;
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catch_up::tests::certified;

    #[test]
    fn a_message_larger_than_a_frame_is_counted_and_not_sent() {
        let metrics = Metrics::default();
        let message = Message::SyncResponse(vec![certified(1, 2_000)]);
        let len = wire::consensus_bytes(&message).len();
        assert!(
            fits_frame(len, "sync-response", len, &metrics, Some(1)),
            "exactly a frame"
        );
        assert_eq!(Metrics::get(&metrics.unsendable_messages), 0);
        assert!(!fits_frame(
            len,
            "sync-response",
            len - 1,
            &metrics,
            Some(2)
        ));
        assert!(!fits_frame(len, "sync-response", 1_000, &metrics, None));
        assert_eq!(Metrics::get(&metrics.unsendable_messages), 2);
    }
}
