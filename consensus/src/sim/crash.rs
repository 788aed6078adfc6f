//! Crashes of simulated nodes: between events, or at a chosen point inside an event's actions
//! (a random prefix, right after the k-th `Persist`, or while a view change is handled), and
//! restarts from exactly what was persisted and stored.

use super::context::new_replica;
use super::{checks, Sim};
use crate::messages::Message;
use crate::replica::{Action, Recovered};
use crate::sim::CrashPoint;
use lanes_types::{ExecRoots, Hash};
use rand::Rng;

impl Sim {
    /// A scheduled crash of `node`: at once if it strikes between events, otherwise armed for
    /// the coming events.
    pub(super) fn arm_crash(&mut self, node: u32, point: CrashPoint) {
        if self.nodes[node as usize].replica.is_none() {
            return;
        }
        if point == CrashPoint::Between {
            self.crash(node);
        } else {
            self.nodes[node as usize].crash_at = Some(point);
            self.note(node, "crash-armed", 0, 0);
        }
    }

    /// How many of `actions` the node carries out before an armed crash strikes (`None`: the
    /// crash does not strike in this event). `view_event`: the event is a VIEW-CHANGE or
    /// NEW-VIEW.
    pub(super) fn crash_cut(
        &mut self,
        node: u32,
        actions: &[Action],
        view_event: bool,
    ) -> Option<usize> {
        let point = self.nodes[node as usize].crash_at?;
        let persists: Vec<usize> = actions
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Action::Persist(_)))
            .map(|(i, _)| i + 1)
            .collect();
        match point {
            CrashPoint::Between => Some(0),
            CrashPoint::MidEvent => Some(self.rng.gen_range(0..=actions.len())),
            CrashPoint::AfterPersist(k) => persists.get(k as usize - 1).copied(),
            CrashPoint::ViewChange => {
                let sends: Vec<usize> = actions
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| sends_view_message(a))
                    .map(|(i, _)| i + 1)
                    .collect();
                if !view_event && sends.is_empty() {
                    return None;
                }
                let cuts: Vec<usize> = persists.into_iter().chain(sends).collect();
                if cuts.is_empty() {
                    Some(self.rng.gen_range(0..=actions.len()))
                } else {
                    Some(cuts[self.rng.gen_range(0..cuts.len())])
                }
            }
        }
    }

    /// The node loses everything but its persisted records and stored chain.
    pub(super) fn crash(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        n.crash_at = None;
        if n.replica.take().is_some() {
            n.timer = None;
            self.note(node, "crash", 0, 0);
        }
    }

    /// Restarts a crashed node from its persisted records, stored chain and stored execution
    /// certificate, and checks it starts exactly there. A node still up whose armed crash has
    /// not struck crashes now (between events) and restarts.
    pub(super) fn restart(&mut self, node: u32) {
        let n = &self.nodes[node as usize];
        if n.replica.is_some() {
            if n.crash_at.is_none() {
                return;
            }
            self.crash(node);
        }
        let n = &self.nodes[node as usize];
        let recovered = Recovered {
            committed_height: n.chain.len() as u64,
            committed_hash: n.chain.last().map_or(Hash::ZERO, |c| c.block.hash()),
            committed_roots: match n.chain.last() {
                Some(head) => ExecRoots {
                    state_root: n.roots[n.chain.len() - 1],
                    receipts_root: super::sim_receipts_root(&head.block.hash()),
                },
                None => ExecRoots::default(),
            },
            stable: n.stable.clone(),
            safety: n
                .safety
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let stable_height = n.stable.as_ref().map_or(0, |c| c.height);
        let replica = match new_replica(&n.ctx, self.n, recovered) {
            Ok(r) => r,
            Err(e) => {
                self.violate(format!("n{node} cannot restart from its records: {e}"));
                return;
            }
        };
        let checked = checks::restored(&replica, &n.safety, n.chain.len() as u64, stable_height);
        if let Err(e) = checked {
            if self.honest(node) {
                self.violate(e);
            }
        }
        self.nodes[node as usize].replica = Some(replica);
        self.note(node, "restart", 0, 0);
        self.feed(node, crate::replica::Event::Timer);
    }
}

/// Whether an action sends a VIEW-CHANGE or a NEW-VIEW.
fn sends_view_message(action: &Action) -> bool {
    match action {
        Action::Broadcast(m) | Action::Send { message: m, .. } => {
            matches!(m, Message::ViewChange { .. } | Message::NewView(_))
        }
        _ => false,
    }
}
