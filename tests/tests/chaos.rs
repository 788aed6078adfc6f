//! `lanes chaos` on real processes: a quick subset of the scenarios (network partition without
//! a quorum, kill -9 under load, a wiped data directory) must pass the history checker; the
//! full set is `lanes chaos --scenario all`.

use lanes_tests::{chaos_report, passed_scenarios, run_lanes as lanes};

#[test]
fn a_quick_subset_of_scenarios_passes_the_history_checker() {
    let (report, success) = chaos_report(&[
        "--scenario",
        "quorum-lost,kill-random,wiped-node",
        "--duration",
        "12s",
        "--seed",
        "11",
    ]);
    for s in passed_scenarios(&report, 3) {
        assert!(s["recovery_s"].as_f64().unwrap() <= 10.0, "{s}");
        assert!(!s["faults"].as_array().unwrap().is_empty(), "{s}");
    }
    assert!(success);
}

#[test]
fn unknown_scenarios_and_bad_durations_are_refused_with_one_line() {
    for args in [
        &["chaos", "--scenario", "nope"][..],
        &["chaos", "--duration", "2s"],
        &["chaos", "--duration", "soon"],
    ] {
        let out = lanes(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}");
    }
    let list = lanes(&["chaos", "--list"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("quorum-lost"));
}
