//! A validator's home directory: `config.toml`, `genesis.json`, `validator.key` and the `data/`
//! directory the node creates.
//!
//! `config.toml` ([`NodeConfig`]) names the validator (its name and index in genesis), its QUIC
//! and HTTP listen addresses, where the other files are (relative paths are relative to the
//! home), optional peer address overrides and the log format. `validator.key` holds the
//! validator's 32-byte ed25519 seed as 64 hex characters and a newline, mode 0600.
//! [`Home::load`] reads all of it and checks that the pieces agree, with a one-line error that
//! names the file and the problem.

use anyhow::{anyhow, bail, Context, Result};
use lanes_types::hash::parse_hex_array;
use lanes_types::{Genesis, GenesisError, SecretKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Name of the configuration file in a home directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Default name of the genesis file in a home directory.
pub const GENESIS_FILE: &str = "genesis.json";
/// Default name of the key file in a home directory.
pub const KEY_FILE: &str = "validator.key";
/// Default name of the database directory in a home directory.
pub const DATA_DIR: &str = "data";

fn default_data_dir() -> PathBuf {
    DATA_DIR.into()
}

fn default_genesis() -> PathBuf {
    GENESIS_FILE.into()
}

fn default_key() -> PathBuf {
    KEY_FILE.into()
}

fn default_log_format() -> String {
    "text".into()
}

fn default_exec_threads() -> usize {
    2
}

/// The contents of a validator's `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The validator's name, as in genesis.
    pub name: String,
    /// The validator's index in the genesis validator list.
    pub index: u32,
    /// QUIC validator-to-validator listen address.
    pub listen: SocketAddr,
    /// HTTP API listen address.
    pub api: SocketAddr,
    /// Database directory (default `data`, relative to the home).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Genesis file (default `genesis.json`, relative to the home).
    #[serde(default = "default_genesis")]
    pub genesis: PathBuf,
    /// Key file (default `validator.key`, relative to the home).
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// Threads of the executor's rayon pool (default 2).
    #[serde(default = "default_exec_threads")]
    pub exec_threads: usize,
    /// Log format: `text` (default) or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Blocks kept below the head; older ones are pruned (0, the default, keeps all).
    #[serde(default)]
    pub retain_blocks: u64,
    /// `host:port` overrides of genesis peer addresses, by validator index (a fault proxy
    /// between peers uses this). In TOML: a `[peers]` table with keys `"0"`, `"1"`, ...
    #[serde(default, with = "peer_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<u32, String>,
}

/// TOML table keys are strings: peers are written as `"1" = "host:port"`.
mod peer_map {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(map: &BTreeMap<u32, String>, s: S) -> Result<S::Ok, S::Error> {
        map.iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<String, &String>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, String>, D::Error> {
        // Parsed as numbers so "10" sorts after "9".
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| match k.parse::<u32>() {
                Ok(i) => Ok((i, v)),
                Err(_) => Err(D::Error::custom(format!(
                    "peers: key {k:?} is not a validator index"
                ))),
            })
            .collect()
    }
}

impl NodeConfig {
    /// A configuration with the default file locations, no peer overrides and text logs.
    pub fn new(name: String, index: u32, listen: SocketAddr, api: SocketAddr) -> NodeConfig {
        NodeConfig {
            name,
            index,
            listen,
            api,
            data_dir: default_data_dir(),
            genesis: default_genesis(),
            key: default_key(),
            exec_threads: default_exec_threads(),
            log_format: default_log_format(),
            retain_blocks: 0,
            peers: BTreeMap::new(),
        }
    }

    /// Parses `config.toml` text; an error is one line with the line and column.
    pub fn from_toml(text: &str) -> Result<NodeConfig> {
        toml::from_str(text).map_err(|e| anyhow!(one_line_toml_error(text, &e)))
    }

    /// The TOML text of this configuration, with a comment explaining the fields.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a NodeConfig serializes to TOML");
        format!(
            "# lanes validator configuration (read by `lanes node --home DIR`).\n\
             # Relative paths are relative to this directory. Optional fields:\n\
             #   exec_threads = 2          executor threads\n\
             #   log_format = \"text\"       or \"json\"\n\
             #   retain_blocks = 0         blocks kept below the head (0: all)\n\
             #   [peers]                   override genesis peer addresses by validator index\n\
             #   \"1\" = \"127.0.0.1:9001\"\n\
             \n{body}"
        )
    }

    /// Writes the configuration to `path` (usually `HOME/config.toml`).
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_toml())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `toml`'s errors span several lines (a source excerpt); keep the position and the message.
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Reads a key file: the 32-byte ed25519 seed as 64 hex characters (surrounding whitespace
/// ignored).
pub fn read_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let text = text.trim();
    if text.len() != 64 {
        bail!(
            "key file {}: expected 64 hex characters (a 32-byte ed25519 seed), found {}",
            path.display(),
            text.chars().count()
        );
    }
    let seed: [u8; 32] = parse_hex_array(text).map_err(|_| {
        anyhow!(
            "key file {}: expected 64 hex characters (a 32-byte ed25519 seed), found a non-hex character",
            path.display()
        )
    })?;
    Ok(SecretKey::from_seed(seed))
}

/// Writes `key`'s seed to `path` as 64 hex characters and a newline, readable by the owner only
/// (mode 0600). Replaces an existing file.
pub fn write_key(path: &Path, key: &SecretKey) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let hex = lanes_types::to_hex(key.seed());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    // `mode` applies only to a new file; an existing one may have been wider.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    writeln!(file, "{hex}").with_context(|| format!("cannot write key file {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    Ok(())
}

/// `host:port` with a non-empty host and a non-zero port (the form genesis addresses take).
fn valid_peer_address(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

/// A loaded and checked validator home directory.
#[derive(Debug, Clone)]
pub struct Home {
    /// The home directory, as given.
    pub dir: PathBuf,
    /// Its `config.toml`.
    pub config: NodeConfig,
    /// The genesis the configuration points to.
    pub genesis: Genesis,
    /// The validator's key; its public key is validator `config.index`'s in genesis.
    pub key: SecretKey,
}

impl Home {
    /// Reads `dir/config.toml`, the genesis and the key it names, and checks that they agree:
    /// the key is the genesis key of validator `index`, whose name is `name`; peer overrides
    /// name existing validators; the log format is known.
    pub fn load(dir: &Path) -> Result<Home> {
        if !dir.is_dir() {
            bail!(
                "home directory {} does not exist or is not a directory",
                dir.display()
            );
        }
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?;
        let config = NodeConfig::from_toml(&text)
            .with_context(|| format!("{} is not valid", config_path.display()))?;
        let cfg = |msg: String| anyhow!("{}: {msg}", config_path.display());

        if !matches!(config.log_format.as_str(), "text" | "json") {
            return Err(cfg(format!(
                "log_format {:?} is not \"text\" or \"json\"",
                config.log_format
            )));
        }
        if config.exec_threads == 0 {
            return Err(cfg("exec_threads must be at least 1".into()));
        }

        let genesis_path = dir.join(&config.genesis);
        let genesis = Genesis::load(&genesis_path).map_err(|e| match e {
            GenesisError::Io { source, .. } => anyhow!(
                "cannot read genesis file {}: {source}",
                genesis_path.display()
            ),
            other => anyhow!("genesis file {}: {other}", genesis_path.display()),
        })?;
        let n = genesis.validators.len();
        let last = n - 1;
        let Some(me) = genesis.validators.get(config.index as usize) else {
            return Err(cfg(format!(
                "index {} is out of range: genesis {} has {n} validators (0 to {last})",
                config.index,
                genesis_path.display()
            )));
        };
        if me.name != config.name {
            return Err(cfg(format!(
                "name {:?} does not match validator {} of genesis, which is named {:?}",
                config.name, config.index, me.name
            )));
        }
        for (index, addr) in &config.peers {
            if *index as usize >= n {
                return Err(cfg(format!(
                    "peers override for validator {index}, but genesis has {n} validators (0 to {last})"
                )));
            }
            if !valid_peer_address(addr) {
                return Err(cfg(format!(
                    "peers override for validator {index}: {addr:?} is not host:port"
                )));
            }
        }

        let key_path = dir.join(&config.key);
        let key = read_key(&key_path)?;
        let public = key.public_key();
        if public != me.public_key {
            let other = genesis
                .validators
                .iter()
                .position(|v| v.public_key == public)
                .map(|i| format!(" (it is validator {i}'s key)"))
                .unwrap_or_default();
            bail!(
                "key file {}: its public key {public} is not the genesis key of validator {} ({:?}){other}",
                key_path.display(),
                config.index,
                me.name
            );
        }
        Ok(Home {
            dir: dir.to_path_buf(),
            config,
            genesis,
            key,
        })
    }

    /// The database directory (`data_dir` joined to the home unless absolute).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(&self.config.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<SecretKey> {
        lanes_node::fixtures::keys("config")
    }

    fn genesis(keys: &[SecretKey]) -> Genesis {
        lanes_node::fixtures::genesis("config-test", keys)
    }

    /// A valid home for validator 2 in a fresh temporary directory.
    fn home() -> (tempfile::TempDir, NodeConfig) {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys();
        std::fs::write(dir.path().join(GENESIS_FILE), genesis(&keys).to_json()).unwrap();
        write_key(&dir.path().join(KEY_FILE), &keys[2]).unwrap();
        let config = NodeConfig::new(
            "validator-2".into(),
            2,
            "127.0.0.1:7002".parse().unwrap(),
            "127.0.0.1:7102".parse().unwrap(),
        );
        config.write(&dir.path().join(CONFIG_FILE)).unwrap();
        (dir, config)
    }

    fn load_err(dir: &Path) -> String {
        let e = Home::load(dir).unwrap_err();
        let text = format!("{e:#}");
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        text
    }

    #[test]
    fn a_written_home_loads_with_defaults() {
        let (dir, config) = home();
        let home = Home::load(dir.path()).unwrap();
        assert_eq!(home.config, config);
        assert_eq!(home.key.public_key(), keys()[2].public_key());
        assert_eq!(home.data_dir(), dir.path().join("data"));
        assert_eq!(home.genesis.chain_id, "config-test");
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn minimal_config_and_peers_round_trip() {
        let minimal =
            "name = \"v\"\nindex = 1\nlisten = \"0.0.0.0:7001\"\napi = \"127.0.0.1:7101\"\n";
        let c = NodeConfig::from_toml(minimal).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.genesis, PathBuf::from("genesis.json"));
        assert_eq!(c.key, PathBuf::from("validator.key"));
        assert_eq!(c.log_format, "text");
        assert!(c.peers.is_empty());

        let mut c = c;
        c.peers.insert(10, "127.0.0.1:9010".into());
        c.peers.insert(2, "proxy.local:9002".into());
        c.data_dir = "/var/lib/lanes".into();
        let text = c.to_toml();
        assert!(text.contains("[peers]"), "{text}");
        assert_eq!(NodeConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn every_mistake_gets_a_one_line_error_naming_the_file() {
        let (dir, config) = home();
        let cfg_path = dir.path().join(CONFIG_FILE);
        let rewrite = |f: &dyn Fn(&mut NodeConfig)| {
            let mut c = config.clone();
            f(&mut c);
            c.write(&cfg_path).unwrap();
        };

        let e = load_err(&dir.path().join("missing"));
        assert!(e.contains("does not exist"), "{e}");

        std::fs::write(&cfg_path, "name = \"validator-2\"\nindex = \n").unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("config.toml") && e.contains("line 2"), "{e}");

        std::fs::write(
            &cfg_path,
            format!("{}\nport = 3\n", config.to_toml()).replace("[peers]", ""),
        )
        .unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("config.toml") && e.contains("unknown field `port`"),
            "{e}"
        );

        rewrite(&|c| c.index = 9);
        let e = load_err(dir.path());
        assert!(
            e.contains("index 9 is out of range") && e.contains("4 validators"),
            "{e}"
        );

        rewrite(&|c| c.name = "bob".into());
        let e = load_err(dir.path());
        assert!(e.contains("\"bob\"") && e.contains("validator-2"), "{e}");

        rewrite(&|c| {
            c.peers.insert(4, "127.0.0.1:1".into());
        });
        let e = load_err(dir.path());
        assert!(e.contains("peers override for validator 4"), "{e}");

        rewrite(&|c| {
            c.peers.insert(1, "nonsense".into());
        });
        let e = load_err(dir.path());
        assert!(e.contains("not host:port"), "{e}");

        rewrite(&|c| c.log_format = "xml".into());
        let e = load_err(dir.path());
        assert!(e.contains("log_format"), "{e}");

        rewrite(&|c| c.index = 1);
        let e = load_err(dir.path());
        assert!(e.contains("does not match validator 1"), "{e}");

        rewrite(&|c| {
            c.index = 1;
            c.name = "validator-1".into();
        });
        let e = load_err(dir.path());
        assert!(
            e.contains("validator.key") && e.contains("validator 2's key"),
            "{e}"
        );

        rewrite(&|_| {});
        let key_path = dir.path().join(KEY_FILE);
        std::fs::write(&key_path, "abcd\n").unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("validator.key") && e.contains("64 hex characters"),
            "{e}"
        );
        std::fs::write(&key_path, format!("{}\n", "zz".repeat(32))).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("non-hex"), "{e}");
        std::fs::remove_file(&key_path).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("cannot read key file"), "{e}");

        let mut g: serde_json::Value = serde_json::from_str(&genesis(&keys()).to_json()).unwrap();
        g["validators"].as_array_mut().unwrap().pop();
        std::fs::write(dir.path().join(GENESIS_FILE), g.to_string()).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("genesis.json") && e.contains("3 validators"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join(GENESIS_FILE)).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("cannot read genesis file"), "{e}");

        std::fs::remove_file(&cfg_path).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("cannot read") && e.contains("config.toml"),
            "{e}"
        );
    }
}
