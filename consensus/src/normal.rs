//! The normal case: proposals, PRE-PREPARE checks, PREPARE and COMMIT, in-order delivery (see
//! the rules that make pipelining safe in `replica.rs`).

use crate::context::Context;
use crate::log::Tip;
use crate::messages::{Message, Phase, Vote};
use crate::replica::{Action, Alarm, Reject, Replica, BEHIND, MAX_VIEW_AHEAD};
use crate::safety;
use lanes_types::{payload_digest, tx_hash, Block, BlockHeader, Hash};
use std::collections::{BTreeMap, HashSet};

/// Proposals that cannot be judged yet, by (view, height): for a view not installed yet, or in
/// the current view for a block below them that is unknown here ([`BEHIND`]).
///
/// Status transitions: a proposal is stashed (bounded; the farthest (view, height) makes room)
/// -> retried when its view is installed, or a payload or catch-up block arrives: accepted,
/// stashed again if still [`BEHIND`], or dropped. Proposals of views below one being started
/// or retried, and at heights the stable checkpoint passed, are dropped.
#[derive(Debug, Default)]
pub(crate) struct Waiting(BTreeMap<(u64, u64), Block>);

impl Waiting {
    /// How many proposals wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps `block` of `view`; at `cap` proposals, only if it is nearer than the farthest,
    /// which makes room.
    pub fn stash(&mut self, view: u64, block: Block, cap: usize) {
        let key = (view, block.height());
        if self.0.len() >= cap && !self.0.contains_key(&key) {
            match self.0.last_key_value() {
                Some((&farthest, _)) if farthest > key => {
                    self.0.remove(&farthest);
                }
                _ => return,
            }
        }
        self.0.insert(key, block);
    }

    /// Puts back a proposal of `view` taken by [`Waiting::take_through`] (unbounded).
    pub fn put_back(&mut self, view: u64, block: Block) {
        self.0.insert((view, block.height()), block);
    }

    /// Takes the proposals of `view`, ascending by height, and drops those of older views.
    pub fn take_through(&mut self, view: u64) -> Vec<Block> {
        let taken: Vec<Block> = self
            .0
            .range((view, 0)..=(view, u64::MAX))
            .map(|(_, b)| b.clone())
            .collect();
        self.0.retain(|(v, _), _| *v > view);
        taken
    }

    /// Drops the proposals of views below `view`.
    pub fn drop_views_below(&mut self, view: u64) {
        self.0.retain(|(v, _), _| *v >= view);
    }

    /// Drops the proposals at heights up to `h`.
    pub fn drop_through_height(&mut self, h: u64) {
        self.0.retain(|(_, height), _| *height > h);
    }
}

impl<C: Context> Replica<C> {
    /// Primary: cuts blocks while the window allows and a block is full or its timer expired.
    pub(crate) fn propose(&mut self) {
        if self.muted {
            return;
        }
        let window = self.cfg.window;
        while self.is_primary() && self.log.next_height <= self.checkpoints.stable.height + window {
            if !self.pool.batch_ready(self.now, self.cfg.max_block_txs) {
                return;
            }
            let (stable, view) = (self.checkpoints.stable, self.views.current);
            let h = self.log.next_height.max(stable.height + 1);
            let Some(parent) = self.log.chain_hash(h - 1, stable, view) else {
                return;
            };
            let txs = self
                .pool
                .next_batch(self.cfg.max_block_txs, self.cfg.max_block_bytes);
            if txs.is_empty() {
                return;
            }
            let block = Block {
                header: BlockHeader {
                    chain_id: self.cfg.chain_id.clone(),
                    height: h,
                    parent,
                    view,
                    proposer: self.cfg.me,
                    timestamp_ms: self.now,
                    payload_digest: payload_digest(&txs),
                },
                txs,
            };
            self.log.next_height = h + 1;
            self.pool.batch_deadline = None;
            // Recorded before it leaves: restarted, we never propose another block here.
            self.persist(vec![safety::proposal_record(h, view, block.hash())]);
            self.broadcast(Message::PrePrepare {
                view,
                block: block.clone(),
            });
            self.accept_proposal(block);
        }
    }

    /// A PRE-PREPARE: accepted if it is a valid proposal of our view from its primary; kept
    /// for later if its view is not installed yet or a block below it is unknown here.
    pub(crate) fn on_preprepare(
        &mut self,
        from: u32,
        view: u64,
        block: Block,
    ) -> Result<(), Reject> {
        if from != self.cfg.validators.primary(view) || block.header.proposer != from {
            return Err("pre-prepare not from the view's primary");
        }
        if block.header.view != view {
            return Err("pre-prepare header view differs");
        }
        if view < self.views.current {
            return Ok(());
        }
        if view > self.views.current || self.views.changing {
            if view > self.views.current + MAX_VIEW_AHEAD {
                return Err("pre-prepare view too far ahead");
            }
            self.stash_proposal(view, block);
            return Ok(());
        }
        match self.check_fresh_proposal(&block) {
            Err(BEHIND) => {
                // Accepted once the block below it arrives (fetched, caught up).
                self.stash_proposal(view, block);
                Ok(())
            }
            Err(reason) => Err(reason),
            Ok(()) => {
                self.accept_proposal(block);
                Ok(())
            }
        }
    }

    /// Keeps a proposal that cannot be judged yet (its view is not installed, or a block below
    /// it is unknown here) if it could be valid: inside the watermarks and not too large. At
    /// most `2 x window` wait; when full, the farthest (view, height) makes room, so a
    /// byzantine primary of far views cannot crowd out the next view's proposals.
    pub(crate) fn stash_proposal(&mut self, view: u64, block: Block) {
        let (h, stable) = (block.height(), self.checkpoints.stable.height);
        if h <= stable
            || h > stable + self.cfg.window
            || block.txs.len() > self.cfg.max_block_txs
            || block.txs.iter().map(|t| t.len()).sum::<usize>() > self.cfg.max_block_bytes
        {
            return;
        }
        let cap = 2 * self.cfg.window as usize;
        self.waiting.stash(view, block, cap);
    }

    /// Proposals of the current view that waited for a block below them, or for the view to
    /// be installed: accepted now if they pass, dropped otherwise (and those of older views).
    pub(crate) fn retry_waiting_proposals(&mut self) {
        let view = self.views.current;
        for block in self.waiting.take_through(view) {
            match self.check_fresh_proposal(&block) {
                Ok(()) => self.accept_proposal(block),
                Err(BEHIND) => self.waiting.put_back(view, block),
                Err(_) => self.stats.rejected_messages += 1,
            }
        }
    }

    /// Checks a new proposal of the current view before we accept it.
    pub(crate) fn check_fresh_proposal(&self, block: &Block) -> Result<(), Reject> {
        let h = block.height();
        if block.header.chain_id != self.cfg.chain_id {
            return Err("proposal for another chain");
        }
        let stable = self.checkpoints.stable.height;
        if h <= stable.max(self.log.committed.height) {
            return Err("proposal at a committed height");
        }
        if h > stable + self.cfg.window {
            return Err("proposal above the high watermark");
        }
        if block.txs.len() > self.cfg.max_block_txs
            || block.txs.iter().map(|t| t.len()).sum::<usize>() > self.cfg.max_block_bytes
        {
            return Err("proposal too large");
        }
        if !block.payload_matches() {
            return Err("payload digest mismatch");
        }
        let mut seen = HashSet::with_capacity(block.txs.len());
        let ancestors = self.log.chain_tx_hashes(h, self.views.current)?;
        let mut in_mempool = Vec::with_capacity(block.txs.len());
        for tx in &block.txs {
            let hash = tx_hash(tx);
            if !seen.insert(hash)
                || ancestors.contains(&hash)
                || self.pool.mempool.is_committed(&hash)
                || self.ctx.tx_committed(&hash)
            {
                return Err("proposal repeats a transaction");
            }
            in_mempool.push(self.pool.mempool.contains(&hash));
        }
        self.ctx
            .check_block_txs(block, &|i| in_mempool[i])
            .map_err(|_| "proposal has invalid transactions")
    }

    /// Accepts a proposal (ours, the primary's, or a NEW-VIEW re-proposal) for the current view.
    pub(crate) fn accept_proposal(&mut self, block: Block) {
        let h = block.height();
        let hash = block.hash();
        let view = self.views.current;
        let slot = self.log.slot_mut(h);
        if let Some((v, other)) = slot.accepted {
            if v == view {
                if other == hash && !slot.blocks.contains_key(&hash) {
                    // Accepted by hash before (restart, NEW-VIEW): this is its payload.
                    slot.keep_block(block);
                    self.try_prepare(h);
                    self.check_committed(h);
                } else if other != hash {
                    let validator = self.cfg.validators.primary(view);
                    self.out.push(Action::Alarm(Alarm::Equivocation {
                        validator,
                        view,
                        height: h,
                    }));
                }
                return;
            }
        }
        self.pool.proposed(&block);
        slot.accepted = Some((view, hash));
        slot.keep_block(block);
        self.try_prepare(h);
    }

    /// Sends our PREPARE for the accepted block at `h` once its parent rule holds.
    pub(crate) fn try_prepare(&mut self, h: u64) {
        if self.views.changing || self.muted {
            return;
        }
        let view = self.views.current;
        let Some(slot) = self.log.slots.get(&h) else {
            return;
        };
        let Some((v, hash)) = slot.accepted else {
            return;
        };
        if v != view {
            return;
        }
        if let Some((mv, mh)) = slot.my_prepare {
            if mv >= view {
                if mh == hash {
                    self.check_prepared(h);
                }
                return;
            }
        }
        let Some(block) = slot.blocks.get(&hash) else {
            return;
        };
        if !self.log.parent_ok(
            h,
            &block.header.parent,
            self.checkpoints.stable,
            self.views.current,
        ) {
            return;
        }
        assert!(
            slot.my_prepare.is_none_or(|(mv, _)| mv < view),
            "a second PREPARE at one (view, height)"
        );
        let record = safety::prepare_record(view, block);
        self.persist(vec![record]);
        let vote = self.sign_vote(Phase::Prepare, view, h, hash);
        let slot = self.log.slot_mut(h);
        slot.my_prepare = Some((view, hash));
        slot.prepares
            .insert(self.cfg.me, (view, hash, vote.signature));
        self.broadcast(Message::Prepare(vote));
        self.check_prepared(h);
    }

    /// A PREPARE or COMMIT: verified, kept (one per validator, the highest view), counted.
    pub(crate) fn on_vote(&mut self, from: u32, phase: Phase, vote: Vote) -> Result<(), Reject> {
        if vote.validator != from {
            return Err("vote signed for another validator");
        }
        if vote.view < self.views.current {
            return Ok(());
        }
        if vote.view > self.views.current + MAX_VIEW_AHEAD {
            return Err("vote view too far ahead");
        }
        let (h, stable) = (vote.height, self.checkpoints.stable.height);
        if h <= stable || h > stable + self.cfg.window {
            return Ok(());
        }
        let existing = self.log.slots.get(&h).and_then(|s| match phase {
            Phase::Prepare => s.prepares.get(&from).copied(),
            Phase::Commit => s.commits.get(&from).copied(),
        });
        if let Some((v, hash, _)) = existing {
            if v > vote.view || (v == vote.view && hash == vote.block_hash) {
                return Ok(());
            }
        }
        let msg = vote.signed_bytes(phase, &self.cfg.chain_id);
        if !self.ctx.verify(from, &msg, &vote.signature) {
            return Err("bad vote signature");
        }
        if let Some((v, _, _)) = existing {
            if v == vote.view {
                self.out.push(Action::Alarm(Alarm::Equivocation {
                    validator: from,
                    view: v,
                    height: h,
                }));
                return Ok(());
            }
        }
        let slot = self.log.slot_mut(h);
        let entry = (vote.view, vote.block_hash, vote.signature);
        match phase {
            Phase::Prepare => {
                slot.prepares.insert(from, entry);
                self.check_prepared(h);
            }
            Phase::Commit => {
                slot.commits.insert(from, entry);
                self.check_committed(h);
            }
        }
        Ok(())
    }

    /// Forms our prepared certificate at `h` once a quorum PREPAREd the block we PREPAREd in
    /// this view; persists it and sends our COMMIT (unless one for this view was sent before).
    pub(crate) fn check_prepared(&mut self, h: u64) {
        let view = self.views.current;
        let Some(slot) = self.log.slots.get_mut(&h) else {
            return;
        };
        let Some(cert) = slot.new_prepared_cert(view, self.q) else {
            return;
        };
        let Some((_, hash)) = slot.accepted else {
            return;
        };
        let record = safety::prepared_record(&cert, &slot.blocks[&hash].txs);
        let mut writes = vec![record];
        let commit_again = slot.my_commit.is_some_and(|c| c.0 >= view);
        if !commit_again {
            writes.push(safety::commit_record(h, view, hash));
        }
        assert!(
            slot.my_commit
                .is_none_or(|(cv, ch)| cv < view || ch == hash),
            "a second COMMIT at one (view, height)"
        );
        slot.prepared = Some(cert);
        self.persist(writes);
        if !commit_again {
            let vote = self.sign_vote(Phase::Commit, view, h, hash);
            let slot = self.log.slot_mut(h);
            slot.my_commit = Some((view, hash));
            slot.commits
                .insert(self.cfg.me, (view, hash, vote.signature));
            self.broadcast(Message::Commit(vote));
        }
        self.check_committed(h);
        self.try_prepare(h + 1);
    }

    /// Decides the block at `h` once a quorum COMMITted it (and we hold it), then delivers
    /// what is in order.
    pub(crate) fn check_committed(&mut self, h: u64) {
        let Some(slot) = self.log.slots.get_mut(&h) else {
            return;
        };
        if slot.decided.is_some() {
            return;
        }
        let Some(cert) = slot.commit_cert(h, self.q) else {
            return;
        };
        slot.decided = Some(cert);
        self.try_deliver();
        self.try_prepare(h + 1);
    }

    /// Delivers decided blocks in height order.
    pub(crate) fn try_deliver(&mut self) {
        while let Some((block, cert)) = self.log.next_decided() {
            let h = self.log.committed.height + 1;
            if block.header.parent != self.log.committed.hash {
                // Only possible with more than f faulty validators: refuse to fork, loudly.
                self.out.push(Action::Alarm(Alarm::Fork { height: h }));
                return;
            }
            let hashes: Vec<Hash> = block.txs.iter().map(|t| tx_hash(t)).collect();
            self.pool.committed(&hashes);
            self.log.committed = Tip {
                height: h,
                hash: cert.block_hash,
            };
            self.catch_up.claim(self.cfg.me, h);
            self.log.next_height = self.log.next_height.max(h + 1);
            self.stats.delivered_blocks += 1;
            self.views.progressed();
            self.out.push(Action::Deliver {
                block,
                certificate: cert,
            });
            self.log.gc(self.checkpoints.stable.height);
        }
    }
}
