//! The wallet: a local keystore (`lanes keys`) and `lanes send`, which builds, signs and submits
//! a transaction, fills the nonce from the node, and by default waits until the transaction is
//! acknowledged: certified, its block's result (receipts included) signed by a quorum.

use crate::config::{read_key, write_key};
use crate::duration::parse_duration;
use crate::explorer::DEFAULT_NODE;
use crate::tx_wait::{print_reached, wait_for};
use anyhow::{bail, Context, Result};
use lanes_api::{Client, TxStatus};
use lanes_executor::tx::{Operation, Transaction};
use lanes_types::codec::Encode;
use lanes_types::{Address, SecretKey};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where keys live, and the dev keys `lanes localnet` writes (usable by name, e.g. `dev-0`).
#[derive(clap::Args, Debug, Clone)]
pub struct KeystoreOpts {
    /// Keystore directory (default: $LANES_KEYSTORE, else `.lanes/keys`).
    #[arg(long, env = "LANES_KEYSTORE", default_value = ".lanes/keys")]
    keystore: PathBuf,
    /// A directory of funded dev keys also searched by name.
    #[arg(long, default_value = ".lanes/localnet/dev-keys")]
    dev_keys: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lanes keys ...`.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Creates a new key under a name.
    New {
        /// Name of the key (letters, digits, `-`, `_`).
        name: String,
        #[command(flatten)]
        opts: KeystoreOpts,
    },
    /// Lists the keystore's keys (and the localnet dev keys).
    List {
        #[command(flatten)]
        opts: KeystoreOpts,
    },
    /// Shows a key's address and public key.
    Show {
        /// Name of the key.
        name: String,
        #[command(flatten)]
        opts: KeystoreOpts,
    },
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("bad key name {name:?}: use 1-64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// Finds a key by name in the keystore, then among the dev keys; or reads a key file path.
fn find_key(name: &str, opts: &KeystoreOpts) -> Result<SecretKey> {
    let as_path = Path::new(name);
    if name.ends_with(".key") && as_path.exists() {
        return read_key(as_path);
    }
    check_name(name)?;
    for dir in [&opts.keystore, &opts.dev_keys] {
        let path = dir.join(format!("{name}.key"));
        if path.exists() {
            return read_key(&path);
        }
    }
    bail!(
        "no key named {name:?} in {} or {}",
        opts.keystore.display(),
        opts.dev_keys.display()
    )
}

/// A key as `lanes keys ... --json` prints it.
#[derive(Serialize)]
struct KeyRow {
    name: String,
    address: String,
    public_key: String,
    /// `keystore` or `dev` (in `lanes keys list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

impl KeyRow {
    fn new(name: &str, key: &SecretKey, kind: Option<&'static str>) -> KeyRow {
        KeyRow {
            name: name.into(),
            address: key.public_key().address().to_string(),
            public_key: key.public_key().to_string(),
            kind,
        }
    }
}

fn list_dir(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".key")?
                .to_string();
            Some((name, path))
        })
        .collect();
    out.sort();
    out
}

/// Runs `lanes keys ...`.
pub fn keys(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::New { name, opts } => {
            check_name(&name)?;
            let path = opts.keystore.join(format!("{name}.key"));
            if path.exists() {
                bail!("a key named {name:?} already exists ({})", path.display());
            }
            std::fs::create_dir_all(&opts.keystore)
                .with_context(|| format!("creating {}", opts.keystore.display()))?;
            let key = SecretKey::generate();
            write_key(&path, &key)?;
            print_key(&name, &key, opts.json)
        }
        KeysCommand::Show { name, opts } => {
            let key = find_key(&name, &opts)?;
            print_key(&name, &key, opts.json)
        }
        KeysCommand::List { opts } => {
            let mut rows = Vec::new();
            for (dir, kind) in [(&opts.keystore, "keystore"), (&opts.dev_keys, "dev")] {
                for (name, path) in list_dir(dir) {
                    match read_key(&path) {
                        Ok(key) => rows.push(KeyRow::new(&name, &key, Some(kind))),
                        Err(e) => eprintln!("skipping {}: {e:#}", path.display()),
                    }
                }
            }
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<16}  {:<8}  address", "name", "kind");
                for r in &rows {
                    let kind = r.kind.unwrap_or_default();
                    println!("{:<16}  {:<8}  {}", r.name, kind, r.address);
                }
            }
            Ok(())
        }
    }
}

fn print_key(name: &str, key: &SecretKey, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&KeyRow::new(name, key, None))?);
    } else {
        println!("name        {name}");
        println!("address     {}", key.public_key().address());
        println!("public key  {}", key.public_key());
    }
    Ok(())
}

/// Options of every `lanes send` operation.
#[derive(clap::Args, Debug, Clone)]
pub struct SendOpts {
    /// The signing key: a keystore or dev key name (e.g. `dev-0`) or a key file.
    #[arg(long)]
    from: String,
    /// Fee in the native asset (default: the chain's minimum).
    #[arg(long)]
    fee: Option<u64>,
    /// Nonce (default: the account's next nonce, asked from the node).
    #[arg(long)]
    nonce: Option<u64>,
    /// What to wait for after submitting: nothing, `committed` (executed by the node) or
    /// `certified` (its block's result signed by a quorum: acknowledged).
    #[arg(long, value_enum, default_value_t = WaitFor::Certified)]
    wait: WaitFor,
    /// How long to wait (e.g. 500ms, 30s, 2m, 1m30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// The same as `--wait none`.
    #[arg(long, hide = true, conflicts_with = "wait")]
    no_wait: bool,
    /// The node's API URL (default: $LANES_NODE, else the first localnet validator).
    #[arg(long, env = "LANES_NODE", default_value = DEFAULT_NODE)]
    node: String,
    #[command(flatten)]
    keystore: KeystoreOpts,
}

/// What `lanes send` waits for after submitting.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Return once the node accepted the transaction.
    None,
    /// Wait until the node executed it in a committed block.
    Committed,
    /// Wait until its block's result is certified by a quorum (acknowledged).
    Certified,
}

impl WaitFor {
    /// The status waited for (`None` for [`WaitFor::None`]).
    fn status(self) -> Option<TxStatus> {
        match self {
            WaitFor::None => None,
            WaitFor::Committed => Some(TxStatus::Committed),
            WaitFor::Certified => Some(TxStatus::Certified),
        }
    }
}

/// `lanes send <operation>`.
#[derive(clap::Subcommand, Debug)]
pub enum SendCommand {
    /// Moves an asset to another account.
    Transfer {
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        #[arg(long, default_value_t = 0)]
        asset: u32,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Creates an asset; the sender gets the whole supply.
    CreateAsset {
        #[arg(long)]
        symbol: String,
        #[arg(long)]
        supply: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Creates a constant-product pool between two assets.
    CreatePool {
        #[arg(long)]
        a: u32,
        #[arg(long)]
        b: u32,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Deposits both assets of a pool for shares.
    AddLiquidity {
        #[arg(long)]
        pool: u32,
        #[arg(long)]
        amount_a: u64,
        #[arg(long)]
        amount_b: u64,
        #[arg(long, default_value_t = 0)]
        min_shares: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Burns shares for both assets.
    RemoveLiquidity {
        #[arg(long)]
        pool: u32,
        #[arg(long)]
        shares: u64,
        #[arg(long, default_value_t = 0)]
        min_a: u64,
        #[arg(long, default_value_t = 0)]
        min_b: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Swaps one asset of a pool for the other.
    Swap {
        #[arg(long)]
        pool: u32,
        #[arg(long)]
        asset_in: u32,
        #[arg(long)]
        amount_in: u64,
        #[arg(long, default_value_t = 0)]
        min_out: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Stakes native asset with a validator (its address).
    Stake {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Withdraws stake from a validator.
    Unstake {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Supplies an asset to its lending market (collateral).
    Supply {
        #[arg(long)]
        asset: u32,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Withdraws supplied collateral.
    Withdraw {
        #[arg(long)]
        asset: u32,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Borrows against supplied collateral.
    Borrow {
        #[arg(long)]
        asset: u32,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Repays a debt.
    Repay {
        #[arg(long)]
        asset: u32,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Repays part of an under-collateralised borrower's debt and seizes collateral.
    Liquidate {
        #[arg(long)]
        borrower: String,
        #[arg(long)]
        debt_asset: u32,
        #[arg(long)]
        collateral_asset: u32,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Sets an asset's oracle price (only the genesis oracle account).
    SetPrice {
        #[arg(long)]
        asset: u32,
        #[arg(long)]
        price: u64,
        #[command(flatten)]
        opts: SendOpts,
    },
}

fn address(s: &str) -> Result<Address> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("bad address {s:?}: {e:?}"))
}

impl SendCommand {
    fn into_parts(self) -> Result<(Operation, SendOpts)> {
        use SendCommand as S;
        Ok(match self {
            S::Transfer {
                to,
                amount,
                asset,
                opts,
            } => (
                Operation::Transfer {
                    asset,
                    to: address(&to)?,
                    amount,
                },
                opts,
            ),
            S::CreateAsset {
                symbol,
                supply,
                opts,
            } => (Operation::CreateAsset { symbol, supply }, opts),
            S::CreatePool { a, b, opts } => (Operation::CreatePool { a, b }, opts),
            S::AddLiquidity {
                pool,
                amount_a,
                amount_b,
                min_shares,
                opts,
            } => (
                Operation::AddLiquidity {
                    pool,
                    amount_a,
                    amount_b,
                    min_shares,
                },
                opts,
            ),
            S::RemoveLiquidity {
                pool,
                shares,
                min_a,
                min_b,
                opts,
            } => (
                Operation::RemoveLiquidity {
                    pool,
                    shares,
                    min_a,
                    min_b,
                },
                opts,
            ),
            S::Swap {
                pool,
                asset_in,
                amount_in,
                min_out,
                opts,
            } => (
                Operation::Swap {
                    pool,
                    asset_in,
                    amount_in,
                    min_out,
                },
                opts,
            ),
            S::Stake {
                validator,
                amount,
                opts,
            } => (
                Operation::Stake {
                    validator: address(&validator)?,
                    amount,
                },
                opts,
            ),
            S::Unstake {
                validator,
                amount,
                opts,
            } => (
                Operation::Unstake {
                    validator: address(&validator)?,
                    amount,
                },
                opts,
            ),
            S::Supply {
                asset,
                amount,
                opts,
            } => (Operation::Supply { asset, amount }, opts),
            S::Withdraw {
                asset,
                amount,
                opts,
            } => (Operation::Withdraw { asset, amount }, opts),
            S::Borrow {
                asset,
                amount,
                opts,
            } => (Operation::Borrow { asset, amount }, opts),
            S::Repay {
                asset,
                amount,
                opts,
            } => (Operation::Repay { asset, amount }, opts),
            S::Liquidate {
                borrower,
                debt_asset,
                collateral_asset,
                amount,
                opts,
            } => (
                Operation::Liquidate {
                    borrower: address(&borrower)?,
                    debt_asset,
                    collateral_asset,
                    amount,
                },
                opts,
            ),
            S::SetPrice { asset, price, opts } => (Operation::SetPrice { asset, price }, opts),
        })
    }
}

/// Runs `lanes send ...`: submits, then waits as `--wait` says.
pub fn send(cmd: SendCommand) -> Result<()> {
    let (op, opts) = cmd.into_parts()?;
    let key = find_key(&opts.from, &opts.keystore)?;
    let node = Client::new(&opts.node);
    let status = node.status()?;
    let nonce = match opts.nonce {
        Some(n) => n,
        None => node.account(key.public_key().address())?.nonce,
    };
    let name = op.name();
    let raw = Transaction {
        chain_id: status.chain_id,
        sender: key.public_key(),
        nonce,
        fee: opts.fee.unwrap_or(status.min_fee),
        op,
    }
    .sign(&key)
    .to_bytes();
    let started = Instant::now();
    let hash = match node.submit(&raw) {
        Ok(s) => s.hash,
        Err(e) => match e.message() {
            Some(why) => bail!("rejected: {why}"),
            None => return Err(e.into()),
        },
    };
    let target = if opts.no_wait {
        None
    } else {
        opts.wait.status()
    };
    let Some(target) = target else {
        if opts.keystore.json {
            let out = serde_json::json!({ "hash": hash, "op": name, "nonce": nonce });
            println!("{out}");
        } else {
            println!("submitted {name} {hash} (nonce {nonce})");
        }
        return Ok(());
    };
    let tx = wait_for(&node, &hash, target, opts.timeout)?;
    print_reached(&tx, name, started.elapsed(), opts.keystore.json)
}
