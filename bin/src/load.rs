//! A deterministic transaction generator for the built-in load of `lanes localnet`: a setup
//! (one LANE/USDC pool with liquidity from dev account 0), then a mix of transfers between dev
//! accounts and small swaps on that pool, signed with the dev keys of a generated testnet
//! (see [`crate::testnet`]).
//!
//! The generator tracks each sender's next nonce itself; senders take turns (round robin), so
//! consecutive transactions of one sender are as far apart in the stream as there are
//! accounts. The same inputs always give the same transactions.

use lanes_executor::tx::{AssetId, PoolId};
use lanes_executor::{Operation, SignedTransaction, Transaction};
use lanes_types::{Address, SecretKey};

/// Asset id of LANE, the native asset (first in a testnet genesis).
pub const LANE: AssetId = 0;
/// Asset id of USDC (second in a testnet genesis).
pub const USDC: AssetId = 1;
/// Amount of each of LANE and USDC that [`LoadGen::setup_txs`] deposits into the pool; dev
/// account 0 must hold more than this (a testnet gives it [`crate::testnet::DEV_BALANCE`]).
pub const SETUP_LIQUIDITY: u64 = 100_000_000_000;

/// Share of swaps among generated transactions, in percent (the rest are transfers).
const SWAP_PERCENT: u64 = 20;

/// Generates signed transfers and swaps from a set of funded dev accounts.
pub struct LoadGen {
    chain_id: String,
    keys: Vec<SecretKey>,
    addresses: Vec<Address>,
    fee: u64,
    nonces: Vec<u64>,
    pool: PoolId,
    /// Next sender (round robin).
    turn: usize,
    /// State of the 64-bit LCG that picks receivers, kinds and amounts.
    rng: u64,
}

impl LoadGen {
    /// A generator for `chain_id` over `dev_keys` (at least 2), paying `min_fee` per
    /// transaction, starting at each account's nonce in `start_nonces` (missing entries are 0).
    /// Swaps go to pool 0, the first pool of a chain.
    ///
    /// # Panics
    ///
    /// With fewer than 2 keys (a transfer needs a distinct receiver).
    pub fn new(
        chain_id: &str,
        dev_keys: Vec<SecretKey>,
        min_fee: u64,
        start_nonces: Vec<u64>,
    ) -> Self {
        assert!(
            dev_keys.len() >= 2,
            "the load needs at least 2 dev accounts"
        );
        let mut nonces = start_nonces;
        nonces.resize(dev_keys.len(), 0);
        LoadGen {
            chain_id: chain_id.to_string(),
            addresses: dev_keys.iter().map(|k| k.public_key().address()).collect(),
            keys: dev_keys,
            fee: min_fee,
            nonces,
            pool: 0,
            turn: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Setup transactions to run once before swaps, all from dev account 0: create a LANE/USDC
    /// pool and add [`SETUP_LIQUIDITY`] of each. On a chain without pools (a new testnet) the
    /// pool gets id 0, the pool swaps use; on a chain that already has pools, swaps still go to
    /// pool 0.
    pub fn setup_txs(&mut self) -> Vec<SignedTransaction> {
        [
            Operation::CreatePool { a: LANE, b: USDC },
            Operation::AddLiquidity {
                pool: self.pool,
                amount_a: SETUP_LIQUIDITY,
                amount_b: SETUP_LIQUIDITY,
                min_shares: 0,
            },
        ]
        .into_iter()
        .map(|op| self.sign(0, op))
        .collect()
    }

    /// The next `n` signed transactions of the mix: transfers of LANE or USDC (1 to 1000 units)
    /// between dev accounts and, when `swaps` is set, about 20% small swaps on the pool (1000 to
    /// 100 000 units in, either direction, `min_out` 0). Nonces are consecutive per sender.
    pub fn next_batch(&mut self, n: usize, swaps: bool) -> Vec<SignedTransaction> {
        (0..n)
            .map(|_| {
                let from = self.turn;
                self.turn = (self.turn + 1) % self.keys.len();
                let op = if swaps && self.next() % 100 < SWAP_PERCENT {
                    Operation::Swap {
                        pool: self.pool,
                        asset_in: [LANE, USDC][(self.next() % 2) as usize],
                        amount_in: 1_000 + self.next() % 99_001,
                        min_out: 0,
                    }
                } else {
                    let others = self.keys.len() as u64 - 1;
                    let to = (from + 1 + (self.next() % others) as usize) % self.keys.len();
                    Operation::Transfer {
                        asset: [LANE, USDC][(self.next() % 2) as usize],
                        to: self.addresses[to],
                        amount: 1 + self.next() % 1_000,
                    }
                };
                self.sign(from, op)
            })
            .collect()
    }

    /// Re-syncs a sender's nonce (after the node rejected a transaction for a bad nonce).
    pub fn set_nonce(&mut self, account: usize, nonce: u64) {
        self.nonces[account] = nonce;
    }

    /// The nonce the next transaction of `account` will carry.
    #[cfg(test)]
    pub fn nonce(&self, account: usize) -> u64 {
        self.nonces[account]
    }

    fn sign(&mut self, from: usize, op: Operation) -> SignedTransaction {
        let key = &self.keys[from];
        let nonce = self.nonces[from];
        self.nonces[from] += 1;
        Transaction {
            chain_id: self.chain_id.clone(),
            sender: key.public_key(),
            nonce,
            fee: self.fee,
            op,
        }
        .sign(key)
    }

    /// A 64-bit LCG (deterministic, no state outside the generator).
    fn next(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.rng >> 33
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::build_genesis;
    use lanes_executor::state::Value;
    use lanes_executor::{
        check_stateless, execute_sequential, genesis_writes, Key, MemState, StateView, Status,
        Write,
    };
    use lanes_types::codec::Encode;
    use lanes_types::Genesis;

    fn dev_keys(n: usize) -> Vec<SecretKey> {
        (0..n)
            .map(|i| SecretKey::from_label(&format!("load-dev-{i}")))
            .collect()
    }

    fn genesis(dev: &[SecretKey]) -> Genesis {
        let validators: Vec<SecretKey> = (0..4)
            .map(|i| SecretKey::from_label(&format!("load-val-{i}")))
            .collect();
        let addresses: Vec<String> = (0..4).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect();
        build_genesis("load-test", 0, &validators, &addresses, dev).unwrap()
    }

    fn run(state: &mut MemState, g: &Genesis, txs: &[SignedTransaction]) {
        for tx in txs {
            check_stateless(&tx.to_bytes(), &g.chain_id, &g.params).expect("stateless checks");
        }
        let (receipts, writes) = execute_sequential(&*state, &g.params, txs);
        for (tx, r) in txs.iter().zip(&receipts) {
            assert_eq!(r.status, Status::Success, "{:?} -> {r:?}", tx.tx.op);
        }
        state.apply(&writes);
    }

    #[test]
    fn setup_and_batches_all_succeed_against_the_ledger() {
        let dev = dev_keys(5);
        let g = genesis(&dev);
        let mut state = MemState::default();
        let writes: Vec<Write> = genesis_writes(&g);
        state.apply(&writes);

        let mut gen = LoadGen::new(&g.chain_id, dev, g.params.min_fee, vec![]);
        run(&mut state, &g, &gen.setup_txs());
        match state.get(&Key::Pool(0)) {
            Some(Value::Pool(p)) => assert_eq!(
                (p.asset_a, p.asset_b, p.reserve_a),
                (LANE, USDC, SETUP_LIQUIDITY)
            ),
            other => panic!("no pool 0: {other:?}"),
        }
        // Transfers only first (as the localnet sends before the pool is certain to exist).
        run(&mut state, &g, &gen.next_batch(7, false));
        let mut kinds = [0usize; 2];
        for _ in 0..5 {
            let batch = gen.next_batch(60, true);
            for tx in &batch {
                kinds[usize::from(tx.tx.op.name() == "swap")] += 1;
            }
            run(&mut state, &g, &batch);
        }
        assert!(kinds[1] > 20 && kinds[0] > kinds[1] * 2, "{kinds:?}");
    }

    #[test]
    fn nonces_are_consecutive_per_sender_and_resync() {
        let dev = dev_keys(3);
        let mut gen = LoadGen::new("load-test", dev.clone(), 1, vec![5, 0, 2]);
        let setup = gen.setup_txs();
        assert_eq!(
            setup.iter().map(|t| t.tx.nonce).collect::<Vec<_>>(),
            vec![5, 6]
        );
        let batch = gen.next_batch(6, true);
        let senders: Vec<usize> = batch
            .iter()
            .map(|t| {
                dev.iter()
                    .position(|k| k.public_key() == t.tx.sender)
                    .unwrap()
            })
            .collect();
        assert_eq!(senders, vec![0, 1, 2, 0, 1, 2]);
        let nonces: Vec<u64> = batch.iter().map(|t| t.tx.nonce).collect();
        assert_eq!(nonces, vec![7, 0, 2, 8, 1, 3]);
        gen.set_nonce(1, 10);
        assert_eq!(gen.next_batch(2, true)[1].tx.nonce, 10);
        assert_eq!(gen.nonce(1), 11);

        // Deterministic: the same inputs give the same transactions.
        let a = LoadGen::new("load-test", dev.clone(), 1, vec![]).next_batch(20, true);
        let b = LoadGen::new("load-test", dev, 1, vec![]).next_batch(20, true);
        assert_eq!(a, b);
    }
}
