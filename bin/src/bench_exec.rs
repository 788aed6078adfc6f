//! `lanes bench executor`: one block of a chosen workload, executed sequentially and in
//! parallel in the same run, state root included; prints throughput, speedup and whether both
//! gave the same output.

use anyhow::{bail, ensure, Context, Result};
use lanes_executor::smt;
use lanes_executor::workload::{build_block, Workload, World};
use lanes_executor::{BlockOutput, Executor};
use std::time::{Duration, Instant};

/// Arguments of `lanes bench executor`.
#[derive(Debug, clap::Args)]
pub struct ExecBenchArgs {
    /// The block to build.
    #[arg(long, default_value = "transfer")]
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
    /// Timed repetitions of each run (sequential and parallel alternate); medians are reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `rounds` runs of each function, alternating between them so that load from other
/// processes on the machine falls on both alike. Returns each one's median and last output.
fn timed_pair(
    rounds: usize,
    mut a: impl FnMut() -> Result<BlockOutput>,
    mut b: impl FnMut() -> Result<BlockOutput>,
) -> Result<[(Duration, BlockOutput); 2]> {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let (mut last_a, mut last_b) = (None, None);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let out = a()?;
        ta.push(start.elapsed());
        last_a = Some(out);
        let start = Instant::now();
        let out = b()?;
        tb.push(start.elapsed());
        last_b = Some(out);
    }
    Ok([
        (median(ta), last_a.expect("at least one round")),
        (median(tb), last_b.expect("at least one round")),
    ])
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
    let mut world = World::new(args.accounts).context("--accounts")?;
    let block = build_block(&mut world, args.workload, args.txs).context("building the block")?;
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

    let exec = |ex: &Executor| world.execute(ex, &block).context("execute block");
    let [(seq_time, seq_out), (par_time, par_out)] =
        timed_pair(args.rounds, || exec(&sequential), || exec(&parallel))?;

    // The state root alone (key hashing and tree update) on the parallel executor's pool.
    let root_start = Instant::now();
    parallel
        .install(|| {
            smt::update(
                &world.nodes,
                world.root,
                &smt::tree_updates(&seq_out.writes),
            )
        })
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
        "workload": args.workload.name(),
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
        "validations": par_out.stats.validations,
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
                world
                    .execute(&Executor::new(threads).unwrap(), &block)
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
