//! Runs one simulator seed and prints its report: `sim_one SEED PROFILE [VALIDATORS]`.
use lanes_consensus::sim::{run, SimConfig};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let profile = args
        .get(2)
        .map_or("none", |s| s.as_str())
        .parse()
        .expect("profile");
    let n = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let t = std::time::Instant::now();
    let r = run(&SimConfig::new(seed, n, profile));
    println!(
        "{:?} elapsed, end {}ms, blocks {}, txs {}, msgs {}, vcs {}",
        t.elapsed(),
        r.end_ms,
        r.committed_blocks,
        r.committed_txs,
        r.messages,
        r.view_changes
    );
    if !r.passed() || std::env::var("SHOW").is_ok() {
        println!("{}", r.explain());
    }
}
