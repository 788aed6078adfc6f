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
use lanes_types::{Block, Hash};
use std::collections::BTreeMap;

/// Payload fetching: whom to ask next and when, and what each peer drew from us.
///
/// Status transitions: Idle (every block accepted in the view has its payload) -> Fetching
/// when a block is accepted by header only; while fetching, every missing payload is asked of
/// one peer per interval, the next peer in turn each time; -> Idle when the payloads arrived
/// (or the slots are gone). Nothing is asked during a view change. Serving: per peer, a window
/// of one fetch interval from its first request in it, in which at most one full block's
/// bytes are sent (a first block always goes).
#[derive(Debug, Default)]
pub(crate) struct Fetcher {
    /// When to ask (again) for payloads of accepted blocks we know only by header.
    pub at: u64,
    /// Rounds of requests sent (picks the next peer in turn).
    pub attempt: u64,
    /// Per validator: since when, and how many payload bytes, we answered its block requests
    /// in the current fetch interval (bounds what a peer can draw from us).
    pub served: BTreeMap<u32, (u64, usize)>,
}

impl Fetcher {
    /// The peer to ask now (the next after us in turn); the next round is due `interval` later.
    pub fn next_peer(&mut self, me: u32, n: usize, now: u64, interval: u64) -> u32 {
        let others = n as u64 - 1;
        let peer = (me as u64 + 1 + self.attempt % others) % n as u64;
        self.attempt += 1;
        self.at = now + interval;
        peer as u32
    }

    /// Whether to send `size` payload bytes to `peer` now (recorded if so), at most
    /// `max_bytes` per `interval` beyond its first block.
    pub fn may_serve(
        &mut self,
        peer: u32,
        size: usize,
        now: u64,
        interval: u64,
        max_bytes: usize,
    ) -> bool {
        let (since, spent) = self.served.get(&peer).copied().unwrap_or((0, 0));
        let (since, spent) = if now >= since + interval {
            (now, 0)
        } else {
            (since, spent)
        };
        if spent > 0 && spent + size > max_bytes {
            return false;
        }
        self.served.insert(peer, (since, spent + size));
        true
    }
}

impl<C: Context> Replica<C> {
    /// How long to wait for payloads before asking the next peer.
    pub(crate) fn fetch_interval(&self) -> u64 {
        (self.cfg.view_timeout_ms / 4).max(1)
    }

    /// Asks the next peer for every missing payload, once per fetch interval.
    pub(crate) fn maybe_fetch(&mut self) {
        if self.views.changing || self.now < self.fetch.at {
            return;
        }
        let missing = self.log.missing_payloads(self.views.current);
        if missing.is_empty() {
            return;
        }
        let interval = self.fetch_interval();
        let peer = self
            .fetch
            .next_peer(self.cfg.me, self.n, self.now, interval);
        for (height, hash) in missing {
            self.out.push(Action::Send {
                to: peer,
                message: Message::BlockRequest { height, hash },
            });
        }
    }

    /// When payload fetching next needs a look.
    pub(crate) fn fetch_wake(&self) -> Option<u64> {
        let waiting =
            !self.views.changing && !self.log.missing_payloads(self.views.current).is_empty();
        waiting.then_some(self.fetch.at)
    }

    /// A peer asks for a block's payload: served if we hold it in the log and the peer has not
    /// drawn too much this interval.
    pub(crate) fn on_block_request(
        &mut self,
        from: u32,
        height: u64,
        hash: Hash,
    ) -> Result<(), Reject> {
        let stable = self.checkpoints.stable.height;
        if height <= stable || height > stable + 4 * self.cfg.window {
            return Ok(());
        }
        let Some(block) = self.log.block(height, &hash) else {
            return Ok(());
        };
        let size = block.txs.iter().map(|t| t.len()).sum::<usize>();
        let interval = self.fetch_interval();
        let max = self.cfg.max_block_bytes;
        if !self.fetch.may_serve(from, size, self.now, interval, max) {
            return Ok(());
        }
        let message = Message::BlockReply(block.clone());
        self.out.push(Action::Send { to: from, message });
        Ok(())
    }

    /// A payload: kept if it is that of a block we accepted by header only, then voted on.
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
            self.pool.proposed(&block);
        }
        slot.keep_block(block);
        self.try_prepare(h);
        self.check_committed(h);
        self.retry_waiting_proposals();
        Ok(())
    }
}
