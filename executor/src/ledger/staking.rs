//! Staking: `Stake` and `Unstake`. Stake is kept per (staker, validator) only: a per-validator
//! total would be a key every stake of the block conflicts on.

use super::{add, nonzero, Ctx, FailReason, Outputs, TxRead};
use crate::state::Key;
use crate::tx::{Operation, NATIVE_ASSET};
use lanes_types::Address;

/// Runs a `Stake` or an `Unstake`.
pub(super) fn run(ctx: &mut Ctx<'_, impl TxRead>, sender: Address, op: &Operation) -> Outputs {
    match *op {
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
            ctx.sub_u64(key, amount, FailReason::InsufficientStake)?;
            ctx.credit(sender, NATIVE_ASSET, amount)?;
            Ok(vec![])
        }
        _ => unreachable!("{} is not a staking operation", op.name()),
    }
}
