//! Client transactions: admission into the mempool and forwarding to the other validators in
//! batches (flushed by size or after a quarter of the block interval).

use crate::context::Context;
use crate::mempool::AdmitError;
use crate::messages::Message;
use crate::replica::{Reject, Replica, FORWARD_FLUSH_BYTES, MAX_FORWARD_TXS};
use lanes_types::{tx_hash, Bytes, Hash};

impl<C: Context> Replica<C> {
    pub(crate) fn admit_client_tx(&mut self, tx: Bytes) -> Result<Hash, AdmitError> {
        if tx.len() > self.cfg.max_tx_bytes {
            return Err(AdmitError::TooLarge);
        }
        if self.ctx.tx_committed(&tx_hash(&tx)) {
            return Err(AdmitError::AlreadyCommitted);
        }
        let hash = self.mempool.admit(tx.clone())?;
        self.forward_bytes += tx.len();
        self.forward.push(tx);
        if self.forward.len() >= MAX_FORWARD_TXS || self.forward_bytes >= FORWARD_FLUSH_BYTES {
            self.flush_forward();
        } else if self.forward_deadline.is_none() {
            self.forward_deadline = Some(self.now + (self.cfg.block_interval_ms / 4).max(1));
        }
        Ok(hash)
    }

    pub(crate) fn flush_forward(&mut self) {
        self.forward_deadline = None;
        self.forward_bytes = 0;
        if !self.forward.is_empty() {
            let txs = std::mem::take(&mut self.forward);
            self.broadcast(Message::Txs(txs));
        }
    }

    pub(crate) fn on_txs(&mut self, txs: Vec<Bytes>) -> Result<(), Reject> {
        if txs.len() > MAX_FORWARD_TXS {
            return Err("too many forwarded transactions");
        }
        // Only what is new here is checked (copies arrive from every validator).
        let fresh: Vec<Bytes> = txs
            .into_iter()
            .filter(|tx| {
                let h = tx_hash(tx);
                !self.mempool.contains(&h) && !self.mempool.is_committed(&h)
            })
            .collect();
        let verdicts = self.ctx.check_txs(&fresh);
        for (tx, ok) in fresh.into_iter().zip(verdicts) {
            if !ok || tx.len() > self.cfg.max_tx_bytes {
                self.stats.rejected_txs += 1;
                continue;
            }
            if self.ctx.tx_committed(&tx_hash(&tx)) {
                continue;
            }
            let _ = self.mempool.admit(tx);
        }
        Ok(())
    }
}
