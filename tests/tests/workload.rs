//! A cluster under a workload of every kind of transaction, and a full stop and restart.

use lanes_executor::tx::Operation;
use lanes_tests::Cluster;
use std::time::{Duration, Instant};

fn wait_all_at_least(c: &Cluster, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..c.len() {
        while c.height(i).unwrap_or(0) < height {
            assert!(
                Instant::now() < deadline,
                "node {i} behind:\n{}",
                c.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Submits every transaction of a sender to the same node, so its nonces arrive in order.
fn submit_all(c: &Cluster, txs: &[(usize, Vec<u8>)]) -> Vec<String> {
    txs.iter()
        .map(|(from, tx)| c.submit(from % 4, tx).expect("accepted"))
        .collect()
}

#[test]
fn two_thousand_transactions_of_every_kind_and_identical_chains_then_a_full_restart() {
    let mut c = Cluster::start(4).expect("cluster starts");
    let validator = c.genesis.validators[1].public_key.address();
    // Setup: a second asset, prices, a pool with liquidity, lending markets with cash.
    let setup = vec![
        (
            1,
            c.sign(
                1,
                Operation::CreateAsset {
                    symbol: "USD".into(),
                    supply: 1_000_000_000_000,
                },
            ),
        ),
        (
            0,
            c.sign(
                0,
                Operation::SetPrice {
                    asset: 0,
                    price: 1_000_000,
                },
            ),
        ),
        (1, c.sign(1, Operation::CreatePool { a: 0, b: 1 })),
        (
            1,
            c.sign(
                1,
                Operation::AddLiquidity {
                    pool: 0,
                    amount_a: 100_000_000,
                    amount_b: 100_000_000,
                    min_shares: 0,
                },
            ),
        ),
        (
            1,
            c.sign(
                1,
                Operation::Supply {
                    asset: 1,
                    amount: 10_000_000,
                },
            ),
        ),
        (
            2,
            c.sign(
                2,
                Operation::Supply {
                    asset: 0,
                    amount: 10_000_000,
                },
            ),
        ),
    ];
    let hashes = submit_all(&c, &setup);
    for h in &hashes {
        let v = c.wait_tx(0, h, Duration::from_secs(30)).unwrap();
        assert!(
            v.receipt.as_ref().is_some_and(|r| r.success),
            "setup failed: {v:?}"
        );
    }
    let set_usd_price = c.sign(
        0,
        Operation::SetPrice {
            asset: 1,
            price: 1_000_000,
        },
    );
    let h = c.submit(0, &set_usd_price).unwrap();
    c.wait_tx(0, &h, Duration::from_secs(30)).unwrap();

    // The mix: about 2,000 transactions over every operation.
    let mut txs = Vec::new();
    for round in 0..150u64 {
        for from in 2..8usize {
            let to = c.address((from + 1) % 8);
            txs.push((
                from,
                c.sign(
                    from,
                    Operation::Transfer {
                        asset: 0,
                        to,
                        amount: 10 + round,
                    },
                ),
            ));
        }
        let op = match round % 12 {
            0 => Operation::Swap {
                pool: 0,
                asset_in: 0,
                amount_in: 1_000,
                min_out: 0,
            },
            1 => Operation::Stake {
                validator,
                amount: 1_000,
            },
            2 => Operation::Unstake {
                validator,
                amount: 500,
            },
            3 => Operation::Borrow {
                asset: 1,
                amount: 1_000,
            },
            4 => Operation::Repay {
                asset: 1,
                amount: 500,
            },
            5 => Operation::Supply {
                asset: 0,
                amount: 1_000,
            },
            6 => Operation::Withdraw {
                asset: 0,
                amount: 500,
            },
            7 => Operation::Swap {
                pool: 0,
                asset_in: 0,
                amount_in: 2_000,
                min_out: 1_000_000,
            }, // slippage: fails
            8 => Operation::CreateAsset {
                symbol: format!("T{round}"),
                supply: 1_000,
            },
            9 => Operation::Liquidate {
                borrower: c.address(3),
                debt_asset: 1,
                collateral_asset: 0,
                amount: 1,
            }, // healthy: fails
            10 => Operation::AddLiquidity {
                pool: 0,
                amount_a: 10_000,
                amount_b: 10_000,
                min_shares: 0,
            },
            _ => Operation::RemoveLiquidity {
                pool: 0,
                shares: 1_000,
                min_a: 0,
                min_b: 0,
            },
        };
        txs.push((2, c.sign(2, op)));
        if round % 3 == 0 {
            txs.push((
                1,
                c.sign(
                    1,
                    Operation::Swap {
                        pool: 0,
                        asset_in: 1,
                        amount_in: 500,
                        min_out: 0,
                    },
                ),
            ));
        }
    }
    assert!(txs.len() >= 1_000 && txs.len() + setup.len() >= 1_000);
    let mut extra = Vec::new();
    while txs.len() + extra.len() < 2_000 {
        let to = c.address(0);
        extra.push((
            3,
            c.sign(
                3,
                Operation::Transfer {
                    asset: 0,
                    to,
                    amount: 1,
                },
            ),
        ));
    }
    txs.extend(extra);
    let hashes = submit_all(&c, &txs);
    let mut ok = 0;
    for h in &hashes {
        let v = c.wait_tx(1, h, Duration::from_secs(60)).expect("committed");
        if v.receipt.is_some_and(|r| r.success) {
            ok += 1;
        }
    }
    assert!(ok >= 1_900, "only {ok} of {} succeeded", hashes.len());

    // Every node: the same block hash and state root at every height.
    let height = c.height(1).unwrap();
    wait_all_at_least(&c, height);
    let reference = c.chain(0, height).unwrap();
    assert_eq!(reference.len() as u64, height);
    for i in 1..4 {
        assert_eq!(c.chain(i, height).unwrap(), reference, "node {i} differs");
    }

    // Stop all four (kill -9), restart all four: the chain resumes from disk.
    let heads = c.heads().unwrap();
    c.kill_all();
    for i in 0..4 {
        c.spawn(i).unwrap();
    }
    c.wait_healthy(Duration::from_secs(30)).unwrap();
    let after = c.heads().unwrap();
    for (before, now) in heads.iter().zip(&after) {
        assert!(now.0 >= before.0, "{before:?} -> {now:?}");
    }
    let common = after.iter().map(|h| h.0).min().unwrap();
    let again = c.chain(0, common).unwrap();
    assert_eq!(&again[..], &reference[..common.min(height) as usize]);
    let tx = c.transfer(4, 5, 1);
    let h = c.submit(3, &tx).unwrap();
    for i in 0..4 {
        c.wait_tx(i, &h, Duration::from_secs(30))
            .expect("the restarted chain commits");
    }
}
