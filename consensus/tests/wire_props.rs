//! Property tests on the wire: every message replicas really send (collected from a cluster
//! run through proposals, votes, checkpoints, a view change and catch-up) round-trips through the
//! codec, and no byte string -- random, truncated or mutated -- panics a replica or makes it
//! vote.

mod common;

use common::{all, Cluster};
use lanes_consensus::messages::Message;
use lanes_consensus::Event;
use lanes_types::codec::{Decode, Encode};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Messages from a run with a normal case, a view change (primary n0 crashes) and a restart,
/// plus a payload request and its answer.
fn corpus() -> &'static Vec<Vec<u8>> {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut c = Cluster::new();
        for i in 0..6 {
            c.submit(i % 4, i as usize);
        }
        c.settle(1_000, all);
        c.crash(0);
        c.submit(1, 100);
        c.settle(6_000, |from, to, _| from != 0 && to != 0);
        c.restart(0);
        c.settle(12_000, all);
        assert!(c.delivered[0].len() >= 2, "the restarted replica caught up");
        // A payload fetched by hash: what a replica that accepted a block by header asks, and
        // the answer (the adversary tests drive the real exchange).
        let (block, _) = c.delivered[1].last().expect("blocks").clone();
        c.sent.push(
            Message::BlockRequest {
                height: block.height(),
                hash: block.hash(),
            }
            .to_bytes(),
        );
        c.sent.push(Message::BlockReply(block).to_bytes());
        let kinds: std::collections::BTreeSet<&str> = c
            .sent
            .iter()
            .map(|b| Message::from_bytes(b).expect("valid").kind())
            .collect();
        for kind in Message::KINDS {
            assert!(kinds.contains(kind), "corpus lacks {kind}: {kinds:?}");
        }
        c.sent
    })
}

/// A fresh replica (n1) fed `bytes` from n2: must not panic, and must not vote.
fn feed_fresh(bytes: Vec<u8>) -> bool {
    let mut c = Cluster::new();
    let actions = c.feed(1, Event::Message { from: 2, bytes });
    !actions.iter().any(|a| {
        matches!(
            a,
            lanes_consensus::Action::Broadcast(Message::Prepare(_) | Message::Commit(_))
        )
    })
}

#[test]
fn every_message_sent_round_trips() {
    for bytes in corpus() {
        let m = Message::from_bytes(bytes).expect("decodes");
        assert_eq!(&m.to_bytes(), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(feed_fresh(bytes));
    }

    #[test]
    fn truncated_messages_do_not_decode(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let bytes = pick.get(corpus());
        let len = cut.index(bytes.len());
        prop_assert!(Message::from_bytes(&bytes[..len]).is_err());
    }

    #[test]
    fn mutated_messages_never_panic(pick in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut bytes = pick.get(corpus()).clone();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        // A flipped byte either fails to decode, fails a check, or is harmless; a vote can only
        // follow from a valid pre-prepare from the primary, which n2 is not in view 0.
        prop_assert!(feed_fresh(bytes));
    }
}

#[test]
fn an_empty_sync_response_is_recognised_as_such() {
    assert!(Message::is_empty_sync_response(
        &Message::SyncResponse(Vec::new()).to_bytes()
    ));
    for bytes in corpus() {
        let empty =
            matches!(Message::from_bytes(bytes), Ok(Message::SyncResponse(b)) if b.is_empty());
        assert_eq!(Message::is_empty_sync_response(bytes), empty);
    }
}
