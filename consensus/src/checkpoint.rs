//! CHECKPOINT votes, execution certificates, divergence, watermarks, and catch-up.
//!
//! After executing a block a replica signs CHECKPOINT(height, block hash, state root) over the
//! root it computed itself and nothing else. A quorum of matching votes is the block's execution
//! certificate; the highest one is the stable checkpoint: the log below it is forgotten and the
//! window of heights in flight moves up. If the quorum's root differs from ours we raise
//! [`Alarm::Divergence`] and stop signing checkpoints.
//!
//! A replica learns it is behind from checkpoints: the (f+1)-th highest height validators have
//! signed is one at least one honest replica reached. If it stays behind for a while (or by
//! more than the window) it asks a validator that claims those heights for the committed blocks
//! and verifies every commit certificate before delivering them.

use crate::context::Context;
use crate::log::Tip;
use crate::messages::{CertifiedBlock, CheckpointVote, Message};
use crate::replica::{Action, Alarm, Reject, Replica};
use lanes_types::cert::{checkpoint_message, commit_vote_message};
use lanes_types::{CheckpointCertificate, Hash, ValidatorSignature};
use std::collections::BTreeMap;

impl<C: Context> Replica<C> {
    pub(crate) fn on_executed(&mut self, height: u64, block_hash: Hash, state_root: Hash) {
        if self.executed.contains_key(&height) {
            return;
        }
        self.last_executed = self.last_executed.max(height);
        self.gc_safety();
        if let Some(cert) = self.stable_cert.clone().filter(|c| c.height == height) {
            self.compare_root(&cert, block_hash, state_root);
        }
        if height <= self.stable.height {
            return;
        }
        self.executed.insert(height, (block_hash, state_root));
        if self.diverged.is_some() {
            return;
        }
        let msg = checkpoint_message(&self.cfg.chain_id, height, &block_hash, &state_root);
        let vote = CheckpointVote {
            height,
            block_hash,
            state_root,
            validator: self.cfg.me,
            signature: self.ctx.sign(&msg),
        };
        self.broadcast(Message::Checkpoint(vote.clone()));
        self.my_checkpoint = Some(vote.clone());
        self.heartbeat_at = self.now + self.heartbeat_period();
        self.checkpoints
            .entry(height)
            .or_default()
            .insert(self.cfg.me, vote);
        self.check_stable(height);
    }

    pub(crate) fn on_checkpoint(&mut self, from: u32, vote: CheckpointVote) -> Result<(), Reject> {
        if vote.validator != from {
            return Err("checkpoint signed for another validator");
        }
        let h = vote.height;
        let stored = h > self.stable.height && h <= self.stable.height + 2 * self.cfg.window;
        if stored
            && self
                .checkpoints
                .get(&h)
                .is_some_and(|m| m.contains_key(&from))
        {
            return Ok(());
        }
        if !stored && h <= self.claims[from as usize] {
            return Ok(());
        }
        let msg = checkpoint_message(&self.cfg.chain_id, h, &vote.block_hash, &vote.state_root);
        if !self.ctx.verify(from, &msg, &vote.signature) {
            return Err("bad checkpoint signature");
        }
        let claim = &mut self.claims[from as usize];
        *claim = (*claim).max(h);
        if stored {
            self.checkpoints.entry(h).or_default().insert(from, vote);
            self.check_stable(h);
        }
        Ok(())
    }

    /// Forms the execution certificate at `h` once a quorum agrees on (block hash, root).
    fn check_stable(&mut self, h: u64) {
        let Some(votes) = self.checkpoints.get(&h) else {
            return;
        };
        let mut tally: BTreeMap<(Hash, Hash), Vec<ValidatorSignature>> = BTreeMap::new();
        for (validator, v) in votes {
            tally
                .entry((v.block_hash, v.state_root))
                .or_default()
                .push(ValidatorSignature {
                    validator: *validator,
                    signature: v.signature,
                });
        }
        let Some(((block_hash, state_root), signatures)) =
            tally.into_iter().find(|(_, sigs)| sigs.len() >= self.q)
        else {
            return;
        };
        self.on_certified(CheckpointCertificate {
            height: h,
            block_hash,
            state_root,
            signatures,
        });
    }

    fn compare_root(&mut self, cert: &CheckpointCertificate, block_hash: Hash, root: Hash) {
        if (block_hash, root) != (cert.block_hash, cert.state_root) && self.diverged.is_none() {
            self.diverged = Some(cert.height);
            tracing::error!(
                replica = self.cfg.me,
                height = cert.height,
                ours = %root,
                certified = %cert.state_root,
                "state divergence: a quorum certified another root"
            );
            self.out.push(Action::Alarm(Alarm::Divergence {
                height: cert.height,
                ours: root,
                certified: cert.state_root,
            }));
        }
    }

    /// A verified execution certificate (formed here, or carried by a view change).
    pub(crate) fn on_certified(&mut self, cert: CheckpointCertificate) {
        if cert.height <= self.stable.height {
            return;
        }
        if let Some(&(hash, root)) = self.executed.get(&cert.height) {
            self.compare_root(&cert, hash, root);
        }
        let claim = &mut self.claims[self.cfg.me as usize];
        *claim = (*claim).max(self.log.committed.height);
        self.out.push(Action::Certified(cert.clone()));
        self.stable = Tip {
            height: cert.height,
            hash: cert.block_hash,
        };
        let h = cert.height;
        self.stable_cert = Some(cert);
        self.checkpoints.retain(|k, _| *k > h);
        self.executed.retain(|k, _| *k > h);
        self.future.retain(|(_, height), _| *height > h);
        self.log.gc(self.stable.height);
        self.gc_safety();
        // The parent of the block above the checkpoint may now be known.
        self.try_prepare(h + 1);
    }

    /// Forgets persisted votes at heights that are both certified and stored here. Votes above
    /// what storage holds must stay: after a restart this replica would not know the heights
    /// between its stored head and a checkpoint it only held in memory, and could vote there
    /// again.
    fn gc_safety(&mut self) {
        let through = self.stable.height.min(self.last_executed);
        if through > self.safety_gc_through {
            self.safety_gc_through = through;
            self.persist(vec![crate::safety::SafetyWrite::DeleteThrough {
                height: through,
            }]);
        }
    }

    // ----- catch-up -----

    /// The height at least one honest validator has executed: the (f+1)-th highest claim.
    pub(crate) fn sync_target(&self) -> u64 {
        let mut claims = self.claims.clone();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims[self.f].max(self.stable.height)
    }

    /// Sends a catch-up request when we have been behind for a while or by a lot.
    pub(crate) fn maybe_sync(&mut self) {
        let target = self.sync_target();
        if target > self.last_target {
            // Others make progress: no reason to suspect the primary while we catch up.
            self.last_target = target;
            if self.views.progress_deadline.is_some() {
                self.views.progress_deadline = Some(self.now + self.timeout());
            }
        }
        if target <= self.log.committed.height {
            self.behind_since = None;
            self.sync_deadline = None;
            return;
        }
        let since = *self.behind_since.get_or_insert(self.now);
        let urgent = target > self.log.committed.height + self.cfg.window;
        if !urgent && self.now < since + self.sync_delay() {
            return;
        }
        if self.sync_deadline.is_some_and(|d| self.now < d) {
            return;
        }
        let from = self.log.committed.height + 1;
        let peers: Vec<u32> = (0..self.n as u32)
            .filter(|&v| v != self.cfg.me && self.claims[v as usize] >= from)
            .collect();
        self.sync_deadline = Some(self.now + self.cfg.view_timeout_ms);
        if peers.is_empty() {
            return;
        }
        let to = peers[(self.sync_attempt % peers.len() as u64) as usize];
        self.sync_attempt += 1;
        self.stats.sync_requests += 1;
        let hi = target.min(from + self.cfg.sync_batch - 1);
        self.sync_asked = Some((to, from, hi));
        self.out.push(Action::Send {
            to,
            message: Message::SyncRequest { from, to: hi },
        });
    }

    fn sync_delay(&self) -> u64 {
        (self.cfg.view_timeout_ms / 2).max(1)
    }

    /// When catch-up next needs a look.
    pub(crate) fn sync_wake(&self) -> Option<u64> {
        let since = self.behind_since?;
        Some(match self.sync_deadline {
            Some(d) => d,
            None => since + self.sync_delay(),
        })
    }

    pub(crate) fn on_sync_request(&mut self, from: u32, lo: u64, hi: u64) -> Result<(), Reject> {
        if lo == 0 || hi < lo {
            return Err("bad sync range");
        }
        if lo > self.log.committed.height {
            return Ok(());
        }
        let hi = hi
            .min(self.log.committed.height)
            .min(lo.saturating_add(self.cfg.sync_batch - 1));
        self.out.push(Action::ServeSync {
            to: from,
            from: lo,
            to_height: hi,
        });
        Ok(())
    }

    /// Applies the answer to our outstanding catch-up request: only from the peer asked, only
    /// the heights asked, every block checked against its commit certificate and our chain.
    pub(crate) fn on_sync_response(
        &mut self,
        from: u32,
        blocks: Vec<CertifiedBlock>,
    ) -> Result<(), Reject> {
        let Some((peer, lo, hi)) = self.sync_asked else {
            return Err("sync response nobody asked for");
        };
        if from != peer {
            return Err("sync response from a peer not asked");
        }
        if blocks.len() as u64 > self.cfg.sync_batch {
            return Err("sync response too long");
        }
        self.sync_asked = None;
        for CertifiedBlock { block, certificate } in blocks {
            let h = block.height();
            if h < lo || h > hi {
                return Err("sync response outside the heights asked");
            }
            if h <= self.log.committed.height {
                continue;
            }
            if h != self.log.committed.height + 1 {
                return Err("sync response skips a height");
            }
            let hash = block.hash();
            if certificate.height != h
                || certificate.block_hash != hash
                || block.header.chain_id != self.cfg.chain_id
                || block.header.parent != self.log.committed.hash
                || !block.payload_matches()
            {
                return Err("sync block does not fit our chain");
            }
            let msg = commit_vote_message(&self.cfg.chain_id, certificate.view, h, &hash);
            if !self.verify_quorum(&msg, &certificate.signatures) {
                return Err("sync block without a valid commit certificate");
            }
            let slot = self.log.slot_mut(h);
            slot.decided = Some(certificate);
            slot.keep_block(block);
            self.try_deliver();
        }
        self.sync_deadline = None;
        self.try_prepare(self.log.committed.height + 1);
        self.retry_waiting_proposals();
        Ok(())
    }
}
