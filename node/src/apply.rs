//! The apply thread: everything that changes the stored chain after consensus decided it. It
//! executes each committed block on the executor's own rayon pool and stores it with its
//! state, tree and receipts in one synced batch, files execution certificates once their block
//! is stored, installs certified state snapshots, prunes old blocks, and reports every stored
//! block back to the consensus thread ([`Input::Executed`]).

use super::execute;
use super::shared::{BlockEvent, Input, Metrics, Shared};
use super::state_sync::{self, Snapshot};
use anyhow::{Context as _, Result};
use lanes_executor::Executor;
use lanes_storage::StorageError;
use lanes_types::{Block, CheckpointCertificate, CommitCertificate};
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Work for the apply thread.
pub enum ApplyJob {
    /// Execute and store a committed block.
    Block(Block, CommitCertificate),
    /// Store an execution certificate (once its block is stored).
    Certificate(CheckpointCertificate),
    /// Install a certified state snapshot received from a peer.
    Install(Snapshot),
}

/// Most blocks pruned after one committed block (pruning catches up gradually).
const PRUNE_STEP: u64 = 64;

/// Runs the apply thread: executes and stores committed blocks in order, stores execution
/// certificates once their block is stored, installs certified state snapshots, prunes blocks
/// older than `retain_blocks` below the head (0: never), and reports each stored block to
/// consensus.
pub fn apply_loop(
    jobs: Receiver<ApplyJob>,
    shared: Arc<Shared>,
    executor: Executor,
    retain_blocks: u64,
) -> Result<()> {
    let mut pending: BTreeMap<u64, CheckpointCertificate> = BTreeMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            ApplyJob::Certificate(cert) => {
                pending.insert(cert.height, cert);
            }
            ApplyJob::Install(snapshot) => {
                let result = state_sync::install(&shared.store, &snapshot, &shared.metrics);
                if let Ok(head) = &result {
                    pending.retain(|h, _| *h > head.height);
                    shared.update_status(|s| {
                        s.height = head.height;
                        s.block_hash = head.block_hash.to_string();
                        s.state_root = head.state_root.to_string();
                    });
                }
                let result = result.map(|head| (head, snapshot.certificate));
                let _ = shared.inputs.send(Input::StateInstalled(result));
            }
            ApplyJob::Block(block, certificate) => {
                execute_block(&shared, &executor, &block, &certificate)?;
                let height = block.height();
                if retain_blocks > 0 && height > retain_blocks {
                    if let Err(e) = shared
                        .store
                        .prune_blocks(height - retain_blocks, PRUNE_STEP)
                    {
                        tracing::warn!(error = %e, "pruning old blocks failed");
                    }
                }
            }
        }
        // Certificates whose block is stored now.
        let stored = shared.store.head()?.map_or(0, |h| h.height);
        while let Some(entry) = pending.first_entry() {
            if *entry.key() > stored {
                break;
            }
            let cert = entry.remove();
            match shared.store.put_checkpoint_certificate(&cert) {
                Ok(()) => {}
                Err(StorageError::Divergence {
                    height,
                    ours,
                    certified,
                }) => {
                    tracing::error!(
                        height,
                        ours,
                        certified,
                        "DIVERGENCE: stored root differs from the certified one"
                    );
                }
                Err(e) => {
                    tracing::warn!(height = cert.height, error = %e, "execution certificate not stored")
                }
            }
        }
    }
    Ok(())
}

/// Executes and stores one committed block and reports it. A block already stored (delivered
/// again after a state transfer) is reported from storage; one above a gap is skipped (the
/// node then fetches the certified state).
fn execute_block(
    shared: &Shared,
    executor: &Executor,
    block: &Block,
    certificate: &CommitCertificate,
) -> Result<()> {
    let head = shared.store.head()?.context("no genesis state")?;
    let height = block.height();
    let hash = block.hash();
    if height <= head.height {
        let stored = if height == head.height {
            Some(head.block_hash)
        } else {
            shared.store.block(height)?.map(|b| b.hash())
        };
        if let (Some(stored), Some(roots)) = (stored, shared.store.roots(height)?) {
            if stored == hash {
                let _ = shared.inputs.send(Input::Executed {
                    height,
                    block_hash: hash,
                    roots,
                });
            }
        }
        return Ok(());
    }
    if height > head.height + 1 {
        tracing::warn!(
            height,
            head = head.height,
            "committed block above a gap skipped; the certified state will be fetched"
        );
        return Ok(());
    }
    let done =
        execute::execute_and_store(&shared.store, executor, &shared.genesis, block, certificate)?;
    let m = &shared.metrics;
    Metrics::add(&m.committed_blocks, 1);
    Metrics::add(&m.committed_txs, block.txs.len() as u64);
    let us = (done.exec_ms * 1e3) as u64;
    m.last_exec_us
        .store(us, std::sync::atomic::Ordering::Relaxed);
    Metrics::add(&m.exec_us_total, us);
    shared.update_status(|s| {
        s.height = height;
        s.block_hash = hash.to_string();
        s.state_root = done.roots.state_root.to_string();
    });
    let _ = shared.blocks.send(BlockEvent {
        height,
        hash: hash.to_string(),
        txs: block.txs.len(),
        ok_txs: done.ok_txs,
        state_root: done.roots.state_root.to_string(),
        timestamp_ms: block.header.timestamp_ms,
        view: certificate.view,
        exec_ms: done.exec_ms,
    });
    tracing::info!(
        height,
        txs = block.txs.len(),
        root = %done.roots.state_root.short(),
        exec_ms = format!("{:.1}", done.exec_ms),
        "committed"
    );
    let _ = shared.inputs.send(Input::Executed {
        height,
        block_hash: hash,
        roots: done.roots,
    });
    Ok(())
}
