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
//!
//! Layout: this file holds the run's parameters ([`SimConfig`]), the world's state (`Sim`,
//! `Node`, the timed events) and [`run`]; `event_loop.rs` the loop and what each event does;
//! `node.rs` what a node does with its replica's actions; `context.rs` the simulated host
//! (keys, transactions, replica configuration); `network.rs` the fault schedule; `crash.rs`
//! crash points and restarts; `adversary.rs` byzantine rewrites; `report.rs` the report.

mod adversary;
pub mod checks;
mod context;
mod crash;
mod event_loop;
mod network;
mod node;
mod report;
pub mod script;

pub use context::{sim_contexts, sim_replica_config, sim_transaction, SimContext};
pub use network::{Byzantine, CrashPoint, Fault, FaultProfile, Schedule};
pub use report::SimReport;

pub(crate) use context::CHAIN_ID;
use context::{sim_sign, sim_tx};

use crate::messages::CertifiedBlock;
use crate::replica::Replica;
use lanes_types::{CheckpointCertificate, Hash};
use rand::SeedableRng;
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

/// The simulated network's default frame limit (the sim's blocks are at most 64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

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

/// A timed event of the run.
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

/// How many trace entries a report keeps.
const TRACE_LEN: usize = 400;

/// The simulated world: the nodes, the queue of timed events, the seeded random stream, and
/// what the checker has seen so far.
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

/// The receipts root every honest simulated executor computes for the block `block_hash`.
fn sim_receipts_root(block_hash: &Hash) -> Hash {
    Hash::tagged("lanes/sim-receipts", &block_hash.0)
}
