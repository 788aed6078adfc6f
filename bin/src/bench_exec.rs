//! `lanes bench executor`: one block of a chosen workload, executed sequentially and in
//! parallel in the same run, state root included; prints throughput, speedup and whether both
//! gave the same output.

use anyhow::{bail, ensure, Context, Result};
use lanes_executor::smt::{self, MemNodeStore};
use lanes_executor::{
    genesis_state, BlockOutput, Executor, MemState, Operation, SignedTransaction, Transaction,
    Write,
};
use lanes_types::genesis::{GenesisAsset, GenesisBalance};
use lanes_types::{Address, Genesis, Hash, ProtocolParams, SecretKey, ValidatorInfo};
use rayon::prelude::*;
use std::time::{Duration, Instant};

const CHAIN: &str = "lanes-bench";
const START_BALANCE: u64 = 1_000_000_000_000;

/// Which block to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Native-asset transfers between distinct random accounts.
    Transfer,
    /// Every transaction swaps on the same pool: the worst case for parallelism.
    SwapHot,
    /// Transfers, swaps on two pools, staking and lending supply.
    Mixed,
}

/// Arguments of `lanes bench executor`.
#[derive(Debug, clap::Args)]
pub struct ExecBenchArgs {
    /// The block to build.
    #[arg(long, value_enum, default_value = "transfer")]
    workload: Workload,
    /// Transactions in the block.
    #[arg(long, default_value_t = 100_000)]
    txs: usize,
    /// Funded accounts the transactions spread over.
    #[arg(long, default_value_t = 100_000)]
    accounts: usize,
    /// Threads of the parallel executor.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed repetitions of each run; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

struct World {
    keys: Vec<SecretKey>,
    params: ProtocolParams,
    state: MemState,
    nodes: MemNodeStore,
    root: Hash,
}

fn address(k: &SecretKey) -> Address {
    k.public_key().address()
}

fn sign(k: &SecretKey, nonce: u64, op: Operation) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender: k.public_key(),
        nonce,
        fee: 1,
        op,
    }
    .sign(k)
}

impl World {
    fn new(accounts: usize) -> Result<World> {
        let keys: Vec<SecretKey> = (0..accounts)
            .into_par_iter()
            .map(|i| SecretKey::from_label(&format!("bench-account-{i}")))
            .collect();
        let balances: Vec<GenesisBalance> = keys
            .iter()
            .map(|k| GenesisBalance {
                account: address(k),
                amount: START_BALANCE,
            })
            .collect();
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            validators: (0..4)
                .map(|i| ValidatorInfo {
                    name: format!("v{i}"),
                    public_key: SecretKey::from_label(&format!("bench-validator-{i}")).public_key(),
                    address: format!("127.0.0.1:{}", 9000 + i),
                })
                .collect(),
            assets: ["LANE", "USD", "BTC"]
                .iter()
                .map(|s| GenesisAsset {
                    symbol: s.to_string(),
                    balances: balances.clone(),
                })
                .collect(),
            params: ProtocolParams::local_defaults(address(&keys[0])),
        };
        let writes: Vec<Write> = genesis_state(&genesis)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let mut world = World {
            keys,
            params: genesis.params,
            state: MemState::default(),
            nodes: MemNodeStore::default(),
            root: smt::EMPTY,
        };
        world.apply(&writes)?;
        Ok(world)
    }

    fn apply(&mut self, writes: &[Write]) -> Result<()> {
        let up = smt::update(&self.nodes, self.root, &smt::tree_updates(writes))
            .context("state tree update")?;
        up.persist(&mut self.nodes);
        self.root = up.root;
        self.state.apply(writes);
        Ok(())
    }

    /// Creates pools 0 (LANE/USD) and 1 (USD/BTC) with deep liquidity from account 0.
    fn setup_pools(&mut self, nonces: &mut [u64]) -> Result<()> {
        let k = self.keys[0].clone();
        let mut txs = Vec::new();
        for op in [
            Operation::CreatePool { a: 0, b: 1 },
            Operation::CreatePool { a: 1, b: 2 },
            Operation::AddLiquidity {
                pool: 0,
                amount_a: START_BALANCE / 4,
                amount_b: START_BALANCE / 4,
                min_shares: 0,
            },
            Operation::AddLiquidity {
                pool: 1,
                amount_a: START_BALANCE / 4,
                amount_b: START_BALANCE / 4,
                min_shares: 0,
            },
        ] {
            txs.push(sign(&k, nonces[0], op));
            nonces[0] += 1;
        }
        let (receipts, writes) =
            lanes_executor::execute_sequential(&self.state, &self.params, &txs);
        for r in &receipts {
            ensure!(
                matches!(r.status, lanes_executor::Status::Success),
                "pool setup failed: {r:?}"
            );
        }
        self.apply(&writes)
    }
}

fn build_block(
    world: &mut World,
    workload: Workload,
    txs: usize,
) -> Result<Vec<SignedTransaction>> {
    let n = world.keys.len();
    ensure!(n >= 2, "--accounts must be at least 2");
    let mut nonces = vec![0u64; n];
    if workload != Workload::Transfer {
        world.setup_pools(&mut nonces)?;
    }
    // Deterministic pseudo-random spread (a 64-bit LCG), so every run builds the same block.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let validators: Vec<Address> = (0..4)
        .map(|i| {
            SecretKey::from_label(&format!("bench-validator-{i}"))
                .public_key()
                .address()
        })
        .collect();
    let plan: Vec<(usize, u64, Operation)> = (0..txs)
        .map(|i| {
            let from = if workload == Workload::SwapHot {
                1 + i % (n - 1)
            } else {
                i % n
            };
            let to = (from + 1 + (next() as usize % (n - 1))) % n;
            let op = match (workload, next() % 10) {
                (Workload::Transfer, _) | (Workload::Mixed, 0..=5) => Operation::Transfer {
                    asset: 0,
                    to: address(&world.keys[to]),
                    amount: 1 + next() % 1000,
                },
                (Workload::SwapHot, r) => Operation::Swap {
                    pool: 0,
                    asset_in: (r % 2) as u32,
                    amount_in: 1_000 + next() % 100_000,
                    min_out: 1,
                },
                (Workload::Mixed, 6..=7) => Operation::Swap {
                    pool: (next() % 2) as u32,
                    asset_in: 1,
                    amount_in: 1_000 + next() % 100_000,
                    min_out: 1,
                },
                (Workload::Mixed, 8) => Operation::Stake {
                    validator: validators[(next() % 4) as usize],
                    amount: 1 + next() % 1000,
                },
                (Workload::Mixed, _) => Operation::Supply {
                    asset: 1,
                    amount: 1 + next() % 1000,
                },
            };
            let nonce = nonces[from];
            nonces[from] += 1;
            (from, nonce, op)
        })
        .collect();
    let keys = &world.keys;
    Ok(plan
        .into_par_iter()
        .map(|(from, nonce, op)| sign(&keys[from], nonce, op))
        .collect())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed(
    rounds: usize,
    mut f: impl FnMut() -> Result<BlockOutput>,
) -> Result<(Duration, BlockOutput)> {
    let mut times = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let out = f()?;
        times.push(start.elapsed());
        last = Some(out);
    }
    Ok((median(times), last.expect("at least one round")))
}

fn tps(txs: usize, d: Duration) -> f64 {
    txs as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the executor benchmark and prints its report.
pub fn run(args: ExecBenchArgs) -> Result<()> {
    if args.txs == 0 {
        bail!("--txs must be at least 1");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let setup_start = Instant::now();
    let mut world = World::new(args.accounts)?;
    let block = build_block(&mut world, args.workload, args.txs)?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    let parallel = Executor::new(args.threads).context("parallel executor")?;
    let sequential = Executor::new(1).context("sequential executor")?;

    let mut sig_times = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let start = Instant::now();
        if let Err(bad) = parallel.verify_signatures(&block) {
            bail!("{} transactions failed signature verification", bad.len());
        }
        sig_times.push(start.elapsed());
    }
    let sig_time = median(sig_times);

    let exec = |ex: &Executor| {
        ex.execute_block(
            &world.state,
            &world.nodes,
            world.root,
            &world.params,
            &block,
        )
        .context("execute block")
    };
    let (seq_time, seq_out) = timed(args.rounds, || exec(&sequential))?;
    let (par_time, par_out) = timed(args.rounds, || exec(&parallel))?;

    let root_start = Instant::now();
    smt::update(
        &world.nodes,
        world.root,
        &smt::tree_updates(&seq_out.writes),
    )
    .context("root")?;
    let root_ms = root_start.elapsed().as_secs_f64() * 1e3;

    let roots_equal = seq_out.state_root == par_out.state_root;
    let outputs_equal =
        roots_equal && seq_out.receipts == par_out.receipts && seq_out.writes == par_out.writes;
    let failed = seq_out
        .receipts
        .iter()
        .filter(|r| !matches!(r.status, lanes_executor::Status::Success))
        .count();
    let report = serde_json::json!({
        "workload": format!("{:?}", args.workload).to_lowercase().replace("swaphot", "swap-hot"),
        "txs": args.txs,
        "accounts": args.accounts,
        "threads": args.threads,
        "rounds": args.rounds.max(1),
        "sequential_tps": tps(args.txs, seq_time).round(),
        "parallel_tps": tps(args.txs, par_time).round(),
        "speedup": (seq_time.as_secs_f64() / par_time.as_secs_f64().max(1e-9) * 1000.0).round() / 1000.0,
        "root_ms": (root_ms * 10.0).round() / 10.0,
        "sig_verify_per_s": tps(args.txs, sig_time).round(),
        "parallel_mode": format!("{:?}", par_out.stats.mode).to_lowercase(),
        "executions": par_out.stats.executions,
        "aborts": par_out.stats.aborts,
        "failed_txs": failed,
        "roots_equal": roots_equal,
        "outputs_equal": outputs_equal,
        "setup_s": (setup_s * 10.0).round() / 10.0,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("executor benchmark ({} rounds, median)", args.rounds.max(1));
        for (k, v) in report.as_object().expect("report is an object") {
            println!("  {k:<18} {v}");
        }
    }
    ensure!(
        outputs_equal,
        "parallel output differs from sequential output"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_builds_blocks_that_run_identically() {
        for workload in [Workload::Transfer, Workload::SwapHot, Workload::Mixed] {
            let mut world = World::new(50).unwrap();
            let block = build_block(&mut world, workload, 400).unwrap();
            let run = |threads: usize| {
                Executor::new(threads)
                    .unwrap()
                    .execute_block(
                        &world.state,
                        &world.nodes,
                        world.root,
                        &world.params,
                        &block,
                    )
                    .unwrap()
            };
            let (a, b) = (run(1), run(2));
            assert_eq!(a.state_root, b.state_root, "{workload:?}");
            assert_eq!(a.receipts, b.receipts, "{workload:?}");
            let ok = a
                .receipts
                .iter()
                .filter(|r| matches!(r.status, lanes_executor::Status::Success))
                .count();
            assert!(
                ok * 10 >= block.len() * 9,
                "{workload:?}: only {ok} of {} succeeded",
                block.len()
            );
        }
    }
}
