//! Property tests of the mempool policy against a naive model of the proposal order, and of
//! the in-flight bookkeeping of [`crate::pool::Pool`] on top of it.

use super::tests::tx_of;
use super::*;
use crate::pool::Pool;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Admit {
        sender: u8,
        nonce: u64,
        fee: u64,
        len: usize,
    },
    Commit(usize),
    Reject(u8, u64),
    Propose(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 0u64..6, 0u64..8, 12usize..40)
            .prop_map(|(sender, nonce, fee, len)| Op::Admit { sender, nonce, fee, len }),
        2 => (0usize..64).prop_map(Op::Commit),
        1 => (0u8..6, 0u64..6).prop_map(|(s, n)| Op::Reject(s, n)),
        1 => (0usize..6).prop_map(Op::Propose),
    ]
}

fn small_limits() -> MempoolLimits {
    MempoolLimits {
        max_txs: 8,
        max_bytes: 200,
        committed_memory: 16,
        max_per_sender: 3,
        max_evictions: 4,
        rejected_memory: 4,
    }
}

/// The proposal order computed naively: repeatedly the best of the senders' lowest nonces.
fn naive_order(m: &Mempool) -> Vec<Hash> {
    let mut chains: HashMap<Address, Vec<(u64, Hash)>> = HashMap::new();
    for (h, e) in &m.pending {
        chains
            .entry(e.meta.sender)
            .or_default()
            .push((e.meta.nonce, *h));
    }
    for chain in chains.values_mut() {
        chain.sort_by_key(|c| std::cmp::Reverse(c.0)); // lowest nonce last
    }
    let mut out = Vec::new();
    while let Some(best) = chains
        .iter()
        .filter_map(|(s, c)| c.last().map(|(_, h)| (m.pending[h].prio, *s)))
        .max()
    {
        let chain = chains.get_mut(&best.1).unwrap();
        out.push(chain.pop().unwrap().1);
    }
    out
}

/// Every bound and every index agree with the pending set.
fn check_invariants(m: &Mempool) {
    let l = m.limits;
    assert!(m.len() <= l.max_txs && m.bytes() <= l.max_bytes);
    let bytes: usize = m.pending.values().map(|e| e.tx.len()).sum();
    assert_eq!(bytes, m.bytes());
    assert_eq!(m.by_prio.len(), m.len());
    assert_eq!(m.heads.len(), m.senders.len());
    let per_sender: usize = m.senders.values().map(BTreeMap::len).sum();
    assert_eq!(per_sender, m.len());
    assert!(m.senders.values().all(|c| c.len() <= l.max_per_sender));
    let order: Vec<Hash> = m
        .peek_batch(usize::MAX, usize::MAX)
        .iter()
        .map(|t| tx_hash(t))
        .collect();
    assert_eq!(order, naive_order(m));
}

fn admit_checked(pool: &mut Pool, sender: u8, nonce: u64, fee: u64, len: usize) {
    let (t, meta) = tx_of(sender, nonce, fee, len);
    let before = (pool.mempool.len(), pool.mempool.bytes());
    let old = pool
        .mempool
        .senders
        .get(&meta.sender)
        .and_then(|c| c.get(&nonce))
        .copied();
    let fees: HashMap<Hash, u64> = pool
        .mempool
        .pending
        .iter()
        .map(|(h, e)| (*h, e.meta.fee))
        .collect();
    match pool.admit(t, meta) {
        Ok(got) => {
            assert!(pool.mempool.contains(&got.hash));
            for gone in &got.removed {
                assert!(!pool.mempool.contains(gone) && !pool.in_flight.contains(gone));
                assert!(fees[gone] < fee, "only cheaper ones are pushed out");
            }
            let evicted = got.removed.iter().filter(|h| Some(**h) != old).count();
            assert!(evicted <= pool.mempool.limits.max_evictions);
            assert!(evicted == 0 || before.0 + 1 > 8 || before.1 + len > 200);
        }
        Err(AdmitError::Underpriced) => assert!(fees[&old.unwrap()] >= fee),
        Err(_) => assert_eq!(before, (pool.mempool.len(), pool.mempool.bytes())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bounds_indices_and_order_hold_under_any_operations(ops in prop::collection::vec(op(), 1..120)) {
        let mut pool = Pool::new(Mempool::new(small_limits()));
        for op in ops {
            match op {
                Op::Admit { sender, nonce, fee, len } => {
                    admit_checked(&mut pool, sender, nonce, fee, len)
                }
                Op::Commit(i) => {
                    let hs: Vec<Hash> = pool.mempool.pending.keys().copied().collect();
                    if !hs.is_empty() {
                        pool.committed(&[hs[i % hs.len()]]);
                    }
                }
                Op::Reject(s, n) => {
                    let (t, meta) = tx_of(s, n, 1, 12);
                    pool.mempool.reject(tx_hash(&t));
                    prop_assert_eq!(pool.mempool.admit(t, meta), Err(AdmitError::Rejected));
                }
                Op::Propose(k) => {
                    let batch = pool.next_batch(k, usize::MAX);
                    for t in &batch {
                        prop_assert!(pool.in_flight.insert(tx_hash(t)), "proposed twice");
                    }
                }
            }
            check_invariants(&pool.mempool);
            prop_assert!(pool.in_flight.iter().all(|h| pool.mempool.contains(h)));
            prop_assert_eq!(pool.unproposed(), pool.mempool.len() - pool.in_flight.len());
        }
    }

    #[test]
    fn evictions_only_take_strictly_cheaper_transactions(
        fees in prop::collection::vec(0u64..10, 1..40),
    ) {
        let mut m = Mempool::new(MempoolLimits { max_per_sender: 64, ..small_limits() });
        for (i, fee) in fees.into_iter().enumerate() {
            let (t, meta) = tx_of(i as u8, 0, fee, 20);
            let fees_before: HashMap<Hash, u64> =
                m.pending.iter().map(|(h, e)| (*h, e.meta.fee)).collect();
            if let Ok(got) = m.admit(t, meta) {
                prop_assert!(got.removed.iter().all(|h| fees_before[h] < fee));
                // The evicted are the cheapest: nothing kept is cheaper.
                let kept_min = m.pending.values().filter(|e| e.meta.sender != meta.sender)
                    .map(|e| e.meta.fee).min();
                for h in &got.removed {
                    prop_assert!(kept_min.is_none_or(|k| fees_before[h] <= k));
                }
            }
            check_invariants(&m);
        }
    }
}
