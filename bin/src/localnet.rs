//! `lanes localnet`: a whole network on this machine. Generates a testnet (once), starts each
//! validator as its own `lanes node` process on loopback, waits until they are healthy, prints
//! where their APIs listen, shows a live line per committed block, and keeps a light load of
//! transfers and swaps running. Ctrl-C stops every child; running it again resumes the chain.

use crate::config::Home;
use crate::load::LoadGen;
use crate::testnet;
use anyhow::{bail, Context, Result};
use lanes_api::{ApiError, BlocksQuery, Client};
use lanes_cluster::{Cluster, NodeSpec};
use lanes_types::codec::Encode;
use lanes_types::SecretKey;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `lanes localnet`.
#[derive(clap::Args, Debug)]
pub struct LocalnetArgs {
    /// Number of validators (at least 4).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Where the network lives (keys, genesis, databases, logs).
    #[arg(long, default_value = ".lanes/localnet")]
    dir: PathBuf,
    /// Delete the directory first and start a new chain.
    #[arg(long)]
    reset: bool,
    /// Do not run the built-in load.
    #[arg(long)]
    no_load: bool,
    /// Transactions per second of the built-in load.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// First port: validators use P.., their APIs P+100..
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
}

/// Runs `lanes localnet` until Ctrl-C.
pub fn run(args: LocalnetArgs) -> Result<()> {
    if args.validators < 4 {
        bail!(
            "PBFT needs at least 4 validators (3f+1); got {}",
            args.validators
        );
    }
    if args.reset && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    let home0 = args.dir.join("validator-0");
    if !home0.join("config.toml").exists() {
        println!(
            "creating a {}-validator network in {}",
            args.validators,
            args.dir.display()
        );
        testnet::generate(&testnet::TestnetOptions {
            validators: args.validators,
            out: args.dir.clone(),
            base_port: args.base_port,
            host: "127.0.0.1".into(),
            ..testnet::TestnetOptions::default()
        })?;
    } else {
        println!(
            "resuming the network in {} (use --reset for a new chain)",
            args.dir.display()
        );
    }
    let mut homes = Vec::new();
    for i in 0.. {
        let dir = args.dir.join(format!("validator-{i}"));
        if !dir.exists() {
            break;
        }
        homes.push(Home::load(&dir)?);
    }
    if homes.len() < 4 {
        bail!(
            "{} holds {} validator homes; use --reset",
            args.dir.display(),
            homes.len()
        );
    }
    let specs = homes.iter().map(|h| NodeSpec::home(&h.dir));
    let mut nodes = Cluster::new(lanes_exe()?, &args.dir, specs.collect::<Result<_>>()?);

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc_flag(flag)?;

    nodes = nodes.with_stop(stop.clone());
    let result = nodes
        .spawn_all()
        .and_then(|()| supervise(&args, &homes, &mut nodes, &stop));
    nodes.stop_all();
    result
}

/// The running `lanes` executable, which starts the nodes.
pub fn lanes_exe() -> Result<PathBuf> {
    std::env::current_exe().context("locating the lanes binary")
}

fn supervise(
    args: &LocalnetArgs,
    homes: &[Home],
    nodes: &mut Cluster,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    nodes.wait_healthy(Duration::from_secs(60))?;
    if stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    println!("{} validators running:", nodes.len());
    for (i, home) in homes.iter().enumerate() {
        println!(
            "  {:<12} api http://{}   log {}",
            home.config.name,
            nodes.api(i),
            nodes.log_path(i).display()
        );
    }
    println!(
        "explore with e.g. `lanes status --node http://{}`; Ctrl-C stops everything",
        nodes.api(0)
    );
    let clients = nodes.clients().to_vec();
    if !args.no_load {
        let dev = dev_keys(&args.dir)?;
        let genesis = homes[0].genesis.clone();
        let (stop, clients, rate) = (stop.clone(), clients.clone(), args.rate);
        std::thread::spawn(move || {
            if let Err(e) = run_load(&genesis, dev, &clients, rate, &stop) {
                eprintln!("built-in load stopped: {e:#}");
            }
        });
    }
    follow(&clients, nodes, stop)
}

/// Prints a line per committed block until Ctrl-C; reports a validator that exits.
fn follow(clients: &[Client], nodes: &mut Cluster, stop: &AtomicBool) -> Result<()> {
    println!(
        "{:>8}  {:>5}  {:<10}  {:<9}  {:>4}  time",
        "height", "txs", "root", "certified", "view"
    );
    // Start a few blocks back from the head (the whole history can be long on a resumed
    // chain); from the first block if node 0 does not answer.
    let head = clients[0].status().map_or(0, |s| s.height);
    let mut next = head.saturating_sub(4).max(1);
    let mut source = 0usize;
    while !stop.load(Ordering::Relaxed) {
        nodes.ensure_running()?;
        let query = BlocksQuery {
            from: Some(next),
            limit: Some(100),
        };
        match clients[source].blocks(query) {
            Ok(blocks) => {
                for b in blocks {
                    let root = b.state_root.as_deref().unwrap_or("");
                    println!(
                        "{:>8}  {:>5}  {:<10}  {:<9}  {:>4}  {}",
                        b.height,
                        b.txs,
                        &root[..root.len().min(10)],
                        if b.certified { "yes" } else { "pending" },
                        b.view,
                        clock_time(b.timestamp_ms),
                    );
                    next = b.height + 1;
                }
            }
            Err(_) => source = (source + 1) % clients.len(),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("stopping");
    Ok(())
}

fn clock_time(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

pub fn dev_keys(dir: &Path) -> Result<Vec<SecretKey>> {
    let mut keys = Vec::new();
    for k in 0.. {
        let path = dir.join("dev-keys").join(format!("dev-{k}.key"));
        if !path.exists() {
            break;
        }
        keys.push(crate::config::read_key(&path)?);
    }
    if keys.len() < 2 {
        bail!("no dev keys in {}", dir.join("dev-keys").display());
    }
    Ok(keys)
}

/// The next nonce of `key`'s account, as the node at `api` knows it.
pub fn account_nonce(api: &Client, key: &SecretKey) -> Result<u64, ApiError> {
    Ok(api.account(key.public_key().address())?.nonce)
}

/// The built-in load: pool setup once, then transfers and swaps at `rate` per second.
fn run_load(
    genesis: &lanes_types::Genesis,
    keys: Vec<SecretKey>,
    clients: &[Client],
    rate: u64,
    stop: &AtomicBool,
) -> Result<()> {
    let nonces: Vec<u64> = keys
        .iter()
        .map(|k| account_nonce(&clients[0], k))
        .collect::<Result<_, _>>()?;
    let fresh = nonces.iter().all(|&n| n == 0);
    let mut gen = LoadGen::new(
        &genesis.chain_id,
        keys.clone(),
        genesis.params.min_fee,
        nonces,
    );
    if fresh {
        for tx in gen.setup_txs() {
            let _ = clients[0].submit(&tx.to_bytes());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let tick = Duration::from_millis(100);
    let per_tick = (rate / 10).max(1) as usize;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        for tx in gen.next_batch(per_tick, !fresh || n > 0) {
            let api = &clients[n % clients.len()];
            n += 1;
            if let Err(e) = api.submit(&tx.to_bytes()) {
                if e.message().is_some_and(|m| m.contains("nonce")) {
                    // Re-sync every sender from the chain.
                    for (i, k) in keys.iter().enumerate() {
                        if let Ok(nonce) = account_nonce(api, k) {
                            gen.set_nonce(i, nonce);
                        }
                    }
                    break;
                }
            }
        }
        if let Some(rest) = tick.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}

/// Sets `flag` on Ctrl-C or SIGTERM (a tiny runtime thread waits for the signals).
pub fn ctrlc_flag(flag: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
    Ok(())
}
