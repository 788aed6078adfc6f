//! Ledger semantics: how one transaction changes state, and what its receipt says.
//!
//! This module holds what every operation shares (nonce and fee, the transaction's reads and
//! writes, receipts); each domain's operations live in their own module: `transfer`
//! (transfers, asset creation), `amm`, `staking`, `lending` and `oracle`.
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

use crate::state::{fee_sink, AssetInfo, Key, Value, Write};
use crate::tx::{AssetId, Operation, SignedTransaction, NATIVE_ASSET};
use lanes_types::codec::{Decode, DecodeError, Encode, Reader};
use lanes_types::{Address, ProtocolParams};
use std::collections::BTreeMap;
use thiserror::Error;

mod amm;
mod lending;
mod oracle;
mod staking;
mod transfer;

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

/// What an operation returns: its receipt's `outputs`, or why it stopped.
type Outputs = Res<Vec<u64>>;

struct Ctx<'a, R: TxRead> {
    reader: &'a mut R,
    params: &'a ProtocolParams,
    reads: BTreeMap<Key, Option<Value>>,
    writes: BTreeMap<Key, Option<Value>>,
}

fn add(a: u64, b: u64) -> Res<u64> {
    a.checked_add(b).ok_or(Stop::Fail(FailReason::Overflow))
}

/// `a - b`, or a failure for the reason `short` when `a < b`.
fn sub(a: u64, b: u64, short: FailReason) -> Res<u64> {
    a.checked_sub(b).ok_or(Stop::Fail(short))
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

    /// Takes `amount` from the number under `key`; fails with `short` if it holds less.
    fn sub_u64(&mut self, key: Key, amount: u64, short: FailReason) -> Res<()> {
        let held = self.get_u64(&key)?;
        self.put_u64(key, sub(held, amount, short)?);
        Ok(())
    }

    fn debit(&mut self, who: Address, asset: AssetId, amount: u64) -> Res<()> {
        let key = Key::Balance(who, asset);
        self.sub_u64(key, amount, FailReason::InsufficientBalance)
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
}

fn nonzero(amount: u64) -> Res<()> {
    if amount == 0 {
        Err(FailReason::ZeroAmount.into())
    } else {
        Ok(())
    }
}

/// Runs the operation: each domain's rules live in its own module.
fn run_op<R: TxRead>(ctx: &mut Ctx<'_, R>, sender: Address, op: &Operation) -> Outputs {
    use Operation as Op;
    match op {
        Op::Transfer { .. } | Op::CreateAsset { .. } => transfer::run(ctx, sender, op),
        Op::CreatePool { .. }
        | Op::AddLiquidity { .. }
        | Op::RemoveLiquidity { .. }
        | Op::Swap { .. } => amm::run(ctx, sender, op),
        Op::Stake { .. } | Op::Unstake { .. } => staking::run(ctx, sender, op),
        Op::Supply { .. }
        | Op::Withdraw { .. }
        | Op::Borrow { .. }
        | Op::Repay { .. }
        | Op::Liquidate { .. } => lending::run(ctx, sender, op),
        Op::SetPrice { .. } => oracle::run(ctx, sender, op),
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
