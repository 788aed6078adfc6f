//! What the in-process node tests share: a genesis on free loopback ports, the parameters of
//! one validator, a signed transfer, and raw HTTP requests (for answers a typed client would
//! hide: status lines, oversized or chunked bodies, connections held open).

#![allow(dead_code)]

use lanes_executor::tx::{Operation, Transaction};
use lanes_node::api::ApiLimits;
use lanes_node::{fixtures, NodeParams};
use lanes_types::codec::Encode;
use lanes_types::{Bytes, Genesis, SecretKey};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The fixtures' genesis for `keys`, its validators on free loopback UDP ports.
pub fn genesis(label: &str, keys: &[SecretKey]) -> Genesis {
    let mut g = fixtures::genesis(label, keys);
    for v in &mut g.validators {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
        v.address = socket.local_addr().expect("bound").to_string();
    }
    g
}

/// The parameters of validator `index`: its database under `dir`, its API on a free port,
/// behind `api_limits`.
pub fn params(
    g: &Genesis,
    keys: &[SecretKey],
    index: u32,
    dir: &Path,
    api_limits: ApiLimits,
) -> NodeParams {
    NodeParams {
        genesis: g.clone(),
        key: keys[index as usize].clone(),
        index,
        listen: g.validators[index as usize]
            .address
            .parse()
            .expect("an address"),
        api: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.join(format!("v{index}")),
        peers: Default::default(),
        exec_threads: 1,
        log_format: "text".into(),
        retain_blocks: 0,
        api_limits,
        #[cfg(feature = "byzantine")]
        byzantine: None,
    }
}

/// A signed zero-amount transfer from `key` to itself with `nonce`, paying the minimum fee.
pub fn transfer(g: &Genesis, key: &SecretKey, nonce: u64) -> Bytes {
    let tx = Transaction {
        chain_id: g.chain_id.clone(),
        sender: key.public_key(),
        nonce,
        fee: g.params.min_fee,
        op: Operation::Transfer {
            asset: 0,
            to: key.public_key().address(),
            amount: 0,
        },
    };
    Bytes(tx.sign(key).to_bytes())
}

/// Sends one request's head (with `extra` header lines) and returns the open connection.
pub fn send(addr: SocketAddr, method: &str, path: &str, extra: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connects");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    c.write_all(head.as_bytes()).expect("writes");
    c
}

/// Reads a whole answer: its status and body.
pub fn answer(mut c: TcpStream) -> (u16, String) {
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("reads the answer");
    let status = answer[9..12].parse().expect("a status line");
    let body = answer.split_once("\r\n\r\n").map_or("", |x| x.1);
    (status, body.to_string())
}

/// One whole request without a body: its status and body.
pub fn request(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String) {
    answer(send(addr, method, path, extra))
}

/// `POST path` with a JSON `body`: the status and the answer's body.
pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let extra = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    let mut c = send(addr, "POST", path, &extra);
    c.write_all(body.as_bytes()).expect("writes");
    answer(c)
}
