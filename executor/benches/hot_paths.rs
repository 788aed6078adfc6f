//! Criterion benchmarks of the executor's hot paths: stateless transaction checks, batched
//! signature verification, the state-tree batch update and block execution.
//!
//! `cargo bench -p lanes-executor --bench hot_paths`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lanes_executor::smt;
use lanes_executor::workload::{build_block, Workload, World, CHAIN};
use lanes_executor::{check_stateless, execute_sequential, verify_signatures, Executor};
use lanes_types::codec::Encode;

fn hot_paths(c: &mut Criterion) {
    let mut world = World::new(20_000).expect("world");
    let block = build_block(&mut world, Workload::Transfer, 4_096).expect("block");
    let raw: Vec<Vec<u8>> = block.iter().map(|t| t.to_bytes()).collect();

    let mut g = c.benchmark_group("tx");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_stateless", |b| {
        b.iter(|| check_stateless(&raw[0], CHAIN, &world.params).expect("valid"))
    });
    g.finish();

    let mut g = c.benchmark_group("block_4096_transfers");
    g.sample_size(10);
    g.throughput(Throughput::Elements(block.len() as u64));
    g.bench_function("verify_signatures", |b| {
        b.iter(|| verify_signatures(&block).expect("all valid"))
    });
    g.bench_function("execute_sequential_no_root", |b| {
        b.iter(|| execute_sequential(&world.state, &world.params, &block))
    });
    let (_, writes) = execute_sequential(&world.state, &world.params, &block);
    g.bench_function("state_tree_update", |b| {
        b.iter_batched(
            || smt::tree_updates(&writes),
            |ups| smt::update(&world.nodes, world.root, &ups).expect("tree"),
            BatchSize::LargeInput,
        )
    });
    for threads in [1, 2] {
        let ex = Executor::new(threads).expect("pool");
        g.bench_function(format!("execute_block_{threads}_threads"), |b| {
            b.iter(|| world.execute(&ex, &block).expect("execute"))
        });
    }
    g.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
