//! Answers to peers' catch-up requests: the stored blocks and their commit certificates from
//! the height asked, as many as fit one bounded answer.

use super::outbox::send;
use super::shared::{Metrics, Shared};
use lanes_consensus::messages::{CertifiedBlock, Message};
use lanes_types::codec::Encode;

/// Most bytes of blocks in one catch-up answer.
const MAX_SYNC_BYTES: usize = 8 << 20;

/// The blocks of one catch-up answer, taken in order from `blocks` while the encoded answer
/// (measured exactly) stays within `budget` bytes; the first block goes alone when it exceeds
/// the budget but fits a `frame`. `Err` carries the size of a first block that fits no frame.
fn sync_reply(
    blocks: impl IntoIterator<Item = CertifiedBlock>,
    budget: usize,
    frame: usize,
) -> Result<Vec<CertifiedBlock>, usize> {
    let mut bytes = Message::SyncResponse(Vec::new()).to_bytes().len();
    let mut reply = Vec::new();
    for block in blocks {
        let size = block.to_bytes().len();
        let limit = if reply.is_empty() {
            frame
        } else {
            budget.min(frame)
        };
        match bytes.checked_add(size) {
            Some(total) if total <= limit => bytes = total,
            _ if reply.is_empty() => return Err(size),
            _ => break,
        }
        reply.push(block);
    }
    Ok(reply)
}

/// Answers a catch-up request with the stored blocks `from..=to_height`, as many as fit
/// [`MAX_SYNC_BYTES`].
pub fn serve_sync(shared: &Shared, to: u32, from: u64, to_height: u64) {
    let stored = (from..=to_height).map_while(|height| {
        match (
            shared.store.block(height),
            shared.store.commit_certificate(height),
        ) {
            (Ok(Some(block)), Ok(Some(certificate))) => Some(CertifiedBlock { block, certificate }),
            _ => None,
        }
    });
    match sync_reply(stored, MAX_SYNC_BYTES, shared.max_frame) {
        // An empty answer tells the requester we no longer have the blocks it needs (they were
        // pruned): it then fetches the certified state instead.
        Ok(blocks) => send(shared, Some(to), &Message::SyncResponse(blocks)),
        Err(bytes) => {
            // Genesis validation makes a full block fit a frame, so this is a bug; an empty
            // answer would wrongly say the block was pruned.
            Metrics::add(&shared.metrics.unsendable_messages, 1);
            tracing::error!(
                to,
                height = from,
                bytes,
                max_frame = shared.max_frame,
                "a stored block does not fit a network frame: catch-up request not answered"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lanes_types::{
        payload_digest, Block, BlockHeader, Bytes, CommitCertificate, Hash, Signature,
        ValidatorSignature,
    };

    /// A certified block at `height` carrying one transaction of `tx_bytes` bytes.
    pub(crate) fn certified(height: u64, tx_bytes: usize) -> CertifiedBlock {
        let txs = vec![Bytes(vec![7; tx_bytes])];
        let block = Block {
            header: BlockHeader {
                chain_id: "driver-test".into(),
                height,
                parent: Hash::ZERO,
                view: 0,
                proposer: 0,
                timestamp_ms: 0,
                payload_digest: payload_digest(&txs),
            },
            txs,
        };
        let certificate = CommitCertificate {
            view: 0,
            height,
            block_hash: block.hash(),
            signatures: (0..3)
                .map(|v| ValidatorSignature {
                    validator: v,
                    signature: Signature([v as u8; 64]),
                })
                .collect(),
        };
        CertifiedBlock { block, certificate }
    }

    fn encoded_len(blocks: &[CertifiedBlock]) -> usize {
        Message::SyncResponse(blocks.to_vec()).to_bytes().len()
    }

    #[test]
    fn a_catch_up_answer_never_exceeds_its_budget_and_holds_every_block_that_fits() {
        let (budget, frame) = (10_000, 20_000);
        for tx_bytes in [100, 2_900, 3_000, 3_300, 4_900, 5_000] {
            let blocks: Vec<_> = (1..=10).map(|h| certified(h, tx_bytes)).collect();
            let reply = sync_reply(blocks.clone(), budget, frame).expect("fits a frame");
            let len = encoded_len(&reply);
            assert!(len <= budget, "tx {tx_bytes}: {len} bytes over {budget}");
            assert!(!reply.is_empty(), "tx {tx_bytes}");
            assert_eq!(reply, blocks[..reply.len()], "in order, from the first");
            if let Some(next) = blocks.get(reply.len()) {
                let more = encoded_len(&[reply.clone(), vec![next.clone()]].concat());
                assert!(more > budget, "tx {tx_bytes}: one more block would fit");
            }
        }
    }

    #[test]
    fn a_block_above_the_budget_goes_alone_if_it_fits_a_frame() {
        let (budget, frame) = (10_000, 20_000);
        let blocks = vec![certified(1, 15_000), certified(2, 10)];
        let reply = sync_reply(blocks.clone(), budget, frame).expect("fits a frame");
        assert_eq!(reply, blocks[..1]);
        assert!(encoded_len(&reply) <= frame);
        // Exactly a frame: still goes. One byte more: refused with its size.
        let overhead = encoded_len(&[certified(1, 0)]);
        let exact = certified(1, frame - overhead);
        assert_eq!(encoded_len(std::slice::from_ref(&exact)), frame);
        assert_eq!(sync_reply([exact], budget, frame).map(|r| r.len()), Ok(1));
        let over = certified(1, frame - overhead + 1);
        let size = over.to_bytes().len();
        assert_eq!(sync_reply([over], budget, frame), Err(size));
        assert_eq!(sync_reply([], budget, frame), Ok(Vec::new()));
    }

    #[test]
    fn the_genesis_frame_limit_is_the_networks_and_bounds_a_full_block() {
        assert_eq!(
            lanes_types::MAX_FRAME_BYTES,
            lanes_net::DEFAULT_MAX_FRAME as u64,
            "lanes_types::MAX_FRAME_BYTES must follow lanes_net::DEFAULT_MAX_FRAME"
        );
        // The largest block genesis allows for (3 txs of 200 bytes, 7 validators), with the
        // longest chain id and every signature, fits the bound genesis validation uses.
        let (txs, tx_bytes, n) = (3usize, 200usize, 7usize);
        let mut full = certified(u64::MAX, tx_bytes);
        full.block.header.chain_id = "c".repeat(64);
        full.block.header.view = u64::MAX;
        full.block.txs = vec![Bytes(vec![1; tx_bytes]); txs];
        full.certificate.signatures = (0..n as u32)
            .map(|v| ValidatorSignature {
                validator: v,
                signature: Signature([1; 64]),
            })
            .collect();
        let bound = (txs * (tx_bytes + 4)) as u64 + lanes_types::certified_block_overhead(n);
        let view = u64::MAX;
        let block = full.block.clone();
        for message in [
            Message::SyncResponse(vec![full]),
            Message::PrePrepare { view, block },
        ] {
            let len = message.to_bytes().len() as u64;
            assert!(len <= bound, "{}: {len} > {bound}", message.kind());
        }
    }
}
