//! The running endpoint: dialers, the acceptor, readers and the handle.

use crate::config::NetConfig;
use crate::frame::{FrameDecoder, FrameError, LEN_BYTES, PREAMBLE};
use crate::log_limit::{LogLimit, Verdict};
use crate::queue::{OutQueue, Pushed};
use crate::tls::{self, Identity};
use crate::NetError;
use bytes::{BufMut, Bytes, BytesMut};
use lanes_types::{Hash, PublicKey};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Endpoint, Incoming, ReadError, VarInt};
use rand::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

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

/// Most messages written to a stream in one batch.
const MAX_BATCH_MSGS: usize = 256;
/// Most bytes written to a stream in one batch (a single larger message still goes alone).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Messages up to this size are copied next to their length prefix; larger ones are written
/// from their own buffer.
const COPY_LIMIT: usize = 4096;
/// Flow-control window of a stream: the most unread bytes a peer may have in flight to us,
/// so also the receive memory per inbound connection. 8 MiB keeps 1 MB messages flowing
/// (the quinn default, 1.25 MB, held loopback throughput to about two thirds).
const STREAM_WINDOW: u32 = 8 << 20;
/// Most unacknowledged bytes quinn buffers for sending per connection.
const SEND_WINDOW: u64 = 16 << 20;
/// How long [`NetHandle::shutdown`] waits for closing connections to drain. The close frames
/// leave at once; connections still in a handshake can take seconds to drain, and the UDP
/// socket is released only after that, in the background.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);
/// Most bytes taken from a stream per read.
const READ_CHUNK: usize = 256 << 10;

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

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped_queue_full: AtomicU64,
    oversize: AtomicU64,
    garbage: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Peer {
    index: u32,
    key: PublicKey,
    addr: SocketAddr,
    queue: OutQueue,
    connected_out: AtomicBool,
    /// The current inbound connection from this peer: (quinn stable id, connection).
    inbound: Mutex<Option<(usize, Connection)>>,
    /// Signalled when the peer dials us: it is up, so a dial loop sleeping off its back-off
    /// (which grows to `backoff_max` while the peer was down) dials at once.
    dialled_us: tokio::sync::Notify,
    /// Signalled when the peer dialled us again while our link to it is old: it restarted (or
    /// lost its link), so ours is most likely dead too and is replaced at once instead of
    /// waiting for QUIC's idle timeout.
    redial: tokio::sync::Notify,
    /// When our current outbound connection to the peer came up.
    out_since: Mutex<Option<Instant>>,
    counters: Counters,
    /// Bounds the warnings about this peer's links (a faulty validator can reconnect and send
    /// garbage again and again; the counters still count every time).
    link_warnings: LogLimit,
}

impl Peer {
    fn inbound(&self) -> std::sync::MutexGuard<'_, Option<(usize, Connection)>> {
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
fn loggable(why: &str) -> String {
    let mut end = why.len().min(MAX_LOGGED_REASON);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &why[..end])
}

struct Shared {
    me: u32,
    local_addr: SocketAddr,
    max_frame: usize,
    idle_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    max_handshakes: usize,
    /// By ascending index.
    peers: Vec<Arc<Peer>>,
    rejected_handshakes: Arc<AtomicU64>,
    handshakes_in_flight: AtomicUsize,
    /// Bounds the warnings about failed or refused handshakes (anyone can cause them).
    handshake_warnings: LogLimit,
}

impl Shared {
    fn peer(&self, index: u32) -> Option<&Arc<Peer>> {
        self.peers
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|i| &self.peers[i])
    }

    fn peer_by_key(&self, key: &PublicKey) -> Option<&Arc<Peer>> {
        self.peers.iter().find(|p| p.key == *key)
    }
}

/// The node's handle on its network endpoint. Cheap to clone; the endpoint shuts down on
/// [`NetHandle::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct NetHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<Shared>,
    /// Taken on shutdown: the UDP socket is released once no `Endpoint` handle remains.
    endpoint: Mutex<Option<Endpoint>>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            .map(|p| {
                Arc::new(Peer {
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
                })
            })
            .collect();
        peers.sort_by_key(|p| p.index);

        let server_crypto = tls::server_crypto(
            &identity,
            peers.iter().map(|p| p.key).collect(),
            rejected.clone(),
        )?;
        let server_crypto = QuicServerConfig::try_from(server_crypto)
            .map_err(|e| NetError::Config(format!("QUIC server TLS: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(Arc::new(transport(&config, 1)?));
        server.migration(false);

        let client_transport = Arc::new(transport(&config, 0)?);
        let mut client_configs = Vec::with_capacity(peers.len());
        for p in &peers {
            let crypto = tls::client_crypto(&identity, p.key, p.index, p.addr, rejected.clone())?;
            let crypto = QuicClientConfig::try_from(crypto)
                .map_err(|e| NetError::Config(format!("QUIC client TLS: {e}")))?;
            let mut c = quinn::ClientConfig::new(Arc::new(crypto));
            c.transport_config(client_transport.clone());
            client_configs.push(c);
        }

        // A reset key derived from the validator key: after a restart on the same address,
        // stateless resets for the previous incarnation's connections are recognised by peers.
        let reset_key = Hash::tagged("lanes/net/stateless-reset", &config.key.seed());
        let endpoint_config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &reset_key.0,
        )));
        let endpoint = {
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
            })?
        };

        let shared = Arc::new(Shared {
            me: config.me,
            local_addr,
            max_frame: config.max_frame,
            idle_timeout: config.idle_timeout,
            backoff_min: config.backoff_min,
            backoff_max: config.backoff_max,
            max_handshakes: config.max_handshakes,
            peers,
            rejected_handshakes: rejected,
            handshakes_in_flight: AtomicUsize::new(0),
            handshake_warnings: LogLimit::new(HANDSHAKE_WARNING_WINDOW, HANDSHAKE_WARNINGS),
        });
        let (tx, rx) = mpsc::channel(config.inbound_len);
        // Every log line of this endpoint carries its validator index.
        let span = tracing::info_span!("net", me = config.me);
        let mut tasks = JoinSet::new();
        tasks.spawn_on(
            accept_loop(shared.clone(), endpoint.clone(), tx).instrument(span.clone()),
            &runtime,
        );
        for (peer, cfg) in shared.peers.iter().zip(client_configs) {
            tasks.spawn_on(
                dial_loop(shared.clone(), peer.clone(), endpoint.clone(), cfg)
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
        let handle = NetHandle {
            inner: Arc::new(HandleInner {
                shared,
                endpoint: Mutex::new(Some(endpoint)),
                tasks: Mutex::new(Some(tasks)),
            }),
        };
        Ok((handle, rx))
    }
}

impl NetHandle {
    /// This validator's index.
    pub fn me(&self) -> u32 {
        self.inner.shared.me
    }

    /// The bound UDP address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }

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
        let s = &self.inner.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStatus {
            me: s.me,
            local_addr: s.local_addr,
            rejected_handshakes: get(&s.rejected_handshakes),
            peers: s
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

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

/// An outbound link older than this is assumed dead when its peer dials us anew.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// Keeps a connection to one peer and feeds it from the peer's queue, forever.
async fn dial_loop(
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

/// The validator key in a connection's peer certificate.
fn peer_key(conn: &Connection) -> Option<PublicKey> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::certificate_key(certs.first()?)
}

/// Accepts connections until the endpoint closes; each one is served by its own task, owned
/// here so that aborting this task aborts them all.
async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint, tx: mpsc::Sender<Inbound>) {
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

async fn serve_incoming(shared: Arc<Shared>, incoming: Incoming, tx: mpsc::Sender<Inbound>) {
    let addr = incoming.remote_address();
    let conn = {
        let _slot = HandshakeSlot(&shared.handshakes_in_flight);
        let connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                handshake_warning(&shared, addr, &e.to_string());
                return;
            }
        };
        match tokio::time::timeout(shared.idle_timeout * 2, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                handshake_warning(&shared, addr, &e.to_string());
                return;
            }
            Err(_) => {
                handshake_warning(&shared, addr, "timed out");
                return;
            }
        }
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
    if let Some((_, old)) = peer.inbound().replace((id, conn.clone())) {
        old.close(VarInt::from_u32(close_code::REPLACED), b"replaced");
        // The peer replaced its link to us: if ours is not brand new, it predates the peer's
        // restart. (A fresh one is kept, so two validators never keep redialling each other.)
        let ours = *lock(&peer.out_since);
        if ours.is_some_and(|t| t.elapsed() > STALE_AFTER) {
            peer.redial.notify_one();
        }
    }
    debug!(validator = peer.index, peer = %addr, "inbound connection");
    peer.dialled_us.notify_one();

    let end = read_loop(&shared, &peer, &conn, &tx).await;
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
    let mut slot = peer.inbound();
    if slot.as_ref().map(|(i, _)| *i) == Some(id) {
        *slot = None;
    }
}

fn connection_end(e: ConnectionError) -> ReadEnd {
    match e {
        // Raised locally: the peer broke the QUIC rules (stream limits, datagrams, ...).
        ConnectionError::TransportError(t) => ReadEnd::Garbage(format!("QUIC violation: {t}")),
        other => ReadEnd::Closed(other.to_string()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

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

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<NetHandle>();
    }

    #[test]
    fn starting_outside_a_runtime_is_an_error() {
        let key = lanes_types::SecretKey::from_label("no-runtime");
        let config = NetConfig::new(0, key, "127.0.0.1:0".parse().unwrap(), vec![]);
        assert!(matches!(Network::start(config), Err(NetError::NoRuntime)));
    }

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
