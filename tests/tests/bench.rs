//! `lanes bench` (end to end) on a short run: it starts its own network, reports the fields the
//! issues name (latency to certification and to commit), and the nodes agree on the final root.

#[test]
fn a_short_end_to_end_bench_reports_throughput_latency_and_agreement() {
    let out = std::process::Command::new(lanes_tests::lanes_binary())
        .args([
            "bench",
            "--duration",
            "3s",
            "--rate",
            "300",
            "--workload",
            "mixed",
            "--json",
        ])
        .output()
        .expect("lanes runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for field in [
        "submitted",
        "committed",
        "tps",
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_p99",
        "commit_latency_ms_p50",
        "commit_latency_ms_p90",
        "commit_latency_ms_p99",
        "certified",
        "commit_tps",
        "failed",
        "roots_agree",
    ] {
        assert!(!v[field].is_null(), "missing {field}: {v}");
    }
    assert_eq!(v["roots_agree"], true);
    assert!(v["committed"].as_u64().unwrap() >= 600, "{v}");
    assert_eq!(v["committed"], v["submitted"], "{v}");
    // Acknowledged means certified: every committed transaction's block got certified, never
    // before it committed.
    assert_eq!(v["certified"], v["committed"], "{v}");
    let ms = |f: &str| v[f].as_f64().unwrap();
    assert!(ms("latency_ms_p50") >= ms("commit_latency_ms_p50"), "{v}");
    let bad = std::process::Command::new(lanes_tests::lanes_binary())
        .args(["bench", "--rate", "fast"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rate"));
}
