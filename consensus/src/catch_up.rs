//! Catch-up: learning from checkpoints that the replica is behind, and fetching the committed
//! blocks it misses.
//!
//! A replica learns it is behind from checkpoints: the (f+1)-th highest height validators have
//! signed is one at least one honest replica reached. If it stays behind for a while (or by
//! more than the window) it asks a validator that claims those heights for the committed blocks
//! and verifies every commit certificate before delivering them. Only the answer of the peer
//! asked, for the heights asked, is applied.

use crate::config::Config;
use crate::context::Context;
use crate::messages::{CertifiedBlock, Message};
use crate::replica::{Action, Reject, Replica};
use lanes_types::cert::commit_vote_message;

/// The catch-up state: what each validator claims to have executed, and our outstanding
/// request.
///
/// Status transitions: `InSync -> Behind(since)` when the network height (the (f+1)-th highest
/// claim, or our stable checkpoint) passes our committed height; `Behind -> Asking(peer, lo, hi)`
/// after half a view timeout behind (at once when more than the window behind), the peer taken
/// in turn among those claiming height lo; `Asking -> Behind` when that peer's answer is
/// applied (a new request may follow at once) or after a view timeout without one (the next
/// peer is asked); `Behind | Asking -> InSync` once our committed height reaches the network
/// height.
#[derive(Debug)]
pub(crate) struct CatchUp {
    /// Highest height each validator has shown a signed checkpoint for.
    pub claims: Vec<u64>,
    /// The highest network height seen so far.
    pub last_target: u64,
    /// Since when we are behind the network height.
    pub behind_since: Option<u64>,
    /// No new request before this time.
    pub deadline: Option<u64>,
    /// Requests sent (picks the next peer in turn).
    pub attempt: u64,
    /// The catch-up request outstanding: (peer asked, first height, last height). Only that
    /// peer's answer, for those heights, is applied.
    pub asked: Option<(u32, u64, u64)>,
}

impl CatchUp {
    /// `n` validators, nothing claimed but our own stored head.
    pub fn new(n: usize, me: u32, committed_height: u64) -> Self {
        let mut claims = vec![0; n];
        claims[me as usize] = committed_height;
        CatchUp {
            claims,
            last_target: 0,
            behind_since: None,
            deadline: None,
            attempt: 0,
            asked: None,
        }
    }

    /// Validator `v` has shown a checkpoint (or we delivered) at height `h`.
    pub fn claim(&mut self, v: u32, h: u64) {
        let claim = &mut self.claims[v as usize];
        *claim = (*claim).max(h);
    }

    /// The height at least one honest validator has executed: the (f+1)-th highest claim, or
    /// the stable checkpoint if higher.
    pub fn target(&self, f: usize, stable_height: u64) -> u64 {
        let mut claims = self.claims.clone();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims[f].max(stable_height)
    }

    /// How long to stay behind before asking (unless far behind).
    fn delay(cfg: &Config) -> u64 {
        (cfg.view_timeout_ms / 2).max(1)
    }

    /// The request to send now, if one is due: (peer, first height, last height), recorded as
    /// outstanding. `committed` is our height, `target` the network height.
    pub fn next_request(
        &mut self,
        cfg: &Config,
        now: u64,
        committed: u64,
        target: u64,
    ) -> Option<(u32, u64, u64)> {
        if target <= committed {
            self.behind_since = None;
            self.deadline = None;
            return None;
        }
        let since = *self.behind_since.get_or_insert(now);
        let urgent = target > committed + cfg.window;
        if !urgent && now < since + Self::delay(cfg) {
            return None;
        }
        if self.deadline.is_some_and(|d| now < d) {
            return None;
        }
        let from = committed + 1;
        let peers: Vec<u32> = (0..self.claims.len() as u32)
            .filter(|&v| v != cfg.me && self.claims[v as usize] >= from)
            .collect();
        self.deadline = Some(now + cfg.view_timeout_ms);
        if peers.is_empty() {
            return None;
        }
        let to = peers[(self.attempt % peers.len() as u64) as usize];
        self.attempt += 1;
        let hi = target.min(from + cfg.sync_batch - 1);
        self.asked = Some((to, from, hi));
        self.asked
    }

    /// When catch-up next needs a look.
    pub fn wake(&self, cfg: &Config) -> Option<u64> {
        let since = self.behind_since?;
        Some(match self.deadline {
            Some(d) => d,
            None => since + Self::delay(cfg),
        })
    }
}

impl<C: Context> Replica<C> {
    /// The network height: see [`CatchUp::target`].
    pub(crate) fn sync_target(&self) -> u64 {
        self.catch_up.target(self.f, self.checkpoints.stable.height)
    }

    /// Sends a catch-up request when we have been behind for a while or by a lot.
    pub(crate) fn maybe_sync(&mut self) {
        let target = self.sync_target();
        if target > self.catch_up.last_target {
            // Others make progress: no reason to suspect the primary while we catch up.
            self.catch_up.last_target = target;
            if self.views.progress_deadline.is_some() {
                self.views.progress_deadline = Some(self.now + self.timeout());
            }
        }
        let committed = self.log.committed.height;
        let request = self
            .catch_up
            .next_request(&self.cfg, self.now, committed, target);
        if let Some((to, from, hi)) = request {
            self.stats.sync_requests += 1;
            self.out.push(Action::Send {
                to,
                message: Message::SyncRequest { from, to: hi },
            });
        }
    }

    /// A peer asks for committed blocks `lo..=hi`: the node serves what it stores, at most one
    /// batch.
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
        let Some((peer, lo, hi)) = self.catch_up.asked else {
            return Err("sync response nobody asked for");
        };
        if from != peer {
            return Err("sync response from a peer not asked");
        }
        if blocks.len() as u64 > self.cfg.sync_batch {
            return Err("sync response too long");
        }
        self.catch_up.asked = None;
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
        self.catch_up.deadline = None;
        self.try_prepare(self.log.committed.height + 1);
        self.retry_waiting_proposals();
        Ok(())
    }
}
