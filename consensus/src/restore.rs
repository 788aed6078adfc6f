//! Recovery: rebuilding a replica's log from its persisted safety records after a restart (see
//! the persistence contract in `safety.rs`).

use crate::context::Context;
use crate::log::Tip;
use crate::messages::Phase;
use crate::replica::Replica;
use crate::safety;
use crate::view_change::{plan_new_view, reproposed};
use lanes_types::cert::checkpoint_message;
use lanes_types::Block;
use lanes_types::ExecRoots;

impl<C: Context> Replica<C> {
    /// Rebuilds the log above the stable checkpoint from the persisted records: our votes go
    /// back into the vote sets (we need only q-1 others), what we voted for or proposed is
    /// accepted again, and the NEW-VIEW of the current view pins its re-proposed blocks. Bodies
    /// not in a prepared record are fetched by hash when needed.
    pub(crate) fn restore(&mut self, restored: safety::Restored, installed: bool) {
        let above = self.checkpoints.stable.height;
        for (h, (view, hash, block)) in restored.prepares.into_iter().filter(|(h, _)| *h > above) {
            let signature = self.sign_vote(Phase::Prepare, view, h, hash).signature;
            let slot = self.log.slot_mut(h);
            if let Some(block) = block {
                slot.keep_block(block);
            }
            slot.my_prepare = Some((view, hash));
            slot.prepares.insert(self.cfg.me, (view, hash, signature));
            slot.accepted = Some((view, hash));
            if view == self.views.current {
                self.log.next_height = self.log.next_height.max(h + 1);
            }
        }
        for (h, (view, hash)) in restored.commits.into_iter().filter(|(h, _)| *h > above) {
            let signature = self.sign_vote(Phase::Commit, view, h, hash).signature;
            let slot = self.log.slot_mut(h);
            slot.my_commit = Some((view, hash));
            slot.commits.insert(self.cfg.me, (view, hash, signature));
        }
        for (h, (cert, txs)) in restored.prepared.into_iter().filter(|(h, _)| *h > above) {
            let slot = self.log.slot_mut(h);
            slot.keep_block(Block {
                header: cert.header.clone(),
                txs,
            });
            slot.prepared = Some(cert);
        }
        for (h, (view, hash)) in restored.proposals.into_iter().filter(|(h, _)| *h > above) {
            if view == self.views.current {
                self.log.slot_mut(h).accepted = Some((view, hash));
                self.log.next_height = self.log.next_height.max(h + 1);
            }
        }
        if let Some(nv) = restored
            .new_view
            .filter(|nv| installed && nv.view == self.views.current)
        {
            let plan = plan_new_view(&nv.view_changes);
            for header in reproposed(&nv, &plan).filter(|hd| hd.height > above) {
                let slot = self.log.slot_mut(header.height);
                slot.accepted = Some((nv.view, header.hash()));
                self.log.next_height = self.log.next_height.max(header.height + 1);
            }
            self.views.new_view = Some(nv);
        }
    }

    /// Signs our CHECKPOINT for the stored head again after a restart: it is what our heartbeat
    /// re-sends, so a peer that missed the last block learns it is behind even on an idle
    /// chain whose other replicas restarted too. Goes out with the first event's actions.
    pub(crate) fn resign_checkpoint(&mut self, head: Tip, roots: ExecRoots) {
        if head.height > self.checkpoints.stable.height {
            self.on_executed(head.height, head.hash, roots);
            return;
        }
        let msg = checkpoint_message(&self.cfg.chain_id, head.height, &head.hash, &roots);
        self.checkpoints.mine = Some(crate::messages::CheckpointVote {
            height: head.height,
            block_hash: head.hash,
            state_root: roots.state_root,
            receipts_root: roots.receipts_root,
            validator: self.cfg.me,
            signature: self.ctx.sign(&msg),
        });
    }
}
