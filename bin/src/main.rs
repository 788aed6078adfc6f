//! `lanes`: the command-line front ends. `lanes node` reads a validator's home and runs it
//! (`lanes_node::run`); the other commands start a local network (`localnet`, `testnet`),
//! explore and use a running chain (explorer, light client, wallet), measure it (`bench`), and
//! attack it (`sim`, `chaos`). Each command lives in its own module.

mod bench_e2e;
mod bench_exec;
mod chaos;
mod config;
mod duration;
mod explorer;
mod load;
mod localnet;
mod sim_cmd;
mod testnet;
mod tx_wait;
mod wallet;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lanes_node as node;
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
    /// The end-to-end benchmark (a temporary localnet under load); `bench executor` for the
    /// executor alone.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        target: Option<BenchTarget>,
        #[command(flatten)]
        e2e: bench_e2e::E2eBenchArgs,
    },
    /// Runs one validator.
    Node(NodeArgs),
    /// Starts a whole network on this machine with a live view of blocks and a light load.
    Localnet(localnet::LocalnetArgs),
    #[command(flatten)]
    Explorer(explorer::ExplorerCommand),
    /// The local keystore.
    Keys {
        #[command(subcommand)]
        command: wallet::KeysCommand,
    },
    /// Builds, signs and submits a transaction, then waits until a quorum certified its result
    /// (`--wait` says otherwise).
    Send {
        #[command(subcommand)]
        command: wallet::SendCommand,
    },
    /// Generates keys, a genesis and a home directory per validator for a new network.
    Testnet(testnet::TestnetArgs),
    /// Runs the deterministic consensus simulator over many seeds and fault profiles.
    Sim(sim_cmd::SimArgs),
    /// Runs fault-injection scenarios against a temporary cluster of real nodes and checks the
    /// history (`--list` shows the scenarios).
    Chaos(chaos::ChaosArgs),
    /// Database tools (read-only: safe on a running node's data directory).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

/// How to find a validator's files: its home directory (what `lanes testnet` writes), or each
/// file given explicitly (for scripts and test harnesses).
#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// The validator's home: config.toml, genesis.json, validator.key, data/.
    #[arg(long, required_unless_present_all = ["genesis", "key_file", "index", "listen", "api", "data"])]
    home: Option<PathBuf>,
    /// Genesis file (without --home).
    #[arg(long, conflicts_with = "home")]
    genesis: Option<PathBuf>,
    /// File with the validator's 32-byte ed25519 seed in hex (without --home).
    #[arg(long, conflicts_with = "home")]
    key_file: Option<PathBuf>,
    /// The validator's index in genesis (without --home).
    #[arg(long, conflicts_with = "home")]
    index: Option<u32>,
    /// QUIC listen address (without --home).
    #[arg(long, conflicts_with = "home")]
    listen: Option<std::net::SocketAddr>,
    /// HTTP API listen address (without --home).
    #[arg(long, conflicts_with = "home")]
    api: Option<std::net::SocketAddr>,
    /// Database directory (without --home).
    #[arg(long, conflicts_with = "home")]
    data: Option<PathBuf>,
    /// Executor threads (default: the config's, else 2).
    #[arg(long)]
    exec_threads: Option<usize>,
    /// Log format: text or json (default: the config's, else text).
    #[arg(long)]
    log_format: Option<String>,
    /// Keep only this many blocks below the head (0 keeps all; default: the config's, else 0).
    /// A peer that misses pruned blocks fetches the certified state instead.
    #[arg(long)]
    retain_blocks: Option<u64>,
    /// Misbehave on purpose (fault-injection builds only).
    #[cfg(feature = "byzantine")]
    #[arg(long, value_enum)]
    byzantine: Option<node::byzantine::Mode>,
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
    let params = match &a.home {
        Some(dir) => {
            let home = config::Home::load(dir)?;
            node::NodeParams {
                data_dir: home.data_dir(),
                genesis: home.genesis,
                key: home.key,
                index: home.config.index,
                listen: home.config.listen,
                api: home.config.api,
                peers: home.config.peers,
                exec_threads: a.exec_threads.unwrap_or(home.config.exec_threads),
                log_format: a.log_format.clone().unwrap_or(home.config.log_format),
                retain_blocks: a.retain_blocks.unwrap_or(home.config.retain_blocks),
                api_limits: Default::default(),
                #[cfg(feature = "byzantine")]
                byzantine: a.byzantine,
            }
        }
        None => {
            let need = |what: &str| anyhow::anyhow!("--{what} is required without --home");
            let genesis_path = a.genesis.clone().ok_or_else(|| need("genesis"))?;
            node::NodeParams {
                genesis: Genesis::load(&genesis_path)
                    .with_context(|| format!("loading genesis {}", genesis_path.display()))?,
                key: config::read_key(a.key_file.as_ref().ok_or_else(|| need("key-file"))?)?,
                index: a.index.ok_or_else(|| need("index"))?,
                listen: a.listen.ok_or_else(|| need("listen"))?,
                api: a.api.ok_or_else(|| need("api"))?,
                data_dir: a.data.clone().ok_or_else(|| need("data"))?,
                peers: Default::default(),
                exec_threads: a.exec_threads.unwrap_or(2),
                log_format: a.log_format.clone().unwrap_or_else(|| "text".into()),
                retain_blocks: a.retain_blocks.unwrap_or(0),
                api_limits: Default::default(),
                #[cfg(feature = "byzantine")]
                byzantine: a.byzantine,
            }
        }
    };
    init_logging(&params.log_format)?;
    node::run(params)
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
            target: Some(BenchTarget::Executor(args)),
            ..
        } => bench_exec::run(args)?,
        Command::Bench { target: None, e2e } => bench_e2e::run(e2e)?,
        Command::Sim(args) => sim_cmd::run_sim(args)?,
        Command::Chaos(args) => chaos::run(args)?,
        Command::Node(args) => run_node(args)?,
        Command::Localnet(args) => localnet::run(args)?,
        Command::Explorer(cmd) => explorer::run(cmd)?,
        Command::Testnet(args) => testnet::run(args)?,
        Command::Keys { command } => wallet::keys(command)?,
        Command::Send { command } => wallet::send(command)?,
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
