//! Scripted scenarios: a [`Cluster`] of simulated replicas (four by default) whose network a
//! test drives message by message, so that a regression test reads as a list of steps:
//! deliver (with a filter), drop, crash, restart, inject a byzantine message, advance time,
//! submit. See [`Step`] and [`Cluster::play`].
//!
//! Every action a replica carries out is checked with [`super::checks`]: no two different
//! votes for one (phase, view, height) nor two NEW-VIEWs for one view, nothing sent before the
//! record that binds it was persisted, no message above the frame limit, delivery by height
//! along parent hashes, and a restarted replica starts from exactly what it persisted. A
//! violation is recorded in [`Cluster::violations`] and, while [`Cluster::strict`] is set (the
//! default), panics at once so the test fails where it happened.

use super::checks::{self, Checker, Records};
use super::MAX_MESSAGE_BYTES;
use super::{sim_contexts, sim_replica_config, sim_transaction, SimContext, CHAIN_ID};
use crate::messages::{CertifiedBlock, CheckpointVote, Message, NewView, Phase, ViewChange, Vote};
use crate::safety::apply;
use crate::{Action, Alarm, Event, Recovered, Replica};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Block, CheckpointCertificate, CommitCertificate, ExecRoots, Hash, Signature};
use std::collections::{BTreeMap, VecDeque};

/// The seed of the cluster's keys and transactions.
const SEED: u64 = 7;

/// Which queued messages a step lets through: `(from, to, message) -> bool`.
pub type Filter = fn(u32, u32, &Message) -> bool;

/// One step of a scripted scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// [`Cluster::run`]: deliver what passes (and what it causes); drop the rest.
    Run(Filter),
    /// [`Cluster::deliver`]: deliver what passes (and what it causes); keep the rest queued.
    Deliver(Filter),
    /// [`Cluster::drop_queued`]: drop the queued messages that match.
    Drop(Filter),
    /// [`Cluster::crash`] a replica.
    Crash(u32),
    /// [`Cluster::restart`] a replica.
    Restart(u32),
    /// [`Cluster::inject`] a message as if validator `from` sent it to `to`.
    Inject {
        /// The (byzantine) sender.
        from: u32,
        /// The recipient.
        to: u32,
        /// The message (boxed: messages are large).
        message: Box<Message>,
    },
    /// [`Cluster::advance`] the clock to this time.
    Advance(u64),
    /// [`Cluster::settle`] until this time with this filter.
    Settle(u64, Filter),
    /// [`Cluster::submit`] client transaction `index` to `node`.
    Submit {
        /// The replica.
        node: u32,
        /// The transaction's index.
        index: usize,
    },
}

/// Replicas and a network the test controls message by message.
pub struct Cluster {
    /// The replicas (none while crashed).
    pub replicas: Vec<Option<Replica<SimContext>>>,
    /// Their contexts (keys, transaction index).
    pub contexts: Vec<SimContext>,
    /// What each replica persisted.
    pub persisted: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// What each replica delivered, in order (its storage).
    pub delivered: Vec<Vec<(Block, CommitCertificate)>>,
    /// Messages in flight: (from, to, bytes).
    pub queue: VecDeque<(u32, u32, Vec<u8>)>,
    /// Each replica's timer.
    pub timers: Vec<Option<u64>>,
    /// The clock, in ms.
    pub now: u64,
    /// Every message sent, encoded, in order.
    pub sent: Vec<Vec<u8>>,
    /// Each replica's latest stored execution certificate.
    pub stable: Vec<Option<CheckpointCertificate>>,
    /// Frame limit: larger messages are dropped (and are a violation).
    pub max_message_bytes: usize,
    /// Alarms the replicas raised: (replica, alarm).
    pub alarms: Vec<(u32, Alarm)>,
    /// Violations found so far.
    pub violations: Vec<String>,
    /// Panic at the first violation (default).
    pub strict: bool,
    checker: Checker,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// Four replicas at genesis.
    pub fn new() -> Self {
        Self::with_validators(4)
    }

    /// `n` replicas at genesis (n >= 4).
    pub fn with_validators(n: u32) -> Self {
        let contexts = sim_contexts(n, SEED);
        let n = n as usize;
        Cluster {
            replicas: (0..n as u32)
                .map(|i| Some(replica(i, &contexts, Recovered::default())))
                .collect(),
            contexts,
            persisted: vec![BTreeMap::new(); n],
            delivered: vec![Vec::new(); n],
            queue: VecDeque::new(),
            timers: vec![None; n],
            now: 0,
            sent: Vec::new(),
            stable: vec![None; n],
            max_message_bytes: MAX_MESSAGE_BYTES,
            alarms: Vec::new(),
            violations: Vec::new(),
            strict: true,
            checker: Checker::default(),
        }
    }

    /// Number of validators.
    pub fn validators(&self) -> u32 {
        self.contexts.len() as u32
    }

    /// Hands `event` to `node` and carries out (and checks) the actions; executed blocks are
    /// reported back at once. Returns the actions of `event` itself.
    pub fn feed(&mut self, node: u32, event: Event) -> Vec<Action> {
        let now = self.now;
        let Some(r) = self.replicas[node as usize].as_mut() else {
            return Vec::new();
        };
        let actions = r.handle(event, now);
        for a in &actions {
            self.act(node, a);
        }
        // The executor: a deterministic root per block, fed straight back.
        for a in &actions {
            if let Action::Deliver { block, .. } = a {
                let ev = Event::Executed {
                    height: block.height(),
                    block_hash: block.hash(),
                    roots: test_roots(block),
                };
                self.feed(node, ev);
            }
        }
        actions
    }

    fn act(&mut self, node: u32, action: &Action) {
        match action {
            Action::Persist(writes) => {
                for w in writes {
                    apply(&mut self.persisted[node as usize], w);
                }
            }
            Action::Send { to, message } => self.send(node, Some(*to), message),
            Action::Broadcast(message) => self.send(node, None, message),
            Action::Deliver { block, certificate } => {
                let chain = &self.delivered[node as usize];
                let tip = (
                    chain.len() as u64,
                    chain.last().map_or(Hash::ZERO, |(b, _)| b.hash()),
                );
                let checked = checks::delivery(node, tip, block, certificate);
                self.record(checked);
                self.delivered[node as usize].push((block.clone(), certificate.clone()));
            }
            Action::Certified(cert) => {
                let stable = &mut self.stable[node as usize];
                if cert.height as usize <= self.delivered[node as usize].len()
                    && stable.as_ref().is_none_or(|s| s.height < cert.height)
                {
                    *stable = Some(cert.clone());
                }
            }
            Action::SetTimer { at } => self.timers[node as usize] = Some(*at),
            Action::ServeSync {
                to,
                from,
                to_height,
            } => {
                let blocks: Vec<CertifiedBlock> = self.delivered[node as usize]
                    .iter()
                    .filter(|(b, _)| (*from..=*to_height).contains(&b.height()))
                    .map(|(block, certificate)| CertifiedBlock {
                        block: block.clone(),
                        certificate: certificate.clone(),
                    })
                    .collect();
                self.send(node, Some(*to), &Message::SyncResponse(blocks));
            }
            Action::Alarm(alarm) => self.alarms.push((node, alarm.clone())),
        }
    }

    /// Checks and queues a message of honest `node` (to everyone else if `to` is `None`).
    fn send(&mut self, node: u32, to: Option<u32>, message: &Message) {
        let bytes = message.to_bytes();
        let max = self.max_message_bytes;
        let persisted = &self.persisted[node as usize];
        let checked = self
            .checker
            .outgoing(node, message, bytes.len(), max, persisted);
        self.record(checked);
        self.sent.push(bytes.clone());
        if bytes.len() > max {
            return;
        }
        let targets: Vec<u32> = match to {
            Some(t) => vec![t],
            None => (0..self.validators()).filter(|&t| t != node).collect(),
        };
        for t in targets {
            self.queue.push_back((node, t, bytes.clone()));
        }
    }

    /// Records a check's outcome; panics on a violation while [`Cluster::strict`].
    fn record(&mut self, checked: Result<(), String>) {
        if let Err(e) = checked {
            assert!(!self.strict, "invariant violated at {}ms: {e}", self.now);
            self.violations.push(e);
        }
    }

    /// Delivers queued messages (and the ones they cause) for which `pass` is true; the others
    /// are dropped. Stops when the queue is empty.
    pub fn run(&mut self, pass: impl Fn(u32, u32, &Message) -> bool) {
        let mut steps = 0;
        while let Some((from, to, bytes)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "message storm");
            let passes = Message::from_bytes(&bytes).is_ok_and(|m| pass(from, to, &m));
            if passes {
                self.feed(to, Event::Message { from, bytes });
            }
        }
    }

    /// Delivers queued messages (and the ones they cause) for which `pass` is true, in queue
    /// order, and keeps the others queued. Stops when no queued message passes.
    pub fn deliver(&mut self, pass: impl Fn(u32, u32, &Message) -> bool) {
        let mut steps = 0;
        let matches = |(from, to, bytes): &(u32, u32, Vec<u8>)| {
            Message::from_bytes(bytes).is_ok_and(|m| pass(*from, *to, &m))
        };
        while let Some(i) = self.queue.iter().position(matches) {
            steps += 1;
            assert!(steps < 100_000, "message storm");
            if let Some((from, to, bytes)) = self.queue.remove(i) {
                self.feed(to, Event::Message { from, bytes });
            }
        }
    }

    /// Drops the queued messages that match; returns how many.
    pub fn drop_queued(&mut self, matching: impl Fn(u32, u32, &Message) -> bool) -> usize {
        let before = self.queue.len();
        self.queue.retain(|(from, to, bytes)| {
            !Message::from_bytes(bytes).is_ok_and(|m| matching(*from, *to, &m))
        });
        before - self.queue.len()
    }

    /// The queued messages that match, decoded, with sender and recipient.
    pub fn queued(
        &self,
        matching: impl Fn(u32, u32, &Message) -> bool,
    ) -> Vec<(u32, u32, Message)> {
        self.queue
            .iter()
            .filter_map(|(from, to, bytes)| {
                let m = Message::from_bytes(bytes).ok()?;
                matching(*from, *to, &m).then_some((*from, *to, m))
            })
            .collect()
    }

    /// Queues `message` as if validator `from` sent it to `to` (a byzantine send: nothing is
    /// checked; sign it first with the `sign_*` helpers).
    pub fn inject(&mut self, from: u32, to: u32, message: &Message) {
        self.queue.push_back((from, to, message.to_bytes()));
    }

    /// Advances time to `t` and fires every timer due by then.
    pub fn advance(&mut self, t: u64) {
        self.now = t;
        for node in 0..self.validators() {
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

    /// Client transaction `index` arrives at `node`.
    pub fn submit(&mut self, node: u32, index: usize) {
        self.feed(node, Event::ClientTx(sim_transaction(SEED, index)));
    }

    /// `node` crashes: it keeps only its persisted records, delivered chain and stable
    /// certificate.
    pub fn crash(&mut self, node: u32) {
        self.replicas[node as usize] = None;
        self.timers[node as usize] = None;
    }

    /// Restarts `node` from exactly its persisted records, its delivered chain and its latest
    /// stored execution certificate, and checks it starts there. Nothing happens if it is up.
    pub fn restart(&mut self, node: u32) {
        let i = node as usize;
        if self.replicas[i].is_some() {
            return;
        }
        let chain = &self.delivered[i];
        let recovered = Recovered {
            committed_height: chain.len() as u64,
            committed_hash: chain.last().map_or(Hash::ZERO, |(b, _)| b.hash()),
            committed_roots: chain
                .last()
                .map_or(ExecRoots::default(), |(b, _)| test_roots(b)),
            stable: self.stable[i].clone(),
            safety: records(&self.persisted[i]),
        };
        let committed = recovered.committed_height;
        let stable = self.stable[i].as_ref().map_or(0, |c| c.height);
        let config = sim_replica_config(self.validators(), node);
        match Replica::new(config, self.contexts[i].clone(), recovered) {
            Ok(r) => {
                let checked = checks::restored(&r, &self.persisted[i], committed, stable);
                self.record(checked);
                self.replicas[i] = Some(r);
            }
            Err(e) => self.record(Err(format!("n{node} cannot restart: {e}"))),
        }
    }

    /// The view of `node`.
    ///
    /// # Panics
    /// If `node` is down.
    pub fn view(&self, node: u32) -> u64 {
        match &self.replicas[node as usize] {
            Some(r) => r.view(),
            None => panic!("n{node} is down"),
        }
    }

    /// Carries out the steps in order.
    pub fn play(&mut self, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Run(f) => self.run(f),
                Step::Deliver(f) => self.deliver(f),
                Step::Drop(f) => {
                    self.drop_queued(f);
                }
                Step::Crash(node) => self.crash(*node),
                Step::Restart(node) => self.restart(*node),
                Step::Inject { from, to, message } => self.inject(*from, *to, message),
                Step::Advance(t) => self.advance(*t),
                Step::Settle(t, f) => self.settle(*t, f),
                Step::Submit { node, index } => self.submit(*node, *index),
            }
        }
    }

    /// A PREPARE or COMMIT signed as `validator`.
    pub fn sign_vote(
        &self,
        validator: u32,
        phase: Phase,
        view: u64,
        height: u64,
        hash: Hash,
    ) -> Vote {
        let mut vote = Vote {
            view,
            height,
            block_hash: hash,
            validator,
            signature: Signature([0; 64]),
        };
        vote.signature = self.sign_as(validator, &vote.signed_bytes(phase, CHAIN_ID));
        vote
    }

    /// `vc` (re-)signed as `validator` (its `validator` field is set too).
    pub fn sign_view_change(&self, validator: u32, mut vc: ViewChange) -> ViewChange {
        vc.validator = validator;
        vc.signature = self.sign_as(validator, &vc.signed_bytes(CHAIN_ID));
        vc
    }

    /// `nv` (re-)signed as `validator` (replicas accept it only from the view's primary).
    pub fn sign_new_view(&self, validator: u32, mut nv: NewView) -> NewView {
        nv.signature = self.sign_as(validator, &nv.signed_bytes(CHAIN_ID));
        nv
    }

    /// A CHECKPOINT signed as `validator`.
    pub fn sign_checkpoint(
        &self,
        validator: u32,
        height: u64,
        block_hash: Hash,
        roots: ExecRoots,
    ) -> CheckpointVote {
        let msg = lanes_types::cert::checkpoint_message(CHAIN_ID, height, &block_hash, &roots);
        CheckpointVote {
            height,
            block_hash,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            validator,
            signature: self.sign_as(validator, &msg),
        }
    }

    /// `message` signed with validator `validator`'s simulated key.
    pub fn sign_as(&self, validator: u32, message: &[u8]) -> Signature {
        self.contexts[0].sign_as(validator, message)
    }
}

fn records(persisted: &Records) -> Vec<(Vec<u8>, Vec<u8>)> {
    persisted
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Replica `i` of the validators of `contexts`, started from `recovered`.
///
/// # Panics
/// If the recovered safety records do not decode.
pub fn replica(i: u32, contexts: &[SimContext], recovered: Recovered) -> Replica<SimContext> {
    Replica::new(
        sim_replica_config(contexts.len() as u32, i),
        contexts[i as usize].clone(),
        recovered,
    )
    .expect("valid safety records")
}

/// A filter that lets every message through.
pub fn all(_: u32, _: u32, _: &Message) -> bool {
    true
}

/// The roots the cluster's executor computes for a block.
pub fn test_roots(block: &Block) -> ExecRoots {
    ExecRoots {
        state_root: Hash::tagged("test-root", &block.hash().0),
        receipts_root: Hash::tagged("test-receipts", &block.hash().0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre_prepare(m: &Message) -> bool {
        matches!(m, Message::PrePrepare { .. })
    }

    #[test]
    fn seven_replicas_commit_a_scripted_transaction() {
        let mut c = Cluster::with_validators(7);
        c.play(&[Step::Submit { node: 3, index: 1 }, Step::Settle(1_000, all)]);
        assert_eq!(c.delivered[0].len(), 1);
        let block = c.delivered[0][0].0.hash();
        assert!(c
            .delivered
            .iter()
            .all(|d| d.len() == 1 && d[0].0.hash() == block));
        assert!(c.violations.is_empty());
    }

    #[test]
    fn an_injected_equivocating_vote_raises_an_alarm() {
        let mut c = Cluster::new();
        c.play(&[Step::Submit { node: 0, index: 1 }, Step::Settle(500, all)]);
        let votes = [b"a", b"b"].map(|x| {
            let v = c.sign_vote(3, Phase::Prepare, 0, 2, Hash::tagged("test", x));
            Step::Inject {
                from: 3,
                to: 1,
                message: Box::new(Message::Prepare(v)),
            }
        });
        c.play(&votes);
        c.play(&[Step::Deliver(all)]);
        let expected = Alarm::Equivocation {
            validator: 3,
            view: 0,
            height: 2,
        };
        assert!(c.alarms.contains(&(1, expected)), "{:?}", c.alarms);
    }

    #[test]
    fn a_restart_starts_from_the_stored_execution_certificate() {
        let mut c = Cluster::new();
        for i in 0..6 {
            c.submit(i % 4, i as usize);
            c.settle(200 * (i as u64 + 1), all);
        }
        let stable = c.stable[1].as_ref().map_or(0, |s| s.height);
        assert!(stable > 0, "checkpoints formed");
        c.play(&[Step::Crash(1), Step::Restart(1)]);
        let r = c.replicas[1].as_ref().expect("n1 is up");
        assert_eq!(r.stable_height(), stable);
        assert_eq!(r.committed_height(), c.delivered[1].len() as u64);
    }

    #[test]
    fn the_checker_catches_a_replica_that_lost_its_prepare_record() {
        let mut c = Cluster::new();
        c.strict = false;
        c.submit(0, 1);
        c.advance(60);
        let proposals = c.queued(|_, _, m| pre_prepare(m));
        let Some((_, _, Message::PrePrepare { view, mut block })) = proposals.into_iter().next()
        else {
            panic!("n0 proposed");
        };
        c.deliver(|_, to, m| to == 2 && pre_prepare(m));
        // A broken disk loses n2's PREPARE record; restarted, n2 votes for another block at the
        // same view and height, which the checker reports.
        c.persisted[2].retain(|k, _| k.first() != Some(&b'p'));
        block.header.timestamp_ms += 1;
        let evil = Message::PrePrepare { view, block };
        c.play(&[
            Step::Crash(2),
            Step::Restart(2),
            Step::Inject {
                from: 0,
                to: 2,
                message: Box::new(evil),
            },
            Step::Run(|_, to, _| to == 2),
        ]);
        assert!(
            c.violations.iter().any(|v| v.contains("signed two blocks")),
            "{:?}",
            c.violations
        );
    }

    /// Known core bug A (see `tests/sim_seeds.rs`): restarted replicas do not re-announce
    /// their checkpoint, so a replica that missed the last block of an idle chain never hears
    /// f+1 claims for it.
    #[test]
    fn a_replica_behind_on_an_idle_chain_catches_up_after_the_others_restart() {
        let mut c = Cluster::new();
        c.play(&[Step::Submit { node: 0, index: 1 }, Step::Settle(500, all)]);
        c.play(&[
            Step::Submit { node: 0, index: 2 },
            Step::Settle(1_000, |_, to, _| to != 3),
        ]);
        for r in 0..3 {
            c.play(&[Step::Crash(r), Step::Restart(r)]);
        }
        c.settle(20_000, all);
        assert_eq!(c.delivered[0].len(), 2);
        assert_eq!(c.delivered[3].len(), 2, "n3 caught up");
    }
}
