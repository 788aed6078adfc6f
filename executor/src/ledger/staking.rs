//! Staking: `Stake` and `Unstake`. Stake is kept per (staker, validator) only: a per-validator
//! total would be a key every stake of the block conflicts on.

use super::{add, nonzero, Ctx, FailReason, Res, Stop, TxRead};
use crate::state::Key;
use crate::tx::NATIVE_ASSET;
use lanes_types::Address;

/// Locks `amount` of the native asset of `sender` with the registered `validator`.
pub(super) fn stake<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    validator: Address,
    amount: u64,
) -> Res<Vec<u64>> {
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

/// Releases `amount` of the native asset `sender` staked with `validator`.
pub(super) fn unstake<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    validator: Address,
    amount: u64,
) -> Res<Vec<u64>> {
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
