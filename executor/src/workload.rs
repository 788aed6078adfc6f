//! Deterministic synthetic blocks for benchmarks and tests: a funded world (genesis state and
//! its tree, in memory) and blocks of transfers, swaps on one hot pool, or a DeFi mix. The same
//! arguments always build the same block.

use crate::smt::{self, MemNodeStore, SmtError};
use crate::{
    execute_sequential, genesis_writes, BlockOutput, ExecError, Executor, MemState, Operation,
    SignedTransaction, Status, Transaction, Write,
};
use lanes_types::genesis::{GenesisAsset, GenesisBalance};
use lanes_types::{Address, Genesis, Hash, ProtocolParams, SecretKey, ValidatorInfo};
use rayon::prelude::*;
use thiserror::Error;

/// Chain id of synthetic worlds.
pub const CHAIN: &str = "lanes-bench";
/// Every account's starting balance of every asset.
pub const START_BALANCE: u64 = 1_000_000_000_000;

/// Why a world or block could not be built.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// Transfers need a sender and a distinct receiver.
    #[error("a workload needs at least 2 accounts, got {0}")]
    TooFewAccounts(usize),
    /// The state tree refused an update.
    #[error("state tree: {0}")]
    Tree(#[from] SmtError),
    /// A setup transaction failed.
    #[error("workload setup failed: {0}")]
    Setup(String),
}

/// Which block to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Native-asset transfers between distinct random accounts.
    Transfer,
    /// Every transaction swaps on the same pool: the worst case for parallelism.
    SwapHot,
    /// Transfers, swaps on two pools, staking and lending supply.
    Mixed,
}

impl Workload {
    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Transfer => "transfer",
            Workload::SwapHot => "swap-hot",
            Workload::Mixed => "mixed",
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Workload::Transfer, Workload::SwapHot, Workload::Mixed]
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}: expected transfer, swap-hot or mixed"))
    }
}

/// Funded accounts and the state they start from.
pub struct World {
    /// Account keys; every account holds [`START_BALANCE`] of LANE (0), USD (1) and BTC (2).
    pub keys: Vec<SecretKey>,
    /// Protocol parameters of the world's genesis.
    pub params: ProtocolParams,
    /// The state.
    pub state: MemState,
    /// The state tree's nodes.
    pub nodes: MemNodeStore,
    /// The state root.
    pub root: Hash,
}

fn address(k: &SecretKey) -> Address {
    k.public_key().address()
}

fn sign(k: &SecretKey, nonce: u64, op: Operation) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender: k.public_key(),
        nonce,
        fee: 1,
        op,
    }
    .sign(k)
}

/// The four validators of synthetic worlds.
pub fn validator_keys() -> Vec<SecretKey> {
    (0..4)
        .map(|i| SecretKey::from_label(&format!("bench-validator-{i}")))
        .collect()
}

/// A genesis where every account holds [`START_BALANCE`] of LANE (0), USD (1) and BTC (2), and
/// the first account is the price oracle.
pub fn genesis(accounts: &[SecretKey]) -> Genesis {
    let balances: Vec<GenesisBalance> = accounts
        .iter()
        .map(|k| GenesisBalance {
            account: address(k),
            amount: START_BALANCE,
        })
        .collect();
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        validators: validator_keys()
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                name: format!("v{i}"),
                public_key: k.public_key(),
                address: format!("127.0.0.1:{}", 9000 + i),
            })
            .collect(),
        assets: ["LANE", "USD", "BTC"]
            .iter()
            .map(|s| GenesisAsset {
                symbol: s.to_string(),
                balances: balances.clone(),
            })
            .collect(),
        params: ProtocolParams::local_defaults(accounts.first().map(address).unwrap_or_default()),
    }
}

impl World {
    /// A world of `accounts` funded accounts at genesis.
    pub fn new(accounts: usize) -> Result<World, WorkloadError> {
        if accounts < 2 {
            return Err(WorkloadError::TooFewAccounts(accounts));
        }
        let keys: Vec<SecretKey> = (0..accounts)
            .into_par_iter()
            .map(|i| SecretKey::from_label(&format!("bench-account-{i}")))
            .collect();
        let genesis = genesis(&keys);
        let writes: Vec<Write> = genesis_writes(&genesis);
        let mut world = World {
            keys,
            params: genesis.params,
            state: MemState::default(),
            nodes: MemNodeStore::default(),
            root: smt::EMPTY,
        };
        world.apply(&writes)?;
        Ok(world)
    }

    /// Executes `txs` against this world with `executor` (the world is not changed).
    pub fn execute(
        &self,
        executor: &Executor,
        txs: &[SignedTransaction],
    ) -> Result<BlockOutput, ExecError> {
        executor.execute_block(&self.state, &self.nodes, self.root, &self.params, txs)
    }

    /// Applies a block's writes to the state and the tree.
    pub fn apply(&mut self, writes: &[Write]) -> Result<(), WorkloadError> {
        let up = smt::update(&self.nodes, self.root, &smt::tree_updates(writes))?;
        up.persist(&mut self.nodes);
        self.root = up.root;
        self.state.apply(writes);
        Ok(())
    }

    /// Creates pools 0 (LANE/USD) and 1 (USD/BTC) with deep liquidity from account 0.
    fn setup_pools(&mut self, nonces: &mut [u64]) -> Result<(), WorkloadError> {
        let k = self.keys[0].clone();
        let mut txs = Vec::new();
        for op in [
            Operation::CreatePool { a: 0, b: 1 },
            Operation::CreatePool { a: 1, b: 2 },
            Operation::AddLiquidity {
                pool: 0,
                amount_a: START_BALANCE / 4,
                amount_b: START_BALANCE / 4,
                min_shares: 0,
            },
            Operation::AddLiquidity {
                pool: 1,
                amount_a: START_BALANCE / 4,
                amount_b: START_BALANCE / 4,
                min_shares: 0,
            },
        ] {
            txs.push(sign(&k, nonces[0], op));
            nonces[0] += 1;
        }
        let (receipts, writes) = execute_sequential(&self.state, &self.params, &txs);
        if let Some(r) = receipts
            .iter()
            .find(|r| !matches!(r.status, Status::Success))
        {
            return Err(WorkloadError::Setup(format!("{r:?}")));
        }
        self.apply(&writes)
    }
}

/// Builds a signed block of `txs` transactions of `workload` over the world's accounts (for
/// swap workloads it first runs a setup block creating pools 0 and 1 and applies it to `world`).
pub fn build_block(
    world: &mut World,
    workload: Workload,
    txs: usize,
) -> Result<Vec<SignedTransaction>, WorkloadError> {
    let n = world.keys.len();
    if n < 2 {
        return Err(WorkloadError::TooFewAccounts(n));
    }
    let mut nonces = vec![0u64; n];
    if workload != Workload::Transfer {
        world.setup_pools(&mut nonces)?;
    }
    // Deterministic pseudo-random spread (a 64-bit LCG), so every run builds the same block.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let validators: Vec<Address> = validator_keys().iter().map(address).collect();
    let plan: Vec<(usize, u64, Operation)> = (0..txs)
        .map(|i| {
            let from = if workload == Workload::SwapHot {
                1 + i % (n - 1)
            } else {
                i % n
            };
            let to = (from + 1 + (next() as usize % (n - 1))) % n;
            let op = match (workload, next() % 10) {
                (Workload::Transfer, _) | (Workload::Mixed, 0..=5) => Operation::Transfer {
                    asset: 0,
                    to: address(&world.keys[to]),
                    amount: 1 + next() % 1000,
                },
                (Workload::SwapHot, r) => Operation::Swap {
                    pool: 0,
                    asset_in: (r % 2) as u32,
                    amount_in: 1_000 + next() % 100_000,
                    min_out: 1,
                },
                (Workload::Mixed, 6..=7) => Operation::Swap {
                    pool: (next() % 2) as u32,
                    asset_in: 1,
                    amount_in: 1_000 + next() % 100_000,
                    min_out: 1,
                },
                (Workload::Mixed, 8) => Operation::Stake {
                    validator: validators[(next() % 4) as usize],
                    amount: 1 + next() % 1000,
                },
                (Workload::Mixed, _) => Operation::Supply {
                    asset: 1,
                    amount: 1 + next() % 1000,
                },
            };
            let nonce = nonces[from];
            nonces[from] += 1;
            (from, nonce, op)
        })
        .collect();
    let keys = &world.keys;
    Ok(plan
        .into_par_iter()
        .map(|(from, nonce, op)| sign(&keys[from], nonce, op))
        .collect())
}
