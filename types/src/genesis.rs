//! Genesis: the chain's identity, its validators, its initial assets and its protocol
//! parameters, read from a JSON file and validated field by field.

use crate::codec::Encode;
use crate::codec_struct;
use crate::crypto::{Address, PublicKey};
use crate::hash::Hash;
use crate::validator::{ValidatorInfo, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use thiserror::Error;

/// The fewest validators a chain may have: 3f + 1 with f = 1.
pub const MIN_VALIDATORS: usize = 4;

/// The network's frame limit in bytes: no message between validators may be larger, so one
/// full block must fit. This is `lanes_net::DEFAULT_MAX_FRAME` (lanes-types cannot depend on
/// lanes-net; a test of the `lanes` binary checks that the two agree).
pub const MAX_FRAME_BYTES: u64 = 16 << 20;

/// Bytes a block with its commit certificate takes besides its transactions (each counted as
/// its length plus a 4-byte prefix), for `validators` signers: the header with the longest
/// chain id (164 bytes with the transaction count), the certificate (52 bytes plus 68 per
/// signature) and 64 bytes for the message that carries it.
pub fn certified_block_overhead(validators: usize) -> u64 {
    164 + 52 + 68 * validators as u64 + 64
}

/// Protocol parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolParams {
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest encoded transaction, in bytes.
    pub max_tx_bytes: u32,
    /// The primary cuts a non-full block after this many milliseconds.
    pub block_interval_ms: u64,
    /// Initial view-change timeout in milliseconds (doubles on each consecutive view change).
    pub view_timeout_ms: u64,
    /// Heights that may be in flight above the last stable checkpoint.
    pub watermark_window: u64,
    /// Smallest fee, in the native asset, that a transaction may offer.
    pub min_fee: u64,
    /// AMM swap fee in basis points.
    pub swap_fee_bps: u32,
    /// Lending: share of collateral value that may be borrowed, in basis points.
    pub collateral_factor_bps: u32,
    /// Lending: extra collateral a liquidator receives, in basis points.
    pub liquidation_bonus_bps: u32,
    /// The only account allowed to set oracle prices.
    pub oracle: Address,
}
codec_struct!(ProtocolParams {
    max_block_txs,
    max_tx_bytes,
    block_interval_ms,
    view_timeout_ms,
    watermark_window,
    min_fee,
    swap_fee_bps,
    collateral_factor_bps,
    liquidation_bonus_bps,
    oracle
});

/// One initial balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBalance {
    /// The account credited.
    pub account: Address,
    /// The amount, in the asset's smallest unit.
    pub amount: u64,
}
codec_struct!(GenesisBalance { account, amount });

/// An asset that exists at genesis. The first asset is the native asset that pays fees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAsset {
    /// Ticker, e.g. `LANE`; unique.
    pub symbol: String,
    /// Initial holders.
    pub balances: Vec<GenesisBalance>,
}
codec_struct!(GenesisAsset { symbol, balances });

/// A validated genesis. Construct it with [`Genesis::from_json`] or [`Genesis::load`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Genesis {
    /// Chain identifier; signed into every transaction and vote.
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The validators, in index order.
    pub validators: Vec<ValidatorInfo>,
    /// Initial assets; index 0 is the native fee asset.
    pub assets: Vec<GenesisAsset>,
    /// Protocol parameters.
    pub params: ProtocolParams,
}
codec_struct!(encode Genesis {
    chain_id,
    genesis_time_ms,
    validators,
    assets,
    params
});

impl Serialize for ValidatorInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawValidator {
            name: self.name.clone(),
            public_key: self.public_key.to_string(),
            address: self.address.clone(),
        }
        .serialize(s)
    }
}

/// Every way a genesis file can be wrong, each with the field it concerns.
#[derive(Debug, Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The path tried.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid JSON, a missing field, an unknown field or a value of the wrong type.
    #[error("genesis is not valid: {0}")]
    Syntax(#[from] serde_json::Error),
    /// The chain id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("chain_id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    BadChainId(String),
    /// Fewer than [`MIN_VALIDATORS`].
    #[error(
        "genesis has {0} validators; PBFT needs at least {MIN_VALIDATORS} (n = 3f + 1 with f >= 1)"
    )]
    TooFewValidators(usize),
    /// A validator with an empty or repeated name.
    #[error("validator name {0:?} is empty or used twice")]
    DuplicateValidatorName(String),
    /// Two validators with the same key.
    #[error("validators {first:?} and {second:?} have the same public key")]
    DuplicateValidatorKey {
        /// The first validator with the key.
        first: String,
        /// The second.
        second: String,
    },
    /// Two validators with the same network address.
    #[error("validators {first:?} and {second:?} both listen on {address}")]
    DuplicateValidatorAddress {
        /// The first validator with the address.
        first: String,
        /// The second.
        second: String,
        /// The shared address.
        address: String,
    },
    /// A validator key that is not 32 bytes of hex or not a curve point.
    #[error("validator {validator:?} has a bad public key: {reason}")]
    BadValidatorKey {
        /// The validator's name.
        validator: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A validator address that is not `host:port`.
    #[error("validator {validator:?} has address {address:?}, expected host:port")]
    BadValidatorAddress {
        /// The validator's name.
        validator: String,
        /// The address given.
        address: String,
    },
    /// No assets: the first asset pays fees.
    #[error("genesis needs at least one asset (the first one is the native fee asset)")]
    NoAssets,
    /// A bad or repeated asset symbol.
    #[error("asset symbol {0:?} is repeated or not 1 to 12 characters of A-Z 0-9")]
    BadAssetSymbol(String),
    /// An account listed twice for one asset.
    #[error("asset {symbol}: account {account} is listed twice")]
    DuplicateBalance {
        /// The asset.
        symbol: String,
        /// The account.
        account: String,
    },
    /// An account that is not 20 bytes of hex.
    #[error("{context}: bad account {value:?}: {reason}")]
    BadAccount {
        /// Where the account appears.
        context: String,
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Initial balances of an asset add up to more than `u64::MAX`.
    #[error("asset {0}: total supply overflows u64")]
    SupplyOverflow(String),
    /// A full block would not fit one network frame, so it could be neither proposed nor
    /// served to a validator catching up.
    #[error(
        "params.max_block_txs ({max_block_txs}) x (params.max_tx_bytes ({max_tx_bytes}) + 4) \
         plus {overhead} bytes of header and certificate is {bytes} bytes: a full block must \
         fit one network frame of {MAX_FRAME_BYTES} bytes; lower max_block_txs or max_tx_bytes"
    )]
    BlockTooLarge {
        /// Most transactions in one block.
        max_block_txs: u32,
        /// Largest transaction.
        max_tx_bytes: u32,
        /// Header and certificate bytes for this validator count.
        overhead: u64,
        /// The largest block's size with its certificate.
        bytes: u64,
    },
    /// A protocol parameter out of range.
    #[error("params.{name}: {reason}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// The accepted range.
        reason: &'static str,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidator {
    name: String,
    public_key: String,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBalance {
    account: String,
    amount: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsset {
    symbol: String,
    balances: Vec<RawBalance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    max_block_txs: u32,
    max_tx_bytes: u32,
    block_interval_ms: u64,
    view_timeout_ms: u64,
    watermark_window: u64,
    min_fee: u64,
    swap_fee_bps: u32,
    collateral_factor_bps: u32,
    liquidation_bonus_bps: u32,
    oracle: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    chain_id: String,
    genesis_time_ms: u64,
    validators: Vec<RawValidator>,
    assets: Vec<RawAsset>,
    params: RawParams,
}

fn parse_account(context: &str, value: &str) -> Result<Address, GenesisError> {
    value
        .parse()
        .map_err(|e: crate::hash::ParseHexError| GenesisError::BadAccount {
            context: context.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
}

fn check_param(ok: bool, name: &'static str, reason: &'static str) -> Result<(), GenesisError> {
    if ok {
        Ok(())
    } else {
        Err(GenesisError::BadParam { name, reason })
    }
}

/// Refuses parameters whose full block (with its certificate) exceeds [`MAX_FRAME_BYTES`].
fn check_block_fits_frame(
    max_block_txs: u32,
    max_tx_bytes: u32,
    validators: usize,
) -> Result<(), GenesisError> {
    let overhead = certified_block_overhead(validators);
    let bytes = u64::from(max_block_txs) * (u64::from(max_tx_bytes) + 4) + overhead;
    if bytes <= MAX_FRAME_BYTES {
        return Ok(());
    }
    Err(GenesisError::BlockTooLarge {
        max_block_txs,
        max_tx_bytes,
        overhead,
        bytes,
    })
}

fn valid_address(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

impl Genesis {
    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Parses and validates genesis JSON.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let raw: RawGenesis = serde_json::from_str(text)?;
        Self::validate(raw)
    }

    /// Pretty JSON that [`Genesis::from_json`] reads back to an equal value.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis serializes to JSON")
    }

    fn validate(raw: RawGenesis) -> Result<Genesis, GenesisError> {
        let id_ok = !raw.chain_id.is_empty()
            && raw.chain_id.len() <= 64
            && raw
                .chain_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !id_ok {
            return Err(GenesisError::BadChainId(raw.chain_id));
        }
        if raw.validators.len() < MIN_VALIDATORS {
            return Err(GenesisError::TooFewValidators(raw.validators.len()));
        }
        let mut validators: Vec<ValidatorInfo> = Vec::with_capacity(raw.validators.len());
        for v in raw.validators {
            if v.name.is_empty() || validators.iter().any(|o| o.name == v.name) {
                return Err(GenesisError::DuplicateValidatorName(v.name));
            }
            let bad_key = |reason: String| GenesisError::BadValidatorKey {
                validator: v.name.clone(),
                reason,
            };
            let public_key: PublicKey = v
                .public_key
                .parse()
                .map_err(|e: crate::hash::ParseHexError| bad_key(e.to_string()))?;
            public_key.validate().map_err(|e| bad_key(e.to_string()))?;
            if let Some(o) = validators.iter().find(|o| o.public_key == public_key) {
                return Err(GenesisError::DuplicateValidatorKey {
                    first: o.name.clone(),
                    second: v.name,
                });
            }
            if !valid_address(&v.address) {
                return Err(GenesisError::BadValidatorAddress {
                    validator: v.name,
                    address: v.address,
                });
            }
            if let Some(o) = validators.iter().find(|o| o.address == v.address) {
                return Err(GenesisError::DuplicateValidatorAddress {
                    first: o.name.clone(),
                    second: v.name,
                    address: v.address,
                });
            }
            validators.push(ValidatorInfo {
                name: v.name,
                public_key,
                address: v.address,
            });
        }

        if raw.assets.is_empty() {
            return Err(GenesisError::NoAssets);
        }
        let mut symbols = BTreeSet::new();
        let mut assets = Vec::with_capacity(raw.assets.len());
        for a in raw.assets {
            let symbol_ok = !a.symbol.is_empty()
                && a.symbol.len() <= 12
                && a.symbol
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !symbol_ok || !symbols.insert(a.symbol.clone()) {
                return Err(GenesisError::BadAssetSymbol(a.symbol));
            }
            let mut seen = BTreeSet::new();
            let mut supply: u64 = 0;
            let mut balances = Vec::with_capacity(a.balances.len());
            for b in a.balances {
                let account = parse_account(&format!("asset {}", a.symbol), &b.account)?;
                if !seen.insert(account) {
                    return Err(GenesisError::DuplicateBalance {
                        symbol: a.symbol,
                        account: b.account,
                    });
                }
                supply = supply
                    .checked_add(b.amount)
                    .ok_or_else(|| GenesisError::SupplyOverflow(a.symbol.clone()))?;
                balances.push(GenesisBalance {
                    account,
                    amount: b.amount,
                });
            }
            assets.push(GenesisAsset {
                symbol: a.symbol,
                balances,
            });
        }

        let p = raw.params;
        check_param(
            p.max_block_txs >= 1 && p.max_block_txs <= 100_000,
            "max_block_txs",
            "must be 1 to 100000",
        )?;
        check_param(
            p.max_tx_bytes >= 128 && p.max_tx_bytes <= 65_536,
            "max_tx_bytes",
            "must be 128 to 65536",
        )?;
        check_param(
            p.block_interval_ms >= 1 && p.block_interval_ms <= 60_000,
            "block_interval_ms",
            "must be 1 to 60000",
        )?;
        check_param(
            p.view_timeout_ms >= 50 && p.view_timeout_ms <= 600_000,
            "view_timeout_ms",
            "must be 50 to 600000",
        )?;
        check_param(
            p.watermark_window >= 1 && p.watermark_window <= 1024,
            "watermark_window",
            "must be 1 to 1024",
        )?;
        check_param(
            p.swap_fee_bps < 10_000,
            "swap_fee_bps",
            "must be below 10000",
        )?;
        check_param(
            p.collateral_factor_bps >= 1 && p.collateral_factor_bps < 10_000,
            "collateral_factor_bps",
            "must be 1 to 9999",
        )?;
        check_param(
            p.liquidation_bonus_bps <= 5_000,
            "liquidation_bonus_bps",
            "must be at most 5000",
        )?;
        check_block_fits_frame(p.max_block_txs, p.max_tx_bytes, validators.len())?;
        let params = ProtocolParams {
            max_block_txs: p.max_block_txs,
            max_tx_bytes: p.max_tx_bytes,
            block_interval_ms: p.block_interval_ms,
            view_timeout_ms: p.view_timeout_ms,
            watermark_window: p.watermark_window,
            min_fee: p.min_fee,
            swap_fee_bps: p.swap_fee_bps,
            collateral_factor_bps: p.collateral_factor_bps,
            liquidation_bonus_bps: p.liquidation_bonus_bps,
            oracle: parse_account("params.oracle", &p.oracle)?,
        };
        Ok(Genesis {
            chain_id: raw.chain_id,
            genesis_time_ms: raw.genesis_time_ms,
            validators,
            assets,
            params,
        })
    }

    /// The genesis hash: a tagged SHA-256 of its canonical encoding. A database and a network
    /// belong to exactly one genesis.
    pub fn hash(&self) -> Hash {
        Hash::tagged("lanes/genesis", &self.to_bytes())
    }

    /// The validator set.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(self.validators.clone())
    }
}

impl ProtocolParams {
    /// Defaults suited to a local four-validator network.
    pub fn local_defaults(oracle: Address) -> Self {
        ProtocolParams {
            max_block_txs: 10_000,
            max_tx_bytes: 1024,
            block_interval_ms: 50,
            view_timeout_ms: 2_000,
            watermark_window: 8,
            min_fee: 1,
            swap_fee_bps: 30,
            collateral_factor_bps: 7_500,
            liquidation_bonus_bps: 500,
            oracle,
        }
    }
}
