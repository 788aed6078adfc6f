//! The two threads around the replica: the consensus thread that owns the [`Replica`] and
//! carries out its actions in order, and the executor thread that executes and stores committed
//! blocks. Neither runs on tokio's workers; the executor has its own rayon pool.

use super::ledger;
use super::shared::{BlockEvent, Input, Metrics, Shared};
use anyhow::Result;
use lanes_consensus::messages::{CertifiedBlock, Message};
use lanes_consensus::{Action, Alarm, Context, Ed25519Keys, Event, Replica, SafetyWrite};
use lanes_executor::tx::{check_stateless_unsigned, verify_signatures};
use lanes_executor::Executor;
use lanes_storage::{StorageError, Store};
use lanes_types::codec::Encode;
use lanes_types::{Block, CheckpointCertificate, CommitCertificate, Genesis, Hash, Signature};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds on a monotonic clock that starts at the Unix time of the node's start.
#[derive(Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            base_ms,
            start: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, never going backwards.
    pub fn now(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The node's [`Context`]: ed25519 keys, the executor's stateless checks, the transaction index.
pub struct NodeContext {
    /// Signing and verification.
    pub keys: Ed25519Keys,
    /// Chain id and parameters for the stateless checks.
    pub genesis: Genesis,
    /// Storage, for the transaction index.
    pub store: Arc<Store>,
}

impl Context for NodeContext {
    fn sign(&self, message: &[u8]) -> Signature {
        self.keys.sign(message)
    }

    fn verify(&self, validator: u32, message: &[u8], signature: &Signature) -> bool {
        self.keys.verify(validator, message, signature)
    }

    fn verify_all(&self, message: &[u8], signatures: &[lanes_types::ValidatorSignature]) -> bool {
        self.keys.verify_all(message, signatures)
    }

    fn check_block_txs(
        &self,
        block: &Block,
        verified: &dyn Fn(usize) -> bool,
    ) -> Result<(), String> {
        let mut unverified = Vec::new();
        for (i, raw) in block.txs.iter().enumerate() {
            let stx = check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params)
                .map_err(|e| e.to_string())?;
            if !verified(i) {
                unverified.push(stx);
            }
        }
        verify_signatures(&unverified).map_err(|bad| format!("bad signatures at {bad:?}"))
    }

    fn check_txs(&self, txs: &[lanes_types::Bytes]) -> Vec<bool> {
        let decoded: Vec<Option<_>> = txs
            .iter()
            .map(|raw| {
                check_stateless_unsigned(raw, &self.genesis.chain_id, &self.genesis.params).ok()
            })
            .collect();
        let candidates: Vec<_> = decoded.iter().flatten().cloned().collect();
        let bad: Vec<usize> = verify_signatures(&candidates).err().unwrap_or_default();
        let mut k = 0;
        decoded
            .iter()
            .map(|d| match d {
                Some(_) => {
                    let ok = !bad.contains(&k);
                    k += 1;
                    ok
                }
                None => false,
            })
            .collect()
    }

    fn tx_committed(&self, hash: &Hash) -> bool {
        matches!(self.store.tx_location(hash), Ok(Some(_)))
    }
}

/// Work for the executor thread.
pub enum ExecJob {
    /// Execute and store a committed block.
    Block(Block, CommitCertificate),
    /// Store an execution certificate (once its block is stored).
    Certificate(CheckpointCertificate),
}

/// Most bytes of blocks in one catch-up answer.
const MAX_SYNC_BYTES: usize = 8 << 20;

/// Runs the consensus thread until [`Input::Shutdown`].
pub fn consensus_loop(
    mut replica: Replica<NodeContext>,
    inputs: Receiver<Input>,
    shared: Arc<Shared>,
    exec: Sender<ExecJob>,
    clock: Clock,
) -> Result<()> {
    let mut timer: Option<u64> = None;
    loop {
        let wait = timer.map_or(1_000, |t| t.saturating_sub(clock.now()).min(1_000));
        let input = match inputs.recv_timeout(Duration::from_millis(wait)) {
            Ok(Input::Shutdown) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
        };
        let now = clock.now();
        let mut actions = match input {
            None => Vec::new(),
            Some(Input::Net { from, bytes }) => replica.handle(Event::Message { from, bytes }, now),
            Some(Input::Submit { txs, reply }) => {
                let (result, actions) = replica.submit_batch(txs, now);
                let _ = reply.send(result);
                actions
            }
            Some(Input::Executed {
                height,
                block_hash,
                state_root,
            }) => replica.handle(
                Event::Executed {
                    height,
                    block_hash,
                    state_root,
                },
                now,
            ),
            Some(Input::Shutdown) => unreachable!("handled above"),
        };
        if timer.is_some_and(|t| t <= now) {
            timer = None;
            actions.extend(replica.handle(Event::Timer, now));
        }
        for action in actions {
            carry_out(action, &shared, &exec, &mut timer)?;
        }
        let stats = replica.stats();
        shared
            .metrics
            .view_changes
            .store(stats.view_changes, std::sync::atomic::Ordering::Relaxed);
        shared.metrics.rejected_messages.store(
            stats.rejected_messages,
            std::sync::atomic::Ordering::Relaxed,
        );
        shared.update_status(|s| {
            s.view = replica.view();
            s.primary = replica.primary();
            s.in_view_change = replica.in_view_change();
            s.certified_height = replica.stable_height();
            s.mempool = replica.mempool_len();
            s.diverged_at = replica.diverged_at();
        });
    }
}

/// Carries out one action. Persist is synced before returning, so every later action (a vote)
/// leaves only after the record that forbids a conflicting one is durable.
fn carry_out(
    action: Action,
    shared: &Shared,
    exec: &Sender<ExecJob>,
    timer: &mut Option<u64>,
) -> Result<()> {
    match action {
        Action::Persist(writes) => persist(&shared.store, &writes)?,
        Action::Send { to, message } => {
            if let Err(e) = shared.net.send(to, message.to_bytes().into()) {
                tracing::debug!(to, error = %e, "send failed");
            }
        }
        Action::Broadcast(message) => {
            if let Err(e) = shared.net.broadcast(message.to_bytes().into()) {
                tracing::debug!(error = %e, "broadcast failed");
            }
        }
        Action::Deliver { block, certificate } => {
            // The backlog is bounded by consensus itself: nothing is proposed beyond the
            // window above the last execution certificate, and certificates need execution.
            exec.send(ExecJob::Block(block, certificate))
                .map_err(|_| anyhow::anyhow!("the executor thread stopped"))?;
        }
        Action::Certified(cert) => {
            exec.send(ExecJob::Certificate(cert))
                .map_err(|_| anyhow::anyhow!("the executor thread stopped"))?;
        }
        Action::ServeSync {
            to,
            from,
            to_height,
        } => serve_sync(shared, to, from, to_height),
        Action::SetTimer { at } => *timer = Some(at),
        Action::Alarm(alarm) => match alarm {
            Alarm::Divergence {
                height,
                ours,
                certified,
            } => {
                Metrics::add(&shared.metrics.divergence_alarms, 1);
                tracing::error!(height, %ours, %certified, "DIVERGENCE: a quorum certified another state root; this node stops acknowledging blocks");
            }
            Alarm::Fork { height } => {
                tracing::error!(
                    height,
                    "a decided block does not extend our chain: more than f faulty validators"
                );
            }
            Alarm::Equivocation {
                validator,
                view,
                height,
            } => {
                Metrics::add(&shared.metrics.equivocation_alarms, 1);
                tracing::warn!(validator, view, height, "equivocation seen");
            }
        },
    }
    Ok(())
}

/// The three height-keyed record kinds of `lanes_consensus::safety`.
const HEIGHT_KEYED: [u8; 3] = [b'p', b'c', b'q'];

fn persist(store: &Store, writes: &[SafetyWrite]) -> Result<()> {
    let mut puts: Vec<(&[u8], &[u8])> = Vec::new();
    let mut ranges = Vec::new();
    for w in writes {
        match w {
            SafetyWrite::Put { key, value } => puts.push((key, value)),
            SafetyWrite::DeleteThrough { height } => {
                for kind in HEIGHT_KEYED {
                    let mut from = vec![kind];
                    from.extend_from_slice(&0u64.to_be_bytes());
                    let mut to = vec![kind];
                    to.extend_from_slice(&height.saturating_add(1).to_be_bytes());
                    ranges.push((from, to));
                }
            }
        }
    }
    store
        .safety_write(&puts, &ranges)
        .map_err(|e| anyhow::anyhow!("cannot persist the consensus safety state: {e}"))
}

fn serve_sync(shared: &Shared, to: u32, from: u64, to_height: u64) {
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for height in from..=to_height {
        let (Ok(Some(block)), Ok(Some(certificate))) = (
            shared.store.block(height),
            shared.store.commit_certificate(height),
        ) else {
            break;
        };
        bytes += block.txs.iter().map(|t| t.len() + 4).sum::<usize>() + 512;
        blocks.push(CertifiedBlock { block, certificate });
        if bytes > MAX_SYNC_BYTES {
            break;
        }
    }
    if !blocks.is_empty() {
        let message = Message::SyncResponse(blocks).to_bytes();
        let _ = shared.net.send(to, message.into());
    }
}

/// Runs the executor thread: executes and stores committed blocks in order, stores execution
/// certificates once their block is stored, and reports each stored block to consensus.
pub fn executor_loop(
    jobs: Receiver<ExecJob>,
    shared: Arc<Shared>,
    executor: Executor,
) -> Result<()> {
    let mut pending: BTreeMap<u64, CheckpointCertificate> = BTreeMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            ExecJob::Certificate(cert) => {
                pending.insert(cert.height, cert);
            }
            ExecJob::Block(block, certificate) => {
                let done = ledger::execute_and_store(
                    &shared.store,
                    &executor,
                    &shared.genesis,
                    &block,
                    &certificate,
                )?;
                let m = &shared.metrics;
                Metrics::add(&m.committed_blocks, 1);
                Metrics::add(&m.committed_txs, block.txs.len() as u64);
                let us = (done.exec_ms * 1e3) as u64;
                m.last_exec_us
                    .store(us, std::sync::atomic::Ordering::Relaxed);
                Metrics::add(&m.exec_us_total, us);
                let hash = block.hash();
                shared.update_status(|s| {
                    s.height = block.height();
                    s.block_hash = hash.to_string();
                    s.state_root = done.state_root.to_string();
                });
                let _ = shared.blocks.send(BlockEvent {
                    height: block.height(),
                    hash: hash.to_string(),
                    txs: block.txs.len(),
                    ok_txs: done.ok_txs,
                    state_root: done.state_root.to_string(),
                    timestamp_ms: block.header.timestamp_ms,
                    view: certificate.view,
                    exec_ms: done.exec_ms,
                });
                tracing::info!(
                    height = block.height(),
                    txs = block.txs.len(),
                    root = %done.state_root.short(),
                    exec_ms = format!("{:.1}", done.exec_ms),
                    "committed"
                );
                let _ = shared.inputs.send(Input::Executed {
                    height: block.height(),
                    block_hash: hash,
                    state_root: done.state_root,
                });
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
