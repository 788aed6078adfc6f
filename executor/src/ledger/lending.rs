//! The lending market: `Supply`, `Withdraw`, `Borrow`, `Repay`, `Liquidate`.
//!
//! All of an account's positions live under one key ([`Key::Positions`]) so that the health
//! check sees every asset; market totals live under [`Key::Market`]. Collateral is valued at
//! the oracle price (see [`super::oracle`]); collateral without a price counts as zero. A
//! liquidator receives the seized collateral (plus the bonus) as its own supplied position.

use super::{add, narrow, nonzero, Ctx, FailReason, Res, Stop, TxRead, BPS};
use crate::state::{Key, Market, Position, Value};
use crate::tx::AssetId;
use lanes_types::Address;

impl<R: TxRead> Ctx<'_, R> {
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

/// Lends `amount` of `asset` to its market; it also counts as `sender`'s collateral.
pub(super) fn supply<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    amount: u64,
) -> Res<Vec<u64>> {
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

/// Takes back `amount` of supplied `asset`, if the position stays healthy and the market
/// has the cash.
pub(super) fn withdraw<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    amount: u64,
) -> Res<Vec<u64>> {
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

/// Borrows `amount` of `asset` (which must have a price) against `sender`'s collateral.
pub(super) fn borrow<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    amount: u64,
) -> Res<Vec<u64>> {
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

/// Repays `amount` of `sender`'s debt in `asset`.
pub(super) fn repay<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    asset: AssetId,
    amount: u64,
) -> Res<Vec<u64>> {
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

/// Repays `amount` of an unhealthy `borrower`'s debt in `debt_asset` and takes over its
/// `collateral_asset` worth that plus the liquidation bonus: returns `[collateral seized]`.
pub(super) fn liquidate<R: TxRead>(
    ctx: &mut Ctx<'_, R>,
    sender: Address,
    borrower: Address,
    debt_asset: AssetId,
    collateral_asset: AssetId,
    amount: u64,
) -> Res<Vec<u64>> {
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
