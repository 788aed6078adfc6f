//! Hundreds of simulated runs per fault profile. Each seed is a different network, fault
//! schedule and workload; a failure prints the seed, the schedule and the events before it.

use lanes_consensus::sim::{run, FaultProfile, SimConfig};

/// Seeds per profile in the test suite (the CLI runs as many as asked).
fn seeds() -> u64 {
    std::env::var("LANES_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

fn check_profile(profile: FaultProfile, validators: u32, first_seed: u64) {
    let mut blocks = 0;
    for seed in first_seed..first_seed + seeds() {
        let report = run(&SimConfig::new(seed, validators, profile));
        assert!(report.passed(), "{}", report.explain());
        assert_eq!(report.committed_txs, 40, "{}", report.explain());
        blocks += report.committed_blocks;
    }
    assert!(blocks >= seeds() * 5, "suspiciously few blocks: {blocks}");
}

#[test]
fn no_faults() {
    check_profile(FaultProfile::None, 4, 0);
}

#[test]
fn network_faults() {
    check_profile(FaultProfile::Network, 4, 10_000);
}

#[test]
fn crash_faults() {
    check_profile(FaultProfile::Crash, 4, 20_000);
}

#[test]
fn byzantine_faults() {
    check_profile(FaultProfile::Byzantine, 4, 30_000);
}

#[test]
fn all_faults() {
    check_profile(FaultProfile::All, 4, 40_000);
}

#[test]
fn seven_validators_all_faults() {
    check_profile(FaultProfile::All, 7, 50_000);
}
