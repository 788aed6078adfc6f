//! VIEW-CHANGE and NEW-VIEW.
//!
//! A replica that sees no progress for its timeout asks for view v+1 and stops taking part in
//! view v. Its VIEW-CHANGE reports its stable checkpoint and every prepared certificate above it.
//! If NEW-VIEW does not come in time it asks for the next view, with a doubled timeout. It joins
//! a view change when f+1 validators ask for views above its own (at least one of them honest).
//!
//! The new primary, with a quorum of VIEW-CHANGEs, re-proposes [`plan_new_view`]: starting from
//! the highest stable checkpoint among them, at each height the prepared certificate of the
//! highest view, as long as each links to the one below. Why nothing committed is lost: a block
//! B committed at h in view v was prepared by f+1 honest replicas, each of which (by the parent
//! rule in `replica.rs`) had also prepared B's ancestors in view v. Any quorum of VIEW-CHANGEs
//! contains one of them, so the highest-view certificates at h and below are B and its
//! ancestors, and the walk reaches B. Later views re-propose the same chain, by induction.

use crate::context::Context;
use crate::messages::{Message, NewView, PreparedCert, ViewChange};
use crate::replica::{Reject, Replica, BEHIND, MAX_VIEW_AHEAD};
use crate::safety;
use lanes_types::cert::checkpoint_message;
use lanes_types::{Block, BlockHeader, Hash};
use std::collections::BTreeMap;

/// What a NEW-VIEW re-proposes, computed the same way by the primary and every verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Height of the highest stable checkpoint among the VIEW-CHANGEs (0: genesis).
    pub base_height: u64,
    /// Its block hash ([`Hash::ZERO`] at genesis).
    pub base_hash: Hash,
    /// (index of the view change, index of the certificate) of each re-proposed block,
    /// ascending by height from `base_height + 1`.
    pub chain: Vec<(usize, usize)>,
}

/// Computes the re-proposals of a NEW-VIEW from its VIEW-CHANGEs (already verified).
pub fn plan_new_view(view_changes: &[ViewChange]) -> Plan {
    let base = view_changes
        .iter()
        .filter_map(|vc| vc.stable.as_ref())
        .fold(
            None::<&lanes_types::CheckpointCertificate>,
            |best, c| match best {
                Some(b) if b.height >= c.height => Some(b),
                _ => Some(c),
            },
        );
    let (base_height, base_hash) = base.map_or((0, Hash::ZERO), |c| (c.height, c.block_hash));
    // Highest-view certificate per height; ties keep the first (equal views certify one block).
    let mut best: BTreeMap<u64, (u64, usize, usize)> = BTreeMap::new();
    for (i, vc) in view_changes.iter().enumerate() {
        for (j, pc) in vc.prepared.iter().enumerate() {
            let h = pc.header.height;
            if h <= base_height {
                continue;
            }
            match best.get(&h) {
                Some((view, _, _)) if *view >= pc.view => {}
                _ => {
                    best.insert(h, (pc.view, i, j));
                }
            }
        }
    }
    let mut chain = Vec::new();
    let mut prev = base_hash;
    let mut h = base_height + 1;
    while let Some(&(_, i, j)) = best.get(&h) {
        let header = &view_changes[i].prepared[j].header;
        if header.parent != prev {
            break;
        }
        prev = header.hash();
        chain.push((i, j));
        h += 1;
    }
    Plan {
        base_height,
        base_hash,
        chain,
    }
}

/// The headers a NEW-VIEW re-proposes, ascending by height.
pub(crate) fn reproposed<'a>(
    nv: &'a NewView,
    plan: &'a Plan,
) -> impl Iterator<Item = &'a BlockHeader> + 'a {
    plan.chain
        .iter()
        .map(|&(i, j)| &nv.view_changes[i].prepared[j].header)
}

impl<C: Context> Replica<C> {
    /// Gives up on the current view and asks for `target`.
    pub(crate) fn start_view_change(&mut self, target: u64) {
        debug_assert!(target > self.view || (target == self.view && self.changing));
        self.view = target;
        self.changing = true;
        self.backoff = (self.backoff + 1).min(16);
        self.vc_deadline = None;
        self.stats.view_changes += 1;
        self.future.retain(|(v, _), _| *v >= target);
        tracing::info!(replica = self.cfg.me, view = target, "view change");
        self.send_view_change();
    }

    /// Builds, persists the view of, and broadcasts our VIEW-CHANGE for the view we are
    /// starting, from our current stable checkpoint and prepared certificates.
    pub(crate) fn send_view_change(&mut self) {
        if self.muted {
            self.vc_resend_at = self.now + self.cfg.view_timeout_ms;
            return;
        }
        let max = self.max_prepared_in_view_change() as usize;
        let prepared = self.log.prepared_certs(self.stable.height, max);
        let mut vc = ViewChange {
            view: self.view,
            validator: self.cfg.me,
            stable: self.stable_cert.clone(),
            prepared,
            signature: lanes_types::Signature([0; 64]),
        };
        vc.signature = self.ctx.sign(&vc.signed_bytes(&self.cfg.chain_id));
        self.persist(vec![safety::view_record(self.view, false)]);
        self.broadcast(Message::ViewChange(vc.clone()));
        self.vc_resend_at = self.now + self.cfg.view_timeout_ms;
        self.view_changes.insert(self.cfg.me, vc);
        self.check_view_change_quorum();
        self.maybe_new_view();
    }

    /// Starts the NEW-VIEW timer once a quorum (counting us) asks for the view we are starting
    /// or a later one: those that moved past it will not help start it, so if its NEW-VIEW does
    /// not come in time we follow them.
    fn check_view_change_quorum(&mut self) {
        if !self.changing || self.vc_deadline.is_some() {
            return;
        }
        let asking = self
            .view_changes
            .values()
            .filter(|vc| vc.view >= self.view)
            .count();
        if asking >= self.q {
            self.vc_deadline = Some(self.now + self.timeout());
        }
    }

    fn max_prepared_in_view_change(&self) -> u64 {
        self.cfg.max_prepared_in_view_change()
    }

    /// A VIEW-CHANGE from its signer, or relayed by another replica (the signature decides,
    /// not the sender).
    pub(crate) fn on_view_change(&mut self, from: u32, vc: ViewChange) -> Result<(), Reject> {
        if vc.view < self.view || (vc.view == self.view && !self.changing) {
            if vc.validator == from {
                // The sender is behind: show it how the current view started, or what we
                // know of the views it is missing.
                self.answer_laggard(from, vc.view);
            }
            return Ok(());
        }
        if vc.view > self.view + MAX_VIEW_AHEAD {
            return Err("view change too far ahead");
        }
        if self
            .view_changes
            .get(&vc.validator)
            .is_some_and(|old| old.view >= vc.view)
        {
            return Ok(());
        }
        self.check_view_change(&vc)?;
        if let Some(cert) = vc.stable.clone() {
            self.on_certified(cert);
        }
        self.view_changes.insert(vc.validator, vc);
        // Join when f+1 validators want a higher view: at least one of them is honest.
        let mut higher: Vec<u64> = self
            .view_changes
            .values()
            .map(|vc| vc.view)
            .filter(|v| *v > self.view)
            .collect();
        if higher.len() > self.f {
            higher.sort_unstable_by(|a, b| b.cmp(a));
            self.start_view_change(higher[self.f]);
        }
        self.check_view_change_quorum();
        self.maybe_new_view();
        Ok(())
    }

    /// Verifies a VIEW-CHANGE: signature, checkpoint certificate and prepared certificates.
    pub(crate) fn check_view_change(&self, vc: &ViewChange) -> Result<(), Reject> {
        if vc.validator as usize >= self.n {
            return Err("view change from an unknown validator");
        }
        if !self.ctx.verify(
            vc.validator,
            &vc.signed_bytes(&self.cfg.chain_id),
            &vc.signature,
        ) {
            return Err("bad view change signature");
        }
        if let Some(c) = &vc.stable {
            let msg =
                checkpoint_message(&self.cfg.chain_id, c.height, &c.block_hash, &c.state_root);
            if !self.verify_quorum(&msg, &c.signatures) {
                return Err("bad checkpoint certificate in view change");
            }
        }
        if vc.prepared.len() as u64 > self.max_prepared_in_view_change() {
            return Err("too many prepared certificates");
        }
        let mut last = vc.stable_height();
        for pc in &vc.prepared {
            let h = pc.header.height;
            if h <= last {
                return Err("prepared certificates out of order or below the checkpoint");
            }
            last = h;
            self.check_prepared_cert(pc, vc.view)?;
        }
        Ok(())
    }

    fn check_prepared_cert(&self, pc: &PreparedCert, below_view: u64) -> Result<(), Reject> {
        if pc.view >= below_view || pc.header.chain_id != self.cfg.chain_id {
            return Err("prepared certificate from a bad view or chain");
        }
        if pc.header.view > pc.view || pc.header.proposer as usize >= self.n {
            return Err("prepared certificate header inconsistent");
        }
        let msg = crate::messages::vote_bytes(
            crate::messages::Phase::Prepare,
            &self.cfg.chain_id,
            pc.view,
            pc.header.height,
            &pc.header.hash(),
        );
        if !self.verify_quorum(&msg, &pc.signatures) {
            return Err("prepared certificate lacks a quorum");
        }
        Ok(())
    }

    /// New primary: once a quorum asked for our view, start it.
    fn maybe_new_view(&mut self) {
        if self.muted || !self.changing || self.cfg.validators.primary(self.view) != self.cfg.me {
            return;
        }
        let view_changes: Vec<ViewChange> = self
            .view_changes
            .values()
            .filter(|vc| vc.view == self.view)
            .cloned()
            .collect();
        if view_changes.len() < self.q {
            return;
        }
        let plan = plan_new_view(&view_changes);
        let mut nv = NewView {
            view: self.view,
            view_changes,
            signature: lanes_types::Signature([0; 64]),
        };
        nv.signature = self.ctx.sign(&nv.signed_bytes(&self.cfg.chain_id));
        self.install_new_view(nv, plan, true);
    }

    pub(crate) fn on_new_view(&mut self, nv: NewView) -> Result<(), Reject> {
        if nv.view < self.view || (nv.view == self.view && !self.changing) {
            return Ok(());
        }
        if nv.view > self.view + MAX_VIEW_AHEAD {
            return Err("new view too far ahead");
        }
        let primary = self.cfg.validators.primary(nv.view);
        if !self
            .ctx
            .verify(primary, &nv.signed_bytes(&self.cfg.chain_id), &nv.signature)
        {
            return Err("bad new view signature");
        }
        if nv.view_changes.len() < self.q
            || nv.view_changes.len() > self.n
            || nv
                .view_changes
                .windows(2)
                .any(|w| w[0].validator >= w[1].validator)
        {
            return Err("new view without a quorum of distinct view changes");
        }
        for vc in &nv.view_changes {
            if vc.view != nv.view {
                return Err("new view carries a view change for another view");
            }
            self.check_view_change(vc)?;
        }
        let plan = plan_new_view(&nv.view_changes);
        for vc in &nv.view_changes {
            if let Some(cert) = vc.stable.clone() {
                self.on_certified(cert);
            }
        }
        self.install_new_view(nv, plan, false);
        Ok(())
    }

    /// Starts view `nv.view`: persists the view record and the NEW-VIEW (which binds this
    /// replica, across restarts, to the blocks it re-proposes), then, if `announce` (we are its
    /// primary), sends it, and accepts the re-proposed blocks.
    fn install_new_view(&mut self, nv: NewView, plan: Plan, announce: bool) {
        self.view = nv.view;
        self.changing = false;
        self.vc_deadline = None;
        self.persist(vec![
            safety::view_record(self.view, true),
            safety::new_view_record(&nv),
        ]);
        if announce {
            self.broadcast(Message::NewView(nv.clone()));
        }
        tracing::info!(
            replica = self.cfg.me,
            view = self.view,
            reproposed = plan.chain.len(),
            "new view"
        );
        self.view_changes.retain(|_, vc| vc.view > nv.view);
        self.in_flight.clear();
        self.progress_deadline = None;
        let end = plan.base_height + plan.chain.len() as u64;
        self.log.next_height = end.max(self.stable.height).max(self.log.committed.height) + 1;
        for header in reproposed(&nv, &plan) {
            if header.height > self.stable.height {
                self.accept_header(header);
            }
        }
        self.new_view = Some(nv);
        self.retry_waiting_proposals();
    }

    /// Accepts a block known by its header (a NEW-VIEW re-proposal): with its payload if we
    /// hold it, otherwise the payload is fetched by hash ([`Replica::maybe_fetch`]) and the
    /// block is voted on when it arrives.
    fn accept_header(&mut self, header: &BlockHeader) {
        let (h, hash) = (header.height, header.hash());
        let slot = self.log.slot_mut(h);
        match slot.blocks.get(&hash).cloned() {
            Some(block) => self.accept_proposal(block),
            None => slot.accepted = Some((self.view, hash)),
        }
    }

    /// Proposals of the current view that waited for a block below them, or for the view to
    /// be installed: accepted now if they pass, dropped otherwise.
    pub(crate) fn retry_waiting_proposals(&mut self) {
        let view = self.view;
        let waiting: Vec<Block> = self
            .future
            .range((view, 0)..=(view, u64::MAX))
            .map(|(_, b)| b.clone())
            .collect();
        self.future.retain(|(v, _), _| *v > view);
        for block in waiting {
            match self.check_fresh_proposal(&block) {
                Ok(()) => self.accept_proposal(block),
                Err(BEHIND) => {
                    self.future.insert((view, block.height()), block);
                }
                Err(_) => self.stats.rejected_messages += 1,
            }
        }
    }

    /// Answers a replica still asking for view `their_view`, at most once per timeout: with the
    /// NEW-VIEW of our current view if it is installed; while we are changing views ourselves,
    /// with the VIEW-CHANGEs we hold for its view and above. Those may be ones it never got (a
    /// byzantine validator can send its VIEW-CHANGE to some replicas only), without which it
    /// could wait for a quorum it will never see while we wait for it in a higher view.
    fn answer_laggard(&mut self, to: u32, their_view: u64) {
        let last = self.answered_laggard.get(&to).copied();
        if last.is_some_and(|t| t + self.cfg.view_timeout_ms > self.now) {
            return;
        }
        let messages: Vec<Message> = if self.changing {
            self.view_changes
                .values()
                .filter(|vc| vc.view >= their_view && vc.validator != to)
                .map(|vc| Message::ViewChange(vc.clone()))
                .collect()
        } else {
            let nv = self.new_view.as_ref().filter(|nv| nv.view == self.view);
            nv.map(|nv| Message::NewView(nv.clone()))
                .into_iter()
                .collect()
        };
        if messages.is_empty() {
            return;
        }
        self.answered_laggard.insert(to, self.now);
        for message in messages {
            self.out.push(crate::replica::Action::Send { to, message });
        }
    }
}
