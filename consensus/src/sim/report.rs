//! The report of a finished run: counters, the first violation, why liveness failed, the fault
//! schedule and the trace.

use super::{FaultProfile, Node, Sim};
use crate::messages::Message;

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

impl Sim {
    /// The report of the run so far.
    pub(super) fn report(&self) -> SimReport {
        let honest: Vec<&Node> = self.honest_nodes().collect();
        SimReport {
            seed: self.cfg.seed,
            profile: self.cfg.profile,
            validators: self.n,
            committed_blocks: honest
                .iter()
                .map(|n| n.chain.len() as u64)
                .max()
                .unwrap_or(0),
            committed_txs: self.committed_any.len(),
            view_changes: self
                .nodes
                .iter()
                .filter_map(|n| n.replica.as_ref())
                .map(|r| r.stats().view_changes)
                .sum(),
            messages: self.messages,
            rejected_messages: honest
                .iter()
                .filter_map(|n| n.replica.as_ref())
                .map(|r| r.stats().rejected_messages)
                .sum(),
            violation: self.violation.clone(),
            liveness_failure: self.liveness_failure(),
            schedule: self.describe_schedule(),
            trace: self.trace.iter().map(|e| self.format_trace(e)).collect(),
            end_ms: self.now,
        }
    }

    /// Why liveness failed: what each honest node delivered and its state.
    fn liveness_failure(&self) -> Option<String> {
        if self.violation.is_some() || self.done() {
            return None;
        }
        let lagging: Vec<String> = (0..self.nodes.len() as u32)
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
    }

    /// The fault schedule, one line per fault.
    fn describe_schedule(&self) -> Vec<String> {
        let s = &self.schedule;
        let twins = s.twins.iter().enumerate().map(|(i, v)| {
            format!(
                "n{v} runs twice: its second replica is node n{}",
                self.n + i as u32
            )
        });
        let network = format!(
            "network while faulty: drop {:.2}, duplicate {:.2}, jitter {}ms; all heals at {}ms; \
             frame limit {} bytes",
            s.drop, s.duplicate, s.jitter_ms, s.heal_at, self.cfg.max_message_bytes
        );
        s.faults
            .iter()
            .map(|f| f.to_string())
            .chain(twins)
            .chain(s.describe_partitions())
            .chain([network])
            .collect()
    }

    /// One trace entry, formatted.
    fn format_trace(&self, e: &super::TraceEntry) -> String {
        match e.what {
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
            "partition-round" => format!(
                "{:>6}ms twins partition round {} (top honest view {})",
                e.t, e.a, e.b
            ),
            other => format!("{:>6}ms n{} {} {}", e.t, e.node, other, e.a),
        }
    }
}
