//! Moving assets and creating them: `Transfer` and `CreateAsset`.

use super::{add, nonzero, Ctx, FailReason, Res, Stop, TxRead};
use crate::state::{symbol_bytes, AssetInfo, Key, Value};
use crate::tx::AssetId;
use lanes_types::Address;

/// Moves `amount` of `asset` from `sender` to `to`.
#[inline]
pub(super) fn transfer<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    to: Address,
    amount: u64,
) -> Res<Vec<u64>> {
    nonzero(amount)?;
    ctx.debit(sender, asset, amount)?;
    ctx.credit(to, asset, amount)?;
    Ok(vec![])
}

/// Creates asset `symbol` (the next asset id, returned) with its whole `supply` credited to
/// `sender`; the symbol must be well formed and free.
pub(super) fn create_asset<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    symbol: &str,
    supply: u64,
) -> Res<Vec<u64>> {
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
            symbol: symbol.to_owned(),
            supply,
        })),
    );
    ctx.put(Key::Symbol(sym), Some(Value::U64(id)));
    ctx.credit(sender, id32, supply)?;
    Ok(vec![id])
}
