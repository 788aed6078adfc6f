//! Parallel execution equals sequential execution: receipts, writes, root and tree nodes, for
//! random blocks over every operation, under heavy contention and spread out, with 2, 4 and 8
//! threads; the ledger's invariants hold after every block.

mod common;

use common::{build_block, check_invariants, setup, Spec, World};
use lanes_executor::{
    execute_sequential, prove, verify_proof, BlockOutput, ExecConfig, Executor, Mode, Operation,
    SignedTransaction, Status,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Executors that always run Block-STM (no size threshold, no fallback), for 2, 4 and 8 threads,
/// plus a default-tuned 2-thread executor.
fn executors() -> &'static [Executor] {
    static EX: OnceLock<Vec<Executor>> = OnceLock::new();
    EX.get_or_init(|| {
        let forced = ExecConfig {
            min_parallel_txs: 2,
            fallback_window: 0,
            max_abort_pct: 100,
            max_validations_per_tx: 0,
            max_near_dep_pct: 100,
        };
        let mut v: Vec<Executor> = [2, 4, 8]
            .iter()
            .map(|t| Executor::with_config(*t, forced).unwrap())
            .collect();
        v.push(Executor::new(2).unwrap());
        v
    })
}

fn sequential_executor() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| Executor::new(1).unwrap())
}

fn same(a: &BlockOutput, b: &BlockOutput) -> bool {
    a.receipts == b.receipts
        && a.writes == b.writes
        && a.state_root == b.state_root
        && a.new_nodes == b.new_nodes
}

/// Runs the block every way, checks all agree, commits it and checks invariants. Returns the
/// sequential output.
/// Runs `txs` on the largest executor and checks it fell back to sequential after fewer than
/// `max_executions` optimistic executions.
fn assert_falls_back_within(
    base: &World,
    txs: &[SignedTransaction],
    max_executions: usize,
) -> BlockOutput {
    let out = executors()[3]
        .execute_block(&base.state, &base.nodes, base.root, &base.params, txs)
        .unwrap();
    assert_eq!(out.stats.mode, Mode::Fallback, "{:?}", out.stats);
    assert!(
        out.stats.executions < max_executions,
        "fallback decided late: {:?}",
        out.stats
    );
    out
}

fn check_block(world: &World, txs: &[SignedTransaction]) -> BlockOutput {
    let seq = sequential_executor()
        .execute_block(&world.state, &world.nodes, world.root, &world.params, txs)
        .unwrap();
    assert_eq!(seq.stats.mode, Mode::Sequential);
    let (r, w) = execute_sequential(&world.state, &world.params, txs);
    assert_eq!((r, w), (seq.receipts.clone(), seq.writes.clone()));
    for ex in executors() {
        let par = ex
            .execute_block(&world.state, &world.nodes, world.root, &world.params, txs)
            .unwrap();
        ABORTS.fetch_add(par.stats.aborts, Ordering::Relaxed);
        assert!(
            same(&seq, &par),
            "{} threads ({:?}) diverged from sequential",
            ex.threads(),
            par.stats
        );
    }
    assert!(
        seq.writes.windows(2).all(|p| p[0].0 < p[1].0),
        "writes sorted and unique"
    );
    for (r, t) in seq.receipts.iter().zip(txs) {
        match r.status {
            Status::Rejected(_) => assert_eq!(r.fee_paid, 0),
            _ => assert_eq!(r.fee_paid, t.tx.fee),
        }
    }
    let mut after = world.clone();
    after.commit(&seq.writes);
    assert_eq!(after.root, seq.state_root);
    check_invariants(&after.state);
    // Proofs of written keys (present or deleted) verify against the new root.
    for (k, v) in seq.writes.iter().step_by(seq.writes.len() / 16 + 1) {
        let proof = prove(&after.nodes, after.root, k).unwrap();
        assert!(
            verify_proof(after.root, k, v.as_ref(), &proof),
            "proof of {k:?}"
        );
        assert!(!verify_proof(world.root, k, v.as_ref(), &proof) || world.root == after.root);
    }
    seq
}

/// Aborts seen by the forced parallel executors over all tests (the conflict paths must run).
static ABORTS: AtomicUsize = AtomicUsize::new(0);

/// `default` cases, or as many as `PROPTEST_CASES` asks for (for longer runs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u32>(),
        0u8..14,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
    )
        .prop_map(|(from, kind, a, b, c, nonce_mode)| Spec {
            from,
            kind,
            a,
            b,
            c,
            nonce_mode,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

    /// 2 to 20 accounts: nearly every transaction conflicts with another.
    #[test]
    fn contended_blocks_match_sequential(
        accounts in prop::sample::select(vec![2usize, 5, 20]),
        specs in prop::collection::vec(spec(), 1..1500),
    ) {
        let world = setup(accounts);
        let txs = build_block(&world, &specs);
        check_block(&world, &txs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(8), ..ProptestConfig::default() })]

    /// 10,000 accounts: few conflicts, large blocks.
    #[test]
    fn spread_blocks_match_sequential(specs in prop::collection::vec(spec(), 500..5000)) {
        let world = setup(10_000);
        let txs = build_block(&world, &specs);
        check_block(&world, &txs);
    }
}

/// Several consecutive blocks: state carried between blocks stays identical.
#[test]
fn chained_blocks_match_sequential() {
    let mut world = (*setup(20)).clone();
    let strategy = prop::collection::vec(spec(), 200..300);
    let big = prop::collection::vec(spec(), 5000..5001);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut successes = [0usize; 14];
    for round in 0..6 {
        let specs = if round == 3 {
            big.new_tree(&mut runner)
        } else {
            strategy.new_tree(&mut runner)
        }
        .unwrap()
        .current();
        let txs = build_block(&world, &specs);
        let out = check_block(&world, &txs);
        for (r, t) in out.receipts.iter().zip(&txs) {
            if r.status == Status::Success {
                successes[kind(&t.tx.op)] += 1;
            }
        }
        world.commit(&out.writes);
    }
    assert!(
        ABORTS.load(Ordering::Relaxed) > 0,
        "no block ever conflicted"
    );
    // The generator reaches success for the common operations (sanity of the fixture itself).
    for k in [0, 2, 3, 5, 6, 8, 13] {
        assert!(
            successes[k] > 0,
            "no successful operation of kind {k}: {successes:?}"
        );
    }
}

fn kind(op: &Operation) -> usize {
    match op {
        Operation::Transfer { .. } => 0,
        Operation::CreateAsset { .. } => 1,
        Operation::CreatePool { .. } => 2,
        Operation::AddLiquidity { .. } => 3,
        Operation::RemoveLiquidity { .. } => 4,
        Operation::Swap { .. } => 5,
        Operation::Stake { .. } => 6,
        Operation::Unstake { .. } => 7,
        Operation::Supply { .. } => 8,
        Operation::Withdraw { .. } => 9,
        Operation::Borrow { .. } => 10,
        Operation::Repay { .. } => 11,
        Operation::Liquidate { .. } => 12,
        Operation::SetPrice { .. } => 13,
    }
}

/// Every transaction swaps on one pool: the default executor detects the abort rate, falls back
/// to sequential, and still gives the sequential output.
#[test]
fn hot_pool_falls_back_and_matches() {
    let mut world = (*setup(20)).clone();
    let txs: Vec<SignedTransaction> = (0..3000)
        .map(|i| {
            world.tx(
                i % 20,
                Operation::Swap {
                    pool: 0,
                    asset_in: (i % 2) as u32,
                    amount_in: 1_000 + i as u64,
                    min_out: 0,
                },
            )
        })
        .collect();
    let base = (*setup(20)).clone();
    let seq = check_block(&base, &txs);
    assert!(seq.receipts.iter().all(|r| r.status == Status::Success));
    let out = assert_falls_back_within(&base, &txs, 1000);
    assert!(same(&seq, &out));
    // Transfers between distinct accounts do not fall back.
    let mut w2 = (*setup(10_000)).clone();
    let txs: Vec<SignedTransaction> = (0..2000)
        .map(|i| {
            let to = common::addr(&w2.keys[(i + 5000) % 10_000]);
            w2.tx(
                i,
                Operation::Transfer {
                    asset: 1,
                    to,
                    amount: 10,
                },
            )
        })
        .collect();
    let base2 = setup(10_000);
    let out = executors()[3]
        .execute_block(&base2.state, &base2.nodes, base2.root, &base2.params, &txs)
        .unwrap();
    assert_eq!(out.stats.mode, Mode::Parallel, "{:?}", out.stats);
    let seq = sequential_executor()
        .execute_block(&base2.state, &base2.nodes, base2.root, &base2.params, &txs)
        .unwrap();
    assert!(same(&seq, &out));
}

/// A mostly spread-out block where a tenth of the transactions chain on one pool (mixed
/// workloads): the default executor sees the near dependencies in its first windows, falls back
/// before wasting much optimistic work, and still gives the sequential output.
#[test]
fn partly_hot_block_falls_back_early_and_matches() {
    let mut world = (*setup(200)).clone();
    let txs: Vec<SignedTransaction> = (0..3000)
        .map(|i| {
            let op = if i % 10 < 2 {
                Operation::Swap {
                    pool: 0,
                    asset_in: (i % 2) as u32,
                    amount_in: 1_000 + i as u64,
                    min_out: 0,
                }
            } else {
                Operation::Transfer {
                    asset: 1,
                    to: common::addr(&world.keys[(i + 100) % 200]),
                    amount: 10,
                }
            };
            world.tx(i % 200, op)
        })
        .collect();
    let base = (*setup(200)).clone();
    let seq = check_block(&base, &txs);
    assert!(seq.receipts.iter().all(|r| r.status == Status::Success));
    let out = assert_falls_back_within(&base, &txs, 1500);
    assert!(same(&seq, &out));
}

/// On a swaps-only block, no pool's constant product decreases.
#[test]
fn swaps_never_decrease_k() {
    let base = (*setup(5)).clone();
    let mut world = base.clone();
    let txs: Vec<SignedTransaction> = (0..500u64)
        .map(|i| {
            let amount_in = [1, 7, 999, 1_000_000, 5_000_000_000, u64::MAX / 2][(i % 6) as usize];
            world.tx(
                (i % 5) as usize,
                Operation::Swap {
                    pool: (i % 2) as u32,
                    asset_in: (i % 3) as u32,
                    amount_in,
                    min_out: 0,
                },
            )
        })
        .collect();
    let out = check_block(&base, &txs);
    let mut after = base.clone();
    after.commit(&out.writes);
    for id in 0..2 {
        let (p0, p1) = (base.pool(id).unwrap(), after.pool(id).unwrap());
        let k0 = u128::from(p0.reserve_a) * u128::from(p0.reserve_b);
        let k1 = u128::from(p1.reserve_a) * u128::from(p1.reserve_b);
        assert!(k1 >= k0, "pool {id}: k fell from {k0} to {k1}");
    }
}

/// A block whose every transaction is rejected (a nonce the sender has not reached) pays no fee
/// and writes nothing: the parallel run's output has no fee credit either.
#[test]
fn rejected_block_matches_sequential() {
    let world = setup(20);
    let to = common::addr(&world.keys[1]);
    let txs: Vec<SignedTransaction> = (0..64)
        .map(|i| {
            let op = Operation::Transfer {
                asset: 0,
                to,
                amount: 1,
            };
            common::sign(&world.keys[i % 20], 1_000 + i as u64, 10, op)
        })
        .collect();
    let out = check_block(&world, &txs);
    assert!(out.writes.is_empty(), "{:?}", out.writes);
    assert!(out
        .receipts
        .iter()
        .all(|r| matches!(r.status, Status::Rejected(_))));
    assert_eq!(out.state_root, world.root);
}
