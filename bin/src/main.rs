//! `lanes`: the validator node and its command-line tools.
//!
//! Today it checks genesis files, inspects databases, benchmarks the executor and runs the
//! consensus simulator; the node, `localnet`, the wallet,
//! the explorer and the benchmark arrive with the issues that build them (see README).

mod bench_exec;
#[allow(dead_code)] // Home and its accessors are read by `lanes node` and `lanes localnet`.
mod config;
#[allow(dead_code)] // LoadGen is driven by `lanes localnet` (the built-in load).
mod load;
mod sim_cmd;
mod testnet;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lanes_storage::Store;
use lanes_types::Genesis;
use std::path::PathBuf;

/// lanes: a PBFT-ordered replicated state machine with a deterministic parallel executor.
#[derive(Parser, Debug)]
#[command(name = "lanes", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Genesis file tools.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// Benchmark programs.
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
    /// Generates keys, a genesis and a home directory per validator for a new network.
    Testnet(testnet::TestnetArgs),
    /// Runs the deterministic consensus simulator over many seeds and fault profiles.
    Sim(sim_cmd::SimArgs),
    /// Database tools (read-only: safe on a running node's data directory).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand, Debug)]
enum GenesisCommand {
    /// Validates a genesis file and prints its summary.
    Check {
        /// Path of the genesis JSON file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BenchTarget {
    /// One block executed sequentially and in parallel (state root included).
    Executor(bench_exec::ExecBenchArgs),
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Prints the chain identity and head of a database.
    Status {
        /// The database directory.
        dir: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, leaving out causes whose text an outer message already
/// quotes (our library errors include their source in their message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Genesis {
            command: GenesisCommand::Check { file, json },
        } => {
            let genesis = Genesis::load(&file)?;
            let vs = genesis.validator_set();
            let summary = serde_json::json!({
                "chain_id": genesis.chain_id,
                "genesis_hash": genesis.hash().to_string(),
                "validators": vs.len(),
                "max_faulty": vs.max_faulty(),
                "quorum": vs.quorum(),
                "assets": genesis.assets.iter().map(|a| a.symbol.clone()).collect::<Vec<_>>(),
            });
            if json {
                println!("{summary}");
            } else {
                println!("genesis {} is valid", file.display());
                println!("  chain id      {}", genesis.chain_id);
                println!("  genesis hash  {}", genesis.hash());
                println!(
                    "  validators    {} (tolerates f = {}, quorum {})",
                    vs.len(),
                    vs.max_faulty(),
                    vs.quorum()
                );
                let symbols: Vec<&str> = genesis.assets.iter().map(|a| a.symbol.as_str()).collect();
                println!("  assets        {}", symbols.join(", "));
            }
        }
        Command::Bench {
            target: BenchTarget::Executor(args),
        } => bench_exec::run(args)?,
        Command::Sim(args) => sim_cmd::run_sim(args)?,
        Command::Testnet(args) => testnet::run(args)?,
        Command::Db {
            command: DbCommand::Status { dir, json },
        } => {
            let store = Store::open_read_only(&dir)
                .with_context(|| format!("cannot open database {}", dir.display()))?;
            let id = store.identity();
            let head = store.head()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "chain_id": id.chain_id,
                        "genesis_hash": id.genesis_hash.to_string(),
                        "height": head.map(|h| h.height),
                        "block_hash": head.map(|h| h.block_hash.to_string()),
                        "state_root": head.map(|h| h.state_root.to_string()),
                    })
                );
            } else {
                println!("chain id      {}", id.chain_id);
                println!("genesis hash  {}", id.genesis_hash);
                match head {
                    Some(h) => {
                        println!("height        {}", h.height);
                        println!("block hash    {}", h.block_hash);
                        println!("state root    {}", h.state_root);
                    }
                    None => println!("height        (no genesis state written yet)"),
                }
            }
        }
    }
    Ok(())
}
