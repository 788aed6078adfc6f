//! Moving assets and creating them: `Transfer` and `CreateAsset`.

use super::{add, nonzero, Ctx, FailReason, Outputs, Stop, TxRead};
use crate::state::{symbol_bytes, AssetInfo, Key, Value};
use crate::tx::{AssetId, Operation};
use lanes_types::Address;

/// Runs a `Transfer` or a `CreateAsset` (returns `[asset id]`).
#[inline]
pub(super) fn run(ctx: &mut Ctx<'_, impl TxRead>, sender: Address, op: &Operation) -> Outputs {
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
        _ => unreachable!("{} is not a transfer or an asset creation", op.name()),
    }
}
