//! `lanes testnet`: generates a new network: validator keys, funded dev accounts, one genesis
//! and a home directory per validator (see [`crate::config`]), ready to copy to N machines or
//! to run on this one (`lanes localnet` calls [`generate`]).
//!
//! Layout of `--out DIR`:
//!
//! ```text
//! DIR/genesis.json
//! DIR/validator-<i>/{config.toml, genesis.json, validator.key}
//! DIR/dev-keys/dev-<k>.key, DIR/dev-keys/README
//! ```
//!
//! Validator `i` listens for peers on port `P+i` and serves its API on `P+100+i` (`P` is
//! `--base-port`). Its genesis address is `H:P+i` (`H` is `--host`). With a loopback host every
//! socket binds to `H`; with any other host the node binds `0.0.0.0`, so the same home works
//! behind NAT.

use crate::config::{self, Home, NodeConfig};
use anyhow::{bail, ensure, Context, Result};
use lanes_types::genesis::{GenesisAsset, GenesisBalance, MIN_VALIDATORS};
use lanes_types::{Address, Genesis, ProtocolParams, SecretKey, ValidatorInfo};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Assets of a generated genesis, in id order: the native `LANE` (0), `USDC` (1), `ETH` (2).
pub const ASSETS: [&str; 3] = ["LANE", "USDC", "ETH"];
/// What each dev account holds of every asset at genesis.
pub const DEV_BALANCE: u64 = 1_000_000_000_000;
/// The most validators the port layout allows (API ports start 100 above the first peer port).
pub const MAX_VALIDATORS: usize = 100;

/// Arguments of `lanes testnet`.
#[derive(clap::Args, Debug)]
pub struct TestnetArgs {
    /// Number of validators (at least 4: n = 3f+1).
    #[arg(long, value_name = "N")]
    validators: usize,
    /// Output directory (must be absent or empty unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// First port: validator i listens for peers on P+i, its API on P+100+i.
    #[arg(long, value_name = "P", default_value_t = 7000)]
    base_port: u16,
    /// Host (IP or DNS name) at which validators reach each other.
    #[arg(long, value_name = "H", default_value = "127.0.0.1")]
    host: String,
    /// Chain identifier.
    #[arg(long, default_value = "lanes-testnet")]
    chain_id: String,
    /// Funded development accounts to create.
    #[arg(long, value_name = "K", default_value_t = 8)]
    dev_accounts: usize,
    /// Replace a previous testnet in DIR (its validator homes, dev keys and genesis).
    #[arg(long)]
    force: bool,
}

/// What to generate ([`TestnetArgs`] without clap).
#[derive(Debug, Clone)]
pub struct TestnetOptions {
    /// Number of validators (4 to [`MAX_VALIDATORS`]).
    pub validators: usize,
    /// Output directory.
    pub out: PathBuf,
    /// First port (peer ports `P..`, API ports `P+100..`).
    pub base_port: u16,
    /// Host at which validators reach each other (IP or DNS name).
    pub host: String,
    /// Chain identifier.
    pub chain_id: String,
    /// Funded development accounts (at least 1: account 0 is the price oracle).
    pub dev_accounts: usize,
    /// Replace an existing testnet in `out` instead of refusing a non-empty directory.
    pub force: bool,
}

impl Default for TestnetOptions {
    fn default() -> Self {
        TestnetOptions {
            validators: 4,
            out: PathBuf::from("testnet"),
            base_port: 7000,
            host: "127.0.0.1".into(),
            chain_id: "lanes-testnet".into(),
            dev_accounts: 8,
            force: false,
        }
    }
}

/// One generated validator.
#[derive(Debug, Clone)]
pub struct ValidatorLayout {
    /// Its index in genesis.
    pub index: u32,
    /// Its name in genesis (`validator-<i>`).
    pub name: String,
    /// Its home directory.
    pub home: PathBuf,
    /// Its peer address in genesis (`H:P+i`).
    pub p2p_address: String,
    /// The QUIC address it binds.
    pub listen: SocketAddr,
    /// The HTTP API address it binds.
    pub api: SocketAddr,
    /// Where clients reach its API (`H:P+100+i`).
    pub api_url: String,
}

/// Everything [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct TestnetLayout {
    /// The output directory.
    pub dir: PathBuf,
    /// `DIR/genesis.json`.
    pub genesis_path: PathBuf,
    /// The genesis (validated).
    pub genesis: Genesis,
    /// The validators, by index.
    pub validators: Vec<ValidatorLayout>,
    /// The dev key files `DIR/dev-keys/dev-<k>.key`, by account number.
    pub dev_key_files: Vec<PathBuf>,
    /// The dev accounts' addresses, by account number (account 0 is the oracle).
    pub dev_accounts: Vec<Address>,
}

/// A genesis in the testnet's shape: validators `validator-<i>` at `addresses[i]`, assets
/// [`ASSETS`] each giving every dev account [`DEV_BALANCE`], local default parameters with dev
/// account 0 as the oracle. Validated through [`Genesis::from_json`].
pub fn build_genesis(
    chain_id: &str,
    genesis_time_ms: u64,
    validator_keys: &[SecretKey],
    addresses: &[String],
    dev_keys: &[SecretKey],
) -> Result<Genesis> {
    ensure!(
        validator_keys.len() == addresses.len(),
        "one address per validator"
    );
    let dev: Vec<Address> = dev_keys.iter().map(|k| k.public_key().address()).collect();
    let Some(&oracle) = dev.first() else {
        bail!("at least one dev account is needed (account 0 is the price oracle)");
    };
    let genesis = Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms,
        validators: validator_keys
            .iter()
            .zip(addresses)
            .enumerate()
            .map(|(i, (k, address))| ValidatorInfo {
                name: format!("validator-{i}"),
                public_key: k.public_key(),
                address: address.clone(),
            })
            .collect(),
        assets: ASSETS
            .iter()
            .map(|symbol| GenesisAsset {
                symbol: symbol.to_string(),
                balances: dev
                    .iter()
                    .map(|&account| GenesisBalance {
                        account,
                        amount: DEV_BALANCE,
                    })
                    .collect(),
            })
            .collect(),
        params: ProtocolParams::local_defaults(oracle),
    };
    // The only way to a Genesis others accept is validation: check ours passes it.
    Genesis::from_json(&genesis.to_json()).context("generated genesis is invalid")
}

/// `host:port`, with brackets around an IPv6 host.
fn join_host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The address a validator binds for `host`: the host itself when it is a loopback IP,
/// otherwise every interface.
fn bind_ip(host: &str) -> IpAddr {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) if ip.is_loopback() => ip,
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Makes `out` ready: created if absent; refused if non-empty unless `force`, in which case a
/// previous testnet's files (validator homes, dev keys, genesis) are removed and nothing else.
fn prepare_dir(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        ensure!(
            out.is_dir(),
            "{} exists and is not a directory",
            out.display()
        );
        let mut entries = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("cannot read {}", out.display()))?;
        if !entries.is_empty() && !force {
            bail!(
                "{} exists and is not empty; choose another --out or pass --force to replace the testnet in it",
                out.display()
            );
        }
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with("validator-") || name == "dev-keys" {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
                .with_context(|| format!("cannot remove {}", path.display()))?;
            } else if name == config::GENESIS_FILE {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// Generates keys, genesis and homes as described in the module documentation; every home is
/// checked with [`Home::load`] before this returns.
pub fn generate(opts: &TestnetOptions) -> Result<TestnetLayout> {
    let n = opts.validators;
    if n < MIN_VALIDATORS {
        bail!("PBFT needs at least {MIN_VALIDATORS} validators (3f+1); got {n}");
    }
    if n > MAX_VALIDATORS {
        bail!("at most {MAX_VALIDATORS} validators fit the port layout (peers P+i, APIs P+100+i); got {n}");
    }
    ensure!(
        opts.dev_accounts >= 1,
        "at least one dev account is needed (account 0 is the price oracle)"
    );
    let host = opts.host.trim();
    ensure!(
        !host.is_empty() && !host.contains(char::is_whitespace),
        "--host {:?} is not a host name or IP address",
        opts.host
    );
    let base = opts.base_port;
    ensure!(base > 0, "--base-port must be at least 1");
    let top = u32::from(base) + 100 + n as u32 - 1;
    ensure!(
        top <= u32::from(u16::MAX),
        "--base-port {base} is too high: the API of validator {} would need port {top}",
        n - 1
    );
    let port = |offset: usize| base + offset as u16;

    let validator_keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
    let dev_keys: Vec<SecretKey> = (0..opts.dev_accounts)
        .map(|_| SecretKey::generate())
        .collect();
    let addresses: Vec<String> = (0..n).map(|i| join_host_port(host, port(i))).collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis() as u64;
    let genesis = build_genesis(
        &opts.chain_id,
        now_ms,
        &validator_keys,
        &addresses,
        &dev_keys,
    )?;
    let genesis_json = genesis.to_json();

    prepare_dir(&opts.out, opts.force)?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    let genesis_path = opts.out.join(config::GENESIS_FILE);
    write(&genesis_path, &genesis_json)?;

    let ip = bind_ip(host);
    let mut validators = Vec::with_capacity(n);
    for (i, key) in validator_keys.iter().enumerate() {
        let home = opts.out.join(format!("validator-{i}"));
        std::fs::create_dir_all(&home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        let name = genesis.validators[i].name.clone();
        let cfg = NodeConfig::new(
            name.clone(),
            i as u32,
            SocketAddr::new(ip, port(i)),
            SocketAddr::new(ip, port(100 + i)),
        );
        cfg.write(&home.join(config::CONFIG_FILE))?;
        write(&home.join(config::GENESIS_FILE), &genesis_json)?;
        config::write_key(&home.join(config::KEY_FILE), key)?;
        validators.push(ValidatorLayout {
            index: i as u32,
            name,
            p2p_address: addresses[i].clone(),
            listen: cfg.listen,
            api: cfg.api,
            api_url: join_host_port(host, port(100 + i)),
            home,
        });
    }

    let dev_dir = opts.out.join("dev-keys");
    std::fs::create_dir_all(&dev_dir)
        .with_context(|| format!("cannot create {}", dev_dir.display()))?;
    let mut dev_key_files = Vec::with_capacity(dev_keys.len());
    for (k, key) in dev_keys.iter().enumerate() {
        let path = dev_dir.join(format!("dev-{k}.key"));
        config::write_key(&path, key)?;
        dev_key_files.push(path);
    }
    write(
        &dev_dir.join("README"),
        &format!(
            "Funded test keys of chain {}: each dev-<k>.key holds an ed25519 seed (64 hex characters)\n\
             of an account given {DEV_BALANCE} of {} at genesis. dev-0 is the price oracle.\n\
             They are test keys: anyone with this directory controls these accounts.\n",
            genesis.chain_id,
            ASSETS.join(", ")
        ),
    )?;

    for v in &validators {
        Home::load(&v.home).with_context(|| format!("generated home {}", v.home.display()))?;
    }
    Ok(TestnetLayout {
        dir: opts.out.clone(),
        genesis_path,
        dev_accounts: dev_keys.iter().map(|k| k.public_key().address()).collect(),
        genesis,
        validators,
        dev_key_files,
    })
}

/// Runs `lanes testnet` and prints a short summary.
pub fn run(args: TestnetArgs) -> Result<()> {
    let layout = generate(&TestnetOptions {
        validators: args.validators,
        out: args.out,
        base_port: args.base_port,
        host: args.host,
        chain_id: args.chain_id,
        dev_accounts: args.dev_accounts,
        force: args.force,
    })?;
    let g = &layout.genesis;
    println!(
        "testnet {} written to {} ({} validators, quorum {})",
        g.chain_id,
        layout.dir.display(),
        layout.validators.len(),
        g.validator_set().quorum(),
    );
    println!(
        "  genesis {} (hash {})",
        layout.genesis_path.display(),
        g.hash()
    );
    // An address and, when the node binds another IP, that IP.
    let shown = |public: &str, bind: SocketAddr| {
        if public == bind.to_string() {
            public.to_string()
        } else {
            format!("{public} (binds {})", bind.ip())
        }
    };
    println!(
        "  {:>3}  {:<14} {:<24} {:<24} home",
        "#", "name", "peer address", "api"
    );
    for v in &layout.validators {
        println!(
            "  {:>3}  {:<14} {:<24} {:<24} {}",
            v.index,
            v.name,
            shown(&v.p2p_address, v.listen),
            shown(&v.api_url, v.api),
            v.home.display()
        );
    }
    println!(
        "  {} funded dev keys in {}; dev-0 ({}) is the price oracle",
        layout.dev_key_files.len(),
        layout.dir.join("dev-keys").display(),
        layout.dev_accounts[0]
    );
    println!("run each validator with `lanes node --home <home>`");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> TestnetOptions {
        TestnetOptions {
            out: dir.join("net"),
            dev_accounts: 3,
            ..TestnetOptions::default()
        }
    }

    #[test]
    fn generates_homes_that_load_and_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = generate(&opts(tmp.path())).unwrap();
        assert_eq!(layout.validators.len(), 4);
        let text = std::fs::read_to_string(&layout.genesis_path).unwrap();
        let g = Genesis::from_json(&text).unwrap();
        assert_eq!(g, layout.genesis);
        assert_eq!(g.chain_id, "lanes-testnet");
        assert_eq!(
            g.assets
                .iter()
                .map(|a| a.symbol.as_str())
                .collect::<Vec<_>>(),
            ASSETS
        );
        assert_eq!(g.params.oracle, layout.dev_accounts[0]);
        assert!(g.genesis_time_ms > 1_600_000_000_000);
        for (i, v) in layout.validators.iter().enumerate() {
            let home = Home::load(&v.home).unwrap();
            assert_eq!(home.genesis, g);
            assert_eq!(home.config.index, i as u32);
            assert_eq!(home.config.name, format!("validator-{i}"));
            assert_eq!(
                home.config.listen.to_string(),
                format!("127.0.0.1:{}", 7000 + i)
            );
            assert_eq!(
                home.config.api.to_string(),
                format!("127.0.0.1:{}", 7100 + i)
            );
            assert_eq!(g.validators[i].address, format!("127.0.0.1:{}", 7000 + i));
        }
        for (k, path) in layout.dev_key_files.iter().enumerate() {
            let key = config::read_key(path).unwrap();
            assert_eq!(key.public_key().address(), layout.dev_accounts[k]);
            for a in &g.assets {
                assert!(a
                    .balances
                    .iter()
                    .any(|b| b.account == layout.dev_accounts[k] && b.amount == DEV_BALANCE));
            }
        }
        assert!(layout.dir.join("dev-keys/README").exists());
    }

    #[test]
    fn refuses_few_validators_and_non_empty_dirs_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(tmp.path());
        o.validators = 3;
        let e = generate(&o).unwrap_err().to_string();
        assert!(e.contains("PBFT needs at least 4 validators (3f+1)"), "{e}");
        assert!(!o.out.exists(), "nothing written");

        o.validators = 4;
        let first = generate(&o).unwrap();
        std::fs::write(o.out.join("notes.txt"), "keep me").unwrap();
        let e = generate(&o).unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("--force"), "{e}");

        o.force = true;
        o.validators = 5;
        let second = generate(&o).unwrap();
        assert_ne!(first.genesis.hash(), second.genesis.hash());
        assert_eq!(second.validators.len(), 5);
        assert!(o.out.join("notes.txt").exists(), "other files are kept");
        o.validators = 4;
        generate(&o).unwrap();
        assert!(!o.out.join("validator-4").exists(), "old homes are removed");
    }

    #[test]
    fn other_hosts_bind_all_interfaces_and_bad_ports_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(tmp.path());
        o.host = "node.example.org".into();
        o.base_port = 9000;
        o.chain_id = "my-chain".into();
        let layout = generate(&o).unwrap();
        let v = &layout.validators[3];
        assert_eq!(v.p2p_address, "node.example.org:9003");
        assert_eq!(v.api_url, "node.example.org:9103");
        assert_eq!(v.listen.to_string(), "0.0.0.0:9003");
        assert_eq!(v.api.to_string(), "0.0.0.0:9103");
        assert_eq!(layout.genesis.chain_id, "my-chain");

        o.host = "::1".into();
        o.force = true;
        let layout = generate(&o).unwrap();
        assert_eq!(layout.validators[0].p2p_address, "[::1]:9000");
        assert_eq!(layout.validators[0].listen.to_string(), "[::1]:9000");

        o.base_port = 65_500;
        let e = generate(&o).unwrap_err().to_string();
        assert!(e.contains("--base-port"), "{e}");
    }
}
