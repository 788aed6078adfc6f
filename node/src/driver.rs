//! The consensus thread: it owns the [`Replica`], carries out its actions in order (persist,
//! send, hand decided blocks to the apply thread in `apply.rs`), and runs the node's own
//! protocol around it (voting hold, state transfer requests, height queries). It never runs on
//! tokio's workers.

use super::apply::ApplyJob;
use super::hold::Hold;
use super::protocol::{NodeAction, NodeEvent, NodeProtocol};
use super::shared::{Input, Metrics, Shared};
use super::state_sync;
use super::wire::{self, NodeMessage, Wire};
use anyhow::Result;
use lanes_consensus::messages::{CertifiedBlock, Message};
use lanes_consensus::{
    Action, Alarm, Context, Ed25519Keys, Event, Recovered, Replica, SafetyWrite, Stats,
};
use lanes_executor::tx::{check_stateless_unsigned, verify_signatures};
use lanes_storage::Store;
use lanes_types::codec::Encode;
use lanes_types::{Block, Genesis, Hash, Signature};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds on a monotonic clock that starts at the Unix time of the node's start.
#[derive(Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            base_ms,
            start: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, never going backwards.
    pub fn now(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The node's [`Context`]: ed25519 keys, the executor's stateless checks, the transaction index.
pub struct NodeContext {
    /// Signing and verification.
    pub keys: Ed25519Keys,
    /// Chain id and parameters for the stateless checks.
    pub genesis: Genesis,
    /// Storage, for the transaction index.
    pub store: Arc<Store>,
}

impl Context for NodeContext {
    fn sign(&self, message: &[u8]) -> Signature {
        self.keys.sign(message)
    }

    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.keys.verify(validator, message, signature)
    }

    fn verify_all(&self, message: &[u8], signatures: &[lanes_types::ValidatorSignature]) -> bool {
        self.keys.verify_all(message, signatures)
    }

    fn check_block_txs(
        &self,
        block: &Block,
        verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        let mut unverified = Vec::new();
        for (i, raw) in block.txs.iter().enumerate() {
            let stx = check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params)
                .map_err(|e| e.to_string())?;
            if !verified(i) {
                unverified.push(stx);
            }
        }
        verify_signatures(&unverified).map_err(|bad| format!("bad signatures at {bad:?}"))
    }

    fn check_txs(&self, txs: &[lanes_types::Bytes]) -> Vec<bool> {
        let decoded: Vec<Option<_>> = txs
            .iter()
            .map(|raw| {
                check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params).ok()
            })
            .collect();
        let candidates: Vec<_> = decoded.iter().flatten().cloned().collect();
        let bad: Vec<usize> = verify_signatures(&candidates).err().unwrap_or_default();
        let mut k = 0;
        decoded
            .iter()
            .map(|d| match d {
                Some(_) => {
                    let ok = !bad.contains(&k);
                    k += 1;
                    ok
                }
                None => false,
            })
            .collect()
    }

    fn tx_committed(&self, hash: &Hash) -> bool {
        matches!(self.store.tx_location(hash), Ok(Some(_)))
    }
}

/// Most bytes of blocks in one catch-up answer.
const MAX_SYNC_BYTES: usize = 8 << 20;

/// What the consensus thread needs besides the replica and its queues.
pub struct ConsensusDriver {
    /// Builds a replica from recovered state: at start-up, and again after a state transfer.
    pub make_replica: Box<dyn Fn(Recovered) -> Result<Replica<NodeContext>> + Send>,
    /// The async runtime, for network sends that wait for queue room.
    pub runtime: tokio::runtime::Handle,
    /// The node's clock.
    pub clock: Clock,
}

impl ConsensusDriver {
    /// Runs the consensus thread until [`Input::Shutdown`]: routes every input to the replica
    /// or the node protocol and carries out what they return.
    pub fn run(
        self,
        mut replica: Replica<NodeContext>,
        inputs: Receiver<Input>,
        shared: Arc<Shared>,
        exec: Sender<ApplyJob>,
    ) -> Result<()> {
        let clock = self.clock;
        let hold = Hold::from_stored(shared.store.voting_hold()?);
        let (genesis, me) = (shared.genesis.clone(), shared.me);
        let mut node =
            NodeProtocol::new(genesis, me, hold, replica.committed_height(), clock.now());
        if node.holding() {
            tracing::warn!(
                until = hold.until(),
                "started without the consensus safety state: holding votes until caught up"
            );
        }
        replica.set_muted(node.holding());
        let mut timer: Option<u64> = None;
        let mut counted = Stats::default();
        loop {
            let wait = timer.map_or(1_000, |t| t.saturating_sub(clock.now()).min(1_000));
            let input = match inputs.recv_timeout(Duration::from_millis(wait)) {
                Ok(Input::Shutdown) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
            };
            let now = clock.now();
            let mut todo = Todo::default();
            match input {
                None => {}
                Some(Input::Net { from, bytes }) => match Wire::parse(bytes) {
                    Err(e) => {
                        let reason = format!("undecodable message: {e}");
                        todo.node.push(NodeAction::Reject { from, reason });
                    }
                    Ok(Wire::Node(message)) => {
                        todo.node = node.handle(NodeEvent::Message { from, message }, now);
                    }
                    Ok(Wire::Consensus(bytes)) => {
                        let sync_peer = replica.sync_peer();
                        let event = NodeEvent::Consensus {
                            from,
                            bytes: &bytes,
                            sync_peer,
                        };
                        todo.node = node.handle(event, now);
                        todo.replica = replica.handle(Event::Message { from, bytes }, now);
                    }
                },
                Some(Input::Submit { txs, reply }) => {
                    let (result, actions) = replica.submit_batch(txs, now);
                    let _ = reply.send(result);
                    todo.replica = actions;
                }
                Some(Input::Executed {
                    height,
                    block_hash,
                    state_root,
                }) => {
                    todo.node = node.handle(NodeEvent::Executed(height), now);
                    let state_root = reported_root(&shared, state_root);
                    let event = Event::Executed {
                        height,
                        block_hash,
                        state_root,
                    };
                    todo.replica = replica.handle(event, now);
                }
                Some(Input::StateInstalled(result)) => {
                    let installed = result.as_ref().ok().map(|(head, _)| head.height);
                    todo.node = node.handle(NodeEvent::Installed(installed), now);
                    match result {
                        Ok((head, certificate)) => {
                            // The replica starts again from the installed state, with every
                            // vote it promised (the safety records are untouched).
                            counted = Stats::default();
                            replica = (self.make_replica)(Recovered {
                                committed_height: head.height,
                                committed_hash: head.block_hash,
                                committed_root: head.state_root,
                                stable: Some(certificate),
                                safety: shared.store.safety_records()?,
                            })?;
                            replica.set_muted(node.holding());
                            timer = None;
                            todo.replica = replica.handle(Event::Timer, now);
                        }
                        Err(e) => tracing::warn!(error = %e, "state snapshot refused"),
                    }
                }
                Some(Input::Shutdown) => unreachable!("handled above"),
            }
            if timer.is_some_and(|t| t <= now) {
                timer = None;
                todo.replica.extend(replica.handle(Event::Timer, now));
            }
            let tick = NodeEvent::Tick {
                network_height: replica.network_height(),
                diverged: replica.diverged_at().is_some(),
                claims: replica.claims(),
                committed: replica.committed_height(),
            };
            todo.node.extend(node.handle(tick, now));
            for action in todo.node {
                self.carry_out_node(action, &mut replica, &shared, &exec)?;
            }
            for action in todo.replica {
                carry_out(action, &shared, &exec, &mut timer)?;
            }
            publish_counters(replica.stats(), &mut counted, &shared.metrics);
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
                .map_err(|_| anyhow::anyhow!("the apply thread stopped"))?,
            NodeAction::Reject { from, reason } => {
                Metrics::add(&shared.metrics.rejected_messages, 1);
                tracing::warn!(from, %reason, "node message rejected");
            }
        }
        Ok(())
    }
}

/// What one input made the replica and the node protocol ask for.
#[derive(Default)]
struct Todo {
    replica: Vec<Action>,
    node: Vec<NodeAction>,
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
    *counted = stats.clone();
}

/// Carries out one action. Persist is synced before returning, so every later action (a vote)
/// leaves only after the record that forbids a conflicting one is durable.
fn carry_out(
    action: Action,
    shared: &Shared,
    exec: &Sender<ApplyJob>,
    timer: &mut Option<u64>,
) -> Result<()> {
    match action {
        Action::Persist(writes) => persist(&shared.store, &writes)?,
        Action::Send { to, message } => send(shared, Some(to), &message),
        Action::Broadcast(message) => send(shared, None, &message),
        Action::Deliver { block, certificate } => {
            // The backlog is bounded by consensus itself: nothing is proposed beyond the
            // window above the last execution certificate, and certificates need execution.
            exec.send(ApplyJob::Block(block, certificate))
                .map_err(|_| anyhow::anyhow!("the apply thread stopped"))?;
        }
        Action::Certified(cert) => {
            exec.send(ApplyJob::Certificate(cert))
                .map_err(|_| anyhow::anyhow!("the apply thread stopped"))?;
        }
        Action::ServeSync {
            to,
            from,
            to_height,
        } => serve_sync(shared, to, from, to_height),
        Action::SetTimer { at } => *timer = Some(at),
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
        .map_err(|e| anyhow::anyhow!("cannot persist the consensus safety state: {e}"))
}

/// The blocks of one catch-up answer, taken in order from `blocks` while the encoded answer
/// (measured exactly) stays within `budget` bytes; the first block goes alone when it exceeds
/// the budget but fits a `frame`. `Err` carries the size of a first block that fits no frame.
fn sync_reply(
    blocks: impl IntoIterator<Item = CertifiedBlock>,
    budget: usize,
    frame: usize,
) -> Result<Vec<CertifiedBlock>, usize> {
    let mut bytes = Message::SyncResponse(Vec::new()).to_bytes().len();
    let mut reply = Vec::new();
    for block in blocks {
        let size = block.to_bytes().len();
        let limit = if reply.is_empty() {
            frame
        } else {
            budget.min(frame)
        };
        match bytes.checked_add(size) {
            Some(total) if total <= limit => bytes = total,
            _ if reply.is_empty() => return Err(size),
            _ => break,
        }
        reply.push(block);
    }
    Ok(reply)
}

/// Answers a catch-up request with the stored blocks `from..=to_height`, as many as fit
/// [`MAX_SYNC_BYTES`].
fn serve_sync(shared: &Shared, to: u32, from: u64, to_height: u64) {
    let stored = (from..=to_height).map_while(|height| {
        match (
            shared.store.block(height),
            shared.store.commit_certificate(height),
        ) {
            (Ok(Some(block)), Ok(Some(certificate))) => Some(CertifiedBlock { block, certificate }),
            _ => None,
        }
    });
    match sync_reply(stored, MAX_SYNC_BYTES, shared.max_frame) {
        // An empty answer tells the requester we no longer have the blocks it needs (they were
        // pruned): it then fetches the certified state instead.
        Ok(blocks) => send(shared, Some(to), &Message::SyncResponse(blocks)),
        Err(bytes) => {
            // Genesis validation makes a full block fit a frame, so this is a bug; an empty
            // answer would wrongly say the block was pruned.
            Metrics::add(&shared.metrics.unsendable_messages, 1);
            tracing::error!(
                to,
                height = from,
                bytes,
                max_frame = shared.max_frame,
                "a stored block does not fit a network frame: catch-up request not answered"
            );
        }
    }
}

/// Sends `message` to `to`, or to every other validator: the one place consensus messages
/// leave the node, so a byzantine test build can rewrite them (`node/byzantine.rs`).
fn send(shared: &Shared, to: Option<u32>, message: &Message) {
    #[cfg(feature = "byzantine")]
    if let Some(b) = &shared.byzantine {
        let out = b
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outgoing(to, message);
        for (to, bytes) in out {
            let _ = shared.net.send(to, wire::consensus_raw(&bytes).into());
        }
        return;
    }
    send_wire(shared, to, wire::consensus_bytes(message), message.kind());
}

/// Sends one of the node's own messages to `to`, or to every other validator.
fn send_node(shared: &Shared, to: Option<u32>, message: &NodeMessage) {
    send_wire(shared, to, wire::node_bytes(message), message.kind());
}

/// Sends an enveloped message of `kind` (for the logs) to `to`, or to every other validator,
/// if it fits a frame; a message that cannot be sent is an error line and a count.
fn send_wire(shared: &Shared, to: Option<u32>, bytes: Vec<u8>, kind: &'static str) {
    if !fits_frame(bytes.len(), kind, shared.max_frame, &shared.metrics, to) {
        return;
    }
    let result = match to {
        Some(to) => shared.net.send(to, bytes.into()),
        None => shared.net.broadcast(bytes.into()),
    };
    match result {
        Ok(()) => {}
        // Every send fails this way while the node stops: nothing is wrong with the message.
        Err(lanes_net::NetError::Shutdown) => tracing::debug!(?to, "network shut down"),
        Err(e) => {
            Metrics::add(&shared.metrics.unsendable_messages, 1);
            tracing::error!(?to, kind, error = %e, "message not sent");
        }
    }
}

/// Whether a message of `len` bytes fits a frame of `max_frame` bytes; if not, logs an error
/// and counts it as unsendable (the network would refuse it).
fn fits_frame(
    len: usize,
    kind: &'static str,
    max_frame: usize,
    metrics: &Metrics,
    to: Option<u32>,
) -> bool {
    if len <= max_frame {
        return true;
    }
    Metrics::add(&metrics.unsendable_messages, 1);
    tracing::error!(
        ?to,
        kind,
        bytes = len,
        max_frame,
        "message larger than a network frame: not sent"
    );
    false
}

/// The state root reported to consensus for an executed block (a byzantine test build may
/// lie about it).
fn reported_root(shared: &Shared, root: Hash) -> Hash {
    #[cfg(feature = "byzantine")]
    if let Some(b) = &shared.byzantine {
        return b.lock().unwrap_or_else(|e| e.into_inner()).root(root);
    }
    let _ = shared;
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::{payload_digest, BlockHeader, Bytes, CommitCertificate, ValidatorSignature};

    #[test]
    fn counters_add_the_replicas_counts_and_never_go_back_when_it_is_rebuilt() {
        let metrics = Metrics::default();
        let mut counted = Stats::default();
        Metrics::add(&metrics.rejected_messages, 2); // the node's own rejections
        let stats = |rejected, view_changes| Stats {
            rejected_messages: rejected,
            view_changes,
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
    }

    /// A certified block at `height` carrying one transaction of `tx_bytes` bytes.
    fn certified(height: u64, tx_bytes: usize) -> CertifiedBlock {
        let txs = vec![Bytes(vec![7; tx_bytes])];
        let block = Block {
            header: BlockHeader {
                chain_id: "driver-test".into(),
                height,
                parent: Hash::ZERO,
                view: 0,
                proposer: 0,
                timestamp_ms: 0,
                payload_digest: payload_digest(&txs),
            },
            txs,
        };
        let certificate = CommitCertificate {
            view: 0,
            height,
            block_hash: block.hash(),
            signatures: (0..3)
                .map(|v| ValidatorSignature {
                    validator: v,
                    signature: Signature([v as u8; 64]),
                })
                .collect(),
        };
        CertifiedBlock { block, certificate }
    }

    fn encoded_len(blocks: &[CertifiedBlock]) -> usize {
        Message::SyncResponse(blocks.to_vec()).to_bytes().len()
    }

    #[test]
    fn a_catch_up_answer_never_exceeds_its_budget_and_holds_every_block_that_fits() {
        let (budget, frame) = (10_000, 20_000);
        for tx_bytes in [100, 2_900, 3_000, 3_300, 4_900, 5_000] {
            let blocks: Vec<_> = (1..=10).map(|h| certified(h, tx_bytes)).collect();
            let reply = sync_reply(blocks.clone(), budget, frame).expect("fits a frame");
            let len = encoded_len(&reply);
            assert!(len <= budget, "tx {tx_bytes}: {len} bytes over {budget}");
            assert!(!reply.is_empty(), "tx {tx_bytes}");
            assert_eq!(reply, blocks[..reply.len()], "in order, from the first");
            if let Some(next) = blocks.get(reply.len()) {
                let more = encoded_len(&[reply.clone(), vec![next.clone()]].concat());
                assert!(more > budget, "tx {tx_bytes}: one more block would fit");
            }
        }
    }

    #[test]
    fn a_block_above_the_budget_goes_alone_if_it_fits_a_frame() {
        let (budget, frame) = (10_000, 20_000);
        let blocks = vec![certified(1, 15_000), certified(2, 10)];
        let reply = sync_reply(blocks.clone(), budget, frame).expect("fits a frame");
        assert_eq!(reply, blocks[..1]);
        assert!(encoded_len(&reply) <= frame);
        // Exactly a frame: still goes. One byte more: refused with its size.
        let overhead = encoded_len(&[certified(1, 0)]);
        let exact = certified(1, frame - overhead);
        assert_eq!(encoded_len(std::slice::from_ref(&exact)), frame);
        assert_eq!(sync_reply([exact], budget, frame).map(|r| r.len()), Ok(1));
        let over = certified(1, frame - overhead + 1);
        let size = over.to_bytes().len();
        assert_eq!(sync_reply([over], budget, frame), Err(size));
        assert_eq!(sync_reply([], budget, frame), Ok(Vec::new()));
    }

    #[test]
    fn a_message_larger_than_a_frame_is_counted_and_not_sent() {
        let metrics = Metrics::default();
        let message = Message::SyncResponse(vec![certified(1, 2_000)]);
        let len = wire::consensus_bytes(&message).len();
        assert!(
            fits_frame(len, "sync-response", len, &metrics, Some(1)),
            "exactly a frame"
        );
        assert_eq!(Metrics::get(&metrics.unsendable_messages), 0);
        assert!(!fits_frame(
            len,
            "sync-response",
            len - 1,
            &metrics,
            Some(2)
        ));
        assert!(!fits_frame(len, "sync-response", 1_000, &metrics, None));
        assert_eq!(Metrics::get(&metrics.unsendable_messages), 2);
    }

    #[test]
    fn the_genesis_frame_limit_is_the_networks_and_bounds_a_full_block() {
        assert_eq!(
            lanes_types::MAX_FRAME_BYTES,
            lanes_net::DEFAULT_MAX_FRAME as u64,
            "lanes_types::MAX_FRAME_BYTES must follow lanes_net::DEFAULT_MAX_FRAME"
        );
        // The largest block genesis allows for (3 txs of 200 bytes, 7 validators), with the
        // longest chain id and every signature, fits the bound genesis validation uses.
        let (txs, tx_bytes, n) = (3usize, 200usize, 7usize);
        let mut full = certified(u64::MAX, tx_bytes);
        full.block.header.chain_id = "c".repeat(64);
        full.block.header.view = u64::MAX;
        full.block.txs = vec![Bytes(vec![1; tx_bytes]); txs];
        full.certificate.signatures = (0..n as u32)
            .map(|v| ValidatorSignature {
                validator: v,
                signature: Signature([1; 64]),
            })
            .collect();
        let bound = (txs * (tx_bytes + 4)) as u64 + lanes_types::certified_block_overhead(n);
        let view = u64::MAX;
        let block = full.block.clone();
        for message in [
            Message::SyncResponse(vec![full]),
            Message::PrePrepare { view, block },
        ] {
            let len = message.to_bytes().len() as u64;
            assert!(len <= bound, "{}: {len} > {bound}", message.kind());
        }
    }
}
