//! `lanes sim`: runs the deterministic consensus simulator over many seeds and fault profiles.

use anyhow::{bail, Result};
use lanes_consensus::sim::{run, FaultProfile, SimConfig, SimReport};
use rayon::prelude::*;
use serde_json::json;
use std::time::Instant;

/// Arguments of `lanes sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Seeds to run per fault profile.
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// First seed; seeds S, S+1, ... are run (a failing seed re-runs with `--seeds 1 --seed S`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of validators (n = 3f+1: 4, 7, 10...).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(4..=31))]
    validators: u32,
    /// Fault profiles, comma separated: none, network, crash, byzantine, twins, all (every
    /// fault at once). Default: each of them in turn.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultProfile>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the full explanation (schedule and last events) of every failing seed, not only
    /// the first per profile.
    #[arg(long)]
    verbose: bool,
}

struct ProfileResult {
    profile: FaultProfile,
    seeds: u64,
    blocks: u64,
    violations: Vec<SimReport>,
    liveness: Vec<SimReport>,
    seconds: f64,
}

/// Runs `lanes sim`; fails (non-zero exit) if any seed broke an invariant.
pub fn run_sim(args: SimArgs) -> Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let profiles = if args.faults.is_empty() {
        FaultProfile::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    let mut results = Vec::new();
    for profile in profiles {
        let start = Instant::now();
        let reports: Vec<SimReport> = (args.seed..args.seed.saturating_add(args.seeds))
            .into_par_iter()
            .map(|seed| run(&SimConfig::new(seed, args.validators, profile)))
            .collect();
        let seconds = start.elapsed().as_secs_f64();
        let blocks = reports.iter().map(|r| r.committed_blocks).sum();
        let (violations, rest): (Vec<_>, Vec<_>) =
            reports.into_iter().partition(|r| r.violation.is_some());
        let liveness = rest
            .into_iter()
            .filter(|r| r.liveness_failure.is_some())
            .collect();
        results.push(ProfileResult {
            profile,
            seeds: args.seeds,
            blocks,
            violations,
            liveness,
            seconds,
        });
    }
    let failed = results
        .iter()
        .any(|r| !r.violations.is_empty() || !r.liveness.is_empty());
    for r in &results {
        let failures = r.violations.iter().chain(&r.liveness);
        for (i, report) in failures.enumerate() {
            if i == 0 || args.verbose {
                eprintln!("{}", report.explain());
            }
        }
    }
    if args.json {
        let profiles: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "faults": r.profile.name(),
                    "seeds": r.seeds,
                    "committed_blocks": r.blocks,
                    "violations": r.violations.len(),
                    "liveness_failures": r.liveness.len(),
                    "seeds_per_second": r.seeds as f64 / r.seconds.max(1e-9),
                    "failing_seeds": r.violations.iter().chain(&r.liveness).map(|f| f.seed).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({
            "validators": args.validators,
            "seeds": results.iter().map(|r| r.seeds).sum::<u64>(),
            "committed_blocks": results.iter().map(|r| r.blocks).sum::<u64>(),
            "violations": results.iter().map(|r| r.violations.len()).sum::<usize>(),
            "liveness_failures": results.iter().map(|r| r.liveness.len()).sum::<usize>(),
            "profiles": profiles,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<10} {:>7} {:>9} {:>10} {:>9} {:>9}",
            "faults", "seeds", "blocks", "violations", "liveness", "seeds/s"
        );
        for r in &results {
            println!(
                "{:<10} {:>7} {:>9} {:>10} {:>9} {:>9.0}",
                r.profile.name(),
                r.seeds,
                r.blocks,
                r.violations.len(),
                r.liveness.len(),
                r.seeds as f64 / r.seconds.max(1e-9)
            );
        }
    }
    if failed {
        bail!("the simulator found invariant violations (seeds and schedules above)");
    }
    Ok(())
}
