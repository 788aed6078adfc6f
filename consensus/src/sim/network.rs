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
    /// All of the above at once.
    All,
}

impl FaultProfile {
    /// Every profile, in order.
    pub const ALL: [FaultProfile; 5] = [
        FaultProfile::None,
        FaultProfile::Network,
        FaultProfile::Crash,
        FaultProfile::Byzantine,
        FaultProfile::All,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Network => "network",
            FaultProfile::Crash => "crash",
            FaultProfile::Byzantine => "byzantine",
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
}

impl std::str::FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown fault profile {s:?} (none|network|crash|byzantine|all)")
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
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Node crashes at `at` and restarts at `until`.
    Crash {
        /// The node.
        node: u32,
        /// Crash time.
        at: u64,
        /// Restart time.
        until: u64,
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
            Fault::Crash { node, at, until } => {
                write!(f, "crash n{node} at {at}ms, restart at {until}ms")
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
        let mut faults = Vec::new();
        let (mut drop, mut duplicate, mut jitter_ms) = (0.0, 0.0, 0);
        if profile.byzantine() {
            let count = rng.gen_range(1..=f);
            let mut nodes: Vec<u32> = (0..n).collect();
            for _ in 0..count {
                let node = nodes.swap_remove(rng.gen_range(0..nodes.len()));
                let behaviour = match rng.gen_range(0..4) {
                    0 => Byzantine::EquivocatingPrimary,
                    1 => Byzantine::ConflictingVoter,
                    2 => Byzantine::WrongRoot,
                    _ => Byzantine::Garbage,
                };
                faults.push(Fault::Byzantine { node, behaviour });
            }
        }
        if profile.network() {
            drop = rng.gen_range(0.0..0.2);
            duplicate = rng.gen_range(0.0..0.1);
            jitter_ms = rng.gen_range(0..150);
            for _ in 0..rng.gen_range(1..=3) {
                let at = rng.gen_range(0..fault_ms);
                let until = rng.gen_range(at..=fault_ms);
                let mut side: Vec<u32> = (0..n).filter(|_| rng.gen_bool(0.4)).collect();
                if side.is_empty() {
                    side.push(rng.gen_range(0..n));
                }
                let rest: Vec<u32> = (0..n).filter(|v| !side.contains(v)).collect();
                faults.push(Fault::Cut {
                    from: side.clone(),
                    to: rest.clone(),
                    at,
                    until,
                });
                if rng.gen_bool(0.6) {
                    // Symmetric; otherwise one-way.
                    faults.push(Fault::Cut {
                        from: rest,
                        to: side,
                        at,
                        until,
                    });
                }
            }
        }
        if profile.crash() {
            for _ in 0..rng.gen_range(1..=n) {
                let node = rng.gen_range(0..n);
                let at = rng.gen_range(0..fault_ms);
                let until = rng.gen_range(at + 1..=fault_ms.max(at + 1));
                faults.push(Fault::Crash { node, at, until });
            }
        }
        Schedule {
            faults,
            drop,
            duplicate,
            jitter_ms,
            heal_at: fault_ms,
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
