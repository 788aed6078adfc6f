//! Times the phases of one block (execution, key/value hashing, tree update) on a 1-thread and
//! an N-thread executor, to see where the parallel speedup is lost. The `hash` row is
//! `smt::tree_updates` on the executor's pool; a parallel `execute_block` hashes while it drains
//! its memory instead, so its `block` row is less than the sum of the others.
//!
//! `cargo run --release -p lanes-executor --example exec_phases -- [transfer|swap-hot|mixed]
//! [txs] [accounts] [threads] [rounds] [exec|hash|tree]`: with the last argument, only that
//! phase runs, on the N-thread executor, round after round (for a profiler such as
//! `perf record`); `exec-both` alternates only the execute phase on 1 and N threads.

use lanes_executor::smt;
use lanes_executor::workload::{build_block, Workload, World};
use lanes_executor::{Executor, SignedTransaction};
use std::time::{Duration, Instant};

/// CPU time the process has used (user + system), from `/proc/self/stat` on Linux (in clock
/// ticks, 10 ms each): summed over rounds, it shows what a phase costs in work, which load
/// from other processes distorts less than wall-clock time. `None` elsewhere.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// Only the execute phase, alternating the 1-thread and the N-thread executor round by round:
/// wall-clock medians and mean CPU time per round, for A/B comparisons on a busy machine.
fn compare_execute(world: &World, block: &[SignedTransaction], threads: usize, rounds: usize) {
    let exs = [
        Executor::new(1).expect("executor"),
        Executor::new(threads).expect("executor"),
    ];
    let mut wall: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut cpu = [0.0f64; 2];
    let mut stats = None;
    for _ in 0..rounds {
        for (i, ex) in exs.iter().enumerate() {
            let c = cpu_ms();
            let t = Instant::now();
            let out = ex.execute_txs(&world.state, &world.params, block);
            wall[i].push(t.elapsed());
            if let (Some(a), Some(b)) = (c, cpu_ms()) {
                cpu[i] += b - a;
            }
            stats = Some(out.2);
        }
    }
    let [a, b] = wall;
    let (a, b) = (median(a), median(b));
    let (ca, cb) = (cpu[0] / rounds as f64, cpu[1] / rounds as f64);
    println!(
        "execute wall {a:.1} / {b:.1} ms x{:.2}; cpu {ca:.1} / {cb:.1} ms, work ratio x{:.2}",
        a / b,
        ca / cb.max(1e-9)
    );
    if let Some(s) = stats {
        println!(
            "{threads} threads: {:?}, {} executions, {} aborts, {} validations",
            s.mode, s.executions, s.aborts, s.validations
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload: Workload = args
        .get(1)
        .map(|s| s.parse().expect("workload"))
        .unwrap_or(Workload::Transfer);
    let txs: usize = args.get(2).map_or(100_000, |s| s.parse().expect("txs"));
    let accounts: usize = args
        .get(3)
        .map_or(100_000, |s| s.parse().expect("accounts"));
    let threads: usize = args.get(4).map_or(2, |s| s.parse().expect("threads"));
    let rounds: usize = args.get(5).map_or(5, |s| s.parse().expect("rounds"));

    let mut world = World::new(accounts).expect("world");
    let block = build_block(&mut world, workload, txs).expect("block");
    if args.get(6).map(String::as_str) == Some("exec-both") {
        compare_execute(&world, &block, threads, rounds);
        return;
    }
    if let Some(phase) = args.get(6) {
        // Only one phase on the N-thread executor, for a profiler.
        let many = Executor::new(threads).expect("executor");
        for _ in 0..rounds {
            let t = Instant::now();
            let (_, writes, _) = many.execute_txs(&world.state, &world.params, &block);
            let exec = t.elapsed();
            if phase == "hash" {
                use rayon::prelude::*;
                let t = Instant::now();
                let mut ups: Vec<_> = many.install(|| {
                    writes
                        .par_iter()
                        .with_min_len(256)
                        .map(|(k, v)| (smt::key_hash(k), v.as_ref().map(smt::value_hash)))
                        .collect()
                });
                let t1 = t.elapsed();
                many.install(|| {
                    ups.par_sort_unstable_by_key(
                        |u: &(lanes_types::Hash, Option<lanes_types::Hash>)| u.0,
                    )
                });
                println!(
                    "hash map {:.1} ms sort {:.1} ms",
                    t1.as_secs_f64() * 1e3,
                    (t.elapsed() - t1).as_secs_f64() * 1e3
                );
            } else if phase == "tree" {
                let ups = many.install(|| smt::tree_updates(&writes));
                let t = Instant::now();
                many.install(|| smt::update(&world.nodes, world.root, &ups))
                    .expect("tree");
                println!("tree {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
            } else {
                println!("execute {:.1} ms", exec.as_secs_f64() * 1e3);
            }
        }
        return;
    }
    println!("phase (ms, median of {rounds})   1 thread   {threads} threads");
    let one = Executor::new(1).expect("executor");
    let many = Executor::new(threads).expect("executor");
    let mut rows: Vec<(&str, [Vec<Duration>; 2])> = ["execute", "hash", "tree", "block"]
        .iter()
        .map(|n| (*n, [Vec::new(), Vec::new()]))
        .collect();
    let mut cpu = [0.0f64; 2];
    for _ in 0..rounds {
        for (i, ex) in [&one, &many].iter().enumerate() {
            let c = cpu_ms();
            let t = Instant::now();
            let (_, writes, _) = ex.execute_txs(&world.state, &world.params, &block);
            rows[0].1[i].push(t.elapsed());
            if let (Some(a), Some(b)) = (c, cpu_ms()) {
                cpu[i] += b - a;
            }
            let t = Instant::now();
            let ups = ex.install(|| smt::tree_updates(&writes));
            rows[1].1[i].push(t.elapsed());
            let t = Instant::now();
            let tree = ex
                .install(|| smt::update(&world.nodes, world.root, &ups))
                .expect("tree");
            rows[2].1[i].push(t.elapsed());
            drop(tree);
            let t = Instant::now();
            let out = world.execute(ex, &block).expect("block");
            rows[3].1[i].push(t.elapsed());
            drop(out);
        }
    }
    for (name, [a, b]) in rows {
        let (a, b) = (median(a), median(b));
        println!("{name:<24} {a:>9.1} {b:>10.1}   x{:.2}", a / b);
    }
    let (a, b) = (cpu[0] / rounds as f64, cpu[1] / rounds as f64);
    if a > 0.0 && b > 0.0 {
        println!(
            "execute cpu (mean)       {a:>9.1} {b:>10.1}   x{:.2} of the work",
            a / b
        );
    }
}
