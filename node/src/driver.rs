//! The consensus thread: it owns the [`Replica`], carries out its actions in order (persist,
//! send, hand decided blocks to the apply thread in `apply.rs`), and runs the node's own
//! protocol around it (voting hold, state transfer requests, height queries). It never runs on
//! tokio's workers.
//!
//! One pass of the loop: wait for an input (or the replica's timer), route it to the replica
//! and/or the [`NodeProtocol`] ([`Step::route`]), let both look at the time, carry out what
//! they asked for (node actions first: a lifted hold unmutes the replica before it votes), and
//! publish counters and status.

use super::apply::ApplyJob;
use super::catch_up::serve_sync;
use super::context::{Clock, NodeContext};
use super::hold::Hold;
use super::outbox::{reported_roots, send, send_node};
use super::protocol::{NodeAction, NodeEvent, NodeProtocol};
use super::shared::{Input, Metrics, Shared};
use super::state_sync;
use super::wire::Wire;
use anyhow::{anyhow, Result};
use lanes_consensus::{Action, Alarm, Event, Recovered, Replica, SafetyWrite, Stats};
use lanes_storage::{Head, Store};
use lanes_types::{tx_hash, Block, CheckpointCertificate, Hash};
use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for an input when no timer is due sooner, in milliseconds: the node protocol
/// looks at the time at least this often.
const IDLE_WAIT_MS: u64 = 1_000;

/// What the consensus thread needs besides the replica and its queues.
pub struct ConsensusDriver {
    /// Builds a replica from recovered state: at start-up, and again after a state transfer.
    pub make_replica: Box<dyn Fn(Recovered) -> Result<Replica<NodeContext>> + Send>,
    /// The async runtime, for network sends that wait for queue room.
    pub runtime: tokio::runtime::Handle,
    /// The node's clock.
    pub clock: Clock,
}

/// The consensus thread's state between two inputs.
struct Step {
    replica: Replica<NodeContext>,
    node: NodeProtocol,
    /// When the replica asked to be woken (`Action::SetTimer`).
    timer: Option<u64>,
    /// The replica's counters already added to the node's metrics.
    counted: Stats,
    /// Transactions handed to the apply thread and not executed yet.
    delivered: Delivered,
}

/// The transactions of blocks handed to the apply thread and not executed yet: out of the
/// mempool already and not yet in the transaction index, so `GET /tx` answers them pending
/// rather than unknown.
#[derive(Default)]
struct Delivered {
    by_height: BTreeMap<u64, Vec<Hash>>,
    hashes: HashSet<Hash>,
}

impl Delivered {
    /// `block` goes to the apply thread.
    fn add(&mut self, block: &Block) {
        let hashes: Vec<Hash> = block.txs.iter().map(|t| tx_hash(t)).collect();
        self.hashes.extend(hashes.iter().copied());
        self.by_height.insert(block.header.height, hashes);
    }

    /// Blocks up to `height` are executed and stored.
    fn executed(&mut self, height: u64) {
        let above = self.by_height.split_off(&(height + 1));
        for hash in std::mem::replace(&mut self.by_height, above)
            .into_values()
            .flatten()
        {
            self.hashes.remove(&hash);
        }
    }

    /// Whether `hash` is in a delivered block not executed yet.
    fn contains(&self, hash: &Hash) -> bool {
        self.hashes.contains(hash)
    }
}

/// What one input made the replica and the node protocol ask for.
#[derive(Default)]
struct Todo {
    replica: Vec<Action>,
    node: Vec<NodeAction>,
}

impl ConsensusDriver {
    /// Runs the consensus thread until [`Input::Shutdown`] (or every sender is gone): routes
    /// every input to the replica or the node protocol and carries out what they return.
    pub fn run(
        self,
        replica: Replica<NodeContext>,
        inputs: Receiver<Input>,
        shared: Arc<Shared>,
        exec: Sender<ApplyJob>,
    ) -> Result<()> {
        let mut step = self.start(replica, &shared)?;
        loop {
            let wait = step.timer.map_or(IDLE_WAIT_MS, |t| {
                t.saturating_sub(self.clock.now()).min(IDLE_WAIT_MS)
            });
            let input = match inputs.recv_timeout(Duration::from_millis(wait)) {
                Ok(Input::Shutdown) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
            };
            let now = self.clock.now();
            let mut todo = match input {
                Some(input) => self.route(&mut step, input, &shared, now)?,
                None => Todo::default(),
            };
            step.tick(&mut todo, now);
            for action in todo.node {
                self.carry_out_node(action, &mut step.replica, &shared, &exec)?;
            }
            for action in todo.replica {
                carry_out(action, &shared, &exec, &mut step)?;
            }
            step.publish(&shared);
        }
    }

    /// The state the loop starts from: the node protocol reads the stored voting hold and
    /// mutes the replica while it holds.
    fn start(&self, mut replica: Replica<NodeContext>, shared: &Shared) -> Result<Step> {
        let hold = Hold::from_stored(shared.store.voting_hold()?);
        let (genesis, me, now) = (shared.genesis.clone(), shared.me, self.clock.now());
        let node = NodeProtocol::new(genesis, me, hold, replica.committed_height(), now);
        if node.holding() {
            tracing::warn!(
                until = hold.until(),
                "started without the consensus safety state: holding votes until caught up"
            );
        }
        replica.set_muted(node.holding());
        Ok(Step {
            replica,
            node,
            timer: None,
            counted: Stats::default(),
            delivered: Delivered::default(),
        })
    }

    /// Hands one input to the replica and/or the node protocol.
    fn route(&self, step: &mut Step, input: Input, shared: &Shared, now: u64) -> Result<Todo> {
        let mut todo = Todo::default();
        match input {
            Input::Net { from, bytes } => return Ok(step.route_net(from, bytes, now)),
            Input::Pending { hash, reply } => {
                let pending = step.replica.is_pending(&hash) || step.delivered.contains(&hash);
                let _ = reply.send(pending);
            }
            Input::Submit { txs, reply } => {
                let (result, actions) = step.replica.submit_batch(txs, now);
                let _ = reply.send(result);
                todo.replica = actions;
            }
            Input::Executed {
                height,
                block_hash,
                roots,
            } => {
                step.delivered.executed(height);
                todo.node = step.node.handle(NodeEvent::Executed(height), now);
                let roots = reported_roots(shared, roots);
                let event = Event::Executed {
                    height,
                    block_hash,
                    roots,
                };
                todo.replica = step.replica.handle(event, now);
            }
            Input::StateInstalled(result) => {
                let installed = result.as_ref().ok().map(|(head, _)| head.height);
                todo.node = step.node.handle(NodeEvent::Installed(installed), now);
                match result {
                    Ok((head, certificate)) => {
                        todo.replica = self.restart_replica(step, head, certificate, shared, now)?
                    }
                    Err(e) => tracing::warn!(error = %e, "state snapshot refused"),
                }
            }
            Input::Shutdown => unreachable!("the loop stops on Shutdown"),
        }
        Ok(todo)
    }

    /// Starts the replica again from an installed state snapshot, with every vote it promised
    /// (the safety records are untouched by a state transfer).
    fn restart_replica(
        &self,
        step: &mut Step,
        head: Head,
        certificate: CheckpointCertificate,
        shared: &Shared,
        now: u64,
    ) -> Result<Vec<Action>> {
        step.replica = (self.make_replica)(Recovered {
            committed_height: head.height,
            committed_hash: head.block_hash,
            committed_roots: head.roots(),
            stable: Some(certificate),
            safety: shared.store.safety_records()?,
        })?;
        step.replica.set_muted(step.node.holding());
        step.counted = Stats::default();
        step.timer = None;
        step.delivered = Delivered::default();
        Ok(step.replica.handle(Event::Timer, now))
    }

    /// Carries out one action of the node protocol.
    fn carry_out_node(
        &self,
        action: NodeAction,
        replica: &mut Replica<NodeContext>,
        shared: &Arc<Shared>,
        exec: &Sender<ApplyJob>,
    ) -> Result<()> {
        match action {
            NodeAction::Send { to, message } => send_node(shared, to, &message),
            NodeAction::PersistHold(hold) => {
                shared.store.set_voting_hold(hold.to_stored())?;
                replica.set_muted(hold.holding());
            }
            NodeAction::ServeState { to, session } => {
                state_sync::serve(shared, &self.runtime, to, session);
            }
            NodeAction::Install(snapshot) => exec
                .send(ApplyJob::Install(snapshot))
                .map_err(|_| anyhow!("the apply thread stopped"))?,
            NodeAction::Reject { from, reason } => {
                Metrics::add(&shared.metrics.rejected_messages, 1);
                tracing::warn!(from, %reason, "node message rejected");
            }
        }
        Ok(())
    }
}

impl Step {
    /// Routes a message from validator `from`: the node's own messages to the node protocol,
    /// consensus messages to the replica (the node protocol sees them too, to learn who is
    /// alive and who answered a catch-up request); undecodable bytes are rejected.
    fn route_net(&mut self, from: u32, bytes: Vec<u8>, now: u64) -> Todo {
        let mut todo = Todo::default();
        match Wire::parse(bytes) {
            Err(e) => {
                let reason = format!("undecodable message: {e}");
                todo.node.push(NodeAction::Reject { from, reason });
            }
            Ok(Wire::Node(message)) => {
                todo.node = self.node.handle(NodeEvent::Message { from, message }, now);
            }
            Ok(Wire::Consensus(bytes)) => {
                let sync_peer = self.replica.sync_peer();
                let event = NodeEvent::Consensus {
                    from,
                    bytes: &bytes,
                    sync_peer,
                };
                todo.node = self.node.handle(event, now);
                todo.replica = self.replica.handle(Event::Message { from, bytes }, now);
            }
        }
        todo
    }

    /// After every input: fires the replica's timer if due, and lets the node protocol look
    /// at what the replica knows of the network.
    fn tick(&mut self, todo: &mut Todo, now: u64) {
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            todo.replica.extend(self.replica.handle(Event::Timer, now));
        }
        let tick = NodeEvent::Tick {
            network_height: self.replica.network_height(),
            diverged: self.replica.diverged_at().is_some(),
            claims: self.replica.claims(),
            committed: self.replica.committed_height(),
        };
        todo.node.extend(self.node.handle(tick, now));
    }

    /// Publishes the replica's counters and the status `/status` shows.
    fn publish(&mut self, shared: &Shared) {
        publish_counters(self.replica.stats(), &mut self.counted, &shared.metrics);
        let (replica, node) = (&self.replica, &self.node);
        shared.update_status(|s| {
            s.view = replica.view();
            s.primary = replica.primary();
            s.in_view_change = replica.in_view_change();
            s.certified_height = replica.stable_height();
            s.mempool = replica.mempool_len();
            s.diverged_at = replica.diverged_at();
            s.state_sync = node.state_sync();
            s.voting_hold = node.hold();
        });
    }
}

/// Adds what the replica counted since `counted` to the node's counters, which also count the
/// node's own rejections and never go back when the replica is rebuilt (state transfer).
fn publish_counters(stats: &Stats, counted: &mut Stats, metrics: &Metrics) {
    Metrics::add(
        &metrics.rejected_messages,
        stats.rejected_messages - counted.rejected_messages,
    );
    Metrics::add(
        &metrics.view_changes,
        stats.view_changes - counted.view_changes,
    );
    Metrics::add(
        &metrics.displaced_txs,
        stats.displaced_txs - counted.displaced_txs,
    );
    *counted = stats.clone();
}

/// Carries out one action. Persist is synced before returning, so every later action (a vote)
/// leaves only after the record that forbids a conflicting one is durable.
fn carry_out(
    action: Action,
    shared: &Shared,
    exec: &Sender<ApplyJob>,
    step: &mut Step,
) -> Result<()> {
    match action {
        Action::Persist(writes) => persist(&shared.store, &writes)?,
        Action::Send { to, message } => send(shared, Some(to), &message),
        Action::Broadcast(message) => send(shared, None, &message),
        Action::Deliver { block, certificate } => {
            // The backlog is bounded by consensus itself: nothing is proposed beyond the
            // window above the last execution certificate, and certificates need execution.
            step.delivered.add(&block);
            exec.send(ApplyJob::Block(block, certificate))
                .map_err(|_| anyhow!("the apply thread stopped"))?;
        }
        Action::Certified(cert) => {
            exec.send(ApplyJob::Certificate(cert))
                .map_err(|_| anyhow!("the apply thread stopped"))?;
        }
        Action::ServeSync {
            to,
            from,
            to_height,
        } => serve_sync(shared, to, from, to_height),
        Action::SetTimer { at } => step.timer = Some(at),
        Action::Alarm(alarm) => match alarm {
            Alarm::Divergence {
                height,
                ours,
                certified,
            } => {
                Metrics::add(&shared.metrics.divergence_alarms, 1);
                tracing::error!(height, %ours, %certified, "DIVERGENCE: a quorum certified another state root; this node stops acknowledging blocks");
            }
            Alarm::Fork { height } => {
                tracing::error!(
                    height,
                    "a decided block does not extend our chain: more than f faulty validators"
                );
            }
            Alarm::Equivocation {
                validator,
                view,
                height,
            } => {
                Metrics::add(&shared.metrics.equivocation_alarms, 1);
                tracing::warn!(validator, view, height, "equivocation seen");
            }
        },
    }
    Ok(())
}

fn persist(store: &Store, writes: &[SafetyWrite]) -> Result<()> {
    let mut puts: Vec<(&[u8], &[u8])> = Vec::new();
    let mut ranges = Vec::new();
    for w in writes {
        match w {
            SafetyWrite::Put { key, value } => puts.push((key, value)),
            SafetyWrite::DeleteThrough { height } => {
                ranges.extend(lanes_consensus::safety::delete_through_ranges(*height));
            }
        }
    }
    store
        .safety_write(&puts, &ranges)
        .map_err(|e| anyhow!("cannot persist the consensus safety state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_the_replicas_counts_and_never_go_back_when_it_is_rebuilt() {
        let metrics = Metrics::default();
        let mut counted = Stats::default();
        Metrics::add(&metrics.rejected_messages, 2); // the node's own rejections
        let stats = |rejected, view_changes| Stats {
            rejected_messages: rejected,
            view_changes,
            displaced_txs: rejected * 10,
            ..Stats::default()
        };
        publish_counters(&stats(5, 1), &mut counted, &metrics);
        publish_counters(&stats(7, 1), &mut counted, &metrics);
        assert_eq!(Metrics::get(&metrics.rejected_messages), 9);
        // A state transfer rebuilds the replica: its counts start again from zero.
        counted = Stats::default();
        publish_counters(&stats(1, 0), &mut counted, &metrics);
        assert_eq!(Metrics::get(&metrics.rejected_messages), 10);
        assert_eq!(Metrics::get(&metrics.view_changes), 1);
        assert_eq!(Metrics::get(&metrics.displaced_txs), 80);
    }
}
