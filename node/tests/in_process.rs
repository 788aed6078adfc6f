//! Whole validators run in-process ([`Node::start`] / [`Node::stop`]): the consensus thread's
//! routing, the node protocol's voting hold, a transaction from submission to its execution
//! certificate, and a restart from the same database, without spawning processes.

mod common;

use common::{genesis, transfer};
use lanes_consensus::messages::Message;
use lanes_node::hold::Hold;
use lanes_node::shared::{Input, Metrics, StatusSnapshot};
use lanes_node::wire::{self, NodeMessage, NODE};
use lanes_node::{fixtures, Node};
use lanes_types::{Bytes, Hash};
use std::time::{Duration, Instant};

/// Waits up to `secs` seconds for `done` to hold of the node's status.
fn wait_for(node: &Node, secs: u64, what: &str, done: impl Fn(&StatusSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = node.shared().status();
        if done(&status) {
            return;
        }
        assert!(!node.failed(), "the node stopped while waiting for {what}");
        assert!(Instant::now() < deadline, "{what}: still {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Hands `bytes` to the consensus thread as if validator `from` had sent them.
fn deliver(node: &Node, from: u32, bytes: Vec<u8>) {
    let input = Input::Net { from, bytes };
    node.shared()
        .inputs
        .send(input)
        .expect("the consensus thread runs");
}

/// Submits `tx` through the consensus thread's queue, as the API does.
fn submit(node: &Node, tx: Bytes) -> Hash {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let input = Input::Submit {
        txs: vec![tx],
        reply,
    };
    node.shared()
        .inputs
        .send(input)
        .expect("the consensus thread runs");
    let mut answers = answer.blocking_recv().expect("an answer");
    answers.pop().expect("one answer").expect("admitted")
}

#[test]
fn node_messages_reach_the_node_protocol_and_f_plus_one_replies_lift_the_voting_hold() {
    let keys = fixtures::keys("in-process-hold");
    let g = genesis("in-process-hold", &keys);
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Only validator 0 runs: its peers are whatever we deliver in their name.
    let node =
        Node::start(common::params(&g, &keys, 0, dir.path(), Default::default())).expect("starts");
    assert_eq!(
        node.shared().status().voting_hold,
        Hold::Asking,
        "a new database"
    );
    let rejected = || Metrics::get(&node.shared().metrics.rejected_messages);

    // Malformed input on each path is rejected and counted; the node goes on.
    deliver(&node, 1, vec![NODE, 0xff, 1, 2]); // an unknown node message
    deliver(&node, 1, vec![NODE]); // a node message cut short
    deliver(&node, 2, vec![0x7f, 0]); // an unknown envelope
    deliver(&node, 2, vec![]); // nothing at all
    let deadline = Instant::now() + Duration::from_secs(10);
    while rejected() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} of 4 rejections counted",
            rejected()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // One reply is not enough (f + 1 = 2 are needed)...
    let reply = |seen_votes| {
        wire::node_bytes(&NodeMessage::HeightReply {
            height: 0,
            seen_votes,
        })
    };
    deliver(&node, 1, reply(false));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(node.shared().status().voting_hold, Hold::Asking);
    // ... a second, from another validator, that saw no vote of ours lifts the hold.
    deliver(&node, 2, reply(false));
    wait_for(&node, 10, "the hold lifted", |s| {
        s.voting_hold == Hold::Voting
    });
    assert_eq!(rejected(), 4, "valid node messages are not rejected");
    assert_eq!(
        node.shared().store.voting_hold().expect("readable"),
        None,
        "the lifted hold is stored"
    );
    node.stop().expect("stops cleanly");

    // The lifted hold survives a restart on the same database.
    let node = Node::start(common::params(&g, &keys, 0, dir.path(), Default::default()))
        .expect("restarts");
    assert_eq!(node.shared().status().voting_hold, Hold::Voting);
    node.stop().expect("stops cleanly");
}

#[test]
fn an_undecodable_consensus_message_is_counted_by_the_replica_once() {
    let keys = fixtures::keys("in-process-reject");
    let g = genesis("in-process-reject", &keys);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node =
        Node::start(common::params(&g, &keys, 0, dir.path(), Default::default())).expect("starts");
    let mut bytes = wire::consensus_bytes(&Message::SyncRequest { from: 1, to: 2 });
    bytes.truncate(bytes.len() - 1);
    deliver(&node, 3, bytes);
    let metrics = &node.shared().metrics;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Metrics::get(&metrics.rejected_messages) == 0 {
        assert!(Instant::now() < deadline, "the rejection is never counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(Metrics::get(&metrics.rejected_messages), 1, "counted once");
    node.stop().expect("stops cleanly");
}

#[test]
fn four_in_process_validators_certify_a_transfer_and_one_restarts_at_its_height() {
    let keys = fixtures::keys("in-process-net");
    let g = genesis("in-process-net", &keys);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut nodes: Vec<Node> = (0..4)
        .map(|i| {
            Node::start(common::params(&g, &keys, i, dir.path(), Default::default()))
                .expect("starts")
        })
        .collect();
    // A new network: every validator asks the others, learns it signed nothing, and votes.
    for node in &nodes {
        wait_for(node, 30, "the hold lifted", |s| {
            s.voting_hold == Hold::Voting
        });
    }
    let hash = submit(&nodes[1], transfer(&g, &keys[0], 0));
    for node in &nodes {
        wait_for(node, 30, "the transfer executed", |_| {
            matches!(node.shared().store.tx_location(&hash), Ok(Some(_)))
        });
        let height = node
            .shared()
            .store
            .tx_location(&hash)
            .unwrap()
            .unwrap()
            .height;
        wait_for(node, 30, "its block certified", |s| {
            s.certified_height >= height
        });
    }
    // Every node answers the transaction certified, with a proof a light client checks
    // against the validator set alone.
    for node in &nodes {
        let client = lanes_api::Client::new(&node.api_addr().to_string());
        let deadline = Instant::now() + Duration::from_secs(30);
        let info = loop {
            let info = client.tx(hash).expect("a committed transaction");
            if info.status == lanes_api::TxStatus::Certified {
                break info;
            }
            assert_eq!(info.status, lanes_api::TxStatus::Committed);
            assert!(Instant::now() < deadline, "never certified: {info:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        lanes_node::light::verify_tx(&hash, &info, &g).expect("verified");
    }

    // The chain is idle again: every validator reaches the same height, with the same root.
    let top = nodes
        .iter()
        .map(|n| n.shared().status().height)
        .max()
        .unwrap();
    for node in &nodes {
        wait_for(node, 30, "the same height", |s| s.height == top);
    }
    let root = nodes[0].shared().status().state_root;
    for node in &nodes {
        assert_eq!(node.shared().status().state_root, root);
    }

    // Validator 2 stops and starts again on its database: same height, same root, voting.
    let before = nodes[2].shared().status();
    nodes.remove(2).stop().expect("stops cleanly");
    let restarted = Node::start(common::params(&g, &keys, 2, dir.path(), Default::default()))
        .expect("restarts");
    let after = restarted.shared().status();
    assert_eq!(
        (after.height, &after.state_root),
        (before.height, &before.state_root)
    );
    assert_eq!(after.voting_hold, Hold::Voting);
    restarted.stop().expect("stops cleanly");
    for node in nodes {
        node.stop().expect("stops cleanly");
    }
}
