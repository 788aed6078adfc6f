//! The checker's comparison of certified receipts across nodes: for a sample of acknowledged
//! transactions, every node that answers `certified` in `GET /tx/{hash}` must give the same
//! receipt (its canonical encoding), the same place in the same block and the same certified
//! roots. A certificate is a quorum's word on the block's result, so two certified answers
//! that differ mean a node serves a result nobody certified.
//!
//! Honest nodes must answer: certified, committed (certificate not stored yet), or 404 (block
//! pruned or below an installed snapshot). A 409 (its receipts are not the certified ones) from
//! an honest node is a divergence. Suspects (a byzantine validator, or a node restored after a
//! divergence) may refuse or answer uncertified, but never serve another certified receipt.

use super::history::{NodeApi, Verdict};
use lanes_api::{TxInfo, TxStatus};
use lanes_types::Hash;
use std::collections::BTreeMap;
use std::time::Instant;

/// How often each validator signed a certificate the honest nodes served.
pub type Signers = BTreeMap<u32, usize>;

/// Most acknowledged transactions whose certified receipts the checker compares.
pub const SAMPLE: usize = 200;

/// What a certified answer claims, compared across nodes (the certificate's signers are not:
/// each node may have gathered another quorum).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CertifiedResult {
    height: Option<u64>,
    index: Option<u32>,
    block_hash: Option<String>,
    receipt: String,
    certified_height: u64,
    state_root: String,
    receipts_root: String,
}

impl CertifiedResult {
    /// The claim of `t`, if it says certified; `Err` if it says certified without a receipt
    /// or a certificate.
    fn of(t: &TxInfo) -> Result<Option<(CertifiedResult, Vec<u32>)>, String> {
        if t.status != TxStatus::Certified {
            return Ok(None);
        }
        let (Some(receipt), Some(cert)) = (&t.receipt, &t.certificate) else {
            return Err("certified without a receipt or a certificate".into());
        };
        let result = CertifiedResult {
            height: t.height,
            index: t.index,
            block_hash: t.block_hash.clone(),
            receipt: receipt.encoded.clone(),
            certified_height: cert.height,
            state_root: cert.state_root.clone(),
            receipts_root: cert.receipts_root.clone(),
        };
        Ok(Some((result, cert.signers.clone())))
    }
}

/// Up to `max` of the acknowledged transactions, evenly spread over the run, the last one
/// included.
pub fn sample(acked: &[(Hash, Instant)], max: usize) -> Vec<Hash> {
    if acked.len() <= max {
        return acked.iter().map(|a| a.0).collect();
    }
    let step = acked.len() as f64 / max as f64;
    (1..=max)
        .map(|k| acked[((k as f64 * step).ceil() as usize).min(acked.len()) - 1].0)
        .collect()
}

/// Compares the certified answers of `honest` and `suspects` for every transaction of `txs`,
/// recording the first difference (or an honest 409) in `v`, how many transactions at least
/// one node answered certified (`v.receipts_checked`), how often each validator signed the
/// honest nodes' certificates (`v.signed_by`) and how many certified answers suspects gave
/// (`v.suspect_certified`).
pub fn check(
    cluster: &impl NodeApi,
    honest: &[usize],
    suspects: &[usize],
    txs: &[Hash],
    v: &mut Verdict,
) {
    for hash in txs {
        let mut first: Option<(usize, CertifiedResult)> = None;
        let nodes = honest.iter().map(|&i| (i, true));
        for (i, is_honest) in nodes.chain(suspects.iter().map(|&i| (i, false))) {
            let answer = match cluster.tx(i, hash) {
                Ok(t) => t,
                Err(Some(409)) if is_honest => {
                    v.fail(format!(
                        "honest node {i} says its receipt of {hash} is not the certified one"
                    ));
                    continue;
                }
                Err(_) => continue,
            };
            let (result, signers) = match CertifiedResult::of(&answer) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    v.fail(format!("node {i} answers {hash}: {e}"));
                    continue;
                }
            };
            if is_honest {
                for s in signers {
                    *v.signed_by.entry(s).or_default() += 1;
                }
            } else {
                v.suspect_certified += 1;
            }
            match &first {
                None => first = Some((i, result)),
                Some((j, theirs)) if *theirs != result => v.fail(format!(
                    "certified receipts of {hash} differ between nodes {j} and {i}: \
                     {theirs:?} against {result:?}"
                )),
                Some(_) => {}
            }
        }
        if first.is_some() {
            v.receipts_checked += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_api::{Account, BlockInfo, ExecutionCertificateInfo, ReceiptView, Status};
    use lanes_types::Address;
    use std::collections::HashMap;

    /// Canned `/tx` answers per node: an answer, or the HTTP status (404 when absent).
    #[derive(Default)]
    struct Canned(Vec<HashMap<Hash, Result<TxInfo, Option<u16>>>>);

    impl NodeApi for Canned {
        fn status(&self, _: usize) -> Option<Status> {
            None
        }
        fn block(&self, _: usize, _: u64) -> Option<BlockInfo> {
            None
        }
        fn account(&self, _: usize, _: &Address) -> Option<Account> {
            None
        }
        fn tx(&self, i: usize, hash: &Hash) -> Result<TxInfo, Option<u16>> {
            self.0[i].get(hash).cloned().unwrap_or(Err(Some(404)))
        }
    }

    fn hash(k: u8) -> Hash {
        Hash::tagged("test", &[k])
    }

    /// A certified answer for `hash` with `receipt` encoded, under `receipts_root`, signed by
    /// `signers`.
    fn certified(hash: Hash, receipt: &str, receipts_root: &str, signers: &[u32]) -> TxInfo {
        TxInfo {
            hash: hash.to_string(),
            status: TxStatus::Certified,
            height: Some(5),
            index: Some(0),
            block_hash: Some("b5".into()),
            tx: None,
            receipt: Some(ReceiptView {
                status: "Success".into(),
                success: true,
                fee_paid: 1,
                outputs: Vec::new(),
                encoded: receipt.into(),
            }),
            certificate: Some(ExecutionCertificateInfo {
                height: 5,
                state_root: "r5".into(),
                receipts_root: receipts_root.into(),
                signers: signers.to_vec(),
                encoded: String::new(),
            }),
            receipt_proof: None,
        }
    }

    /// The same answer on `n` nodes, each with its own quorum.
    fn agreeing(n: usize, hash: Hash) -> Canned {
        let quorums = [[0, 1, 2], [1, 2, 3], [0, 2, 3], [0, 1, 3]];
        let answer = |i: usize| certified(hash, "aa", "rr", &quorums[i % 4]);
        Canned(
            (0..n)
                .map(|i| HashMap::from([(hash, Ok(answer(i)))]))
                .collect(),
        )
    }

    fn run(c: &Canned, honest: &[usize], suspects: &[usize], txs: &[Hash]) -> Verdict {
        let mut v = Verdict::default();
        check(c, honest, suspects, txs, &mut v);
        v
    }

    #[test]
    fn identical_certified_receipts_pass_whoever_signed() {
        let v = run(&agreeing(3, hash(1)), &[0, 1, 2], &[], &[hash(1), hash(2)]);
        assert_eq!(v.violation, None);
        assert_eq!(v.receipts_checked, 1, "nobody knows hash(2)");
        assert_eq!(v.signed_by, Signers::from([(0, 2), (1, 2), (2, 3), (3, 2)]));
    }

    #[test]
    fn another_certified_receipt_on_an_honest_node_fails() {
        let mut c = agreeing(3, hash(1));
        c.0[2].insert(hash(1), Ok(certified(hash(1), "bb", "rr", &[0, 1, 2])));
        let v = run(&c, &[0, 1, 2], &[], &[hash(1)]);
        assert!(v
            .violation
            .unwrap()
            .contains("differ between nodes 0 and 2"));
    }

    #[test]
    fn another_certified_receipts_root_or_block_fails() {
        let mut c = agreeing(2, hash(1));
        c.0[1].insert(hash(1), Ok(certified(hash(1), "aa", "other", &[0, 1, 2])));
        assert!(run(&c, &[0, 1], &[], &[hash(1)]).violation.is_some());
        let mut moved = certified(hash(1), "aa", "rr", &[0, 1, 2]);
        moved.block_hash = Some("fork".into());
        c.0[1].insert(hash(1), Ok(moved));
        assert!(run(&c, &[0, 1], &[], &[hash(1)]).violation.is_some());
    }

    #[test]
    fn a_suspect_may_refuse_or_lag_but_not_certify_another_receipt() {
        let mut c = agreeing(4, hash(1));
        c.0[3].insert(hash(1), Err(Some(409)));
        let v = run(&c, &[0, 1, 2], &[3], &[hash(1)]);
        assert_eq!(v.violation, None);
        assert_eq!(v.suspect_certified, 0);
        let mut committed = certified(hash(1), "bb", "rr", &[]);
        (committed.status, committed.certificate) = (TxStatus::Committed, None);
        c.0[3].insert(hash(1), Ok(committed));
        assert_eq!(run(&c, &[0, 1, 2], &[3], &[hash(1)]).violation, None);
        c.0[3].insert(hash(1), Ok(certified(hash(1), "aa", "rr", &[0, 1, 2])));
        let v = run(&c, &[0, 1, 2], &[3], &[hash(1)]);
        assert_eq!((v.violation, v.suspect_certified), (None, 1));
        c.0[3].insert(hash(1), Ok(certified(hash(1), "bb", "rr", &[0, 1, 2])));
        let v = run(&c, &[0, 1, 2], &[3], &[hash(1)]);
        assert!(v
            .violation
            .unwrap()
            .contains("differ between nodes 0 and 3"));
    }

    #[test]
    fn an_honest_conflict_or_a_certified_answer_without_certificate_fails() {
        let mut c = agreeing(2, hash(1));
        c.0[1].insert(hash(1), Err(Some(409)));
        let v = run(&c, &[0, 1], &[], &[hash(1)]);
        assert!(v.violation.unwrap().contains("not the certified one"));
        let mut bare = certified(hash(1), "aa", "rr", &[]);
        bare.certificate = None;
        c.0[1].insert(hash(1), Ok(bare));
        let v = run(&c, &[0, 1], &[], &[hash(1)]);
        assert!(v
            .violation
            .unwrap()
            .contains("without a receipt or a certificate"));
    }

    #[test]
    fn the_sample_is_bounded_spread_and_ends_with_the_last() {
        let acked: Vec<(Hash, Instant)> = (0..=255)
            .map(|k| (hash(k), Instant::now()))
            .chain((0..=255).map(|k| (Hash::tagged("more", &[k]), Instant::now())))
            .collect();
        let s = sample(&acked, SAMPLE);
        assert_eq!(s.len(), SAMPLE);
        assert_eq!(s.last(), acked.last().map(|a| &a.0));
        assert_eq!(
            s.iter().collect::<std::collections::HashSet<_>>().len(),
            SAMPLE
        );
        assert_eq!(sample(&acked[..5], SAMPLE).len(), 5);
    }
}
