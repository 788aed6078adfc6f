//! The lending market: `Supply`, `Withdraw`, `Borrow`, `Repay`, `Liquidate`.
//!
//! All of an account's positions live under one key ([`Key::Positions`]) so that the health
//! check sees every asset; market totals live under [`Key::Market`]. Collateral is valued at
//! the oracle price (see [`super::oracle`]); collateral without a price counts as zero. A
//! liquidator receives the seized collateral (plus the bonus) as its own supplied position.

use super::{add, narrow, nonzero, sub, Ctx, FailReason, Outputs, Res, Stop, TxRead, BPS};
use crate::state::{Key, Market, Position, Value};
use crate::tx::{AssetId, Operation};
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

    /// Pays `amount` of `asset` out of the market to `who` (a withdrawal or a loan), whose
    /// positions `ps` must stay healthy: then the market `m`, the positions and the payment are
    /// written.
    fn pay_out(
        &mut self,
        who: Address,
        asset: AssetId,
        amount: u64,
        m: Market,
        ps: Vec<Position>,
    ) -> Res<()> {
        self.require_healthy(&ps)?;
        self.put_market(asset, m);
        self.put_positions(who, ps);
        self.credit(who, asset, amount)
    }

    fn require_healthy(&mut self, ps: &[Position]) -> Res<()> {
        let (coll, debt) = self.health(ps)?;
        if debt > coll {
            return Err(FailReason::Undercollateralised.into());
        }
        Ok(())
    }
}

/// Fails unless market `m` has `amount` of cash (supplied minus borrowed) to pay out.
fn require_cash(m: &Market, amount: u64) -> Res<()> {
    let cash = m
        .supplied
        .checked_sub(m.borrowed)
        .ok_or(Stop::Fail(FailReason::CorruptState))?;
    if cash < amount {
        return Err(FailReason::InsufficientCash.into());
    }
    Ok(())
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

/// Runs a lending operation: `Supply`, `Withdraw`, `Borrow`, `Repay`, `Liquidate` (returns
/// `[collateral seized]`).
pub(super) fn run(ctx: &mut Ctx<'_, impl TxRead>, sender: Address, op: &Operation) -> Outputs {
    match *op {
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
            p.supplied = sub(p.supplied, amount, FailReason::InsufficientCollateral)?;
            let mut m = ctx.market(asset)?;
            require_cash(&m, amount)?;
            m.supplied -= amount;
            ctx.pay_out(sender, asset, amount, m, ps)?;
            Ok(vec![])
        }
        Operation::Borrow { asset, amount } => {
            nonzero(amount)?;
            ctx.asset(asset)?;
            if ctx.price(asset)?.is_none() {
                return Err(FailReason::NoPrice.into());
            }
            let mut m = ctx.market(asset)?;
            require_cash(&m, amount)?;
            m.borrowed += amount;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.borrowed = add(p.borrowed, amount)?;
            ctx.pay_out(sender, asset, amount, m, ps)?;
            Ok(vec![])
        }
        Operation::Repay { asset, amount } => {
            nonzero(amount)?;
            let mut ps = ctx.positions(sender)?;
            let p = position_mut(&mut ps, asset);
            p.borrowed = sub(p.borrowed, amount, FailReason::RepayExceedsDebt)?;
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
            dp.borrowed = sub(dp.borrowed, amount, FailReason::RepayExceedsDebt)?;
            let bonus = BPS + u128::from(ctx.params.liquidation_bonus_bps);
            // Floor: the liquidator gets no more than the bonus.
            let seize = (u128::from(amount) * u128::from(p_debt))
                .checked_mul(bonus)
                .ok_or(Stop::Fail(FailReason::Overflow))?
                / (u128::from(p_coll) * BPS);
            let seize = narrow(seize)?;
            nonzero(seize)?;
            let cp = position_mut(&mut bps, collateral_asset);
            cp.supplied = sub(cp.supplied, seize, FailReason::InsufficientCollateral)?;
            ctx.pay_down_market(sender, debt_asset, amount)?;
            ctx.put_positions(borrower, bps);
            let mut lps = ctx.positions(sender)?;
            let lp = position_mut(&mut lps, collateral_asset);
            lp.supplied = add(lp.supplied, seize)?;
            ctx.put_positions(sender, lps);
            Ok(vec![seize])
        }
        _ => unreachable!("{} is not a lending operation", op.name()),
    }
}
