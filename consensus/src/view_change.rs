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
use crate::replica::{Config, Reject, Replica, MAX_VIEW_AHEAD};
use crate::safety;
use lanes_types::cert::checkpoint_message;
use lanes_types::{BlockHeader, Hash};
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

/// Longest exponent of the view-change back-off.
const MAX_BACKOFF: u32 = 16;

/// The view and the view-change protocol's state: the timers that start and give up on views,
/// the VIEW-CHANGEs held, and the NEW-VIEW that installed the current view.
///
/// Status transitions (`Normal(v)`: `current == v`, not `changing`; `ViewChanging(v)`:
/// `current == v`, `changing`, trying to start v):
/// - `Normal(v) -> ViewChanging(v+1)`: the progress timer expired (no delivery for a timeout
///   while work is pending; not while muted);
/// - `Normal(v) | ViewChanging(v) -> ViewChanging(w)`, `w > v`: f+1 validators asked for views
///   above v (w is the (f+1)-th highest they asked for);
/// - `ViewChanging(v) -> ViewChanging(v+1)`: the NEW-VIEW timer expired; it is armed only once a
///   quorum (counting us) asks for v or later, with the timeout doubled per attempt (capped);
/// - `ViewChanging(v) -> Normal(w)`, `w >= v`, or `Normal(v) -> Normal(w)`, `w > v`: a valid
///   NEW-VIEW for w was installed (received, or built by us as w's primary from a quorum of
///   VIEW-CHANGEs for w);
/// - a restart resumes in the persisted view record's state.
///
/// The back-off is reset by every delivery; VIEW-CHANGEs for views up to an installed one are
/// dropped when it is installed.
#[derive(Debug)]
pub(crate) struct Views {
    /// The current view; while `changing`, the view we are trying to start.
    pub current: u64,
    /// Whether a view change is under way.
    pub changing: bool,
    /// While in a view: when to give up on it for lack of progress (armed while work is
    /// pending).
    pub progress_deadline: Option<u64>,
    /// While changing: when to give up on the view being started. Armed only once a quorum
    /// asked for that view, so a replica alone in a view change does not run ahead of everyone.
    pub new_view_deadline: Option<u64>,
    /// While changing: when to re-send our VIEW-CHANGE (it may have been lost).
    pub resend_at: u64,
    /// View changes since the last delivery: the timeout is doubled for each.
    pub backoff: u32,
    /// Latest VIEW-CHANGE from each validator.
    pub held: BTreeMap<u32, ViewChange>,
    /// The NEW-VIEW that installed the current view (re-served to replicas left behind).
    pub new_view: Option<NewView>,
    /// When we last answered each replica asking for an older view.
    pub answered_laggard: BTreeMap<u32, u64>,
}

impl Views {
    /// `view` as persisted: installed, or still being started.
    pub fn new(view: u64, installed: bool) -> Self {
        Views {
            current: view,
            changing: !installed,
            progress_deadline: None,
            new_view_deadline: None,
            resend_at: 0,
            backoff: 0,
            held: BTreeMap::new(),
            new_view: None,
            answered_laggard: BTreeMap::new(),
        }
    }

    /// The view timeout: doubled for each view change since the last delivery, capped.
    pub fn timeout(&self, cfg: &Config) -> u64 {
        cfg.view_timeout_ms
            .saturating_mul(1u64 << self.backoff.min(MAX_BACKOFF))
            .min(cfg.max_view_timeout_ms)
    }

    /// Whether messages about `view` are old news: below the current view, or for the current
    /// view once it is installed.
    pub fn settled(&self, view: u64) -> bool {
        view < self.current || (view == self.current && !self.changing)
    }

    /// `Normal | ViewChanging -> ViewChanging(target)`.
    pub fn begin(&mut self, target: u64) {
        debug_assert!(target > self.current || (target == self.current && self.changing));
        self.current = target;
        self.changing = true;
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
        self.new_view_deadline = None;
    }

    /// `ViewChanging -> Normal(view)`: a NEW-VIEW for `view` is installed.
    pub fn install(&mut self, nv: &NewView) {
        self.current = nv.view;
        self.changing = false;
        self.new_view_deadline = None;
        self.held.retain(|_, vc| vc.view > nv.view);
        self.progress_deadline = None;
    }

    /// A block was delivered: progress, so the back-off resets.
    pub fn progressed(&mut self) {
        self.backoff = 0;
        self.progress_deadline = None;
    }

    /// Whether we already hold this validator's VIEW-CHANGE for `vc`'s view or a later one.
    pub fn holds(&self, vc: &ViewChange) -> bool {
        self.held
            .get(&vc.validator)
            .is_some_and(|old| old.view >= vc.view)
    }

    /// The view to join: the (f+1)-th highest view above ours that validators ask for, if f+1
    /// do (at least one of them is honest).
    pub fn join_target(&self, f: usize) -> Option<u64> {
        let mut higher: Vec<u64> = self
            .held
            .values()
            .map(|vc| vc.view)
            .filter(|v| *v > self.current)
            .collect();
        if higher.len() <= f {
            return None;
        }
        higher.sort_unstable_by(|a, b| b.cmp(a));
        Some(higher[f])
    }

    /// Arms the NEW-VIEW timer (`timeout` from `now`) once `q` validators, counting us, ask for
    /// the view we are starting or a later one.
    pub fn arm_if_quorum(&mut self, q: usize, now: u64, timeout: u64) {
        if !self.changing || self.new_view_deadline.is_some() {
            return;
        }
        let asking = self
            .held
            .values()
            .filter(|vc| vc.view >= self.current)
            .count();
        if asking >= q {
            self.new_view_deadline = Some(now + timeout);
        }
    }

    /// The VIEW-CHANGEs held for exactly the view being started.
    pub fn for_current(&self) -> Vec<ViewChange> {
        self.held
            .values()
            .filter(|vc| vc.view == self.current)
            .cloned()
            .collect()
    }

    /// The earliest of the timers this part owns: progress, and while changing, the NEW-VIEW
    /// deadline and the VIEW-CHANGE re-send.
    pub fn wake(&self) -> Option<u64> {
        let changing = [self.new_view_deadline, Some(self.resend_at)];
        let changing = changing.into_iter().flatten().filter(|_| self.changing);
        self.progress_deadline.into_iter().chain(changing).min()
    }

    /// What shows a replica asking for `their_view` how the views it missed went: while we are
    /// changing, the VIEW-CHANGEs we hold for its view and above (not its own); otherwise the
    /// NEW-VIEW of our view.
    pub fn for_laggard(&self, to: u32, their_view: u64) -> Vec<Message> {
        if self.changing {
            self.held
                .values()
                .filter(|vc| vc.view >= their_view && vc.validator != to)
                .map(|vc| Message::ViewChange(vc.clone()))
                .collect()
        } else {
            let nv = self.new_view.as_ref().filter(|nv| nv.view == self.current);
            nv.map(|nv| Message::NewView(nv.clone()))
                .into_iter()
                .collect()
        }
    }
}

impl<C: Context> Replica<C> {
    /// Gives up on the current view and asks for `target`.
    pub(crate) fn start_view_change(&mut self, target: u64) {
        self.views.begin(target);
        self.stats.view_changes += 1;
        self.waiting.drop_views_below(target);
        tracing::info!(replica = self.cfg.me, view = target, "view change");
        self.send_view_change();
    }

    /// Builds, persists the view of, and broadcasts our VIEW-CHANGE for the view we are
    /// starting, from our current stable checkpoint and prepared certificates.
    pub(crate) fn send_view_change(&mut self) {
        if self.muted {
            self.views.resend_at = self.now + self.cfg.view_timeout_ms;
            return;
        }
        let max = self.max_prepared_in_view_change() as usize;
        let prepared = self.log.prepared_certs(self.checkpoints.stable.height, max);
        let mut vc = ViewChange {
            view: self.views.current,
            validator: self.cfg.me,
            stable: self.checkpoints.stable_cert.clone(),
            prepared,
            signature: lanes_types::Signature([0; 64]),
        };
        vc.signature = self.ctx.sign(&vc.signed_bytes(&self.cfg.chain_id));
        self.persist(vec![safety::view_record(self.views.current, false)]);
        self.broadcast(Message::ViewChange(vc.clone()));
        self.views.resend_at = self.now + self.cfg.view_timeout_ms;
        self.views.held.insert(self.cfg.me, vc);
        self.check_view_change_quorum();
        self.maybe_new_view();
    }

    /// Starts the NEW-VIEW timer once a quorum (counting us) asks for the view we are starting
    /// or a later one: those that moved past it will not help start it, so if its NEW-VIEW does
    /// not come in time we follow them.
    fn check_view_change_quorum(&mut self) {
        let timeout = self.timeout();
        self.views.arm_if_quorum(self.q, self.now, timeout);
    }

    /// Most prepared certificates one VIEW-CHANGE carries.
    fn max_prepared_in_view_change(&self) -> u64 {
        self.cfg.max_prepared_in_view_change()
    }

    /// A VIEW-CHANGE from its signer, or relayed by another replica (the signature decides,
    /// not the sender).
    pub(crate) fn on_view_change(&mut self, from: u32, vc: ViewChange) -> Result<(), Reject> {
        if self.views.settled(vc.view) {
            if vc.validator == from {
                // The sender is behind: show it how the current view started, or what we
                // know of the views it is missing.
                self.answer_laggard(from, vc.view);
            }
            return Ok(());
        }
        if vc.view > self.views.current + MAX_VIEW_AHEAD {
            return Err("view change too far ahead");
        }
        if self.views.holds(&vc) {
            return Ok(());
        }
        self.check_view_change(&vc)?;
        if let Some(cert) = vc.stable.clone() {
            self.on_certified(cert);
        }
        self.views.held.insert(vc.validator, vc);
        if let Some(target) = self.views.join_target(self.f) {
            self.start_view_change(target);
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
            let msg = checkpoint_message(&self.cfg.chain_id, c.height, &c.block_hash, &c.roots());
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

    /// Verifies a prepared certificate of a VIEW-CHANGE for `below_view`: from an earlier view
    /// of this chain, with a quorum of PREPAREs for its header.
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
        let primary = self.cfg.validators.primary(self.views.current);
        if self.muted || !self.views.changing || primary != self.cfg.me {
            return;
        }
        let view_changes = self.views.for_current();
        if view_changes.len() < self.q {
            return;
        }
        let plan = plan_new_view(&view_changes);
        let mut nv = NewView {
            view: self.views.current,
            view_changes,
            signature: lanes_types::Signature([0; 64]),
        };
        nv.signature = self.ctx.sign(&nv.signed_bytes(&self.cfg.chain_id));
        self.install_new_view(nv, plan, true);
    }

    /// A NEW-VIEW for a view above ours (or the one we are starting): verified whole, then
    /// installed.
    pub(crate) fn on_new_view(&mut self, nv: NewView) -> Result<(), Reject> {
        if self.views.settled(nv.view) {
            return Ok(());
        }
        if nv.view > self.views.current + MAX_VIEW_AHEAD {
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
        self.views.install(&nv);
        self.persist(vec![
            safety::view_record(self.views.current, true),
            safety::new_view_record(&nv),
        ]);
        if announce {
            self.broadcast(Message::NewView(nv.clone()));
        }
        tracing::info!(
            replica = self.cfg.me,
            view = self.views.current,
            reproposed = plan.chain.len(),
            "new view"
        );
        self.pool.in_flight.clear();
        let end = plan.base_height + plan.chain.len() as u64;
        self.log.next_height = end
            .max(self.checkpoints.stable.height)
            .max(self.log.committed.height)
            + 1;
        for header in reproposed(&nv, &plan) {
            if header.height > self.checkpoints.stable.height {
                self.accept_header(header);
            }
        }
        self.views.new_view = Some(nv);
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
            None => slot.accepted = Some((self.views.current, hash)),
        }
    }

    /// Answers a replica still asking for view `their_view`, at most once per timeout: with the
    /// NEW-VIEW of our current view if it is installed; while we are changing views ourselves,
    /// with the VIEW-CHANGEs we hold for its view and above. Those may be ones it never got (a
    /// byzantine validator can send its VIEW-CHANGE to some replicas only), without which it
    /// could wait for a quorum it will never see while we wait for it in a higher view.
    fn answer_laggard(&mut self, to: u32, their_view: u64) {
        let last = self.views.answered_laggard.get(&to).copied();
        if last.is_some_and(|t| t + self.cfg.view_timeout_ms > self.now) {
            return;
        }
        let messages = self.views.for_laggard(to, their_view);
        if messages.is_empty() {
            return;
        }
        self.views.answered_laggard.insert(to, self.now);
        for message in messages {
            self.out.push(crate::replica::Action::Send { to, message });
        }
    }
}
