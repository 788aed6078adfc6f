//! `lanes chaos` with one byzantine validator on real processes: an equivocating primary, a
//! validator signing wrong state roots, one voting for blocks that do not exist, a silent one
//! and one sending garbage. The honest three must agree, lose no acknowledged transaction and
//! keep committing; the wrong-root signer must be flagged.
//!
//! Byzantine behaviours exist only in a `--features lanes/byzantine` build, so this test is
//! ignored by the README's test command; `.ci/run` builds that binary and runs it:
//! `cargo test --release --workspace --features lanes/byzantine --test byzantine -- --include-ignored`.

use lanes_tests::{chaos_report, lanes_binary, passed_scenarios, run_lanes};

const SCENARIOS: &str =
    "equivocating-primary,wrong-root,conflicting-voter,silent-validator,garbage-sender";

#[test]
#[ignore = "needs a `--features lanes/byzantine` build of lanes; .ci/run runs it"]
fn one_byzantine_validator_cannot_break_the_honest_three() {
    let list = String::from_utf8_lossy(&run_lanes(&["chaos", "--list"]).stdout).to_string();
    assert!(
        list.contains("wrong-root") && !list.contains("needs --features byzantine"),
        "{} is not a byzantine build: cargo build --release --workspace --features lanes/byzantine",
        lanes_binary().display()
    );
    let (report, success) =
        chaos_report(&["--scenario", SCENARIOS, "--duration", "12s", "--seed", "7"]);
    let scenarios = passed_scenarios(&report, 5);
    let wrong_root = scenarios
        .iter()
        .find(|s| s["name"] == "wrong-root")
        .unwrap();
    let flagged = wrong_root["faults"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().is_some_and(|f| f.contains("divergence alarms")));
    assert!(flagged, "{wrong_root}");
    assert!(success);
}
