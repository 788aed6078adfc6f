//! The block explorer: read-only commands over a node's HTTP API. Human output is aligned
//! tables with short hashes; `--json` prints the node's complete JSON. `lanes proof --verify` is
//! a light client: it checks the execution certificate's quorum against the genesis validator
//! set and the Merkle proof against the certified root.

use anyhow::{bail, Context, Result};
use lanes_executor::state::{Key, Value};
use lanes_executor::{verify_proof, Proof};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{Address, CheckpointCertificate, Genesis};
use serde_json::Value as Json;
use std::path::PathBuf;
use std::time::Duration;

/// The default node: validator 0 of `lanes localnet`.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:7100";

/// Options every explorer command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeOpts {
    /// The node's API URL (default: $LANES_NODE, else the first localnet validator).
    #[arg(long, env = "LANES_NODE", default_value = DEFAULT_NODE)]
    pub node: String,
    /// Print complete JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The explorer commands.
#[derive(clap::Subcommand, Debug)]
pub enum ExplorerCommand {
    /// Chain id, height, view, primary, root, certified height, mempool, peers.
    Status {
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Recent blocks (or from a height).
    Blocks {
        /// First height (default: the latest `limit` blocks).
        #[arg(long)]
        from: Option<u64>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// One block by height or hash.
    Block {
        /// Height or block hash.
        id: String,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// One transaction with its receipt and location.
    Tx {
        /// Transaction hash.
        hash: String,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// An account: nonce, balances, stakes, lending positions.
    Account {
        /// The account address (hex).
        address: String,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// An AMM pool.
    Pool {
        /// Pool id.
        id: u32,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// The validators and whether this node is connected to them.
    Validators {
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Prints each new block as it commits, until Ctrl-C.
    Follow {
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Fetches a Merkle proof of an account's native balance or of a state key, with the
    /// execution certificate behind its root.
    Proof {
        /// An account address, or a hex-encoded state key.
        key: String,
        /// Check the certificate against the genesis validators and the proof against the root.
        #[arg(long)]
        verify: bool,
        /// The genesis file to trust (default: `.lanes/localnet/genesis.json`).
        #[arg(long, default_value = ".lanes/localnet/genesis.json")]
        genesis: PathBuf,
        #[command(flatten)]
        opts: NodeOpts,
    },
}

struct Client {
    base: String,
    http: ureq::Agent,
}

impl Client {
    fn new(node: &str) -> Client {
        Client {
            base: node.trim_end_matches('/').to_string(),
            http: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn get(&self, path: &str) -> Result<Json> {
        let url = format!("{}{}", self.base, path);
        let mut resp = self
            .http
            .get(&url)
            .call()
            .with_context(|| format!("node unreachable at {}", self.base))?;
        let status = resp.status().as_u16();
        let body: Json = resp
            .body_mut()
            .read_json()
            .with_context(|| format!("{url} did not answer JSON"))?;
        if status >= 400 {
            bail!("{}", body["error"].as_str().unwrap_or("request failed"));
        }
        Ok(body)
    }
}

fn short(s: &Json) -> String {
    let s = s.as_str().unwrap_or("-");
    s.chars().take(12).collect()
}

/// A JSON value as plain text (strings without quotes), so table widths apply.
fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_json(v: &Json) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs one explorer command.
pub fn run(cmd: ExplorerCommand) -> Result<()> {
    let opts = match &cmd {
        ExplorerCommand::Status { opts }
        | ExplorerCommand::Blocks { opts, .. }
        | ExplorerCommand::Block { opts, .. }
        | ExplorerCommand::Tx { opts, .. }
        | ExplorerCommand::Account { opts, .. }
        | ExplorerCommand::Pool { opts, .. }
        | ExplorerCommand::Validators { opts }
        | ExplorerCommand::Follow { opts }
        | ExplorerCommand::Proof { opts, .. } => opts.clone(),
    };
    let c = Client::new(&opts.node);
    match cmd {
        ExplorerCommand::Status { .. } => {
            let s = c.get("/status")?;
            if opts.json {
                return print_json(&s);
            }
            for (k, v) in s.as_object().into_iter().flatten() {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                println!("{k:<18} {v}");
            }
        }
        ExplorerCommand::Blocks { from, limit, .. } => {
            let path = match from {
                Some(f) => format!("/blocks?from={f}&limit={limit}"),
                None => format!("/blocks?limit={limit}"),
            };
            let blocks = c.get(&path)?;
            if opts.json {
                return print_json(&blocks);
            }
            println!(
                "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}  {:>8}  certified",
                "height", "hash", "txs", "root", "view", "proposer"
            );
            for b in blocks.as_array().into_iter().flatten() {
                println!(
                    "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}  {:>8}  {}",
                    plain(&b["height"]),
                    short(&b["hash"]),
                    plain(&b["txs"]),
                    short(&b["state_root"]),
                    plain(&b["view"]),
                    plain(&b["proposer"]),
                    if b["certified"] == true {
                        "yes"
                    } else {
                        "pending"
                    }
                );
            }
        }
        ExplorerCommand::Block { id, .. } => {
            let b = c.get(&format!("/block/{id}"))?;
            if opts.json {
                return print_json(&b);
            }
            for k in [
                "height",
                "hash",
                "parent",
                "state_root",
                "view",
                "proposer",
                "timestamp_ms",
                "txs",
                "certified",
            ] {
                println!("{k:<14} {}", plain(&b[k]));
            }
            for t in b["transactions"].as_array().into_iter().flatten() {
                println!(
                    "  {}  {}",
                    short(&t["hash"]),
                    t["tx"]["op"].as_str().unwrap_or("?")
                );
            }
        }
        ExplorerCommand::Tx { hash, .. } => {
            let t = c.get(&format!("/tx/{hash}"))?;
            if opts.json {
                return print_json(&t);
            }
            println!("hash       {}", t["hash"].as_str().unwrap_or(""));
            println!(
                "block      {} (index {})",
                plain(&t["height"]),
                plain(&t["index"])
            );
            println!("certified  {}", plain(&t["certified"]));
            println!("sender     {}", t["tx"]["sender"].as_str().unwrap_or("?"));
            println!("nonce      {}", plain(&t["tx"]["nonce"]));
            println!("operation  {}", t["tx"]["op"].as_str().unwrap_or("?"));
            println!(
                "status     {}",
                t["receipt"]["status"].as_str().unwrap_or("?")
            );
            println!("fee paid   {}", plain(&t["receipt"]["fee_paid"]));
        }
        ExplorerCommand::Account { address, .. } => {
            let a = c.get(&format!("/account/{address}"))?;
            if opts.json {
                return print_json(&a);
            }
            println!("address  {}", a["address"].as_str().unwrap_or(""));
            println!("nonce    {}", plain(&a["nonce"]));
            println!("{:>6}  {:<8}  {:>20}", "asset", "symbol", "balance");
            for b in a["balances"].as_array().into_iter().flatten() {
                println!(
                    "{:>6}  {:<8}  {:>20}",
                    plain(&b["asset"]),
                    b["symbol"].as_str().unwrap_or(""),
                    b["amount"]
                );
            }
            for s in a["stakes"].as_array().into_iter().flatten() {
                println!("stake    {} with {}", s["amount"], short(&s["validator"]));
            }
            for p in a["positions"].as_array().into_iter().flatten() {
                println!(
                    "lending  asset {} supplied {} borrowed {}",
                    plain(&p["asset"]),
                    p["supplied"],
                    p["borrowed"]
                );
            }
        }
        ExplorerCommand::Pool { id, .. } => {
            let p = c.get(&format!("/pool/{id}"))?;
            if opts.json {
                return print_json(&p);
            }
            for k in [
                "id",
                "asset_a",
                "asset_b",
                "reserve_a",
                "reserve_b",
                "shares",
            ] {
                println!("{k:<10} {}", plain(&p[k]));
            }
        }
        ExplorerCommand::Validators { .. } => {
            let v = c.get("/validators")?;
            if opts.json {
                return print_json(&v);
            }
            println!(
                "{:>5}  {:<14}  {:<22}  {:<12}  connected",
                "index", "name", "address", "key"
            );
            for x in v.as_array().into_iter().flatten() {
                let conn = if x["self"] == true {
                    "self".to_string()
                } else {
                    x["connected"].to_string()
                };
                println!(
                    "{:>5}  {:<14}  {:<22}  {:<12}  {}",
                    plain(&x["index"]),
                    x["name"].as_str().unwrap_or(""),
                    x["address"].as_str().unwrap_or(""),
                    short(&x["public_key"]),
                    conn
                );
            }
        }
        ExplorerCommand::Follow { .. } => follow(&c, opts.json)?,
        ExplorerCommand::Proof {
            key,
            verify,
            genesis,
            ..
        } => {
            let p = c.get(&format!("/proof/{key}"))?;
            if !verify {
                return if opts.json {
                    print_json(&p)
                } else {
                    println!(
                        "height {} root {}",
                        plain(&p["height"]),
                        p["state_root"].as_str().unwrap_or("")
                    );
                    println!("proof  {}", p["proof"].as_str().unwrap_or(""));
                    Ok(())
                };
            }
            let genesis = Genesis::load(&genesis)
                .with_context(|| format!("loading the trusted genesis {}", genesis.display()))?;
            let verdict = verify_proof_response(&p, &genesis, &key);
            if opts.json {
                let mut out = p.clone();
                out["verified"] = Json::Bool(verdict.is_ok());
                if let Err(e) = &verdict {
                    out["reason"] = Json::String(format!("{e:#}"));
                }
                print_json(&out)?;
            }
            match verdict {
                Ok(summary) => {
                    if !opts.json {
                        println!("verified: {summary}");
                    }
                }
                Err(e) => bail!("NOT verified: {e:#}"),
            }
        }
    }
    Ok(())
}

fn unhex(s: &Json, what: &str) -> Result<Vec<u8>> {
    let s = s
        .as_str()
        .with_context(|| format!("no {what} in the answer"))?;
    if s.len() % 2 != 0 {
        bail!("{what} is not hex");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("{what} is not hex")))
        .collect()
}

/// The light-client check of a `/proof` answer.
fn verify_proof_response(p: &Json, genesis: &Genesis, asked: &str) -> Result<String> {
    let cert = CheckpointCertificate::from_bytes(&unhex(&p["certificate"], "certificate")?)
        .context("the certificate does not decode")?;
    cert.verify(&genesis.chain_id, &genesis.validator_set())
        .context("the execution certificate is not signed by a quorum of the genesis validators")?;
    let key_bytes = unhex(&p["key"], "key")?;
    let key = Key::from_bytes(&key_bytes).context("the key does not decode")?;
    let expected = match asked.parse::<Address>() {
        Ok(addr) => Key::Balance(addr, 0),
        Err(_) => Key::from_bytes(&unhex(&Json::String(asked.into()), "key")?)?,
    };
    if key != expected {
        bail!("the node proved another key than the one asked");
    }
    let value = match &p["value"] {
        Json::Null => None,
        v => Some(Value::from_bytes(&unhex(v, "value")?).context("the value does not decode")?),
    };
    let proof =
        Proof::from_bytes(&unhex(&p["proof"], "proof")?).context("the proof does not decode")?;
    if !verify_proof(cert.state_root, &key, value.as_ref(), &proof) {
        bail!("the Merkle proof does not lead to the certified root");
    }
    let what = match &value {
        Some(Value::U64(v)) => format!("value {v}"),
        Some(v) => format!("value {}", hex_of(&v.to_bytes())),
        None => "absent (exclusion proof)".into(),
    };
    Ok(format!(
        "{what} at height {} under root {} certified by {} of {} validators",
        cert.height,
        cert.state_root.short(),
        cert.signatures.len(),
        genesis.validators.len()
    ))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `lanes follow`: reads the node's server-sent events and prints each block.
fn follow(c: &Client, json: bool) -> Result<()> {
    use std::io::BufRead;
    let url = format!("{}/events", c.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(None)
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .get(&url)
        .call()
        .with_context(|| format!("node unreachable at {}", c.base))?;
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    if !json {
        println!(
            "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}",
            "height", "hash", "txs", "root", "view"
        );
    }
    for line in reader.lines() {
        let line = line.context("the event stream broke")?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let b: Json = serde_json::from_str(data.trim()).unwrap_or(Json::Null);
        if json {
            println!("{b}");
        } else {
            println!(
                "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}",
                plain(&b["height"]),
                short(&b["hash"]),
                plain(&b["txs"]),
                short(&b["state_root"]),
                b["view"]
            );
        }
    }
    Ok(())
}
