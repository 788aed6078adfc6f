//! The operation a transaction performs: one variant per action of the DeFi ledger, its
//! canonical encoding, its short name and its fields (all stated once, by `operation_codec!`).

use crate::tx::{AssetId, PoolId};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::Address;

/// The one action a transaction performs. Encoded as a `u8` tag (the variant's position below,
/// starting at 0) followed by its fields in order (the table under `operation_codec!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Moves `amount` of `asset` from the sender to `to`.
    Transfer {
        /// The asset moved.
        asset: AssetId,
        /// The receiving account.
        to: Address,
        /// Amount in the asset's smallest unit.
        amount: u64,
    },
    /// Creates a new asset with a fixed `supply`, all credited to the sender.
    CreateAsset {
        /// Ticker: 1 to 12 characters of `A-Z 0-9`, unique.
        symbol: String,
        /// Total supply (at least 1).
        supply: u64,
    },
    /// Creates an empty constant-product pool between two distinct existing assets.
    CreatePool {
        /// First asset of the pair.
        a: AssetId,
        /// Second asset of the pair.
        b: AssetId,
    },
    /// Deposits both assets of a pool in exchange for pool shares.
    AddLiquidity {
        /// The pool.
        pool: PoolId,
        /// Most of asset `a` to deposit.
        amount_a: u64,
        /// Most of asset `b` to deposit.
        amount_b: u64,
        /// Fewest shares acceptable (slippage bound).
        min_shares: u64,
    },
    /// Burns pool shares for a proportional part of both reserves.
    RemoveLiquidity {
        /// The pool.
        pool: PoolId,
        /// Shares to burn.
        shares: u64,
        /// Least of asset `a` acceptable.
        min_a: u64,
        /// Least of asset `b` acceptable.
        min_b: u64,
    },
    /// Sells `amount_in` of `asset_in` to the pool for the other asset.
    Swap {
        /// The pool.
        pool: PoolId,
        /// The asset sold (one of the pool's two).
        asset_in: AssetId,
        /// Amount sold.
        amount_in: u64,
        /// Least amount bought that is acceptable (slippage bound).
        min_out: u64,
    },
    /// Locks native asset with a validator.
    Stake {
        /// The validator's address (a genesis validator).
        validator: Address,
        /// Amount of native asset.
        amount: u64,
    },
    /// Releases native asset staked with a validator.
    Unstake {
        /// The validator's address.
        validator: Address,
        /// Amount of native asset.
        amount: u64,
    },
    /// Lends `amount` of `asset` to the lending market; it also counts as collateral.
    Supply {
        /// The asset supplied.
        asset: AssetId,
        /// Amount supplied.
        amount: u64,
    },
    /// Takes back supplied `asset`, if the position stays healthy and the market has the cash.
    Withdraw {
        /// The asset withdrawn.
        asset: AssetId,
        /// Amount withdrawn.
        amount: u64,
    },
    /// Borrows `asset` against supplied collateral.
    Borrow {
        /// The asset borrowed (must have an oracle price).
        asset: AssetId,
        /// Amount borrowed.
        amount: u64,
    },
    /// Repays borrowed `asset`.
    Repay {
        /// The asset repaid.
        asset: AssetId,
        /// Amount repaid (at most the debt).
        amount: u64,
    },
    /// Repays part of an unhealthy borrower's debt and takes over some of their collateral, plus
    /// the liquidation bonus, as a supplied position of the liquidator.
    Liquidate {
        /// The under-collateralised account.
        borrower: Address,
        /// The asset of the debt repaid.
        debt_asset: AssetId,
        /// The collateral seized.
        collateral_asset: AssetId,
        /// Amount of debt repaid.
        amount: u64,
    },
    /// Sets an asset's oracle price; accepted only from the genesis oracle account.
    SetPrice {
        /// The asset priced.
        asset: AssetId,
        /// Value of one smallest unit of the asset, in smallest units of the native asset, scaled
        /// by [`crate::ledger::PRICE_SCALE`]. Must be at least 1.
        price: u64,
    },
}

/// One field of an [`Operation`], whole and typed (see [`Operation::fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An amount, asset id or pool id.
    Number(u64),
    /// An account.
    Address(Address),
    /// A symbol.
    Text(String),
}

/// How each field type of an [`Operation`] shows as a [`FieldValue`].
trait ToFieldValue {
    fn field_value(&self) -> FieldValue;
}

impl ToFieldValue for u64 {
    fn field_value(&self) -> FieldValue {
        FieldValue::Number(*self)
    }
}

impl ToFieldValue for u32 {
    fn field_value(&self) -> FieldValue {
        FieldValue::Number(u64::from(*self))
    }
}

impl ToFieldValue for Address {
    fn field_value(&self) -> FieldValue {
        FieldValue::Address(*self)
    }
}

impl ToFieldValue for String {
    fn field_value(&self) -> FieldValue {
        FieldValue::Text(self.clone())
    }
}

/// The operations' codec and names, stated once: each row is a variant's tag, its short name
/// (for logs and explorers) and its fields in encoding order. The macro writes
/// [`Operation::name`], `Encode` and `Decode` from the table, so they cannot disagree; a variant
/// or a field missing from it does not compile, and `operation_encodings_are_fixed` pins the
/// bytes.
macro_rules! operation_codec {
    ($($tag:literal $name:literal $variant:ident { $($field:ident),* $(,)? }),* $(,)?) => {
        impl Operation {
            /// A short name of the operation, for logs and explorers.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Operation::$variant { .. } => $name,)*
                }
            }

            /// Every field by name, in encoding order, for explorers and APIs.
            pub fn fields(&self) -> Vec<(&'static str, FieldValue)> {
                match self {
                    $(Operation::$variant { $($field),* } => {
                        vec![$((stringify!($field), $field.field_value())),*]
                    })*
                }
            }
        }

        impl Encode for Operation {
            fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(Operation::$variant { $($field),* } => {
                        out.push($tag);
                        $($field.encode(out);)*
                    })*
                }
            }
        }

        impl Decode for Operation {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                // Struct fields are evaluated in the order written: the table's order.
                Ok(match u8::decode(r)? {
                    $($tag => Operation::$variant { $($field: Decode::decode(r)?),* },)*
                    tag => {
                        return Err(DecodeError::InvalidTag {
                            ty: "Operation",
                            tag,
                        })
                    }
                })
            }
        }
    };
}

operation_codec! {
    0 "transfer" Transfer { asset, to, amount },
    1 "create_asset" CreateAsset { symbol, supply },
    2 "create_pool" CreatePool { a, b },
    3 "add_liquidity" AddLiquidity { pool, amount_a, amount_b, min_shares },
    4 "remove_liquidity" RemoveLiquidity { pool, shares, min_a, min_b },
    5 "swap" Swap { pool, asset_in, amount_in, min_out },
    6 "stake" Stake { validator, amount },
    7 "unstake" Unstake { validator, amount },
    8 "supply" Supply { asset, amount },
    9 "withdraw" Withdraw { asset, amount },
    10 "borrow" Borrow { asset, amount },
    11 "repay" Repay { asset, amount },
    12 "liquidate" Liquidate { borrower, debt_asset, collateral_asset, amount },
    13 "set_price" SetPrice { asset, price },
}
