//! The event loop: the run's start (nodes, workload, crashes), the queue of timed events, and
//! what each event does (messages, timers, client submissions, crashes, restarts, executions).

use super::context::{new_replica, SimContext};
use super::network::{Byzantine, Fault};
use super::{sim_receipts_root, sim_tx, Ev, Node, Sim, TraceEntry, TRACE_LEN};
use crate::replica::{Event, Recovered};
use lanes_types::{ExecRoots, Hash};
use rand::Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

impl Sim {
    /// Creates the nodes (validators, then second twins) and queues the workload and crashes.
    pub(super) fn start(&mut self, contexts: &[SimContext]) {
        let n = self.n;
        for node in 0..self.schedule.nodes(n) {
            let ctx = match node.checked_sub(n) {
                None => contexts[node as usize].clone(),
                Some(i) => contexts[self.schedule.twins[i as usize] as usize].twin(),
            };
            let byzantine = self.schedule.byzantine(ctx.me);
            let replica = new_replica(&ctx, n, Recovered::default()).ok();
            self.nodes.push(Node {
                ctx,
                replica,
                byzantine,
                safety: BTreeMap::new(),
                chain: Vec::new(),
                roots: Vec::new(),
                stable: None,
                timer: None,
                delivered_txs: HashSet::new(),
                crash_at: None,
            });
        }
        for tx in 0..self.cfg.txs {
            let at = self.rng.gen_range(0..self.cfg.fault_ms.max(1));
            self.push(at, Ev::Submit { tx });
        }
        for fault in self.schedule.faults.clone() {
            if let Fault::Crash {
                node,
                at,
                until,
                point,
            } = fault
            {
                self.push(at, Ev::Crash { node, point });
                self.push(until, Ev::Restart { node });
            }
        }
    }

    /// Queues `ev` at time `at` (ties in the order queued).
    pub(super) fn push(&mut self, at: u64, ev: Ev) {
        let id = self.seq as usize;
        self.seq += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((at, self.seq, id)));
    }

    /// Appends an entry to the trace (the last [`TRACE_LEN`] are kept).
    pub(super) fn note(&mut self, node: u32, what: &'static str, a: u64, b: u64) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceEntry {
            t: self.now,
            node,
            what,
            a,
            b,
        });
    }

    /// Whether `node` runs honest code (twins are byzantine).
    pub(super) fn honest(&self, node: u32) -> bool {
        self.nodes[node as usize].byzantine.is_none()
    }

    /// The honest nodes.
    pub(super) fn honest_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.byzantine.is_none())
    }

    /// Whether faults healed and every honest node delivered every transaction.
    pub(super) fn done(&self) -> bool {
        self.now >= self.schedule.heal_at
            && self
                .honest_nodes()
                .all(|n| n.delivered_txs.len() == self.cfg.txs)
    }

    /// Runs events in time order until done, a violation, or the liveness deadline.
    pub(super) fn run_loop(&mut self) {
        let deadline = self.schedule.heal_at + self.cfg.settle_ms;
        while let Some(Reverse((at, _, id))) = self.queue.pop() {
            if at > deadline || self.violation.is_some() {
                break;
            }
            self.now = at;
            let Some(ev) = self.events.remove(&id) else {
                continue;
            };
            self.step(ev);
            self.next_round();
            if self.done() {
                break;
            }
        }
    }

    /// Twins: moves to the next partition round when an honest replica reaches a higher view,
    /// or when the round has lasted `round_ms`.
    fn next_round(&mut self) {
        if self.schedule.partitions.is_empty() {
            return;
        }
        let top = self
            .honest_nodes()
            .filter_map(|n| n.replica.as_ref())
            .map(|r| r.view())
            .max()
            .unwrap_or(0);
        let timed_out = self.now >= self.round_since + self.schedule.round_ms;
        if top > self.top_view || timed_out {
            self.top_view = self.top_view.max(top);
            self.round += 1;
            self.round_since = self.now;
            self.note(0, "partition-round", self.round as u64, top);
        }
    }

    /// Carries out one event.
    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Msg { to, from, bytes } => {
                let tag = bytes.first().copied().unwrap_or(255) as u64;
                self.note(to, "recv", from as u64, tag);
                self.feed(
                    to,
                    Event::Message {
                        from,
                        bytes: bytes.as_ref().clone(),
                    },
                );
            }
            Ev::Timer { node, at } => {
                if self.nodes[node as usize].timer == Some(at) {
                    self.note(node, "timer", at, 0);
                    self.feed(node, Event::Timer);
                }
            }
            Ev::Submit { tx } => self.submit(tx),
            Ev::Crash { node, point } => self.arm_crash(node, point),
            Ev::Restart { node } => self.restart(node),
            Ev::Executed { node, height } => self.executed(node, height),
        }
    }

    /// The node stored block `height`: report its root (a wrong one if byzantine) to the replica.
    fn executed(&mut self, node: u32, height: u64) {
        let n = &self.nodes[node as usize];
        if n.replica.is_none() || n.chain.len() < height as usize || height == 0 {
            return;
        }
        let block_hash = n.chain[height as usize - 1].block.hash();
        let mut state_root = n.roots[height as usize - 1];
        if n.byzantine == Some(Byzantine::WrongRoot) {
            state_root = Hash::tagged("lanes/sim-wrong-root", &state_root.0);
        }
        let roots = ExecRoots {
            state_root,
            receipts_root: sim_receipts_root(&block_hash),
        };
        self.feed(
            node,
            Event::Executed {
                height,
                block_hash,
                roots,
            },
        );
    }

    /// The client submits transaction `tx` to a random honest node that is up (unless it is
    /// committed everywhere), and retries later.
    fn submit(&mut self, tx: usize) {
        let hash = self.tx_hashes[tx];
        if self.committed_any.contains(&hash)
            && self.honest_nodes().all(|n| n.delivered_txs.contains(&hash))
        {
            return;
        }
        let up: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.honest(i) && self.nodes[i as usize].replica.is_some())
            .collect();
        if !up.is_empty() && !self.committed_any.contains(&hash) {
            let node = up[self.rng.gen_range(0..up.len())];
            self.submitted.insert(hash);
            self.note(node, "submit", tx as u64, 0);
            self.feed(node, Event::ClientTx(sim_tx(self.cfg.seed, tx)));
        }
        // Like a real client: retry until the transaction is in the chain.
        let retry = self.now + 1_500;
        self.push(retry, Ev::Submit { tx });
    }
}
