//! Shared test fixtures: a genesis with many funded accounts, a setup block (pools, prices,
//! lending positions), random transaction builders and state invariants.
#![allow(dead_code)]

use lanes_executor::ledger::MIN_LIQUIDITY;
use lanes_executor::smt::{self, MemNodeStore};
use lanes_executor::state::{Market, Pool};
pub use lanes_executor::workload::{genesis, validator_keys, CHAIN};
use lanes_executor::{
    execute_sequential, genesis_writes, Key, MemState, Operation, SignedTransaction, Transaction,
    Value, Write,
};
use lanes_types::{Address, Hash, ProtocolParams, SecretKey};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Account keys, derived once (10,000 of them for the spread workloads).
pub fn keys(n: usize) -> Vec<SecretKey> {
    static KEYS: OnceLock<Mutex<Vec<SecretKey>>> = OnceLock::new();
    let mut all = KEYS.get_or_init(|| Mutex::new(Vec::new())).lock().unwrap();
    while all.len() < n {
        let i = all.len();
        all.push(SecretKey::from_label(&format!("account-{i}")));
    }
    all[..n].to_vec()
}

pub fn addr(k: &SecretKey) -> Address {
    k.public_key().address()
}

pub fn sign(k: &SecretKey, nonce: u64, fee: u64, op: Operation) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender: k.public_key(),
        nonce,
        fee,
        op,
    }
    .sign(k)
}

/// A chain state: its key-value state, tree nodes and root, and every account's next nonce.
#[derive(Clone)]
pub struct World {
    pub keys: Vec<SecretKey>,
    pub params: ProtocolParams,
    pub state: MemState,
    pub nodes: MemNodeStore,
    pub root: Hash,
    pub nonces: Vec<u64>,
}

impl World {
    pub fn from_genesis(keys: Vec<SecretKey>) -> World {
        let g = genesis(&keys);
        let mut state = MemState::default();
        let writes: Vec<Write> = genesis_writes(&g);
        state.apply(&writes);
        let mut nodes = MemNodeStore::default();
        let up = smt::update(&nodes, smt::EMPTY, &smt::tree_updates(&writes)).unwrap();
        up.persist(&mut nodes);
        let n = keys.len();
        World {
            keys,
            params: g.params,
            state,
            nodes,
            root: up.root,
            nonces: vec![0; n],
        }
    }

    /// Runs a block sequentially and applies it; returns the receipts.
    pub fn run(&mut self, txs: &[SignedTransaction]) -> Vec<lanes_executor::Receipt> {
        let (receipts, writes) = execute_sequential(&self.state, &self.params, txs);
        self.commit(&writes);
        receipts
    }

    pub fn commit(&mut self, writes: &[Write]) {
        let up = smt::update(&self.nodes, self.root, &smt::tree_updates(writes)).unwrap();
        up.persist(&mut self.nodes);
        self.root = up.root;
        self.state.apply(writes);
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(Value::U64(n)) = self.state.map.get(&Key::Nonce(addr(k))) {
                self.nonces[i] = *n;
            }
        }
    }

    /// A correctly-nonced transaction from account `i` (assumes it will not be rejected).
    pub fn tx(&mut self, i: usize, op: Operation) -> SignedTransaction {
        let n = self.nonces[i];
        self.nonces[i] += 1;
        sign(&self.keys[i], n, 1, op)
    }

    pub fn u64(&self, key: Key) -> u64 {
        match self.state.map.get(&key) {
            Some(Value::U64(v)) => *v,
            None => 0,
            Some(v) => panic!("{key:?} holds {v:?}"),
        }
    }

    pub fn balance(&self, i: usize, asset: u32) -> u64 {
        self.u64(Key::Balance(addr(&self.keys[i]), asset))
    }

    pub fn pool(&self, id: u32) -> Option<Pool> {
        match self.state.map.get(&Key::Pool(id)) {
            Some(Value::Pool(p)) => Some(p.clone()),
            _ => None,
        }
    }
}

/// Genesis plus a setup block: pools 0 (LANE/USD) and 1 (USD/BTC) with liquidity, oracle prices,
/// a USD lending market and borrowers near their limit. Cached per account count.
pub fn setup(accounts: usize) -> Arc<World> {
    static CACHE: OnceLock<Mutex<BTreeMap<usize, Arc<World>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(w) = cache.lock().unwrap().get(&accounts) {
        return w.clone();
    }
    let mut w = World::from_genesis(keys(accounts));
    let mut txs = vec![
        w.tx(0, Operation::CreatePool { a: 0, b: 1 }),
        w.tx(0, Operation::CreatePool { a: 1, b: 2 }),
        w.tx(
            0,
            Operation::AddLiquidity {
                pool: 0,
                amount_a: 10_000_000_000,
                amount_b: 10_000_000_000,
                min_shares: 0,
            },
        ),
        w.tx(
            0,
            Operation::AddLiquidity {
                pool: 1,
                amount_a: 10_000_000_000,
                amount_b: 100_000_000,
                min_shares: 0,
            },
        ),
        w.tx(
            0,
            Operation::SetPrice {
                asset: 0,
                price: 1_000_000,
            },
        ),
        w.tx(
            0,
            Operation::SetPrice {
                asset: 1,
                price: 1_000_000,
            },
        ),
        w.tx(
            0,
            Operation::SetPrice {
                asset: 2,
                price: 100_000_000,
            },
        ),
        w.tx(
            0,
            Operation::Supply {
                asset: 1,
                amount: 900_000_000_000,
            },
        ),
    ];
    for i in 1..accounts.min(10) {
        txs.push(w.tx(
            i,
            Operation::Supply {
                asset: 2,
                amount: 1_000_000_000,
            },
        ));
        txs.push(w.tx(
            i,
            Operation::Borrow {
                asset: 1,
                amount: 70_000_000_000,
            },
        ));
    }
    let receipts = w.run(&txs);
    for (r, t) in receipts.iter().zip(&txs) {
        assert_eq!(
            r.status,
            lanes_executor::Status::Success,
            "setup {:?}",
            t.tx.op
        );
    }
    let w = Arc::new(w);
    cache.lock().unwrap().insert(accounts, w.clone());
    w
}

/// A random transaction description, turned into a signed transaction by [`build_block`].
#[derive(Debug, Clone)]
pub struct Spec {
    pub from: u32,
    pub kind: u8,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub nonce_mode: u8,
}

fn amount(b: u64, c: u64) -> u64 {
    match c % 10 {
        0 => 0,
        1 => u64::MAX,
        n => b % 10u64.pow(n as u32 + 2),
    }
}

/// Signs the specs as a block from `w`'s accounts with mostly sequential nonces (about 1 in 16
/// replays or skips one), over every operation kind.
pub fn build_block(w: &World, specs: &[Spec]) -> Vec<SignedTransaction> {
    let m = w.keys.len();
    let mut nonces = w.nonces.clone();
    let vals = validator_keys();
    specs
        .iter()
        .map(|s| {
            let from = s.from as usize % m;
            let acct = |x: u64| addr(&w.keys[x as usize % m]);
            let amt = amount(s.b, s.c);
            let op = match s.kind % 14 {
                0 => Operation::Transfer {
                    asset: (s.a % 4) as u32,
                    to: acct(s.a / 4),
                    amount: amt,
                },
                1 => Operation::CreateAsset {
                    symbol: if s.a % 7 == 0 {
                        "bad".into()
                    } else {
                        format!("T{}", s.a % 40)
                    },
                    supply: amt,
                },
                2 => Operation::CreatePool {
                    a: (s.a % 5) as u32,
                    b: (s.b % 5) as u32,
                },
                3 => Operation::AddLiquidity {
                    pool: (s.a % 3) as u32,
                    amount_a: amt,
                    amount_b: amount(s.c, s.b),
                    min_shares: if s.a % 5 == 0 { u64::MAX } else { 0 },
                },
                4 => Operation::RemoveLiquidity {
                    pool: (s.a % 3) as u32,
                    shares: amt,
                    min_a: if s.a % 5 == 0 { u64::MAX } else { 0 },
                    min_b: 0,
                },
                5 => Operation::Swap {
                    pool: (s.a % 3) as u32,
                    asset_in: (s.b % 3) as u32,
                    amount_in: amt,
                    min_out: if s.a % 6 == 0 { s.b % 1_000_000 } else { 0 },
                },
                6 => Operation::Stake {
                    validator: if s.a % 5 == 4 {
                        acct(s.a)
                    } else {
                        addr(&vals[(s.a % 4) as usize])
                    },
                    amount: amt,
                },
                7 => Operation::Unstake {
                    validator: addr(&vals[(s.a % 4) as usize]),
                    amount: amt,
                },
                8 => Operation::Supply {
                    asset: (s.a % 4) as u32,
                    amount: amt,
                },
                9 => Operation::Withdraw {
                    asset: (s.a % 4) as u32,
                    amount: amt,
                },
                10 => Operation::Borrow {
                    asset: (s.a % 4) as u32,
                    amount: amt,
                },
                11 => Operation::Repay {
                    asset: (s.a % 4) as u32,
                    amount: amt,
                },
                12 => Operation::Liquidate {
                    borrower: acct(s.a),
                    debt_asset: (s.b % 3) as u32,
                    collateral_asset: (s.c % 3) as u32,
                    amount: amt,
                },
                _ => Operation::SetPrice {
                    asset: (s.a % 4) as u32,
                    price: amt,
                },
            };
            // The oracle is account 0: route most price updates through it.
            let from = if s.kind % 14 == 13 && s.a % 3 != 0 {
                0
            } else {
                from
            };
            let next = nonces[from];
            let nonce = match s.nonce_mode % 16 {
                0 => next + 1,
                1 => next.saturating_sub(1),
                _ => {
                    nonces[from] += 1;
                    next
                }
            };
            sign(&w.keys[from], nonce, 1 + s.c % 5, op)
        })
        .collect()
}

/// Checks the ledger's invariants over a whole state.
pub fn check_invariants(state: &MemState) {
    let mut held: BTreeMap<u32, u128> = BTreeMap::new();
    let mut supplies: BTreeMap<u32, u64> = BTreeMap::new();
    let mut lp: BTreeMap<u32, u128> = BTreeMap::new();
    let mut pos_supplied: BTreeMap<u32, u128> = BTreeMap::new();
    let mut pos_borrowed: BTreeMap<u32, u128> = BTreeMap::new();
    let mut markets: BTreeMap<u32, Market> = BTreeMap::new();
    let mut pools: BTreeMap<u32, Pool> = BTreeMap::new();
    for (k, v) in &state.map {
        match (k, v) {
            (Key::Balance(_, a), Value::U64(x)) => {
                assert!(*x > 0, "zero balance stored");
                *held.entry(*a).or_default() += u128::from(*x);
            }
            (Key::Stake(..), Value::U64(x)) => {
                assert!(*x > 0);
                *held.entry(0).or_default() += u128::from(*x);
            }
            (Key::LpShares(p, _), Value::U64(x)) => {
                assert!(*x > 0);
                *lp.entry(*p).or_default() += u128::from(*x);
            }
            (Key::Asset(id), Value::Asset(info)) => {
                supplies.insert(*id, info.supply);
            }
            (Key::Pool(id), Value::Pool(p)) => {
                pools.insert(*id, p.clone());
                *held.entry(p.asset_a).or_default() += u128::from(p.reserve_a);
                *held.entry(p.asset_b).or_default() += u128::from(p.reserve_b);
            }
            (Key::Market(a), Value::Market(m)) => {
                assert!(m.borrowed <= m.supplied);
                *held.entry(*a).or_default() += u128::from(m.supplied - m.borrowed);
                markets.insert(*a, m.clone());
            }
            (Key::Positions(_), Value::Positions(ps)) => {
                assert!(!ps.is_empty());
                for p in ps {
                    *pos_supplied.entry(p.asset).or_default() += u128::from(p.supplied);
                    *pos_borrowed.entry(p.asset).or_default() += u128::from(p.borrowed);
                }
            }
            (
                Key::Nonce(_) | Key::Price(_) | Key::NextAssetId | Key::NextPoolId | Key::Symbol(_),
                Value::U64(x),
            ) => {
                assert!(*x > 0 || matches!(k, Key::Symbol(_)));
            }
            (Key::Validator(_), Value::U64(1)) => {}
            other => panic!("unexpected state entry {other:?}"),
        }
    }
    for (id, supply) in &supplies {
        assert_eq!(
            held.get(id).copied().unwrap_or(0),
            u128::from(*supply),
            "supply of asset {id} not conserved"
        );
    }
    assert!(
        held.keys().all(|a| supplies.contains_key(a)),
        "holdings of an unknown asset"
    );
    for (id, p) in &pools {
        let locked = if p.shares > 0 {
            u128::from(MIN_LIQUIDITY)
        } else {
            0
        };
        assert_eq!(
            lp.get(id).copied().unwrap_or(0) + locked,
            u128::from(p.shares),
            "pool {id} shares"
        );
        assert_eq!(p.shares == 0, p.reserve_a == 0 && p.reserve_b == 0);
    }
    for (a, m) in &markets {
        assert_eq!(
            pos_supplied.get(a).copied().unwrap_or(0),
            u128::from(m.supplied)
        );
        assert_eq!(
            pos_borrowed.get(a).copied().unwrap_or(0),
            u128::from(m.borrowed)
        );
    }
}
