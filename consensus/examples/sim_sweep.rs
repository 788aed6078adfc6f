//! Runs many simulator seeds of one profile and summarises them:
//! `sim_sweep PROFILE SEEDS [VALIDATORS] [FIRST_SEED]` (the `lanes sim` command without
//! RocksDB; single-threaded).
use lanes_consensus::sim::{run, SimConfig};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = args
        .get(1)
        .map_or("none", |s| s.as_str())
        .parse()
        .expect("profile");
    let seeds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let n = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let first: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let t = std::time::Instant::now();
    let (mut blocks, mut violations, mut liveness) = (0, Vec::new(), Vec::new());
    for seed in first..first + seeds {
        let r = run(&SimConfig::new(seed, n, profile));
        blocks += r.committed_blocks;
        if let Some(v) = &r.violation {
            if violations.is_empty() || std::env::var("SHOW").is_ok() {
                println!("{}", r.explain());
            }
            violations.push((seed, v.clone()));
        } else if let Some(l) = &r.liveness_failure {
            if liveness.is_empty() || std::env::var("SHOW").is_ok() {
                println!("{}", r.explain());
            }
            liveness.push((seed, l.lines().next().unwrap_or("").to_string()));
        }
    }
    println!(
        "{} n={n} seeds {first}..{}: {:?}, blocks {blocks}, violations {}, liveness failures {}",
        profile.name(),
        first + seeds,
        t.elapsed(),
        violations.len(),
        liveness.len()
    );
    for (seed, v) in violations {
        println!("  violation seed {seed}: {v}");
    }
    for (seed, l) in liveness {
        println!("  liveness seed {seed}: {l}");
    }
}
