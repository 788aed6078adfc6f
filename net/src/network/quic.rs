//! QUIC and TLS settings of the endpoint: transport limits, the server configuration (any
//! other validator's key), one client configuration per peer (that peer's key only), and the
//! endpoint itself with its stateless-reset key.

use super::shared::Peer;
use crate::config::NetConfig;
use crate::tls::{self, Identity};
use crate::NetError;
use lanes_types::Hash;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, VarInt};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Flow-control window of a stream: the most unread bytes a peer may have in flight to us,
/// so also the receive memory per inbound connection. 8 MiB keeps 1 MB messages flowing
/// (the quinn default, 1.25 MB, held loopback throughput to about two thirds).
const STREAM_WINDOW: u32 = 8 << 20;
/// Most unacknowledged bytes quinn buffers for sending per connection.
const SEND_WINDOW: u64 = 16 << 20;

/// The server side: accepts any other validator's key, one unidirectional stream per
/// connection, no migration.
pub(super) fn server_config(
    config: &NetConfig,
    identity: &Identity,
    peers: &[Arc<Peer>],
    rejected: Arc<AtomicU64>,
) -> Result<quinn::ServerConfig, NetError> {
    let server_crypto =
        tls::server_crypto(identity, peers.iter().map(|p| p.key).collect(), rejected)?;
    let server_crypto = QuicServerConfig::try_from(server_crypto)
        .map_err(|e| NetError::Config(format!("QUIC server TLS: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(Arc::new(transport(config, 1)?));
    server.migration(false);
    Ok(server)
}

/// One client configuration per peer (in `peers`' order), each accepting only that peer's
/// key; the peer may open no stream.
pub(super) fn client_configs(
    config: &NetConfig,
    identity: &Identity,
    peers: &[Arc<Peer>],
    rejected: &Arc<AtomicU64>,
) -> Result<Vec<quinn::ClientConfig>, NetError> {
    let client_transport = Arc::new(transport(config, 0)?);
    let mut client_configs = Vec::with_capacity(peers.len());
    for p in peers {
        let crypto = tls::client_crypto(identity, p.key, p.index, p.addr, rejected.clone())?;
        let crypto = QuicClientConfig::try_from(crypto)
            .map_err(|e| NetError::Config(format!("QUIC client TLS: {e}")))?;
        let mut c = quinn::ClientConfig::new(Arc::new(crypto));
        c.transport_config(client_transport.clone());
        client_configs.push(c);
    }
    Ok(client_configs)
}

/// The endpoint on `socket` (bound to `local_addr`), serving `server`, on `runtime`.
pub(super) fn endpoint(
    config: &NetConfig,
    server: quinn::ServerConfig,
    socket: UdpSocket,
    local_addr: SocketAddr,
    runtime: &tokio::runtime::Handle,
) -> Result<Endpoint, NetError> {
    // A reset key derived from the validator key: after a restart on the same address,
    // stateless resets for the previous incarnation's connections are recognised by peers.
    let reset_key = Hash::tagged("lanes/net/stateless-reset", &config.key.seed());
    let endpoint_config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset_key.0,
    )));
    let _guard = runtime.enter();
    Endpoint::new(
        endpoint_config,
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| NetError::Bind {
        addr: local_addr,
        source,
    })
}

/// QUIC transport settings; `accept_uni` is how many unidirectional streams the peer may open
/// (1 on connections we accept, 0 on connections we dial).
fn transport(config: &NetConfig, accept_uni: u32) -> Result<quinn::TransportConfig, NetError> {
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| NetError::Config(format!("idle_timeout {:?}", config.idle_timeout)))?;
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.keep_alive))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(accept_uni))
        .datagram_receive_buffer_size(None)
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .send_window(SEND_WINDOW);
    Ok(t)
}
