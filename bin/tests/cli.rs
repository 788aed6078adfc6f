//! The `lanes` binary's commands and their error paths, run as a user would.

use lanes_storage::{ChainIdentity, Store};
use lanes_types::genesis::{GenesisAsset, GenesisBalance};
use lanes_types::{Genesis, Hash, ProtocolParams, SecretKey, ValidatorInfo};
use std::process::{Command, Output};

fn lanes(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanes"))
        .args(args)
        .output()
        .expect("lanes runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn genesis() -> Genesis {
    let keys: Vec<SecretKey> = (0..4)
        .map(|i| SecretKey::from_label(&format!("cli-{i}")))
        .collect();
    let owner = keys[0].public_key().address();
    Genesis {
        chain_id: "cli-test".into(),
        genesis_time_ms: 0,
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                name: format!("v{i}"),
                public_key: k.public_key(),
                address: format!("127.0.0.1:{}", 7100 + i),
            })
            .collect(),
        assets: vec![GenesisAsset {
            symbol: "LANE".into(),
            balances: vec![GenesisBalance {
                account: owner,
                amount: 1_000,
            }],
        }],
        params: ProtocolParams::local_defaults(owner),
    }
}

#[test]
fn genesis_check_reports_valid_files_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    let g = genesis();
    std::fs::write(&path, g.to_json()).unwrap();
    let out = lanes(&["genesis", "check", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["genesis_hash"], g.hash().to_string());
    assert_eq!(
        (v["validators"].as_u64(), v["quorum"].as_u64()),
        (Some(4), Some(3))
    );

    let mut bad: serde_json::Value = serde_json::from_str(&g.to_json()).unwrap();
    bad["validators"].as_array_mut().unwrap().pop();
    std::fs::write(&path, bad.to_string()).unwrap();
    let out = lanes(&["genesis", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("3 validators"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let out = lanes(&["genesis", "check", "/nonexistent/genesis.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/genesis.json"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "cause printed once: {err}"
    );
}

#[test]
fn db_status_reads_a_database_and_refuses_other_directories() {
    let dir = tempfile::tempdir().unwrap();
    let id = ChainIdentity {
        chain_id: "cli-test".into(),
        genesis_hash: Hash::digest(b"g"),
    };
    let store = Store::open(dir.path(), &id).unwrap();
    store
        .commit_genesis(&[], &[], Hash::digest(b"root"))
        .unwrap();
    // The store stays open read-write, as a running node's would.
    let out = lanes(&["db", "status", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chain_id"], "cli-test");
    assert_eq!(v["height"], 0);
    assert_eq!(v["state_root"], Hash::digest(b"root").to_string());

    let empty = tempfile::tempdir().unwrap();
    let out = lanes(&["db", "status", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a lanes database"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn executor_bench_reports_equal_roots_and_rejects_bad_arguments() {
    let out = lanes(&[
        "bench",
        "executor",
        "--workload",
        "mixed",
        "--txs",
        "300",
        "--accounts",
        "40",
        "--rounds",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "workload",
        "txs",
        "threads",
        "sequential_tps",
        "parallel_tps",
        "speedup",
        "root_ms",
    ] {
        assert!(!v[field].is_null(), "missing {field}: {v}");
    }
    assert_eq!(v["roots_equal"], true);
    assert_eq!(v["workload"], "mixed");

    let out = lanes(&["bench", "executor", "--txs", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--txs"), "{}", stderr(&out));
    let out = lanes(&["bench", "executor", "--workload", "nonsense"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nonsense"), "{}", stderr(&out));
}

#[test]
fn sim_runs_seeds_per_profile_and_rejects_bad_arguments() {
    let out = lanes(&["sim", "--seeds", "8", "--faults", "all,byzantine", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["seeds"], 16);
    assert_eq!(v["violations"], 0);
    assert_eq!(v["liveness_failures"], 0);
    assert!(v["committed_blocks"].as_u64().unwrap() > 16);
    assert_eq!(v["profiles"][0]["faults"], "all");
    assert_eq!(v["profiles"][1]["faults"], "byzantine");

    let table = lanes(&[
        "sim",
        "--seeds",
        "2",
        "--validators",
        "7",
        "--faults",
        "none",
    ]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("violations") && text.contains("none"),
        "{text}"
    );

    for bad in [
        &["sim", "--faults", "bogus"][..],
        &["sim", "--seeds", "0"],
        &["sim", "--validators", "3"],
    ] {
        let out = lanes(bad);
        assert!(!out.status.success(), "{bad:?} must fail");
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn testnet_writes_homes_that_load_and_refuses_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("net");
    let out = out_dir.to_str().unwrap();
    let run = lanes(&[
        "testnet",
        "--validators",
        "4",
        "--out",
        out,
        "--dev-accounts",
        "2",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let summary = String::from_utf8_lossy(&run.stdout);
    assert!(summary.contains("validator-3"), "{summary}");

    let genesis_path = out_dir.join("genesis.json");
    let check = lanes(&["genesis", "check", genesis_path.to_str().unwrap(), "--json"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(v["chain_id"], "lanes-testnet");
    assert_eq!(v["validators"], 4);
    assert_eq!(v["assets"], serde_json::json!(["LANE", "USDC", "ETH"]));
    let genesis = Genesis::load(&genesis_path).unwrap();

    for i in 0..4u32 {
        let home = out_dir.join(format!("validator-{i}"));
        let config: toml::Table =
            toml::from_str(&std::fs::read_to_string(home.join("config.toml")).unwrap()).unwrap();
        assert_eq!(config["index"].as_integer(), Some(i64::from(i)));
        assert_eq!(
            config["api"].as_str(),
            Some(format!("127.0.0.1:{}", 7100 + i).as_str())
        );
        assert_eq!(
            Genesis::load(&home.join("genesis.json")).unwrap(),
            genesis,
            "every home has the same genesis"
        );
        let seed = std::fs::read_to_string(home.join("validator.key")).unwrap();
        let seed: [u8; 32] = lanes_types::hash::parse_hex_array(seed.trim()).unwrap();
        assert_eq!(
            SecretKey::from_seed(seed).public_key(),
            genesis.validators[i as usize].public_key
        );
    }
    assert!(out_dir.join("dev-keys/dev-1.key").exists());

    let again = lanes(&["testnet", "--validators", "4", "--out", out]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    let few = lanes(&[
        "testnet",
        "--validators",
        "3",
        "--out",
        tmp.path().join("few").to_str().unwrap(),
    ]);
    assert_eq!(few.status.code(), Some(1));
    assert!(
        stderr(&few).contains("PBFT needs at least 4 validators (3f+1)"),
        "{}",
        stderr(&few)
    );
    assert!(!tmp.path().join("few").exists());
}
