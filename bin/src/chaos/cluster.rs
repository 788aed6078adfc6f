//! A temporary cluster of `lanes node` processes whose every peer link goes through the fault
//! proxy, with the process faults the scenarios inject: kill -9 and restart, SIGSTOP and
//! SIGCONT, restart with the data directory wiped.

use super::proxy::Proxy;
use crate::config::Home;
use crate::{bench_e2e, localnet, testnet};
use anyhow::{bail, Context, Result};
use lanes_types::SecretKey;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

/// Funded accounts the workload signs with.
pub const ACCOUNTS: usize = 8;

/// The cluster; every node is stopped when it is dropped.
pub struct ChaosCluster {
    /// Holds genesis, homes, data and logs (deleted with the cluster).
    _dir: tempfile::TempDir,
    /// The validators' homes, by index.
    pub homes: Vec<Home>,
    /// The proxy on every peer link.
    pub proxy: Proxy,
    /// The funded dev accounts' keys.
    pub keys: Vec<SecretKey>,
    /// HTTP client for the nodes' APIs.
    pub http: ureq::Agent,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    /// Extra `lanes node` arguments by node (a byzantine mode).
    extra_args: Vec<Vec<String>>,
}

impl ChaosCluster {
    /// Generates a network of `n` validators whose links go through a proxy seeded with `seed`,
    /// and starts it; `extra_args[i]` are added to node i's command line.
    pub fn start(n: usize, seed: u64, extra_args: Vec<Vec<String>>) -> Result<ChaosCluster> {
        let dir = tempfile::tempdir()?;
        let base_port = bench_e2e::free_base_port(n)?;
        testnet::generate(&testnet::TestnetOptions {
            validators: n,
            out: dir.path().to_path_buf(),
            base_port,
            host: "127.0.0.1".into(),
            dev_accounts: ACCOUNTS,
            chain_id: "lanes-chaos".into(),
            ..testnet::TestnetOptions::default()
        })?;
        let load = |i: usize| Home::load(&dir.path().join(format!("validator-{i}")));
        let homes: Vec<Home> = (0..n).map(load).collect::<Result<_>>()?;
        let proxy = Proxy::start(
            &homes.iter().map(|h| h.config.listen).collect::<Vec<_>>(),
            seed,
        )?;
        // Every validator reaches every other through the proxy.
        for (i, home) in homes.iter().enumerate() {
            let mut config = home.config.clone();
            for j in (0..n).filter(|&j| j != i) {
                config
                    .peers
                    .insert(j as u32, proxy.addr(i as u32, j as u32).to_string());
            }
            std::fs::write(home.dir.join("config.toml"), config.to_toml())?;
        }
        let homes: Vec<Home> = (0..n).map(load).collect::<Result<_>>()?;
        let keys = localnet::dev_keys(dir.path())?;
        let mut cluster = ChaosCluster {
            _dir: dir,
            homes,
            proxy,
            keys,
            http: localnet::http_agent(),
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            extra_args,
        };
        for i in 0..n {
            cluster.restart(i)?;
        }
        cluster.wait_healthy(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Validators in the cluster.
    pub fn len(&self) -> usize {
        self.homes.len()
    }

    /// Node `i`'s HTTP API.
    pub fn api(&self, i: usize) -> SocketAddr {
        self.homes[i].config.api
    }

    /// Whether node `i` runs and is not paused.
    pub fn is_up(&self, i: usize) -> bool {
        self.children[i].is_some() && !self.paused[i]
    }

    /// Starts node `i` if it is not running.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.children[i].is_none() {
            let extra = self.extra_args.get(i).cloned().unwrap_or_default();
            self.children[i] = Some(localnet::spawn_node_with(&self.homes[i], &extra)?);
            self.paused[i] = false;
        }
        Ok(())
    }

    /// kill -9 of node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused[i] = false;
    }

    /// Deletes node `i`'s data directory (kill it first).
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        let data = self.homes[i].data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
        }
        Ok(())
    }

    /// SIGSTOP (`pause`) or SIGCONT of node `i`.
    pub fn pause(&mut self, i: usize, pause: bool) -> Result<()> {
        let Some(child) = &self.children[i] else {
            return Ok(());
        };
        let signal = if pause { "-STOP" } else { "-CONT" };
        let ok = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .context("running kill")?
            .success();
        if !ok {
            bail!("kill {signal} of validator {i} failed");
        }
        self.paused[i] = pause;
        Ok(())
    }

    /// `/status` of node `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<Value> {
        self.get(i, "/status")
    }

    /// A GET on node `i`'s API, if it answers 200 with JSON.
    pub fn get(&self, i: usize, path: &str) -> Option<Value> {
        let mut r = self
            .http
            .get(format!("http://{}{path}", self.api(i)))
            .call()
            .ok()?;
        if r.status().as_u16() != 200 {
            return None;
        }
        r.body_mut().read_json().ok()
    }

    /// Executed height of node `i`, if it answers.
    pub fn height(&self, i: usize) -> Option<u64> {
        self.status(i)?["height"].as_u64()
    }

    /// The highest executed height among the nodes that answer.
    pub fn max_height(&self) -> u64 {
        (0..self.len())
            .filter_map(|i| self.height(i))
            .max()
            .unwrap_or(0)
    }

    /// Waits until every running node answers `/health`.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.len() {
            if !self.is_up(i) {
                continue;
            }
            loop {
                if let Some(child) = self.children[i].as_mut() {
                    if let Some(status) = child.try_wait()? {
                        bail!("validator {i} exited ({status}): {}", self.log_tail(i));
                    }
                }
                let healthy = self
                    .http
                    .get(format!("http://{}/health", self.api(i)))
                    .call()
                    .is_ok_and(|r| r.status().as_u16() == 200);
                if healthy {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("validator {i} did not become healthy: {}", self.log_tail(i));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The end of node `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.homes[i].dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            let _ = self.pause(i, false);
            self.kill9(i);
        }
    }
}
