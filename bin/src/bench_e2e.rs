//! `lanes bench`: the end-to-end benchmark. Starts its own temporary localnet (or uses the
//! nodes given), pre-signs transactions, submits them at a rate (or as fast as possible) from
//! several threads, watches blocks commit, and reports throughput, latency percentiles and
//! whether every node ended with the same root.

use crate::config::Home;
use crate::load::LoadGen;
use crate::localnet;
use anyhow::{bail, Context, Result};
use lanes_api::Client;
use lanes_cluster::Cluster;
use lanes_executor::tx::SignedTransaction;
use lanes_types::codec::Encode;
use lanes_types::{tx_hash, Hash, SecretKey};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `lanes bench` (end to end).
#[derive(clap::Args, Debug)]
pub struct E2eBenchArgs {
    /// Validators of the temporary localnet.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// How long to submit, e.g. 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Transactions per second to submit, or `max`.
    #[arg(long, default_value = "max")]
    rate: String,
    /// transfer, swap or mixed.
    #[arg(long, default_value = "transfer")]
    workload: String,
    /// Use these running nodes (API URLs) instead of a temporary localnet; their chain must
    /// fund the dev keys of `--network-dir` (as `lanes localnet` does).
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// With `--node`: the network directory holding `dev-keys/`.
    #[arg(long, default_value = ".lanes/localnet")]
    network_dir: std::path::PathBuf,
    /// Submitting threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Parses "30s", "2m", "500ms" or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (e.g. 30s, 2m)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("bad duration {s:?} (e.g. 30s, 2m)")),
    }
}

/// How long a request to a node may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Accounts the temporary localnet funds: senders keep their own nonce sequence, so more of
/// them means more parallel submission.
const BENCH_ACCOUNTS: usize = 64;

/// Runs `lanes bench`.
pub fn run(args: E2eBenchArgs) -> Result<()> {
    let rate: Option<u64> = match args.rate.as_str() {
        "max" => None,
        r => Some(r.parse().ok().filter(|r| *r > 0).with_context(|| {
            format!("bad --rate {r:?}: a positive number of transactions per second, or max")
        })?),
    };
    let swaps = match args.workload.as_str() {
        "transfer" => false,
        "swap" | "mixed" => true,
        w => bail!("unknown workload {w:?} (transfer, swap or mixed)"),
    };
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    localnet::ctrlc_flag(stop.clone())?;
    let mut cluster = None;
    let (clients, keys, chain_id, min_fee) = if args.nodes.is_empty() {
        if args.validators < 4 {
            bail!(
                "PBFT needs at least 4 validators (3f+1); got {}",
                args.validators
            );
        }
        let exe = localnet::lanes_exe()?;
        let c = Cluster::testnet(exe, args.validators, BENCH_ACCOUNTS, "lanes-bench")?;
        let nodes = cluster.insert(c.with_stop(stop.clone()));
        let genesis = Home::load(&nodes.dir().join("validator-0"))?.genesis;
        nodes.spawn_all()?;
        nodes.wait_healthy(Duration::from_secs(60))?;
        let keys = localnet::dev_keys(nodes.dir())?;
        let (chain_id, min_fee) = (genesis.chain_id.clone(), genesis.params.min_fee);
        (nodes.clients().to_vec(), keys, chain_id, min_fee)
    } else {
        let proto = Client::with_timeout(&args.nodes[0], HTTP_TIMEOUT);
        let clients: Vec<Client> = args.nodes.iter().map(|u| proto.at(u)).collect();
        let keys = localnet::dev_keys(&args.network_dir)?;
        let s = clients[0].status()?;
        (clients, keys, s.chain_id, s.min_fee)
    };
    let result = bench(
        &args,
        rate,
        swaps,
        &clients,
        keys,
        (&chain_id, min_fee),
        &stop,
    );
    if let Some(nodes) = &mut cluster {
        nodes.stop_all();
    }
    result
}

struct Tracker {
    submitted_at: Mutex<HashMap<Hash, Instant>>,
    latencies_ms: Mutex<Vec<f64>>,
    committed: AtomicU64,
    submitted: AtomicU64,
    rejected: AtomicU64,
}

#[allow(clippy::too_many_arguments)]
fn bench(
    args: &E2eBenchArgs,
    rate: Option<u64>,
    swaps: bool,
    clients: &[Client],
    keys: Vec<SecretKey>,
    (chain_id, min_fee): (&str, u64),
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let nonces: Vec<u64> = keys
        .iter()
        .map(|k| localnet::account_nonce(&clients[0], k))
        .collect::<Result<_, _>>()?;
    let mut gen = LoadGen::new(chain_id, keys.clone(), min_fee, nonces);
    if swaps {
        for tx in gen.setup_txs() {
            let _ = clients[0].submit(&tx.to_bytes());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    // Pre-sign everything: the budget is the rate (or a generous cap) times the duration.
    let secs = args.duration.as_secs_f64().max(0.1);
    let total = (rate.unwrap_or(20_000) as f64 * secs).ceil() as usize;
    let senders = keys.len();
    let mut per_sender: Vec<Vec<SignedTransaction>> = vec![Vec::new(); senders];
    let mut made = 0;
    while made < total {
        for tx in gen.next_batch(senders.min(total - made), swaps) {
            let who = keys
                .iter()
                .position(|k| k.public_key() == tx.tx.sender)
                .unwrap_or(0);
            per_sender[who].push(tx);
            made += 1;
        }
    }
    let tracker = Arc::new(Tracker {
        submitted_at: Mutex::new(HashMap::with_capacity(total)),
        latencies_ms: Mutex::new(Vec::with_capacity(total)),
        committed: AtomicU64::new(0),
        submitted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let start_height = clients[0].status()?.height;
    let done_submitting = Arc::new(AtomicBool::new(false));
    // The watcher: every committed block's transactions, matched to their submission time.
    let watcher = {
        let (tracker, done, stop) = (tracker.clone(), done_submitting.clone(), stop.clone());
        let api = clients[0].clone();
        std::thread::spawn(move || watch(&api, start_height, &tracker, &done, &stop))
    };
    let bar = (!args.json).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} submitted  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let started = Instant::now();
    let threads = args.threads.min(senders).max(1);
    let per_thread_rate = rate.map(|r| r as f64 / threads as f64);
    let mut handles = Vec::new();
    let mut lanes: Vec<Vec<(usize, Vec<SignedTransaction>)>> = vec![Vec::new(); threads];
    for (s, txs) in per_sender.into_iter().enumerate() {
        lanes[s % threads].push((s, txs));
    }
    for lane in lanes {
        let (tracker, stop, clients) = (tracker.clone(), stop.clone(), clients.to_vec());
        let duration = args.duration;
        handles.push(std::thread::spawn(move || {
            submit_lane(lane, &clients, per_thread_rate, duration, &tracker, &stop)
        }));
    }
    while handles.iter().any(|h| !h.is_finished()) {
        if let Some(b) = &bar {
            let elapsed = started.elapsed().as_secs_f64().max(1e-3);
            let c = tracker.committed.load(Ordering::Relaxed);
            b.set_position(tracker.submitted.load(Ordering::Relaxed));
            b.set_message(format!("{c} committed, {:.0} tx/s", c as f64 / elapsed));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for h in handles {
        let _ = h.join();
    }
    let submit_secs = started.elapsed().as_secs_f64();
    done_submitting.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let commit_secs = started.elapsed().as_secs_f64();
    let committed = tracker.committed.load(Ordering::Relaxed);
    let submitted = tracker.submitted.load(Ordering::Relaxed);
    let mut lat = tracker
        .latencies_ms
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize]
        }
    };
    let roots_agree = roots_agree(clients);
    let out = json!({
        "workload": args.workload,
        "validators": clients.len(),
        "rate": rate,
        "duration_s": args.duration.as_secs_f64(),
        "submitted": submitted,
        "committed": committed,
        "failed": tracker.rejected.load(Ordering::Relaxed),
        "tps": committed as f64 / commit_secs.max(1e-9),
        "submit_tps": submitted as f64 / submit_secs.max(1e-9),
        "latency_ms_p50": pct(0.50),
        "latency_ms_p90": pct(0.90),
        "latency_ms_p99": pct(0.99),
        "roots_agree": roots_agree,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (k, v) in out.as_object().into_iter().flatten() {
            let v = match v {
                Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
                other => other.to_string(),
            };
            println!("{k:<16} {v}");
        }
    }
    if !roots_agree {
        bail!("the nodes did not end with the same state root");
    }
    Ok(())
}

/// Most transactions in one `POST /txs` of the benchmark.
const MAX_BATCH: usize = 512;

/// Submits one thread's senders' transactions in batches, each sender to its own node so its
/// nonces arrive in order, paced to `rate` when given (a batch holds about 20 ms of it), until
/// `duration` or the budget ends.
fn submit_lane(
    lane: Vec<(usize, Vec<SignedTransaction>)>,
    clients: &[Client],
    rate: Option<f64>,
    duration: Duration,
    tracker: &Tracker,
    stop: &AtomicBool,
) {
    let batch_max = rate.map_or(MAX_BATCH, |r| ((r * 0.02) as usize).clamp(1, MAX_BATCH));
    // Per node, its senders' queues, each in reverse so pop() gives nonce order.
    let mut by_node: Vec<Vec<Vec<SignedTransaction>>> = vec![Vec::new(); clients.len()];
    for (sender, mut txs) in lane {
        txs.reverse();
        by_node[sender % clients.len()].push(txs);
    }
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let mut any = false;
        for (node, queues) in by_node.iter_mut().enumerate() {
            if stop.load(Ordering::Relaxed) || start.elapsed() >= duration {
                return;
            }
            let batch = take_round_robin(queues, batch_max);
            if batch.is_empty() {
                continue;
            }
            any = true;
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(sent as f64 / r);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let raws: Vec<Vec<u8>> = batch.iter().map(|tx| tx.to_bytes()).collect();
            let at = Instant::now();
            if let Ok(mut m) = tracker.submitted_at.lock() {
                m.extend(raws.iter().map(|raw| (tx_hash(raw), at)));
            }
            let (ok, refused) = match clients[node].submit_batch(&raws) {
                Ok(answers) => {
                    let ok = answers.iter().filter(|a| a.result().is_ok()).count() as u64;
                    (ok, answers.len() as u64 - ok)
                }
                Err(_) => (0, raws.len() as u64),
            };
            tracker.submitted.fetch_add(ok, Ordering::Relaxed);
            tracker.rejected.fetch_add(refused, Ordering::Relaxed);
            sent += raws.len() as u64;
        }
        if !any {
            return;
        }
    }
}

/// Up to `max` transactions taken one per sender in turn, so every sender's nonces stay in order.
fn take_round_robin(queues: &mut [Vec<SignedTransaction>], max: usize) -> Vec<SignedTransaction> {
    let mut batch = Vec::with_capacity(max);
    while batch.len() < max {
        let before = batch.len();
        for q in queues.iter_mut() {
            if batch.len() == max {
                break;
            }
            if let Some(tx) = q.pop() {
                batch.push(tx);
            }
        }
        if batch.len() == before {
            break;
        }
    }
    batch
}

/// Follows committed blocks from `start_height` and records each submitted transaction's
/// latency; after submission ends, waits up to 10 s for the stragglers.
fn watch(api: &Client, start_height: u64, tracker: &Tracker, done: &AtomicBool, stop: &AtomicBool) {
    let mut next = start_height + 1;
    let mut quiet_since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut progressed = false;
        if let Ok(b) = api.block(next) {
            let now = Instant::now();
            let mut sub = tracker
                .submitted_at
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut lat = tracker
                .latencies_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for t in &b.transactions {
                let Ok(h) = t.hash.parse::<Hash>() else {
                    continue;
                };
                if let Some(at) = sub.remove(&h) {
                    lat.push(now.duration_since(at).as_secs_f64() * 1e3);
                    tracker.committed.fetch_add(1, Ordering::Relaxed);
                }
            }
            next += 1;
            progressed = true;
        }
        if done.load(Ordering::Relaxed) {
            let pending = tracker.submitted_at.lock().map(|m| m.len()).unwrap_or(0);
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if pending == 0 || since.elapsed() > Duration::from_secs(10) {
                return;
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether every node reports the same block hash and root at the lowest common height.
fn roots_agree(clients: &[Client]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let heights: Vec<u64> = clients
            .iter()
            .filter_map(|c| Some(c.status().ok()?.height))
            .collect();
        if heights.len() == clients.len() && heights.windows(2).all(|w| w[0] == w[1]) {
            let h = heights[0];
            let blocks: Vec<(String, Option<String>)> = clients
                .iter()
                .filter_map(|c| c.block(h).ok())
                .map(|b| (b.summary.hash, b.summary.state_root))
                .collect();
            return blocks.len() == clients.len() && blocks.windows(2).all(|w| w[0] == w[1]);
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
