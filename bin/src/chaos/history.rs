//! The workload client, which records every transaction it submitted and which ones were
//! acknowledged, and the checker of a scenario's invariants.
//!
//! A transaction counts as acknowledged once a node reports its receipt under an execution
//! certificate (`certified` in `GET /tx/{hash}`): a quorum signed the state it produced. The
//! checker then requires: every acknowledged transaction is in the final chain exactly once;
//! every node (the honest ones) has the same block hash and state root at every height they
//! both hold; the native asset's supply is what genesis gave; and new transactions commit
//! within 10 s of the last fault healing; and, for a sample of the acknowledged transactions,
//! every node answering `certified` gives the same receipt under the same certified roots
//! ([`super::receipts`]).

use super::receipts;
use crate::localnet;
use lanes_api::{Account, BlockInfo, Client, Status, TxInfo, TxStatus};
use lanes_executor::{Operation, Transaction};
use lanes_types::codec::Encode;
use lanes_types::{tx_hash, Address, Hash, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A submitted transaction not acknowledged after this long is given up (its sender's nonce
/// is read again from a node).
const GIVE_UP: Duration = Duration::from_secs(10);

/// What the workload did.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Transactions a node accepted into its mempool.
    pub submitted: u64,
    /// Acknowledged transactions and when.
    pub acked: Vec<(Hash, Instant)>,
}

/// The running workload: one thread, one transfer in flight per funded account.
pub struct Workload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Sender {
    key: SecretKey,
    nonce: u64,
    pending: Option<(Hash, Instant, usize)>,
}

impl Workload {
    /// Starts transfers between `keys` through the nodes at `apis` (picked at random with
    /// `seed`).
    pub fn start(apis: Vec<SocketAddr>, keys: Vec<SecretKey>, chain_id: String, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let (s, h) = (stop.clone(), history.clone());
        let clients: Vec<Client> = apis
            .iter()
            .map(|a| Client::with_timeout(&a.to_string(), Duration::from_millis(800)))
            .collect();
        let thread = std::thread::spawn(move || run(&clients, keys, &chain_id, seed, &s, &h));
        Workload {
            stop,
            history,
            thread: Some(thread),
        }
    }

    /// What happened so far.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the workload and returns its history.
    pub fn stop(mut self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.history()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The highest next nonce of `key` any node reports, if one answers.
fn highest_nonce(apis: &[Client], key: &SecretKey) -> Option<u64> {
    apis.iter()
        .filter_map(|a| localnet::account_nonce(a, key).ok())
        .max()
}

fn run(
    apis: &[Client],
    keys: Vec<SecretKey>,
    chain_id: &str,
    seed: u64,
    stop: &AtomicBool,
    history: &Mutex<History>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let addresses: Vec<Address> = keys.iter().map(|k| k.public_key().address()).collect();
    let mut senders: Vec<Sender> = keys
        .into_iter()
        .map(|key| {
            // A new network's accounts start at 0.
            let nonce = highest_nonce(apis, &key).unwrap_or(0);
            Sender {
                key,
                nonce,
                pending: None,
            }
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        for (k, s) in senders.iter_mut().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match s.pending {
                None => {
                    let to = addresses
                        [(k + 1 + rng.gen_range(0..addresses.len() - 1)) % addresses.len()];
                    let stx = Transaction {
                        chain_id: chain_id.to_string(),
                        sender: s.key.public_key(),
                        nonce: s.nonce,
                        fee: 1,
                        op: Operation::Transfer {
                            asset: 0,
                            to,
                            amount: rng.gen_range(1..100),
                        },
                    }
                    .sign(&s.key);
                    let raw = stx.to_bytes();
                    let node = rng.gen_range(0..apis.len());
                    if apis[node].submit(&raw).is_ok() {
                        s.pending = Some((tx_hash(&raw), Instant::now(), node));
                        history.lock().unwrap_or_else(|e| e.into_inner()).submitted += 1;
                    }
                }
                Some((hash, since, node)) => {
                    let ask = if rng.gen_bool(0.5) {
                        node
                    } else {
                        rng.gen_range(0..apis.len())
                    };
                    if apis[ask]
                        .tx(hash)
                        .is_ok_and(|t| t.status == TxStatus::Certified)
                    {
                        history
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .acked
                            .push((hash, Instant::now()));
                        s.nonce += 1;
                        s.pending = None;
                    } else if since.elapsed() > GIVE_UP {
                        s.pending = None;
                        s.nonce = highest_nonce(apis, &s.key).unwrap_or(s.nonce);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The checker's findings.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The first violated invariant, if any.
    pub violation: Option<String>,
    /// Acknowledged transactions missing from the final chain.
    pub lost_acknowledged: usize,
    /// Whether two nodes disagree on a block or root at some height.
    pub diverged: bool,
    /// The final common height.
    pub height: u64,
    /// Sampled acknowledged transactions some node answered certified (their answers were
    /// compared).
    pub receipts_checked: usize,
    /// How often each validator signed the certificates honest nodes served for the sample.
    pub signed_by: receipts::Signers,
    /// Certified answers the suspects gave for the sample (each identical to the honest ones).
    pub suspect_certified: usize,
}

impl Verdict {
    /// Records `why` unless a violation is already recorded.
    pub fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }
}

/// What the checker reads of the nodes (the live cluster, or canned answers in tests); `None`
/// when the node does not answer.
pub trait NodeApi {
    /// Node `i`'s `/status`.
    fn status(&self, i: usize) -> Option<Status>;
    /// Node `i`'s block at `height`.
    fn block(&self, i: usize, height: u64) -> Option<BlockInfo>;
    /// Node `i`'s view of account `address`.
    fn account(&self, i: usize, address: &Address) -> Option<Account>;
    /// Node `i`'s `GET /tx/{hash}`: the answer, or the HTTP status of its refusal (`None`
    /// when it does not answer).
    fn tx(&self, i: usize, hash: &Hash) -> Result<TxInfo, Option<u16>>;
}

impl NodeApi for lanes_cluster::Cluster {
    fn status(&self, i: usize) -> Option<Status> {
        self.client(i).status().ok()
    }
    fn block(&self, i: usize, height: u64) -> Option<BlockInfo> {
        self.client(i).block(height).ok()
    }
    fn account(&self, i: usize, address: &Address) -> Option<Account> {
        self.client(i).account(address).ok()
    }
    fn tx(&self, i: usize, hash: &Hash) -> Result<TxInfo, Option<u16>> {
        self.client(i).tx(hash).map_err(|e| e.status())
    }
}

/// Checks the invariants over the nodes in `honest` (all answering); `holders` are every
/// account that may hold the native asset, whose balances must add up to `supply`. The
/// certified receipts of `suspects` (a byzantine validator) are compared too: they may refuse
/// but never certify another receipt.
pub fn check(
    cluster: &impl NodeApi,
    honest: &[usize],
    suspects: &[usize],
    history: &History,
    holders: &[Address],
    supply: u64,
) -> Verdict {
    let mut v = Verdict::default();
    let heights: Vec<(usize, u64, u64)> = honest
        .iter()
        .filter_map(|&i| {
            let s = cluster.status(i)?;
            Some((i, s.height, s.lowest_block))
        })
        .collect();
    if heights.len() != honest.len() {
        v.fail("an honest node does not answer".into());
        return v;
    }
    let top = heights.iter().map(|h| h.1).min().unwrap_or(0);
    v.height = top;
    // The chain of the node that holds the most of it.
    let (full, _, full_low) = *heights.iter().min_by_key(|h| h.2).expect("honest nodes");
    let Some(chain) = Chain::read(cluster, full, full_low..=top, &mut v) else {
        return v;
    };
    for &(i, _, low) in heights.iter().filter(|h| h.0 != full) {
        chain.agrees(cluster, i, low, &mut v);
    }
    // Every acknowledged transaction exactly once (in the part of the chain we can read).
    if full_low == 1 {
        chain.holds_once(history, &mut v);
    }
    let sample = receipts::sample(&history.acked, receipts::SAMPLE);
    receipts::check(cluster, honest, suspects, &sample, &mut v);
    check_supply(cluster, full, holders, supply, &mut v);
    v
}

/// One node's chain over a range of heights: every block's hash and root, and how often each
/// transaction appears.
struct Chain {
    node: usize,
    heights: std::ops::RangeInclusive<u64>,
    blocks: HashMap<u64, (String, Option<String>)>,
    seen: HashMap<String, u32>,
}

impl Chain {
    /// Node `node`'s blocks at `heights` (`None`, with the violation, if one is missing).
    fn read(
        cluster: &impl NodeApi,
        node: usize,
        heights: std::ops::RangeInclusive<u64>,
        v: &mut Verdict,
    ) -> Option<Chain> {
        let mut chain = Chain {
            node,
            heights: heights.clone(),
            blocks: HashMap::new(),
            seen: HashMap::new(),
        };
        for h in heights {
            let Some(b) = cluster.block(node, h) else {
                v.fail(format!("node {node} cannot serve block {h}"));
                return None;
            };
            for t in b.transactions {
                *chain.seen.entry(t.hash).or_default() += 1;
            }
            chain
                .blocks
                .insert(h, (b.summary.hash, b.summary.state_root));
        }
        Some(chain)
    }

    /// Agreement: node `i` (whose lowest block is `low`) has the same block and root at every
    /// height both hold.
    fn agrees(&self, cluster: &impl NodeApi, i: usize, low: u64, v: &mut Verdict) {
        for h in low.max(*self.heights.start())..=*self.heights.end() {
            let Some(b) = cluster.block(i, h) else {
                continue; // pruned or installed by state transfer
            };
            let mine = (b.summary.hash, b.summary.state_root);
            if self.blocks.get(&h) != Some(&mine) {
                v.diverged = true;
                v.fail(format!("nodes {} and {i} differ at height {h}", self.node));
                return;
            }
        }
    }

    /// Every acknowledged transaction of `history` is in the chain exactly once.
    fn holds_once(&self, history: &History, v: &mut Verdict) {
        for (hash, _) in &history.acked {
            match self.seen.get(&hash.to_string()).copied().unwrap_or(0) {
                1 => {}
                0 => v.lost_acknowledged += 1,
                n => v.fail(format!("transaction {hash} is in the chain {n} times")),
            }
        }
        if v.lost_acknowledged > 0 {
            v.fail(format!(
                "{} acknowledged transactions are not in the chain",
                v.lost_acknowledged
            ));
        }
    }
}

/// The native asset's supply on node `node`: `holders`' balances add up to `supply`.
fn check_supply(
    cluster: &impl NodeApi,
    node: usize,
    holders: &[Address],
    supply: u64,
    v: &mut Verdict,
) {
    let total: Option<u64> = holders
        .iter()
        .map(|a| Some(cluster.account(node, a)?.balance(0)))
        .sum();
    match total {
        Some(t) if t == supply => {}
        Some(t) => v.fail(format!("native supply is {t}, genesis gave {supply}")),
        None => v.fail("cannot read balances".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_api::{Balance, BlockSummary, BlockTx, TxView};
    use std::collections::BTreeMap;

    /// Canned answers of one node.
    #[derive(Default)]
    struct Node {
        status: Option<Status>,
        blocks: BTreeMap<u64, BlockInfo>,
        accounts: BTreeMap<Address, Account>,
    }

    /// Canned answers, per node.
    struct Canned(Vec<Node>);

    impl NodeApi for Canned {
        fn status(&self, i: usize) -> Option<Status> {
            self.0.get(i)?.status.clone()
        }
        fn block(&self, i: usize, height: u64) -> Option<BlockInfo> {
            self.0.get(i)?.blocks.get(&height).cloned()
        }
        fn account(&self, i: usize, address: &Address) -> Option<Account> {
            self.0.get(i)?.accounts.get(address).cloned()
        }
        fn tx(&self, _: usize, _: &Hash) -> Result<TxInfo, Option<u16>> {
            Err(Some(404))
        }
    }

    fn holder(k: u8) -> Address {
        SecretKey::from_label(&format!("holder-{k}"))
            .public_key()
            .address()
    }

    /// A block with `hash`, `root` and transactions of `txs` hashes.
    fn block(hash: &str, root: &str, txs: &[&str]) -> BlockInfo {
        let tx = |h: &&str| BlockTx {
            hash: h.to_string(),
            tx: TxView {
                decoded: None,
                raw: String::new(),
            },
        };
        BlockInfo {
            summary: BlockSummary {
                hash: hash.into(),
                state_root: Some(root.into()),
                ..BlockSummary::default()
            },
            transactions: txs.iter().map(tx).collect(),
            ..BlockInfo::default()
        }
    }

    /// Two nodes with the same two blocks; block 2 holds `txs`; both holders own 50.
    fn cluster(txs: &[&str]) -> Canned {
        let node = || {
            let mut n = Node {
                status: Some(Status {
                    height: 2,
                    lowest_block: 1,
                    ..Status::default()
                }),
                ..Node::default()
            };
            n.blocks.insert(1, block("b1", "r1", &[]));
            n.blocks.insert(2, block("b2", "r2", txs));
            for k in 0..2 {
                let balance = |asset, amount| Balance {
                    asset,
                    symbol: String::new(),
                    amount,
                };
                let account = Account {
                    balances: vec![balance(0, 50), balance(1, 7)],
                    ..Account::default()
                };
                n.accounts.insert(holder(k), account);
            }
            n
        };
        Canned(vec![node(), node()])
    }

    fn acked(hashes: &[Hash]) -> History {
        History {
            submitted: hashes.len() as u64,
            acked: hashes.iter().map(|h| (*h, Instant::now())).collect(),
        }
    }

    fn hash(k: u8) -> Hash {
        Hash::tagged("test", &[k])
    }

    #[test]
    fn a_clean_history_passes() {
        let c = cluster(&[&hash(1).to_string()]);
        let v = check(
            &c,
            &[0, 1],
            &[],
            &acked(&[hash(1)]),
            &[holder(0), holder(1)],
            100,
        );
        assert_eq!(v.violation, None);
        assert_eq!(v.height, 2);
    }

    #[test]
    fn a_lost_acknowledged_transaction_fails() {
        let c = cluster(&[&hash(1).to_string()]);
        let v = check(
            &c,
            &[0, 1],
            &[],
            &acked(&[hash(1), hash(2)]),
            &[holder(0), holder(1)],
            100,
        );
        assert_eq!(v.lost_acknowledged, 1);
        assert!(v.violation.unwrap().contains("not in the chain"));
    }

    #[test]
    fn a_transaction_committed_twice_fails() {
        let h = hash(1).to_string();
        let c = cluster(&[&h, &h]);
        let v = check(
            &c,
            &[0, 1],
            &[],
            &acked(&[hash(1)]),
            &[holder(0), holder(1)],
            100,
        );
        assert!(v.violation.unwrap().contains("2 times"));
    }

    #[test]
    fn diverging_roots_fail() {
        let mut c = cluster(&[]);
        c.0[1].blocks.insert(2, block("b2", "other", &[]));
        let v = check(&c, &[0, 1], &[], &acked(&[]), &[holder(0), holder(1)], 100);
        assert!(v.diverged);
        assert!(v.violation.unwrap().contains("differ at height 2"));
    }

    #[test]
    fn created_or_destroyed_money_fails() {
        let c = cluster(&[]);
        let v = check(&c, &[0, 1], &[], &acked(&[]), &[holder(0), holder(1)], 101);
        assert!(v.violation.unwrap().contains("supply"));
    }

    #[test]
    fn a_silent_honest_node_fails() {
        let mut c = cluster(&[]);
        c.0[1] = Node::default();
        let v = check(&c, &[0, 1], &[], &acked(&[]), &[holder(0), holder(1)], 100);
        assert!(v.violation.unwrap().contains("does not answer"));
    }
}
