//! Unit tests of the mempool policy.

use super::*;

/// A transaction of `len` bytes (at least 12) unique per (sender, nonce, fee).
pub(super) fn tx_of(sender: u8, nonce: u64, fee: u64, len: usize) -> (Bytes, TxMeta) {
    let mut b = vec![sender];
    b.extend_from_slice(&nonce.to_be_bytes());
    b.extend_from_slice(&fee.to_be_bytes()[5..]);
    b.resize(len.max(12), 0xee);
    let meta = TxMeta {
        sender: Address([sender; 20]),
        nonce,
        fee,
    };
    (Bytes(b), meta)
}

fn tx(sender: u8, nonce: u64, fee: u64) -> (Bytes, TxMeta) {
    tx_of(sender, nonce, fee, 12)
}

fn limits(max_txs: usize, max_bytes: usize) -> MempoolLimits {
    MempoolLimits {
        max_txs,
        max_bytes,
        committed_memory: 10,
        max_per_sender: 64,
        max_evictions: 16,
        rejected_memory: 3,
    }
}

fn admit(m: &mut Mempool, (t, meta): (Bytes, TxMeta)) -> Result<Admitted, AdmitError> {
    m.admit(t, meta)
}

#[test]
fn duplicates_and_committed_transactions_are_refused() {
    let mut m = Mempool::new(limits(10, 1000));
    let h = admit(&mut m, tx(1, 0, 5)).unwrap().hash;
    assert_eq!(admit(&mut m, tx(1, 0, 5)), Err(AdmitError::Duplicate));
    m.mark_committed([&h]);
    assert!(m.is_empty());
    assert_eq!(
        admit(&mut m, tx(1, 0, 5)),
        Err(AdmitError::AlreadyCommitted)
    );
}

#[test]
fn proposals_go_by_fee_then_arrival() {
    let mut m = Mempool::new(limits(10, 1000));
    for (s, fee) in [(1, 5), (2, 9), (3, 5), (4, 7)] {
        admit(&mut m, tx(s, 0, fee)).unwrap();
    }
    let order: Vec<u8> = m.peek_batch(10, 1000).iter().map(|t| t.0[0]).collect();
    assert_eq!(order, vec![2, 4, 1, 3]);
    assert_eq!(m.peek_batch(2, 1000).len(), 2);
    assert_eq!(m.peek_batch(10, 30).len(), 2, "12 bytes each, 30 allowed");
}

#[test]
fn one_senders_nonces_stay_in_order_whatever_their_fees() {
    let mut m = Mempool::new(limits(10, 1000));
    admit(&mut m, tx(1, 2, 100)).unwrap();
    admit(&mut m, tx(1, 1, 1)).unwrap();
    admit(&mut m, tx(2, 0, 50)).unwrap();
    admit(&mut m, tx(1, 3, 60)).unwrap();
    let order: Vec<(u8, u8)> = m
        .peek_batch(10, 1000)
        .iter()
        .map(|t| (t.0[0], t.0[8]))
        .collect();
    // Sender 1's head pays 1, so sender 2 goes first; then 1's chain in nonce order.
    assert_eq!(order, vec![(2, 0), (1, 1), (1, 2), (1, 3)]);
}

#[test]
fn in_flight_transactions_are_skipped_and_their_successors_offered() {
    let mut m = Mempool::new(limits(10, 1000));
    let first = admit(&mut m, tx(1, 0, 1)).unwrap().hash;
    admit(&mut m, tx(1, 1, 1)).unwrap();
    let batch = m.peek_batch_where(10, 1000, |h| *h != first);
    assert_eq!(batch, vec![tx(1, 1, 1).0]);
}

#[test]
fn a_richer_newcomer_evicts_the_cheapest_and_a_poorer_one_is_refused() {
    let mut m = Mempool::new(limits(3, 1000));
    let cheap = admit(&mut m, tx(1, 0, 2)).unwrap().hash;
    admit(&mut m, tx(2, 0, 5)).unwrap();
    admit(&mut m, tx(3, 0, 5)).unwrap();
    assert_eq!(
        admit(&mut m, tx(4, 0, 2)),
        Err(AdmitError::Full),
        "equal fee"
    );
    let got = admit(&mut m, tx(4, 0, 3)).unwrap();
    assert_eq!(got.removed, vec![cheap]);
    assert!(!m.contains(&cheap));
    assert_eq!(m.len(), 3);
    // Among equal fees the newest goes first.
    let newest = tx_hash(&tx(3, 0, 5).0);
    let got = admit(&mut m, tx(5, 0, 6)).unwrap();
    assert_eq!(got.removed[0], tx_hash(&tx(4, 0, 3).0));
    let got = admit(&mut m, tx(6, 0, 6)).unwrap();
    assert_eq!(got.removed, vec![newest]);
}

#[test]
fn the_byte_budget_evicts_as_many_as_needed_or_nothing() {
    let mut m = Mempool::new(limits(100, 40));
    let a = admit(&mut m, tx_of(1, 0, 1, 20)).unwrap().hash;
    let b = admit(&mut m, tx_of(2, 0, 2, 20)).unwrap().hash;
    assert_eq!(admit(&mut m, tx_of(3, 0, 2, 30)), Err(AdmitError::Full));
    assert_eq!((m.len(), m.bytes()), (2, 40), "a refusal changes nothing");
    let got = admit(&mut m, tx_of(3, 0, 3, 30)).unwrap();
    assert_eq!(got.removed, vec![a, b]);
    assert_eq!(m.bytes(), 30);
    assert_eq!(admit(&mut m, tx_of(4, 0, 9, 41)), Err(AdmitError::TooLarge));
}

#[test]
fn evictions_per_admission_are_bounded() {
    let mut m = Mempool::new(MempoolLimits {
        max_evictions: 2,
        ..limits(100, 36)
    });
    for s in 0..3 {
        admit(&mut m, tx(s, 0, 1)).unwrap();
    }
    assert_eq!(admit(&mut m, tx_of(9, 0, 9, 36)), Err(AdmitError::Full));
    assert_eq!(admit(&mut m, tx_of(9, 0, 9, 24)).unwrap().removed.len(), 2);
}

#[test]
fn a_higher_fee_replaces_the_same_sender_and_nonce() {
    let mut m = Mempool::new(limits(10, 1000));
    let old = admit(&mut m, tx(1, 0, 5)).unwrap().hash;
    admit(&mut m, tx(1, 1, 5)).unwrap();
    assert_eq!(admit(&mut m, tx(1, 0, 5)), Err(AdmitError::Duplicate));
    assert_eq!(
        admit(&mut m, tx_of(1, 0, 5, 13)),
        Err(AdmitError::Underpriced)
    );
    assert_eq!(admit(&mut m, tx(1, 0, 4)), Err(AdmitError::Underpriced));
    let got = admit(&mut m, tx(1, 0, 6)).unwrap();
    assert_eq!(got.removed, vec![old]);
    assert_eq!(m.len(), 2);
    assert_eq!(m.peek_batch(10, 1000), vec![tx(1, 0, 6).0, tx(1, 1, 5).0]);
}

#[test]
fn a_replacement_in_a_full_pool_needs_no_eviction() {
    let mut m = Mempool::new(limits(2, 1000));
    admit(&mut m, tx(1, 0, 1)).unwrap();
    admit(&mut m, tx(2, 0, 9)).unwrap();
    let got = admit(&mut m, tx(1, 0, 2)).unwrap();
    assert_eq!(got.removed, vec![tx_hash(&tx(1, 0, 1).0)]);
    assert_eq!(m.len(), 2);
}

#[test]
fn one_sender_cannot_hold_more_than_its_cap() {
    let mut m = Mempool::new(MempoolLimits {
        max_per_sender: 2,
        ..limits(10, 1000)
    });
    admit(&mut m, tx(1, 0, 1)).unwrap();
    admit(&mut m, tx(1, 1, 1)).unwrap();
    assert_eq!(admit(&mut m, tx(1, 2, 99)), Err(AdmitError::SenderFull));
    assert!(
        admit(&mut m, tx(1, 1, 2)).is_ok(),
        "a replacement is not a new one"
    );
    assert!(admit(&mut m, tx(2, 0, 1)).is_ok());
    assert_eq!(m.sender_len(&Address([1; 20])), 2);
}

#[test]
fn rejected_hashes_are_refused_and_forgotten_oldest_first() {
    let mut m = Mempool::new(limits(10, 1000));
    let bad: Vec<(Bytes, TxMeta)> = (0..4).map(|s| tx(s, 0, 1)).collect();
    for (t, _) in &bad {
        m.reject(tx_hash(t));
    }
    assert!(!m.is_rejected(&tx_hash(&bad[0].0)), "memory of 3");
    assert_eq!(admit(&mut m, bad[3].clone()), Err(AdmitError::Rejected));
    assert!(admit(&mut m, bad[0].clone()).is_ok());
}

#[test]
fn committed_memory_is_bounded_oldest_first() {
    let mut m = Mempool::new(MempoolLimits {
        committed_memory: 3,
        ..limits(100, 1000)
    });
    let hashes: Vec<Hash> = (0..5)
        .map(|s| admit(&mut m, tx(s, 0, 1)).unwrap().hash)
        .collect();
    m.mark_committed(&hashes);
    assert!(admit(&mut m, tx(0, 0, 1)).is_ok(), "forgotten");
    assert_eq!(
        admit(&mut m, tx(4, 0, 1)),
        Err(AdmitError::AlreadyCommitted)
    );
}

#[test]
fn committing_a_head_promotes_the_next_nonce() {
    let mut m = Mempool::new(limits(10, 1000));
    let h0 = admit(&mut m, tx(1, 0, 1)).unwrap().hash;
    admit(&mut m, tx(1, 1, 50)).unwrap();
    admit(&mut m, tx(2, 0, 10)).unwrap();
    m.mark_committed([&h0]);
    assert_eq!(m.peek_batch(1, 1000), vec![tx(1, 1, 50).0]);
    assert_eq!(m.heads.len(), 2);
}
