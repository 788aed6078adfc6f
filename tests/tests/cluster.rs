//! A four-validator cluster of real `lanes node` processes on loopback.

use lanes_tests::Cluster;
use std::time::Duration;

#[test]
fn four_nodes_commit_transactions_and_agree() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let mut hashes = Vec::new();
    for k in 0..20 {
        let tx = c.transfer(k % 4, 4 + k % 4, 1_000 + k as u64);
        hashes.push(c.submit(k % 4, &tx).expect("accepted"));
    }
    for h in &hashes {
        let v = c.wait_tx(0, h, Duration::from_secs(20)).expect("committed");
        assert_eq!(v["receipt"]["success"], true, "{v}");
    }
    // Every node reaches the same height with the same root.
    let target = c.height(0).unwrap();
    let mut roots = Vec::new();
    for i in 0..4 {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while c.height(i).unwrap_or(0) < target {
            assert!(
                std::time::Instant::now() < deadline,
                "node {i} behind:\n{}",
                c.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let b = c.get(i, &format!("/block/{target}")).unwrap();
        roots.push(b["state_root"].clone());
    }
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
    // A balance moved.
    let acct = c.get(1, &format!("/account/{}", c.address(4))).unwrap();
    assert!(
        acct["balances"][0]["amount"].as_u64().unwrap() > 1_000_000_000,
        "{acct}"
    );
}

/// Submits `n` transfers round-robin to the given nodes; returns their hashes.
fn load(c: &mut Cluster, n: usize, to_nodes: &[usize]) -> Vec<String> {
    (0..n)
        .map(|k| {
            let node = to_nodes[k % to_nodes.len()];
            let tx = c.transfer(k % 4, 4 + k % 4, 1);
            c.submit(node, &tx).expect("accepted")
        })
        .collect()
}

fn wait_same_height(c: &Cluster, nodes: &[usize]) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hs: Vec<u64> = nodes.iter().map(|&i| c.height(i).unwrap_or(0)).collect();
        if hs.windows(2).all(|w| w[0] == w[1]) && hs[0] > 0 {
            return hs[0];
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heights never converged: {hs:?}\n{}",
            c.log_tail(nodes[0])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_killed_with_sigkill_restarts_and_catches_up_and_the_primary_can_fail() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let first = load(&mut c, 10, &[0, 1, 2, 3]);
    c.wait_tx(3, first.last().unwrap(), Duration::from_secs(20))
        .expect("committed");
    // kill -9 a backup; the other three keep committing.
    c.kill9(2);
    let during = load(&mut c, 10, &[0, 1, 3]);
    c.wait_tx(1, during.last().unwrap(), Duration::from_secs(20))
        .expect("committed without node 2");
    // It restarts from its database and catches up.
    c.spawn(2).unwrap();
    c.wait_healthy(Duration::from_secs(30)).unwrap();
    let after = load(&mut c, 5, &[0, 1, 2, 3]);
    c.wait_tx(2, after.last().unwrap(), Duration::from_secs(30))
        .expect("restarted node has the new blocks");
    for h in first.iter().chain(&during) {
        c.wait_tx(2, h, Duration::from_secs(5))
            .expect("restarted node has every earlier block");
    }
    // Now the primary of view 0 dies: a view change elects another and blocks continue.
    let view = c.get(1, "/status").unwrap()["view"].as_u64().unwrap();
    let primary = (view % 4) as usize;
    c.kill9(primary);
    let others: Vec<usize> = (0..4).filter(|&i| i != primary).collect();
    let late = load(&mut c, 5, &others);
    c.wait_tx(others[0], late.last().unwrap(), Duration::from_secs(30))
        .expect("committed after the primary died");
    let status = c.get(others[0], "/status").unwrap();
    assert!(status["view"].as_u64().unwrap() > view, "{status}");
    let h = wait_same_height(&c, &others);
    let roots: Vec<_> = others
        .iter()
        .map(|&i| c.get(i, &format!("/block/{h}")).unwrap()["state_root"].clone())
        .collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
}
