//! The simulated network and the fault schedule: what happens to each message, and when nodes
//! crash, restart or are cut off. Everything is drawn from the run's seeded random stream up
//! front or at send time, so a seed replays exactly.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultProfile {
    /// A perfect network of honest replicas (still with random delays).
    None,
    /// Drops, delays, duplicates, reordering and partitions that heal.
    Network,
    /// Crashes at any moment (even between two actions of one event) and restarts from the
    /// persisted state.
    Crash,
    /// Up to f byzantine validators.
    Byzantine,
    /// Twins (Bano et al.): up to f validators each run as two honest replicas sharing one key,
    /// under partitions that change at view boundaries.
    Twins,
    /// All of the above at once (byzantine validators may be twins).
    All,
}

impl FaultProfile {
    /// Every profile, in order.
    pub const ALL: [FaultProfile; 6] = [
        FaultProfile::None,
        FaultProfile::Network,
        FaultProfile::Crash,
        FaultProfile::Byzantine,
        FaultProfile::Twins,
        FaultProfile::All,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Network => "network",
            FaultProfile::Crash => "crash",
            FaultProfile::Byzantine => "byzantine",
            FaultProfile::Twins => "twins",
            FaultProfile::All => "all",
        }
    }

    pub(crate) fn network(self) -> bool {
        matches!(self, FaultProfile::Network | FaultProfile::All)
    }
    pub(crate) fn crash(self) -> bool {
        matches!(self, FaultProfile::Crash | FaultProfile::All)
    }
    pub(crate) fn byzantine(self) -> bool {
        matches!(self, FaultProfile::Byzantine | FaultProfile::All)
    }
    pub(crate) fn twins(self) -> bool {
        matches!(self, FaultProfile::Twins | FaultProfile::All)
    }
}

impl std::str::FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown fault profile {s:?} (none|network|crash|byzantine|twins|all)")
            })
    }
}

/// A byzantine behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// As primary, proposes different blocks for one height to the two halves of the replicas.
    EquivocatingPrimary,
    /// Votes for its block towards one half and for a conflicting hash towards the other.
    ConflictingVoter,
    /// Signs a wrong state root after every block.
    WrongRoot,
    /// Sends random bytes and messages with bad signatures besides its normal traffic.
    Garbage,
    /// Sends its proposals, votes, VIEW-CHANGEs and NEW-VIEWs only to the validators whose bit
    /// is set in `mask` (different peers see different things).
    Selective {
        /// Bit i set: validator i receives the signed messages.
        mask: u32,
    },
    /// Never sends its own PREPARE or COMMIT votes.
    Withholding,
    /// Sends blocks of its chain, with their certificates, as unsolicited `SyncResponse`s.
    Replayer,
    /// Sends messages of exactly the network's size limit, and some just above it.
    Oversized,
    /// Runs as two honest replicas sharing this validator's key (Twins); the second one is an
    /// extra simulated node.
    Twin,
}

impl Byzantine {
    /// Draws a behaviour for a validator of `n`; `twins` allows [`Byzantine::Twin`].
    fn draw(rng: &mut ChaCha8Rng, n: u32, twins: bool) -> Byzantine {
        let kinds = if twins { 9 } else { 8 };
        match rng.gen_range(0..kinds) {
            0 => Byzantine::EquivocatingPrimary,
            1 => Byzantine::ConflictingVoter,
            2 => Byzantine::WrongRoot,
            3 => Byzantine::Garbage,
            4 => Byzantine::Selective {
                mask: rng.gen::<u32>() & ((1u64 << n) - 1) as u32,
            },
            5 => Byzantine::Withholding,
            6 => Byzantine::Replayer,
            7 => Byzantine::Oversized,
            _ => Byzantine::Twin,
        }
    }
}

/// Where a scheduled crash strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Between two events.
    Between,
    /// After a random prefix of the actions of the node's next event.
    MidEvent,
    /// Right after the k-th `Persist` of the next event that has k of them (before the
    /// `Send`/`Broadcast` that follows it).
    AfterPersist(u8),
    /// During the next event that handles or sends a VIEW-CHANGE or NEW-VIEW: right after one
    /// of its `Persist`s or right after a VIEW-CHANGE/NEW-VIEW left (or after a random prefix
    /// if it has neither).
    ViewChange,
}

impl CrashPoint {
    fn draw(rng: &mut ChaCha8Rng) -> CrashPoint {
        match rng.gen_range(0..4) {
            0 => CrashPoint::Between,
            1 => CrashPoint::MidEvent,
            2 => CrashPoint::AfterPersist(rng.gen_range(1..=3)),
            _ => CrashPoint::ViewChange,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Node crashes at `at` (at the crash point `point`) and restarts at `until`.
    Crash {
        /// The node.
        node: u32,
        /// Crash time.
        at: u64,
        /// Restart time.
        until: u64,
        /// Where, within the node's events, the crash strikes.
        point: CrashPoint,
    },
    /// Messages from `from` to `to` are lost during [at, until).
    Cut {
        /// Senders cut off.
        from: Vec<u32>,
        /// Receivers cut off.
        to: Vec<u32>,
        /// Start.
        at: u64,
        /// Heal.
        until: u64,
    },
    /// The node behaves byzantine for the whole run.
    Byzantine {
        /// The node.
        node: u32,
        /// How.
        behaviour: Byzantine,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash {
                node,
                at,
                until,
                point,
            } => {
                write!(
                    f,
                    "crash n{node} at {at}ms ({point:?}), restart at {until}ms"
                )
            }
            Fault::Cut {
                from,
                to,
                at,
                until,
            } => {
                write!(f, "cut {from:?} -> {to:?} from {at}ms to {until}ms")
            }
            Fault::Byzantine { node, behaviour } => write!(f, "n{node} byzantine: {behaviour:?}"),
        }
    }
}

/// Per-run network parameters and fault schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Faults, in the order drawn.
    pub faults: Vec<Fault>,
    /// Probability a message is lost while faults are active.
    pub drop: f64,
    /// Probability a message is delivered twice while faults are active.
    pub duplicate: f64,
    /// Extra random delay (reordering) while faults are active, in ms.
    pub jitter_ms: u64,
    /// Time at which every network fault heals and every crashed node is back.
    pub heal_at: u64,
    /// Validators run as twins; the second replica of `twins[i]` is simulated node `n + i`.
    pub twins: Vec<u32>,
    /// Twins partitions, in the order they are used: `partitions[r][node]` is the group of
    /// simulated node `node` in round r. Empty without twins.
    pub partitions: Vec<Vec<u8>>,
    /// A partition round also ends after this long without a view change.
    pub round_ms: u64,
}

impl Schedule {
    /// Draws a schedule for `n` validators (tolerating `f`) over `[0, fault_ms)`.
    pub fn draw(
        rng: &mut ChaCha8Rng,
        profile: FaultProfile,
        n: u32,
        f: u32,
        fault_ms: u64,
    ) -> Self {
        let mut s = Schedule {
            faults: Vec::new(),
            drop: 0.0,
            duplicate: 0.0,
            jitter_ms: 0,
            heal_at: fault_ms,
            twins: Vec::new(),
            partitions: Vec::new(),
            round_ms: 1_000,
        };
        if profile.byzantine() || profile == FaultProfile::Twins {
            s.draw_byzantine(rng, profile, n, f);
        }
        if profile.network() {
            s.draw_network(rng, n, fault_ms);
        }
        if profile.crash() {
            s.draw_crashes(rng, n, fault_ms);
        }
        s.twins = (0..n)
            .filter(|&v| s.byzantine(v) == Some(Byzantine::Twin))
            .collect();
        if !s.twins.is_empty() {
            s.draw_partitions(rng, n);
        }
        s
    }

    fn draw_byzantine(&mut self, rng: &mut ChaCha8Rng, profile: FaultProfile, n: u32, f: u32) {
        let count = rng.gen_range(1..=f);
        let mut nodes: Vec<u32> = (0..n).collect();
        for _ in 0..count {
            let node = nodes.swap_remove(rng.gen_range(0..nodes.len()));
            let behaviour = match profile {
                FaultProfile::Twins => Byzantine::Twin,
                _ => Byzantine::draw(rng, n, profile.twins()),
            };
            self.faults.push(Fault::Byzantine { node, behaviour });
        }
    }

    fn draw_network(&mut self, rng: &mut ChaCha8Rng, n: u32, fault_ms: u64) {
        self.drop = rng.gen_range(0.0..0.2);
        self.duplicate = rng.gen_range(0.0..0.1);
        self.jitter_ms = rng.gen_range(0..150);
        for _ in 0..rng.gen_range(1..=3) {
            let at = rng.gen_range(0..fault_ms);
            let until = rng.gen_range(at..=fault_ms);
            let mut side: Vec<u32> = (0..n).filter(|_| rng.gen_bool(0.4)).collect();
            if side.is_empty() {
                side.push(rng.gen_range(0..n));
            }
            let rest: Vec<u32> = (0..n).filter(|v| !side.contains(v)).collect();
            self.faults.push(Fault::Cut {
                from: side.clone(),
                to: rest.clone(),
                at,
                until,
            });
            if rng.gen_bool(0.6) {
                // Symmetric; otherwise one-way.
                self.faults.push(Fault::Cut {
                    from: rest,
                    to: side,
                    at,
                    until,
                });
            }
        }
    }

    /// Frequent crash-restart cycles, some short, each striking at a drawn point.
    fn draw_crashes(&mut self, rng: &mut ChaCha8Rng, n: u32, fault_ms: u64) {
        for _ in 0..rng.gen_range(2..=3 * n) {
            let node = rng.gen_range(0..n);
            let at = rng.gen_range(0..fault_ms);
            let down = if rng.gen_bool(0.5) {
                rng.gen_range(1..=300)
            } else {
                rng.gen_range(1..=fault_ms)
            };
            let until = (at + down).min(fault_ms).max(at + 1);
            let point = CrashPoint::draw(rng);
            self.faults.push(Fault::Crash {
                node,
                at,
                until,
                point,
            });
        }
    }

    /// Twins partitions: 3 to 10 rounds. Most put one replica of a twin with a quorum of
    /// validators and the other replica with everyone else (so each replica of the twin can
    /// take part in a quorum in turn); the others split the nodes at random into 2 or 3 groups.
    fn draw_partitions(&mut self, rng: &mut ChaCha8Rng, n: u32) {
        self.round_ms = rng.gen_range(400..=1_200);
        for _ in 0..rng.gen_range(3..=10) {
            let round = if rng.gen_bool(0.6) {
                self.quorum_round(rng, n)
            } else {
                self.random_round(rng, n)
            };
            self.partitions.push(round);
        }
    }

    /// Side 0: one replica of a twin and q-1 other validators; side 1: the rest.
    fn quorum_round(&self, rng: &mut ChaCha8Rng, n: u32) -> Vec<u8> {
        let nodes = n as usize + self.twins.len();
        let f = (n - 1) / 3;
        let q = ((n + f) / 2 + 1) as usize;
        let t = rng.gen_range(0..self.twins.len());
        let (first, second) = (self.twins[t] as usize, n as usize + t);
        let (with, without) = if rng.gen_bool(0.5) {
            (first, second)
        } else {
            (second, first)
        };
        let mut others: Vec<usize> = (0..n as usize).filter(|&v| v != first).collect();
        let mut round = vec![1u8; nodes];
        round[with] = 0;
        for _ in 1..q {
            let pick = others.swap_remove(rng.gen_range(0..others.len()));
            round[pick] = 0;
        }
        round[without] = 1;
        round
    }

    /// Every node in a random one of 2 or 3 groups, the replicas of a twin mostly apart.
    fn random_round(&self, rng: &mut ChaCha8Rng, n: u32) -> Vec<u8> {
        let nodes = n as usize + self.twins.len();
        let groups = rng.gen_range(2..=3u8);
        let mut round: Vec<u8> = (0..nodes).map(|_| rng.gen_range(0..groups)).collect();
        for (i, &v) in self.twins.iter().enumerate() {
            let twin = n as usize + i;
            if round[twin] == round[v as usize] && rng.gen_bool(0.8) {
                round[twin] = (round[v as usize] + 1) % groups;
            }
        }
        round
    }

    /// The simulated nodes: the validators, then the second replica of each twin.
    pub fn nodes(&self, n: u32) -> u32 {
        n + self.twins.len() as u32
    }

    /// The partition rounds, for the report.
    pub fn describe_partitions(&self) -> Vec<String> {
        self.partitions
            .iter()
            .enumerate()
            .map(|(r, round)| {
                let groups = round.iter().copied().max().unwrap_or(0);
                let sides: Vec<Vec<usize>> = (0..=groups)
                    .map(|g| (0..round.len()).filter(|&i| round[i] == g).collect())
                    .collect();
                format!("twins partition round {r}: nodes {sides:?}")
            })
            .collect()
    }

    /// Whether nodes `a` and `b` are on the same side in partition round `round` (rounds past
    /// the last one, or no twins at all: everyone is connected).
    pub fn same_side(&self, round: usize, a: u32, b: u32) -> bool {
        match self.partitions.get(round) {
            Some(p) => p.get(a as usize) == p.get(b as usize),
            None => true,
        }
    }

    /// The byzantine behaviour of `node`, if any.
    pub fn byzantine(&self, node: u32) -> Option<Byzantine> {
        self.faults.iter().find_map(|f| match f {
            Fault::Byzantine { node: b, behaviour } if *b == node => Some(*behaviour),
            _ => None,
        })
    }
    /// Whether a message from `from` to `to` sent at `now` is cut by a partition.
    pub fn cut(&self, from: u32, to: u32, now: u64) -> bool {
        self.faults.iter().any(|f| match f {
            Fault::Cut {
                from: fs,
                to: ts,
                at,
                until,
            } => *at <= now && now < *until && fs.contains(&from) && ts.contains(&to),
            _ => false,
        })
    }

    /// Delivery delays for one message sent at `now` (empty: lost; two: duplicated).
    pub fn deliveries(&self, rng: &mut ChaCha8Rng, from: u32, to: u32, now: u64) -> Vec<u64> {
        if self.cut(from, to, now) {
            return Vec::new();
        }
        let faulty = now < self.heal_at;
        let jitter = if faulty { self.jitter_ms } else { 0 };
        let delay = |rng: &mut ChaCha8Rng| rng.gen_range(1..=10) + rng.gen_range(0..=jitter);
        if faulty && rng.gen_bool(self.drop) {
            return Vec::new();
        }
        let mut out = vec![delay(rng)];
        if faulty && rng.gen_bool(self.duplicate) {
            out.push(delay(rng));
        }
        out
    }
}
