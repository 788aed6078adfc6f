//! Client transactions: admission into the mempool and forwarding to the other validators in
//! batches (flushed by size or after a quarter of the block interval).

use crate::context::Context;
use crate::mempool::AdmitError;
use crate::messages::Message;
use crate::replica::{Reject, Replica, FORWARD_FLUSH_BYTES, MAX_FORWARD_TXS};
use lanes_types::{tx_hash, Bytes, Hash};

/// Client transactions admitted here, waiting to be forwarded to the other validators.
///
/// Status transitions: Empty -> Buffering when a transaction is admitted (the flush timer is
/// armed, a quarter of the block interval); Buffering -> Empty when flushed: at
/// [`MAX_FORWARD_TXS`] transactions or [`FORWARD_FLUSH_BYTES`] bytes at once, otherwise when
/// the timer fires.
#[derive(Debug, Default)]
pub(crate) struct Forwarder {
    /// The transactions buffered, in arrival order.
    pub txs: Vec<Bytes>,
    /// Their size in bytes.
    pub bytes: usize,
    /// When to flush them.
    pub deadline: Option<u64>,
}

impl Forwarder {
    /// Buffers `tx`; true if the buffer is full and must be flushed now.
    pub fn push(&mut self, tx: Bytes) -> bool {
        self.bytes += tx.len();
        self.txs.push(tx);
        self.txs.len() >= MAX_FORWARD_TXS || self.bytes >= FORWARD_FLUSH_BYTES
    }

    /// Arms the flush timer at `at` unless it is armed.
    pub fn arm(&mut self, at: u64) {
        if self.deadline.is_none() {
            self.deadline = Some(at);
        }
    }

    /// Whether the flush timer expired at `now`.
    pub fn due(&self, now: u64) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// Empties the buffer: the transactions to send, if any.
    pub fn take(&mut self) -> Option<Vec<Bytes>> {
        self.deadline = None;
        self.bytes = 0;
        (!self.txs.is_empty()).then(|| std::mem::take(&mut self.txs))
    }
}

impl<C: Context> Replica<C> {
    /// A client transaction: admitted to the mempool if new here, and buffered for forwarding.
    pub(crate) fn admit_client_tx(&mut self, tx: Bytes) -> Result<Hash, AdmitError> {
        if tx.len() > self.cfg.max_tx_bytes {
            return Err(AdmitError::TooLarge);
        }
        let hash = tx_hash(&tx);
        if self.pool.mempool.is_rejected(&hash) {
            return Err(AdmitError::Rejected);
        }
        if self.ctx.tx_committed(&hash) {
            return Err(AdmitError::AlreadyCommitted);
        }
        let Some(meta) = self.ctx.tx_meta(&tx) else {
            self.pool.mempool.reject(hash);
            return Err(AdmitError::Rejected);
        };
        let admitted = self.pool.admit(tx.clone(), meta)?;
        self.stats.displaced_txs += admitted.removed.len() as u64;
        if self.forwarder.push(tx) {
            self.flush_forward();
        } else {
            let delay = (self.cfg.block_interval_ms / 4).max(1);
            self.forwarder.arm(self.now + delay);
        }
        Ok(hash)
    }

    /// Sends the buffered transactions to the other validators.
    pub(crate) fn flush_forward(&mut self) {
        if let Some(txs) = self.forwarder.take() {
            self.broadcast(Message::Txs(txs));
        }
    }

    /// Transactions another validator forwarded: the new ones are checked and admitted; those
    /// the checks refuse are remembered as rejected, so their copies cost one lookup.
    pub(crate) fn on_txs(&mut self, txs: Vec<Bytes>) -> Result<(), Reject> {
        if txs.len() > MAX_FORWARD_TXS {
            return Err("too many forwarded transactions");
        }
        // Only what is new here is checked (copies arrive from every validator).
        let fresh: Vec<Bytes> = txs
            .into_iter()
            .filter(|tx| {
                let h = tx_hash(tx);
                let m = &self.pool.mempool;
                !m.contains(&h) && !m.is_committed(&h) && !m.is_rejected(&h)
            })
            .collect();
        let verdicts = self.ctx.check_txs(&fresh);
        for (tx, meta) in fresh.into_iter().zip(verdicts) {
            let hash = tx_hash(&tx);
            let Some(meta) = meta.filter(|_| tx.len() <= self.cfg.max_tx_bytes) else {
                self.stats.rejected_txs += 1;
                self.pool.mempool.reject(hash);
                continue;
            };
            if self.ctx.tx_committed(&hash) {
                continue;
            }
            if let Ok(admitted) = self.pool.admit(tx, meta) {
                self.stats.displaced_txs += admitted.removed.len() as u64;
            }
        }
        Ok(())
    }
}
