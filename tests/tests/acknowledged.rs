//! What "acknowledged" means, end to end on real processes: a transaction's status moves
//! pending -> committed -> certified, `lanes send` returns only once a quorum certified the
//! result, and `lanes tx --verify` (the light client) accepts a certified receipt and names
//! what is wrong when a node serves a receipt or a certificate altered in its database.

use lanes_api::{TxInfo, TxStatus};
use lanes_tests::{run_lanes as lanes, Cluster};
use lanes_types::codec::{Decode, Encode};
use lanes_types::CheckpointCertificate;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls node `i` until it reports `hash` certified; returns the answer.
fn wait_certified(c: &Cluster, i: usize, hash: &str) -> TxInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(tx) = c.client(i).tx(hash) {
            if tx.status == TxStatus::Certified {
                return tx;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{hash} never certified on node {i}:\n{}",
            c.log_tail(i)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the harness's account `account` into a keystore as `alice`; returns the keystore.
fn keystore(c: &Cluster, account: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seed = lanes_types::to_hex(c.accounts[account].seed());
    std::fs::write(dir.path().join("alice.key"), seed + "\n").expect("key written");
    dir
}

#[test]
fn a_transfer_moves_from_pending_to_certified_and_lanes_send_returns_once_certified() {
    let mut c = Cluster::start(4).expect("cluster starts");
    // Two of four validators stopped: no quorum, so a submitted transfer stays pending.
    c.pause(2, true).unwrap();
    c.pause(3, true).unwrap();
    let tx = c.transfer(0, 4, 7);
    let hash = c.submit(0, &tx).expect("accepted");
    let mut seen = vec![c.client(0).tx(&hash).expect("known while pending").status];
    assert_eq!(seen, [TxStatus::Pending]);
    let node0 = format!("http://{}", c.api(0));
    let shown = lanes(&["tx", &hash, "--node", &node0]);
    assert!(stdout(&shown).contains("pending"), "{}", stdout(&shown));
    let genesis = c.dir.path().join("genesis.json");
    let genesis = genesis.to_str().unwrap();
    let unverified = lanes(&[
        "tx",
        &hash,
        "--node",
        &node0,
        "--verify",
        "--genesis",
        genesis,
    ]);
    assert!(!unverified.status.success());
    let err = stderr(&unverified);
    assert!(
        err.contains("NOT verified: not certified yet: the node reports it pending"),
        "{err}"
    );
    // Quorum again: the status only ever moves forward, and ends certified.
    c.pause(2, false).unwrap();
    c.pause(3, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.last() != Some(&TxStatus::Certified) {
        assert!(Instant::now() < deadline, "never certified: {seen:?}");
        let status = c.client(0).tx(&hash).expect("known").status;
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    eprintln!("statuses seen: {seen:?}");

    // `lanes send` (from another account) returns once the transfer is certified.
    let ks = keystore(&c, 1);
    let node1 = format!("http://{}", c.api(1));
    let to = c.address(5).to_string();
    let send = |extra: &[&str]| {
        let mut args = vec!["send", "transfer", "--to", &to, "--amount", "3", "--from"];
        args.extend(["alice", "--keystore", ks.path().to_str().unwrap()]);
        args.extend(["--node", &node1]);
        args.extend_from_slice(extra);
        lanes(&args)
    };
    let out = send(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains(": certified after"), "{text}");
    assert!(text.contains("Success"), "{text}");
    let sent = first
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':');
    assert_eq!(c.client(1).tx(sent).unwrap().status, TxStatus::Certified);

    let out = send(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: TxInfo = serde_json::from_str(&stdout(&out)).expect("the TxInfo");
    assert_eq!(info.status, TxStatus::Certified);
    assert!(info.certificate.is_some() && info.receipt_proof.is_some());
    assert_eq!(
        c.client(1).tx(&info.hash).unwrap().status,
        TxStatus::Certified
    );

    let out = send(&["--wait", "committed", "--json"]);
    let info: TxInfo = serde_json::from_str(&stdout(&out)).expect("the TxInfo");
    assert!(info.status >= TxStatus::Committed, "{info:?}");
    wait_certified(&c, 1, &info.hash);

    // Without a quorum the wait ends at the deadline, saying what it last saw.
    c.pause(2, true).unwrap();
    c.pause(3, true).unwrap();
    let started = Instant::now();
    let out = send(&["--timeout", "1500ms"]);
    assert!(!out.status.success());
    let host = c.api(1).to_string();
    let want = format!("not certified within 1500ms: last seen pending on {host}");
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    // (Another fee: the same transaction would be refused as already pending.)
    let out = send(&["--wait", "none", "--fee", "1000"]);
    assert!(
        stdout(&out).starts_with("submitted transfer"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Opens a stopped node's database with raw RocksDB.
fn open_db(data: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    rocksdb::DB::open_cf(&opts, data, lanes_storage::cf::ALL).expect("database opens")
}

/// Key of a stored certificate (height ++ kind; 1 is the execution certificate).
fn cert_key(height: u64) -> Vec<u8> {
    let mut k = height.to_be_bytes().to_vec();
    k.push(1);
    k
}

/// The execution certificate stored at `height`.
fn stored_cert(db: &rocksdb::DB, height: u64) -> CheckpointCertificate {
    let cf = db.cf_handle(lanes_storage::cf::CERTIFICATES).unwrap();
    let raw = db
        .get_cf(cf, cert_key(height))
        .unwrap()
        .expect("a certificate");
    CheckpointCertificate::from_bytes(&raw).expect("decodes")
}

fn put_cert(db: &rocksdb::DB, cert: &CheckpointCertificate) {
    let cf = db.cf_handle(lanes_storage::cf::CERTIFICATES).unwrap();
    db.put_cf(cf, cert_key(cert.height), cert.to_bytes())
        .unwrap();
}

/// Changes the fee paid in the stored receipt of the transaction `info` describes.
fn alter_receipt(db: &rocksdb::DB, info: &TxInfo) {
    let cf = db.cf_handle(lanes_storage::cf::RECEIPTS).unwrap();
    let mut key = info.height.unwrap().to_be_bytes().to_vec();
    key.extend(info.index.unwrap().to_be_bytes());
    let raw = db.get_cf(cf, &key).unwrap().expect("a receipt");
    let mut receipt = lanes_executor::Receipt::from_bytes(&raw).expect("decodes");
    receipt.fee_paid += 1;
    db.put_cf(cf, &key, receipt.to_bytes()).unwrap();
}

#[test]
fn lanes_tx_verify_passes_on_honest_nodes_and_names_what_an_altered_database_serves() {
    let mut c = Cluster::start(4).expect("cluster starts");
    // Four transfers, each in its own certified block (the last keeps the others below the
    // node's latest certificate).
    let mut infos = Vec::new();
    for k in 0..4 {
        let tx = c.transfer(k, 4 + k, 10);
        let hash = c.submit(k % 4, &tx).expect("accepted");
        infos.push(wait_certified(&c, 0, &hash));
        wait_certified(&c, 3, &hash);
    }
    let genesis = c.dir.path().join("genesis.json");
    let genesis = genesis.to_str().unwrap().to_string();
    let apis = c.apis();
    let verify = |node: usize, info: &TxInfo| {
        let node = format!("http://{}", apis[node]);
        lanes(&[
            "tx",
            &info.hash,
            "--verify",
            "--genesis",
            &genesis,
            "--node",
            &node,
        ])
    };
    for info in &infos {
        let out = verify(3, info);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("\nverified: receipt Success at height"),
            "{text}"
        );
        assert!(text.contains("status       certified"), "{text}");
    }

    // Node 3's database, altered while it is down: a receipt (a), too few signers on one
    // certificate and a signature from another block on another (b).
    let [receipt_tx, few_tx, foreign_tx, last] = [0, 1, 2, 3].map(|i| &infos[i]);
    c.kill9(3);
    {
        let db = open_db(&c.dir.path().join("data-3"));
        alter_receipt(&db, receipt_tx);
        let quorum = c.genesis.validator_set().quorum();
        let mut few = stored_cert(&db, few_tx.height.unwrap());
        few.signatures.truncate(quorum - 1);
        put_cert(&db, &few);
        let mut foreign = stored_cert(&db, foreign_tx.height.unwrap());
        let other = stored_cert(&db, last.height.unwrap());
        let swapped = foreign
            .signatures
            .iter_mut()
            .find_map(|s| {
                let theirs = other
                    .signatures
                    .iter()
                    .find(|o| o.validator == s.validator)?;
                *s = *theirs;
                Some(s.validator)
            })
            .expect("a validator signed both certificates");
        put_cert(&db, &foreign);
        eprintln!("swapped validator {swapped}'s signature");
    }
    c.spawn(3).unwrap();
    c.wait_healthy(Duration::from_secs(30)).unwrap();

    // (a) The node refuses to pass its altered receipt off as certified: 409, and the light
    // client says so.
    let e = c.client(3).tx(&receipt_tx.hash).unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    let out = verify(3, receipt_tx);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("NOT verified") && err.contains("409"), "{err}");
    assert!(err.contains("diverged"), "{err}");
    // (b) Certificates that are not a quorum's are named as such.
    let out = verify(3, few_tx);
    assert!(!out.status.success());
    let err = stderr(&out);
    let need = c.genesis.validator_set().quorum();
    let want = format!(
        "not a quorum's: {} signatures, a quorum needs {need}",
        need - 1
    );
    assert!(err.contains("NOT verified") && err.contains(&want), "{err}");
    let out = verify(3, foreign_tx);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not a quorum's: bad signature from validator"),
        "{err}"
    );
    // The JSON verdict carries the same reason; honest nodes still verify every receipt.
    let node3 = format!("http://{}", c.api(3));
    let args = [
        "tx",
        &few_tx.hash,
        "--verify",
        "--genesis",
        &genesis,
        "--node",
        &node3,
    ];
    let out = lanes(&[&args[..], &["--json"]].concat());
    assert!(!out.status.success());
    let verdict: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(verdict["verified"], false, "{verdict}");
    assert!(
        verdict["reason"].as_str().unwrap().contains(&want),
        "{verdict}"
    );
    for info in &infos {
        let out = verify(0, info);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
