//! The mempool policy as the replica applies it: transactions that fail the checks are refused
//! and remembered, forwarded copies of a bad transaction are checked once, and a full pool
//! keeps the best-paying transactions.

use lanes_consensus::messages::Message;
use lanes_consensus::sim::{sim_contexts, sim_replica_config, sim_transaction, SimContext};
use lanes_consensus::{AdmitError, Config, Context, Event, MempoolLimits, Recovered, Replica};
use lanes_types::codec::Encode;
use lanes_types::{tx_hash, Bytes};

fn replica(max_txs: usize) -> (Replica<SimContext>, SimContext) {
    let cfg = Config {
        mempool: MempoolLimits {
            max_txs,
            ..sim_replica_config(4, 0).mempool
        },
        ..sim_replica_config(4, 0)
    };
    let ctx = sim_contexts(4, 7).remove(0);
    let r = Replica::new(cfg, ctx.clone(), Recovered::default()).unwrap();
    (r, ctx)
}

#[test]
fn an_undecodable_client_transaction_is_refused_and_remembered() {
    let (mut r, _) = replica(100);
    let junk = Bytes(b"not a transaction".to_vec());
    assert_eq!(r.submit(junk.clone(), 0).0, Err(AdmitError::Rejected));
    assert_eq!(r.submit(junk.clone(), 1).0, Err(AdmitError::Rejected));
    assert!(!r.is_pending(&tx_hash(&junk)));
    let good = sim_transaction(7, 0);
    assert!(r.submit(good.clone(), 2).0.is_ok());
    r.reject_tx(tx_hash(&sim_transaction(7, 1)));
    assert_eq!(
        r.submit(sim_transaction(7, 1), 3).0,
        Err(AdmitError::Rejected)
    );
}

#[test]
fn forwarded_bad_transactions_are_checked_once() {
    let (mut r, _) = replica(100);
    let bad = Bytes(b"tx-but-not-quite".to_vec());
    let good = sim_transaction(7, 3);
    let bytes = Message::Txs(vec![bad.clone(), good.clone()]).to_bytes();
    for now in 0..3 {
        r.handle(
            Event::Message {
                from: 1,
                bytes: bytes.clone(),
            },
            now,
        );
    }
    assert_eq!(r.stats().rejected_txs, 1, "later copies cost one lookup");
    assert!(r.is_pending(&tx_hash(&good)));
    assert!(!r.is_pending(&tx_hash(&bad)));
}

#[test]
fn a_full_pool_keeps_the_best_paying_transactions() {
    let (mut r, ctx) = replica(4);
    // One transaction per sender (nonce 0 of each).
    let txs: Vec<Bytes> = (0..40).map(|i| sim_transaction(7, 4 * i)).collect();
    let fee = |t: &Bytes| ctx.tx_meta(t).unwrap().fee;
    let (results, _) = r.submit_batch(txs.clone(), 0);
    assert_eq!(r.mempool_len(), 4);
    let admitted = results.iter().filter(|r| r.is_ok()).count() as u64;
    assert!(results
        .iter()
        .all(|r| r.is_ok() || *r == Err(AdmitError::Full)));
    assert_eq!(r.stats().displaced_txs, admitted - 4);
    let (kept, gone): (Vec<&Bytes>, Vec<&Bytes>) =
        txs.iter().partition(|t| r.is_pending(&tx_hash(t)));
    let least_kept = kept.iter().map(|t| fee(t)).min().unwrap();
    assert!(gone.iter().all(|t| fee(t) <= least_kept));
}
