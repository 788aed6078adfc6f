//! The normal-case log: what the replica knows per height (blocks, the accepted proposal, votes,
//! its prepared certificate, the decision) and the committed tip it delivers from.
//!
//! [`Log`] answers questions about the chain that only need the log, the stable checkpoint and
//! the current view (which block a height links to, whether a parent may be PREPAREd, which
//! transactions the uncommitted chain holds); the protocol steps that also send, persist or
//! touch other parts are on [`Replica`](crate::replica::Replica) in `normal.rs`.

use crate::messages::PreparedCert;
use crate::replica::{Reject, BEHIND};
use lanes_types::{tx_hash, Block, CommitCertificate, Hash, Signature, ValidatorSignature};
use std::collections::{BTreeMap, HashSet};

/// Most distinct blocks remembered at one height.
const MAX_BLOCKS_PER_SLOT: usize = 4;

/// A block identified by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
}

/// A vote as remembered: (view, hash, signature). One per validator per slot and phase: the one
/// for the highest view, first seen.
pub(crate) type StoredVote = (u64, Hash, Signature);

/// Everything known about one height.
///
/// Status transitions of a slot in view v: empty -> accepted (a proposal of v, or a block of
/// v's NEW-VIEW known by hash until its payload arrives) -> our PREPARE sent (`my_prepare`,
/// once the payload is here and the parent rule holds) -> prepared (a quorum of matching
/// PREPAREs: `prepared`, and our COMMIT `my_commit`) -> decided (a quorum of matching COMMITs
/// for a block we hold) -> delivered (the slot is forgotten once the stable checkpoint passes
/// it). A later view may accept another block at the height; votes and the prepared
/// certificate keep the highest view's.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Blocks known at this height, by hash (bounded by [`MAX_BLOCKS_PER_SLOT`]).
    pub blocks: BTreeMap<Hash, Block>,
    /// The proposal accepted in a view: (view, hash). Current only if the view is ours.
    pub accepted: Option<(u64, Hash)>,
    /// The latest PREPARE of each validator.
    pub prepares: BTreeMap<u32, StoredVote>,
    /// The latest COMMIT of each validator.
    pub commits: BTreeMap<u32, StoredVote>,
    /// Our highest-view prepared certificate (its block is in `blocks`).
    pub prepared: Option<PreparedCert>,
    /// Our own PREPARE: (view, hash). Persisted before it was sent.
    pub my_prepare: Option<(u64, Hash)>,
    /// Our own COMMIT: (view, hash). Persisted before it was sent.
    pub my_commit: Option<(u64, Hash)>,
    /// A quorum committed this block (its block is in `blocks`); waiting for in-order delivery.
    pub decided: Option<CommitCertificate>,
}

impl Slot {
    /// The (view, hash) of our prepared certificate, if we hold one.
    pub fn prepared_hash(&self) -> Option<(u64, Hash)> {
        self.prepared.as_ref().map(|p| (p.view, p.header.hash()))
    }

    /// Remembers a block at this height; when the slot is full, one not accepted, prepared or
    /// decided makes room (or the block is not kept).
    pub(crate) fn keep_block(&mut self, block: Block) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        if self.blocks.len() >= MAX_BLOCKS_PER_SLOT {
            let pinned: Vec<Hash> = [
                self.accepted.map(|a| a.1),
                self.prepared_hash().map(|p| p.1),
                self.decided.as_ref().map(|d| d.block_hash),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(victim) = self.blocks.keys().find(|h| !pinned.contains(h)).copied() {
                self.blocks.remove(&victim);
            } else {
                return;
            }
        }
        self.blocks.insert(hash, block);
    }

    /// The prepared certificate this slot now makes in `view`, if it has none for `view` yet:
    /// the block accepted in `view`, our PREPARE for it, `q` matching PREPAREs and its payload.
    pub fn new_prepared_cert(&self, view: u64, q: usize) -> Option<PreparedCert> {
        let (v, hash) = self.accepted?;
        if v != view || self.my_prepare != Some((view, hash)) {
            return None;
        }
        if self.prepared.as_ref().is_some_and(|p| p.view >= view) {
            return None;
        }
        let signatures = matching(&self.prepares, view, hash);
        if signatures.len() < q {
            return None;
        }
        let block = self.blocks.get(&hash)?;
        Some(PreparedCert {
            view,
            header: block.header.clone(),
            signatures,
        })
    }

    /// The commit certificate of height `h` once `q` COMMITs match one (view, hash) whose block
    /// we hold.
    pub fn commit_cert(&self, h: u64, q: usize) -> Option<CommitCertificate> {
        let mut tally: BTreeMap<(u64, Hash), usize> = BTreeMap::new();
        for (v, hash, _) in self.commits.values() {
            *tally.entry((*v, *hash)).or_default() += 1;
        }
        let (&(view, hash), _) = tally.iter().find(|(_, c)| **c >= q)?;
        if !self.blocks.contains_key(&hash) {
            // A quorum committed a block we never received: checkpoints will show we are
            // behind, and catch-up fetches it.
            return None;
        }
        Some(CommitCertificate {
            view,
            height: h,
            block_hash: hash,
            signatures: matching(&self.commits, view, hash),
        })
    }
}

/// Signatures in `votes` for exactly (view, hash), ascending by validator.
pub(crate) fn matching(
    votes: &BTreeMap<u32, StoredVote>,
    view: u64,
    hash: Hash,
) -> Vec<ValidatorSignature> {
    votes
        .iter()
        .filter(|(_, (v, h, _))| *v == view && *h == hash)
        .map(|(validator, (_, _, signature))| ValidatorSignature {
            validator: *validator,
            signature: *signature,
        })
        .collect()
}

/// The log of heights in flight and the committed tip.
///
/// Status transitions: `committed` moves up one height at a time, as decided blocks are
/// delivered in order (or verified catch-up blocks are); slots are created by proposals, votes
/// and restored records above the stable checkpoint and forgotten once the stable checkpoint
/// passes them (decided slots still waiting for delivery stay). `next_height` (the primary's
/// next proposal) is at least `committed + 1`; a NEW-VIEW sets it above its re-proposals.
#[derive(Debug)]
pub(crate) struct Log {
    /// Everything known per height.
    pub slots: BTreeMap<u64, Slot>,
    /// The last delivered block.
    pub committed: Tip,
    /// Primary only: the next height to propose in this view.
    pub next_height: u64,
}

impl Log {
    /// An empty log above the stored head `committed`.
    pub fn new(committed: Tip) -> Self {
        Log {
            slots: BTreeMap::new(),
            committed,
            next_height: committed.height + 1,
        }
    }

    /// The slot at `h`, created if needed.
    pub fn slot_mut(&mut self, h: u64) -> &mut Slot {
        self.slots.entry(h).or_default()
    }

    /// The block with this hash at height `h`, if we hold it.
    pub fn block(&self, h: u64, hash: &Hash) -> Option<&Block> {
        self.slots.get(&h).and_then(|s| s.blocks.get(hash))
    }

    /// The hash this replica links height `h + 1` to: the stable checkpoint's, the committed, or
    /// the decided or current-view block at `h`.
    pub fn chain_hash(&self, h: u64, stable: Tip, view: u64) -> Option<Hash> {
        if h == stable.height {
            return Some(stable.hash);
        }
        if h == self.committed.height {
            return Some(self.committed.hash);
        }
        let slot = self.slots.get(&h)?;
        if let Some(d) = &slot.decided {
            return Some(d.block_hash);
        }
        if let Some((v, hash)) = slot.accepted {
            if v == view {
                return Some(hash);
            }
        }
        slot.my_prepare.filter(|p| p.0 == view).map(|p| p.1)
    }

    /// Whether a block at `h` with this parent may be PREPAREd in `view`: its parent is the
    /// stable or committed block, a decided one, or the one we prepared in `view` (see the rules
    /// in `replica.rs`).
    pub fn parent_ok(&self, h: u64, parent: &Hash, stable: Tip, view: u64) -> bool {
        let x = h - 1;
        if x < stable.height {
            return false;
        }
        if x == stable.height {
            return *parent == stable.hash;
        }
        if x == self.committed.height {
            return *parent == self.committed.hash;
        }
        let Some(slot) = self.slots.get(&x) else {
            return false;
        };
        if let Some(d) = &slot.decided {
            return d.block_hash == *parent;
        }
        slot.prepared_hash() == Some((view, *parent))
    }

    /// Hashes of transactions in uncommitted blocks below `h` on `view`'s chain, or [`BEHIND`]
    /// if a block below `h` is unknown here (then we cannot tell whether a proposal at `h`
    /// repeats a transaction, so we do not vote for it; catch-up fills the gap).
    pub fn chain_tx_hashes(&self, h: u64, view: u64) -> Result<HashSet<Hash>, Reject> {
        let mut out = HashSet::new();
        for height in self.committed.height + 1..h {
            let slot = self.slots.get(&height).ok_or(BEHIND)?;
            let hash = match (&slot.decided, slot.accepted) {
                (Some(d), _) => d.block_hash,
                (None, Some((v, hash))) if v == view => hash,
                _ => return Err(BEHIND),
            };
            let block = slot.blocks.get(&hash).ok_or(BEHIND)?;
            out.extend(block.txs.iter().map(|t| tx_hash(t)));
        }
        Ok(out)
    }

    /// Whether a block accepted in `view` above the committed height waits for a decision.
    pub fn has_undecided_work(&self, view: u64) -> bool {
        self.slots
            .range(self.committed.height + 1..)
            .any(|(_, s)| s.accepted.is_some_and(|a| a.0 == view))
    }

    /// Blocks accepted in `view` above the committed height whose payload we lack:
    /// (height, hash).
    pub fn missing_payloads(&self, view: u64) -> Vec<(u64, Hash)> {
        self.slots
            .range(self.committed.height + 1..)
            .filter_map(|(&h, slot)| match slot.accepted {
                Some((v, hash)) if v == view && !slot.blocks.contains_key(&hash) => Some((h, hash)),
                _ => None,
            })
            .collect()
    }

    /// Our prepared certificates above `stable_height`, at most `max`, ascending by height.
    pub fn prepared_certs(&self, stable_height: u64, max: usize) -> Vec<PreparedCert> {
        self.slots
            .range(stable_height + 1..)
            .filter_map(|(_, slot)| slot.prepared.clone())
            .take(max)
            .collect()
    }

    /// The decided block at the next height to deliver, with its certificate.
    pub fn next_decided(&self) -> Option<(Block, CommitCertificate)> {
        let slot = self.slots.get(&(self.committed.height + 1))?;
        let cert = slot.decided.clone()?;
        let block = slot.blocks.get(&cert.block_hash).cloned()?;
        Some((block, cert))
    }

    /// Forgets slots at or below the stable checkpoint, except decided ones still waiting for
    /// delivery.
    pub fn gc(&mut self, stable_height: u64) {
        let committed = self.committed.height;
        self.slots
            .retain(|&h, slot| h > stable_height || (h > committed && slot.decided.is_some()));
    }
}
