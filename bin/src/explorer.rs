//! The block explorer: read-only commands over a node's HTTP API (through the typed
//! [`lanes_api::Client`]). Human output is aligned tables with short hashes; `--json` prints
//! the node's answer as JSON. `lanes proof --verify` and `lanes tx --verify` are a light
//! client: they check the execution certificate's quorum against the genesis validator set and
//! the Merkle proof (of a state entry, of a receipt) against the certified root.

use anyhow::{bail, Context, Result};
use lanes_api::{ApiError, BlocksQuery, Client, StateProof, TxInfo};
use lanes_executor::state::{Key, Value};
use lanes_executor::{verify_proof, Proof};
use lanes_types::codec::{Decode, Encode};
use lanes_types::{parse_hex, to_hex, Address, CheckpointCertificate, Genesis, Hash};
use serde::Serialize;
use serde_json::Value as Json;
use std::path::PathBuf;

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
    /// One transaction: its status (pending, committed, certified), block, operation and
    /// receipt.
    Tx {
        /// Transaction hash.
        hash: String,
        /// Check the certificate against the genesis validators and the receipt's proof
        /// against the certified receipts root.
        #[arg(long)]
        verify: bool,
        /// The genesis file to trust (default: `.lanes/localnet/genesis.json`).
        #[arg(long, default_value = ".lanes/localnet/genesis.json")]
        genesis: PathBuf,
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

/// The first 12 characters of a hash, for tables.
fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// An optional value as table text (`-` when absent).
pub(crate) fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn print_json(v: &impl Serialize) -> Result<()> {
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
        ExplorerCommand::Status { .. } => status(&c, opts.json),
        ExplorerCommand::Blocks { from, limit, .. } => blocks(&c, from, limit, opts.json),
        ExplorerCommand::Block { id, .. } => block(&c, &id, opts.json),
        ExplorerCommand::Tx {
            hash,
            verify,
            genesis,
            ..
        } if verify => verify_tx(&c, &hash, &genesis, opts.json),
        ExplorerCommand::Tx { hash, .. } => tx(&c, &hash, opts.json),
        ExplorerCommand::Account { address, .. } => account(&c, &address, opts.json),
        ExplorerCommand::Pool { id, .. } => pool(&c, id, opts.json),
        ExplorerCommand::Validators { .. } => validators(&c, opts.json),
        ExplorerCommand::Follow { .. } => follow(&c, opts.json),
        ExplorerCommand::Proof {
            key,
            verify,
            genesis,
            ..
        } => proof(&c, &key, verify.then_some(genesis), opts.json),
    }
}

/// `lanes status`: every field, in name order.
fn status(c: &Client, json: bool) -> Result<()> {
    let s = c.status()?;
    if json {
        return print_json(&s);
    }
    if let Json::Object(fields) = serde_json::to_value(&s)? {
        for (k, v) in fields {
            let v = match v {
                Json::String(s) => s,
                other => other.to_string(),
            };
            println!("{k:<18} {v}");
        }
    }
    Ok(())
}

/// `lanes blocks`.
fn blocks(c: &Client, from: Option<u64>, limit: usize, json: bool) -> Result<()> {
    let blocks = c.blocks(BlocksQuery {
        from,
        limit: Some(limit),
    })?;
    if json {
        return print_json(&blocks);
    }
    println!(
        "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}  {:>8}  certified",
        "height", "hash", "txs", "root", "view", "proposer"
    );
    for b in &blocks {
        println!(
            "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}  {:>8}  {}",
            b.height,
            short(&b.hash),
            b.txs,
            short(b.state_root.as_deref().unwrap_or("-")),
            b.view,
            b.proposer,
            if b.certified { "yes" } else { "pending" }
        );
    }
    Ok(())
}

/// `lanes block ID`.
fn block(c: &Client, id: &str, json: bool) -> Result<()> {
    let b = c.block(id)?;
    if json {
        return print_json(&b);
    }
    let s = &b.summary;
    let rows = [
        ("height", s.height.to_string()),
        ("hash", s.hash.clone()),
        ("parent", s.parent.clone()),
        ("state_root", or_dash(s.state_root.as_ref())),
        ("view", s.view.to_string()),
        ("proposer", s.proposer.to_string()),
        ("timestamp_ms", s.timestamp_ms.to_string()),
        ("txs", s.txs.to_string()),
        ("certified", s.certified.to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<14} {v}");
    }
    for t in &b.transactions {
        println!("  {}  {}", short(&t.hash), t.tx.op().unwrap_or("?"));
    }
    Ok(())
}

/// `lanes tx HASH`.
fn tx(c: &Client, hash: &str, json: bool) -> Result<()> {
    let t = c.tx(hash)?;
    if json {
        return print_json(&t);
    }
    print_tx(&t)
}

/// A `/tx` answer as a table: status, block, the operation field by field, the receipt, the
/// certificate.
fn print_tx(t: &TxInfo) -> Result<()> {
    println!("hash         {}", t.hash);
    println!("status       {}", t.status);
    if let (Some(height), Some(index)) = (t.height, t.index) {
        println!("block        {height} (index {index})");
    }
    if let Some(hash) = &t.block_hash {
        println!("block hash   {hash}");
    }
    if let Some(d) = t.tx.as_ref().and_then(|tx| tx.decoded.as_ref()) {
        println!("sender       {}", d.sender);
        println!("nonce        {}", d.nonce);
        println!("fee          {}", d.fee);
        println!("operation    {}", d.op.kind);
        for (name, value) in &d.op.fields {
            let value = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("  {name:<10} {value}");
        }
    }
    if let Some(r) = &t.receipt {
        println!("receipt      {}", r.status);
        println!("fee paid     {}", r.fee_paid);
        println!("outputs      {}", serde_json::to_string(&r.outputs)?);
    }
    if let Some(c) = &t.certificate {
        println!(
            "certified    at height {} by validators {:?}",
            c.height, c.signers
        );
        println!("receipts     root {}", c.receipts_root);
    }
    Ok(())
}

/// A `/tx` answer with the light client's verdict (`lanes tx --verify --json`).
#[derive(Serialize)]
struct TxVerdict<'a> {
    #[serde(flatten)]
    tx: &'a TxInfo,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `lanes tx HASH --verify`: the light-client check of a transaction's certified receipt
/// against the validators of a trusted genesis ([`lanes_node::light::verify_tx`]).
fn verify_tx(c: &Client, hash: &str, genesis: &std::path::Path, json: bool) -> Result<()> {
    let genesis = Genesis::load(genesis)
        .with_context(|| format!("loading the trusted genesis {}", genesis.display()))?;
    let asked: Hash = hash
        .parse()
        .map_err(|e| anyhow::anyhow!("bad transaction hash {hash:?}: {e}"))?;
    let t = c.tx(asked).map_err(not_verified)?;
    let verdict = lanes_node::light::verify_tx(&asked, &t, &genesis);
    if json {
        print_json(&TxVerdict {
            tx: &t,
            verified: verdict.is_ok(),
            reason: verdict.as_ref().err().map(|e| e.to_string()),
        })?;
    }
    let v = verdict.map_err(|e| anyhow::anyhow!("NOT verified: {e}"))?;
    if !json {
        print_tx(&t)?;
        println!(
            "verified: receipt {} at height {} (index {}) under receipts root {} certified by {} \
             of {} validators",
            t.receipt.as_ref().map_or("?", |r| r.status.as_str()),
            v.certificate.height,
            v.index,
            v.certificate.receipts_root.short(),
            v.certificate.signatures.len(),
            genesis.validators.len()
        );
    }
    Ok(())
}

/// Why a transaction could not be verified when the node did not answer it.
fn not_verified(e: ApiError) -> anyhow::Error {
    let why = match e.status() {
        Some(409) => "the node's receipts diverged from the certified ones (409)",
        Some(404) => "the node does not know the transaction (404)",
        _ => "the node did not answer",
    };
    anyhow::Error::new(e).context(format!("NOT verified: {why}"))
}

/// `lanes account ADDRESS`.
fn account(c: &Client, address: &str, json: bool) -> Result<()> {
    let a = c.account(address)?;
    if json {
        return print_json(&a);
    }
    println!("address  {}", a.address);
    println!("nonce    {}", a.nonce);
    println!("{:>6}  {:<8}  {:>20}", "asset", "symbol", "balance");
    for b in &a.balances {
        println!("{:>6}  {:<8}  {:>20}", b.asset, b.symbol, b.amount);
    }
    for s in &a.stakes {
        println!("stake    {} with {}", s.amount, short(&s.validator));
    }
    for p in &a.positions {
        println!(
            "lending  asset {} supplied {} borrowed {}",
            p.asset, p.supplied, p.borrowed
        );
    }
    Ok(())
}

/// `lanes pool ID`.
fn pool(c: &Client, id: u32, json: bool) -> Result<()> {
    let p = c.pool(id)?;
    if json {
        return print_json(&p);
    }
    let rows = [
        ("id", u64::from(p.id)),
        ("asset_a", p.asset_a.into()),
        ("asset_b", p.asset_b.into()),
        ("reserve_a", p.reserve_a),
        ("reserve_b", p.reserve_b),
        ("shares", p.shares),
    ];
    for (k, v) in rows {
        println!("{k:<10} {v}");
    }
    Ok(())
}

/// `lanes validators`.
fn validators(c: &Client, json: bool) -> Result<()> {
    let vs = c.validators()?;
    if json {
        return print_json(&vs);
    }
    println!(
        "{:>5}  {:<14}  {:<22}  {:<12}  connected",
        "index", "name", "address", "key"
    );
    for v in &vs {
        let conn = match (v.is_self, v.connected) {
            (true, _) => "self".to_string(),
            (false, connected) => or_dash(connected),
        };
        println!(
            "{:>5}  {:<14}  {:<22}  {:<12}  {}",
            v.index,
            v.name,
            v.address,
            short(&v.public_key),
            conn
        );
    }
    Ok(())
}

/// A `/proof` answer with the light client's verdict (`lanes proof --verify --json`).
#[derive(Serialize)]
struct Verdict<'a> {
    #[serde(flatten)]
    proof: &'a StateProof,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `lanes proof KEY [--verify]`: with a trusted `genesis`, the light-client check.
fn proof(c: &Client, key: &str, genesis: Option<PathBuf>, json: bool) -> Result<()> {
    let p = c.proof(key)?;
    let Some(genesis) = genesis else {
        if json {
            return print_json(&p);
        }
        println!("height {} root {}", p.height, p.state_root);
        println!("proof  {}", p.proof);
        return Ok(());
    };
    let genesis = Genesis::load(&genesis)
        .with_context(|| format!("loading the trusted genesis {}", genesis.display()))?;
    let verdict = verify_proof_response(&p, &genesis, key);
    if json {
        print_json(&Verdict {
            proof: &p,
            verified: verdict.is_ok(),
            reason: verdict.as_ref().err().map(|e| format!("{e:#}")),
        })?;
    }
    match verdict {
        Ok(summary) => {
            if !json {
                println!("verified: {summary}");
            }
            Ok(())
        }
        Err(e) => bail!("NOT verified: {e:#}"),
    }
}

fn unhex(s: &str, what: &str) -> Result<Vec<u8>> {
    parse_hex(s).with_context(|| format!("{what} is not hex"))
}

/// The light-client check of a `/proof` answer.
fn verify_proof_response(p: &StateProof, genesis: &Genesis, asked: &str) -> Result<String> {
    let cert = CheckpointCertificate::from_bytes(&unhex(&p.certificate, "certificate")?)
        .context("the certificate does not decode")?;
    cert.verify(&genesis.chain_id, &genesis.validator_set())
        .context("the execution certificate is not signed by a quorum of the genesis validators")?;
    let key = Key::from_bytes(&unhex(&p.key, "key")?).context("the key does not decode")?;
    let expected = match asked.parse::<Address>() {
        Ok(addr) => Key::Balance(addr, 0),
        Err(_) => Key::from_bytes(&unhex(asked, "key")?)?,
    };
    if key != expected {
        bail!("the node proved another key than the one asked");
    }
    let value = match &p.value {
        None => None,
        Some(v) => {
            Some(Value::from_bytes(&unhex(v, "value")?).context("the value does not decode")?)
        }
    };
    let proof =
        Proof::from_bytes(&unhex(&p.proof, "proof")?).context("the proof does not decode")?;
    if !verify_proof(cert.state_root, &key, value.as_ref(), &proof) {
        bail!("the Merkle proof does not lead to the certified root");
    }
    let what = match &value {
        Some(Value::U64(v)) => format!("value {v}"),
        Some(v) => format!("value {}", to_hex(v.to_bytes())),
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

/// `lanes follow`: reads the node's server-sent events and prints each block.
fn follow(c: &Client, json: bool) -> Result<()> {
    let events = c.events()?;
    if !json {
        println!(
            "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}",
            "height", "hash", "txs", "root", "view"
        );
    }
    for b in events {
        let b = b?;
        if json {
            println!("{}", serde_json::to_string(&b)?);
        } else {
            println!(
                "{:>8}  {:<12}  {:>5}  {:<12}  {:>4}",
                b.height,
                short(&b.hash),
                b.txs,
                short(&b.state_root),
                b.view
            );
        }
    }
    Ok(())
}
