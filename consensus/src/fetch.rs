//! Fetching block payloads by hash.
//!
//! VIEW-CHANGE and NEW-VIEW carry headers only, and a restarted primary keeps only the hashes of
//! its proposals; so a replica can accept a block (a NEW-VIEW re-proposal, or what it proposed
//! before a crash) whose payload it does not hold. It asks one peer at a time, in
//! turn, with [`Message::BlockRequest`] (height, hash) for every such block, and again every
//! [`Replica::fetch_interval`] until the payloads arrive. Any peer can answer: the hash binds
//! the header and the header's digest binds the transactions, so a reply is checked without
//! trusting its sender; it is kept only if it is the payload of a block accepted here without
//! one. A prepared certificate means f+1 honest replicas PREPAREd the block, and a PREPARE
//! record holds the block, so one of them can answer even after they all restarted.
//!
//! Serving is bounded: only blocks held in the log above the stable checkpoint (heights up to
//! `4 x window` above it, as far as a NEW-VIEW can re-propose), and per peer at most one full
//! block's bytes (`max_block_bytes`) per fetch interval, so a request of a few bytes cannot
//! draw more than about what the peer's own proposals would have sent it.

use crate::context::Context;
use crate::messages::Message;
use crate::replica::{Action, Reject, Replica};
use lanes_types::{tx_hash, Block, Hash};

impl<C: Context> Replica<C> {
    /// How long to wait for payloads before asking the next peer.
    pub(crate) fn fetch_interval(&self) -> u64 {
        (self.cfg.view_timeout_ms / 4).max(1)
    }

    /// Asks the next peer for every missing payload, once per fetch interval.
    pub(crate) fn maybe_fetch(&mut self) {
        if self.views.changing || self.now < self.fetch_at {
            return;
        }
        let missing = self.log.missing_payloads(self.views.current);
        if missing.is_empty() {
            return;
        }
        let others = self.n as u64 - 1;
        let peer = (self.cfg.me as u64 + 1 + self.fetch_attempt % others) % self.n as u64;
        self.fetch_attempt += 1;
        self.fetch_at = self.now + self.fetch_interval();
        for (height, hash) in missing {
            self.out.push(Action::Send {
                to: peer as u32,
                message: Message::BlockRequest { height, hash },
            });
        }
    }

    /// When payload fetching next needs a look.
    pub(crate) fn fetch_wake(&self) -> Option<u64> {
        let waiting =
            !self.views.changing && !self.log.missing_payloads(self.views.current).is_empty();
        waiting.then_some(self.fetch_at)
    }

    pub(crate) fn on_block_request(
        &mut self,
        from: u32,
        height: u64,
        hash: Hash,
    ) -> Result<(), Reject> {
        if height <= self.checkpoints.stable.height
            || height > self.checkpoints.stable.height + 4 * self.cfg.window
        {
            return Ok(());
        }
        let Some(block) = self
            .log
            .slots
            .get(&height)
            .and_then(|s| s.blocks.get(&hash))
        else {
            return Ok(());
        };
        let size = block.txs.iter().map(|t| t.len()).sum::<usize>();
        let (since, spent) = self.served_blocks.get(&from).copied().unwrap_or((0, 0));
        let (since, spent) = if self.now >= since + self.fetch_interval() {
            (self.now, 0)
        } else {
            (since, spent)
        };
        if spent > 0 && spent + size > self.cfg.max_block_bytes {
            return Ok(());
        }
        let message = Message::BlockReply(block.clone());
        self.served_blocks.insert(from, (since, spent + size));
        self.out.push(Action::Send { to: from, message });
        Ok(())
    }

    pub(crate) fn on_block_reply(&mut self, block: Block) -> Result<(), Reject> {
        let (h, hash) = (block.height(), block.hash());
        let Some(slot) = self.log.slots.get_mut(&h) else {
            return Ok(());
        };
        let Some((view, _)) = slot.accepted.filter(|a| a.1 == hash) else {
            return Ok(());
        };
        if slot.blocks.contains_key(&hash) {
            return Ok(());
        }
        if !block.payload_matches() {
            return Err("block reply does not match its header");
        }
        if view == self.views.current {
            for tx in &block.txs {
                let th = tx_hash(tx);
                if self.mempool.contains(&th) {
                    self.in_flight.insert(th);
                }
            }
        }
        slot.keep_block(block);
        self.try_prepare(h);
        self.check_committed(h);
        self.retry_waiting_proposals();
        Ok(())
    }
}
