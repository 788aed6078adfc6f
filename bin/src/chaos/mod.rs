//! `lanes chaos`: fault-injection scenarios against a temporary cluster of real `lanes node`
//! processes, each checked by the history checker.
//!
//! A scenario starts a four-validator cluster whose peer links all go through the fault proxy,
//! runs the workload, injects its faults for the middle half of `--duration`, heals everything,
//! measures how long until a new transaction is acknowledged (at most 10 s), lets the nodes
//! settle, and checks the invariants ([`history::check`]).

pub mod cluster;
pub mod history;
pub mod proxy;
pub mod receipts;

use anyhow::{bail, Result};
use cluster::ChaosCluster;
use history::{History, Workload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};

/// Every scenario, in the order `all` runs them.
pub const SCENARIOS: [(&str, &str); 10] = [
    (
        "minority-partition",
        "one backup cut off from the others, then healed",
    ),
    (
        "primary-partitioned",
        "the current primary cut off from the others, then healed",
    ),
    (
        "quorum-lost",
        "two against two: no progress while split, progress after",
    ),
    (
        "one-way-partition",
        "one node's packets to the others dropped, not the other way",
    ),
    (
        "rolling-restarts",
        "every node in turn killed with SIGKILL and restarted",
    ),
    (
        "kill-random",
        "kill -9 of a random node every few seconds, restarted soon after",
    ),
    (
        "lossy-network",
        "10% loss, 50 ms delay with jitter, duplication and reordering",
    ),
    ("pause", "one node stopped with SIGSTOP, then continued"),
    (
        "wiped-node",
        "one node restarted with its data directory wiped",
    ),
    (
        "garbage-and-unknown-peer",
        "garbage datagrams to every node and an unknown peer dialling in",
    ),
];

/// Scenarios with one byzantine validator (a `--features byzantine` build): name, the
/// validator, its `lanes node --byzantine` mode, and what it does. The others must not notice
/// beyond a view change, and a wrong root (state or receipts) must get its signer flagged and
/// stay out of every certificate.
pub const BYZANTINE: [(&str, usize, &str, &str); 6] = [
    (
        "equivocating-primary",
        0,
        "equivocate",
        "the primary of view 0 proposes different blocks to the two halves",
    ),
    (
        "wrong-root",
        3,
        "wrong-root",
        "a validator signs a wrong state root after every block",
    ),
    (
        "wrong-receipts",
        1,
        "wrong-receipts",
        "a validator signs the right state root but a wrong receipts root after every block",
    ),
    (
        "conflicting-voter",
        1,
        "conflict",
        "a validator votes for blocks that do not exist",
    ),
    (
        "silent-validator",
        2,
        "silent",
        "a validator sends nothing at all",
    ),
    (
        "garbage-sender",
        3,
        "garbage",
        "a validator adds garbage, bad signatures and forged NEW-VIEWs",
    ),
];

/// Whether this build can start byzantine validators.
const BYZANTINE_BUILD: bool = cfg!(feature = "byzantine");

/// Arguments of `lanes chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// A scenario name, a comma-separated list, or `all` (see --list).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Length of each scenario (faults during its middle half), e.g. 30s or 1m.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse_duration)]
    pub duration: Duration,
    /// Seed of the workload and of the faults' randomness (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Report {
    name: String,
    passed: bool,
    violation: Option<String>,
    faults: Vec<String>,
    history: History,
    lost_acknowledged: usize,
    diverged: bool,
    receipts_checked: usize,
    height: u64,
    view_changes: u64,
    recovery_s: Option<f64>,
}

impl Report {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "passed": self.passed,
            "violation": self.violation,
            "faults": self.faults,
            "submitted": self.history.submitted,
            "acknowledged": self.history.acked.len(),
            "lost_acknowledged": self.lost_acknowledged,
            "diverged": self.diverged,
            "receipts_checked": self.receipts_checked,
            "height": self.height,
            "view_changes": self.view_changes,
            "recovery_s": self.recovery_s,
        })
    }
}

/// Runs `lanes chaos`.
pub fn run(args: ChaosArgs) -> Result<()> {
    if args.list {
        for (name, what) in SCENARIOS {
            println!("{name:<26} {what}");
        }
        for (name, _, _, what) in BYZANTINE {
            let note = if BYZANTINE_BUILD {
                ""
            } else {
                " (needs --features byzantine)"
            };
            println!("{name:<26} {what}{note}");
        }
        return Ok(());
    }
    let names: Vec<&str> = if args.scenario == "all" {
        let byzantine = BYZANTINE.iter().filter(|_| BYZANTINE_BUILD).map(|s| s.0);
        SCENARIOS.iter().map(|s| s.0).chain(byzantine).collect()
    } else {
        args.scenario.split(',').map(str::trim).collect()
    };
    for n in &names {
        let byzantine = BYZANTINE.iter().any(|s| s.0 == *n);
        if byzantine && !BYZANTINE_BUILD {
            bail!("scenario {n:?} needs a build with byzantine validators: cargo build --release --workspace --features lanes/byzantine");
        }
        if !byzantine && !SCENARIOS.iter().any(|s| s.0 == *n) {
            bail!("unknown scenario {n:?}; `lanes chaos --list` shows them");
        }
    }
    if args.duration < Duration::from_secs(8) {
        bail!("--duration must be at least 8s");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut reports = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let report = run_scenario(name, args.duration, seed.wrapping_add(k as u64), !args.json)?;
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    let passed = reports.iter().all(|r| r.passed);
    if args.json {
        let out = json!({
            "seed": seed,
            "passed": passed,
            "scenarios": reports.iter().map(Report::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "seed {seed}: {} of {} scenarios passed",
            reports.iter().filter(|r| r.passed).count(),
            reports.len()
        );
    }
    if !passed {
        bail!("a scenario failed (re-run with --seed {seed})");
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!("{:<26} {}", r.name, if r.passed { "PASS" } else { "FAIL" });
    println!("  faults        {}", r.faults.join("; "));
    println!(
        "  transactions  {} submitted, {} acknowledged, {} acknowledged but lost",
        r.history.submitted,
        r.history.acked.len(),
        r.lost_acknowledged
    );
    println!(
        "  receipts      certified answers of {} sampled transactions compared across nodes",
        r.receipts_checked
    );
    println!(
        "  height        {} (view changes {})",
        r.height, r.view_changes
    );
    match r.recovery_s {
        Some(s) => println!("  recovery      {s:.1} s after the last fault healed"),
        None => println!("  recovery      none"),
    }
    if let Some(v) = &r.violation {
        println!("  violated      {v}");
    }
}

/// Injects `name`'s faults, acting until `until`; returns what was done.
fn inject(
    name: &str,
    c: &mut ChaosCluster,
    rng: &mut StdRng,
    until: Instant,
) -> Result<Vec<String>> {
    let n = c.len() as u32;
    let all: Vec<u32> = (0..n).collect();
    let others = |x: u32| all.iter().copied().filter(|&i| i != x).collect::<Vec<_>>();
    let mut done = Vec::new();
    let sleep_until = |t: Instant| {
        if let Some(d) = t.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    match name {
        "minority-partition" | "primary-partitioned" => {
            // The primary of view 0 if node 0 does not answer.
            let primary = c.status(0).map_or(0, |s| s.primary);
            let victim = if name == "primary-partitioned" {
                primary
            } else {
                (primary + 1) % n
            };
            c.proxy.set(|f| f.partition(&[victim], &others(victim)));
            done.push(format!("partitioned validator {victim} from the others"));
            sleep_until(until);
        }
        "quorum-lost" => {
            c.proxy.set(|f| f.partition(&[0, 1], &[2, 3]));
            done.push("partitioned {0,1} from {2,3}".into());
            std::thread::sleep(Duration::from_secs(2));
            let before = c.max_height();
            sleep_until(until);
            let after = c.max_height();
            if after > before {
                bail!("progress without a quorum: height {before} -> {after}");
            }
            done.push(format!("no progress while split (height {before})"));
        }
        "one-way-partition" => {
            let x = rng.gen_range(0..n);
            c.proxy.set(|f| f.block_one_way(&[x], &others(x)));
            done.push(format!(
                "dropped validator {x}'s packets to the others (one way)"
            ));
            sleep_until(until);
        }
        "rolling-restarts" => {
            for i in 0..c.len() {
                c.kill9(i);
                done.push(format!("kill -9 validator {i}"));
                std::thread::sleep(Duration::from_millis(1_500));
                c.spawn(i)?;
                c.wait_healthy(Duration::from_secs(30))?;
                std::thread::sleep(Duration::from_millis(1_500));
            }
            sleep_until(until);
        }
        "kill-random" => {
            while Instant::now() + Duration::from_secs(3) < until {
                let i = rng.gen_range(0..c.len());
                c.kill9(i);
                done.push(format!("kill -9 validator {i}"));
                std::thread::sleep(Duration::from_millis(1_500));
                c.spawn(i)?;
                std::thread::sleep(Duration::from_millis(1_500));
            }
            sleep_until(until);
        }
        "lossy-network" => {
            c.proxy.set(|f| {
                f.drop = 0.10;
                f.delay_ms = 50;
                f.jitter_ms = 10;
                f.duplicate = 0.05;
                f.reorder = 0.10;
            });
            done.push("10% loss, 50+-10 ms delay, 5% duplicates, 10% reordered".into());
            sleep_until(until);
        }
        "pause" => {
            let i = rng.gen_range(0..c.len());
            c.pause(i, true)?;
            done.push(format!("SIGSTOP validator {i}"));
            sleep_until(until);
            c.pause(i, false)?;
            done.push(format!("SIGCONT validator {i}"));
        }
        "wiped-node" => {
            let i = rng.gen_range(0..c.len());
            c.kill9(i);
            c.wipe(i)?;
            c.spawn(i)?;
            done.push(format!("validator {i} restarted with its data wiped"));
            sleep_until(until);
        }
        "garbage-and-unknown-peer" => {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            let mut sent = 0;
            let unknown = unknown_peer_dials(c)?;
            done.push(unknown);
            while Instant::now() < until {
                for h in &c.homes {
                    let len = rng.gen_range(1..1_200);
                    let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    let _ = socket.send_to(&junk, h.config.listen);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            done.push(format!(
                "{sent} garbage datagrams to the validators' QUIC ports"
            ));
        }
        other => match BYZANTINE.iter().find(|b| b.0 == other) {
            Some((_, node, mode, _)) => {
                done.push(format!(
                    "validator {node} runs --byzantine {mode} throughout"
                ));
                sleep_until(until);
            }
            None => bail!("unknown scenario {other:?}"),
        },
    }
    Ok(done)
}

/// A QUIC endpoint with a key outside the validator set dials validator 0, which must refuse
/// the handshake.
fn unknown_peer_dials(c: &ChaosCluster) -> Result<String> {
    use lanes_net::{NetConfig, Network};
    let stranger = lanes_types::SecretKey::generate();
    // The stranger believes it is validator 1 of a set where validator 0 is the real one.
    let mut genesis = c.homes[0].genesis.clone();
    genesis.validators[1].public_key = stranger.public_key();
    let validators = genesis.validator_set();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = rejected_handshakes(c);
    runtime.block_on(async {
        let mut config =
            NetConfig::from_validators(1, stranger, "127.0.0.1:0".parse()?, &validators)?;
        for p in &mut config.peers {
            if p.index == 0 {
                p.addr = c.homes[0].config.listen;
            }
        }
        let (net, _inbound) = Network::start(config)?;
        let _ = net.send(0, vec![1, 2, 3].into());
        tokio::time::sleep(Duration::from_secs(2)).await;
        net.shutdown().await;
        anyhow::Ok(())
    })?;
    let after = rejected_handshakes(c);
    Ok(format!(
        "an unknown peer dialled validator 0 (rejected handshakes {before} -> {after})"
    ))
}

fn rejected_handshakes(c: &ChaosCluster) -> u64 {
    metric(c, 0, "lanes_rejected_handshakes_total")
}

/// A counter from node `i`'s `/metrics` (0 if it does not answer).
fn metric(c: &ChaosCluster, i: usize, name: &str) -> u64 {
    let text = c.client(i).metrics().unwrap_or_default();
    lanes_api::metric(&text, name).map_or(0, |v| v as u64)
}

/// What the honest validators (and the byzantine one itself) noticed of byzantine validator
/// `node` running `mode`, added to `faults`; `Err` if something that must be noticed was not.
fn judge_byzantine(
    c: &ChaosCluster,
    honest: &[usize],
    node: usize,
    mode: &str,
    verdict: &history::Verdict,
    faults: &mut Vec<String>,
) -> Result<(), String> {
    let honest_total = |name: &str| -> u64 { honest.iter().map(|&i| metric(c, i, name)).sum() };
    match mode {
        "wrong-root" | "wrong-receipts" => judge_liar(c, node, verdict, faults)?,
        "equivocate" => {
            let seen = honest_total("lanes_equivocation_alarms_total");
            faults.push(format!(
                "honest validators saw {seen} equivocations of validator {node}"
            ));
        }
        "garbage" => {
            let rejected = honest_total("lanes_rejected_messages_total");
            faults.push(format!(
                "honest validators rejected {rejected} messages of validator {node}"
            ));
            if rejected == 0 {
                return Err(format!("validator {node}'s garbage went unnoticed"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A validator signing wrong roots (state or receipts) is flagged: its own result differs
/// from what the honest quorum certified, so it raises divergence alarms; its signature is on
/// none of the certificates the honest nodes served; and it served no other certified receipt
/// (the checker compared its answers).
fn judge_liar(
    c: &ChaosCluster,
    node: usize,
    verdict: &history::Verdict,
    faults: &mut Vec<String>,
) -> Result<(), String> {
    let alarms = metric(c, node, "lanes_divergence_alarms_total");
    faults.push(format!(
        "validator {node} raised {alarms} divergence alarms"
    ));
    let signed = verdict.signed_by.get(&(node as u32)).copied().unwrap_or(0);
    faults.push(format!(
        "signatures on the certificates the honest nodes served, by validator: {:?}; \
         validator {node} answered {} sampled transactions certified, each identical",
        verdict.signed_by, verdict.suspect_certified
    ));
    if alarms == 0 {
        return Err(format!("validator {node} signed wrong roots unflagged"));
    }
    if signed > 0 {
        return Err(format!("validator {node}'s wrong roots were certified"));
    }
    Ok(())
}

/// Undoes every fault: proxy healed, every node running and continued.
fn heal(c: &mut ChaosCluster) -> Result<()> {
    c.proxy.heal();
    for i in 0..c.len() {
        c.pause(i, false)?;
        c.spawn(i)?;
    }
    Ok(())
}

fn run_scenario(name: &str, duration: Duration, seed: u64, progress: bool) -> Result<Report> {
    let mut rng = StdRng::seed_from_u64(seed);
    let byzantine = BYZANTINE.iter().find(|b| b.0 == name).map(|b| (b.1, b.2));
    let mut extra = vec![Vec::new(); 4];
    if let Some((node, mode)) = byzantine {
        extra[node] = vec!["--byzantine".to_string(), mode.to_string()];
    }
    let mut c = ChaosCluster::start(4, seed, extra)?;
    let honest: Vec<usize> = (0..c.len())
        .filter(|i| byzantine.is_none_or(|(b, _)| b != *i))
        .collect();
    // Clients talk to honest nodes (a silent validator would sit on their transactions).
    let apis: Vec<_> = honest.iter().map(|&i| c.api(i)).collect();
    let workload = Workload::start(apis, c.keys.clone(), "lanes-chaos".into(), seed);
    let start = Instant::now();
    let line = |c: &ChaosCluster, w: &Workload, phase: &str| {
        if progress {
            let h = w.history();
            eprint!(
                "\r{name:<26} {:>5.1}s  {phase:<8} height {:<5} submitted {:<5} acknowledged {:<5}",
                start.elapsed().as_secs_f64(),
                c.max_height(),
                h.submitted,
                h.acked.len()
            );
        }
    };
    let quarter = duration / 4;
    while start.elapsed() < quarter {
        line(&c, &workload, "warm-up");
        std::thread::sleep(Duration::from_millis(500));
    }
    line(&c, &workload, "faults");
    let faults = inject(name, &mut c, &mut rng, start + 3 * quarter);
    let (mut faults, mut violation) = match faults {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    heal(&mut c)?;
    let counters = c.proxy.counters();
    faults.push(format!(
        "healed (the proxy relayed {} packets and dropped {})",
        counters.relayed.load(std::sync::atomic::Ordering::Relaxed),
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed)
    ));
    let healed = Instant::now();
    // Recovery: a transaction acknowledged after the heal, within 10 s.
    let mut recovery_s = None;
    while healed.elapsed() < Duration::from_secs(20) {
        line(&c, &workload, "recover");
        let h = workload.history();
        if let Some((_, at)) = h.acked.iter().find(|(_, at)| *at > healed) {
            recovery_s = Some(at.duration_since(healed).as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    while start.elapsed() < duration {
        line(&c, &workload, "after");
        std::thread::sleep(Duration::from_millis(500));
    }
    let history = workload.stop();
    // Let every node reach the same height before checking.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(20) {
        let hs: Vec<Option<u64>> = honest.iter().map(|&i| c.height(i).ok()).collect();
        if hs.iter().all(|h| h.is_some() && *h == hs[0]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if progress {
        eprintln!();
    }
    let supply = cluster::ACCOUNTS as u64 * crate::testnet::DEV_BALANCE;
    let mut holders: Vec<lanes_types::Address> =
        c.keys.iter().map(|k| k.public_key().address()).collect();
    holders.push(lanes_executor::state::fee_sink());
    let suspects: Vec<usize> = byzantine.iter().map(|b| b.0).collect();
    let verdict = history::check(&c.nodes, &honest, &suspects, &history, &holders, supply);
    if violation.is_none() {
        violation = verdict.violation.clone();
    }
    match recovery_s {
        Some(s) if s > 10.0 => {
            violation.get_or_insert(format!("recovery took {s:.1} s (more than 10 s)"));
        }
        None => {
            violation.get_or_insert("nothing committed within 20 s of the heal".into());
        }
        _ => {}
    }
    if let Some((node, mode)) = byzantine {
        if let Err(e) = judge_byzantine(&c, &honest, node, mode, &verdict, &mut faults) {
            violation.get_or_insert(e);
        }
    }
    let view_changes = honest
        .iter()
        .filter_map(|&i| Some(c.status(i)?.view))
        .max()
        .unwrap_or(0);
    Ok(Report {
        name: name.into(),
        passed: violation.is_none(),
        violation,
        faults,
        history,
        lost_acknowledged: verdict.lost_acknowledged,
        diverged: verdict.diverged,
        receipts_checked: verdict.receipts_checked,
        height: verdict.height,
        view_changes,
        recovery_s,
    })
}
