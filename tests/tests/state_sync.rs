//! State transfer on real processes: a validator kept down while the others prune the blocks
//! it misses comes back by fetching the certified state, then follows the chain block by block.

use lanes_tests::Cluster;
use std::time::{Duration, Instant};

/// Commits `n` transactions one after another (so they land in separate blocks) through nodes
/// 0 to 2.
fn commit_one_by_one(c: &mut Cluster, n: usize) {
    for i in 0..n {
        let tx = c.transfer(i % 3, 6, 1);
        let hash = c.submit(i % 3, &tx).expect("submitted");
        if let Err(e) = c.wait_tx(0, &hash, Duration::from_secs(20)) {
            let logs: Vec<String> = (1..4).map(|n| c.log_tail(n)).collect();
            panic!("not committed: {e}\n{}", logs.join("\n-----\n"));
        }
    }
}

fn metric(c: &Cluster, node: usize, name: &str) -> f64 {
    let text = c.client(node).metrics().expect("metrics");
    lanes_api::metric(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_node_whose_missing_blocks_were_pruned_rejoins_by_state_transfer() {
    let mut c = Cluster::start_with(4, &["--retain-blocks", "16"]).expect("cluster starts");
    commit_one_by_one(&mut c, 3);
    c.kill9(3);
    let down_at = c.height(0).unwrap();
    commit_one_by_one(&mut c, 40);
    let ahead = c.height(0).unwrap();
    assert!(ahead >= down_at + 40, "{down_at} -> {ahead}");
    // The others pruned what node 3 misses.
    let lowest = c.client(0).status().unwrap().lowest_block;
    assert!(
        lowest > down_at + 1,
        "lowest block {lowest}, node 3 stopped at {down_at}"
    );
    let gone = c.client(0).block(1).unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");

    c.spawn(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while c.height(3).unwrap_or(0) < ahead {
        assert!(
            Instant::now() < deadline,
            "node 3 never caught up (at {:?}, others at {ahead})\n{}",
            c.height(3),
            c.log_tail(3)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(metric(&c, 3, "lanes_state_syncs_total"), 1.0);
    // Its installed head is the others' block and root at that height ...
    assert!(c.client(3).status().unwrap().lowest_block > down_at + 1);
    // ... and it follows new blocks with the same hashes and roots, accepting transactions.
    let tx = c.transfer(4, 7, 2);
    let hash = c.submit(3, &tx).unwrap();
    c.wait_tx(3, &hash, Duration::from_secs(30)).unwrap();
    c.wait_tx(0, &hash, Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let heads = c.heads().unwrap();
        if heads.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "heads differ: {heads:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let balance = |node: usize| c.client(node).account(c.address(7)).unwrap();
    assert_eq!(balance(3), balance(0));
}

#[test]
fn a_node_restarted_with_its_data_wiped_holds_its_votes_until_it_caught_up() {
    let mut c = Cluster::start(4).expect("cluster starts");
    // A new network decides at once that there is nothing to hold.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(0..4).all(|i| c.client(i).status().unwrap().voting) {
        assert!(
            Instant::now() < deadline,
            "a new network never started voting"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    commit_one_by_one(&mut c, 5);
    c.kill9(1);
    c.wipe(1).unwrap();
    c.spawn(1).unwrap();
    c.wait_healthy(Duration::from_secs(30)).unwrap();
    let reached = c.height(0).unwrap();
    // It learns how far the chain went and holds its votes past the window above it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let until = loop {
        let st = c.client(1).status().unwrap();
        assert!(!st.voting, "{st:?}");
        if let Some(until) = st.voting_hold_until {
            break until;
        }
        assert!(
            Instant::now() < deadline,
            "the hold was never decided: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(until > reached, "hold until {until}, chain at {reached}");
    // The chain goes on without its votes; it follows, then votes again.
    commit_one_by_one(&mut c, (until - reached) as usize + 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = c.client(1).status().unwrap();
        if st.voting {
            assert!(st.height >= until, "{st:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never voted again: {st:?}\n{}",
            c.log_tail(1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its chain is everyone's, from block 1.
    let h = c.height(1).unwrap();
    assert_eq!(c.chain(1, h).unwrap(), c.chain(0, h).unwrap());
    // With node 3 down, progress needs node 1's votes: they count again.
    c.kill9(3);
    let tx = c.transfer(5, 6, 1);
    let hash = c.submit(1, &tx).unwrap();
    c.wait_tx(1, &hash, Duration::from_secs(30)).unwrap();
}

/// Adds `delta` to an account's balance in a stopped node's database, behind the state tree's
/// back: the next block touching it makes the node compute a root nobody else computes.
fn corrupt_balance(data_dir: &std::path::Path, account: lanes_types::Address, delta: u64) {
    use lanes_executor::state::{Key, Value};
    use lanes_types::codec::{Decode, Encode};
    let opts = rocksdb::Options::default();
    let db = rocksdb::DB::open_cf(&opts, data_dir, lanes_storage::cf::ALL).expect("open");
    let state = db.cf_handle(lanes_storage::cf::STATE).unwrap();
    let key = Key::Balance(account, 0).to_bytes();
    let raw = db.get_cf(state, &key).unwrap().expect("funded account");
    let Value::U64(balance) = Value::from_bytes(&raw).unwrap() else {
        panic!("a balance is a u64")
    };
    db.put_cf(state, &key, Value::U64(balance + delta).to_bytes())
        .unwrap();
}

#[test]
fn a_node_whose_state_diverged_raises_the_alarm_and_restores_the_certified_state() {
    let mut c = Cluster::start(4).expect("cluster starts");
    commit_one_by_one(&mut c, 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.heads().unwrap().windows(2).all(|w| w[0] == w[1]) {
        assert!(Instant::now() < deadline, "nodes never agreed");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.kill9(2);
    corrupt_balance(&c.dir.path().join("data-2"), c.address(6), 1_000);
    c.spawn(2).unwrap();
    c.wait_healthy(Duration::from_secs(30)).unwrap();
    // A transfer from the corrupted account: node 2 computes another root.
    let tx = c.transfer(6, 7, 5);
    let hash = c.submit(0, &tx).unwrap();
    c.wait_tx(0, &hash, Duration::from_secs(20)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let restored = metric(&c, 2, "lanes_divergence_alarms_total") >= 1.0
            && metric(&c, 2, "lanes_state_syncs_total") >= 1.0
            && c.client(2).status().unwrap().diverged_at.is_none();
        if restored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never diverged and restored\n{}",
            c.log_tail(2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // It holds the certified state again and keeps up with new blocks.
    let tx = c.transfer(6, 7, 5);
    let later = c.submit(1, &tx).unwrap();
    c.wait_tx(2, &later, Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.heads().unwrap().windows(2).all(|w| w[0] == w[1]) {
        assert!(Instant::now() < deadline, "heads differ: {:?}", c.heads());
        std::thread::sleep(Duration::from_millis(100));
    }
    let account = |node: usize| c.client(node).account(c.address(6)).unwrap();
    assert_eq!(account(2), account(0));
    // No receipt of its own is served as certified: not the diverged block's, not the next.
    for hash in [&hash, &later] {
        no_other_certified_receipt(&c, 2, 0, hash);
    }
}

/// Node `node` serves no certified receipt of `hash` other than the one node `reference`
/// serves once certified: the same certified receipt, an uncertified status, or a refusal (404
/// below its lowest block, 409 when its receipts are not the certified ones).
fn no_other_certified_receipt(c: &Cluster, node: usize, reference: usize, hash: &str) {
    use lanes_api::{TxInfo, TxStatus};
    let deadline = Instant::now() + Duration::from_secs(20);
    let certified = loop {
        match c.client(reference).tx(hash) {
            Ok(t) if t.status == TxStatus::Certified => break t,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("node {reference} never certified {hash}: {other:?}"),
        }
    };
    let claim = |t: &TxInfo| {
        let cert = t
            .certificate
            .as_ref()
            .expect("certified with a certificate");
        let receipt = t.receipt.as_ref().expect("certified with a receipt");
        let roots = (
            cert.height,
            cert.state_root.clone(),
            cert.receipts_root.clone(),
        );
        (
            t.height,
            t.index,
            t.block_hash.clone(),
            receipt.encoded.clone(),
            roots,
        )
    };
    match c.client(node).tx(hash) {
        Ok(t) if t.status == TxStatus::Certified => {
            assert_eq!(
                claim(&t),
                claim(&certified),
                "node {node} serves another receipt"
            );
        }
        Ok(_) => {}
        Err(e) if matches!(e.status(), Some(404 | 409)) => {}
        Err(e) => panic!("node {node} answers {hash} with {e}"),
    }
}
