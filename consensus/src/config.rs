//! The parameters of a replica, and the bound on the size of anything it sends.

use crate::replica::{FORWARD_FLUSH_BYTES, MAX_FORWARD_TXS};
use crate::MempoolLimits;
use lanes_types::codec::Encode;
use lanes_types::{BlockHeader, Genesis, Hash, ValidatorSet};

/// Parameters of a replica, normally derived from genesis with [`Config::from_genesis`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain id every block and signature is bound to.
    pub chain_id: String,
    /// The validator set (n = 3f+1 or more).
    pub validators: ValidatorSet,
    /// This replica's index in `validators`.
    pub me: u32,
    /// Heights that may be in flight above the last stable checkpoint.
    pub window: u64,
    /// Most transactions in a block.
    pub max_block_txs: usize,
    /// Most bytes of transactions in a block.
    pub max_block_bytes: usize,
    /// Most bytes in one transaction.
    pub max_tx_bytes: usize,
    /// The primary cuts a block at most this long after a transaction becomes proposable.
    pub block_interval_ms: u64,
    /// Base view-change timeout; doubles with each view change that makes no progress.
    pub view_timeout_ms: u64,
    /// Cap of the view-change timeout.
    pub max_view_timeout_ms: u64,
    /// Most blocks asked for in one catch-up request.
    pub sync_batch: u64,
    /// Mempool bounds.
    pub mempool: MempoolLimits,
}

impl Config {
    /// The configuration of validator `me` under `genesis`.
    pub fn from_genesis(genesis: &Genesis, me: u32) -> Config {
        let p = &genesis.params;
        Config {
            chain_id: genesis.chain_id.clone(),
            validators: genesis.validator_set(),
            me,
            window: p.watermark_window,
            max_block_txs: p.max_block_txs as usize,
            max_block_bytes: (p.max_block_txs as usize)
                .saturating_mul(p.max_tx_bytes as usize)
                .min(32 << 20),
            max_tx_bytes: p.max_tx_bytes as usize,
            block_interval_ms: p.block_interval_ms,
            view_timeout_ms: p.view_timeout_ms,
            max_view_timeout_ms: p.view_timeout_ms.saturating_mul(64),
            sync_batch: 64,
            mempool: MempoolLimits::default(),
        }
    }

    /// Most prepared certificates one VIEW-CHANGE carries (heights in flight are bounded by the
    /// window; restarts and catch-up can leave a few more).
    pub fn max_prepared_in_view_change(&self) -> u64 {
        4 * self.window
    }

    /// An upper bound on the encoded size of any message a replica with this configuration
    /// sends (PRE-PREPARE, votes, CHECKPOINT, VIEW-CHANGE, NEW-VIEW, forwarded transactions,
    /// block replies). Catch-up answers ([`Message::SyncResponse`](crate::Message::SyncResponse)) are built by the node,
    /// which bounds them itself. The node checks this against the network's frame limit.
    pub fn max_message_bytes(&self) -> usize {
        let n = self.validators.len();
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height: 0,
            parent: Hash::ZERO,
            view: 0,
            proposer: 0,
            timestamp_ms: 0,
            payload_digest: Hash::ZERO,
        }
        .to_bytes()
        .len();
        let signatures = 4 + n * (4 + 64);
        let checkpoint_cert = 8 + 32 + 32 + signatures;
        let prepared_cert = 8 + header + signatures;
        let max_prepared = self.max_prepared_in_view_change() as usize;
        let view_change = 8 + 4 + 1 + checkpoint_cert + 4 + max_prepared * prepared_cert + 64;
        let new_view = 8 + 4 + n * view_change + 64;
        let block = header + 4 + self.max_block_txs * 4 + self.max_block_bytes;
        let forward = 4 + FORWARD_FLUSH_BYTES + self.max_tx_bytes + MAX_FORWARD_TXS * 4;
        1 + [8 + block, view_change, new_view, forward]
            .into_iter()
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn check(&self) {
        assert!(
            self.validators.len() >= 4,
            "PBFT needs at least 4 validators"
        );
        assert!((self.me as usize) < self.validators.len(), "me not in set");
        assert!(self.window >= 1 && self.max_block_txs >= 1 && self.sync_batch >= 1);
        assert!(self.view_timeout_ms >= 1 && self.max_view_timeout_ms >= self.view_timeout_ms);
    }
}
