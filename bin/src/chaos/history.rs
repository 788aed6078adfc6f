//! The workload client, which records every transaction it submitted and which ones were
//! acknowledged, and the checker of a scenario's invariants.
//!
//! A transaction counts as acknowledged once a node reports its receipt under an execution
//! certificate (`certified` in `GET /tx/{hash}`): a quorum signed the state it produced. The
//! checker then requires: every acknowledged transaction is in the final chain exactly once;
//! every node (the honest ones) has the same block hash and state root at every height they
//! both hold; the native asset's supply is what genesis gave; and new transactions commit
//! within 10 s of the last fault healing.

use crate::localnet;
use lanes_executor::{Operation, Transaction};
use lanes_types::codec::Encode;
use lanes_types::{tx_hash, Address, Hash, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
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
        let thread = std::thread::spawn(move || run(&apis, keys, &chain_id, seed, &s, &h));
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

fn agent() -> ureq::Agent {
    lanes_cluster::http_agent(Duration::from_millis(800))
}

fn run(
    apis: &[SocketAddr],
    keys: Vec<SecretKey>,
    chain_id: &str,
    seed: u64,
    stop: &AtomicBool,
    history: &Mutex<History>,
) {
    let http = agent();
    let mut rng = StdRng::seed_from_u64(seed);
    let addresses: Vec<Address> = keys.iter().map(|k| k.public_key().address()).collect();
    let mut senders: Vec<Sender> = keys
        .into_iter()
        .map(|key| {
            let nonce = apis
                .iter()
                .map(|a| localnet::account_nonce(&http, *a, &key))
                .max()
                .unwrap_or(0);
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
                    if localnet::post_tx(&http, apis[node], &raw).is_ok() {
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
                    let answer = get(&http, apis[ask], &format!("/tx/{hash}"));
                    if answer.as_ref().is_some_and(|t| t["certified"] == true) {
                        history
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .acked
                            .push((hash, Instant::now()));
                        s.nonce += 1;
                        s.pending = None;
                    } else if since.elapsed() > GIVE_UP {
                        s.pending = None;
                        s.nonce = apis
                            .iter()
                            .map(|a| localnet::account_nonce(&http, *a, &s.key))
                            .max()
                            .unwrap_or(s.nonce);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(http: &ureq::Agent, api: SocketAddr, path: &str) -> Option<Value> {
    let mut r = http.get(format!("http://{api}{path}")).call().ok()?;
    if r.status().as_u16() != 200 {
        return None;
    }
    r.body_mut().read_json().ok()
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
}

impl Verdict {
    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }
}

/// Read access to the nodes' APIs (the live cluster, or canned answers in tests).
pub trait NodeApi {
    /// The JSON answer of node `i` to `GET path`, if 200.
    fn get(&self, i: usize, path: &str) -> Option<Value>;
}

impl NodeApi for lanes_cluster::Cluster {
    fn get(&self, i: usize, path: &str) -> Option<Value> {
        lanes_cluster::Cluster::get(self, i, path).ok()
    }
}

/// Checks the invariants over the nodes in `honest` (all answering); `holders` are every
/// account that may hold the native asset, whose balances must add up to `supply`.
pub fn check(
    cluster: &impl NodeApi,
    honest: &[usize],
    history: &History,
    holders: &[Address],
    supply: u64,
) -> Verdict {
    let mut v = Verdict::default();
    let heights: Vec<(usize, u64, u64)> = honest
        .iter()
        .filter_map(|&i| {
            let s = cluster.get(i, "/status")?;
            Some((
                i,
                s["height"].as_u64()?,
                s["lowest_block"].as_u64().unwrap_or(1),
            ))
        })
        .collect();
    if heights.len() != honest.len() {
        v.fail("an honest node does not answer".into());
        return v;
    }
    let top = heights.iter().map(|h| h.1).min().unwrap_or(0);
    v.height = top;
    // The chain of the node that holds the most of it, with every transaction's position.
    let (full, _, full_low) = *heights.iter().min_by_key(|h| h.2).expect("honest nodes");
    let mut chain: HashMap<u64, (String, String)> = HashMap::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for h in full_low..=top {
        let Some(b) = cluster.get(full, &format!("/block/{h}")) else {
            v.fail(format!("node {full} cannot serve block {h}"));
            return v;
        };
        for t in b["transactions"].as_array().into_iter().flatten() {
            *seen
                .entry(t["hash"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
        chain.insert(
            h,
            (
                b["hash"].as_str().unwrap_or("").into(),
                b["state_root"].as_str().unwrap_or("").into(),
            ),
        );
    }
    // Agreement: every honest node's blocks and roots at every height both hold.
    for &(i, _, low) in &heights {
        if i == full {
            continue;
        }
        for h in low.max(full_low)..=top {
            let Some(b) = cluster.get(i, &format!("/block/{h}")) else {
                continue; // pruned or installed by state transfer
            };
            let mine = (
                b["hash"].as_str().unwrap_or("").to_string(),
                b["state_root"].as_str().unwrap_or("").to_string(),
            );
            if chain.get(&h) != Some(&mine) {
                v.diverged = true;
                v.fail(format!("nodes {full} and {i} differ at height {h}"));
                break;
            }
        }
    }
    // Every acknowledged transaction exactly once (in the part of the chain we can read).
    if full_low == 1 {
        for (hash, _) in &history.acked {
            match seen.get(&hash.to_string()).copied().unwrap_or(0) {
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
    // Supply of the native asset.
    let total: Option<u64> = holders
        .iter()
        .map(|a| {
            let acct = cluster.get(full, &format!("/account/{a}"))?;
            Some(
                acct["balances"]
                    .as_array()?
                    .iter()
                    .filter(|b| b["asset"] == 0)
                    .filter_map(|b| b["amount"].as_u64())
                    .sum::<u64>(),
            )
        })
        .sum();
    match total {
        Some(t) if t == supply => {}
        Some(t) => v.fail(format!("native supply is {t}, genesis gave {supply}")),
        None => v.fail("cannot read balances".into()),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Canned API answers: path -> JSON, per node.
    struct Canned(Vec<BTreeMap<String, Value>>);

    impl NodeApi for Canned {
        fn get(&self, i: usize, path: &str) -> Option<Value> {
            self.0.get(i)?.get(path).cloned()
        }
    }

    fn holder(k: u8) -> Address {
        SecretKey::from_label(&format!("holder-{k}"))
            .public_key()
            .address()
    }

    /// Two nodes with the same two blocks; block 2 holds `txs`; both holders own 50.
    fn cluster(txs: &[&str]) -> Canned {
        let node = || {
            let mut m = BTreeMap::new();
            m.insert("/status".into(), json!({"height": 2, "lowest_block": 1}));
            m.insert(
                "/block/1".into(),
                json!({"hash": "b1", "state_root": "r1", "transactions": []}),
            );
            let t: Vec<Value> = txs.iter().map(|h| json!({"hash": h})).collect();
            m.insert(
                "/block/2".into(),
                json!({"hash": "b2", "state_root": "r2", "transactions": t}),
            );
            for k in 0..2 {
                m.insert(
                    format!("/account/{}", holder(k)),
                    json!({"balances": [{"asset": 0, "amount": 50}, {"asset": 1, "amount": 7}]}),
                );
            }
            m
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
            &acked(&[hash(1)]),
            &[holder(0), holder(1)],
            100,
        );
        assert!(v.violation.unwrap().contains("2 times"));
    }

    #[test]
    fn diverging_roots_fail() {
        let mut c = cluster(&[]);
        c.0[1].insert(
            "/block/2".into(),
            json!({"hash": "b2", "state_root": "other", "transactions": []}),
        );
        let v = check(&c, &[0, 1], &acked(&[]), &[holder(0), holder(1)], 100);
        assert!(v.diverged);
        assert!(v.violation.unwrap().contains("differ at height 2"));
    }

    #[test]
    fn created_or_destroyed_money_fails() {
        let c = cluster(&[]);
        let v = check(&c, &[0, 1], &acked(&[]), &[holder(0), holder(1)], 101);
        assert!(v.violation.unwrap().contains("supply"));
    }

    #[test]
    fn a_silent_honest_node_fails() {
        let mut c = cluster(&[]);
        c.0[1].clear();
        let v = check(&c, &[0, 1], &acked(&[]), &[holder(0), holder(1)], 100);
        assert!(v.violation.unwrap().contains("does not answer"));
    }
}
