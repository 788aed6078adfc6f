//! The deterministic simulator: n replicas with in-memory persistence, a virtual clock and a
//! seeded network, driven through faults while a checker watches every step.
//!
//! Checked after every event: **agreement** (no two honest replicas deliver different blocks at
//! one height), **validity** (every delivered transaction was submitted by the client, and no
//! replica delivers one twice), **root agreement** (honest replicas compute the same root at
//! every height) and no honest divergence or fork alarm. At the end, **liveness**: once every
//! fault has healed (byzantine replicas stay byzantine), every submitted transaction must be
//! delivered by every honest replica within `settle_ms` of virtual time.
//!
//! The executor is modelled by `root(h) = H(root(h-1), block hash)`, so a wrong root is
//! detectable. Signatures use a cheap keyed hash (the simulation knows every key; a byzantine
//! replica only uses its own), which keeps thousands of seeds fast. A failing seed's report
//! names the seed, the fault schedule and the last events before the violation; running the
//! seed again reproduces it exactly.

mod network;

pub use network::{Byzantine, Fault, FaultProfile, Schedule};

use crate::context::Context;
use crate::messages::{CertifiedBlock, Message, Phase};
use crate::replica::{Action, Alarm, Config, Event, Recovered, Replica};
use crate::safety;
use crate::MempoolLimits;
use lanes_types::codec::Encode;
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
        chain_id: "lanes-sim".into(),
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

/// A simulated validator: its replica (none while crashed) and what it persisted.
struct Node {
    ctx: SimContext,
    replica: Option<Replica<SimContext>>,
    byzantine: Option<Byzantine>,
    safety: BTreeMap<Vec<u8>, Vec<u8>>,
    chain: Vec<CertifiedBlock>,
    roots: Vec<Hash>,
    stable: Option<CheckpointCertificate>,
    timer: Option<u64>,
    delivered_txs: HashSet<Hash>,
    /// Crash after a random prefix of the actions of the next event.
    crash_mid_event: bool,
}

enum Ev {
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
    /// Every vote an honest replica signed: (node, phase, view, height) -> hash.
    votes: BTreeMap<(u32, Phase, u64, u64), Hash>,
    committed_any: HashSet<Hash>,
    tx_hashes: Vec<Hash>,
    messages: u64,
    violation: Option<String>,
    trace: VecDeque<TraceEntry>,
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
        votes: BTreeMap::new(),
        committed_any: HashSet::new(),
        tx_hashes,
        messages: 0,
        violation: None,
        trace: VecDeque::with_capacity(TRACE_LEN),
        schedule,
    };
    for (i, ctx) in (0..n).zip(contexts) {
        let byzantine = sim.schedule.byzantine(i);
        let replica = new_replica(&ctx, n, Recovered::default());
        sim.nodes.push(Node {
            ctx,
            replica: Some(replica),
            byzantine,
            safety: BTreeMap::new(),
            chain: Vec::new(),
            roots: Vec::new(),
            stable: None,
            timer: None,
            delivered_txs: HashSet::new(),
            crash_mid_event: false,
        });
    }
    for tx in 0..cfg.txs {
        let at = sim.rng.gen_range(0..cfg.fault_ms.max(1));
        sim.push(at, Ev::Submit { tx });
    }
    for fault in sim.schedule.faults.clone() {
        if let Fault::Crash { node, at, until } = fault {
            sim.push(at, Ev::Crash { node });
            sim.push(until, Ev::Restart { node });
        }
    }
    sim.run_loop();
    sim.report()
}

fn new_replica(ctx: &SimContext, n: u32, recovered: Recovered) -> Replica<SimContext> {
    Replica::new(sim_replica_config(n, ctx.me), ctx.clone(), recovered)
        .expect("the simulator's own safety records always decode")
}

impl Sim {
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

    fn honest(&self, i: u32) -> bool {
        self.nodes[i as usize].byzantine.is_none()
    }

    fn done(&self) -> bool {
        self.now >= self.schedule.heal_at
            && (0..self.n)
                .filter(|&i| self.honest(i))
                .all(|i| self.nodes[i as usize].delivered_txs.len() == self.cfg.txs)
    }

    fn run_loop(&mut self) {
        let deadline = self.schedule.heal_at + self.cfg.settle_ms;
        while let Some(Reverse((at, _, id))) = self.queue.pop() {
            if at > deadline || self.violation.is_some() {
                break;
            }
            self.now = at;
            let ev = self.events.remove(&id).expect("queued event exists");
            self.step(ev);
            if self.done() {
                break;
            }
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
            Ev::Crash { node } => {
                if self.cfg.profile.crash() && self.rng.gen_bool(0.5) {
                    self.nodes[node as usize].crash_mid_event = true;
                    self.note(node, "crash-armed", 0, 0);
                } else {
                    self.crash(node);
                }
            }
            Ev::Restart { node } => self.restart(node),
            Ev::Executed { node, height } => {
                let n = &self.nodes[node as usize];
                if n.replica.is_none() || n.chain.len() < height as usize {
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
        }
    }

    fn crash(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        n.crash_mid_event = false;
        if n.replica.take().is_some() {
            n.timer = None;
            self.note(node, "crash", 0, 0);
        }
    }

    fn restart(&mut self, node: u32) {
        if self.nodes[node as usize].replica.is_some() {
            self.nodes[node as usize].crash_mid_event = false;
            return;
        }
        let n = &self.nodes[node as usize];
        let recovered = Recovered {
            committed_height: n.chain.len() as u64,
            committed_hash: n.chain.last().map_or(Hash::ZERO, |c| c.block.hash()),
            stable: n.stable.clone(),
            safety: n
                .safety
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let replica = new_replica(&self.nodes[node as usize].ctx, self.n, recovered);
        self.nodes[node as usize].replica = Some(replica);
        self.note(node, "restart", 0, 0);
        self.feed(node, Event::Timer);
    }

    fn submit(&mut self, tx: usize) {
        let hash = self.tx_hashes[tx];
        if self.committed_any.contains(&hash)
            && (0..self.n)
                .filter(|&i| self.honest(i))
                .all(|i| self.nodes[i as usize].delivered_txs.contains(&hash))
        {
            return;
        }
        let up: Vec<u32> = (0..self.n)
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

    /// Hands an event to a node's replica and carries out the actions.
    fn feed(&mut self, node: u32, event: Event) {
        let now = self.now;
        let Some(replica) = self.nodes[node as usize].replica.as_mut() else {
            return;
        };
        let mut actions = replica.handle(event, now);
        if self.nodes[node as usize].crash_mid_event {
            let keep = self.rng.gen_range(0..=actions.len());
            actions.truncate(keep);
            self.note(node, "crash-mid-event", keep as u64, 0);
            for action in actions {
                self.act(node, action);
            }
            self.crash(node);
            return;
        }
        for action in actions {
            self.act(node, action);
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
            Action::Send { to, message } => self.send(node, to, message),
            Action::Broadcast(message) => {
                self.check_vote(node, &message);
                for to in 0..self.n {
                    if to != node {
                        self.send(node, to, message.clone());
                    }
                }
            }
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
                    self.send(node, to, Message::SyncResponse(blocks));
                }
            }
            Action::SetTimer { at } => {
                self.nodes[node as usize].timer = Some(at);
                self.push(at, Ev::Timer { node, at });
            }
            Action::Alarm(alarm) => {
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
        }
    }

    /// An honest replica must never sign two blocks for one (phase, view, height), not even
    /// across a crash and restart.
    fn check_vote(&mut self, node: u32, message: &Message) {
        let (phase, vote) = match message {
            Message::Prepare(v) => (Phase::Prepare, v),
            Message::Commit(v) => (Phase::Commit, v),
            _ => return,
        };
        if !self.honest(node) {
            return;
        }
        let key = (node, phase, vote.view, vote.height);
        match self.votes.get(&key) {
            Some(h) if *h != vote.block_hash => self.violate(format!(
                "n{node} signed two blocks for {phase:?} at view {} height {}",
                vote.view, vote.height
            )),
            Some(_) => {}
            None => {
                self.votes.insert(key, vote.block_hash);
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
        self.note(
            node,
            "deliver",
            h,
            u64::from_be_bytes(hash.0[..8].try_into().unwrap_or_default()),
        );
        let len = self.nodes[node as usize].chain.len() as u64;
        if h != len + 1 {
            self.violate(format!("n{node} delivered height {h} after {len}"));
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
        if !honest {
            return;
        }
        for th in &txs {
            if !self.submitted.contains(th) {
                problems.push(format!(
                    "n{node} delivered transaction {th} nobody submitted"
                ));
            }
            self.committed_any.insert(*th);
        }
        match self.canonical.get(&h) {
            Some(c) if *c != hash => {
                problems.push(format!(
                    "agreement: n{node} delivered {hash} at height {h}, others {c}"
                ));
            }
            Some(_) => {}
            None => {
                self.canonical.insert(h, hash);
            }
        }
        match self.roots.get(&h) {
            Some(r) if *r != root => problems.push(format!("root agreement broken at height {h}")),
            Some(_) => {}
            None => {
                self.roots.insert(h, root);
            }
        }
        if let Some(p) = problems.into_iter().next() {
            self.violate(p);
        }
    }

    /// Sends one message through the network model, transformed if the sender is byzantine.
    fn send(&mut self, from: u32, to: u32, message: Message) {
        let mut outgoing = vec![message.to_bytes()];
        if let Some(b) = self.nodes[from as usize].byzantine {
            outgoing = self.byzantine_out(from, b, to, message);
        }
        for bytes in outgoing {
            let bytes = Rc::new(bytes);
            for delay in self.schedule.deliveries(&mut self.rng, from, to, self.now) {
                self.messages += 1;
                self.push(
                    self.now + delay,
                    Ev::Msg {
                        to,
                        from,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
    }

    fn byzantine_out(&mut self, me: u32, b: Byzantine, to: u32, message: Message) -> Vec<Vec<u8>> {
        use crate::byzantine as evil;
        let key = self.keys[me as usize];
        let sign = |bytes: &[u8]| sim_sign(&key, bytes);
        let other_half = evil::upper_half(to, self.n);
        let chain_id = "lanes-sim";
        match (b, message) {
            (Byzantine::EquivocatingPrimary, Message::PrePrepare { view, block }) if other_half => {
                evil::equivocation(view, &block, me, chain_id, sign)
                    .iter()
                    .map(Message::to_bytes)
                    .collect()
            }
            (Byzantine::ConflictingVoter, Message::Prepare(v)) if other_half => {
                let v = evil::conflicting_vote(Phase::Prepare, &v, chain_id, sign);
                vec![Message::Prepare(v).to_bytes()]
            }
            (Byzantine::ConflictingVoter, Message::Commit(v)) if other_half => {
                let v = evil::conflicting_vote(Phase::Commit, &v, chain_id, sign);
                vec![Message::Commit(v).to_bytes()]
            }
            (Byzantine::Garbage, message) => {
                let mut out = vec![message.to_bytes()];
                if self.rng.gen_bool(0.3) {
                    let len = self.rng.gen_range(0..200);
                    out.push((0..len).map(|_| self.rng.gen()).collect());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(evil::corrupted(&message));
                }
                if self.rng.gen_bool(0.1) {
                    out.push(evil::forged_new_view(self.rng.gen_range(1..1000)).to_bytes());
                }
                out
            }
            (_, message) => vec![message.to_bytes()],
        }
    }

    fn report(&self) -> SimReport {
        let honest: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .collect();
        let liveness_failure = if self.violation.is_none() && !self.done() {
            let lagging: Vec<String> = (0..self.n)
                .filter(|&i| self.honest(i))
                .map(|i| {
                    let n = &self.nodes[i as usize];
                    let r = n.replica.as_ref();
                    format!(
                        "\n  n{i}: {}/{} txs, height {}: {}",
                        n.delivered_txs.len(),
                        self.cfg.txs,
                        n.chain.len(),
                        r.map_or("down".to_string(), |r| r.debug_state()),
                    )
                })
                .collect();
            Some(format!(
                "not every transaction delivered by every honest replica {}ms after healing: {}",
                self.cfg.settle_ms,
                lagging.concat()
            ))
        } else {
            None
        };
        let trace = self
            .trace
            .iter()
            .map(|e| match e.what {
                "recv" => format!(
                    "{:>6}ms n{} <- n{} {}",
                    e.t,
                    e.node,
                    e.a,
                    Message::KINDS
                        .get(e.b as usize)
                        .copied()
                        .unwrap_or("garbage")
                ),
                "deliver" => format!(
                    "{:>6}ms n{} delivers height {} ({:016x})",
                    e.t, e.node, e.a, e.b
                ),
                "submit" => format!("{:>6}ms n{} gets client tx {}", e.t, e.node, e.a),
                "timer" => format!("{:>6}ms n{} timer", e.t, e.node),
                other => format!("{:>6}ms n{} {} {}", e.t, e.node, other, e.a),
            })
            .collect();
        SimReport {
            seed: self.cfg.seed,
            profile: self.cfg.profile,
            validators: self.n,
            committed_blocks: honest.iter().map(|n| n.chain.len() as u64).max().unwrap_or(0),
            committed_txs: self.committed_any.len(),
            view_changes: self
                .nodes
                .iter()
                .filter_map(|n| n.replica.as_ref())
                .map(|r| r.stats().view_changes)
                .sum(),
            messages: self.messages,
            rejected_messages: self
                .nodes
                .iter()
                .filter(|n| n.byzantine.is_none())
                .filter_map(|n| n.replica.as_ref())
                .map(|r| r.stats().rejected_messages)
                .sum(),
            violation: self.violation.clone(),
            liveness_failure,
            schedule: self.schedule.faults.iter().map(|f| f.to_string()).chain([format!(
                "network while faulty: drop {:.2}, duplicate {:.2}, jitter {}ms; all heals at {}ms",
                self.schedule.drop, self.schedule.duplicate, self.schedule.jitter_ms, self.schedule.heal_at
            )]).collect(),
            trace,
            end_ms: self.now,
        }
    }
}
