//! `lanes bench`: the end-to-end benchmark. Starts its own temporary localnet (or uses the
//! nodes given), pre-signs transactions, submits them at a rate (or as fast as possible) from
//! several threads, watches blocks commit and then get certified, and reports throughput,
//! latency percentiles to certification (a quorum signed the block's state and receipts roots:
//! the transaction is acknowledged) and to commit, and whether every node ended with the same
//! root.

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
use std::collections::{HashMap, VecDeque};
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
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse_duration)]
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

/// What the submitting threads and the watcher share.
#[derive(Default)]
struct Tracker {
    /// Submitted transactions not yet seen in a block, with when they were sent.
    submitted_at: Mutex<HashMap<Hash, Instant>>,
    /// Per transaction, milliseconds from submission to its block's commit.
    commit_ms: Mutex<Vec<f64>>,
    /// Per transaction, milliseconds from submission to its block's certification.
    certified_ms: Mutex<Vec<f64>>,
    /// When the last commit and the last certification were seen.
    last_seen: Mutex<(Option<Instant>, Option<Instant>)>,
    committed: AtomicU64,
    certified: AtomicU64,
    submitted: AtomicU64,
    rejected: AtomicU64,
}

/// Locks `m`, whether or not a thread panicked holding it.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    let per_sender = presign(args, rate, swaps, clients, &keys, (chain_id, min_fee))?;
    let total = per_sender.iter().map(Vec::len).sum::<usize>();
    let tracker = Arc::new(Tracker::default());
    let start_height = clients[0].status()?.height;
    let done_submitting = Arc::new(AtomicBool::new(false));
    // The watcher: every committed block's transactions, matched to their submission time,
    // then the block's certification.
    let watcher = {
        let (tracker, done, stop) = (tracker.clone(), done_submitting.clone(), stop.clone());
        let api = clients[0].clone();
        std::thread::spawn(move || watch(&api, start_height, &tracker, &done, &stop))
    };
    let started = Instant::now();
    let threads = args.threads.min(per_sender.len()).max(1);
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
    let bar = (!args.json).then(|| progress_bar(total));
    while handles.iter().any(|h| !h.is_finished()) {
        if let Some(b) = &bar {
            show_progress(b, &tracker, started);
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
    report(args, rate, clients, &tracker, started, submit_secs)
}

/// Pre-signs everything, per sender in nonce order: the budget is the rate (or a generous cap)
/// times the duration. A swap workload's pool is set up first.
fn presign(
    args: &E2eBenchArgs,
    rate: Option<u64>,
    swaps: bool,
    clients: &[Client],
    keys: &[SecretKey],
    (chain_id, min_fee): (&str, u64),
) -> Result<Vec<Vec<SignedTransaction>>> {
    let nonces: Vec<u64> = keys
        .iter()
        .map(|k| localnet::account_nonce(&clients[0], k))
        .collect::<Result<_, _>>()?;
    let mut gen = LoadGen::new(chain_id, keys.to_vec(), min_fee, nonces);
    if swaps {
        for tx in gen.setup_txs() {
            let _ = clients[0].submit(&tx.to_bytes());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
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
    Ok(per_sender)
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(total as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} submitted  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

fn show_progress(b: &indicatif::ProgressBar, tracker: &Tracker, started: Instant) {
    let elapsed = started.elapsed().as_secs_f64().max(1e-3);
    let c = tracker.committed.load(Ordering::Relaxed);
    let certified = tracker.certified.load(Ordering::Relaxed);
    b.set_position(tracker.submitted.load(Ordering::Relaxed));
    b.set_message(format!(
        "{c} committed, {certified} certified, {:.0} tx/s",
        certified as f64 / elapsed
    ));
}

/// The 50th, 90th and 99th percentiles of `samples` (zeros when empty).
fn percentiles(samples: &Mutex<Vec<f64>>) -> [f64; 3] {
    let mut lat = locked(samples).clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    [0.50, 0.90, 0.99].map(|p| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize]
        }
    })
}

/// Transactions per second from `started` to `last` (0 when nothing was seen).
fn per_second(count: u64, started: Instant, last: Option<Instant>) -> f64 {
    last.map_or(0.0, |t| {
        count as f64 / t.duration_since(started).as_secs_f64().max(1e-9)
    })
}

/// Prints the results (one JSON object with `--json`) and fails if the roots differ.
///
/// `latency_ms_*` and `tps` are to certification (a quorum signed the block's state and
/// receipts roots: what "acknowledged" means), `commit_latency_ms_*` and `commit_tps` to the
/// block's commit.
fn report(
    args: &E2eBenchArgs,
    rate: Option<u64>,
    clients: &[Client],
    tracker: &Tracker,
    started: Instant,
    submit_secs: f64,
) -> Result<()> {
    let committed = tracker.committed.load(Ordering::Relaxed);
    let certified = tracker.certified.load(Ordering::Relaxed);
    let submitted = tracker.submitted.load(Ordering::Relaxed);
    let (last_commit, last_certified) = *locked(&tracker.last_seen);
    let [p50, p90, p99] = percentiles(&tracker.certified_ms);
    let [c50, c90, c99] = percentiles(&tracker.commit_ms);
    let roots_agree = roots_agree(clients);
    let out = json!({
        "workload": args.workload,
        "validators": clients.len(),
        "rate": rate,
        "duration_s": args.duration.as_secs_f64(),
        "submitted": submitted,
        "committed": committed,
        "certified": certified,
        "failed": tracker.rejected.load(Ordering::Relaxed),
        "tps": per_second(certified, started, last_certified),
        "commit_tps": per_second(committed, started, last_commit),
        "submit_tps": submitted as f64 / submit_secs.max(1e-9),
        "latency_ms_p50": p50,
        "latency_ms_p90": p90,
        "latency_ms_p99": p99,
        "commit_latency_ms_p50": c50,
        "commit_latency_ms_p90": c90,
        "commit_latency_ms_p99": c99,
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
            println!("{k:<22} {v}");
        }
        println!(
            "(tps and latency_ms_*: to certification, a quorum signed the block's result; \
             commit_tps and commit_latency_ms_*: to the block's commit)"
        );
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
/// latency to its block's commit and to its block's certification; after submission ends,
/// waits up to 10 s for the stragglers.
///
/// Each round fetches the blocks that appeared since the last one, then asks `/status` once
/// whether the certified height reached the oldest uncertified ones (a block already
/// certified when fetched counts as certified then).
fn watch(api: &Client, start_height: u64, tracker: &Tracker, done: &AtomicBool, stop: &AtomicBool) {
    let mut next = start_height + 1;
    // Committed blocks not known certified yet: height and their transactions' submissions.
    let mut uncertified: VecDeque<(u64, Vec<Instant>)> = VecDeque::new();
    let mut done_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(b) = api.block(next) {
            let sent = committed(tracker, &b.transactions);
            if b.summary.certified {
                certify(tracker, &sent);
            } else {
                uncertified.push_back((next, sent));
            }
            next += 1;
        }
        if !uncertified.is_empty() {
            if let Ok(s) = api.status() {
                let reached = uncertified
                    .iter()
                    .take_while(|(h, _)| *h <= s.certified_height)
                    .count();
                for (_, sent) in uncertified.drain(..reached) {
                    certify(tracker, &sent);
                }
            }
        }
        if done.load(Ordering::Relaxed) {
            let pending = locked(&tracker.submitted_at).len();
            let since = *done_at.get_or_insert_with(Instant::now);
            let finished = pending == 0 && uncertified.is_empty();
            if finished || since.elapsed() > Duration::from_secs(10) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records the commit of a block holding `txs` now; returns when each of the benchmark's
/// transactions among them was submitted.
fn committed(tracker: &Tracker, txs: &[lanes_api::BlockTx]) -> Vec<Instant> {
    let now = Instant::now();
    let mut sub = locked(&tracker.submitted_at);
    let sent: Vec<Instant> = txs
        .iter()
        .filter_map(|t| sub.remove(&t.hash.parse::<Hash>().ok()?))
        .collect();
    drop(sub);
    let mut lat = locked(&tracker.commit_ms);
    lat.extend(sent.iter().map(|at| ms_between(*at, now)));
    tracker
        .committed
        .fetch_add(sent.len() as u64, Ordering::Relaxed);
    if !sent.is_empty() {
        locked(&tracker.last_seen).0 = Some(now);
    }
    sent
}

/// Records now as the certification of transactions submitted at `sent`.
fn certify(tracker: &Tracker, sent: &[Instant]) {
    let now = Instant::now();
    let mut lat = locked(&tracker.certified_ms);
    lat.extend(sent.iter().map(|at| ms_between(*at, now)));
    tracker
        .certified
        .fetch_add(sent.len() as u64, Ordering::Relaxed);
    if !sent.is_empty() {
        locked(&tracker.last_seen).1 = Some(now);
    }
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    to.duration_since(from).as_secs_f64() * 1e3
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
