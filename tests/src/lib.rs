//! lanes-tests: end-to-end tests that start real `lanes` processes (see `tests/tests/`).
//!
//! This library holds what those tests share: a [`Cluster`] of `lanes node` processes on
//! loopback with a fresh genesis and funded dev accounts (the processes themselves are a
//! [`lanes_cluster::Cluster`], which it dereferences to: start, kill -9, wipe, logs, health,
//! a typed API client per node), and helpers to sign and submit transactions and to run the
//! `lanes` binary.

use anyhow::{bail, Result};
use lanes_api::{BlocksQuery, TxInfo, TxStatus};
use lanes_executor::tx::{Operation, Transaction};
use lanes_types::codec::Encode;
use lanes_types::genesis::{GenesisAsset, GenesisBalance};
use lanes_types::{to_hex, Address, Genesis, ProtocolParams, SecretKey, ValidatorInfo};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Path of the `lanes` binary built alongside the tests (same profile directory as the test
/// executable).
pub fn lanes_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable has a path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("lanes")
}

/// A cluster of validators on loopback with funded dev accounts.
pub struct Cluster {
    /// The node processes (declared before `dir`: they are killed before it is deleted).
    pub nodes: lanes_cluster::Cluster,
    /// Scratch directory holding genesis, keys, data (`data-<i>`) and logs (`node-<i>.log`).
    pub dir: tempfile::TempDir,
    /// The genesis.
    pub genesis: Genesis,
    /// Funded accounts (native asset 0).
    pub accounts: Vec<SecretKey>,
    /// Next nonce per account.
    pub nonces: Vec<u64>,
}

impl Cluster {
    /// Writes a genesis for `n` validators and starts them all.
    pub fn start(n: usize) -> Result<Cluster> {
        Cluster::start_with(n, &[])
    }

    /// Like [`Cluster::start`], with extra `lanes node` arguments for every node.
    pub fn start_with(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        let accounts: Vec<SecretKey> = (0..8)
            .map(|i| SecretKey::from_label(&format!("e2e-account-{i}")))
            .collect();
        // Validator i: QUIC on P+i, API on P+100+i.
        let base_port = lanes_cluster::free_base_port(n)?;
        let port = |i: usize, offset: u16| base_port + offset + i as u16;
        let mut params = ProtocolParams::local_defaults(accounts[0].public_key().address());
        params.view_timeout_ms = 1_000;
        let genesis = Genesis {
            chain_id: "lanes-e2e".into(),
            genesis_time_ms: 0,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| ValidatorInfo {
                    name: format!("validator-{i}"),
                    public_key: k.public_key(),
                    address: format!("127.0.0.1:{}", port(i, 0)),
                })
                .collect(),
            assets: vec![GenesisAsset {
                symbol: "LANE".into(),
                balances: accounts
                    .iter()
                    .map(|k| GenesisBalance {
                        account: k.public_key().address(),
                        amount: 1_000_000_000,
                    })
                    .collect(),
            }],
            params,
        };
        let genesis_path = dir.path().join("genesis.json");
        std::fs::write(&genesis_path, genesis.to_json())?;
        let mut specs = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let key_path = dir.path().join(format!("validator-{i}.key"));
            std::fs::write(&key_path, to_hex(key.seed()))?;
            let api: SocketAddr = format!("127.0.0.1:{}", port(i, 100)).parse()?;
            let data = dir.path().join(format!("data-{i}"));
            let args = [
                "node".into(),
                "--genesis".into(),
                genesis_path.display().to_string(),
                "--key-file".into(),
                key_path.display().to_string(),
                "--index".into(),
                i.to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", port(i, 0)),
                "--api".into(),
                api.to_string(),
                "--data".into(),
                data.display().to_string(),
            ];
            specs.push(lanes_cluster::NodeSpec {
                args: args
                    .into_iter()
                    .chain(extra_args.iter().map(|a| a.to_string()))
                    .collect(),
                api,
                data,
                log: dir.path().join(format!("node-{i}.log")),
            });
        }
        let log_level = std::env::var("LANES_NODE_LOG").unwrap_or_else(|_| "info".into());
        let nodes = lanes_cluster::Cluster::new(lanes_binary(), dir.path(), specs)
            .with_env("RUST_LOG", &log_level)
            .with_http_timeout(Duration::from_secs(5));
        let mut cluster = Cluster {
            nodes,
            dir,
            genesis,
            nonces: vec![0; accounts.len()],
            accounts,
        };
        cluster.spawn_all()?;
        cluster.wait_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Signs a transfer of `amount` native units from account `from` to account `to`.
    pub fn transfer(&mut self, from: usize, to: usize, amount: u64) -> Vec<u8> {
        let to = self.accounts[to].public_key().address();
        self.sign(
            from,
            Operation::Transfer {
                asset: 0,
                to,
                amount,
            },
        )
    }

    /// Signs `op` from account `from` with its next nonce.
    pub fn sign(&mut self, from: usize, op: Operation) -> Vec<u8> {
        let nonce = self.nonces[from];
        self.nonces[from] += 1;
        Transaction {
            chain_id: self.genesis.chain_id.clone(),
            sender: self.accounts[from].public_key(),
            nonce,
            fee: self.genesis.params.min_fee,
            op,
        }
        .sign(&self.accounts[from])
        .to_bytes()
    }

    /// Every node's (height, block hash, state root) from `/status`.
    pub fn heads(&self) -> Result<Vec<(u64, String, String)>> {
        (0..self.len())
            .map(|i| {
                let s = self.client(i).status()?;
                Ok((s.height, s.block_hash, s.state_root))
            })
            .collect()
    }

    /// (hash, state root) of every block `1..=height` as node `i` reports them (a root the
    /// node has not stored is empty).
    pub fn chain(&self, i: usize, height: u64) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut from = 1;
        while from <= height {
            let query = BlocksQuery {
                from: Some(from),
                limit: Some(100),
            };
            let page = self.client(i).blocks(query)?;
            if page.is_empty() {
                bail!("node {i} has no block at {from}");
            }
            for b in page {
                if b.height > height {
                    break;
                }
                out.push((b.hash, b.state_root.unwrap_or_default()));
                from += 1;
            }
        }
        Ok(out)
    }

    /// Submits a transaction to node `i`; returns its hash.
    pub fn submit(&self, i: usize, tx: &[u8]) -> Result<String> {
        Ok(self.client(i).submit(tx)?.hash)
    }

    /// Waits until node `i` reports the transaction in a block it executed (committed or
    /// certified, not pending).
    pub fn wait_tx(&self, i: usize, hash: &str, timeout: Duration) -> Result<TxInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            // A pending answer (still in the mempool) is not yet committed.
            match self.client(i).tx(hash) {
                Ok(tx) if tx.status >= TxStatus::Committed => return Ok(tx),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("tx {hash} not committed at node {i}:\n{}", self.log_tail(i));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The address of account `i`.
    pub fn address(&self, i: usize) -> Address {
        self.accounts[i].public_key().address()
    }
}

impl std::ops::Deref for Cluster {
    type Target = lanes_cluster::Cluster;
    fn deref(&self) -> &lanes_cluster::Cluster {
        &self.nodes
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut lanes_cluster::Cluster {
        &mut self.nodes
    }
}

/// Runs the `lanes` binary with `args` and returns its output, without the environment
/// variables that would point it at another node or keystore, so tests stay hermetic.
pub fn run_lanes(args: &[&str]) -> std::process::Output {
    Command::new(lanes_binary())
        .args(args)
        .env_remove("LANES_NODE")
        .env_remove("LANES_KEYSTORE")
        .output()
        .expect("lanes runs")
}

/// Runs `lanes chaos ARGS --json` and returns its parsed report (panicking, with the output,
/// if it is not one JSON object) and whether the command succeeded.
pub fn chaos_report(args: &[&str]) -> (Value, bool) {
    let args: Vec<&str> = ["chaos"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--json"])
        .collect();
    let out = run_lanes(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (report, out.status.success())
}

/// The scenarios of a chaos report, after checking that there are `count` of them and that
/// each passed, lost no acknowledged transaction, kept the honest nodes in agreement and
/// acknowledged some transactions.
pub fn passed_scenarios(report: &Value, count: usize) -> &Vec<Value> {
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), count);
    for s in scenarios {
        assert_eq!(s["passed"], true, "{s}");
        assert_eq!(s["lost_acknowledged"], 0, "{s}");
        assert_eq!(s["diverged"], false, "{s}");
        assert!(s["acknowledged"].as_u64().unwrap() > 0, "{s}");
    }
    scenarios
}
