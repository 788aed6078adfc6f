//! The deterministic simulator: n replicas with in-memory persistence, a virtual clock and a
//! seeded network, driven through faults (network, crash points, byzantine behaviours, Twins)
//! while a checker watches every step.
//!
//! Checked after every event: **agreement** (no two honest replicas deliver different blocks at
//! one height), **validity** (every delivered transaction was submitted by the client, and no
//! replica delivers one twice), **root agreement** (honest replicas compute the same root at
//! every height), no honest divergence or fork alarm, and the per-action invariants of
//! [`checks`] (no second signature for one vote slot or view, persist before send, frame limit,
//! chained delivery, exact restore). At the end, **liveness**: once every fault has healed
//! (byzantine replicas stay byzantine), every submitted transaction must be delivered by every
//! honest replica within `settle_ms` of virtual time.
//!
//! The executor is modelled by `root(h) = H(root(h-1), block hash)`, so a wrong root is
//! detectable. Signatures use a cheap keyed hash (the simulation knows every key; a byzantine
//! replica only uses its own), which keeps thousands of seeds fast. A failing seed's report
//! names the seed, the fault schedule and the last events before the violation; running the
//! seed again reproduces it exactly. [`script`] drives replicas by hand for regression tests.

mod adversary;
pub mod checks;
mod crash;
mod network;
mod report;
pub mod script;

pub use network::{Byzantine, CrashPoint, Fault, FaultProfile, Schedule};

use crate::context::Context;
use crate::messages::{tag, CertifiedBlock, Message};
use crate::replica::{Action, Alarm, Config, Event, Recovered, Replica};
use crate::safety;
use crate::MempoolLimits;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{
    Block, Bytes, CheckpointCertificate, Hash, Signature, ValidatorInfo, ValidatorSet,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet, VecDeque};
use std::rc::Rc;

/// Parameters of one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed: the whole run is a function of it and the fields below.
    pub seed: u64,
    /// Number of validators (4 or 7 in practice).
    pub validators: u32,
    /// Faults to inject.
    pub profile: FaultProfile,
    /// Client transactions to submit.
    pub txs: usize,
    /// Faults happen in `[0, fault_ms)`; then everything heals.
    pub fault_ms: u64,
    /// Liveness bound: every transaction must be delivered everywhere by `fault_ms + settle_ms`.
    pub settle_ms: u64,
    /// The network's frame limit: a larger message is dropped, and an honest replica sending
    /// one is a violation.
    pub max_message_bytes: usize,
}

impl SimConfig {
    /// The standard run for a seed.
    pub fn new(seed: u64, validators: u32, profile: FaultProfile) -> Self {
        SimConfig {
            seed,
            validators,
            profile,
            txs: 40,
            fault_ms: 4_000,
            settle_ms: 60_000,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

/// What a run did and whether it kept every invariant.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The fault profile.
    pub profile: FaultProfile,
    /// Number of validators.
    pub validators: u32,
    /// Highest height delivered by an honest replica.
    pub committed_blocks: u64,
    /// Distinct transactions delivered by some honest replica.
    pub committed_txs: usize,
    /// View changes started or joined, summed over replicas.
    pub view_changes: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages honest replicas dropped as invalid.
    pub rejected_messages: u64,
    /// The first safety violation, if any.
    pub violation: Option<String>,
    /// Why liveness failed, if it did.
    pub liveness_failure: Option<String>,
    /// The fault schedule.
    pub schedule: Vec<String>,
    /// The last events before the end of the run (or the violation).
    pub trace: Vec<String>,
    /// Virtual time at the end, in ms.
    pub end_ms: u64,
}

impl SimReport {
    /// Whether the run kept safety and liveness.
    pub fn passed(&self) -> bool {
        self.violation.is_none() && self.liveness_failure.is_none()
    }

    /// A human explanation of a failing run: seed, schedule, violation and the events before it.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "seed {} profile {} validators {}: ",
            self.seed,
            self.profile.name(),
            self.validators
        );
        match (&self.violation, &self.liveness_failure) {
            (Some(v), _) => s += &format!("SAFETY VIOLATION: {v}\n"),
            (None, Some(l)) => s += &format!("LIVENESS FAILURE: {l}\n"),
            _ => s += "passed\n",
        }
        s += "fault schedule:\n";
        for f in &self.schedule {
            s += &format!("  {f}\n");
        }
        s += &format!("last {} events:\n", self.trace.len());
        for t in &self.trace {
            s += &format!("  {t}\n");
        }
        s += &format!(
            "re-run: lanes sim --seeds 1 --seed {} --validators {} --faults {}\n",
            self.seed,
            self.validators,
            self.profile.name()
        );
        s
    }
}

/// The simulated network's default frame limit (the sim's blocks are at most 64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The chain id of simulated replicas.
pub(crate) const CHAIN_ID: &str = "lanes-sim";

/// The simulation's signature scheme: a keyed hash, 64 bytes.
fn sim_sign(key: &[u8; 32], message: &[u8]) -> Signature {
    let a = Hash::tagged_parts("lanes/sim-sig-a", &[key, message]);
    let b = Hash::tagged_parts("lanes/sim-sig-b", &[key, message]);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&a.0);
    sig[32..].copy_from_slice(&b.0);
    Signature(sig)
}

/// A simulated transaction: `tx` ++ seed ++ index.
fn sim_tx(seed: u64, index: usize) -> Bytes {
    let mut tx = b"tx".to_vec();
    tx.extend_from_slice(&seed.to_be_bytes());
    tx.extend_from_slice(&(index as u64).to_be_bytes());
    Bytes(tx)
}

fn sim_tx_valid(tx: &[u8]) -> bool {
    tx.len() == 18 && tx.starts_with(b"tx")
}

/// The [`Context`] of a simulated replica.
#[derive(Clone)]
pub struct SimContext {
    me: u32,
    keys: Rc<Vec<[u8; 32]>>,
    /// The node's transaction index (survives crashes, like storage).
    ledger: Rc<std::cell::RefCell<HashSet<Hash>>>,
}

impl SimContext {
    /// The validator this context signs for.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// Signs `message` as validator `validator` (the simulation knows every key; used to forge
    /// a byzantine validator's messages). Unknown validators get an all-zero signature.
    pub fn sign_as(&self, validator: u32, message: &[u8]) -> Signature {
        match self.keys.get(validator as usize) {
            Some(key) => sim_sign(key, message),
            None => Signature([0; 64]),
        }
    }

    /// The same validator's context with its own, empty transaction index: a second replica
    /// of one validator (Twins) has its own storage.
    pub fn twin(&self) -> SimContext {
        SimContext {
            me: self.me,
            keys: self.keys.clone(),
            ledger: Default::default(),
        }
    }

    /// Records a delivered block's transactions in the node's transaction index.
    pub fn record_delivered(&self, block: &Block) {
        let mut ledger = self.ledger.borrow_mut();
        ledger.extend(block.txs.iter().map(|t| lanes_types::tx_hash(t)));
    }
}

impl Context for SimContext {
    fn sign(&self, message: &[u8]) -> Signature {
        sim_sign(&self.keys[self.me as usize], message)
    }
    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.keys
            .get(validator as usize)
            .is_some_and(|k| sim_sign(k, message) == *signature)
    }
    fn check_block_txs(
        &self,
        block: &Block,
        _verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        if block.txs.iter().all(|t| sim_tx_valid(t)) {
            Ok(())
        } else {
            Err("malformed transaction".into())
        }
    }
    fn check_txs(&self, txs: &[Bytes]) -> Vec<bool> {
        txs.iter().map(|t| sim_tx_valid(t)).collect()
    }
    fn tx_committed(&self, hash: &Hash) -> bool {
        self.ledger.borrow().contains(hash)
    }
}

/// The contexts (signing keys) of `n` simulated validators for `seed`.
pub fn sim_contexts(n: u32, seed: u64) -> Vec<SimContext> {
    let keys: Rc<Vec<[u8; 32]>> = Rc::new(
        (0..n)
            .map(|i| {
                Hash::tagged_parts("lanes/sim-key", &[&seed.to_be_bytes(), &i.to_be_bytes()]).0
            })
            .collect(),
    );
    (0..n)
        .map(|me| SimContext {
            me,
            keys: keys.clone(),
            ledger: Default::default(),
        })
        .collect()
}

/// A transaction the simulated validators accept (`index` makes it unique).
pub fn sim_transaction(seed: u64, index: usize) -> Bytes {
    sim_tx(seed, index)
}

/// The replica configuration the simulator uses.
pub fn sim_replica_config(validators: u32, me: u32) -> Config {
    let infos = (0..validators)
        .map(|i| ValidatorInfo {
            name: format!("n{i}"),
            public_key: lanes_types::SecretKey::from_seed([i as u8 + 1; 32]).public_key(),
            address: String::new(),
        })
        .collect();
    Config {
        chain_id: CHAIN_ID.into(),
        validators: ValidatorSet::new(infos),
        me,
        window: 4,
        max_block_txs: 8,
        max_block_bytes: 1 << 16,
        max_tx_bytes: 64,
        block_interval_ms: 50,
        view_timeout_ms: 400,
        max_view_timeout_ms: 400 * 16,
        sync_batch: 16,
        mempool: MempoolLimits {
            max_txs: 10_000,
            max_bytes: 1 << 20,
            committed_memory: 100_000,
        },
    }
}

/// A simulated replica: its validator (in `ctx`), its replica (none while crashed) and what it
/// persisted. A twin validator has two nodes.
struct Node {
    ctx: SimContext,
    replica: Option<Replica<SimContext>>,
    byzantine: Option<Byzantine>,
    safety: checks::Records,
    chain: Vec<CertifiedBlock>,
    roots: Vec<Hash>,
    stable: Option<CheckpointCertificate>,
    timer: Option<u64>,
    delivered_txs: HashSet<Hash>,
    /// An armed crash: strikes at this point of a coming event.
    crash_at: Option<CrashPoint>,
}

enum Ev {
    /// `bytes` from validator `from` arrive at node `to`.
    Msg {
        to: u32,
        from: u32,
        bytes: Rc<Vec<u8>>,
    },
    Timer {
        node: u32,
        at: u64,
    },
    Submit {
        tx: usize,
    },
    Crash {
        node: u32,
        point: CrashPoint,
    },
    Restart {
        node: u32,
    },
    Executed {
        node: u32,
        height: u64,
    },
}

/// One line of the trace, formatted only when shown.
#[derive(Clone, Copy)]
struct TraceEntry {
    t: u64,
    node: u32,
    what: &'static str,
    a: u64,
    b: u64,
}

const TRACE_LEN: usize = 400;

struct Sim {
    cfg: SimConfig,
    n: u32,
    rng: ChaCha8Rng,
    schedule: Schedule,
    keys: Rc<Vec<[u8; 32]>>,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: BTreeMap<usize, Ev>,
    seq: u64,
    now: u64,
    canonical: BTreeMap<u64, Hash>,
    roots: BTreeMap<u64, Hash>,
    submitted: HashSet<Hash>,
    checker: checks::Checker,
    committed_any: HashSet<Hash>,
    tx_hashes: Vec<Hash>,
    messages: u64,
    violation: Option<String>,
    trace: VecDeque<TraceEntry>,
    /// Twins: the current partition round, when it started, and the highest honest view.
    round: usize,
    round_since: u64,
    top_view: u64,
}

/// Runs one seed and checks it.
pub fn run(cfg: &SimConfig) -> SimReport {
    assert!(
        cfg.validators >= 4,
        "the simulator needs at least 4 validators"
    );
    let n = cfg.validators;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let f = (n - 1) / 3;
    let schedule = Schedule::draw(&mut rng, cfg.profile, n, f, cfg.fault_ms);
    let contexts = sim_contexts(n, cfg.seed);
    let keys = contexts[0].keys.clone();
    let tx_hashes = (0..cfg.txs)
        .map(|i| lanes_types::tx_hash(&sim_tx(cfg.seed, i)))
        .collect();
    let mut sim = Sim {
        cfg: cfg.clone(),
        n,
        rng,
        nodes: Vec::new(),
        keys,
        queue: BinaryHeap::new(),
        events: BTreeMap::new(),
        seq: 0,
        now: 0,
        canonical: BTreeMap::new(),
        roots: BTreeMap::new(),
        submitted: HashSet::new(),
        checker: checks::Checker::default(),
        committed_any: HashSet::new(),
        tx_hashes,
        messages: 0,
        violation: None,
        trace: VecDeque::with_capacity(TRACE_LEN),
        schedule,
        round: 0,
        round_since: 0,
        top_view: 0,
    };
    sim.start(&contexts);
    sim.run_loop();
    sim.report()
}

fn new_replica(
    ctx: &SimContext,
    n: u32,
    recovered: Recovered,
) -> Result<Replica<SimContext>, crate::RestoreError> {
    Replica::new(sim_replica_config(n, ctx.me), ctx.clone(), recovered)
}

impl Sim {
    /// Creates the nodes (validators, then second twins) and queues the workload and crashes.
    fn start(&mut self, contexts: &[SimContext]) {
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

    fn push(&mut self, at: u64, ev: Ev) {
        let id = self.seq as usize;
        self.seq += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((at, self.seq, id)));
    }

    fn note(&mut self, node: u32, what: &'static str, a: u64, b: u64) {
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

    fn honest(&self, node: u32) -> bool {
        self.nodes[node as usize].byzantine.is_none()
    }

    fn honest_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.byzantine.is_none())
    }

    fn done(&self) -> bool {
        self.now >= self.schedule.heal_at
            && self
                .honest_nodes()
                .all(|n| n.delivered_txs.len() == self.cfg.txs)
    }

    fn run_loop(&mut self) {
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
        self.feed(
            node,
            Event::Executed {
                height,
                block_hash,
                state_root,
            },
        );
    }

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

    /// Hands an event to a node's replica and carries out the actions, up to an armed crash.
    fn feed(&mut self, node: u32, event: Event) {
        let now = self.now;
        let view_event = matches!(&event, Event::Message { bytes, .. } if bytes.first().is_some_and(|t| [tag::VIEW_CHANGE, tag::NEW_VIEW].contains(t)));
        let new_view = match &event {
            Event::Message { bytes, .. } if bytes.first() == Some(&tag::NEW_VIEW) => {
                match Message::from_bytes(bytes) {
                    Ok(Message::NewView(nv)) => Some(nv),
                    _ => None,
                }
            }
            _ => None,
        };
        let honest = self.honest(node);
        let me = self.nodes[node as usize].ctx.me;
        let Some(replica) = self.nodes[node as usize].replica.as_mut() else {
            return;
        };
        let before = (replica.view(), replica.in_view_change());
        let actions = replica.handle(event, now);
        if let Some(nv) = new_view.filter(|_| honest) {
            let started = (before.0 < nv.view || before.1)
                && (replica.view(), replica.in_view_change()) == (nv.view, false);
            if started {
                self.checker.installed(me, &nv);
            }
        }
        let cut = self.crash_cut(node, &actions, view_event);
        let keep = cut.unwrap_or(actions.len());
        for action in actions.into_iter().take(keep) {
            self.act(node, action);
        }
        if cut.is_some() {
            self.note(node, "crash-mid-event", keep as u64, 0);
            self.crash(node);
        }
    }

    fn act(&mut self, node: u32, action: Action) {
        match action {
            Action::Persist(writes) => {
                let n = &mut self.nodes[node as usize];
                for w in &writes {
                    safety::apply(&mut n.safety, w);
                }
            }
            Action::Send { to, message } => self.emit(node, Some(to), message),
            Action::Broadcast(message) => self.emit(node, None, message),
            Action::Deliver { block, certificate } => self.deliver(node, block, certificate),
            Action::Certified(cert) => {
                let n = &mut self.nodes[node as usize];
                if cert.height as usize <= n.chain.len()
                    && n.stable.as_ref().is_none_or(|s| s.height < cert.height)
                {
                    n.stable = Some(cert);
                }
            }
            Action::ServeSync {
                to,
                from,
                to_height,
            } => {
                let n = &self.nodes[node as usize];
                let lo = (from.max(1) - 1) as usize;
                let hi = (to_height as usize).min(n.chain.len());
                if lo < hi {
                    let blocks = n.chain[lo..hi].to_vec();
                    self.emit(node, Some(to), Message::SyncResponse(blocks));
                }
            }
            Action::SetTimer { at } => {
                self.nodes[node as usize].timer = Some(at);
                self.push(at, Ev::Timer { node, at });
            }
            Action::Alarm(alarm) => self.alarm(node, alarm),
        }
    }

    fn alarm(&mut self, node: u32, alarm: Alarm) {
        let honest = self.honest(node);
        match alarm {
            Alarm::Divergence { height, .. } if honest => {
                self.violate(format!("honest n{node} diverged at height {height}"));
            }
            Alarm::Fork { height } if honest => {
                self.violate(format!("honest n{node} saw a fork at height {height}"));
            }
            _ => self.note(node, "alarm", 0, 0),
        }
    }

    /// Sends a message of `node` to validator `to` (or to every other validator): checked if
    /// the node is honest, rewritten if it is byzantine, then through the network.
    fn emit(&mut self, node: u32, to: Option<u32>, message: Message) {
        let me = self.nodes[node as usize].ctx.me;
        let targets: Vec<u32> = match to {
            Some(t) => vec![t],
            None => (0..self.n).filter(|&t| t != me).collect(),
        };
        let Some(behaviour) = self.nodes[node as usize].byzantine else {
            let bytes = Rc::new(message.to_bytes());
            let max = self.cfg.max_message_bytes;
            let persisted = &self.nodes[node as usize].safety;
            let checked = self
                .checker
                .outgoing(me, &message, bytes.len(), max, persisted);
            if let Err(e) = checked {
                self.violate(e);
            }
            for t in targets {
                self.route(node, t, bytes.clone());
            }
            return;
        };
        for t in targets {
            for bytes in self.byzantine_out(node, behaviour, t, &message) {
                self.route(node, t, Rc::new(bytes));
            }
        }
    }

    /// Puts bytes from `node` on the wire to validator `to`: dropped above the frame limit, and
    /// delivered to each of the validator's replicas on the sender's side of the partitions.
    fn route(&mut self, node: u32, to: u32, bytes: Rc<Vec<u8>>) {
        if bytes.len() > self.cfg.max_message_bytes {
            self.note(node, "oversize-dropped", bytes.len() as u64, 0);
            return;
        }
        let from = self.nodes[node as usize].ctx.me;
        let twins = self.schedule.twins.iter().enumerate();
        let seconds = twins
            .filter(|(_, &v)| v == to)
            .map(|(i, _)| self.n + i as u32);
        let partitioned = self.now < self.schedule.heal_at;
        let recipients: Vec<u32> = std::iter::once(to)
            .chain(seconds)
            .filter(|&r| !partitioned || self.schedule.same_side(self.round, node, r))
            .collect();
        for r in recipients {
            for delay in self.schedule.deliveries(&mut self.rng, from, to, self.now) {
                self.messages += 1;
                let bytes = bytes.clone();
                self.push(self.now + delay, Ev::Msg { to: r, from, bytes });
            }
        }
    }

    fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("at {}ms: {what}", self.now));
        }
    }

    fn deliver(&mut self, node: u32, block: Block, certificate: lanes_types::CommitCertificate) {
        let h = block.height();
        let hash = block.hash();
        let honest = self.honest(node);
        let hash8 = u64::from_be_bytes(hash.0[..8].try_into().unwrap_or_default());
        self.note(node, "deliver", h, hash8);
        let n = &self.nodes[node as usize];
        if let Err(e) = checks::delivery(node, checks::tip(&n.chain), &block, &certificate) {
            if honest {
                self.violate(e);
            }
            return;
        }
        let n = &mut self.nodes[node as usize];
        let prev_root = n.roots.last().copied().unwrap_or(Hash::ZERO);
        let root = Hash::tagged_parts("lanes/sim-root", &[&prev_root.0, &hash.0]);
        let txs: Vec<Hash> = block.txs.iter().map(|t| lanes_types::tx_hash(t)).collect();
        n.ctx.record_delivered(&block);
        n.chain.push(CertifiedBlock { block, certificate });
        n.roots.push(root);
        let mut problems = Vec::new();
        if honest {
            for th in &txs {
                if !n.delivered_txs.insert(*th) {
                    problems.push(format!("n{node} delivered transaction {th} twice"));
                }
            }
        }
        self.push(self.now + 1, Ev::Executed { node, height: h });
        if honest {
            self.check_agreement(node, h, hash, root, &txs, &mut problems);
        }
        if let Some(p) = problems.into_iter().next() {
            self.violate(p);
        }
    }

    /// Validity, agreement and root agreement of one honest delivery.
    fn check_agreement(
        &mut self,
        node: u32,
        h: u64,
        hash: Hash,
        root: Hash,
        txs: &[Hash],
        problems: &mut Vec<String>,
    ) {
        for th in txs {
            if !self.submitted.contains(th) {
                problems.push(format!(
                    "n{node} delivered transaction {th} nobody submitted"
                ));
            }
            self.committed_any.insert(*th);
        }
        let c = *self.canonical.entry(h).or_insert(hash);
        if c != hash {
            problems.push(format!(
                "agreement: n{node} delivered {hash} at height {h}, others {c}"
            ));
        }
        if *self.roots.entry(h).or_insert(root) != root {
            problems.push(format!("root agreement broken at height {h}"));
        }
    }
}
