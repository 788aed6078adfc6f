//! Oracle prices: `SetPrice`, accepted only from the genesis oracle account, and the price
//! the lending market values positions at.

use super::{nonzero, Ctx, FailReason, Outputs, Res, TxRead};
use crate::state::Key;
use crate::tx::{AssetId, Operation};
use lanes_types::Address;

impl<R: TxRead> Ctx<'_, R> {
    /// The oracle price of `asset` (scaled by [`super::PRICE_SCALE`]), `None` if it has none.
    pub(super) fn price(&mut self, asset: AssetId) -> Res<Option<u64>> {
        let p = self.get_u64(&Key::Price(asset))?;
        Ok(if p == 0 { None } else { Some(p) })
    }
}

/// Runs a `SetPrice`: only the oracle account may.
pub(super) fn run(ctx: &mut Ctx<'_, impl TxRead>, sender: Address, op: &Operation) -> Outputs {
    match *op {
        Operation::SetPrice { asset, price } => {
            if sender != ctx.params.oracle {
                return Err(FailReason::NotOracle.into());
            }
            nonzero(price)?;
            ctx.asset(asset)?;
            ctx.put_u64(Key::Price(asset), price);
            Ok(vec![])
        }
        _ => unreachable!("{} is not an oracle operation", op.name()),
    }
}
