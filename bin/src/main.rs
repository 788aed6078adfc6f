//! `lanes`: the validator node and its command-line tools.
//!
//! Today it checks genesis files, inspects databases, benchmarks the executor and runs the
//! consensus simulator; the node, `localnet`, the wallet,
//! the explorer and the benchmark arrive with the issues that build them (see README).

mod bench_exec;
mod explorer;
mod node;
mod sim_cmd;

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
    /// Runs one validator.
    Node(NodeArgs),
    #[command(flatten)]
    Explorer(explorer::ExplorerCommand),
    /// Runs the deterministic consensus simulator over many seeds and fault profiles.
    Sim(sim_cmd::SimArgs),
    /// Database tools (read-only: safe on a running node's data directory).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

/// How to find a validator's files: its home directory, or each file given explicitly.
#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// Genesis file.
    #[arg(long)]
    genesis: PathBuf,
    /// File with the validator's 32-byte ed25519 seed in hex.
    #[arg(long)]
    key_file: PathBuf,
    /// The validator's index in genesis.
    #[arg(long)]
    index: u32,
    /// QUIC listen address.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// HTTP API listen address.
    #[arg(long)]
    api: std::net::SocketAddr,
    /// Database directory.
    #[arg(long)]
    data: PathBuf,
    /// Executor threads.
    #[arg(long, default_value_t = 2)]
    exec_threads: usize,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
}

fn read_key(path: &std::path::Path) -> Result<lanes_types::SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let seed: [u8; 32] = lanes_types::hash::parse_hex_array(text.trim())
        .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))?;
    Ok(lanes_types::SecretKey::from_seed(seed))
}

fn init_logging(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("unknown log format {other:?} (text or json)"),
    }
    Ok(())
}

fn run_node(a: NodeArgs) -> Result<()> {
    init_logging(&a.log_format)?;
    let genesis = Genesis::load(&a.genesis)
        .with_context(|| format!("loading genesis {}", a.genesis.display()))?;
    node::run(node::NodeParams {
        genesis,
        key: read_key(&a.key_file)?,
        index: a.index,
        listen: a.listen,
        api: a.api,
        data_dir: a.data,
        peers: Default::default(),
        exec_threads: a.exec_threads,
    })
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
        Command::Node(args) => run_node(args)?,
        Command::Explorer(cmd) => explorer::run(cmd)?,
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
