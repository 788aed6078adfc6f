//! lanes-cluster: the one harness for `lanes node` processes on this machine.
//!
//! `lanes localnet`, `lanes bench`, `lanes chaos` and the end-to-end tests all start, stop and
//! fault their validators through a [`Cluster`]: start a node (its stderr appended to a log
//! file), kill -9 it, pause it (SIGSTOP/SIGCONT), wipe its data directory, stop everything
//! (SIGTERM, then SIGKILL), wait until the running nodes answer `/health`, talk to a node's API
//! (a typed [`lanes_api::Client`] per node), and free loopback ports for a new network. Every
//! node still running is killed when the cluster is dropped.
//!
//! The crate drives the `lanes` binary as a process and depends on no lanes crate but the light
//! `lanes-api`, so the binary and the tests crate can both use it. A node is what its [`NodeSpec`] says:
//! a `lanes node --home DIR` of a home directory (what `lanes testnet` writes; see
//! [`Cluster::testnet`] for a temporary one), or any command line the caller builds.

use anyhow::{bail, Context, Result};
use lanes_api::Client;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines of a node's log that error messages quote.
const LOG_TAIL_LINES: usize = 30;

/// How one node is started.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Arguments after the binary (`node ...`).
    pub args: Vec<String>,
    /// Where its HTTP API listens.
    pub api: SocketAddr,
    /// Its database directory (what [`Cluster::wipe`] deletes).
    pub data: PathBuf,
    /// The file its stderr is appended to.
    pub log: PathBuf,
}

impl NodeSpec {
    /// `lanes node --home DIR`, logging to `DIR/node.log`; the API address and the data
    /// directory are read from `DIR/config.toml` (`api`, `data_dir` relative to the home,
    /// default `data`).
    pub fn home(dir: &Path) -> Result<NodeSpec> {
        let path = dir.join("config.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let api = config
            .get("api")
            .and_then(|v| v.as_str())
            .with_context(|| format!("{}: no api address", path.display()))?
            .parse()
            .with_context(|| format!("{}: bad api address", path.display()))?;
        let data = config
            .get("data_dir")
            .and_then(|v| v.as_str())
            .unwrap_or("data");
        Ok(NodeSpec {
            args: vec!["node".into(), "--home".into(), dir.display().to_string()],
            api,
            data: dir.join(data),
            log: dir.join("node.log"),
        })
    }
}

struct Node {
    spec: NodeSpec,
    child: Option<Child>,
    paused: bool,
}

/// `lanes node` processes on loopback; every one still running is killed on drop.
pub struct Cluster {
    binary: PathBuf,
    dir: PathBuf,
    nodes: Vec<Node>,
    env: Vec<(String, String)>,
    /// One API client per node, by index.
    clients: Vec<Client>,
    stop: Option<Arc<AtomicBool>>,
    /// A temporary network directory, deleted after the nodes are killed.
    _temp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A cluster of `specs` (none started yet) run with `binary`; `dir` is the network's
    /// directory (genesis, homes, dev keys).
    pub fn new(binary: PathBuf, dir: &Path, specs: Vec<NodeSpec>) -> Cluster {
        let clients = clients(&specs, Duration::from_secs(3));
        Cluster {
            binary,
            dir: dir.to_path_buf(),
            nodes: specs
                .into_iter()
                .map(|spec| Node {
                    spec,
                    child: None,
                    paused: false,
                })
                .collect(),
            env: Vec::new(),
            clients,
            stop: None,
            _temp: None,
        }
    }

    /// The homes `dir/validator-0`, `dir/validator-1`, ... (up to the first missing one), as
    /// `lanes testnet` lays them out; none started yet.
    fn homes(binary: PathBuf, dir: &Path) -> Result<Cluster> {
        let mut specs = Vec::new();
        for i in 0.. {
            let home = dir.join(format!("validator-{i}"));
            if !home.exists() {
                break;
            }
            specs.push(NodeSpec::home(&home)?);
        }
        Ok(Cluster::new(binary, dir, specs))
    }

    /// A new network in a temporary directory, written by `lanes testnet` (`validators` on free
    /// loopback ports, `dev_accounts` funded dev keys, chain `chain_id`); none started yet. The
    /// directory is deleted with the cluster.
    pub fn testnet(
        binary: PathBuf,
        validators: usize,
        dev_accounts: usize,
        chain_id: &str,
    ) -> Result<Cluster> {
        let temp = tempfile::tempdir()?;
        let base_port = free_base_port(validators)?;
        let out = Command::new(&binary)
            .arg("testnet")
            .args(["--validators", &validators.to_string()])
            .arg("--out")
            .arg(temp.path())
            .args(["--base-port", &base_port.to_string()])
            .args(["--host", "127.0.0.1"])
            .args(["--dev-accounts", &dev_accounts.to_string()])
            .args(["--chain-id", chain_id])
            .output()
            .context("running lanes testnet")?;
        if !out.status.success() {
            bail!(
                "lanes testnet failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut cluster = Cluster::homes(binary, temp.path())?;
        cluster._temp = Some(temp);
        Ok(cluster)
    }

    /// Sets `key=value` in the environment of every node started from now on.
    pub fn with_env(mut self, key: &str, value: &str) -> Cluster {
        self.env.push((key.into(), value.into()));
        self
    }

    /// HTTP requests to the nodes give up after `timeout` (default 3 s).
    pub fn with_http_timeout(mut self, timeout: Duration) -> Cluster {
        let specs: Vec<NodeSpec> = self.nodes.iter().map(|n| n.spec.clone()).collect();
        self.clients = clients(&specs, timeout);
        self
    }

    /// [`Cluster::wait_healthy`] returns early once `stop` is set (Ctrl-C).
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Cluster {
        self.stop = Some(stop);
        self
    }

    /// Adds `args` to node `i`'s command line (from its next start).
    pub fn add_args(&mut self, i: usize, args: &[String]) {
        self.nodes[i].spec.args.extend_from_slice(args);
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s HTTP API.
    pub fn api(&self, i: usize) -> SocketAddr {
        self.nodes[i].spec.api
    }

    /// Every node's HTTP API, by index.
    pub fn apis(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.spec.api).collect()
    }

    /// Node `i`'s log file.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i].spec.log
    }

    /// Starts node `i` unless it is running.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.spec.log)
            .with_context(|| format!("opening {}", node.spec.log.display()))?;
        let child = Command::new(&self.binary)
            .args(&node.spec.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting validator {i}"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn spawn_all(&mut self) -> Result<()> {
        (0..self.len()).try_for_each(|i| self.spawn(i))
    }

    /// Whether node `i` was started and not killed since.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Whether node `i` runs and is not paused.
    pub fn is_up(&self, i: usize) -> bool {
        self.is_running(i) && !self.nodes[i].paused
    }

    /// kill -9 of node `i` (if it runs), waiting for it to be gone.
    pub fn kill9(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// kill -9 of every node.
    pub fn kill_all(&mut self) {
        (0..self.len()).for_each(|i| self.kill9(i));
    }

    /// SIGSTOP (`pause`) or SIGCONT of node `i`, if it runs.
    pub fn pause(&mut self, i: usize, pause: bool) -> Result<()> {
        if !self.is_running(i) {
            return Ok(());
        }
        self.signal(i, if pause { "STOP" } else { "CONT" })?;
        self.nodes[i].paused = pause;
        Ok(())
    }

    /// Deletes node `i`'s data directory (kill it first).
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        let data = &self.nodes[i].spec.data;
        if data.exists() {
            std::fs::remove_dir_all(data).with_context(|| format!("wiping {}", data.display()))?;
        }
        Ok(())
    }

    /// Stops every node: SIGTERM (after a SIGCONT if paused), up to 5 s to exit, then SIGKILL.
    pub fn stop_all(&mut self) {
        for i in 0..self.len() {
            if self.is_running(i) {
                let _ = self.pause(i, false);
                let _ = self.signal(i, "TERM");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for i in 0..self.len() {
            if let Some(child) = self.nodes[i].child.as_mut() {
                while Instant::now() < deadline {
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            self.kill9(i);
        }
    }

    fn signal(&self, i: usize, signal: &str) -> Result<()> {
        let Some(child) = &self.nodes[i].child else {
            return Ok(());
        };
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .context("running kill")?
            .success();
        if !ok {
            bail!("kill -{signal} of validator {i} failed");
        }
        Ok(())
    }

    /// Fails, naming it and quoting its log, if a node that was started has exited since.
    pub fn ensure_running(&mut self) -> Result<()> {
        for i in 0..self.len() {
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "validator {i} exited ({status}); see {}:\n{}",
                        self.log_path(i).display(),
                        self.log_tail(i)
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits until every node that is up answers `/health`; fails if one exits or `timeout`
    /// passes, and returns early once the stop flag ([`Cluster::with_stop`]) is set.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.len() {
            while self.is_up(i) {
                if self
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    return Ok(());
                }
                self.ensure_running()?;
                if self.clients[i].health().is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "validator {i} did not become healthy within {timeout:?}; see {}:\n{}",
                        self.log_path(i).display(),
                        self.log_tail(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Node `i`'s API (requests give up after the cluster's HTTP timeout).
    pub fn client(&self, i: usize) -> &Client {
        &self.clients[i]
    }

    /// Every node's API, by index.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The executed height node `i` reports in `/status`.
    pub fn height(&self, i: usize) -> Result<u64> {
        Ok(self.clients[i].status()?.height)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A client per node, sharing one connection pool, giving up after `timeout`.
fn clients(specs: &[NodeSpec], timeout: Duration) -> Vec<Client> {
    let Some(first) = specs.first() else {
        return Vec::new();
    };
    let proto = Client::with_timeout(&first.api.to_string(), timeout);
    specs.iter().map(|s| proto.at(&s.api.to_string())).collect()
}

/// A first port `P` with `P..P+n` (UDP: the validators' QUIC) and `P+100..P+100+n` (TCP: their
/// APIs) free on loopback right now: the layout of `lanes testnet --base-port P`.
pub fn free_base_port(n: usize) -> Result<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..500 {
        let p: u16 = rng.gen_range(20_000..30_000);
        let free = (0..n as u16).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p + 100 + i)).is_ok()
        });
        if free {
            return Ok(p);
        }
    }
    bail!("no free ports for a temporary network")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "node" that is `sh -c SCRIPT`, with its log and data in `dir`.
    fn sh(dir: &Path, script: &str) -> NodeSpec {
        NodeSpec {
            args: vec!["-c".into(), script.into()],
            api: "127.0.0.1:1".parse().unwrap(),
            data: dir.join("data"),
            log: dir.join("node.log"),
        }
    }

    #[test]
    fn a_home_spec_reads_the_api_and_data_directory_from_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "name = \"v\"\napi = \"127.0.0.1:7101\"\n").unwrap();
        let spec = NodeSpec::home(dir.path()).unwrap();
        assert_eq!(spec.api, "127.0.0.1:7101".parse().unwrap());
        assert_eq!(spec.data, dir.path().join("data"));
        assert_eq!(spec.log, dir.path().join("node.log"));
        assert_eq!(spec.args[..2], ["node", "--home"]);
        std::fs::write(&config, "api = \"127.0.0.1:7101\"\ndata_dir = \"/x\"\n").unwrap();
        assert_eq!(
            NodeSpec::home(dir.path()).unwrap().data,
            PathBuf::from("/x")
        );
        std::fs::write(&config, "name = \"v\"\n").unwrap();
        let err = NodeSpec::home(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no api address"), "{err}");
    }

    #[test]
    fn nodes_start_pause_continue_die_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let specs = vec![sh(dir.path(), "echo up >&2; exec sleep 30")];
        let mut c = Cluster::new("/bin/sh".into(), dir.path(), specs);
        c.spawn_all().unwrap();
        assert!(c.is_up(0));
        c.pause(0, true).unwrap();
        assert!(c.is_running(0) && !c.is_up(0));
        c.pause(0, false).unwrap();
        c.ensure_running().unwrap();
        // A paused node still stops (SIGCONT before SIGTERM).
        c.pause(0, true).unwrap();
        let start = Instant::now();
        c.stop_all();
        assert!(start.elapsed() < Duration::from_secs(4));
        assert!(!c.is_running(0));
        // A node that dies is named with its log.
        let mut c = Cluster::new(
            "/bin/sh".into(),
            dir.path(),
            vec![sh(dir.path(), "echo dying >&2; exit 3")],
        );
        c.spawn(0).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let err = c.ensure_running().unwrap_err().to_string();
        assert!(
            err.contains("validator 0 exited") && err.contains("dying"),
            "{err}"
        );
        assert!(c.log_tail(0).starts_with("up\ndying"), "{}", c.log_tail(0));
        c.kill9(0);
        assert!(!c.is_running(0));
    }

    #[test]
    fn wipe_deletes_the_data_directory_and_tolerates_its_absence() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster::new("/bin/sh".into(), dir.path(), vec![sh(dir.path(), "")]);
        std::fs::create_dir_all(dir.path().join("data/db")).unwrap();
        c.wipe(0).unwrap();
        assert!(!dir.path().join("data").exists());
        c.wipe(0).unwrap();
    }

    #[test]
    fn a_free_base_port_has_its_peer_and_api_ports_free() {
        let p = free_base_port(4).unwrap();
        for i in 0..4 {
            std::net::UdpSocket::bind(("127.0.0.1", p + i)).unwrap();
            std::net::TcpListener::bind(("127.0.0.1", p + 100 + i)).unwrap();
        }
    }
}
