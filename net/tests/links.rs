//! lanes-net on real loopback sockets: all-pairs exchange, identity pinning both ways,
//! misbehaving peers, queue policy, restart and shutdown.

use bytes::{BufMut, Bytes, BytesMut};
use lanes_net::frame::PREAMBLE;
use lanes_net::tls::{self, Identity};
use lanes_net::{close_code, Inbound, NetConfig, NetError, NetHandle, Network, PeerAddr};
use lanes_types::SecretKey;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const MAX_FRAME: usize = 64 << 10;
const WAIT: Duration = Duration::from_secs(10);

/// Fails a test that runs for more than a minute instead of letting it hang.
async fn guard(test: impl std::future::Future<Output = ()>) {
    timeout(Duration::from_secs(60), test)
        .await
        .expect("test hung for 60 s");
}

/// A running validator: its handle and its inbound channel.
type Node = (NetHandle, Receiver<Inbound>);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn keys(test: &str, n: usize) -> Vec<SecretKey> {
    (0..n)
        .map(|i| SecretKey::from_label(&format!("{test}/v{i}")))
        .collect()
}

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// An address nobody listens on (bound, read, released).
fn dead_addr() -> SocketAddr {
    bind().local_addr().unwrap()
}

/// Validator `me`'s configuration with fast timings for tests.
fn config(me: usize, keys: &[SecretKey], addrs: &[SocketAddr]) -> NetConfig {
    let peers = keys
        .iter()
        .zip(addrs)
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(i, (k, a))| PeerAddr {
            index: i as u32,
            public_key: k.public_key(),
            addr: *a,
        })
        .collect();
    let mut c = NetConfig::new(me as u32, keys[me].clone(), addrs[me], peers);
    c.max_frame = MAX_FRAME;
    c.queue_bytes = 16 * MAX_FRAME;
    c.idle_timeout = Duration::from_secs(2);
    c.keep_alive = Duration::from_millis(500);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(300);
    c
}

/// Starts the validators in `run` (indexes into `keys`); the others get an address nobody
/// listens on.
fn start(keys: &[SecretKey], run: &[usize]) -> (Vec<SocketAddr>, Vec<Option<Node>>) {
    let mut sockets: Vec<Option<UdpSocket>> = (0..keys.len()).map(|_| None).collect();
    let mut addrs = Vec::new();
    for (i, s) in sockets.iter_mut().enumerate() {
        if run.contains(&i) {
            let sock = bind();
            addrs.push(sock.local_addr().unwrap());
            *s = Some(sock);
        } else {
            addrs.push(dead_addr());
        }
    }
    let nodes = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.map(|s| Network::start_on(config(i, keys, &addrs), s).unwrap()))
        .collect();
    (addrs, nodes)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn recv(rx: &mut Receiver<Inbound>) -> Inbound {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a message")
        .expect("inbound channel closed")
}

/// Nothing arrives for a while.
async fn quiet(rx: &mut Receiver<Inbound>, d: Duration) {
    if let Ok(Some(m)) = timeout(d, rx.recv()).await {
        panic!("unexpected message {m:?}");
    }
}

async fn ping(from: &NetHandle, to: &mut Node, text: &str) {
    from.send(to.0.me(), Bytes::copy_from_slice(text.as_bytes()))
        .unwrap();
    let m = recv(&mut to.1).await;
    assert_eq!((m.from, &m.msg[..]), (from.me(), text.as_bytes()));
}

/// A bare quinn client that authenticates as `as_key` and expects `server_key`.
async fn raw_connect(
    as_key: &SecretKey,
    server_key: &SecretKey,
    server: SocketAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let identity = Identity::new(as_key).unwrap();
    let crypto = tls::client_crypto(
        &identity,
        server_key.public_key(),
        0,
        server,
        Arc::new(AtomicU64::new(0)),
    )
    .unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            server,
            tls::SERVER_NAME,
        )
        .unwrap();
    let conn = timeout(WAIT, connecting).await.expect("handshake hung")?;
    Ok((endpoint, conn))
}

fn app_close_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_exchange_in_all_directions() {
    guard(async {
        init_logs();
        let keys = keys("all", 4);
        let (_, nodes) = start(&keys, &[0, 1, 2, 3]);
        let mut nodes: Vec<_> = nodes.into_iter().map(Option::unwrap).collect();
        // Sent before any link is up: queued, then delivered in order.
        for (i, (h, _)) in nodes.iter().enumerate() {
            for j in 0..4u32 {
                if j as usize == i {
                    continue;
                }
                for k in 0..10 {
                    h.send(j, Bytes::from(format!("{i}->{j}#{k}"))).unwrap();
                }
            }
            h.broadcast(Bytes::from(format!("{i}->all"))).unwrap();
        }
        for (j, (h, rx)) in nodes.iter_mut().enumerate() {
            let mut next = [0usize; 4];
            for _ in 0..33 {
                let m = recv(rx).await;
                let i = m.from as usize;
                assert_ne!(i, j);
                let want = if next[i] < 10 {
                    format!("{i}->{j}#{}", next[i])
                } else {
                    format!("{i}->all")
                };
                assert_eq!(std::str::from_utf8(&m.msg).unwrap(), want, "order from {i}");
                next[i] += 1;
            }
            quiet(rx, Duration::from_millis(100)).await;
            let st = h.status();
            assert_eq!(st.peers.len(), 3);
            for p in &st.peers {
                assert_eq!((p.frames_in, p.frames_out), (11, 11), "{p:?}");
                assert!(p.connected_out && p.connected_in, "{p:?}");
                assert_eq!(
                    p.dropped_queue_full + p.oversize_disconnects + p.garbage_disconnects,
                    0
                );
            }
            assert_eq!(st.rejected_handshakes, 0);
        }
        // The API refuses what it cannot deliver.
        let h = &nodes[0].0;
        assert!(matches!(
            h.send(0, Bytes::new()),
            Err(NetError::UnknownPeer(0))
        ));
        assert!(matches!(
            h.send(7, Bytes::new()),
            Err(NetError::UnknownPeer(7))
        ));
        let big = Bytes::from(vec![0u8; MAX_FRAME + 1]);
        assert!(matches!(
            h.send(1, big.clone()),
            Err(NetError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            h.broadcast(big),
            Err(NetError::FrameTooLarge { .. })
        ));
        // An empty message and one of exactly max_frame bytes are fine.
        h.send(1, Bytes::new()).unwrap();
        h.send(1, Bytes::from(vec![5u8; MAX_FRAME])).unwrap();
        assert_eq!(recv(&mut nodes[1].1).await.msg.len(), 0);
        assert_eq!(recv(&mut nodes[1].1).await.msg.len(), MAX_FRAME);
        for (h, _) in &nodes {
            h.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outside_the_validator_set_cannot_connect() {
    guard(async {
        init_logs();
        let keys = keys("stranger", 4);
        let (addrs, mut nodes) = start(&keys, &[0, 1]);
        let stranger = SecretKey::from_label("stranger/outsider");
        let before = nodes[0].as_ref().unwrap().0.status().rejected_handshakes;
        // The client may consider its side done before the server has checked its certificate;
        // either way the server closes the connection with a TLS alert.
        let err = match raw_connect(&stranger, &keys[0], addrs[0]).await {
            Err(e) => e,
            Ok((_ep, conn)) => timeout(WAIT, conn.closed()).await.unwrap(),
        };
        assert!(
            matches!(err, quinn::ConnectionError::ConnectionClosed(_)),
            "{err:?}"
        );
        let (h0, rx0) = nodes[0].as_mut().unwrap();
        let h0 = h0.clone();
        wait_until("the rejection to be counted", || {
            h0.status().rejected_handshakes > before
        })
        .await;
        quiet(rx0, Duration::from_millis(100)).await;
        // The validators still talk.
        let h1 = nodes[1].as_ref().unwrap().0.clone();
        ping(&h1, nodes[0].as_mut().unwrap(), "still here").await;
        ping(&h0, nodes[1].as_mut().unwrap(), "me too").await;
        // A validator key is accepted by the same server.
        let (_ep, conn) = raw_connect(&keys[3], &keys[0], addrs[0]).await.unwrap();
        conn.close(0u32.into(), b"bye");
        for (h, _) in nodes.iter().flatten() {
            h.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_refuses_a_server_with_the_wrong_key() {
    guard(async {
        init_logs();
        let keys = keys("impostor", 4);
        // Validator 1's address is held by an impostor with another key.
        let impostor_socket = bind();
        let impostor_addr = impostor_socket.local_addr().unwrap();
        let (sockets, mut addrs): (Vec<_>, Vec<_>) = (0..4)
            .map(|_| {
                let s = bind();
                let a = s.local_addr().unwrap();
                (s, a)
            })
            .unzip();
        addrs[1] = impostor_addr;
        let mut sockets = sockets.into_iter().map(Some).collect::<Vec<_>>();
        let mut n0 =
            Network::start_on(config(0, &keys, &addrs), sockets[0].take().unwrap()).unwrap();
        let mut n2 =
            Network::start_on(config(2, &keys, &addrs), sockets[2].take().unwrap()).unwrap();
        let impostor_key = SecretKey::from_label("impostor/fake-v1");
        let mut impostor_cfg = NetConfig::new(1, impostor_key, impostor_addr, vec![]);
        impostor_cfg.idle_timeout = Duration::from_secs(2);
        impostor_cfg.keep_alive = Duration::from_millis(500);
        let (impostor, mut impostor_rx) = Network::start_on(impostor_cfg, impostor_socket).unwrap();

        n0.0.send(1, Bytes::from_static(b"for validator 1 only"))
            .unwrap();
        let h0 = n0.0.clone();
        wait_until("validator 0 to refuse the impostor", || {
            h0.status().rejected_handshakes >= 1
        })
        .await;
        let st = h0.status();
        let p1 = st.peer(1).unwrap();
        assert!(
            !p1.connected_out && p1.connects == 0 && p1.frames_out == 0,
            "{p1:?}"
        );
        // The dialer aborted before presenting its own certificate: the impostor saw nothing to refuse.
        assert_eq!(impostor.status().rejected_handshakes, 0);
        quiet(&mut impostor_rx, Duration::from_millis(300)).await;
        // Validator 0 keeps working with the others.
        ping(&n2.0.clone(), &mut n0, "hello 0").await;
        ping(&h0, &mut n2, "hello 2").await;
        impostor.shutdown().await;
        n0.0.shutdown().await;
        n2.0.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_garbage_disconnect_only_the_offender() {
    guard(async {
        init_logs();
        let keys = keys("junk", 4);
        let (addrs, mut nodes) = start(&keys, &[0, 1, 2]);
        let h0 = nodes[0].as_ref().unwrap().0.clone();

        // Validator 3's key, driven by hand: one good frame, then a length above the limit.
        let (_ep, conn) = raw_connect(&keys[3], &keys[0], addrs[0]).await.unwrap();
        let mut s = conn.open_uni().await.unwrap();
        let mut wire = BytesMut::new();
        wire.put_slice(&PREAMBLE);
        wire.put_u32(5);
        wire.put_slice(b"hello");
        s.write_all(&wire).await.unwrap();
        let m = recv(&mut nodes[0].as_mut().unwrap().1).await;
        assert_eq!((m.from, &m.msg[..]), (3, &b"hello"[..]));
        s.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes())
            .await
            .unwrap();
        let closed = timeout(WAIT, conn.closed()).await.unwrap();
        assert_eq!(
            app_close_code(&closed),
            Some(close_code::OVERSIZE as u64),
            "{closed:?}"
        );

        // Again, with bytes that are not lanes-net at all.
        let (_ep2, conn) = raw_connect(&keys[3], &keys[0], addrs[0]).await.unwrap();
        let mut s = conn.open_uni().await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: validator\r\n\r\n")
            .await
            .unwrap();
        let closed = timeout(WAIT, conn.closed()).await.unwrap();
        assert_eq!(
            app_close_code(&closed),
            Some(close_code::GARBAGE as u64),
            "{closed:?}"
        );

        // And a stream that stops in the middle of a frame.
        let (_ep3, conn) = raw_connect(&keys[3], &keys[0], addrs[0]).await.unwrap();
        let mut s = conn.open_uni().await.unwrap();
        s.write_all(&PREAMBLE).await.unwrap();
        s.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        s.finish().unwrap();
        let closed = timeout(WAIT, conn.closed()).await.unwrap();
        assert_eq!(
            app_close_code(&closed),
            Some(close_code::GARBAGE as u64),
            "{closed:?}"
        );

        let st = h0.status();
        let p3 = st.peer(3).unwrap();
        assert_eq!(
            (
                p3.oversize_disconnects,
                p3.garbage_disconnects,
                p3.frames_in
            ),
            (1, 2, 1)
        );
        assert!(!p3.connected_in);
        assert_eq!(
            (st.oversize_disconnects(), st.garbage_disconnects()),
            (1, 2)
        );
        // Everyone else is unaffected.
        let h1 = nodes[1].as_ref().unwrap().0.clone();
        let h2 = nodes[2].as_ref().unwrap().0.clone();
        ping(&h1, nodes[0].as_mut().unwrap(), "from 1").await;
        ping(&h2, nodes[0].as_mut().unwrap(), "from 2").await;
        ping(&h0, nodes[1].as_mut().unwrap(), "to 1").await;
        ping(&h0, nodes[2].as_mut().unwrap(), "to 2").await;
        for p in [1, 2] {
            let p = h0.status().peer(p).cloned().unwrap();
            assert!(p.connected_in && p.connected_out);
            assert_eq!(p.oversize_disconnects + p.garbage_disconnects, 0);
        }
        for (h, _) in nodes.iter().flatten() {
            h.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_and_a_late_peer_gets_the_newest() {
    guard(async {
        init_logs();
        let keys = keys("queue", 2);
        let s0 = bind();
        let s1 = bind(); // bound now, started later: until then nobody answers on it
        let addrs = [s0.local_addr().unwrap(), s1.local_addr().unwrap()];
        let mut c0 = config(0, &keys, &addrs);
        c0.queue_len = 4;
        let (h0, _rx0) = Network::start_on(c0, s0).unwrap();
        for k in 0..10 {
            h0.send(1, Bytes::from(format!("m{k}"))).unwrap();
        }
        let p1 = h0.status().peer(1).cloned().unwrap();
        assert_eq!((p1.queued, p1.dropped_queue_full), (4, 6));
        let (h1, mut rx1) = Network::start_on(config(1, &keys, &addrs), s1).unwrap();
        for k in 6..10 {
            let m = recv(&mut rx1).await;
            assert_eq!(m.msg, Bytes::from(format!("m{k}")));
        }
        quiet(&mut rx1, Duration::from_millis(100)).await;
        // send_wait applies back-pressure instead of dropping.
        for k in 0..20 {
            timeout(WAIT, h0.send_wait(1, Bytes::from(format!("w{k}"))))
                .await
                .unwrap()
                .unwrap();
        }
        for k in 0..20 {
            assert_eq!(recv(&mut rx1).await.msg, Bytes::from(format!("w{k}")));
        }
        assert_eq!(h0.status().peer(1).unwrap().dropped_queue_full, 6);
        h1.shutdown().await;
        h0.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reconnected_without_intervention() {
    guard(async {
        init_logs();
        let keys = keys("restart", 4);
        let (addrs, nodes) = start(&keys, &[0, 1, 2, 3]);
        let mut nodes: Vec<_> = nodes.into_iter().map(Option::unwrap).collect();
        let h0 = nodes[0].0.clone();
        let h1 = nodes[1].0.clone();
        ping(&h0, &mut nodes[1], "before").await;
        ping(&h1, &mut nodes[0], "before").await;

        h1.shutdown().await;
        assert!(matches!(h1.send(0, Bytes::new()), Err(NetError::Shutdown)));
        assert!(timeout(WAIT, nodes[1].1.recv()).await.unwrap().is_none());
        wait_until("validator 0 to notice", || {
            !h0.status().peer(1).unwrap().connected_out
        })
        .await;

        // Same key, same address, fresh process state.
        let start = Instant::now();
        let restarted = loop {
            match Network::start(config(1, &keys, &addrs)) {
                Ok(n) => break n,
                Err(NetError::Bind { .. }) if start.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("restart failed: {e}"),
            }
        };
        nodes[1] = restarted;
        let h1 = nodes[1].0.clone();
        wait_until("everyone to reconnect to validator 1", || {
            nodes.iter().enumerate().all(|(i, (h, _))| {
                let st = h.status();
                st.peers.iter().all(|p| p.connected_out && p.connected_in)
                    && (i == 1 || st.peer(1).unwrap().connects >= 2)
            })
        })
        .await;
        for j in [0usize, 2, 3] {
            let hj = nodes[j].0.clone();
            ping(&hj, &mut nodes[1], "after").await;
            ping(&h1, &mut nodes[j], "after").await;
        }
        for (h, _) in &nodes {
            h.shutdown().await;
        }
    })
    .await;
}
