//! Hundreds of simulated runs per fault profile. Each seed is a different network, fault
//! schedule and workload; a failure prints the seed, the schedule and the events before it.

use lanes_consensus::sim::{run, FaultProfile, SimConfig};

/// Seeds per profile in the test suite with 4 validators (the CLI runs as many as asked).
fn seeds() -> u64 {
    std::env::var("LANES_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

/// Seeds per profile with 7 validators (a run costs about three times as much).
fn seeds_7() -> u64 {
    (seeds() / 5).max(1)
}

/// Seeds that found bugs in the consensus core, as (profile, validators, seed); each failed
/// before its fix and is run on its own here, whatever the seed ranges below cover.
///
/// - A (liveness): a restarted replica forgot its latest CHECKPOINT, so its heartbeats
///   stopped; on an idle chain a replica that missed the last blocks then heard f or fewer
///   claims for them and never caught up (crash 20149, 20161). Fixed by re-signing the stored
///   head's checkpoint at start (`Recovered::committed_root`).
/// - B (liveness): a selective byzantine validator (VIEW-CHANGEs to some peers only) split the
///   honest replicas between view v (no quorum of VIEW-CHANGEs, so no NEW-VIEW timer) and view
///   v+1 (fewer than f+1 VIEW-CHANGEs above v for the others to join) (all 40002 .. 40458,
///   50024, 50031, 50202). Fixed by answering a replica that asks for an older view with the
///   VIEW-CHANGEs we hold; then (all 40148) the new primary of v never got a quorum for v
///   because one replica had moved on to v+1: the NEW-VIEW timer now starts when a quorum asks
///   for v or later.
/// - C (safety): a new primary broadcast its NEW-VIEW before it persisted the view as
///   installed; crashed right after the broadcast, it restarted still changing to that view and
///   signed a second, different NEW-VIEW for it (all 40396). Fixed by persisting first.
const REGRESSIONS: [(FaultProfile, u32, u64); 14] = [
    (FaultProfile::Crash, 4, 20_149),
    (FaultProfile::Crash, 4, 20_161),
    (FaultProfile::All, 4, 40_002),
    (FaultProfile::All, 4, 40_009),
    (FaultProfile::All, 4, 40_180),
    (FaultProfile::All, 4, 40_291),
    (FaultProfile::All, 4, 40_440),
    (FaultProfile::All, 4, 40_458),
    (FaultProfile::All, 7, 50_024),
    (FaultProfile::All, 7, 50_031),
    (FaultProfile::All, 7, 50_202),
    (FaultProfile::All, 4, 40_148),
    (FaultProfile::All, 4, 40_396),
    (FaultProfile::All, 4, 301_496),
];

fn check(profile: FaultProfile, validators: u32, seed: u64) -> u64 {
    let report = run(&SimConfig::new(seed, validators, profile));
    assert!(report.passed(), "{}", report.explain());
    assert_eq!(report.committed_txs, 40, "{}", report.explain());
    report.committed_blocks
}

fn check_profile(profile: FaultProfile, validators: u32, first_seed: u64, count: u64) {
    let blocks: u64 = (first_seed..first_seed + count)
        .map(|seed| check(profile, validators, seed))
        .sum();
    assert!(blocks >= count * 5, "suspiciously few blocks: {blocks}");
}

#[test]
fn seeds_that_found_bugs() {
    for (profile, validators, seed) in REGRESSIONS {
        check(profile, validators, seed);
    }
}
#[test]
fn no_faults() {
    check_profile(FaultProfile::None, 4, 0, seeds());
}

#[test]
fn network_faults() {
    check_profile(FaultProfile::Network, 4, 10_000, seeds());
}

#[test]
fn crash_faults() {
    check_profile(FaultProfile::Crash, 4, 20_000, seeds());
}

#[test]
fn byzantine_faults() {
    check_profile(FaultProfile::Byzantine, 4, 30_000, seeds());
}

#[test]
fn all_faults() {
    check_profile(FaultProfile::All, 4, 40_000, seeds());
}

#[test]
fn seven_validators_all_faults() {
    check_profile(FaultProfile::All, 7, 50_000, seeds());
}

#[test]
fn twins() {
    check_profile(FaultProfile::Twins, 4, 60_000, seeds());
}

#[test]
fn seven_validators_twins() {
    check_profile(FaultProfile::Twins, 7, 70_000, seeds_7());
}

#[test]
fn seven_validators_crash_faults() {
    check_profile(FaultProfile::Crash, 7, 80_000, seeds_7());
}
