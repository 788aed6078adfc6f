use super::*;
use crate::wire::{NodeMessage, StateChunk};
use lanes_types::cert::checkpoint_message;
use lanes_types::{Bytes, CheckpointCertificate, Genesis};
use lanes_types::{Hash, SecretKey, ValidatorSignature};

fn keys() -> Vec<SecretKey> {
    crate::fixtures::keys("state-sync")
}

fn genesis(keys: &[SecretKey]) -> Genesis {
    crate::fixtures::genesis("state-sync-test", keys)
}

/// An execution certificate of (9, block, root) signed by `signers`.
fn cert(keys: &[SecretKey], g: &Genesis, signers: &[u32]) -> CheckpointCertificate {
    let (block, root) = (Hash::tagged("t", b"block"), Hash::tagged("t", b"root"));
    let roots = lanes_types::ExecRoots {
        state_root: root,
        receipts_root: Hash::tagged("t", b"receipts"),
    };
    let msg = checkpoint_message(&g.chain_id, 9, &block, &roots);
    CheckpointCertificate {
        height: 9,
        block_hash: block,
        state_root: root,
        receipts_root: roots.receipts_root,
        signatures: signers
            .iter()
            .map(|&v| ValidatorSignature {
                validator: v,
                signature: keys[v as usize].sign(&msg),
            })
            .collect(),
    }
}

fn chunk(session: u64, seq: u32, keys: &[u8], last: Option<CheckpointCertificate>) -> StateChunk {
    StateChunk {
        session,
        height: 9,
        block_hash: Hash::tagged("t", b"block"),
        state_root: Hash::tagged("t", b"root"),
        seq,
        entries: keys
            .iter()
            .map(|k| (Bytes(vec![*k]), Bytes(vec![1])))
            .collect(),
        last: last.is_some(),
        certificate: last,
    }
}

/// Claims under which every peer is far ahead.
const ALL: [u64; 4] = [100; 4];

/// A requester (validator 0 of 4) that has just asked a peer; returns it and (peer, session).
fn asking() -> (StateSync, u32, u64) {
    let mut s = StateSync::new(0, 4, 30_000, 0);
    s.blocks_unavailable(10);
    assert_eq!(s.need(5, false, 10), Need::Behind);
    let (peer, msg) = s.tick(Need::Behind, &ALL, 0, 10).expect("a request");
    let NodeMessage::StateRequest { session } = msg else {
        panic!("not a state request")
    };
    (s, peer, session)
}

#[test]
fn it_waits_for_a_pruned_answer_or_a_long_stall_before_fetching_state() {
    let mut s = StateSync::new(0, 4, 30_000, 0);
    assert_eq!(s.need(0, false, 1_000), Need::None, "not behind");
    assert_eq!(
        s.need(5, false, 1_000),
        Need::None,
        "behind, but blocks may come"
    );
    assert_eq!(
        s.need(5, false, 30_000),
        Need::Behind,
        "no progress for long"
    );
    s.executed(3, 30_000);
    assert_eq!(
        s.need(5, false, 31_000),
        Need::None,
        "progress resets the clock"
    );
    s.blocks_unavailable(31_000);
    assert_eq!(s.need(5, false, 31_000), Need::Behind, "a peer pruned them");
    assert_eq!(s.need(5, true, 31_000), Need::Diverged);
    assert!(s.tick(Need::None, &ALL, 0, 31_000).is_none());
}

#[test]
fn a_complete_certified_stream_yields_the_snapshot_and_attempts_rotate_peers() {
    let k = keys();
    let g = genesis(&k);
    let (mut s, peer, session) = asking();
    assert_ne!(peer, 0, "never itself");
    assert!(s.describe().is_some());
    assert!(s
        .on_chunk(peer, chunk(session, 0, &[1, 2], None), &g, 0, 20)
        .unwrap()
        .is_none());
    // Another peer's or another session's chunk is ignored, not an error.
    let other = (peer + 1) % 4;
    assert!(s
        .on_chunk(other, chunk(session, 1, &[3], None), &g, 0, 21)
        .unwrap()
        .is_none());
    assert!(s
        .on_chunk(peer, chunk(session + 1, 1, &[3], None), &g, 0, 21)
        .unwrap()
        .is_none());
    let done = s
        .on_chunk(
            peer,
            chunk(session, 1, &[3, 4], Some(cert(&k, &g, &[0, 1, 3]))),
            &g,
            0,
            22,
        )
        .unwrap()
        .expect("complete");
    assert_eq!(done.entries.len(), 4);
    assert_eq!(s.describe().as_deref(), Some("installing a snapshot"));
    s.installed(false, 30);
    let (next, _) = s
        .tick(Need::Behind, &ALL, 0, 2_000)
        .expect("retries after refusal");
    assert_ne!(next, peer, "the next attempt asks another peer");
}

#[test]
fn gaps_disorder_and_bad_certificates_abort_the_transfer() {
    let k = keys();
    let g = genesis(&k);
    let cases: Vec<(&str, Vec<StateChunk>)> = {
        let (_, _, session) = asking();
        vec![
            ("gap", vec![chunk(session, 1, &[1], None)]),
            ("disorder", vec![chunk(session, 0, &[2, 1], None)]),
            (
                "too few signatures",
                vec![chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1])))],
            ),
            ("no certificate", {
                let mut c = chunk(session, 0, &[1], None);
                c.last = true;
                vec![c]
            }),
            ("certificate for another root", {
                let mut c = chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1, 2])));
                c.state_root = Hash::tagged("t", b"other");
                vec![c]
            }),
            ("forged signature", {
                let mut bad = cert(&k, &g, &[0, 1, 2]);
                bad.signatures[1].signature = bad.signatures[0].signature;
                vec![chunk(session, 0, &[1], Some(bad))]
            }),
        ]
    };
    for (what, chunks) in cases {
        let (mut s, peer, _) = asking();
        let results: Vec<_> = chunks
            .into_iter()
            .map(|c| s.on_chunk(peer, c, &g, 0, 20))
            .collect();
        assert!(
            results.iter().any(|r| r.is_err()),
            "{what}: {:?}",
            results.len()
        );
        assert!(s.describe().is_none(), "{what}: aborted");
        assert!(
            s.tick(Need::Behind, &ALL, 0, 500).is_none(),
            "{what}: waits before retrying"
        );
        assert!(
            s.tick(Need::Behind, &ALL, 0, 1_100).is_some(),
            "{what}: then retries"
        );
    }
}

#[test]
fn a_silent_peer_times_out() {
    let (mut s, _, _) = asking();
    assert!(s.tick(Need::Behind, &ALL, 0, 5_000).is_none());
    assert!(s.describe().is_some());
    assert!(s
        .tick(Need::Behind, &ALL, 0, 10 + CHUNK_TIMEOUT_MS + 1)
        .is_none());
    assert!(s.describe().is_none(), "abandoned");
}

#[test]
fn a_snapshot_not_above_our_executed_or_committed_height_is_refused_before_its_entries() {
    let g = genesis(&keys());
    // (executed, committed) against the snapshot's height 9.
    for (executed, committed) in [(9, 0), (12, 0), (5, 9), (5, 12)] {
        let (mut s, peer, session) = asking();
        s.executed(executed, 15);
        // Out of order: an error, but the stale height must be found before the entries.
        let refused = s
            .on_chunk(peer, chunk(session, 0, &[2, 1], None), &g, committed, 20)
            .map(|_| ())
            .expect_err("a stale snapshot");
        assert!(
            refused.contains("height 9, below the") && refused.contains("roll this node back"),
            "({executed}, {committed}): {refused}"
        );
        assert!(s.describe().is_none(), "aborted, nothing kept");
    }
    // Above both: taken.
    let (mut s, peer, session) = asking();
    s.executed(8, 15);
    let taken = s.on_chunk(peer, chunk(session, 0, &[1, 2], None), &g, 8, 20);
    assert!(matches!(taken, Ok(None)), "{:?}", taken.map(|_| ()));
    assert!(s.describe().is_some_and(|d| d.contains("1 chunks")));
}

#[test]
fn only_peers_claiming_a_height_above_ours_are_asked() {
    // Validator 0 executed 4; the replica committed 6. Peer 1 claims 3, peer 2 claims 6
    // (not above), peer 3 claims 7.
    let claims = [4, 3, 6, 7];
    let mut asked = std::collections::BTreeSet::new();
    let mut s = StateSync::new(0, 4, 30_000, 0);
    s.executed(4, 0);
    for attempt in 0..6u64 {
        let now = 40_000 + attempt * 2_000;
        let (peer, _) = s
            .tick(Need::Behind, &claims, 6, now)
            .expect("peer 3 can serve");
        asked.insert(peer);
        s.abort(now);
    }
    assert_eq!(asked.into_iter().collect::<Vec<_>>(), vec![3]);
    // Nobody above us: nobody is asked; a short claim list asks nobody either.
    assert!(s.tick(Need::Behind, &[9, 3, 6, 6], 6, 60_000).is_none());
    assert!(s.tick(Need::Behind, &[9], 0, 60_000).is_none());
    assert!(s.describe().is_none());
}

#[test]
fn a_stream_nobody_asked_for_is_ignored_and_the_transfer_goes_on() {
    let k = keys();
    let g = genesis(&k);
    let complete = |session| chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1, 2])));
    // No transfer under way: even a complete certified stream is ignored.
    let mut idle = StateSync::new(0, 4, 30_000, 0);
    assert!(matches!(idle.on_chunk(1, complete(1), &g, 0, 5), Ok(None)));
    assert!(idle.describe().is_none());
    // A transfer under way: another session's or another peer's stream changes nothing.
    let (mut s, peer, session) = asking();
    let other = (peer + 1) % 4;
    assert!(matches!(
        s.on_chunk(other, complete(session), &g, 0, 20),
        Ok(None)
    ));
    assert!(matches!(
        s.on_chunk(peer, complete(session + 1), &g, 0, 20),
        Ok(None)
    ));
    assert!(s.describe().is_some_and(|d| d.contains("0 chunks")));
    let done = s.on_chunk(peer, complete(session), &g, 0, 21);
    assert!(
        matches!(done, Ok(Some(_))),
        "the asked stream still completes"
    );
}

#[test]
fn repairing_a_divergence_takes_a_snapshot_at_our_own_height_but_not_below() {
    let g = genesis(&keys());
    let repairing = |executed: u64| {
        let mut s = StateSync::new(0, 4, 30_000, 0);
        s.executed(executed, 0);
        // Peers claim our height: enough to repair, not to get ahead.
        let claims = [executed; 4];
        assert!(s.tick(Need::Behind, &claims, 9, 10).is_none());
        let (peer, msg) = s.tick(Need::Diverged, &claims, 9, 10).expect("a request");
        let NodeMessage::StateRequest { session } = msg else {
            panic!("not a state request")
        };
        (s, peer, session)
    };
    let (mut s, peer, session) = repairing(9);
    let taken = s.on_chunk(peer, chunk(session, 0, &[1], None), &g, 9, 20);
    assert!(matches!(taken, Ok(None)), "{:?}", taken.map(|_| ()));
    let (mut s, peer, session) = repairing(10);
    let refused = s.on_chunk(peer, chunk(session, 0, &[1], None), &g, 9, 20);
    assert!(refused.is_err_and(|e| e.contains("below the 10 we need")));
}
