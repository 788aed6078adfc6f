//! A hand-driven cluster of four simulated replicas shared by the consensus integration tests.

#![allow(dead_code)]

use lanes_consensus::messages::{CertifiedBlock, Message};
use lanes_consensus::safety::apply;
use lanes_consensus::sim::{sim_contexts, sim_replica_config, sim_transaction, SimContext};
use lanes_consensus::{Action, Event, Recovered, Replica};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Block, CommitCertificate, Hash};
use std::collections::{BTreeMap, VecDeque};

/// Four replicas and a network the test controls message by message.
pub struct Cluster {
    pub replicas: Vec<Option<Replica<SimContext>>>,
    pub contexts: Vec<SimContext>,
    pub persisted: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    pub delivered: Vec<Vec<(Block, CommitCertificate)>>,
    pub queue: VecDeque<(u32, u32, Vec<u8>)>,
    pub timers: Vec<Option<u64>>,
    pub now: u64,
    /// Every message sent, encoded, in order.
    pub sent: Vec<Vec<u8>>,
}

impl Cluster {
    pub fn new() -> Self {
        let contexts = sim_contexts(4, 7);
        Cluster {
            replicas: (0..4)
                .map(|i| Some(replica(i, &contexts, Recovered::default())))
                .collect(),
            contexts,
            persisted: vec![BTreeMap::new(); 4],
            delivered: vec![Vec::new(); 4],
            queue: VecDeque::new(),
            timers: vec![None; 4],
            now: 0,
            sent: Vec::new(),
        }
    }

    pub fn feed(&mut self, node: u32, event: Event) -> Vec<Action> {
        let now = self.now;
        let Some(r) = self.replicas[node as usize].as_mut() else {
            return Vec::new();
        };
        let actions = r.handle(event, now);
        for a in &actions {
            match a {
                Action::Persist(writes) => {
                    for w in writes {
                        apply(&mut self.persisted[node as usize], w);
                    }
                }
                Action::Send { to, message } => {
                    self.sent.push(message.to_bytes());
                    self.queue.push_back((node, *to, message.to_bytes()));
                }
                Action::Broadcast(message) => {
                    self.sent.push(message.to_bytes());
                    for to in (0..4).filter(|&t| t != node) {
                        self.queue.push_back((node, to, message.to_bytes()));
                    }
                }
                Action::Deliver { block, certificate } => {
                    self.delivered[node as usize].push((block.clone(), certificate.clone()));
                }
                Action::SetTimer { at } => self.timers[node as usize] = Some(*at),
                Action::ServeSync {
                    to,
                    from,
                    to_height,
                } => {
                    let chain = &self.delivered[node as usize];
                    let blocks: Vec<CertifiedBlock> = chain
                        .iter()
                        .filter(|(b, _)| (*from..=*to_height).contains(&b.height()))
                        .map(|(block, certificate)| CertifiedBlock {
                            block: block.clone(),
                            certificate: certificate.clone(),
                        })
                        .collect();
                    let bytes = Message::SyncResponse(blocks).to_bytes();
                    self.sent.push(bytes.clone());
                    self.queue.push_back((node, *to, bytes));
                }
                _ => {}
            }
        }
        // The executor: a deterministic root per block, fed straight back.
        for a in &actions {
            if let Action::Deliver { block, .. } = a {
                let root = Hash::tagged("test-root", &block.hash().0);
                let ev = Event::Executed {
                    height: block.height(),
                    block_hash: block.hash(),
                    state_root: root,
                };
                self.feed(node, ev);
            }
        }
        actions
    }

    /// Delivers queued messages (and the ones they cause) for which `pass` is true; the others
    /// are dropped. Stops when the queue is empty.
    pub fn run(&mut self, pass: impl Fn(u32, u32, &Message) -> bool) {
        let mut steps = 0;
        while let Some((from, to, bytes)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "message storm");
            let message = Message::from_bytes(&bytes).expect("replicas send valid messages");
            if pass(from, to, &message) {
                self.feed(to, Event::Message { from, bytes });
            }
        }
    }

    /// Advances time to `t` and fires every timer due by then.
    pub fn advance(&mut self, t: u64) {
        self.now = t;
        for node in 0..4u32 {
            if self.timers[node as usize].is_some_and(|at| at <= t) {
                self.timers[node as usize] = None;
                self.feed(node, Event::Timer);
            }
        }
    }

    /// Advances in small steps up to `t`, delivering what `pass` allows after each step.
    pub fn settle(&mut self, t: u64, pass: impl Fn(u32, u32, &Message) -> bool + Copy) {
        while self.now < t {
            let next = self.now + 50;
            self.advance(next);
            self.run(pass);
        }
    }

    pub fn submit(&mut self, node: u32, index: usize) {
        self.feed(node, Event::ClientTx(sim_transaction(7, index)));
    }

    pub fn crash(&mut self, node: u32) {
        self.replicas[node as usize] = None;
        self.timers[node as usize] = None;
    }

    pub fn restart(&mut self, node: u32) {
        let chain = &self.delivered[node as usize];
        let recovered = Recovered {
            committed_height: chain.len() as u64,
            committed_hash: chain.last().map_or(Hash::ZERO, |(b, _)| b.hash()),
            stable: None,
            safety: self.persisted[node as usize]
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        self.replicas[node as usize] = Some(replica(node, &self.contexts, recovered));
    }

    pub fn view(&self, node: u32) -> u64 {
        self.replicas[node as usize].as_ref().unwrap().view()
    }
}

pub fn replica(i: u32, contexts: &[SimContext], recovered: Recovered) -> Replica<SimContext> {
    Replica::new(
        sim_replica_config(4, i),
        contexts[i as usize].clone(),
        recovered,
    )
    .expect("valid safety records")
}

pub fn all(_: u32, _: u32, _: &Message) -> bool {
    true
}
