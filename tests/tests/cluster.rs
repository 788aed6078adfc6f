//! A four-validator cluster of real `lanes node` processes on loopback.

use lanes_api::{
    Account, ApiError, BlockEvent, BlockInfo, BlockSummary, StateProof, Status, TxAnswer, TxInfo,
    Validator,
};
use lanes_tests::{run_lanes as lanes, Cluster};
use lanes_types::{parse_hex, to_hex};
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
        assert!(v.receipt.as_ref().is_some_and(|r| r.success), "{v:?}");
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
        roots.push(c.client(i).block(target).unwrap().summary.state_root);
    }
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
    // A balance moved.
    let acct = c.client(1).account(c.address(4)).unwrap();
    assert!(acct.balance(0) > 1_000_000_000, "{acct:?}");
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
    let view = c.client(1).status().unwrap().view;
    let primary = (view % 4) as usize;
    c.kill9(primary);
    let others: Vec<usize> = (0..4).filter(|&i| i != primary).collect();
    let late = load(&mut c, 5, &others);
    c.wait_tx(others[0], late.last().unwrap(), Duration::from_secs(30))
        .expect("committed after the primary died");
    let status = c.client(others[0]).status().unwrap();
    assert!(status.view > view, "{status:?}");
    let h = wait_same_height(&c, &others);
    let roots: Vec<_> = others
        .iter()
        .map(|&i| c.client(i).block(h).unwrap().summary.state_root)
        .collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
}

/// The message of an error answer with `status` (the node's `{"error": ...}` text).
fn refused(e: ApiError, status: u16) -> String {
    assert_eq!(e.status(), Some(status), "{e}");
    let message = e.message().unwrap_or_default();
    assert!(!message.is_empty() && !message.starts_with('{'), "{e}");
    message.to_string()
}

#[test]
fn the_api_answers_bad_requests_with_json_errors_and_serves_metrics_and_proofs() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let tx = c.transfer(0, 5, 7);
    let hash = c.submit(0, &tx).unwrap();
    c.wait_tx(0, &hash, Duration::from_secs(20)).unwrap();
    // The same transaction again is refused, whichever node gets it: 400 once that node
    // executed it (its nonce is used), 409 from its mempool before (committed or pending).
    let again = c.client(1).submit(&tx).unwrap_err();
    assert!(matches!(again.status(), Some(400 | 409)), "{again}");
    // Garbage, wrong chain, bad hex: 400 with a JSON error; unknown things: 404.
    for body in ["zz", "00", "{\"tx\": \"abc\"}"] {
        refused(c.client(2).submit_body(body).unwrap_err(), 400);
    }
    // A batch answers each transaction on its own: accepted, undecodable, badly signed.
    let good = c.transfer(0, 6, 1);
    let mut forged = c.transfer(1, 6, 1);
    let at = forged.len() - 40; // inside the signature's R half
    forged[at] ^= 1;
    let batch = lanes_api::SubmitBatch {
        txs: vec![to_hex(&good), "zz".into(), to_hex(&forged)],
    };
    let answers = c
        .client(1)
        .submit_batch_body(&serde_json::to_string(&batch).unwrap())
        .unwrap();
    let hash = match &answers[..] {
        [TxAnswer::Accepted { hash }, TxAnswer::Refused { .. }, TxAnswer::Refused { error }]
            if error.contains("signature") =>
        {
            hash.clone()
        }
        _ => panic!("{answers:?}"),
    };
    c.wait_tx(0, &hash, Duration::from_secs(20)).unwrap();
    for body in ["[]", "{\"txs\": 5}", "not json"] {
        refused(c.client(1).submit_batch_body(body).unwrap_err(), 400);
    }
    let api = c.client(0);
    refused(api.tx("ab".repeat(32)).unwrap_err(), 404);
    refused(api.tx("nothex").unwrap_err(), 400);
    refused(api.block(999_999).unwrap_err(), 404);
    refused(api.account("xyz").unwrap_err(), 400);
    refused(
        api.get::<serde_json::Value>("/no/such/thing").unwrap_err(),
        404,
    );
    // Status and validators.
    let status = c.client(3).status().unwrap();
    assert_eq!(status.chain_id, "lanes-e2e");
    assert_eq!(status.peers, 3, "{status:?}");
    assert_eq!(c.client(3).validators().unwrap().len(), 4);
    // Metrics in Prometheus text.
    let metrics = api.metrics().unwrap();
    assert!(
        metrics.contains("lanes_height ") && metrics.contains("lanes_committed_txs_total 2"),
        "{metrics}"
    );
    // A proof for an account, backed by an execution certificate (retry until certified).
    let addr = c.address(5).to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let proof = loop {
        match api.proof(&addr) {
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
    let unhex = |s: &str| parse_hex(s).unwrap();
    let cert = lanes_types::CheckpointCertificate::from_bytes(&unhex(&proof.certificate)).unwrap();
    cert.verify(&c.genesis.chain_id, &c.genesis.validator_set())
        .expect("certificate signed by a quorum");
    let key = lanes_executor::Key::Balance(c.address(5), 0);
    let value = lanes_executor::Value::from_bytes(&unhex(proof.value.as_deref().unwrap())).unwrap();
    let p = lanes_executor::Proof::from_bytes(&unhex(&proof.proof)).unwrap();
    assert_eq!(cert.state_root.to_string(), proof.state_root);
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
    let v: Status = serde_json::from_str(&ok(&["status", "--node", &node, "--json"])).unwrap();
    assert!(v.height >= 1);
    let blocks = ok(&["blocks", "--node", &node]);
    assert!(blocks.lines().count() >= 2, "{blocks}");
    let tx_out = ok(&["tx", &hash, "--node", &node]);
    assert!(tx_out.contains("Success"), "{tx_out}");
    let h = ok(&["tx", &hash, "--node", &node, "--json"]);
    let h: TxInfo = serde_json::from_str(&h).unwrap();
    let height = h.height.expect("committed").to_string();
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
    // Every read command's --json output is the endpoint's JSON document.
    fn decodes<T: serde::de::DeserializeOwned>(out: String) -> T {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
    let blocks: Vec<BlockSummary> = decodes(ok(&["blocks", "--node", &node, "--json"]));
    assert!(!blocks.is_empty());
    let block: BlockInfo = decodes(ok(&["block", &height, "--node", &node, "--json"]));
    assert!(block.transactions.iter().any(|t| t.hash == hash));
    let account: Account = decodes(ok(&["account", &addr, "--node", &node, "--json"]));
    assert_eq!(account.balance(0), 1_000_000_042);
    let vals: Vec<Validator> = decodes(ok(&["validators", "--node", &node, "--json"]));
    assert_eq!(vals.len(), 4);
    let proof: StateProof = decodes(ok(&["proof", &addr, "--node", &node, "--json"]));
    assert!(proof.value.is_some());
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
            let v: BlockEvent = serde_json::from_str(&line).expect("a block event");
            assert!(v.height > 1, "{line}");
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
