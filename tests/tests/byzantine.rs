//! `lanes chaos` with one byzantine validator on real processes: an equivocating primary, a
//! validator signing wrong state roots, one signing wrong receipts roots, one voting for blocks
//! that do not exist, a silent one and one sending garbage. The honest three must agree, lose
//! no acknowledged transaction, serve identical certified receipts and keep committing; the
//! wrong-root and wrong-receipts signers must be flagged (divergence alarms) and be on no
//! certificate, and serve no other certified receipt.
//!
//! Byzantine behaviours exist only in a `--features lanes/byzantine` build, so this test is
//! ignored by the README's test command; `.ci/run` builds that binary and runs it:
//! `cargo test --release --workspace --features lanes/byzantine --test byzantine -- --include-ignored`.

use lanes_tests::{chaos_report, lanes_binary, passed_scenarios, run_lanes};
use serde_json::Value;

const SCENARIOS: &str = "equivocating-primary,wrong-root,wrong-receipts,conflicting-voter,\
                         silent-validator,garbage-sender";

#[test]
#[ignore = "needs a `--features lanes/byzantine` build of lanes; .ci/run runs it"]
fn one_byzantine_validator_cannot_break_the_honest_three() {
    let list = String::from_utf8_lossy(&run_lanes(&["chaos", "--list"]).stdout).to_string();
    assert!(
        list.contains("wrong-receipts") && !list.contains("needs --features byzantine"),
        "{} is not a byzantine build: cargo build --release --workspace --features lanes/byzantine",
        lanes_binary().display()
    );
    let (report, success) =
        chaos_report(&["--scenario", SCENARIOS, "--duration", "12s", "--seed", "7"]);
    let scenarios = passed_scenarios(&report, 6);
    for s in scenarios {
        // The checker compared certified receipts across the nodes.
        assert!(s["receipts_checked"].as_u64().unwrap() > 0, "{s}");
    }
    for liar in ["wrong-root", "wrong-receipts"] {
        let s = scenarios.iter().find(|s| s["name"] == liar).unwrap();
        assert!(fault(s, "divergence alarms"), "{liar} not flagged: {s}");
        assert!(fault(s, "signatures on the certificates"), "{s}");
    }
    assert!(success);
}

/// Whether one of scenario `s`'s fault lines mentions `what`.
fn fault(s: &Value, what: &str) -> bool {
    s["faults"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().is_some_and(|f| f.contains(what)))
}
