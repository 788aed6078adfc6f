//! `lanes localnet`, the README's first command, run as a newcomer would: it starts, shows
//! certified blocks with transactions, stops every node on Ctrl-C, and resumes the same chain.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs localnet until a block above `above` with transactions is certified; returns (first stdout line,
/// that block line), after Ctrl-C stopped it cleanly.
fn run_until_certified_block(dir: &std::path::Path, port: u16, above: u64) -> (String, String) {
    let mut child = Command::new(lanes_tests::lanes_binary())
        .args(["localnet", "--dir"])
        .arg(dir)
        .args(["--base-port", &port.to_string(), "--rate", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("localnet starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("output");
    let block = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a certified block with transactions within 90 s");
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 4
            && cols[0].parse::<u64>().is_ok_and(|h| h > above)
            && cols[1].parse::<u64>().unwrap_or(0) > 0
            && cols[3] == "yes"
        {
            break line;
        }
    };
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "localnet exited with {status}");
            break;
        }
        assert!(
            Instant::now() < stop_deadline,
            "localnet did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every node is gone: their API ports are free again.
    for i in 0..4 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port + 100 + i)).is_ok(),
            "validator {i} still running"
        );
    }
    (first, block)
}

#[test]
fn localnet_starts_commits_stops_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let port = lanes_cluster::free_base_port(4).unwrap();
    let (first, block) = run_until_certified_block(dir.path(), port, 0);
    assert!(
        first.starts_with("creating a 4-validator network"),
        "{first}"
    );
    let height: u64 = block.split_whitespace().next().unwrap().parse().unwrap();
    let (again, later) = run_until_certified_block(dir.path(), port, height);
    assert!(again.starts_with("resuming"), "{again}");
    let later: u64 = later.split_whitespace().next().unwrap().parse().unwrap();
    assert!(later > height, "the chain resumed ({later} after {height})");
}
