//! What a byzantine node puts on the wire in place of each message its (honest) replica code
//! sends. The messages themselves are built by [`crate::byzantine`].

use super::{sim_sign, Byzantine, Sim, CHAIN_ID};
use crate::byzantine as evil;
use crate::messages::Message;
use lanes_types::codec::Encode;
use rand::Rng;

impl Sim {
    /// The bytes byzantine `node` sends to validator `to` instead of `message`.
    pub(super) fn byzantine_out(
        &mut self,
        node: u32,
        b: Byzantine,
        to: u32,
        message: &Message,
    ) -> Vec<Vec<u8>> {
        let me = self.nodes[node as usize].ctx.me;
        let key = self.keys[me as usize];
        let sign = |bytes: &[u8]| sim_sign(&key, bytes);
        let n = self.n;
        match (b, message) {
            (Byzantine::EquivocatingPrimary, m) => {
                evil::equivocate(m, to, n, me, CHAIN_ID, sign).unwrap_or_else(|| vec![m.to_bytes()])
            }
            (Byzantine::ConflictingVoter, m) => {
                evil::conflict(m, to, n, CHAIN_ID, sign).unwrap_or_else(|| vec![m.to_bytes()])
            }
            (Byzantine::Garbage, message) => self.garbage(message),
            (Byzantine::Selective { mask }, m) if evil::is_signed_by_sender(m) => {
                if evil::in_mask(to, mask) {
                    vec![m.to_bytes()]
                } else {
                    Vec::new()
                }
            }
            (Byzantine::Withholding, m) if evil::is_vote(m) => Vec::new(),
            (Byzantine::Replayer, m) => self.replay(node, m),
            (Byzantine::Oversized, m) => self.oversized(m),
            (_, message) => vec![message.to_bytes()],
        }
    }

    fn garbage(&mut self, message: &Message) -> Vec<Vec<u8>> {
        let mut out = vec![message.to_bytes()];
        if self.rng.gen_bool(0.3) {
            let len = self.rng.gen_range(0..200);
            out.push((0..len).map(|_| self.rng.gen()).collect());
        }
        if self.rng.gen_bool(0.3) {
            out.push(evil::corrupted(message));
        }
        if self.rng.gen_bool(0.1) {
            out.push(evil::forged_new_view(self.rng.gen_range(1..1000)).to_bytes());
        }
        out
    }

    /// The message, and sometimes blocks of the node's chain nobody asked for.
    fn replay(&mut self, node: u32, message: &Message) -> Vec<Vec<u8>> {
        let mut out = vec![message.to_bytes()];
        let len = self.nodes[node as usize].chain.len();
        if len > 0 && self.rng.gen_bool(0.2) {
            let start = self.rng.gen_range(0..len);
            let count = self.rng.gen_range(1..=4);
            let chain = &self.nodes[node as usize].chain;
            out.push(evil::replayed_blocks(chain, start, count).to_bytes());
        }
        out
    }

    /// The message, and sometimes one message at the frame limit and one just above it.
    fn oversized(&mut self, message: &Message) -> Vec<Vec<u8>> {
        let mut out = vec![message.to_bytes()];
        if self.rng.gen_bool(0.02) {
            let max = self.cfg.max_message_bytes;
            out.push(evil::message_of_size(max));
            out.push(evil::message_of_size(max + 1));
        }
        out
    }
}
