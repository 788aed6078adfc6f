//! `lanes keys` and `lanes send` against a real cluster.

use lanes_tests::{run_lanes as lanes, Cluster};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keys_and_send_every_operation_kind_with_receipts() {
    let c = Cluster::start(4).expect("cluster starts");
    let store = tempfile::tempdir().unwrap();
    let ks = store.path().to_str().unwrap();
    let node = format!("http://{}", c.api(0));
    // A funded account in the keystore (the harness's account 0, also the oracle).
    let seed = lanes_types::to_hex(c.accounts[0].seed());
    std::fs::write(store.path().join("alice.key"), seed + "\n").unwrap();

    let new = lanes(&["keys", "new", "bob", "--keystore", ks, "--json"]);
    assert!(new.status.success(), "{}", stderr(&new));
    let bob: serde_json::Value = serde_json::from_str(&stdout(&new)).unwrap();
    let bob_addr = bob["address"].as_str().unwrap().to_string();
    assert!(
        !lanes(&["keys", "new", "bob", "--keystore", ks])
            .status
            .success(),
        "duplicate name refused"
    );
    assert!(!lanes(&["keys", "new", "../evil", "--keystore", ks])
        .status
        .success());
    let list = stdout(&lanes(&["keys", "list", "--keystore", ks]));
    assert!(
        list.contains("alice") && list.contains("bob") && list.contains(&bob_addr),
        "{list}"
    );
    let show = stdout(&lanes(&["keys", "show", "bob", "--keystore", ks]));
    assert!(show.contains(&bob_addr), "{show}");

    let send = |args: &[&str]| {
        let mut all = vec!["send"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--from", "alice", "--keystore", ks, "--node", &node]);
        lanes(&all)
    };
    for args in [
        &["transfer", "--to", &bob_addr, "--amount", "500"][..],
        &["create-asset", "--symbol", "GOLD", "--supply", "1000000"],
        &["create-pool", "--a", "0", "--b", "1"],
        &[
            "add-liquidity",
            "--pool",
            "0",
            "--amount-a",
            "100000",
            "--amount-b",
            "100000",
        ],
        &[
            "swap",
            "--pool",
            "0",
            "--asset-in",
            "0",
            "--amount-in",
            "1000",
        ],
        &["remove-liquidity", "--pool", "0", "--shares", "1000"],
        &["set-price", "--asset", "0", "--price", "1000000"],
        &["set-price", "--asset", "1", "--price", "1000000"],
        &["supply", "--asset", "1", "--amount", "50000"],
        &["supply", "--asset", "0", "--amount", "50000"],
        &["borrow", "--asset", "1", "--amount", "1000"],
        &["repay", "--asset", "1", "--amount", "500"],
        &["withdraw", "--asset", "0", "--amount", "1000"],
    ] {
        let out = send(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("Success"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    let validator = c.genesis.validators[2].public_key.address().to_string();
    for op in ["stake", "unstake"] {
        let out = send(&[op, "--validator", &validator, "--amount", "100"]);
        assert!(out.status.success(), "{op}: {}", stderr(&out));
    }
    // A liquidation of a healthy position commits but fails: a clear message, non-zero exit.
    let alice = c.address(0).to_string();
    let out = send(&[
        "liquidate",
        "--borrower",
        &alice,
        "--debt-asset",
        "1",
        "--collateral-asset",
        "0",
        "--amount",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("did not succeed"), "{}", stderr(&out));
    // --no-wait returns the hash at once.
    let out = send(&["transfer", "--to", &bob_addr, "--amount", "1", "--no-wait"]);
    assert!(
        stdout(&out).starts_with("submitted transfer"),
        "{}",
        stdout(&out)
    );
    // Errors: unknown key, bad address, unreachable node.
    assert!(stderr(&send(&["transfer", "--to", "zz", "--amount", "1"])).contains("bad address"));
    let unknown = lanes(&[
        "send",
        "transfer",
        "--to",
        &bob_addr,
        "--amount",
        "1",
        "--from",
        "carol",
        "--keystore",
        ks,
        "--node",
        &node,
    ]);
    assert!(
        stderr(&unknown).contains("no key named"),
        "{}",
        stderr(&unknown)
    );
    let down = lanes(&[
        "send",
        "transfer",
        "--to",
        &bob_addr,
        "--amount",
        "1",
        "--from",
        "alice",
        "--keystore",
        ks,
        "--node",
        "http://127.0.0.1:1",
    ]);
    assert!(stderr(&down).contains("unreachable"), "{}", stderr(&down));
    // The explorer's pool view, in both output modes, and an unknown pool.
    let pool = lanes(&["pool", "0", "--node", &node]);
    assert!(pool.status.success(), "{}", stderr(&pool));
    assert!(
        stdout(&pool).contains("GOLD") || stdout(&pool).contains('1'),
        "{}",
        stdout(&pool)
    );
    let pool_json: lanes_api::Pool =
        serde_json::from_str(&stdout(&lanes(&["pool", "0", "--node", &node, "--json"])))
            .expect("pool --json is the pool's JSON");
    assert_eq!((pool_json.id, pool_json.asset_b), (0, 1), "{pool_json:?}");
    let missing = lanes(&["pool", "99", "--node", &node]);
    assert!(!missing.status.success());
    assert_eq!(
        stderr(&missing).trim().lines().count(),
        1,
        "{}",
        stderr(&missing)
    );
    // Bob received his 500 (and maybe the --no-wait 1).
    let acct = c.client(0).account(&bob_addr).unwrap();
    assert!(acct.balance(0) >= 500, "{acct:?}");
}
