//! A temporary cluster of `lanes node` processes whose every peer link goes through the fault
//! proxy. The processes and their faults (kill -9 and restart, SIGSTOP and SIGCONT, restart
//! with the data directory wiped) are the harness's ([`lanes_cluster::Cluster`], which this
//! dereferences to); this adds the proxy and the homes rewritten to use it.

use super::proxy::Proxy;
use crate::config::Home;
use crate::localnet;
use anyhow::Result;
use lanes_cluster::Cluster;
use lanes_types::SecretKey;
use std::time::Duration;

/// Funded accounts the workload signs with.
pub const ACCOUNTS: usize = 8;

/// The cluster; every node is stopped when it is dropped.
pub struct ChaosCluster {
    /// The node processes (in a temporary directory deleted with them).
    pub nodes: Cluster,
    /// The validators' homes, by index.
    pub homes: Vec<Home>,
    /// The proxy on every peer link.
    pub proxy: Proxy,
    /// The funded dev accounts' keys.
    pub keys: Vec<SecretKey>,
}

impl ChaosCluster {
    /// Generates a network of `n` validators whose links go through a proxy seeded with `seed`,
    /// and starts it; `extra_args[i]` are added to node i's command line.
    pub fn start(n: usize, seed: u64, extra_args: Vec<Vec<String>>) -> Result<ChaosCluster> {
        let mut nodes = Cluster::testnet(localnet::lanes_exe()?, n, ACCOUNTS, "lanes-chaos")?;
        let dir = nodes.dir().to_path_buf();
        let load = |i: usize| Home::load(&dir.join(format!("validator-{i}")));
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
        let keys = localnet::dev_keys(&dir)?;
        for (i, extra) in extra_args.iter().enumerate() {
            nodes.add_args(i, extra);
        }
        nodes.spawn_all()?;
        nodes.wait_healthy(Duration::from_secs(60))?;
        Ok(ChaosCluster {
            nodes,
            homes,
            proxy,
            keys,
        })
    }

    /// `/status` of node `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<lanes_api::Status> {
        self.nodes.client(i).status().ok()
    }

    /// The highest executed height among the nodes that answer.
    pub fn max_height(&self) -> u64 {
        (0..self.nodes.len())
            .filter_map(|i| self.nodes.height(i).ok())
            .max()
            .unwrap_or(0)
    }
}

impl std::ops::Deref for ChaosCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.nodes
    }
}

impl std::ops::DerefMut for ChaosCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.nodes
    }
}
