//! The node's handle on a running endpoint: sending (dropping the oldest when a queue is
//! full, or waiting for room), status, and shutdown.

use super::close_code;
use super::shared::{bump, lock, Peer, Shared};
use super::status::NetStatus;
use crate::queue::Pushed;
use crate::NetError;
use bytes::Bytes;
use quinn::{Endpoint, VarInt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::{debug, info};

/// How long [`NetHandle::shutdown`] waits for closing connections to drain. The close frames
/// leave at once; connections still in a handshake can take seconds to drain, and the UDP
/// socket is released only after that, in the background.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// The node's handle on its network endpoint. Cheap to clone; the endpoint shuts down on
/// [`NetHandle::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct NetHandle {
    inner: Arc<HandleInner>,
}

/// What the clones of a [`NetHandle`] share; dropping the last one stops the endpoint.
struct HandleInner {
    shared: Arc<Shared>,
    /// Taken on shutdown: the UDP socket is released once no `Endpoint` handle remains.
    endpoint: Mutex<Option<Endpoint>>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        for p in &self.shared.peers {
            p.queue.close();
        }
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        }
        // Dropping the JoinSet aborts the dialers and the acceptor (and with it the readers).
    }
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NetHandle(validator {} on {})",
            self.inner.shared.me, self.inner.shared.local_addr
        )
    }
}

impl NetHandle {
    /// The handle on a started endpoint: its shared state, the endpoint and its tasks.
    pub(super) fn new(shared: Arc<Shared>, endpoint: Endpoint, tasks: JoinSet<()>) -> NetHandle {
        NetHandle {
            inner: Arc::new(HandleInner {
                shared,
                endpoint: Mutex::new(Some(endpoint)),
                tasks: Mutex::new(Some(tasks)),
            }),
        }
    }

    /// This validator's index.
    pub fn me(&self) -> u32 {
        self.inner.shared.me
    }

    /// The bound UDP address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }

    /// Refuses a message above the frame limit; the peer `to` (`None`: every peer).
    fn check(&self, to: Option<u32>, msg: &Bytes) -> Result<Option<&Arc<Peer>>, NetError> {
        let max = self.inner.shared.max_frame;
        if msg.len() > max {
            return Err(NetError::FrameTooLarge {
                len: msg.len(),
                max,
            });
        }
        match to {
            Some(i) => self
                .inner
                .shared
                .peer(i)
                .map(Some)
                .ok_or(NetError::UnknownPeer(i)),
            None => Ok(None),
        }
    }

    /// Queues `msg` for `peer`, counting the messages its full queue dropped.
    fn push(peer: &Peer, msg: Bytes) -> Result<(), NetError> {
        match peer.queue.push(msg) {
            Pushed::Queued { evicted } => {
                if evicted > 0 {
                    bump(&peer.counters.dropped_queue_full, evicted as u64);
                    debug!(
                        validator = peer.index,
                        evicted, "outbound queue full, dropped oldest"
                    );
                }
                Ok(())
            }
            Pushed::Closed => Err(NetError::Shutdown),
        }
    }

    /// Queues `msg` for validator `to` without waiting. If its queue is full, the oldest
    /// queued message is dropped (and counted). Errors: unknown peer, message above
    /// `max_frame`, shut down.
    pub fn send(&self, to: u32, msg: Bytes) -> Result<(), NetError> {
        let peer = self
            .check(Some(to), &msg)?
            .ok_or(NetError::UnknownPeer(to))?;
        Self::push(peer, msg)
    }

    /// Queues `msg` for validator `to`, waiting while its queue is full instead of dropping.
    pub async fn send_wait(&self, to: u32, msg: Bytes) -> Result<(), NetError> {
        let peer = self
            .check(Some(to), &msg)?
            .ok_or(NetError::UnknownPeer(to))?;
        match peer.queue.push_wait(msg).await {
            Pushed::Queued { .. } => Ok(()),
            Pushed::Closed => Err(NetError::Shutdown),
        }
    }

    /// Queues `msg` for every peer (not this validator), as [`NetHandle::send`] does.
    pub fn broadcast(&self, msg: Bytes) -> Result<(), NetError> {
        self.check(None, &msg)?;
        for peer in &self.inner.shared.peers {
            Self::push(peer, msg.clone())?;
        }
        Ok(())
    }

    /// Links and counters now.
    pub fn status(&self) -> NetStatus {
        self.inner.shared.status()
    }

    /// Closes every connection (peers see close code [`close_code::SHUTDOWN`]), stops all
    /// tasks, drops queued messages and waits briefly (250 ms at most) for the connections to
    /// drain. Later sends fail with [`NetError::Shutdown`]; the inbound channel ends. The UDP
    /// socket is released once every closing connection has drained, which for connections
    /// caught mid-handshake can take a few seconds after this returns.
    pub async fn shutdown(&self) {
        let s = &self.inner.shared;
        for p in &s.peers {
            p.queue.close();
        }
        let endpoint = lock(&self.inner.endpoint).take();
        if let Some(e) = &endpoint {
            e.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        }
        let tasks = lock(&self.inner.tasks).take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        for p in &s.peers {
            p.connected_out.store(false, Ordering::Relaxed);
            *p.inbound() = None;
        }
        if let Some(e) = endpoint {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, e.wait_idle()).await;
        }
        info!(me = s.me, "network shut down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<NetHandle>();
    }
}
