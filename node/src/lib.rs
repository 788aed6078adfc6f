//! `lanes node`: one validator. Wires QUIC (tokio) <-> consensus thread <-> apply thread
//! (own rayon pool) <-> RocksDB, and serves the HTTP API.
//!
//! Start-up: open (or create) the database, write genesis state if absent, read the stored head,
//! the latest execution certificate and the persisted safety records, and rebuild the replica
//! from them; so after `kill -9` the node rejoins with every acknowledged block and every vote
//! it promised.
//!
//! [`run`] runs a validator until a signal; [`Node::start`] runs one in-process and
//! [`Node::stop`] stops it (tests start whole networks this way).

pub mod api;
mod apply;
#[cfg(feature = "byzantine")]
pub mod byzantine;
mod catch_up;
mod context;
mod driver;
pub mod execute;
pub mod fixtures;
pub mod hold;
pub mod light;
mod outbox;
pub mod protocol;
pub mod shared;
pub mod state_sync;
pub mod wire;

use anyhow::{bail, Context as _, Result};
use context::{Clock, NodeContext};
use lanes_consensus::{Config, Ed25519Keys, Recovered, Replica};
use lanes_executor::Executor;
use lanes_net::{NetConfig, Network};
use lanes_storage::{ChainIdentity, Store};
use lanes_types::{Genesis, SecretKey};
use shared::{Input, Metrics, Shared, StatusSnapshot};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Everything needed to run one validator (read from its home directory).
pub struct NodeParams {
    /// The chain's genesis.
    pub genesis: Genesis,
    /// This validator's key.
    pub key: SecretKey,
    /// Its index in the genesis validator list.
    pub index: u32,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// HTTP API listen address.
    pub api: SocketAddr,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// Peer address overrides by validator index (e.g. through a fault proxy).
    pub peers: BTreeMap<u32, String>,
    /// Executor threads.
    pub exec_threads: usize,
    /// Log format (text or json), applied by the caller.
    pub log_format: String,
    /// Blocks kept below the head (0: all).
    pub retain_blocks: u64,
    /// The HTTP API's limits (rate, concurrency, body, timeout, event subscribers).
    pub api_limits: api::ApiLimits,
    /// Misbehave on purpose (fault-injection builds only).
    #[cfg(feature = "byzantine")]
    pub byzantine: Option<byzantine::Mode>,
}

/// Bound of the queue into the consensus thread; network messages beyond it are dropped
/// (consensus tolerates loss), client submissions get "busy".
const INPUT_QUEUE: usize = 16_384;

/// Runs the validator until Ctrl-C or SIGTERM, or until one of its threads fails.
pub fn run(p: NodeParams) -> Result<()> {
    let node = Node::start(p)?;
    let failed = node.runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return false,
                _ = term.recv() => return false,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if node.failed() {
                        return true;
                    }
                }
            }
        }
    });
    if !failed {
        tracing::info!("stopping");
    }
    node.stop()
}

/// A running validator: its runtime (QUIC and the API), its consensus and apply threads.
pub struct Node {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    net: lanes_net::NetHandle,
    api: SocketAddr,
    consensus: JoinHandle<Result<()>>,
    apply: JoinHandle<Result<()>>,
}

impl Node {
    /// Opens the database, recovers the replica and starts every part of the validator.
    pub fn start(p: NodeParams) -> Result<Node> {
        check_params(&p)?;
        let store = open_store(&p)?;
        let head = store.head()?.context("no head after genesis")?;
        let recovered = Recovered {
            committed_height: head.height,
            committed_hash: head.block_hash,
            committed_roots: head.roots(),
            stable: store.latest_checkpoint_certificate()?,
            safety: store.safety_records()?,
        };
        tracing::info!(
            validator = p.index,
            height = head.height,
            root = %head.state_root.short(),
            safety_records = recovered.safety.len(),
            "recovered from storage"
        );
        let make_replica = replica_factory(&p, &store);
        let replica = make_replica(recovered)?;
        let executor = Executor::new(p.exec_threads).context("starting the executor pool")?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("api-net")
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let _guard = runtime.enter();
        let (net, inbound, max_frame) = start_network(&p)?;
        let (inputs_tx, inputs_rx) = mpsc::sync_channel(INPUT_QUEUE);
        let (exec_tx, exec_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            store: store.clone(),
            genesis: p.genesis.clone(),
            me: p.index,
            status: Mutex::new(StatusSnapshot {
                height: head.height,
                block_hash: head.block_hash.to_string(),
                state_root: head.state_root.to_string(),
                voting_hold: hold::Hold::from_stored(store.voting_hold()?),
                ..Default::default()
            }),
            metrics: Metrics::default(),
            inputs: inputs_tx,
            blocks: tokio::sync::broadcast::channel(256).0,
            net: net.clone(),
            max_frame,
            #[cfg(feature = "byzantine")]
            byzantine: p.byzantine.map(|mode| {
                Mutex::new(byzantine::Byzantine::new(
                    mode,
                    p.key.clone(),
                    p.genesis.chain_id.clone(),
                    p.index,
                    p.genesis.validators.len() as u32,
                ))
            }),
        });
        runtime.spawn(forward_inbound(inbound, shared.clone()));

        let apply_shared = shared.clone();
        let retain = p.retain_blocks;
        let apply = std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || apply::apply_loop(exec_rx, apply_shared, executor, retain))?;
        let driver = driver::ConsensusDriver {
            make_replica: Box::new(make_replica),
            runtime: runtime.handle().clone(),
            clock: Clock::new(),
        };
        let cons_shared = shared.clone();
        let consensus = std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || driver.run(replica, inputs_rx, cons_shared, exec_tx))?;

        let api = start_api(&runtime, p.api, shared.clone(), p.api_limits.clone())?;
        tracing::info!(validator = p.index, %api, p2p = %p.listen, "node running");
        Ok(Node {
            runtime,
            shared,
            net,
            api,
            consensus,
            apply,
        })
    }

    /// The address the HTTP API listens on (the port chosen when asked for port 0).
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// What the threads share: status, metrics, storage, the consensus input queue.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether the consensus or the apply thread has stopped on its own (an error).
    pub fn failed(&self) -> bool {
        self.consensus.is_finished() || self.apply.is_finished()
    }

    /// Stops the validator: the consensus thread, then (its queue closed) the apply thread,
    /// the network and the API. An error says why a thread had stopped on its own.
    pub fn stop(self) -> Result<()> {
        let failed = self.failed();
        let _ = self.shared.inputs.send(Input::Shutdown);
        let consensus = self.consensus.join();
        let apply = self.apply.join();
        self.runtime.block_on(self.net.shutdown());
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        if failed {
            let why = |r: std::thread::Result<Result<()>>| match r {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(())) => "stopped".into(),
                Err(_) => "panicked".into(),
            };
            bail!(
                "node stopped: consensus: {}; apply: {}",
                why(consensus),
                why(apply)
            );
        }
        tracing::info!("node stopped");
        Ok(())
    }
}

/// Checks the parameters that need no database: our key is the genesis key at our index, and
/// the retention leaves enough blocks for catch-up.
fn check_params(p: &NodeParams) -> Result<()> {
    let validators = p.genesis.validator_set();
    let me = validators
        .get(p.index)
        .with_context(|| format!("validator index {} is not in genesis", p.index))?;
    if me.public_key != p.key.public_key() {
        bail!("the key is not validator {}'s key in genesis", p.index);
    }
    let window = p.genesis.params.watermark_window;
    if p.retain_blocks != 0 && p.retain_blocks < 2 * window {
        bail!(
            "retain_blocks is {}: it must be 0 (keep every block) or at least twice the watermark window ({})",
            p.retain_blocks,
            2 * window
        );
    }
    Ok(())
}

/// Opens (or creates) the database and writes genesis state if it is absent. A new or wiped
/// database holds the validator's votes until it knows how far the chain went (see `hold`).
fn open_store(p: &NodeParams) -> Result<Arc<Store>> {
    std::fs::create_dir_all(&p.data_dir)
        .with_context(|| format!("creating {}", p.data_dir.display()))?;
    let identity = ChainIdentity {
        chain_id: p.genesis.chain_id.clone(),
        genesis_hash: p.genesis.hash(),
    };
    let store = Arc::new(
        Store::open(&p.data_dir, &identity)
            .with_context(|| format!("opening the database in {}", p.data_dir.display()))?,
    );
    if store.head()?.is_none() {
        store
            .set_voting_hold(hold::Hold::Asking.to_stored())
            .context("storing the voting hold")?;
    }
    execute::ensure_genesis(&store, &p.genesis)?;
    Ok(store)
}

/// A function that builds the replica from recovered state (at start, and after a state
/// transfer).
fn replica_factory(
    p: &NodeParams,
    store: &Arc<Store>,
) -> impl Fn(Recovered) -> Result<Replica<NodeContext>> + Send + 'static {
    let (genesis, key, store) = (p.genesis.clone(), p.key.clone(), store.clone());
    let index = p.index;
    move |recovered: Recovered| {
        let ctx = NodeContext {
            keys: Ed25519Keys::new(key.clone(), genesis.validator_set()),
            genesis: genesis.clone(),
            store: store.clone(),
        };
        Replica::new(Config::from_genesis(&genesis, index), ctx, recovered)
            .context("the persisted consensus safety state is unreadable")
    }
}

/// Starts QUIC (within the current runtime) with the peer address overrides; returns the
/// network, its inbound queue and its frame limit, checked against what consensus can send.
fn start_network(
    p: &NodeParams,
) -> Result<(
    lanes_net::NetHandle,
    tokio::sync::mpsc::Receiver<lanes_net::Inbound>,
    usize,
)> {
    let validators = p.genesis.validator_set();
    let mut config = NetConfig::from_validators(p.index, p.key.clone(), p.listen, &validators)
        .context("network configuration")?;
    for peer in &mut config.peers {
        if let Some(addr) = p.peers.get(&peer.index) {
            peer.addr = resolve(addr)?;
        }
    }
    let max_frame = config.max_frame;
    check_frame_limit(&Config::from_genesis(&p.genesis, p.index), max_frame)?;
    let (net, inbound) = Network::start(config).context("starting QUIC")?;
    Ok((net, inbound, max_frame))
}

/// Network -> consensus: every inbound message goes to the consensus thread's queue, or is
/// dropped and counted when the queue is full.
async fn forward_inbound(
    mut inbound: tokio::sync::mpsc::Receiver<lanes_net::Inbound>,
    shared: Arc<Shared>,
) {
    while let Some(msg) = inbound.recv().await {
        let input = Input::Net {
            from: msg.from,
            bytes: msg.msg.to_vec(),
        };
        if shared.inputs.try_send(input).is_err() {
            Metrics::add(&shared.metrics.dropped_inputs, 1);
        }
    }
}

/// Binds the HTTP API on `addr` and serves it on the runtime behind `limits` (the client's
/// address goes to the rate limit); returns the bound address.
fn start_api(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    shared: Arc<Shared>,
    limits: api::ApiLimits,
) -> Result<SocketAddr> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("binding the API on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = api::router(shared, limits).into_make_service_with_connect_info::<SocketAddr>();
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok(bound)
}

/// Refuses to start when consensus could produce a message the network cannot carry: it would
/// be dropped at every send.
fn check_frame_limit(config: &Config, max_frame: usize) -> Result<()> {
    let bound = config.max_message_bytes();
    if bound > max_frame {
        bail!(
            "this genesis lets consensus produce messages of up to {bound} bytes, above the \
             network's frame limit of {max_frame} bytes: lower params.max_block_txs or \
             params.max_tx_bytes (block size), or params.watermark_window (VIEW-CHANGE and \
             NEW-VIEW size) in genesis"
        );
    }
    Ok(())
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_messages_must_fit_the_network_frame() {
        let g = crate::fixtures::genesis("frame-check", &crate::fixtures::keys("frame-check"));
        let config = Config::from_genesis(&g, 0);
        check_frame_limit(&config, lanes_net::DEFAULT_MAX_FRAME).expect("the defaults fit");
        let e = check_frame_limit(&config, 1 << 20).expect_err("above 1 MiB");
        let msg = e.to_string();
        assert!(msg.contains("frame limit of 1048576 bytes"), "{msg}");
        assert!(msg.contains("params.max_block_txs"), "{msg}");
    }
}
