//! The state: `GET /account/{address}`, `GET /pool/{id}`, `GET /proof/{key}`.

use crate::required;
use serde::{Deserialize, Serialize};

/// `GET /account/{address}`: nonce, non-zero balances, lending positions and stakes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The address (hex).
    pub address: String,
    /// The next nonce the account must use.
    pub nonce: u64,
    /// Non-zero balances, by asset id.
    pub balances: Vec<Balance>,
    /// Lending positions.
    pub positions: Vec<Position>,
    /// Non-zero stakes, by validator.
    pub stakes: Vec<Stake>,
}

impl Account {
    /// The balance of `asset` (0 when not listed: the node lists non-zero balances only).
    pub fn balance(&self, asset: u32) -> u64 {
        self.balances
            .iter()
            .filter(|b| b.asset == asset)
            .map(|b| b.amount)
            .sum()
    }
}

/// One balance of an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Asset id.
    pub asset: u32,
    /// The asset's symbol.
    pub symbol: String,
    /// Amount held.
    pub amount: u64,
}

/// One lending position of an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Asset id.
    pub asset: u32,
    /// Amount supplied (collateral).
    pub supplied: u64,
    /// Amount borrowed (debt).
    pub borrowed: u64,
}

/// One stake of an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stake {
    /// The validator's address (hex).
    pub validator: String,
    /// Amount staked (native asset).
    pub amount: u64,
}

/// `GET /pool/{id}`: an AMM pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Pool id.
    pub id: u32,
    /// First asset.
    pub asset_a: u32,
    /// Second asset.
    pub asset_b: u32,
    /// Reserve of `asset_a`.
    pub reserve_a: u64,
    /// Reserve of `asset_b`.
    pub reserve_b: u64,
    /// Shares outstanding.
    pub shares: u64,
}

/// `GET /proof/{address|key}`: a Merkle proof of one state key at the latest certified height,
/// with the execution certificate of that height (all hex of the canonical encodings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateProof {
    /// The certified height.
    pub height: u64,
    /// The state root at that height (hex).
    pub state_root: String,
    /// The encoded state key (an address stands for its native balance).
    pub key: String,
    /// The encoded value, or `None` for an exclusion proof.
    #[serde(deserialize_with = "required")]
    pub value: Option<String>,
    /// The encoded proof.
    pub proof: String,
    /// The encoded execution certificate.
    pub certificate: String,
}
