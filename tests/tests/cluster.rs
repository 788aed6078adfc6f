//! A four-validator cluster of real `lanes node` processes on loopback.

use lanes_tests::{run_lanes as lanes, Cluster};
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
    if let Err(e) = c.wait_tx(2, after.last().unwrap(), Duration::from_secs(30)) {
        panic!("restarted node lacks the new blocks: {e}");
    }
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

#[test]
fn the_api_answers_bad_requests_with_json_errors_and_serves_metrics_and_proofs() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let tx = c.transfer(0, 5, 7);
    let hash = c.submit(0, &tx).unwrap();
    c.wait_tx(0, &hash, Duration::from_secs(20)).unwrap();
    // The same transaction again is refused, whichever node gets it.
    let again = c.submit(1, &tx).unwrap_err().to_string();
    assert!(again.contains("400"), "{again}");
    // Garbage, wrong chain, bad hex: 400 with a JSON error; unknown things: 404.
    for body in ["zz", "00", "{\"tx\": \"abc\"}"] {
        let err = c.submit_raw(2, body).unwrap_err().to_string();
        assert!(
            err.contains("400") && err.contains("error"),
            "{body}: {err}"
        );
    }
    // A batch answers each transaction on its own: accepted, undecodable, badly signed.
    let good = c.transfer(0, 6, 1);
    let mut forged = c.transfer(1, 6, 1);
    let at = forged.len() - 40; // inside the signature's R half
    forged[at] ^= 1;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let batch = serde_json::json!({ "txs": [hex(&good), "zz", hex(&forged)] }).to_string();
    let answers = c.post(1, "/txs", &batch).unwrap();
    assert!(answers[0]["hash"].is_string(), "{answers}");
    assert!(answers[1]["error"].is_string(), "{answers}");
    assert!(
        answers[2]["error"]
            .as_str()
            .unwrap_or("")
            .contains("signature"),
        "{answers}"
    );
    c.wait_tx(
        0,
        answers[0]["hash"].as_str().unwrap(),
        Duration::from_secs(20),
    )
    .unwrap();
    for body in ["[]", "{\"txs\": 5}", "not json"] {
        let err = c.post(1, "/txs", body).unwrap_err().to_string();
        assert!(
            err.contains("400") && err.contains("error"),
            "{body}: {err}"
        );
    }
    let missing = c
        .get(0, &format!("/tx/{}", "ab".repeat(32)))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("404"), "{missing}");
    let bad_hash = c.get(0, "/tx/nothex").unwrap_err().to_string();
    assert!(bad_hash.contains("400"), "{bad_hash}");
    assert!(c
        .get(0, "/block/999999")
        .unwrap_err()
        .to_string()
        .contains("404"));
    assert!(c
        .get(0, "/account/xyz")
        .unwrap_err()
        .to_string()
        .contains("400"));
    assert!(c
        .get(0, "/no/such/thing")
        .unwrap_err()
        .to_string()
        .contains("404"));
    // Status and validators.
    let status = c.get(3, "/status").unwrap();
    assert_eq!(status["chain_id"], "lanes-e2e");
    assert_eq!(status["peers"], 3, "{status}");
    let vals = c.get(3, "/validators").unwrap();
    assert_eq!(vals.as_array().unwrap().len(), 4);
    // Metrics in Prometheus text.
    let metrics = c.get_text(0, "/metrics").unwrap();
    assert!(
        metrics.contains("lanes_height ") && metrics.contains("lanes_committed_txs_total 2"),
        "{metrics}"
    );
    // A proof for an account, backed by an execution certificate (retry until certified).
    let addr = c.address(5).to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let proof = loop {
        match c.get(0, &format!("/proof/{addr}")) {
            Ok(p) => break p,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    // Verify it as a light client would: the certificate against genesis, the proof against
    // the certified root.
    use lanes_types::codec::Decode;
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let cert = lanes_types::CheckpointCertificate::from_bytes(&unhex(
        proof["certificate"].as_str().unwrap(),
    ))
    .unwrap();
    cert.verify(&c.genesis.chain_id, &c.genesis.validator_set())
        .expect("certificate signed by a quorum");
    let key = lanes_executor::Key::Balance(c.address(5), 0);
    let value =
        lanes_executor::Value::from_bytes(&unhex(proof["value"].as_str().unwrap())).unwrap();
    let p = lanes_executor::Proof::from_bytes(&unhex(proof["proof"].as_str().unwrap())).unwrap();
    assert_eq!(
        cert.state_root.to_string(),
        proof["state_root"].as_str().unwrap()
    );
    assert!(lanes_executor::verify_proof(
        cert.state_root,
        &key,
        Some(&value),
        &p
    ));
    assert_eq!(value, lanes_executor::Value::U64(1_000_000_007));
    let other = lanes_executor::Value::U64(1_000_000_008);
    assert!(!lanes_executor::verify_proof(
        cert.state_root,
        &key,
        Some(&other),
        &p
    ));
}

#[test]
fn the_explorer_reads_the_chain_and_verifies_proofs_as_a_light_client() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let tx = c.transfer(1, 6, 42);
    let hash = c.submit(2, &tx).unwrap();
    c.wait_tx(0, &hash, Duration::from_secs(20)).unwrap();
    let node = format!("http://{}", c.api(0));
    let genesis = c.dir.path().join("genesis.json");
    let genesis = genesis.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = lanes(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let status = ok(&["status", "--node", &node]);
    assert!(status.contains("lanes-e2e"), "{status}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--node", &node, "--json"])).unwrap();
    assert!(v["height"].as_u64().unwrap() >= 1);
    let blocks = ok(&["blocks", "--node", &node]);
    assert!(blocks.lines().count() >= 2, "{blocks}");
    let tx_out = ok(&["tx", &hash, "--node", &node]);
    assert!(tx_out.contains("Success"), "{tx_out}");
    let h = ok(&["tx", &hash, "--node", &node, "--json"]);
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let height = h["height"].as_u64().unwrap().to_string();
    assert!(ok(&["block", &height, "--node", &node]).contains(&hash[..12]));
    let addr = c.address(6).to_string();
    assert!(ok(&["account", &addr, "--node", &node]).contains("1000000042"));
    assert!(ok(&["validators", "--node", &node]).contains("validator-3"));
    // The light client: verified against the trusted genesis (retry until certified).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = lanes(&[
            "proof",
            &addr,
            "--verify",
            "--genesis",
            genesis,
            "--node",
            &node,
        ]);
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("verified: value 1000000042"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Against another chain's genesis the certificate does not verify.
    let other = lanes_types::Genesis {
        validators: c.genesis.validators.iter().rev().cloned().collect(),
        ..c.genesis.clone()
    };
    let other_path = c.dir.path().join("other-genesis.json");
    std::fs::write(&other_path, other.to_json()).unwrap();
    let out = lanes(&[
        "proof",
        &addr,
        "--verify",
        "--genesis",
        other_path.to_str().unwrap(),
        "--node",
        &node,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT verified"));
    // Every read command's --json output is one JSON document.
    for args in [
        &["blocks", "--node", &node, "--json"][..],
        &["block", &height, "--node", &node, "--json"],
        &["account", &addr, "--node", &node, "--json"],
        &["validators", "--node", &node, "--json"],
        &["proof", &addr, "--node", &node, "--json"],
    ] {
        let out = ok(args);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert!(!v.is_null(), "{args:?}");
    }
    // follow prints each new block as it commits, a line each (JSON lines with --json).
    for json in [false, true] {
        let mut args = vec!["follow", "--node", &node];
        if json {
            args.push("--json");
        }
        let mut child = std::process::Command::new(lanes_tests::lanes_binary())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let tx = c.transfer(2, 6, 1);
        c.submit(1, &tx).unwrap();
        // (The table has a header line first.)
        let line = lines
            .by_ref()
            .map(|l| l.unwrap())
            .find(|l| json || l.trim_start().starts_with(|ch: char| ch.is_ascii_digit()))
            .expect("a line per block");
        let _ = child.kill();
        let _ = child.wait();
        if json {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            assert!(v["height"].as_u64().unwrap() > 1, "{line}");
        }
    }
    // Errors: one line on stderr and a non-zero exit.
    for args in [
        &["status", "--node", "http://127.0.0.1:1"][..],
        &["tx", &"00".repeat(32), "--node", &node],
        &["account", "nothex", "--node", &node],
    ] {
        let out = lanes(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
