//! The classic PBFT traps, each driven step by step through four replicas with a hand-controlled
//! network: a view change while a block is prepared but not committed; a replica stuck in a
//! view change whose new primary is down; a restart right after voting; and garbage on the wire.

mod common;

use common::{all, Cluster};
use lanes_consensus::messages::Message;
use lanes_consensus::{Action, Event};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Block, Hash};

#[test]
fn a_block_prepared_but_not_committed_survives_the_view_change() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    // Let the block prepare everywhere, but only n3 sees the COMMITs: n3 commits, the others
    // are left with a prepared certificate.
    c.settle(60, |_, to, m| !matches!(m, Message::Commit(_)) || to == 3);
    assert_eq!(c.delivered[3].len(), 1, "n3 committed the block");
    let committed = c.delivered[3][0].0.hash();
    assert!(c.delivered[..3].iter().all(|d| d.is_empty()));
    // n3 crashes; the others time out and change view without it.
    c.crash(3);
    c.settle(3_000, |from, to, m| {
        from != 3 && to != 3 && (!matches!(m, Message::Commit(_)) || c_view_of(m) > 0)
    });
    for node in 0..3 {
        assert!(c.view(node) >= 1, "n{node} changed view");
        let d = &c.delivered[node as usize];
        assert_eq!(d.len(), 1, "n{node} committed height 1 in the new view");
        assert_eq!(
            d[0].0.hash(),
            committed,
            "the prepared block was kept at its height"
        );
    }
}

/// The view of a vote (0 for other messages).
fn c_view_of(m: &Message) -> u64 {
    match m {
        Message::Prepare(v) | Message::Commit(v) => v.view,
        _ => 0,
    }
}

#[test]
fn a_replica_stuck_in_a_view_change_with_a_dead_primary_moves_on() {
    let mut c = Cluster::new();
    // n1 (primary of view 1) is down, and n0 (primary of view 0) proposes nothing anybody hears.
    c.crash(1);
    c.submit(2, 1);
    c.settle(2_000, |from, _, m| {
        !(from == 0 && matches!(m, Message::PrePrepare { .. }))
    });
    // View 1 never starts (its primary is dead): the replicas must give up on it and start
    // view 2 (primary n2), where the transaction commits.
    c.settle(20_000, all);
    for node in [0, 2, 3] {
        assert!(c.view(node) >= 2, "n{node} is in view {}", c.view(node));
        assert_eq!(c.delivered[node as usize].len(), 1, "n{node} committed");
    }
}

#[test]
fn a_replica_restarted_right_after_voting_does_not_vote_again_differently() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    // Only the pre-prepare reaches n2, which votes PREPARE for it; then n2 crashes.
    c.advance(60);
    let mut original = None;
    c.run(|_, to, m| to == 2 && matches!(m, Message::PrePrepare { .. }));
    for (k, v) in &c.persisted[2] {
        if k.first() == Some(&b'p') {
            original = Some(v.clone());
        }
    }
    assert!(
        original.is_some(),
        "the PREPARE was persisted before it was sent"
    );
    c.queue.clear();
    c.crash(2);
    c.restart(2);
    // An equivocating primary now sends n2 another block for the same (view, height).
    let mut block = c.delivered_or_proposed_block();
    block.header.timestamp_ms += 1;
    let bytes = Message::PrePrepare { view: 0, block }.to_bytes();
    let actions = c.feed(2, Event::Message { from: 0, bytes });
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::Broadcast(Message::Prepare(_))
                | Action::Send {
                    message: Message::Prepare(_),
                    ..
                }
        )),
        "a restarted replica must not PREPARE a second block for the same view and height"
    );
}

/// Test helpers on the library's scripted cluster.
trait ClusterExt {
    /// The block n0 proposed at height 1 (from its prepared state, via a fresh proposal).
    fn delivered_or_proposed_block(&mut self) -> Block;
}

impl ClusterExt for Cluster {
    fn delivered_or_proposed_block(&mut self) -> Block {
        let mut c2 = Cluster::new();
        c2.submit(0, 1);
        c2.advance(60);
        let (_, _, bytes) = c2
            .queue
            .iter()
            .find(|(_, _, b)| matches!(Message::from_bytes(b), Ok(Message::PrePrepare { .. })))
            .expect("n0 proposed")
            .clone();
        match Message::from_bytes(&bytes) {
            Ok(Message::PrePrepare { block, .. }) => block,
            _ => unreachable!(),
        }
    }
}

#[test]
fn garbage_and_forged_messages_are_counted_and_change_nothing() {
    let mut c = Cluster::new();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![255],
        vec![2, 0, 0],
        (0..300u32).map(|i| (i * 7) as u8).collect(),
    ];
    for bytes in garbage {
        c.feed(1, Event::Message { from: 0, bytes });
    }
    // A vote that claims to come from n3 but is sent by n0, and one with a bad signature.
    let vote = lanes_consensus::messages::Vote {
        view: 0,
        height: 1,
        block_hash: Hash::ZERO,
        validator: 3,
        signature: lanes_types::Signature([1; 64]),
    };
    c.feed(
        1,
        Event::Message {
            from: 0,
            bytes: Message::Prepare(vote.clone()).to_bytes(),
        },
    );
    c.feed(
        1,
        Event::Message {
            from: 3,
            bytes: Message::Prepare(vote).to_bytes(),
        },
    );
    // An unknown sender index.
    c.feed(
        1,
        Event::Message {
            from: 9,
            bytes: Message::Txs(vec![]).to_bytes(),
        },
    );
    let r = c.replicas[1].as_ref().unwrap();
    assert_eq!(r.stats().rejected_messages, 7);
    assert_eq!(r.committed_height(), 0);
    assert!(c.persisted[1].is_empty(), "nothing was voted");
}

/// Kinds of message a validator signs on its own account (proposal, votes, view change).
const SIGNED_KINDS: [&str; 5] = [
    "pre-prepare",
    "prepare",
    "commit",
    "view-change",
    "new-view",
];

#[test]
fn a_muted_replica_signs_nothing_yet_follows_and_two_muted_replicas_stop_progress() {
    let mut c = Cluster::new();
    for r in [0, 3] {
        c.replicas[r].as_mut().unwrap().set_muted(true);
    }
    let spoke = std::cell::RefCell::new(Vec::new());
    let watch = |from: u32, _: u32, m: &Message| {
        if (from == 0 || from == 3) && SIGNED_KINDS.contains(&m.kind()) {
            spoke.borrow_mut().push((from, m.kind()));
        }
        true
    };
    // Primary 0 and backup 3 muted: 1 and 2 alone are no quorum, whatever the time.
    c.submit(1, 1);
    c.settle(8_000, watch);
    assert!(
        c.delivered.iter().all(|d| d.is_empty()),
        "no quorum without them"
    );
    assert!(
        spoke.borrow().is_empty(),
        "muted replicas signed {:?}",
        spoke.borrow()
    );
    // Unmute 3: a view change (started by 1, 2 and 3) elects a new primary and blocks commit;
    // muted 0 follows them without ever signing.
    c.replicas[3].as_mut().unwrap().set_muted(false);
    c.submit(2, 2);
    c.settle(30_000, watch);
    assert!(!c.delivered[1].is_empty(), "progress with three voters");
    for r in 0..4 {
        assert_eq!(
            c.delivered[r], c.delivered[1],
            "replica {r} has the same chain"
        );
    }
    assert!(
        spoke.borrow().iter().all(|(from, _)| *from == 3),
        "muted replica 0 signed {:?}",
        spoke.borrow()
    );
    assert!(c.view(1) > 0, "a view change replaced the muted primary");
}
