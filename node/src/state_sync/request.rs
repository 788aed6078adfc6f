//! The requesting side ([`StateSync`], driven by the node protocol on the consensus thread):
//! when to ask, whom, and what of the answer to accept.

use super::{CHUNK_TIMEOUT_MS, MAX_STATE_BYTES};
use crate::wire::{NodeMessage, StateChunk};
use lanes_storage::Record;
use lanes_types::{CheckpointCertificate, Genesis};

/// A certified snapshot, received whole and ready for [`install`].
#[derive(Debug)]
pub struct Snapshot {
    /// The execution certificate of the snapshot's height (quorum checked).
    pub certificate: CheckpointCertificate,
    /// Every state entry.
    pub entries: Vec<Record>,
}

struct Session {
    id: u64,
    peer: u32,
    /// Fetched to repair a diverged state: a snapshot at our own height is then wanted too.
    repair: bool,
    last_chunk_at: u64,
    next_seq: u32,
    first: Option<(u64, lanes_types::Hash, lanes_types::Hash)>,
    entries: Vec<Record>,
    bytes: usize,
}

/// The requesting side, driven by the consensus thread.
pub struct StateSync {
    me: u32,
    validators: u32,
    stuck_ms: u64,
    session: Option<Session>,
    installing: bool,
    executed: (u64, u64),
    pruned_hint: Option<u64>,
    next_try: u64,
    attempts: u64,
    next_id: u64,
}

/// Why a state transfer is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing.
    None,
    /// Behind the network with no block progress.
    Behind,
    /// Our root differs from a certified one.
    Diverged,
}

impl StateSync {
    /// Requester state for validator `me` of `validators`; a transfer starts after `stuck_ms`
    /// without execution progress while the network is ahead.
    pub fn new(me: u32, validators: u32, stuck_ms: u64, now: u64) -> StateSync {
        StateSync {
            me,
            validators,
            stuck_ms,
            session: None,
            installing: false,
            executed: (0, now),
            pruned_hint: None,
            next_try: 0,
            attempts: 0,
            next_id: now,
        }
    }

    /// Records our executed height (progress resets the stuck clock).
    pub fn executed(&mut self, height: u64, now: u64) {
        if height != self.executed.0 {
            self.executed = (height, now);
        }
    }

    /// A peer answered a catch-up request without blocks: it pruned them.
    pub fn blocks_unavailable(&mut self, now: u64) {
        self.pruned_hint = Some(now);
    }

    /// What the node needs, from its executed height, the network's and divergence. Behind
    /// means the network is ahead and either a peer said the blocks we need are pruned since we
    /// last made progress, or we made none for `stuck_ms`.
    pub fn need(&self, network_height: u64, diverged: bool, now: u64) -> Need {
        let (height, since) = self.executed;
        let pruned = self.pruned_hint.is_some_and(|at| at >= since);
        if diverged {
            Need::Diverged
        } else if network_height > height && (pruned || now >= since + self.stuck_ms) {
            Need::Behind
        } else {
            Need::None
        }
    }

    /// A one-line description for `/status`.
    pub fn describe(&self) -> Option<String> {
        if self.installing {
            return Some("installing a snapshot".into());
        }
        self.session.as_ref().map(|s| {
            format!(
                "fetching state from validator {} ({} chunks, {} bytes)",
                s.peer, s.next_seq, s.bytes
            )
        })
    }

    /// The height a snapshot must exceed: our executed height or the replica's `committed`
    /// height, whichever is higher.
    fn floor(&self, committed: u64) -> u64 {
        self.executed.0.max(committed)
    }

    /// The lowest snapshot height acceptable: above [`Self::floor`], or at it when repairing a
    /// diverged state (the certified root at our own height replaces ours; nothing is rolled
    /// back: the replica restarts from the same height with the same safety records).
    fn lowest(&self, committed: u64, repair: bool) -> u64 {
        self.floor(committed) + u64::from(!repair)
    }

    /// Starts, times out or keeps the transfer; returns a request to send when one starts.
    /// `claims[v]` is the height validator `v` claims to have executed (its latest CHECKPOINT);
    /// only peers claiming a height we would accept ([`Self::lowest`]) are asked, in turn.
    pub fn tick(
        &mut self,
        need: Need,
        claims: &[u64],
        committed: u64,
        now: u64,
    ) -> Option<(u32, NodeMessage)> {
        if let Some(s) = &self.session {
            if now > s.last_chunk_at + CHUNK_TIMEOUT_MS {
                tracing::warn!(peer = s.peer, "state transfer timed out");
                self.abort(now);
            }
            return None;
        }
        if need == Need::None || self.installing || now < self.next_try {
            return None;
        }
        let repair = need == Need::Diverged;
        let peer = self.next_peer(claims, self.lowest(committed, repair))?;
        self.attempts += 1;
        self.next_id += 1;
        let id = self.next_id;
        tracing::info!(
            peer,
            ?need,
            attempt = self.attempts,
            "fetching the certified state"
        );
        self.session = Some(Session {
            id,
            peer,
            repair,
            last_chunk_at: now,
            next_seq: 0,
            first: None,
            entries: Vec::new(),
            bytes: 0,
        });
        Some((peer, NodeMessage::StateRequest { session: id }))
    }

    /// The peer of this attempt among the others whose claim reaches `target`, if any.
    fn next_peer(&self, claims: &[u64], target: u64) -> Option<u32> {
        let able: Vec<u32> = (1..self.validators)
            .map(|i| (self.me + i) % self.validators)
            .filter(|&v| claims.get(v as usize).is_some_and(|&c| c >= target))
            .collect();
        if able.is_empty() {
            return None;
        }
        Some(able[(self.attempts % able.len() as u64) as usize])
    }

    pub(super) fn abort(&mut self, now: u64) {
        self.session = None;
        self.next_try = now + 1_000;
    }

    /// Takes a chunk; returns the snapshot when a verified stream is complete. A chunk of a
    /// stream we did not ask for (another session or peer) is ignored. An error aborts the
    /// transfer (the next attempt asks another peer). A stream whose height is not (or no
    /// longer) above our executed height and the replica's `committed` height (or, repairing
    /// a divergence, at least at it) is refused before its entries are taken: on its first
    /// chunk, or the first after we caught up.
    pub fn on_chunk(
        &mut self,
        from: u32,
        chunk: StateChunk,
        genesis: &Genesis,
        committed: u64,
        now: u64,
    ) -> Result<Option<Snapshot>, String> {
        let floor = self.floor(committed);
        let Some(s) = self.session.as_mut() else {
            return Ok(None); // a stale stream: ignored
        };
        if s.id != chunk.session || s.peer != from {
            return Ok(None);
        }
        let lowest = floor + u64::from(!s.repair);
        let result = Self::take(s, chunk, genesis, lowest, now);
        match result {
            Ok(Some(_)) => {
                self.session = None;
                self.installing = true;
            }
            Ok(None) => {}
            Err(_) => self.abort(now),
        }
        result
    }

    fn take(
        s: &mut Session,
        chunk: StateChunk,
        genesis: &Genesis,
        lowest: u64,
        now: u64,
    ) -> Result<Option<Snapshot>, String> {
        if chunk.height < lowest {
            return Err(format!(
                "the peer's snapshot is of height {}, below the {lowest} we need: installing \
                 it would roll this node back",
                chunk.height
            ));
        }
        if chunk.seq != s.next_seq {
            return Err(format!(
                "chunk {} arrived, {} expected",
                chunk.seq, s.next_seq
            ));
        }
        let id = (chunk.height, chunk.block_hash, chunk.state_root);
        if *s.first.get_or_insert(id) != id {
            return Err("chunks of different snapshots".into());
        }
        for (k, v) in chunk.entries {
            s.bytes += k.0.len() + v.0.len();
            if s.bytes > MAX_STATE_BYTES {
                return Err(format!("state larger than {MAX_STATE_BYTES} bytes"));
            }
            if s.entries.last().is_some_and(|(last, _)| *last >= k.0) {
                return Err("state entries out of order".into());
            }
            s.entries.push((k.0, v.0));
        }
        s.next_seq += 1;
        s.last_chunk_at = now;
        if !chunk.last {
            return Ok(None);
        }
        let cert = chunk
            .certificate
            .ok_or("the peer has no execution certificate for its snapshot")?;
        if (cert.height, cert.block_hash, cert.state_root) != id {
            return Err("the certificate is for another block or root".into());
        }
        cert.verify(&genesis.chain_id, &genesis.validator_set())
            .map_err(|e| format!("bad execution certificate: {e}"))?;
        Ok(Some(Snapshot {
            certificate: cert,
            entries: std::mem::take(&mut s.entries),
        }))
    }

    /// The executor finished (or refused) the install.
    pub fn installed(&mut self, ok: bool, now: u64) {
        self.installing = false;
        if ok {
            self.attempts = 0;
            self.executed = (self.executed.0, now);
        } else {
            self.next_try = now + 1_000;
        }
    }
}
