//! The fault proxy: a UDP relay on every validator-to-validator path.
//!
//! For each ordered pair (i, j) the proxy listens on its own loopback port; validator i's
//! configuration points its peer j at that port, and the proxy relays i's packets to j's real
//! address from a socket of its own, and j's answers back to i. QUIC runs end to end through
//! it (the proxy never looks inside packets), so each direction between two validators can be
//! faulted on its own: packets from `src` to `dst` are dropped while (src, dst) is blocked, and
//! otherwise dropped, delayed (with jitter), duplicated or reordered as [`Faults`] says. The
//! faults change at run time; [`Proxy::heal`] clears them.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// Largest datagram relayed (QUIC's are at most ~1,500 bytes on loopback's default MTU use).
const MAX_DATAGRAM: usize = 65_536;

/// What the proxy does to packets, for every path at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Probability of dropping a packet.
    pub drop: f64,
    /// Delay added to every packet, milliseconds.
    pub delay_ms: u64,
    /// Random extra delay, up to this many milliseconds.
    pub jitter_ms: u64,
    /// Probability of sending a packet twice.
    pub duplicate: f64,
    /// Probability of holding a packet back long enough to arrive after later ones.
    pub reorder: f64,
    /// Directions (from validator, to validator) whose packets are all dropped.
    pub blocked: BTreeSet<(u32, u32)>,
}

impl Faults {
    /// Blocks both directions between every node of `a` and every node of `b`.
    pub fn partition(&mut self, a: &[u32], b: &[u32]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    /// Blocks packets from every node of `from` to every node of `to` (one way).
    pub fn block_one_way(&mut self, from: &[u32], to: &[u32]) {
        for &x in from {
            for &y in to {
                self.blocked.insert((x, y));
            }
        }
    }
}

/// Packets relayed and dropped.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Packets sent on (duplicates count twice).
    pub relayed: AtomicU64,
    /// Packets dropped by a fault.
    pub dropped: AtomicU64,
}

struct Shared {
    faults: Mutex<(Faults, StdRng)>,
    counters: ProxyCounters,
}

/// The running proxy (its own single-threaded tokio runtime on a thread of its own).
pub struct Proxy {
    shared: Arc<Shared>,
    /// Listen address of path (i, j) at `i * n + j`.
    fronts: Vec<Option<SocketAddr>>,
    n: usize,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Starts relays for every ordered pair of the validators listening at `real`, with fault
    /// randomness seeded by `seed`.
    pub fn start(real: &[SocketAddr], seed: u64) -> Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chaos-proxy")
            .enable_all()
            .build()
            .context("starting the proxy runtime")?;
        let shared = Arc::new(Shared {
            faults: Mutex::new((Faults::default(), StdRng::seed_from_u64(seed))),
            counters: ProxyCounters::default(),
        });
        let n = real.len();
        let mut fronts = vec![None; n * n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let (front, back) = runtime.block_on(async {
                    let front = UdpSocket::bind("127.0.0.1:0").await?;
                    let back = UdpSocket::bind("127.0.0.1:0").await?;
                    back.connect(real[j]).await?;
                    anyhow::Ok((Arc::new(front), Arc::new(back)))
                })?;
                fronts[i * n + j] = Some(front.local_addr()?);
                let (from, to) = (i as u32, j as u32);
                let client = Arc::new(Mutex::new(None));
                runtime.spawn(relay_out(
                    shared.clone(),
                    front.clone(),
                    back.clone(),
                    client.clone(),
                    from,
                    to,
                ));
                runtime.spawn(relay_back(shared.clone(), front, back, client, to, from));
            }
        }
        Ok(Proxy {
            shared,
            fronts,
            n,
            _runtime: runtime,
        })
    }

    /// Where validator `from` reaches validator `to` through the proxy.
    pub fn addr(&self, from: u32, to: u32) -> SocketAddr {
        self.fronts[from as usize * self.n + to as usize].expect("a path between two validators")
    }

    /// Changes the faults.
    pub fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0);
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.set(|f| *f = Faults::default());
    }

    /// Counters so far.
    pub fn counters(&self) -> &ProxyCounters {
        &self.shared.counters
    }
}

/// What to do with one packet from `src` to `dst`: the delays of its copies (none: dropped).
fn decide(shared: &Shared, src: u32, dst: u32) -> Vec<Duration> {
    let mut guard = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
    let (faults, rng) = &mut *guard;
    if faults.blocked.contains(&(src, dst)) || (faults.drop > 0.0 && rng.gen_bool(faults.drop)) {
        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    }
    let copies = if faults.duplicate > 0.0 && rng.gen_bool(faults.duplicate) {
        2
    } else {
        1
    };
    (0..copies)
        .map(|_| {
            let mut ms = faults.delay_ms;
            if faults.jitter_ms > 0 {
                ms += rng.gen_range(0..=faults.jitter_ms);
            }
            if faults.reorder > 0.0 && rng.gen_bool(faults.reorder) {
                ms += rng.gen_range(5..=20 + 2 * faults.delay_ms);
            }
            Duration::from_millis(ms)
        })
        .collect()
}

/// Relays packets from validator `src` (arriving at `front`) to `dst` (through `back`),
/// remembering `src`'s address in `client` for the way back.
async fn relay_out(
    shared: Arc<Shared>,
    front: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    src: u32,
    dst: u32,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, from)) = front.recv_from(&mut buf).await else {
            continue;
        };
        *client.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
        forward(&shared, decide(&shared, src, dst), &buf[..len], &back, None).await;
    }
}

/// Sends one copy of `packet` on `socket` (to `to`, else to its connected peer) per delay:
/// at once for a zero delay, else from a task that sleeps first.
async fn forward(
    shared: &Shared,
    delays: Vec<Duration>,
    packet: &[u8],
    socket: &Arc<UdpSocket>,
    to: Option<SocketAddr>,
) {
    async fn send(socket: &UdpSocket, packet: &[u8], to: Option<SocketAddr>) {
        let _ = match to {
            Some(to) => socket.send_to(packet, to).await,
            None => socket.send(packet).await,
        };
    }
    for delay in delays {
        shared.counters.relayed.fetch_add(1, Ordering::Relaxed);
        if delay.is_zero() {
            send(socket, packet, to).await;
        } else {
            let (socket, packet) = (socket.clone(), packet.to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send(&socket, &packet, to).await;
            });
        }
    }
}

/// Relays `dst`'s answers (arriving at `back`) to validator `src` at its remembered address.
async fn relay_back(
    shared: Arc<Shared>,
    front: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    dst: u32,
    src: u32,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok(len) = back.recv(&mut buf).await else {
            // An ICMP "port unreachable" while the peer is down: keep listening.
            continue;
        };
        let Some(to) = *client.lock().unwrap_or_else(|e| e.into_inner()) else {
            continue;
        };
        forward(
            &shared,
            decide(&shared, dst, src),
            &buf[..len],
            &front,
            Some(to),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two UDP endpoints "validators" 0 and 1 talking through the proxy.
    fn endpoints() -> (std::net::UdpSocket, std::net::UdpSocket, Proxy) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        let proxy = Proxy::start(&[a.local_addr().unwrap(), b.local_addr().unwrap()], 7).unwrap();
        (a, b, proxy)
    }

    fn recv(s: &std::net::UdpSocket) -> Option<Vec<u8>> {
        let mut buf = [0u8; 64];
        s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
    }

    #[test]
    fn packets_pass_both_ways_and_a_partition_drops_them_until_healed() {
        let (a, b, proxy) = endpoints();
        a.send_to(b"ping", proxy.addr(0, 1)).unwrap();
        let (mut buf, _) = ([0u8; 64], ());
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        b.send_to(b"pong", from).unwrap();
        assert_eq!(
            recv(&a).as_deref(),
            Some(&b"pong"[..]),
            "the answer comes back"
        );

        proxy.set(|f| f.partition(&[0], &[1]));
        a.send_to(b"lost", proxy.addr(0, 1)).unwrap();
        assert_eq!(recv(&b), None, "partitioned");
        proxy.heal();
        a.send_to(b"again", proxy.addr(0, 1)).unwrap();
        assert_eq!(recv(&b).as_deref(), Some(&b"again"[..]), "healed");
        assert!(proxy.counters().dropped.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn a_one_way_block_drops_one_direction_only() {
        let (a, b, proxy) = endpoints();
        a.send_to(b"hello", proxy.addr(0, 1)).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = b.recv_from(&mut buf).unwrap();
        proxy.set(|f| f.block_one_way(&[1], &[0]));
        b.send_to(b"blocked", from).unwrap();
        assert_eq!(recv(&a), None, "1 -> 0 is blocked");
        a.send_to(b"open", proxy.addr(0, 1)).unwrap();
        assert_eq!(recv(&b).as_deref(), Some(&b"open"[..]), "0 -> 1 is not");
    }

    #[test]
    fn duplication_and_certain_loss_do_what_they_say() {
        let (a, b, proxy) = endpoints();
        proxy.set(|f| f.duplicate = 1.0);
        a.send_to(b"twice", proxy.addr(0, 1)).unwrap();
        assert_eq!(recv(&b).as_deref(), Some(&b"twice"[..]));
        assert_eq!(recv(&b).as_deref(), Some(&b"twice"[..]));
        proxy.set(|f| {
            f.duplicate = 0.0;
            f.drop = 1.0;
        });
        a.send_to(b"never", proxy.addr(0, 1)).unwrap();
        assert_eq!(recv(&b), None);
    }
}
