//! Ledger semantics: how one transaction changes state, and what its receipt says.
//!
//! Rules, shared by the sequential and the parallel executor:
//! - A transaction whose nonce is not the sender's current nonce, or whose sender cannot pay the
//!   fee in the native asset, is **rejected**: its receipt says why, it pays nothing and changes
//!   nothing (it cannot bump the nonce, or a replayed transaction would consume a fresh one).
//! - Otherwise the nonce is bumped and the fee is debited first; then the operation runs. If the
//!   operation fails (insufficient balance, slippage, unknown pool, under-collateralised, not the
//!   oracle, overflow...) its changes are discarded and the receipt is **failed**: only the nonce
//!   and the fee changed.
//! - Fees are not credited inside the transaction (that would make every transaction of a block
//!   conflict on one balance). Each receipt records the fee paid; [`fee_sink`] is credited with
//!   the block's total once, after the last transaction. A transaction of the block that reads
//!   the fee sink's native balance sees it without the current block's fees.
//! - Amounts are `u64`; intermediate products use `u128`; every addition and subtraction is
//!   checked. Rounding always favours the pool or the lending market, never the caller.

use crate::state::{fee_sink, symbol_bytes, AssetInfo, Key, Market, Pool, Position, Value, Write};
use crate::tx::{AssetId, Operation, PoolId, SignedTransaction, NATIVE_ASSET};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{Address, ProtocolParams};
use std::collections::BTreeMap;
use thiserror::Error;

/// Oracle prices are fixed point with this scale: `value = amount * price / PRICE_SCALE`.
pub const PRICE_SCALE: u64 = 1_000_000;

/// Pool shares locked forever at a pool's first deposit (so a pool can never be emptied and the
/// share price cannot be inflated by rounding).
pub const MIN_LIQUIDITY: u64 = 1_000;

/// Basis points in one.
pub const BPS: u128 = 10_000;

/// Why a transaction was rejected: it paid nothing and changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// The nonce is not the sender's next nonce (a replay or a gap).
    #[error("bad nonce")]
    BadNonce,
    /// The sender's native balance is below the fee.
    #[error("cannot pay the fee")]
    CannotPayFee,
}

/// Why an operation failed: the transaction paid its fee and bumped its nonce, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[repr(u8)]
pub enum FailReason {
    /// A balance is lower than the amount to debit.
    #[error("insufficient balance")]
    InsufficientBalance = 0,
    /// An amount that must be positive is zero.
    #[error("amount must be positive")]
    ZeroAmount = 1,
    /// The asset does not exist.
    #[error("unknown asset")]
    UnknownAsset = 2,
    /// The pool does not exist.
    #[error("unknown pool")]
    UnknownPool = 3,
    /// The asset is not one of the pool's two.
    #[error("asset not in pool")]
    AssetNotInPool = 4,
    /// A pool pair of one asset with itself.
    #[error("pool assets must differ")]
    SameAsset = 5,
    /// The symbol is not 1 to 12 characters of A-Z 0-9.
    #[error("bad symbol")]
    BadSymbol = 6,
    /// Another asset has this symbol.
    #[error("symbol taken")]
    SymbolTaken = 7,
    /// The result is worse than the caller's bound (`min_out`, `min_shares`, `min_a`, `min_b`).
    #[error("slippage bound not met")]
    Slippage = 8,
    /// The pool is empty, the first deposit is too small, or the trade would round to nothing.
    #[error("insufficient liquidity")]
    InsufficientLiquidity = 9,
    /// Fewer pool shares than asked to burn.
    #[error("insufficient shares")]
    InsufficientShares = 10,
    /// The account is not a registered validator.
    #[error("unknown validator")]
    UnknownValidator = 11,
    /// Less staked than asked to unstake.
    #[error("insufficient stake")]
    InsufficientStake = 12,
    /// Less supplied than asked to withdraw or seize.
    #[error("insufficient supplied collateral")]
    InsufficientCollateral = 13,
    /// The lending market lacks the cash (supplied minus borrowed).
    #[error("insufficient market cash")]
    InsufficientCash = 14,
    /// The asset has no oracle price.
    #[error("no oracle price")]
    NoPrice = 15,
    /// The position would be (or is) under-collateralised.
    #[error("under-collateralised")]
    Undercollateralised = 16,
    /// Repaying more than the debt.
    #[error("repay exceeds debt")]
    RepayExceedsDebt = 17,
    /// Liquidating a healthy position.
    #[error("position is healthy")]
    NotLiquidatable = 18,
    /// An account liquidating itself.
    #[error("cannot liquidate yourself")]
    SelfLiquidation = 19,
    /// SetPrice from an account other than the oracle.
    #[error("not the oracle")]
    NotOracle = 20,
    /// An amount or a counter would overflow.
    #[error("arithmetic overflow")]
    Overflow = 21,
    /// A stored value has the wrong type (a storage bug; deterministic on every replica).
    #[error("corrupt state")]
    CorruptState = 22,
}

const FAIL_REASONS: [FailReason; 23] = [
    FailReason::InsufficientBalance,
    FailReason::ZeroAmount,
    FailReason::UnknownAsset,
    FailReason::UnknownPool,
    FailReason::AssetNotInPool,
    FailReason::SameAsset,
    FailReason::BadSymbol,
    FailReason::SymbolTaken,
    FailReason::Slippage,
    FailReason::InsufficientLiquidity,
    FailReason::InsufficientShares,
    FailReason::UnknownValidator,
    FailReason::InsufficientStake,
    FailReason::InsufficientCollateral,
    FailReason::InsufficientCash,
    FailReason::NoPrice,
    FailReason::Undercollateralised,
    FailReason::RepayExceedsDebt,
    FailReason::NotLiquidatable,
    FailReason::SelfLiquidation,
    FailReason::NotOracle,
    FailReason::Overflow,
    FailReason::CorruptState,
];

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The operation was applied.
    Success,
    /// The operation failed; nonce and fee were applied.
    Failed(FailReason),
    /// Nothing was applied.
    Rejected(RejectReason),
}

/// The result of one transaction.
///
/// `outputs` by operation on success: CreateAsset `[asset id]`, CreatePool `[pool id]`,
/// AddLiquidity `[shares, amount_a, amount_b]`, RemoveLiquidity `[amount_a, amount_b]`,
/// Swap `[amount_out]`, Liquidate `[collateral seized]`, others `[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Success, failure or rejection, with the reason.
    pub status: Status,
    /// Native asset paid (0 when rejected).
    pub fee_paid: u64,
    /// Operation-specific results (see above).
    pub outputs: Vec<u64>,
}

impl Encode for Receipt {
    fn encode(&self, out: &mut Vec<u8>) {
        match self.status {
            Status::Success => out.push(0),
            Status::Failed(r) => {
                out.push(1);
                out.push(r as u8);
            }
            Status::Rejected(r) => {
                out.push(2);
                out.push(match r {
                    RejectReason::BadNonce => 0,
                    RejectReason::CannotPayFee => 1,
                });
            }
        }
        self.fee_paid.encode(out);
        self.outputs.encode(out);
    }
}

impl Decode for Receipt {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let status =
            match u8::decode(r)? {
                0 => Status::Success,
                1 => {
                    let code = u8::decode(r)?;
                    let reason = FAIL_REASONS.get(code as usize).copied().ok_or(
                        DecodeError::InvalidTag {
                            ty: "FailReason",
                            tag: code,
                        },
                    )?;
                    Status::Failed(reason)
                }
                2 => Status::Rejected(match u8::decode(r)? {
                    0 => RejectReason::BadNonce,
                    1 => RejectReason::CannotPayFee,
                    tag => {
                        return Err(DecodeError::InvalidTag {
                            ty: "RejectReason",
                            tag,
                        })
                    }
                }),
                tag => return Err(DecodeError::InvalidTag { ty: "Status", tag }),
            };
        Ok(Receipt {
            status,
            fee_paid: Decode::decode(r)?,
            outputs: Decode::decode(r)?,
        })
    }
}

/// A read hit a value that an earlier transaction of the block is still (re)computing: the
/// transaction with this index. Only the parallel executor produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked(pub usize);

/// How a transaction reads state as of its position in the block.
pub trait TxRead {
    /// The value of `key` seen by this transaction, or [`Blocked`] if it is not known yet.
    fn read(&mut self, key: &Key) -> Result<Option<Value>, Blocked>;

    /// A hint that the transaction is about to read `keys`: a reader may start loading what it
    /// will look at for them, so that the cache misses overlap. Changes no result; by default
    /// does nothing.
    fn prefetch(&mut self, keys: &[Key]) {
        let _ = keys;
    }
}

/// What one transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutput {
    /// Its receipt.
    pub receipt: Receipt,
    /// Its writes, ascending by key, each key once.
    pub writes: Vec<Write>,
}

enum Stop {
    Fail(FailReason),
    Blocked(Blocked),
}

impl From<FailReason> for Stop {
    fn from(r: FailReason) -> Self {
        Stop::Fail(r)
    }
}

impl From<Blocked> for Stop {
    fn from(b: Blocked) -> Self {
        Stop::Blocked(b)
    }
}

type Res<T> = Result<T, Stop>;

struct Ctx<'a, R: TxRead> {
    reader: &'a mut R,
    params: &'a ProtocolParams,
    reads: BTreeMap<Key, Option<Value>>,
    writes: BTreeMap<Key, Option<Value>>,
}

fn add(a: u64, b: u64) -> Res<u64> {
    a.checked_add(b).ok_or(Stop::Fail(FailReason::Overflow))
}

fn narrow(v: u128) -> Res<u64> {
    u64::try_from(v).map_err(|_| Stop::Fail(FailReason::Overflow))
}

impl<R: TxRead> Ctx<'_, R> {
    fn get(&mut self, key: &Key) -> Res<Option<Value>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.reads.get(key) {
            return Ok(v.clone());
        }
        let v = self.reader.read(key)?;
        self.reads.insert(*key, v.clone());
        Ok(v)
    }

    fn put(&mut self, key: Key, value: Option<Value>) {
        self.writes.insert(key, value);
    }

    fn get_u64(&mut self, key: &Key) -> Res<u64> {
        match self.get(key)? {
            None => Ok(0),
            Some(Value::U64(v)) => Ok(v),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }

    fn put_u64(&mut self, key: Key, v: u64) {
        self.put(key, if v == 0 { None } else { Some(Value::U64(v)) });
    }

    fn debit(&mut self, who: Address, asset: AssetId, amount: u64) -> Res<()> {
        let key = Key::Balance(who, asset);
        let bal = self.get_u64(&key)?;
        let left = bal
            .checked_sub(amount)
            .ok_or(Stop::Fail(FailReason::InsufficientBalance))?;
        self.put_u64(key, left);
        Ok(())
    }

    fn credit(&mut self, who: Address, asset: AssetId, amount: u64) -> Res<()> {
        let key = Key::Balance(who, asset);
        let bal = self.get_u64(&key)?;
        let new = add(bal, amount)?;
        self.put_u64(key, new);
        Ok(())
    }

    fn asset(&mut self, id: AssetId) -> Res<AssetInfo> {
        match self.get(&Key::Asset(id))? {
            None => Err(FailReason::UnknownAsset.into()),
            Some(Value::Asset(a)) => Ok(a),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }

    fn pool(&mut self, id: PoolId) -> Res<Pool> {
        match self.get(&Key::Pool(id))? {
            None => Err(FailReason::UnknownPool.into()),
            Some(Value::Pool(p)) => Ok(p),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }

    fn market(&mut self, asset: AssetId) -> Res<Market> {
        match self.get(&Key::Market(asset))? {
            None => Ok(Market::default()),
            Some(Value::Market(m)) => Ok(m),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }

    /// `payer` pays `amount` of `asset` into the market towards its outstanding borrows (repay
    /// and liquidation). A market owing less than a position's debt is corrupt state.
    fn pay_down_market(&mut self, payer: Address, asset: AssetId, amount: u64) -> Res<()> {
        let mut m = self.market(asset)?;
        if m.borrowed < amount {
            return Err(FailReason::CorruptState.into());
        }
        m.borrowed -= amount;
        self.debit(payer, asset, amount)?;
        self.put_market(asset, m);
        Ok(())
    }

    fn put_market(&mut self, asset: AssetId, m: Market) {
        assert!(
            m.borrowed <= m.supplied,
            "lending market borrowed more than supplied"
        );
        let v = if m == Market::default() {
            None
        } else {
            Some(Value::Market(m))
        };
        self.put(Key::Market(asset), v);
    }

    fn positions(&mut self, who: Address) -> Res<Vec<Position>> {
        match self.get(&Key::Positions(who))? {
            None => Ok(Vec::new()),
            Some(Value::Positions(p)) => Ok(p),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }

    fn put_positions(&mut self, who: Address, mut ps: Vec<Position>) {
        ps.retain(|p| p.supplied != 0 || p.borrowed != 0);
        ps.sort_by_key(|p| p.asset);
        let v = if ps.is_empty() {
            None
        } else {
            Some(Value::Positions(ps))
        };
        self.put(Key::Positions(who), v);
    }

    fn price(&mut self, asset: AssetId) -> Res<Option<u64>> {
        let p = self.get_u64(&Key::Price(asset))?;
        Ok(if p == 0 { None } else { Some(p) })
    }

    /// (collateral value weighted by the collateral factor, debt value), both scaled by
    /// `PRICE_SCALE * BPS`. Collateral without a price counts as zero.
    fn health(&mut self, ps: &[Position]) -> Res<(u128, u128)> {
        let cf = u128::from(self.params.collateral_factor_bps);
        let mut coll: u128 = 0;
        let mut debt: u128 = 0;
        for p in ps {
            let price = self.price(p.asset)?;
            if p.supplied > 0 {
                if let Some(price) = price {
                    let v = u128::from(p.supplied) * u128::from(price);
                    let v = v.checked_mul(cf).ok_or(Stop::Fail(FailReason::Overflow))?;
                    coll = coll
                        .checked_add(v)
                        .ok_or(Stop::Fail(FailReason::Overflow))?;
                }
            }
            if p.borrowed > 0 {
                let price = price.ok_or(Stop::Fail(FailReason::NoPrice))?;
                let v = u128::from(p.borrowed) * u128::from(price);
                let v = v.checked_mul(BPS).ok_or(Stop::Fail(FailReason::Overflow))?;
                debt = debt
                    .checked_add(v)
                    .ok_or(Stop::Fail(FailReason::Overflow))?;
            }
        }
        Ok((coll, debt))
    }

    fn require_healthy(&mut self, ps: &[Position]) -> Res<()> {
        let (coll, debt) = self.health(ps)?;
        if debt > coll {
            return Err(FailReason::Undercollateralised.into());
        }
        Ok(())
    }
}

fn position_mut(ps: &mut Vec<Position>, asset: AssetId) -> &mut Position {
    let idx = match ps.binary_search_by_key(&asset, |p| p.asset) {
        Ok(i) => i,
        Err(i) => {
            ps.insert(
                i,
                Position {
                    asset,
                    supplied: 0,
                    borrowed: 0,
                },
            );
            i
        }
    };
    &mut ps[idx]
}

fn nonzero(amount: u64) -> Res<()> {
    if amount == 0 {
        Err(FailReason::ZeroAmount.into())
    } else {
        Ok(())
    }
}

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's method from an upper bound; converges to floor(sqrt(n)).
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

fn run_op<R: TxRead>(ctx: &mut Ctx<'_, R>, sender: Address, op: &Operation) -> Res<Vec<u64>> {
    match *op {
        Operation::Transfer { asset, to, amount } => {
            nonzero(amount)?;
            ctx.debit(sender, asset, amount)?;
            ctx.credit(to, asset, amount)?;
            Ok(vec![])
        }
        Operation::CreateAsset { ref symbol, supply } => {
            nonzero(supply)?;
            let sym = symbol_bytes(symbol).ok_or(Stop::Fail(FailReason::BadSymbol))?;
            if ctx.get(&Key::Symbol(sym))?.is_some() {
                return Err(FailReason::SymbolTaken.into());
            }
            let id = ctx.get_u64(&Key::NextAssetId)?;
            let id32 = AssetId::try_from(id).map_err(|_| Stop::Fail(FailReason::Overflow))?;
            ctx.put_u64(Key::NextAssetId, add(id, 1)?);
            ctx.put(
                Key::Asset(id32),
                Some(Value::Asset(AssetInfo {
                    symbol: symbol.clone(),
                    supply,
                })),
            );
            ctx.put(Key::Symbol(sym), Some(Value::U64(id)));
            ctx.credit(sender, id32, supply)?;
            Ok(vec![id])
        }
        Operation::CreatePool { a, b } => {
            if a == b {
                return Err(FailReason::SameAsset.into());
            }
            ctx.asset(a)?;
            ctx.asset(b)?;
            let id = ctx.get_u64(&Key::NextPoolId)?;
            let id32 = PoolId::try_from(id).map_err(|_| Stop::Fail(FailReason::Overflow))?;
            ctx.put_u64(Key::NextPoolId, add(id, 1)?);
            let pool = Pool {
                asset_a: a,
                asset_b: b,
                reserve_a: 0,
                reserve_b: 0,
                shares: 0,
            };
            ctx.put(Key::Pool(id32), Some(Value::Pool(pool)));
            Ok(vec![id])
        }
        Operation::AddLiquidity {
            pool: pid,
            amount_a,
            amount_b,
            min_shares,
        } => {
            nonzero(amount_a)?;
            nonzero(amount_b)?;
            let mut pool = ctx.pool(pid)?;
            let (minted, take_a, take_b, new_total) = if pool.shares == 0 {
                let total = narrow(isqrt(u128::from(amount_a) * u128::from(amount_b)))?;
                if total <= MIN_LIQUIDITY {
                    return Err(FailReason::InsufficientLiquidity.into());
                }
                (total - MIN_LIQUIDITY, amount_a, amount_b, total)
            } else {
                if pool.reserve_a == 0 || pool.reserve_b == 0 {
                    return Err(FailReason::InsufficientLiquidity.into());
                }
                let s = u128::from(pool.shares);
                let (ra, rb) = (u128::from(pool.reserve_a), u128::from(pool.reserve_b));
                let by_a = u128::from(amount_a) * s / ra;
                let by_b = u128::from(amount_b) * s / rb;
                let minted = u128::from(narrow(by_a.min(by_b))?);
                if minted == 0 {
                    return Err(FailReason::InsufficientLiquidity.into());
                }
                // Charge what the minted shares are worth, rounded up (in the pool's favour).
                let take_a = (minted * ra).div_ceil(s);
                let take_b = (minted * rb).div_ceil(s);
                assert!(take_a <= u128::from(amount_a) && take_b <= u128::from(amount_b));
                let minted = narrow(minted)?;
                (
                    minted,
                    narrow(take_a)?,
                    narrow(take_b)?,
                    add(pool.shares, minted)?,
                )
            };
            if minted < min_shares {
                return Err(FailReason::Slippage.into());
            }
            ctx.debit(sender, pool.asset_a, take_a)?;
            ctx.debit(sender, pool.asset_b, take_b)?;
            pool.reserve_a = add(pool.reserve_a, take_a)?;
            pool.reserve_b = add(pool.reserve_b, take_b)?;
            pool.shares = new_total;
            let lp = Key::LpShares(pid, sender);
            let held = ctx.get_u64(&lp)?;
            ctx.put_u64(lp, add(held, minted)?);
            ctx.put(Key::Pool(pid), Some(Value::Pool(pool)));
            Ok(vec![minted, take_a, take_b])
        }
        Operation::RemoveLiquidity {
            pool: pid,
            shares,
            min_a,
            min_b,
        } => {
            nonzero(shares)?;
            let mut pool = ctx.pool(pid)?;
            let lp = Key::LpShares(pid, sender);
            let held = ctx.get_u64(&lp)?;
            if held < shares {
                return Err(FailReason::InsufficientShares.into());
            }
            // Locked shares are never held by anyone, so shares < pool.shares here.
            assert!(shares < pool.shares, "LP shares exceed pool shares");
            let s = u128::from(pool.shares);
            let out_a = narrow(u128::from(shares) * u128::from(pool.reserve_a) / s)?;
            let out_b = narrow(u128::from(shares) * u128::from(pool.reserve_b) / s)?;
            if out_a < min_a || out_b < min_b {
                return Err(FailReason::Slippage.into());
            }
            pool.reserve_a -= out_a;
            pool.reserve_b -= out_b;
            pool.shares -= shares;
            ctx.put_u64(lp, held - shares);
            ctx.put(Key::Pool(pid), Some(Value::Pool(pool.clone())));
            ctx.credit(sender, pool.asset_a, out_a)?;
            ctx.credit(sender, pool.asset_b, out_b)?;
            Ok(vec![out_a, out_b])
        }
        Operation::Swap {
            pool: pid,
            asset_in,
            amount_in,
            min_out,
        } => {
            nonzero(amount_in)?;
            let mut pool = ctx.pool(pid)?;
            let a_to_b = if asset_in == pool.asset_a {
                true
            } else if asset_in == pool.asset_b {
                false
            } else {
                return Err(FailReason::AssetNotInPool.into());
            };
            let (r_in, r_out) = if a_to_b {
                (pool.reserve_a, pool.reserve_b)
            } else {
                (pool.reserve_b, pool.reserve_a)
            };
            if r_in == 0 || r_out == 0 {
                return Err(FailReason::InsufficientLiquidity.into());
            }
            let in_after_fee = u128::from(amount_in) * (BPS - u128::from(ctx.params.swap_fee_bps));
            let denom = u128::from(r_in) * BPS + in_after_fee;
            // Floor: the pool keeps the remainder.
            let num = in_after_fee
                .checked_mul(u128::from(r_out))
                .ok_or(Stop::Fail(FailReason::Overflow))?;
            let out = narrow(num / denom)?;
            if out == 0 {
                return Err(FailReason::InsufficientLiquidity.into());
            }
            if out < min_out {
                return Err(FailReason::Slippage.into());
            }
            assert!(out < r_out, "swap would empty the pool");
            let new_in = add(r_in, amount_in)?;
            let new_out = r_out - out;
            assert!(
                u128::from(new_in) * u128::from(new_out) >= u128::from(r_in) * u128::from(r_out),
                "constant product decreased on a swap"
            );
            let asset_out = if a_to_b { pool.asset_b } else { pool.asset_a };
            if a_to_b {
                (pool.reserve_a, pool.reserve_b) = (new_in, new_out);
            } else {
                (pool.reserve_b, pool.reserve_a) = (new_in, new_out);
            }
            ctx.debit(sender, asset_in, amount_in)?;
            ctx.credit(sender, asset_out, out)?;
            ctx.put(Key::Pool(pid), Some(Value::Pool(pool)));
            Ok(vec![out])
        }
        Operation::Stake { validator, amount } => {
            nonzero(amount)?;
            if ctx.get(&Key::Validator(validator))?.is_none() {
                return Err(FailReason::UnknownValidator.into());
            }
            ctx.debit(sender, NATIVE_ASSET, amount)?;
            let key = Key::Stake(sender, validator);
            let staked = ctx.get_u64(&key)?;
            ctx.put_u64(key, add(staked, amount)?);
            Ok(vec![])
        }
        Operation::Unstake { validator, amount } => {
            nonzero(amount)?;
            let key = Key::Stake(sender, validator);
            let staked = ctx.get_u64(&key)?;
            let left = staked
                .checked_sub(amount)
                .ok_or(Stop::Fail(FailReason::InsufficientStake))?;
            ctx.put_u64(key, left);
            ctx.credit(sender, NATIVE_ASSET, amount)?;
            Ok(vec![])
        }
        Operation::Supply { asset, amount } => {
            nonzero(amount)?;
            ctx.asset(asset)?;
            ctx.debit(sender, asset, amount)?;
            let mut m = ctx.market(asset)?;
            m.supplied = add(m.supplied, amount)?;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.supplied = add(p.supplied, amount)?;
            ctx.put_market(asset, m);
            ctx.put_positions(sender, ps);
            Ok(vec![])
        }
        Operation::Withdraw { asset, amount } => {
            nonzero(amount)?;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.supplied = p
                .supplied
                .checked_sub(amount)
                .ok_or(Stop::Fail(FailReason::InsufficientCollateral))?;
            let mut m = ctx.market(asset)?;
            let cash = m
                .supplied
                .checked_sub(m.borrowed)
                .ok_or(Stop::Fail(FailReason::CorruptState))?;
            if cash < amount {
                return Err(FailReason::InsufficientCash.into());
            }
            m.supplied -= amount;
            ctx.require_healthy(&ps)?;
            ctx.put_market(asset, m);
            ctx.put_positions(sender, ps);
            ctx.credit(sender, asset, amount)?;
            Ok(vec![])
        }
        Operation::Borrow { asset, amount } => {
            nonzero(amount)?;
            ctx.asset(asset)?;
            if ctx.price(asset)?.is_none() {
                return Err(FailReason::NoPrice.into());
            }
            let mut m = ctx.market(asset)?;
            let cash = m
                .supplied
                .checked_sub(m.borrowed)
                .ok_or(Stop::Fail(FailReason::CorruptState))?;
            if cash < amount {
                return Err(FailReason::InsufficientCash.into());
            }
            m.borrowed += amount;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.borrowed = add(p.borrowed, amount)?;
            ctx.require_healthy(&ps)?;
            ctx.put_market(asset, m);
            ctx.put_positions(sender, ps);
            ctx.credit(sender, asset, amount)?;
            Ok(vec![])
        }
        Operation::Repay { asset, amount } => {
            nonzero(amount)?;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.borrowed = p
                .borrowed
                .checked_sub(amount)
                .ok_or(Stop::Fail(FailReason::RepayExceedsDebt))?;
            ctx.pay_down_market(sender, asset, amount)?;
            ctx.put_positions(sender, ps);
            Ok(vec![])
        }
        Operation::Liquidate {
            borrower,
            debt_asset,
            collateral_asset,
            amount,
        } => {
            nonzero(amount)?;
            if borrower == sender {
                return Err(FailReason::SelfLiquidation.into());
            }
            let mut bps = ctx.positions(borrower)?;
            let (coll, debt) = ctx.health(&bps)?;
            if debt <= coll {
                return Err(FailReason::NotLiquidatable.into());
            }
            let p_debt = ctx
                .price(debt_asset)?
                .ok_or(Stop::Fail(FailReason::NoPrice))?;
            let p_coll = ctx
                .price(collateral_asset)?
                .ok_or(Stop::Fail(FailReason::NoPrice))?;
            let dp = position_mut(&mut bps, debt_asset);
            dp.borrowed = dp
                .borrowed
                .checked_sub(amount)
                .ok_or(Stop::Fail(FailReason::RepayExceedsDebt))?;
            let bonus = BPS + u128::from(ctx.params.liquidation_bonus_bps);
            // Floor: the liquidator gets no more than the bonus.
            let seize = (u128::from(amount) * u128::from(p_debt))
                .checked_mul(bonus)
                .ok_or(Stop::Fail(FailReason::Overflow))?
                / (u128::from(p_coll) * BPS);
            let seize = narrow(seize)?;
            nonzero(seize)?;
            let cp = position_mut(&mut bps, collateral_asset);
            cp.supplied = cp
                .supplied
                .checked_sub(seize)
                .ok_or(Stop::Fail(FailReason::InsufficientCollateral))?;
            ctx.pay_down_market(sender, debt_asset, amount)?;
            ctx.put_positions(borrower, bps);
            let mut lps = ctx.positions(sender)?;
            let lp = position_mut(&mut lps, collateral_asset);
            lp.supplied = add(lp.supplied, seize)?;
            ctx.put_positions(sender, lps);
            Ok(vec![seize])
        }
        Operation::SetPrice { asset, price } => {
            if sender != ctx.params.oracle {
                return Err(FailReason::NotOracle.into());
            }
            nonzero(price)?;
            ctx.asset(asset)?;
            ctx.put_u64(Key::Price(asset), price);
            Ok(vec![])
        }
    }
}

/// Executes one transaction whose signature, chain id and minimum fee were already checked.
/// Returns [`Blocked`] only if `reader` did (the parallel executor then retries later).
pub fn execute_tx<R: TxRead>(
    reader: &mut R,
    params: &ProtocolParams,
    stx: &SignedTransaction,
) -> Result<TxOutput, Blocked> {
    let tx = &stx.tx;
    let sender = tx.sender_address();
    let mut ctx = Ctx {
        reader,
        params,
        reads: BTreeMap::new(),
        writes: BTreeMap::new(),
    };
    prefetch_keys(ctx.reader, sender, &tx.op);
    let reject = |reason| TxOutput {
        receipt: Receipt {
            status: Status::Rejected(reason),
            fee_paid: 0,
            outputs: vec![],
        },
        writes: vec![],
    };
    let lift = |s: Stop| match s {
        Stop::Blocked(b) => Err(b),
        Stop::Fail(_) => Ok(()),
    };

    // Nonce and fee. A corrupt nonce or balance value counts as a rejection.
    let nonce = match ctx.get_u64(&Key::Nonce(sender)) {
        Ok(n) => n,
        Err(s) => {
            lift(s)?;
            return Ok(reject(RejectReason::BadNonce));
        }
    };
    if nonce != tx.nonce || nonce == u64::MAX {
        return Ok(reject(RejectReason::BadNonce));
    }
    let fee_key = Key::Balance(sender, NATIVE_ASSET);
    let bal = match ctx.get_u64(&fee_key) {
        Ok(b) => b,
        Err(s) => {
            lift(s)?;
            return Ok(reject(RejectReason::CannotPayFee));
        }
    };
    if bal < tx.fee {
        return Ok(reject(RejectReason::CannotPayFee));
    }
    ctx.put_u64(Key::Nonce(sender), nonce + 1);
    ctx.put_u64(fee_key, bal - tx.fee);
    let base = ctx.writes.clone();

    let (status, outputs) = match run_op(&mut ctx, sender, &tx.op) {
        Ok(outputs) => (Status::Success, outputs),
        Err(Stop::Blocked(b)) => return Err(b),
        Err(Stop::Fail(reason)) => {
            ctx.writes = base;
            (Status::Failed(reason), vec![])
        }
    };
    Ok(TxOutput {
        receipt: Receipt {
            status,
            fee_paid: tx.fee,
            outputs,
        },
        writes: ctx.writes.into_iter().collect(),
    })
}

/// Tells `reader` the keys a transaction of `sender` doing `op` reads first: the nonce and fee
/// balance, and for a transfer both balances it moves.
fn prefetch_keys<R: TxRead>(reader: &mut R, sender: Address, op: &Operation) {
    let nonce = Key::Nonce(sender);
    let fee = Key::Balance(sender, NATIVE_ASSET);
    match *op {
        Operation::Transfer { asset, to, .. } => {
            reader.prefetch(&[
                nonce,
                fee,
                Key::Balance(sender, asset),
                Key::Balance(to, asset),
            ]);
        }
        _ => reader.prefetch(&[nonce, fee]),
    }
}

/// The write that credits a block's fees: the fee sink's native balance as seen after the
/// block's last transaction (`current`), plus the total fees. `None` if the block paid no fee.
pub fn fee_credit(current: Option<&Value>, receipts: &[Receipt]) -> Option<Write> {
    let total = receipts
        .iter()
        .try_fold(0u64, |acc, r| acc.checked_add(r.fee_paid))
        .expect("a block's fees exceed the native supply");
    if total == 0 {
        return None;
    }
    let before = match current {
        Some(Value::U64(v)) => *v,
        None => 0,
        Some(other) => panic!("fee sink balance holds {other:?}"),
    };
    let after = before
        .checked_add(total)
        .expect("fee sink balance exceeds the native supply");
    Some((
        Key::Balance(fee_sink(), NATIVE_ASSET),
        Some(Value::U64(after)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_floor_sqrt() {
        for n in (0u128..2000).chain([
            u128::from(u64::MAX) * u128::from(u64::MAX),
            1 << 100,
            (1 << 100) - 1,
        ]) {
            let r = isqrt(n);
            assert!(r * r <= n, "{n}");
            assert!((r + 1).checked_mul(r + 1).is_none_or(|x| x > n), "{n}");
        }
    }

    #[test]
    fn receipts_round_trip() {
        for status in [
            Status::Success,
            Status::Failed(FailReason::CorruptState),
            Status::Failed(FailReason::InsufficientBalance),
            Status::Rejected(RejectReason::CannotPayFee),
        ] {
            let r = Receipt {
                status,
                fee_paid: 3,
                outputs: vec![1, 2],
            };
            assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
        }
        for (i, r) in FAIL_REASONS.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert!(Receipt::from_bytes(&[1, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
