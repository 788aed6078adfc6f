//! Issue 15's known holes, each as the scripted sequence that opened it: crashes, restarts and a
//! byzantine validator that chooses what each peer sees. Every test failed on the code before
//! its fix.

mod common;

use common::Cluster;
use lanes_consensus::messages::{CertifiedBlock, CheckpointVote, Message, Phase, Vote};
use lanes_consensus::sim::script::test_roots;
use lanes_consensus::sim::{sim_contexts, sim_replica_config, sim_transaction, SimContext};
use lanes_consensus::{Action, Config, Context, Event, Recovered, Replica, SafetyWrite};
use lanes_types::cert::checkpoint_message;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{payload_digest, Block, BlockHeader, Hash};
use std::collections::VecDeque;

const CHAIN: &str = "lanes-sim";

/// A vote of `phase` signed by validator `by` with its simulation key.
fn signed_vote(c: &Cluster, by: u32, phase: Phase, view: u64, block: &Block) -> Vote {
    let mut v = Vote {
        view,
        height: block.height(),
        block_hash: block.hash(),
        validator: by,
        signature: lanes_types::Signature([0; 64]),
    };
    v.signature = c.contexts[by as usize].sign(&v.signed_bytes(phase, CHAIN));
    v
}

/// Validator `by`'s CHECKPOINT for `block`, with the cluster's roots.
fn checkpoint(c: &Cluster, by: u32, block: &Block) -> CheckpointVote {
    let roots = test_roots(block);
    let msg = checkpoint_message(CHAIN, block.height(), &block.hash(), &roots);
    CheckpointVote {
        height: block.height(),
        block_hash: block.hash(),
        state_root: roots.state_root,
        receipts_root: roots.receipts_root,
        validator: by,
        signature: c.contexts[by as usize].sign(&msg),
    }
}

fn inject(c: &mut Cluster, from: u32, to: u32, message: &Message) -> Vec<Action> {
    let bytes = message.to_bytes();
    c.feed(to, Event::Message { from, bytes })
}

/// Every message sent so far, decoded.
fn sent(c: &Cluster) -> Vec<Message> {
    c.sent
        .iter()
        .map(|b| Message::from_bytes(b).expect("replicas send valid messages"))
        .collect()
}

/// Whether validator `by` ever sent a PREPARE for `hash`.
fn prepared_by(c: &Cluster, by: u32, hash: Hash) -> bool {
    sent(c)
        .iter()
        .any(|m| matches!(m, Message::Prepare(v) if v.validator == by && v.block_hash == hash))
}

fn vote_view(m: &Message) -> Option<u64> {
    match m {
        Message::Prepare(v) | Message::Commit(v) => Some(v.view),
        _ => None,
    }
}

/// Hole 1: a restarted replica forgot the NEW-VIEW that placed B2 at height 2, so the
/// byzantine primary of that view could make it PREPARE a different B2' there; with the
/// byzantine vote that was a quorum, and B2' would commit where n3 committed B2.
#[test]
fn hole1_a_restarted_replica_keeps_the_new_view_plan() {
    let mut c = Cluster::new();
    // View 0: B1 and B2 are prepared by everyone; only n3 sees the COMMITs and commits both.
    let commits_only_to_3 =
        |_: u32, to: u32, m: &Message| !matches!(m, Message::Commit(_)) || to == 3;
    c.submit(0, 1);
    c.settle(100, commits_only_to_3);
    c.submit(0, 2);
    c.settle(200, commits_only_to_3);
    assert_eq!(c.delivered[3].len(), 2, "n3 committed B1 and B2");
    assert!(c.delivered[..3].iter().all(|d| d.is_empty()));
    let (b1, cert1) = c.delivered[3][0].clone();
    // n3 is cut off from now on. n0, n1, n2 change view; n1 (byzantine, primary of view 1)
    // sends its NEW-VIEW only to n0 and n2 and withholds its own votes in view 1.
    let byzantine_view_1 = |from: u32, to: u32, m: &Message| {
        from != 3 && to != 3 && !(from == 1 && vote_view(m).is_some_and(|v| v >= 1))
    };
    c.settle(700, byzantine_view_1);
    for node in [0, 2] {
        let r = c.replicas[node as usize].as_ref().unwrap();
        assert_eq!(
            (r.view(), r.in_view_change()),
            (1, false),
            "n{node} in view 1"
        );
        assert!(
            prepared_by(&c, node, b1.hash()),
            "n{node} PREPAREd B1 in view 1"
        );
    }
    // n0 and n2 restart (kill -9).
    c.queue.clear();
    for node in [0, 2] {
        c.crash(node);
        c.restart(node);
    }
    // n1 and n3 show checkpoints at height 2; n0 and n2 ask n1 for the blocks, and n1 answers
    // with B1 (really committed, with its certificate) only.
    let b2 = c.delivered[3][1].0.clone();
    for node in [0, 2] {
        for by in [1, 3] {
            let vote = checkpoint(&c, by, &b2);
            inject(&mut c, by, node, &Message::Checkpoint(vote));
        }
    }
    let mut answered = 0;
    for _ in 0..20 {
        let t = c.now + 50;
        c.advance(t);
        for (from, to, bytes) in std::mem::take(&mut c.queue) {
            if to == 1 && matches!(Message::from_bytes(&bytes), Ok(Message::SyncRequest { .. })) {
                let blocks = vec![CertifiedBlock {
                    block: b1.clone(),
                    certificate: cert1.clone(),
                }];
                inject(&mut c, 1, from, &Message::SyncResponse(blocks));
                answered += 1;
            }
        }
        if answered >= 2 {
            break;
        }
    }
    assert_eq!(answered, 2, "n0 and n2 asked n1 for the blocks");
    assert_eq!(c.delivered[0].len(), 1, "n0 delivered B1");
    assert_eq!(c.delivered[2].len(), 1, "n2 delivered B1");
    // n1 now proposes a fresh B2' on B1 in view 1 and PREPAREs it.
    let txs = vec![sim_transaction(7, 50)];
    let evil = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 2,
            parent: b1.hash(),
            view: 1,
            proposer: 1,
            timestamp_ms: 9_999,
            payload_digest: payload_digest(&txs),
        },
        txs,
    };
    assert_ne!(evil.hash(), b2.hash());
    let vote = signed_vote(&c, 1, Phase::Prepare, 1, &evil);
    for node in [0, 2] {
        let pre_prepare = Message::PrePrepare {
            view: 1,
            block: evil.clone(),
        };
        inject(&mut c, 1, node, &pre_prepare);
        inject(&mut c, 1, node, &Message::Prepare(vote.clone()));
    }
    c.run(|from, to, _| from != 3 && to != 3);
    for node in [0, 2] {
        assert!(
            !prepared_by(&c, node, evil.hash()),
            "n{node} PREPAREd B2' at a height its NEW-VIEW gave to B2"
        );
        assert!(c.delivered[node as usize]
            .iter()
            .all(|(b, _)| b.hash() != evil.hash()));
    }
}

/// Hole 3: a `SyncResponse` nobody asked for was applied. Only the answer of the peer asked,
/// for the heights asked, may be.
#[test]
fn hole3_only_the_asked_peer_can_answer_a_sync_request() {
    let mut c = Cluster::new();
    // n2 is cut off while the others commit B1.
    c.submit(0, 1);
    c.settle(200, |from, to, _| from != 2 && to != 2);
    assert_eq!(c.delivered[0].len(), 1);
    let (b1, cert1) = c.delivered[0][0].clone();
    let response = Message::SyncResponse(vec![CertifiedBlock {
        block: b1.clone(),
        certificate: cert1,
    }]);
    c.queue.clear();
    // Unsolicited: ignored.
    inject(&mut c, 1, 2, &response);
    assert!(
        c.delivered[2].is_empty(),
        "an unsolicited sync response was applied"
    );
    // n0 and n1 show checkpoints at height 1: n2 asks one of them.
    for by in [0, 1] {
        let vote = checkpoint(&c, by, &b1);
        inject(&mut c, by, 2, &Message::Checkpoint(vote));
    }
    let mut asked = None;
    for _ in 0..10 {
        let t = c.now + 50;
        c.advance(t);
        for (from, to, bytes) in std::mem::take(&mut c.queue) {
            if from == 2 && matches!(Message::from_bytes(&bytes), Ok(Message::SyncRequest { .. })) {
                asked = Some(to);
            }
        }
        if asked.is_some() {
            break;
        }
    }
    let asked = asked.expect("n2 asked for the blocks");
    let other = if asked == 0 { 1 } else { 0 };
    inject(&mut c, other, 2, &response);
    assert!(
        c.delivered[2].is_empty(),
        "an answer from a peer not asked was applied"
    );
    inject(&mut c, asked, 2, &response);
    assert_eq!(
        c.delivered[2].len(),
        1,
        "the asked peer's answer is applied"
    );
}

/// Hole 4: the new primary broadcast its NEW-VIEW before persisting the view record; after a
/// crash in between it could start the same view with a different NEW-VIEW. The record comes
/// first, and a restarted primary re-serves exactly the NEW-VIEW it sent.
#[test]
fn hole4_the_new_primary_persists_its_new_view_before_sending_it() {
    let mut c = Cluster::new();
    c.crash(0); // primary of view 0
    c.submit(2, 1);
    let mut new_view = None;
    while c.now < 2_000 && new_view.is_none() {
        let t = c.now + 50;
        c.advance(t);
        while let Some((from, to, bytes)) = c.queue.pop_front() {
            let actions = c.feed(to, Event::Message { from, bytes });
            let mut persisted_view = None;
            for a in &actions {
                match a {
                    Action::Persist(writes) => {
                        for w in writes {
                            if let SafetyWrite::Put { key, value } = w {
                                if key.as_slice() == lanes_consensus::safety::VIEW_KEY {
                                    persisted_view =
                                        Some(<(u64, bool)>::from_bytes(value).unwrap());
                                }
                            }
                        }
                    }
                    Action::Broadcast(Message::NewView(nv)) => {
                        assert_eq!(
                            persisted_view,
                            Some((nv.view, true)),
                            "NEW-VIEW broadcast before its view record was persisted"
                        );
                        new_view = Some(Message::NewView(nv.clone()).to_bytes());
                    }
                    _ => {}
                }
            }
        }
    }
    let new_view = new_view.expect("n1 started view 1");
    // n1 crashes right after; restarted, it answers a replica still asking for view 1 with the
    // very same NEW-VIEW.
    c.queue.clear();
    c.crash(1);
    c.restart(1);
    let vc = lanes_consensus::messages::ViewChange {
        view: 1,
        validator: 3,
        stable: None,
        prepared: Vec::new(),
        signature: lanes_types::Signature([0; 64]),
    };
    let actions = inject(&mut c, 3, 1, &view_change_message(vc));
    let served: Vec<Vec<u8>> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to: 3,
                message: m @ Message::NewView(_),
            } => Some(m.to_bytes()),
            _ => None,
        })
        .collect();
    assert_eq!(
        served,
        vec![new_view],
        "the restarted primary re-serves its NEW-VIEW"
    );
}

/// Hole 5: after a restart a replica's own PREPARE was not in its vote set, so it needed a
/// quorum of others' PREPAREs to prepare a block it had already voted for.
#[test]
fn hole5_a_restarted_replica_counts_its_own_prepare() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    c.advance(60); // n0 proposes B1 and PREPAREs it
    let mut held = Vec::new();
    for (from, to, bytes) in std::mem::take(&mut c.queue) {
        match Message::from_bytes(&bytes).unwrap() {
            Message::PrePrepare { .. } if to == 1 || to == 2 => {
                c.feed(to, Event::Message { from, bytes });
            }
            Message::Prepare(_) if to == 2 => held.push((from, bytes)),
            _ => {}
        }
    }
    // n1's PREPARE to n2 is held back too; everything else is lost.
    for (from, to, bytes) in std::mem::take(&mut c.queue) {
        if to == 2 && from == 1 && matches!(Message::from_bytes(&bytes), Ok(Message::Prepare(_))) {
            held.push((from, bytes));
        }
    }
    assert_eq!(held.len(), 2, "n0's and n1's PREPAREs for n2");
    assert!(
        c.persisted[2].keys().any(|k| k.first() == Some(&b'p')),
        "n2 PREPAREd"
    );
    c.crash(2);
    c.restart(2);
    for (from, bytes) in held {
        c.feed(2, Event::Message { from, bytes });
    }
    // Two others plus its own PREPARE are a quorum: n2 COMMITs (fetching the block's body it
    // lost in the crash from a peer if it must).
    c.settle(300, |from, to, _| from != 3 && to != 3);
    assert!(
        sent(&c)
            .iter()
            .any(|m| matches!(m, Message::Commit(v) if v.validator == 2)),
        "the restarted n2 did not count its own PREPARE"
    );
}

/// Hole 6: a VIEW-CHANGE carried the payloads of every prepared block and a NEW-VIEW its
/// re-proposed blocks, so a few full blocks in flight made them larger than any frame. Now
/// they carry headers and certificates only, whatever the blocks weigh.
#[test]
fn hole6_view_changes_stay_small_with_full_blocks_in_flight() {
    let cfg = |me: u32| Config {
        max_block_txs: 2_048,
        max_block_bytes: 1 << 20,
        mempool: lanes_consensus::MempoolLimits {
            max_txs: 100_000,
            max_bytes: 64 << 20,
            committed_memory: 100_000,
            ..Default::default()
        },
        ..sim_replica_config(4, me)
    };
    let contexts = sim_contexts(4, 7);
    let mut replicas: Vec<Replica<SimContext>> = (0..4)
        .map(|i| Replica::new(cfg(i), contexts[i as usize].clone(), Recovered::default()).unwrap())
        .collect();
    let txs: Vec<_> = (0..4 * 2_048).map(|i| sim_transaction(7, i)).collect();
    let (_, actions) = replicas[0].submit_batch(txs, 0);
    let mut queue: VecDeque<(u32, u32, Message)> = VecDeque::new();
    let mut largest_block = 0;
    let mut largest_view_change = 0;
    let mut largest = 0;
    let mut route = |from: u32, actions: Vec<Action>, queue: &mut VecDeque<(u32, u32, Message)>| {
        for a in actions {
            if let Action::Broadcast(m) = a {
                let size = m.to_bytes().len();
                largest = largest.max(size);
                match &m {
                    Message::PrePrepare { .. } => largest_block = largest_block.max(size),
                    Message::ViewChange(_) | Message::NewView(_) => {
                        largest_view_change = largest_view_change.max(size)
                    }
                    _ => {}
                }
                for to in (0..4).filter(|&t| t != from) {
                    queue.push_back((from, to, m.clone()));
                }
            }
        }
    };
    route(0, actions, &mut queue);
    // Everything but COMMITs flows: four full blocks end up prepared everywhere, none commits.
    let mut now = 0;
    while now < 3_000 {
        now += 50;
        for i in 0..4u32 {
            let actions = replicas[i as usize].handle(Event::Timer, now);
            route(i, actions, &mut queue);
        }
        while let Some((from, to, m)) = queue.pop_front() {
            if matches!(m, Message::Commit(_) | Message::Txs(_)) {
                continue;
            }
            let bytes = m.to_bytes();
            let actions = replicas[to as usize].handle(Event::Message { from, bytes }, now);
            route(to, actions, &mut queue);
        }
    }
    assert!(
        replicas.iter().all(|r| r.view() >= 1),
        "a view change happened"
    );
    assert!(
        largest_block > 40_000,
        "blocks are full: {largest_block} bytes"
    );
    let bound = cfg(0).max_message_bytes();
    assert!(
        largest <= bound,
        "a message of {largest} bytes, bound {bound}"
    );
    assert!(
        bound < cfg(0).max_block_bytes + (64 << 10),
        "the bound {bound} is one full block, not a window of them"
    );
    assert!(
        largest_view_change < 64 << 10,
        "a VIEW-CHANGE or NEW-VIEW of {largest_view_change} bytes with blocks of {largest_block}"
    );
}

/// A VIEW-CHANGE message.
fn view_change_message(vc: lanes_consensus::messages::ViewChange) -> Message {
    Message::ViewChange(vc)
}

/// Hole 1, the primary's side: a primary restarted in its own view forgot its NEW-VIEW, so it
/// proposed fresh blocks at heights the NEW-VIEW gave to re-proposed ones (false equivocation
/// alarms, a stalled view). Restarted, it proposes above them.
#[test]
fn hole1_a_restarted_primary_proposes_above_its_new_view() {
    let mut c = Cluster::new();
    // B1 and B2 are prepared everywhere in view 0; nobody sees a COMMIT.
    let no_commits = |_: u32, _: u32, m: &Message| !matches!(m, Message::Commit(_));
    c.submit(0, 1);
    c.settle(100, no_commits);
    c.submit(0, 2);
    c.settle(200, no_commits);
    assert!(c.delivered.iter().all(|d| d.is_empty()));
    // n0 dies; n1, n2, n3 change view. n1 starts view 1 (re-proposing B1 and B2) and dies
    // right after: its NEW-VIEW reaches nobody.
    c.crash(0);
    let only_view_changes = |_: u32, _: u32, m: &Message| matches!(m, Message::ViewChange(_));
    let started = |c: &Cluster| {
        let r = c.replicas[1].as_ref().unwrap();
        r.view() == 1 && !r.in_view_change()
    };
    while c.now < 2_000 && !started(&c) {
        let t = c.now + 50;
        c.settle(t, only_view_changes);
    }
    let r1 = c.replicas[1].as_ref().unwrap();
    assert_eq!(
        (r1.view(), r1.in_view_change()),
        (1, false),
        "n1 started view 1"
    );
    c.queue.clear();
    c.crash(1);
    c.restart(1);
    // A new transaction: n1 proposes it above B1 and B2, never at their heights.
    c.submit(1, 3);
    let t = c.now + 100;
    c.advance(t);
    let proposed: Vec<u64> = sent(&c)
        .iter()
        .filter_map(|m| match m {
            Message::PrePrepare { view: 1, block } if block.header.proposer == 1 => {
                Some(block.height())
            }
            _ => None,
        })
        .collect();
    assert!(!proposed.is_empty(), "n1 proposed");
    assert!(
        proposed.iter().all(|&h| h >= 3),
        "n1 proposed at heights {proposed:?}, where its NEW-VIEW re-proposed B1 and B2"
    );
}

/// The primary proposes height h+1 before h is prepared (pipelining), so it has not PREPAREd
/// it yet when it sends the PRE-PREPARE. Restarted, it must not propose another block there.
#[test]
fn a_restarted_primary_never_proposes_twice_at_one_height() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    c.advance(60);
    c.submit(0, 2);
    c.advance(120);
    let first: Vec<(u64, Hash)> = proposals_of(&c, 0);
    assert_eq!(first.len(), 2, "n0 proposed B1 and B2");
    c.queue.clear();
    c.crash(0);
    c.restart(0);
    c.submit(0, 3);
    c.advance(200);
    let all = proposals_of(&c, 0);
    for (h, hash) in &all {
        assert!(
            first.iter().all(|(fh, fhash)| fh != h || fhash == hash),
            "n0 proposed a second block at height {h}"
        );
    }
    assert!(all.len() > first.len(), "n0 proposed the new transaction");
}

/// (height, hash) of every PRE-PREPARE validator `by` sent.
fn proposals_of(c: &Cluster, by: u32) -> Vec<(u64, Hash)> {
    let mut out: Vec<(u64, Hash)> = sent(c)
        .iter()
        .filter_map(|m| match m {
            Message::PrePrepare { block, .. } if block.header.proposer == by => {
                Some((block.height(), block.hash()))
            }
            _ => None,
        })
        .collect();
    out.dedup();
    out
}

/// Found by review: the payload of a block that only a byzantine replica saw prepared. n1 and
/// n2 PREPAREd B1 but never saw a quorum, restarted, and B1's payload was gone from every
/// honest replica; the byzantine n0 kept putting B1's certificate in its VIEW-CHANGEs and
/// answered no request, so every NEW-VIEW re-proposed a block nobody could fetch. A PREPARE
/// now persists the block it votes for.
#[test]
fn a_payload_withheld_by_the_only_replica_with_a_certificate_is_still_served() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    // n0 proposes B1 to n1 and n2 only, and keeps its own PREPARE and all COMMITs to itself.
    let phase1 = |from: u32, to: u32, m: &Message| match m {
        Message::Txs(_) => true,
        Message::PrePrepare { .. } => from == 0 && (to == 1 || to == 2),
        Message::Prepare(_) => from != 0,
        _ => false,
    };
    c.settle(150, phase1);
    let has = |c: &Cluster, n: usize, kind: u8| c.persisted[n].keys().any(|k| k[0] == kind);
    assert!(has(&c, 0, b'q'), "n0 holds a prepared certificate for B1");
    assert!(
        has(&c, 1, b'p') && has(&c, 2, b'p'),
        "n1 and n2 PREPAREd B1"
    );
    assert!(
        !has(&c, 1, b'q') && !has(&c, 2, b'q'),
        "n1 and n2 saw no certificate"
    );
    c.queue.clear();
    for n in [1, 2] {
        c.crash(n);
        c.restart(n);
    }
    // n0 is byzantine from now on: it sends VIEW-CHANGEs and nothing else.
    let byzantine_0 =
        |from: u32, _: u32, m: &Message| from != 0 || matches!(m, Message::ViewChange(_));
    let mut i = 10;
    while c.now < 60_000 {
        let t = c.now + 1_000;
        for n in 1..4 {
            c.submit(n, i);
            i += 1;
        }
        c.settle(t, byzantine_0);
    }
    let delivered: Vec<usize> = (1..4).map(|n| c.delivered[n].len()).collect();
    assert!(
        delivered.iter().all(|d| *d > 0),
        "after 60 s the honest replicas delivered {delivered:?} blocks"
    );
}

/// A byzantine peer asking for blocks again and again draws at most one full block's bytes
/// per fetch interval.
#[test]
fn block_requests_are_answered_within_a_byte_budget() {
    let mut c = Cluster::new();
    for i in 0..4 {
        c.submit(0, i);
        let t = c.now + 60;
        c.advance(t);
    }
    // n1 holds n0's proposals (nothing commits: all votes are dropped).
    c.run(|_, to, m| to == 1 && matches!(m, Message::PrePrepare { .. }));
    let blocks: Vec<Block> = sent(&c)
        .into_iter()
        .filter_map(|m| match m {
            Message::PrePrepare { block, .. } => Some(block),
            _ => None,
        })
        .collect();
    assert!(blocks.len() >= 2, "n0 proposed blocks");
    let mut served = 0;
    for _ in 0..50 {
        for b in &blocks {
            let request = Message::BlockRequest {
                height: b.height(),
                hash: b.hash(),
            };
            for a in inject(&mut c, 3, 1, &request) {
                if let Action::Send {
                    message: Message::BlockReply(block),
                    ..
                } = a
                {
                    served += block.txs.iter().map(|t| t.len()).sum::<usize>();
                }
            }
        }
    }
    let budget = sim_replica_config(4, 1).max_block_bytes;
    assert!(served > 0, "a request is answered");
    assert!(
        served <= budget,
        "served {served} bytes in one interval, budget {budget}"
    );
}

/// Pre-prepares for views not installed yet wait in a bounded buffer.
#[test]
fn proposals_for_future_views_wait_in_a_bounded_buffer() {
    let mut c = Cluster::new();
    let window = sim_replica_config(4, 0).window;
    let proposal = |view: u64, height: u64| {
        let txs = vec![sim_transaction(7, (view * 100 + height) as usize)];
        let block = Block {
            header: BlockHeader {
                chain_id: CHAIN.into(),
                height,
                parent: Hash::ZERO,
                view,
                proposer: 1,
                timestamp_ms: 1,
                payload_digest: payload_digest(&txs),
            },
            txs,
        };
        Message::PrePrepare { view, block }
    };
    // n1 is primary of views 1, 5, 9, ...: it floods n2 with far views and wild heights.
    for k in 0..500u64 {
        inject(
            &mut c,
            1,
            2,
            &proposal(1 + 4 * (k + 10), 1 + k % (3 * window)),
        );
    }
    let r = c.replicas[2].as_ref().unwrap();
    assert_eq!(
        r.waiting_proposals(),
        2 * window as usize,
        "full, and no fuller"
    );
}

/// The node takes an empty catch-up answer as "pruned, fetch the state" only from the peer it
/// asked: `sync_peer` names it while the request is outstanding, nobody before, and the next
/// peer once it answered.
#[test]
fn only_the_asked_peer_counts_as_the_catch_up_source() {
    let mut c = Cluster::new();
    c.submit(0, 1);
    c.settle(200, |from, to, _| from != 2 && to != 2);
    let (b1, _) = c.delivered[0][0].clone();
    c.queue.clear();
    assert_eq!(c.replicas[2].as_ref().unwrap().sync_peer(), None);
    for by in [0, 1] {
        let vote = checkpoint(&c, by, &b1);
        inject(&mut c, by, 2, &Message::Checkpoint(vote));
    }
    let t = c.now + 300;
    c.advance(t);
    let asked = c.replicas[2].as_ref().unwrap().sync_peer();
    assert!(matches!(asked, Some(0 | 1)), "n2 asked n0 or n1: {asked:?}");
    let peer = asked.unwrap();
    inject(&mut c, peer, 2, &Message::SyncResponse(Vec::new()));
    let next = c.replicas[2].as_ref().unwrap().sync_peer();
    assert_ne!(
        next,
        Some(peer),
        "answered: the next request goes to another peer"
    );
}
