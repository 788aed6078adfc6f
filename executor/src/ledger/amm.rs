//! The constant-product AMM: `CreatePool`, `AddLiquidity`, `RemoveLiquidity`, `Swap`.
//!
//! Pool math uses `u128` intermediates and rounds in the pool's favour: the first deposit mints
//! `sqrt(a*b)` shares and locks [`MIN_LIQUIDITY`] of them, later deposits are charged the
//! rounded-up value of the shares minted, swaps and withdrawals round down, and every swap
//! asserts that `k` did not decrease.

use super::{
    add, narrow, nonzero, Ctx, FailReason, Outputs, Res, Stop, TxRead, BPS, MIN_LIQUIDITY,
};
use crate::state::{Key, Pool, Value};
use crate::tx::{Operation, PoolId};
use lanes_types::Address;

impl<R: TxRead> Ctx<'_, R> {
    fn pool(&mut self, id: PoolId) -> Res<Pool> {
        match self.get(&Key::Pool(id))? {
            None => Err(FailReason::UnknownPool.into()),
            Some(Value::Pool(p)) => Ok(p),
            Some(_) => Err(FailReason::CorruptState.into()),
        }
    }
}

/// Runs an AMM operation: `CreatePool` (returns `[pool id]`), `AddLiquidity` (`[shares,
/// amount_a, amount_b]`), `RemoveLiquidity` (`[amount_a, amount_b]`), `Swap` (`[amount_out]`).
pub(super) fn run(ctx: &mut Ctx<'_, impl TxRead>, sender: Address, op: &Operation) -> Outputs {
    match *op {
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
        _ => unreachable!("{} is not an AMM operation", op.name()),
    }
}

/// `floor(sqrt(n))`.
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
}
