//! Stateful admission: before a transaction reaches the mempool, its sender's account in this
//! node's current state must be able to take it (nonce in the window, fee payable).

use super::read::{state_get, u64_of};
use super::HttpError;
use crate::shared::{Metrics, Shared};
use lanes_executor::state::Key;
use lanes_executor::tx::{SignedTransaction, NATIVE_ASSET};
use lanes_types::Address;
use std::collections::HashMap;

/// How far above the sender's current nonce a transaction's nonce may be. Twice the mempool's
/// default per-sender cap (`MempoolLimits::max_per_sender`, 4,096): that many may wait in
/// the pool and as many again may sit in blocks ordered but not yet executed on this node, so
/// an honest pipelined sender (`lanes bench`'s pre-signed sequences) is never refused.
pub const NONCE_WINDOW: u64 = 8_192;

/// What the account check needs of one transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    sender: Address,
    nonce: u64,
    fee: u64,
}

impl Claim {
    /// The sender, nonce and fee of `stx`.
    pub(super) fn of(stx: &SignedTransaction) -> Claim {
        Claim {
            sender: stx.tx.sender_address(),
            nonce: stx.tx.nonce,
            fee: stx.tx.fee,
        }
    }
}

/// Checks each claim against its sender's account (each account read once), counting the
/// refusals: `Err(message)` for a transaction the mempool must not see.
pub(super) fn check(s: &Shared, claims: &[Claim]) -> Result<Vec<Result<(), String>>, HttpError> {
    let mut accounts: HashMap<Address, (u64, u64)> = HashMap::new();
    let mut out = Vec::with_capacity(claims.len());
    for c in claims {
        let (nonce, balance) = match accounts.get(&c.sender) {
            Some(a) => *a,
            None => {
                let nonce = u64_of(state_get(&s.store, &Key::Nonce(c.sender))?);
                let key = Key::Balance(c.sender, NATIVE_ASSET);
                let a = (nonce, u64_of(state_get(&s.store, &key)?));
                *accounts.entry(c.sender).or_insert(a)
            }
        };
        out.push(judge(s, c, nonce, balance));
    }
    Ok(out)
}

/// One claim against an account with `nonce` and native `balance`; a refusal is counted.
fn judge(s: &Shared, c: &Claim, nonce: u64, balance: u64) -> Result<(), String> {
    let m = &s.metrics;
    if c.nonce < nonce {
        Metrics::add(&m.refused_nonce_used, 1);
        return Err(format!(
            "nonce {} already used; the account's next nonce is {nonce}",
            c.nonce
        ));
    }
    if c.nonce - nonce > NONCE_WINDOW {
        Metrics::add(&m.refused_nonce_ahead, 1);
        return Err(format!(
            "nonce {} too far ahead: the account's next nonce is {nonce} and at most {NONCE_WINDOW} more are taken",
            c.nonce
        ));
    }
    if balance < c.fee {
        Metrics::add(&m.refused_fee, 1);
        return Err(format!("cannot pay the fee {}: balance {balance}", c.fee));
    }
    Ok(())
}
