//! CHECKPOINT votes, execution certificates, divergence and the stable checkpoint.
//!
//! After executing a block a replica signs CHECKPOINT(height, block hash, state root, receipts
//! root) over the roots it computed itself and nothing else. A quorum of matching votes is the
//! block's execution certificate; the highest one is the stable checkpoint: the log below it is
//! forgotten and the window of heights in flight moves up. If the quorum's roots differ from
//! ours (either of them) we raise
//! [`Alarm::Divergence`] and stop signing checkpoints. Catch-up, which learns from checkpoints
//! that the replica is behind, is in `catch_up.rs`.

use crate::context::Context;
use crate::log::Tip;
use crate::messages::{CheckpointVote, Message};
use crate::replica::{Action, Alarm, Reject, Replica};
use lanes_types::cert::checkpoint_message;
use lanes_types::{CheckpointCertificate, ExecRoots, Hash, ValidatorSignature};
use std::collections::BTreeMap;

/// The checkpoint state: the stable checkpoint, the CHECKPOINT votes above it, our executed
/// roots and our own latest vote.
///
/// Status transitions: the stable checkpoint only moves up, to each higher execution
/// certificate (formed here from a quorum of votes, or carried by a VIEW-CHANGE or NEW-VIEW);
/// votes and roots at or below it are forgotten. `Signing -> Diverged(h)` when a certificate at
/// h certifies a root other than ours; a diverged replica signs no more checkpoints (until it
/// restarts from a restored state).
#[derive(Debug)]
pub(crate) struct Checkpoints {
    /// The stable checkpoint (height 0, [`Hash::ZERO`] at genesis).
    pub stable: Tip,
    /// Its certificate (none at genesis).
    pub stable_cert: Option<CheckpointCertificate>,
    /// CHECKPOINT votes per height above the stable checkpoint, one per validator.
    pub votes: BTreeMap<u64, BTreeMap<u32, CheckpointVote>>,
    /// Our (block hash, roots) per executed height above the stable checkpoint.
    pub executed: BTreeMap<u64, (Hash, ExecRoots)>,
    /// The highest height executed here.
    pub last_executed: u64,
    /// Height through which persisted vote records were deleted.
    pub safety_gc_through: u64,
    /// The height at which our roots differed from the certified ones, if they did.
    pub diverged: Option<u64>,
    /// Our latest CHECKPOINT, re-sent every few timeouts so that a replica that missed it
    /// (restarted, partitioned) learns it is behind even when the chain is idle.
    pub mine: Option<CheckpointVote>,
    /// When to re-send `mine`.
    pub heartbeat_at: u64,
}

impl Checkpoints {
    /// The state after a restart from the stored head at `committed_height` and the latest
    /// stored execution certificate (ignored if above the head).
    pub fn new(stored: Option<CheckpointCertificate>, committed_height: u64) -> Self {
        let stable = match &stored {
            Some(c) if c.height <= committed_height => Tip {
                height: c.height,
                hash: c.block_hash,
            },
            _ => Tip {
                height: 0,
                hash: Hash::ZERO,
            },
        };
        Checkpoints {
            stable,
            stable_cert: stored.filter(|c| c.height == stable.height),
            votes: BTreeMap::new(),
            executed: BTreeMap::new(),
            last_executed: committed_height,
            safety_gc_through: 0,
            diverged: None,
            mine: None,
            heartbeat_at: 0,
        }
    }

    /// Our own CHECKPOINT: counted, and re-sent from `heartbeat_at` on.
    pub fn signed(&mut self, vote: CheckpointVote, heartbeat_at: u64) {
        self.mine = Some(vote.clone());
        self.heartbeat_at = heartbeat_at;
        let (height, me) = (vote.height, vote.validator);
        self.votes.entry(height).or_default().insert(me, vote);
    }

    /// The execution certificate at `h` once `q` votes agree on (block hash, roots).
    pub fn certificate(&self, h: u64, q: usize) -> Option<CheckpointCertificate> {
        let votes = self.votes.get(&h)?;
        let mut tally: BTreeMap<(Hash, ExecRoots), Vec<ValidatorSignature>> = BTreeMap::new();
        for (validator, v) in votes {
            tally
                .entry((v.block_hash, v.roots()))
                .or_default()
                .push(ValidatorSignature {
                    validator: *validator,
                    signature: v.signature,
                });
        }
        let ((block_hash, roots), signatures) =
            tally.into_iter().find(|(_, sigs)| sigs.len() >= q)?;
        Some(CheckpointCertificate {
            height: h,
            block_hash,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            signatures,
        })
    }

    /// `Signing -> Diverged`: whether `cert` certifies another (block hash, roots) than ours
    /// while we had not diverged yet.
    pub fn diverges(
        &mut self,
        cert: &CheckpointCertificate,
        block_hash: Hash,
        roots: ExecRoots,
    ) -> bool {
        if (block_hash, roots) == (cert.block_hash, cert.roots()) || self.diverged.is_some() {
            return false;
        }
        self.diverged = Some(cert.height);
        true
    }

    /// Makes `cert` (above the stable checkpoint) the stable checkpoint and forgets the votes
    /// and roots it covers.
    pub fn advance(&mut self, cert: CheckpointCertificate) {
        self.stable = Tip {
            height: cert.height,
            hash: cert.block_hash,
        };
        let h = cert.height;
        self.stable_cert = Some(cert);
        self.votes.retain(|k, _| *k > h);
        self.executed.retain(|k, _| *k > h);
    }

    /// The height through which persisted votes may now be deleted, if it moved: both
    /// certified and stored here.
    pub fn gc_through(&mut self) -> Option<u64> {
        let through = self.stable.height.min(self.last_executed);
        if through <= self.safety_gc_through {
            return None;
        }
        self.safety_gc_through = through;
        Some(through)
    }

    /// Our latest CHECKPOINT if the heartbeat is due at `now` (the next one is then `period`
    /// later).
    pub fn heartbeat(&mut self, now: u64, period: u64) -> Option<CheckpointVote> {
        if self.heartbeat_at > now {
            return None;
        }
        self.heartbeat_at = now + period;
        self.mine.clone()
    }

    /// When the heartbeat is next due, once we have signed a CHECKPOINT.
    pub fn wake(&self) -> Option<u64> {
        self.mine.as_ref().map(|_| self.heartbeat_at)
    }
}

impl<C: Context> Replica<C> {
    /// The node executed and stored block `height`: check our roots against a certificate we
    /// hold, then sign our CHECKPOINT (unless diverged).
    pub(crate) fn on_executed(&mut self, height: u64, block_hash: Hash, roots: ExecRoots) {
        if self.checkpoints.executed.contains_key(&height) {
            return;
        }
        let cp = &mut self.checkpoints;
        cp.last_executed = cp.last_executed.max(height);
        self.gc_safety();
        let stable_cert = self.checkpoints.stable_cert.as_ref();
        if let Some(cert) = stable_cert.filter(|c| c.height == height).cloned() {
            self.compare_roots(&cert, block_hash, roots);
        }
        if height <= self.checkpoints.stable.height {
            return;
        }
        let cp = &mut self.checkpoints;
        cp.executed.insert(height, (block_hash, roots));
        if cp.diverged.is_some() {
            return;
        }
        let msg = checkpoint_message(&self.cfg.chain_id, height, &block_hash, &roots);
        let vote = CheckpointVote {
            height,
            block_hash,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            validator: self.cfg.me,
            signature: self.ctx.sign(&msg),
        };
        self.broadcast(Message::Checkpoint(vote.clone()));
        let heartbeat_at = self.now + self.heartbeat_period();
        self.checkpoints.signed(vote, heartbeat_at);
        self.check_stable(height);
    }

    /// A peer's CHECKPOINT: a claim of its height, and a vote if inside our window.
    pub(crate) fn on_checkpoint(&mut self, from: u32, vote: CheckpointVote) -> Result<(), Reject> {
        if vote.validator != from {
            return Err("checkpoint signed for another validator");
        }
        let h = vote.height;
        let stable = self.checkpoints.stable.height;
        let stored = h > stable && h <= stable + 2 * self.cfg.window;
        let votes = self.checkpoints.votes.get(&h);
        if stored && votes.is_some_and(|m| m.contains_key(&from)) {
            return Ok(());
        }
        if !stored && h <= self.catch_up.claims[from as usize] {
            return Ok(());
        }
        let msg = checkpoint_message(&self.cfg.chain_id, h, &vote.block_hash, &vote.roots());
        if !self.ctx.verify(from, &msg, &vote.signature) {
            return Err("bad checkpoint signature");
        }
        self.catch_up.claim(from, h);
        if stored {
            self.checkpoints
                .votes
                .entry(h)
                .or_default()
                .insert(from, vote);
            self.check_stable(h);
        }
        Ok(())
    }

    /// Forms the execution certificate at `h` once a quorum agrees on (block hash, roots).
    fn check_stable(&mut self, h: u64) {
        if let Some(cert) = self.checkpoints.certificate(h, self.q) {
            self.on_certified(cert);
        }
    }

    /// Raises [`Alarm::Divergence`] (once) if `cert` certifies other roots than ours.
    fn compare_roots(&mut self, cert: &CheckpointCertificate, block_hash: Hash, roots: ExecRoots) {
        if self.checkpoints.diverges(cert, block_hash, roots) {
            tracing::error!(
                replica = self.cfg.me,
                height = cert.height,
                ours = %roots,
                certified = %cert.roots(),
                "divergence: a quorum certified another result"
            );
            self.out.push(Action::Alarm(Alarm::Divergence {
                height: cert.height,
                ours: roots,
                certified: cert.roots(),
            }));
        }
    }

    /// A verified execution certificate (formed here, or carried by a view change).
    pub(crate) fn on_certified(&mut self, cert: CheckpointCertificate) {
        if cert.height <= self.checkpoints.stable.height {
            return;
        }
        if let Some(&(hash, roots)) = self.checkpoints.executed.get(&cert.height) {
            self.compare_roots(&cert, hash, roots);
        }
        self.catch_up.claim(self.cfg.me, self.log.committed.height);
        self.out.push(Action::Certified(cert.clone()));
        let h = cert.height;
        self.checkpoints.advance(cert);
        self.waiting.drop_through_height(h);
        self.log.gc(self.checkpoints.stable.height);
        self.gc_safety();
        // The parent of the block above the checkpoint may now be known.
        self.try_prepare(h + 1);
    }

    /// Forgets persisted votes at heights that are both certified and stored here. Votes above
    /// what storage holds must stay: after a restart this replica would not know the heights
    /// between its stored head and a checkpoint it only held in memory, and could vote there
    /// again.
    fn gc_safety(&mut self) {
        if let Some(height) = self.checkpoints.gc_through() {
            self.persist(vec![crate::safety::SafetyWrite::DeleteThrough { height }]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(height: u64, roots: ExecRoots) -> CheckpointCertificate {
        CheckpointCertificate {
            height,
            block_hash: Hash::digest(b"block"),
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            signatures: Vec::new(),
        }
    }

    #[test]
    fn other_receipts_under_the_same_state_root_are_a_divergence() {
        let ours = ExecRoots {
            state_root: Hash::digest(b"state"),
            receipts_root: Hash::digest(b"receipts"),
        };
        let block = Hash::digest(b"block");
        let mut cp = Checkpoints::new(None, 5);
        assert!(!cp.diverges(&cert(5, ours), block, ours), "the same result");
        assert_eq!(cp.diverged, None);
        let other_receipts = ExecRoots {
            receipts_root: Hash::digest(b"other receipts"),
            ..ours
        };
        assert!(cp.diverges(&cert(5, other_receipts), block, ours));
        assert_eq!(cp.diverged, Some(5));
        let other_state = ExecRoots {
            state_root: Hash::digest(b"other state"),
            ..ours
        };
        assert!(
            !cp.diverges(&cert(6, other_state), block, ours),
            "raised once"
        );
    }
}
