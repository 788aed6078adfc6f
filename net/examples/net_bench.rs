//! Throughput between two lanes-net endpoints on loopback, one direction.
//!
//! ```text
//! cargo build --release --workspace --all-targets
//! /var/tmp/lanes-target/release/examples/net_bench [small_count] [large_count]
//! ```
//!
//! Validator 0 sends `small_count` 200-byte messages (default 500 000) and then `large_count`
//! 1 MiB messages (default 1 000) to validator 1 with `send_wait` (back-pressure, nothing
//! dropped). The clock runs from the first send to the last message received.

use bytes::Bytes;
use lanes_net::{NetConfig, NetHandle, Network, PeerAddr};
use lanes_types::SecretKey;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;

fn main() {
    let mut args = std::env::args().skip(1);
    let small: usize = args
        .next()
        .map_or(500_000, |a| a.parse().expect("small_count"));
    let large: usize = args
        .next()
        .map_or(1_000, |a| a.parse().expect("large_count"));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(small, large));
}

async fn run(small: usize, large: usize) {
    let keys = [
        SecretKey::from_label("bench/v0"),
        SecretKey::from_label("bench/v1"),
    ];
    let sockets = [
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    ];
    let addrs = [
        sockets[0].local_addr().unwrap(),
        sockets[1].local_addr().unwrap(),
    ];
    let mut nodes = Vec::new();
    for (me, socket) in sockets.into_iter().enumerate() {
        let other = 1 - me;
        let peers = vec![PeerAddr {
            index: other as u32,
            public_key: keys[other].public_key(),
            addr: addrs[other],
        }];
        let mut c = NetConfig::new(me as u32, keys[me].clone(), addrs[me], peers);
        c.max_frame = 2 << 20;
        c.queue_len = 4096;
        c.queue_bytes = 32 << 20;
        nodes.push(Network::start_on(c, socket).expect("start"));
    }
    let (rx_handle, mut rx) = nodes.pop().unwrap();
    let (tx_handle, _rx0) = nodes.pop().unwrap();

    // Warm up: the link is up once one message made it.
    tx_handle.send(1, Bytes::from_static(b"hello")).unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no link after 10 s")
        .unwrap();

    println!("lanes-net loopback, one direction, 2 endpoints, send_wait");
    println!(
        "{:>10} {:>9} {:>10} {:>14} {:>10}",
        "size", "messages", "seconds", "messages/s", "MB/s"
    );
    for (size, count) in [(200usize, small), (1 << 20, large)] {
        if count == 0 {
            continue;
        }
        let secs = measure(&tx_handle, &mut rx, size, count).await;
        let mb = (size * count) as f64 / 1e6;
        println!(
            "{:>10} {:>9} {:>10.3} {:>14.0} {:>10.1}",
            size,
            count,
            secs,
            count as f64 / secs,
            mb / secs
        );
    }
    let st = tx_handle.status();
    let p = st.peer(1).unwrap();
    println!(
        "sender: frames_out {} dropped_queue_full {}; receiver frames_in {}",
        p.frames_out,
        p.dropped_queue_full,
        rx_handle.status().peer(0).unwrap().frames_in
    );
    tx_handle.shutdown().await;
    rx_handle.shutdown().await;
}

async fn measure(
    tx: &NetHandle,
    rx: &mut Receiver<lanes_net::Inbound>,
    size: usize,
    count: usize,
) -> f64 {
    let msg = Bytes::from(vec![0xa5u8; size]);
    let start = Instant::now();
    let sender = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..count {
                tx.send_wait(1, msg.clone()).await.unwrap();
            }
        })
    };
    let mut got = 0;
    while got < count {
        let m = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("stalled for 30 s")
            .expect("channel closed");
        assert_eq!(m.msg.len(), size);
        got += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    sender.await.unwrap();
    secs
}
