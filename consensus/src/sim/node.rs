//! What a simulated node does with its replica's actions: persist, send (checked if honest,
//! rewritten if byzantine) through the network, deliver (checked for agreement and validity),
//! store certificates, serve catch-up, set timers, raise alarms.

use super::{checks, Ev, Sim};
use crate::messages::{tag, CertifiedBlock, Message};
use crate::replica::{Action, Alarm, Event};
use crate::safety;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Block, Hash};
use std::rc::Rc;

impl Sim {
    /// Hands an event to a node's replica and carries out the actions, up to an armed crash.
    pub(super) fn feed(&mut self, node: u32, event: Event) {
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

    /// Carries out one action of `node`'s replica.
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

    /// An alarm: a violation if an honest node diverged or saw a fork.
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

    /// Records the first violation.
    pub(super) fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("at {}ms: {what}", self.now));
        }
    }

    /// A node delivers a block: checked, stored, executed a moment later, and (if honest)
    /// checked for agreement and validity.
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
