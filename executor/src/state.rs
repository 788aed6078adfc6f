//! The state model: a flat key space of typed keys, each encoded with a one-byte kind prefix and
//! fixed-width big-endian fields (so the derived ordering of [`Key`] equals the ordering of the
//! encoded bytes), and typed values with a canonical encoding.
//!
//! Absent keys read as the zero/default value; writing a zero balance, nonce-less account or empty
//! position deletes the key, so equal states have equal key sets and equal roots.

use crate::tx::{AssetId, PoolId};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{codec_struct, Address, Genesis, Hash};
use std::collections::BTreeMap;

/// Longest asset symbol, in bytes.
pub const MAX_SYMBOL_LEN: usize = 12;

/// An asset symbol as a fixed 12-byte array, zero padded (symbols are `A-Z 0-9`, never zero).
pub type SymbolBytes = [u8; MAX_SYMBOL_LEN];

/// A state key. The encoding is the kind byte ([`Key::kind`]) followed by the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// Next nonce of an account ([`Value::U64`]).
    Nonce(Address),
    /// Balance of an account in an asset ([`Value::U64`]).
    Balance(Address, AssetId),
    /// Asset metadata ([`Value::Asset`]).
    Asset(AssetId),
    /// Symbol index: which asset has this symbol ([`Value::U64`] holding the id).
    Symbol(SymbolBytes),
    /// The id the next created asset gets ([`Value::U64`]).
    NextAssetId,
    /// An AMM pool ([`Value::Pool`]).
    Pool(PoolId),
    /// The id the next created pool gets ([`Value::U64`]).
    NextPoolId,
    /// Pool shares held by an account ([`Value::U64`]).
    LpShares(PoolId, Address),
    /// A registered validator ([`Value::U64`] holding 1).
    Validator(Address),
    /// Native asset an account staked with a validator: (staker, validator) ([`Value::U64`]).
    Stake(Address, Address),
    /// Lending market totals of an asset ([`Value::Market`]).
    Market(AssetId),
    /// An account's lending positions ([`Value::Positions`]).
    Positions(Address),
    /// Oracle price of an asset ([`Value::U64`]).
    Price(AssetId),
}

impl Key {
    /// The one-byte kind prefix of the encoding.
    pub fn kind(&self) -> u8 {
        match self {
            Key::Nonce(_) => 0,
            Key::Balance(..) => 1,
            Key::Asset(_) => 2,
            Key::Symbol(_) => 3,
            Key::NextAssetId => 4,
            Key::Pool(_) => 5,
            Key::NextPoolId => 6,
            Key::LpShares(..) => 7,
            Key::Validator(_) => 8,
            Key::Stake(..) => 9,
            Key::Market(_) => 10,
            Key::Positions(_) => 11,
            Key::Price(_) => 12,
        }
    }
}

impl Encode for Key {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        match self {
            Key::Nonce(a) | Key::Validator(a) | Key::Positions(a) => a.encode(out),
            Key::Balance(a, asset) => {
                a.encode(out);
                asset.encode(out);
            }
            Key::Asset(id) | Key::Pool(id) | Key::Market(id) | Key::Price(id) => id.encode(out),
            Key::Symbol(s) => s.encode(out),
            Key::NextAssetId | Key::NextPoolId => {}
            Key::LpShares(pool, a) => {
                pool.encode(out);
                a.encode(out);
            }
            Key::Stake(a, v) => {
                a.encode(out);
                v.encode(out);
            }
        }
    }
}

impl Decode for Key {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            0 => Key::Nonce(Decode::decode(r)?),
            1 => Key::Balance(Decode::decode(r)?, Decode::decode(r)?),
            2 => Key::Asset(Decode::decode(r)?),
            3 => Key::Symbol(Decode::decode(r)?),
            4 => Key::NextAssetId,
            5 => Key::Pool(Decode::decode(r)?),
            6 => Key::NextPoolId,
            7 => Key::LpShares(Decode::decode(r)?, Decode::decode(r)?),
            8 => Key::Validator(Decode::decode(r)?),
            9 => Key::Stake(Decode::decode(r)?, Decode::decode(r)?),
            10 => Key::Market(Decode::decode(r)?),
            11 => Key::Positions(Decode::decode(r)?),
            12 => Key::Price(Decode::decode(r)?),
            tag => return Err(DecodeError::InvalidTag { ty: "Key", tag }),
        })
    }
}

/// Metadata of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    /// The ticker.
    pub symbol: String,
    /// Total supply; fixed at creation (no operation mints or burns).
    pub supply: u64,
}
codec_struct!(AssetInfo { symbol, supply });

/// A constant-product pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// First asset.
    pub asset_a: AssetId,
    /// Second asset.
    pub asset_b: AssetId,
    /// Reserve of `asset_a` held by the pool.
    pub reserve_a: u64,
    /// Reserve of `asset_b` held by the pool.
    pub reserve_b: u64,
    /// Shares outstanding, including the [`crate::ledger::MIN_LIQUIDITY`] locked forever at
    /// the first deposit.
    pub shares: u64,
}
codec_struct!(Pool {
    asset_a,
    asset_b,
    reserve_a,
    reserve_b,
    shares
});

/// Lending market totals of one asset. The market's cash is `supplied - borrowed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Market {
    /// Total supplied by all accounts.
    pub supplied: u64,
    /// Total borrowed by all accounts.
    pub borrowed: u64,
}
codec_struct!(Market { supplied, borrowed });

/// One account's position in one lending market.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The asset.
    pub asset: AssetId,
    /// Amount supplied (collateral).
    pub supplied: u64,
    /// Amount borrowed (debt).
    pub borrowed: u64,
}
codec_struct!(Position {
    asset,
    supplied,
    borrowed
});

/// A state value. Encoded as a `u8` tag and the payload; sequences of positions are strictly
/// ascending by asset and never contain an all-zero position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number: balance, nonce, counter, shares, stake, price, asset id.
    U64(u64),
    /// Asset metadata.
    Asset(AssetInfo),
    /// An AMM pool.
    Pool(Pool),
    /// Lending market totals.
    Market(Market),
    /// An account's lending positions, ascending by asset.
    Positions(Vec<Position>),
}

impl Encode for Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::U64(v) => {
                out.push(0);
                v.encode(out);
            }
            Value::Asset(a) => {
                out.push(1);
                a.encode(out);
            }
            Value::Pool(p) => {
                out.push(2);
                p.encode(out);
            }
            Value::Market(m) => {
                out.push(3);
                m.encode(out);
            }
            Value::Positions(p) => {
                out.push(4);
                p.encode(out);
            }
        }
    }
}

impl Decode for Value {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            0 => Value::U64(Decode::decode(r)?),
            1 => Value::Asset(Decode::decode(r)?),
            2 => Value::Pool(Decode::decode(r)?),
            3 => Value::Market(Decode::decode(r)?),
            4 => {
                let ps: Vec<Position> = Decode::decode(r)?;
                let ascending = ps.windows(2).all(|w| w[0].asset < w[1].asset);
                if !ascending || ps.iter().any(|p| p.supplied == 0 && p.borrowed == 0) {
                    return Err(DecodeError::Invalid(
                        "positions must be ascending and non-empty",
                    ));
                }
                Value::Positions(ps)
            }
            tag => return Err(DecodeError::InvalidTag { ty: "Value", tag }),
        })
    }
}

/// One change of state: a new value, or `None` for deletion.
pub type Write = (Key, Option<Value>);

/// Read access to committed state. Storage implements it over RocksDB; [`MemState`] in memory.
/// Implementations must be deterministic: the same key gives the same answer for the whole block.
pub trait StateView: Sync {
    /// The value stored under `key`, or `None` if absent.
    fn get(&self, key: &Key) -> Option<Value>;
}

/// State held in a sorted map: for tests, benchmarks and building genesis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemState {
    /// Every key and its value.
    pub map: BTreeMap<Key, Value>,
}

impl MemState {
    /// Applies writes (deletions remove the key).
    pub fn apply(&mut self, writes: &[Write]) {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.map.insert(*k, v.clone());
                }
                None => {
                    self.map.remove(k);
                }
            }
        }
    }
}

impl StateView for MemState {
    fn get(&self, key: &Key) -> Option<Value> {
        self.map.get(key).cloned()
    }
}

/// The address that collects every transaction fee, credited once per block: the first 20 bytes
/// of `Hash::tagged("lanes/fee-sink", "")`. Nobody holds its key.
pub fn fee_sink() -> Address {
    let h = Hash::tagged("lanes/fee-sink", b"");
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    Address(a)
}

/// The symbol as a padded array, or `None` unless it is 1 to 12 characters of `A-Z 0-9`.
pub fn symbol_bytes(symbol: &str) -> Option<SymbolBytes> {
    let ok = !symbol.is_empty()
        && symbol.len() <= MAX_SYMBOL_LEN
        && symbol
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !ok {
        return None;
    }
    let mut out = [0u8; MAX_SYMBOL_LEN];
    out[..symbol.len()].copy_from_slice(symbol.as_bytes());
    Some(out)
}

/// [`genesis_state`] as writes (every key set), ready for the tree and storage.
pub fn genesis_writes(genesis: &Genesis) -> Vec<Write> {
    genesis_state(genesis)
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect()
}

/// The initial state of a chain, sorted by key: genesis assets `0..n` with their supply, symbol
/// index and balances, the asset counter (the pool counter is absent, i.e. 0), and every
/// validator registered under the address of its key.
///
/// # Panics
///
/// On a genesis that did not pass [`Genesis::from_json`] validation (bad symbol, supply
/// overflow, more than 2^32 assets).
pub fn genesis_state(genesis: &Genesis) -> Vec<(Key, Value)> {
    let mut map = BTreeMap::new();
    for (id, asset) in genesis.assets.iter().enumerate() {
        let id = AssetId::try_from(id).expect("genesis has fewer than 2^32 assets");
        let mut supply: u64 = 0;
        for b in &asset.balances {
            supply = supply
                .checked_add(b.amount)
                .expect("validated genesis supply fits u64");
            if b.amount > 0 {
                map.insert(Key::Balance(b.account, id), Value::U64(b.amount));
            }
        }
        map.insert(
            Key::Asset(id),
            Value::Asset(AssetInfo {
                symbol: asset.symbol.clone(),
                supply,
            }),
        );
        let sym = symbol_bytes(&asset.symbol).expect("validated genesis symbol");
        map.insert(Key::Symbol(sym), Value::U64(u64::from(id)));
    }
    map.insert(Key::NextAssetId, Value::U64(genesis.assets.len() as u64));
    for v in &genesis.validators {
        map.insert(Key::Validator(v.public_key.address()), Value::U64(1));
    }
    map.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any key (shared with the multi-version memory's tests).
    pub(crate) fn arb_key() -> impl Strategy<Value = Key> {
        let addr = any::<[u8; 20]>().prop_map(Address);
        prop_oneof![
            addr.clone().prop_map(Key::Nonce),
            (addr.clone(), any::<u32>()).prop_map(|(a, b)| Key::Balance(a, b)),
            any::<u32>().prop_map(Key::Asset),
            any::<[u8; 12]>().prop_map(Key::Symbol),
            Just(Key::NextAssetId),
            any::<u32>().prop_map(Key::Pool),
            Just(Key::NextPoolId),
            (any::<u32>(), addr.clone()).prop_map(|(p, a)| Key::LpShares(p, a)),
            addr.clone().prop_map(Key::Validator),
            (addr.clone(), addr.clone()).prop_map(|(a, b)| Key::Stake(a, b)),
            any::<u32>().prop_map(Key::Market),
            addr.prop_map(Key::Positions),
            any::<u32>().prop_map(Key::Price),
        ]
    }

    proptest! {
        #[test]
        fn key_order_is_byte_order(a in arb_key(), b in arb_key()) {
            prop_assert_eq!(Key::from_bytes(&a.to_bytes()).unwrap(), a);
            prop_assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
        }
    }

    #[test]
    fn values_round_trip_and_positions_are_canonical() {
        let vals = [
            Value::U64(7),
            Value::Asset(AssetInfo {
                symbol: "ABC".into(),
                supply: 9,
            }),
            Value::Pool(Pool {
                asset_a: 0,
                asset_b: 1,
                reserve_a: 2,
                reserve_b: 3,
                shares: 4,
            }),
            Value::Market(Market {
                supplied: 5,
                borrowed: 1,
            }),
            Value::Positions(vec![
                Position {
                    asset: 0,
                    supplied: 1,
                    borrowed: 0,
                },
                Position {
                    asset: 3,
                    supplied: 0,
                    borrowed: 2,
                },
            ]),
        ];
        for v in vals {
            assert_eq!(Value::from_bytes(&v.to_bytes()).unwrap(), v);
        }
        let unsorted = Value::Positions(vec![
            Position {
                asset: 3,
                supplied: 1,
                borrowed: 0,
            },
            Position {
                asset: 0,
                supplied: 1,
                borrowed: 0,
            },
        ]);
        assert!(Value::from_bytes(&unsorted.to_bytes()).is_err());
        let empty = Value::Positions(vec![Position {
            asset: 3,
            supplied: 0,
            borrowed: 0,
        }]);
        assert!(Value::from_bytes(&empty.to_bytes()).is_err());
    }

    #[test]
    fn symbols() {
        assert_eq!(
            symbol_bytes("AB1").map(|s| s[..4].to_vec()),
            Some(vec![b'A', b'B', b'1', 0])
        );
        assert!(symbol_bytes("").is_none());
        assert!(symbol_bytes("abc").is_none());
        assert!(symbol_bytes("ABCDEFGHIJKLM").is_none());
    }
}
