//! The invariants the simulator and the scripted cluster check on every action an honest
//! replica carries out, and on every restart:
//!
//! - it never signs two different blocks for one (phase, view, height), nor two different
//!   NEW-VIEWs for one view, not even across crashes;
//! - in a view it started with a NEW-VIEW, it PREPAREs at a re-proposed height only the block
//!   the NEW-VIEW placed there, not even after a restart;
//! - a vote or VIEW-CHANGE leaves only after the record that binds it was persisted;
//! - no message it sends is above the network's size limit;
//! - it delivers strictly by height, each block's parent being the block delivered before;
//! - a restarted replica starts from exactly what it persisted (view and view-change state,
//!   committed height).
//!
//! Only the public API of the replica and of [`crate::safety`] is used, so the checks keep
//! their meaning whatever the replica does inside.

use crate::context::Context;
use crate::messages::{CertifiedBlock, Message, NewView, Phase};
use crate::replica::Replica;
use crate::safety::VIEW_KEY;
use lanes_types::codec::Decode;
use lanes_types::{Block, CommitCertificate, Hash};
use std::collections::BTreeMap;

/// Persisted safety records of one node, as the simulator keeps them.
pub type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// Everything honest replicas signed so far, to catch a second, different signature.
#[derive(Debug, Default, Clone)]
pub struct Checker {
    /// (validator, phase, view, height) -> block hash voted for.
    votes: BTreeMap<(u32, Phase, u64, u64), Hash>,
    /// (validator, view) -> hash of the NEW-VIEW's signed bytes.
    new_views: BTreeMap<(u32, u64), Hash>,
    /// (validator, view) -> the blocks the NEW-VIEW it installed re-proposed, by height.
    plans: BTreeMap<(u32, u64), BTreeMap<u64, Hash>>,
}

impl Checker {
    /// Honest validator `me` installed `nv` (sent it as primary, or started its view with it):
    /// from now on it may PREPARE in that view only the blocks `nv` re-proposes at their
    /// heights. The first NEW-VIEW seen for a (validator, view) is the one it installed.
    pub fn installed(&mut self, me: u32, nv: &NewView) {
        self.plans.entry((me, nv.view)).or_insert_with(|| {
            let plan = crate::plan_new_view(&nv.view_changes);
            plan.chain
                .iter()
                .map(|&(i, j)| {
                    let header = &nv.view_changes[i].prepared[j].header;
                    (header.height, header.hash())
                })
                .collect()
        });
    }

    /// Checks a message honest validator `me` is about to send (`len` bytes encoded, `max`
    /// the network's limit), given the records it has persisted so far.
    pub fn outgoing(
        &mut self,
        me: u32,
        message: &Message,
        len: usize,
        max: usize,
        persisted: &Records,
    ) -> Result<(), String> {
        if len > max {
            return Err(format!(
                "n{me}: message too large to send: {} of {len} bytes (limit {max})",
                message.kind()
            ));
        }
        match message {
            Message::Prepare(v) => self.vote(me, Phase::Prepare, v, persisted),
            Message::Commit(v) => self.vote(me, Phase::Commit, v, persisted),
            // Replicas relay others' VIEW-CHANGEs to one left behind: only our own binds us.
            Message::ViewChange(view_change) if view_change.validator == me => {
                let (view, _) = persisted_view(persisted)?;
                if view < view_change.view {
                    return Err(format!(
                        "n{me} sent VIEW-CHANGE({}) with view {view} persisted",
                        view_change.view
                    ));
                }
                Ok(())
            }
            Message::NewView(nv) => {
                self.installed(me, nv);
                let id = Hash::tagged("lanes/sim-new-view", &nv.signed_bytes(super::CHAIN_ID));
                match self.new_views.insert((me, nv.view), id) {
                    Some(old) if old != id => Err(format!(
                        "n{me} signed two different NEW-VIEWs for view {}",
                        nv.view
                    )),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// One vote: never a second block for (phase, view, height), and persisted before sent.
    fn vote(
        &mut self,
        me: u32,
        phase: Phase,
        v: &crate::messages::Vote,
        persisted: &Records,
    ) -> Result<(), String> {
        let planned = self.plans.get(&(me, v.view)).and_then(|p| p.get(&v.height));
        if phase == Phase::Prepare && planned.is_some_and(|h| *h != v.block_hash) {
            return Err(format!(
                "n{me} PREPAREd at view {} height {} a block its NEW-VIEW did not put there",
                v.view, v.height
            ));
        }
        let key = (me, phase, v.view, v.height);
        if let Some(h) = self.votes.insert(key, v.block_hash) {
            if h != v.block_hash {
                return Err(format!(
                    "n{me} signed two blocks for {phase:?} at view {} height {}",
                    v.view, v.height
                ));
            }
        }
        let kind = match phase {
            Phase::Prepare => b'p',
            Phase::Commit => b'c',
        };
        let mut record_key = vec![kind];
        record_key.extend_from_slice(&v.height.to_be_bytes());
        let record = persisted
            .get(&record_key)
            .and_then(|r| crate::safety::recorded_vote(&record_key, r))
            .map(|(_, _, view, hash)| (view, hash));
        match record {
            Some((view, _)) if view > v.view => Ok(()),
            Some((view, hash)) if view == v.view && hash == v.block_hash => Ok(()),
            other => Err(format!(
                "n{me} sent {phase:?} (view {}, height {}) with {other:?} persisted for it",
                v.view, v.height
            )),
        }
    }
}

/// The persisted (view, installed) record; (0, true) when there is none.
pub fn persisted_view(persisted: &Records) -> Result<(u64, bool), String> {
    match persisted.get(VIEW_KEY) {
        None => Ok((0, true)),
        Some(v) => <(u64, bool)>::from_bytes(v).map_err(|e| format!("view record: {e}")),
    }
}

/// Checks that `block` may be delivered after the delivered tip `(height, hash)` (`(0,
/// Hash::ZERO)` at genesis): the next height, its parent the tip, its certificate for exactly
/// this block.
pub fn delivery(
    me: u32,
    tip: (u64, Hash),
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    let h = block.height();
    let (len, parent) = tip;
    if h != len + 1 {
        return Err(format!("n{me} delivered height {h} after {len}"));
    }
    if block.header.parent != parent {
        return Err(format!(
            "n{me} delivered height {h} whose parent is not the block it delivered at {len}"
        ));
    }
    if cert.height != h || cert.block_hash != block.hash() {
        return Err(format!(
            "n{me} delivered height {h} with a certificate for another block"
        ));
    }
    Ok(())
}

/// The delivered tip of a chain of certified blocks.
pub fn tip(chain: &[CertifiedBlock]) -> (u64, Hash) {
    (
        chain.len() as u64,
        chain.last().map_or(Hash::ZERO, |c| c.block.hash()),
    )
}

/// Checks that a replica just restarted from `persisted`, `committed_height` stored blocks and
/// a stable checkpoint at `stable_height` starts exactly there.
pub fn restored<C: Context>(
    replica: &Replica<C>,
    persisted: &Records,
    committed_height: u64,
    stable_height: u64,
) -> Result<(), String> {
    let me = replica.id();
    let (view, installed) = persisted_view(persisted)?;
    if replica.view() != view || replica.in_view_change() == installed {
        return Err(format!(
            "n{me} restarted in view {} (changing: {}) but persisted view {view} (installed: \
             {installed})",
            replica.view(),
            replica.in_view_change()
        ));
    }
    if replica.committed_height() != committed_height || replica.stable_height() != stable_height {
        return Err(format!(
            "n{me} restarted at height {} stable {} from storage at {committed_height} stable \
             {stable_height}",
            replica.committed_height(),
            replica.stable_height()
        ));
    }
    Ok(())
}
