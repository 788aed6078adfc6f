//! Oracle prices: `SetPrice`, accepted only from the genesis oracle account, and the price
//! the lending market values positions at.

use super::{nonzero, Ctx, FailReason, Res, TxRead};
use crate::state::Key;
use crate::tx::AssetId;
use lanes_types::Address;

impl<R: TxRead> Ctx<'_, R> {
    /// The oracle price of `asset` (scaled by [`super::PRICE_SCALE`]), `None` if it has none.
    pub(super) fn price(&mut self, asset: AssetId) -> Res<Option<u64>> {
        let p = self.get_u64(&Key::Price(asset))?;
        Ok(if p == 0 { None } else { Some(p) })
    }
}

/// Sets the price of `asset`; only the oracle account may.
pub(super) fn set_price<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    price: u64,
) -> Res<Vec<u64>> {
    if sender != ctx.params.oracle {
        return Err(FailReason::NotOracle.into());
    }
    nonzero(price)?;
    ctx.asset(asset)?;
    ctx.put_u64(Key::Price(asset), price);
    Ok(vec![])
}
