//! Byzantine behaviours for fault-injection tests. Compiled only with `--features byzantine`
//! (never in a default build) and switched on by `lanes node --byzantine MODE`.
//!
//! The replica itself stays honest: these behaviours rewrite what it sends (and, for a wrong
//! state or receipts root, what the executor reports to it), the way the consensus simulator's
//! byzantine validators do (`lanes_consensus::sim`). The driver calls [`Byzantine::outgoing`]
//! for every message and [`Byzantine::roots`] for every executed block; nothing else changes.

use lanes_consensus::byzantine as evil;
use lanes_consensus::messages::Message;
use lanes_types::codec::Encode;
use lanes_types::{ExecRoots, Hash, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a byzantine node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// As primary, proposes a different block to the upper half of the validators (and votes
    /// for it there).
    Equivocate,
    /// Reports (and so signs CHECKPOINTs over) a wrong state root after every block.
    WrongRoot,
    /// Reports the right state root but a wrong receipts root after every block (as if its
    /// receipts differed).
    WrongReceipts,
    /// Sends PREPARE and COMMIT votes for a block that does not exist to the upper half.
    Conflict,
    /// Sends nothing at all (but keeps receiving and executing).
    Silent,
    /// Behaves, and also sends random bytes, votes with corrupted signatures and forged
    /// NEW-VIEWs.
    Garbage,
}

/// The state of a byzantine node's message rewriting.
pub struct Byzantine {
    mode: Mode,
    key: SecretKey,
    chain_id: String,
    me: u32,
    n: u32,
    /// Seeded by the validator index: a byzantine run repeats its garbage.
    rng: StdRng,
}

impl Byzantine {
    /// A rewriter for validator `me` of `n`, signing with `key` on `chain_id`.
    pub fn new(mode: Mode, key: SecretKey, chain_id: String, me: u32, n: u32) -> Self {
        tracing::warn!(?mode, "BYZANTINE MODE: this node misbehaves on purpose");
        Byzantine {
            mode,
            key,
            chain_id,
            me,
            n,
            rng: StdRng::seed_from_u64(u64::from(me)),
        }
    }

    /// The roots to report for an executed block.
    pub fn roots(&self, roots: ExecRoots) -> ExecRoots {
        let lie = |tag, root: Hash| Hash::tagged(tag, &root.0);
        match self.mode {
            Mode::WrongRoot => ExecRoots {
                state_root: lie("lanes/byzantine-wrong-root", roots.state_root),
                ..roots
            },
            Mode::WrongReceipts => ExecRoots {
                receipts_root: lie("lanes/byzantine-wrong-receipts", roots.receipts_root),
                ..roots
            },
            _ => roots,
        }
    }

    /// What to send instead of `message` to `to` (`None`: every other validator), as
    /// (receiver, bytes) pairs.
    pub fn outgoing(&mut self, to: Option<u32>, message: &Message) -> Vec<(u32, Vec<u8>)> {
        let targets: Vec<u32> = match to {
            Some(t) => vec![t],
            None => (0..self.n).filter(|&i| i != self.me).collect(),
        };
        let mut out = Vec::new();
        for t in targets {
            for bytes in self.rewrite(t, message) {
                out.push((t, bytes));
            }
        }
        out
    }

    fn rewrite(&mut self, to: u32, message: &Message) -> Vec<Vec<u8>> {
        let (me, n, key, chain_id) = (self.me, self.n, &self.key, self.chain_id.as_str());
        let sign = |bytes: &[u8]| key.sign(bytes);
        match (self.mode, message) {
            (Mode::Silent, _) => Vec::new(),
            (Mode::Equivocate, m) => {
                evil::equivocate(m, to, n, me, chain_id, sign).unwrap_or_else(|| vec![m.to_bytes()])
            }
            (Mode::Conflict, m) => {
                evil::conflict(m, to, n, chain_id, sign).unwrap_or_else(|| vec![m.to_bytes()])
            }
            (Mode::Garbage, message) => {
                let mut out = vec![message.to_bytes()];
                let len = self.rng.gen_range(0..300);
                out.push((0..len).map(|_| self.rng.gen()).collect());
                out.push(evil::corrupted(message));
                if self.rng.gen_ratio(1, 7) {
                    out.push(evil::forged_new_view(self.rng.gen_range(1..1000)).to_bytes());
                }
                out
            }
            (_, message) => vec![message.to_bytes()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_consensus::messages::{Phase, Vote};
    use lanes_types::codec::Decode;
    use lanes_types::Signature;

    fn vote(h: u64) -> Vote {
        Vote {
            view: 0,
            height: h,
            block_hash: Hash::tagged("t", b"x"),
            validator: 1,
            signature: Signature([1; 64]),
        }
    }

    fn byz(mode: Mode) -> Byzantine {
        Byzantine::new(mode, SecretKey::from_label("byz"), "c".into(), 1, 4)
    }

    #[test]
    fn silent_sends_nothing_and_wrong_root_changes_only_the_root() {
        let m = Message::Prepare(vote(3));
        assert!(byz(Mode::Silent).outgoing(None, &m).is_empty());
        let roots = ExecRoots {
            state_root: Hash::tagged("t", b"root"),
            receipts_root: Hash::tagged("t", b"receipts"),
        };
        let wrong = byz(Mode::WrongRoot).roots(roots);
        assert_ne!(wrong.state_root, roots.state_root);
        assert_eq!(wrong.receipts_root, roots.receipts_root);
        let wrong = byz(Mode::WrongReceipts).roots(roots);
        assert_eq!(wrong.state_root, roots.state_root);
        assert_ne!(wrong.receipts_root, roots.receipts_root);
        assert_eq!(byz(Mode::Conflict).roots(roots), roots);
        let out = byz(Mode::WrongRoot).outgoing(None, &m);
        assert_eq!(out.len(), 3, "one copy to each of the 3 others");
        assert!(out.iter().all(|(_, b)| *b == m.to_bytes()));
    }

    #[test]
    fn conflicting_voter_signs_another_hash_for_the_upper_half_only() {
        let key = SecretKey::from_label("byz");
        let m = Message::Prepare(vote(3));
        let out = byz(Mode::Conflict).outgoing(None, &m);
        let targets: Vec<u32> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(targets, vec![0, 2, 3]);
        assert_eq!(out[0].1, m.to_bytes());
        for (_, bytes) in &out[1..] {
            let Message::Prepare(v) = Message::from_bytes(bytes).unwrap() else {
                panic!("not a prepare")
            };
            assert_ne!(v.block_hash, vote(3).block_hash);
            let signed = v.signed_bytes(Phase::Prepare, "c");
            key.public_key().verify(&signed, &v.signature).unwrap();
        }
    }

    #[test]
    fn garbage_adds_undecodable_or_corrupted_messages() {
        let m = Message::Prepare(vote(3));
        let out = byz(Mode::Garbage).outgoing(Some(2), &m);
        assert!(out.len() >= 3);
        assert_eq!(out[0].1, m.to_bytes());
        assert_ne!(out[2].1, m.to_bytes());
    }
}
