//! The running endpoint, one module per side of it: `shared` (what the tasks share), `quic`
//! (QUIC and TLS settings, the endpoint), `outbound` (dialers and senders), `inbound` (the
//! acceptor and readers), `handle` (the node's [`NetHandle`]) and `status`.

mod handle;
mod inbound;
mod outbound;
mod quic;
mod shared;
mod status;

pub use handle::NetHandle;
pub use status::{NetStatus, PeerStatus};

use crate::config::NetConfig;
use crate::tls::Identity;
use crate::NetError;
use bytes::Bytes;
use shared::{Peer, Shared};
use std::net::UdpSocket;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, Instrument};

/// Application close codes this crate puts on QUIC connections it closes.
pub mod close_code {
    /// The endpoint is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// The peer announced a frame above the limit.
    pub const OVERSIZE: u32 = 1;
    /// The peer sent bytes that are not lanes-net frames.
    pub const GARBAGE: u32 = 2;
    /// A newer connection from the same validator replaced this one.
    pub const REPLACED: u32 = 3;
    /// The link failed (stream or connection error) and is being redialed.
    pub const LINK_FAILED: u32 = 4;
}

/// A message received from a validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The sender's index in the validator set (authenticated by its TLS key).
    pub from: u32,
    /// The message.
    pub msg: Bytes,
}

/// The entry point: starts a validator's endpoint.
#[derive(Debug)]
pub struct Network;

impl Network {
    /// Binds `config.listen` and starts the endpoint: one dialer per peer and an acceptor.
    /// Must be called inside a tokio runtime. Returns the handle and the channel of received
    /// messages (it ends after shutdown).
    pub fn start(config: NetConfig) -> Result<(NetHandle, mpsc::Receiver<Inbound>), NetError> {
        config.validate()?;
        let socket = UdpSocket::bind(config.listen).map_err(|source| NetError::Bind {
            addr: config.listen,
            source,
        })?;
        Network::start_on(config, socket)
    }

    /// Like [`Network::start`] on an already bound socket (`config.listen` is ignored); lets
    /// callers learn every address before any endpoint starts.
    pub fn start_on(
        config: NetConfig,
        socket: UdpSocket,
    ) -> Result<(NetHandle, mpsc::Receiver<Inbound>), NetError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        let local_addr = socket.local_addr().map_err(|source| NetError::Bind {
            addr: config.listen,
            source,
        })?;
        let identity = Identity::new(&config.key)?;
        let rejected = Arc::new(AtomicU64::new(0));
        let mut peers: Vec<Arc<Peer>> = config
            .peers
            .iter()
            .map(|p| Arc::new(Peer::new(p, &config)))
            .collect();
        peers.sort_by_key(|p| p.index);

        let server = quic::server_config(&config, &identity, &peers, rejected.clone())?;
        let client_configs = quic::client_configs(&config, &identity, &peers, &rejected)?;
        let endpoint = quic::endpoint(&config, server, socket, local_addr, &runtime)?;
        let shared = Arc::new(Shared::new(&config, local_addr, peers, rejected));
        let (tx, rx) = mpsc::channel(config.inbound_len);
        // Every log line of this endpoint carries its validator index.
        let span = tracing::info_span!("net", me = config.me);
        let mut tasks = JoinSet::new();
        tasks.spawn_on(
            inbound::accept_loop(shared.clone(), endpoint.clone(), tx).instrument(span.clone()),
            &runtime,
        );
        for (peer, cfg) in shared.peers.iter().zip(client_configs) {
            tasks.spawn_on(
                outbound::dial_loop(shared.clone(), peer.clone(), endpoint.clone(), cfg)
                    .instrument(span.clone()),
                &runtime,
            );
        }
        info!(
            me = config.me,
            addr = %local_addr,
            peers = shared.peers.len(),
            "network started"
        );
        Ok((NetHandle::new(shared, endpoint, tasks), rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_outside_a_runtime_is_an_error() {
        let key = lanes_types::SecretKey::from_label("no-runtime");
        let config = NetConfig::new(0, key, "127.0.0.1:0".parse().unwrap(), vec![]);
        assert!(matches!(Network::start(config), Err(NetError::NoRuntime)));
    }
}
