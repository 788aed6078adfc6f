//! Ledger semantics on hand-built scenarios, and bad input that must be refused with a reason
//! and never panic.

mod common;

use common::{addr, setup, sign, World, CHAIN};
use lanes_executor::ledger::{MIN_LIQUIDITY, PRICE_SCALE};
use lanes_executor::state::Position;
use lanes_executor::tx::{check_stateless, check_stateless_unsigned};
use lanes_executor::{
    fee_sink, Executor, FailReason, Key, Operation, Receipt, RejectReason, SignedTransaction,
    Status, Transaction, TxError, Value,
};
use lanes_types::codec::{Decode, Encode};
use lanes_types::CryptoError;
use proptest::prelude::*;

fn world() -> World {
    (*setup(5)).clone()
}

fn status(r: &[Receipt]) -> Vec<Status> {
    r.iter().map(|r| r.status).collect()
}

#[test]
fn transfer_fee_and_nonce_rules() {
    let mut w = world();
    let sink_before = w.u64(Key::Balance(fee_sink(), 0));
    let to = addr(&w.keys[2]);
    let b1 = (w.balance(1, 1), w.balance(2, 1), w.balance(1, 0));
    let good = w.tx(
        1,
        Operation::Transfer {
            asset: 1,
            to,
            amount: 500,
        },
    );
    let too_much = w.tx(
        1,
        Operation::Transfer {
            asset: 1,
            to,
            amount: u64::MAX,
        },
    );
    // Replay of the first transaction, and a nonce gap: rejected, free, no change.
    let replay = good.clone();
    let gap = sign(
        &w.keys[1],
        99,
        1,
        Operation::Transfer {
            asset: 1,
            to,
            amount: 1,
        },
    );
    let r = w.run(&[good.clone(), too_much, replay, gap]);
    assert_eq!(
        status(&r),
        vec![
            Status::Success,
            Status::Failed(FailReason::InsufficientBalance),
            Status::Rejected(RejectReason::BadNonce),
            Status::Rejected(RejectReason::BadNonce),
        ]
    );
    assert_eq!(
        r.iter().map(|r| r.fee_paid).collect::<Vec<_>>(),
        vec![1, 1, 0, 0]
    );
    assert_eq!(w.balance(1, 1), b1.0 - 500);
    assert_eq!(w.balance(2, 1), b1.1 + 500);
    // Two fees paid; the failed transaction still bumped the nonce.
    assert_eq!(w.balance(1, 0), b1.2 - 2);
    assert_eq!(w.u64(Key::Nonce(addr(&w.keys[1]))), w.nonces[1]);
    assert_eq!(w.u64(Key::Balance(fee_sink(), 0)), sink_before + 2);
}

#[test]
fn sender_that_cannot_pay_the_fee_is_rejected() {
    let mut w = world();
    let poor = lanes_types::SecretKey::from_label("poor");
    let t = sign(
        &poor,
        0,
        1,
        Operation::Transfer {
            asset: 0,
            to: addr(&w.keys[0]),
            amount: 1,
        },
    );
    let r = w.run(&[t]);
    assert_eq!(r[0].status, Status::Rejected(RejectReason::CannotPayFee));
    assert_eq!(w.u64(Key::Nonce(poor.public_key().address())), 0);
}

#[test]
fn amm_rounds_in_the_pools_favour() {
    let mut w = world();
    let pool = w.pool(0).unwrap();
    let k0 = u128::from(pool.reserve_a) * u128::from(pool.reserve_b);
    let amount_in = 1_000_000u64;
    let fee = u128::from(w.params.swap_fee_bps);
    let after_fee = u128::from(amount_in) * (10_000 - fee);
    let expect =
        after_fee * u128::from(pool.reserve_b) / (u128::from(pool.reserve_a) * 10_000 + after_fee);
    let txs = vec![
        w.tx(
            1,
            Operation::Swap {
                pool: 0,
                asset_in: 0,
                amount_in,
                min_out: 0,
            },
        ),
        w.tx(
            1,
            Operation::Swap {
                pool: 0,
                asset_in: 0,
                amount_in,
                min_out: u64::MAX,
            },
        ),
        w.tx(
            1,
            Operation::Swap {
                pool: 0,
                asset_in: 2,
                amount_in,
                min_out: 0,
            },
        ),
        w.tx(
            1,
            Operation::Swap {
                pool: 9,
                asset_in: 0,
                amount_in,
                min_out: 0,
            },
        ),
        w.tx(
            1,
            Operation::Swap {
                pool: 0,
                asset_in: 0,
                amount_in: 1,
                min_out: 0,
            },
        ),
    ];
    let r = w.run(&txs);
    assert_eq!(
        status(&r),
        vec![
            Status::Success,
            Status::Failed(FailReason::Slippage),
            Status::Failed(FailReason::AssetNotInPool),
            Status::Failed(FailReason::UnknownPool),
            Status::Failed(FailReason::InsufficientLiquidity),
        ]
    );
    assert_eq!(r[0].outputs, vec![expect as u64]);
    let p = w.pool(0).unwrap();
    assert!(u128::from(p.reserve_a) * u128::from(p.reserve_b) > k0);

    // Add then remove liquidity: the provider never gets back more than it put in.
    let (a0, b0) = (w.balance(2, 0), w.balance(2, 1));
    let add = w.tx(
        2,
        Operation::AddLiquidity {
            pool: 0,
            amount_a: 123_457,
            amount_b: 999_999,
            min_shares: 1,
        },
    );
    let r = w.run(&[add]);
    assert_eq!(r[0].status, Status::Success);
    let shares = r[0].outputs[0];
    let remove = w.tx(
        2,
        Operation::RemoveLiquidity {
            pool: 0,
            shares,
            min_a: 0,
            min_b: 0,
        },
    );
    let r = w.run(&[remove]);
    assert_eq!(r[0].status, Status::Success);
    assert!(w.balance(2, 0) < a0 && w.balance(2, 1) <= b0);
    assert_eq!(w.u64(Key::LpShares(0, addr(&w.keys[2]))), 0);
    common::check_invariants(&w.state);
}

#[test]
fn first_deposit_locks_minimum_liquidity() {
    let mut w = world();
    let txs = vec![
        w.tx(3, Operation::CreatePool { a: 0, b: 2 }),
        w.tx(
            3,
            Operation::AddLiquidity {
                pool: 2,
                amount_a: 999,
                amount_b: 1_000,
                min_shares: 0,
            },
        ),
        w.tx(
            3,
            Operation::AddLiquidity {
                pool: 2,
                amount_a: 4_000,
                amount_b: 9_000,
                min_shares: 0,
            },
        ),
        w.tx(3, Operation::CreatePool { a: 1, b: 1 }),
        w.tx(3, Operation::CreatePool { a: 1, b: 77 }),
    ];
    let r = w.run(&txs);
    assert_eq!(
        status(&r),
        vec![
            Status::Success,
            Status::Failed(FailReason::InsufficientLiquidity),
            Status::Success,
            Status::Failed(FailReason::SameAsset),
            Status::Failed(FailReason::UnknownAsset),
        ]
    );
    assert_eq!(r[0].outputs, vec![2]);
    let p = w.pool(2).unwrap();
    assert_eq!(p.shares, 6_000);
    assert_eq!(
        w.u64(Key::LpShares(2, addr(&w.keys[3]))),
        6_000 - MIN_LIQUIDITY
    );
}

#[test]
fn assets_staking_and_oracle() {
    let mut w = world();
    let v = addr(&common::validator_keys()[1]);
    let txs = vec![
        w.tx(
            1,
            Operation::CreateAsset {
                symbol: "GOLD".into(),
                supply: 5_000,
            },
        ),
        w.tx(
            2,
            Operation::CreateAsset {
                symbol: "GOLD".into(),
                supply: 5_000,
            },
        ),
        w.tx(
            2,
            Operation::CreateAsset {
                symbol: "gold".into(),
                supply: 5_000,
            },
        ),
        w.tx(
            1,
            Operation::Transfer {
                asset: 3,
                to: addr(&w.keys[2]),
                amount: 1_000,
            },
        ),
        w.tx(
            1,
            Operation::Stake {
                validator: v,
                amount: 700,
            },
        ),
        w.tx(
            1,
            Operation::Stake {
                validator: addr(&w.keys[4]),
                amount: 700,
            },
        ),
        w.tx(
            1,
            Operation::Unstake {
                validator: v,
                amount: 701,
            },
        ),
        w.tx(
            1,
            Operation::Unstake {
                validator: v,
                amount: 200,
            },
        ),
        w.tx(1, Operation::SetPrice { asset: 3, price: 5 }),
        w.tx(0, Operation::SetPrice { asset: 3, price: 5 }),
        w.tx(0, Operation::SetPrice { asset: 3, price: 0 }),
    ];
    let r = w.run(&txs);
    assert_eq!(
        status(&r),
        vec![
            Status::Success,
            Status::Failed(FailReason::SymbolTaken),
            Status::Failed(FailReason::BadSymbol),
            Status::Success,
            Status::Success,
            Status::Failed(FailReason::UnknownValidator),
            Status::Failed(FailReason::InsufficientStake),
            Status::Success,
            Status::Failed(FailReason::NotOracle),
            Status::Success,
            Status::Failed(FailReason::ZeroAmount),
        ]
    );
    assert_eq!(r[0].outputs, vec![3]);
    assert_eq!(w.balance(2, 3), 1_000);
    assert_eq!(w.u64(Key::Stake(addr(&w.keys[1]), v)), 500);
    assert_eq!(w.u64(Key::Price(3)), 5);
    common::check_invariants(&w.state);
}

#[test]
fn lending_borrow_limits_and_liquidation() {
    let mut w = world();
    // Account 1 supplied 1e9 BTC (price 1e8) and borrowed 7e10 USD (price 1e6) in setup:
    // collateral value 1e17 * 75% = 7.5e16 >= debt 7e16.
    let me = addr(&w.keys[1]);
    let txs = vec![
        w.tx(
            1,
            Operation::Borrow {
                asset: 1,
                amount: 6_000_000_000,
            },
        ),
        w.tx(
            1,
            Operation::Withdraw {
                asset: 2,
                amount: 100_000_000,
            },
        ),
        w.tx(
            1,
            Operation::Repay {
                asset: 1,
                amount: 80_000_000_000,
            },
        ),
        w.tx(
            1,
            Operation::Borrow {
                asset: 0,
                amount: 1,
            },
        ),
        w.tx(
            2,
            Operation::Liquidate {
                borrower: me,
                debt_asset: 1,
                collateral_asset: 2,
                amount: 1_000_000,
            },
        ),
        // The BTC price falls 10%: account 1 becomes liquidatable.
        w.tx(
            0,
            Operation::SetPrice {
                asset: 2,
                price: 90_000_000,
            },
        ),
        w.tx(
            1,
            Operation::Liquidate {
                borrower: me,
                debt_asset: 1,
                collateral_asset: 2,
                amount: 1,
            },
        ),
        w.tx(
            2,
            Operation::Liquidate {
                borrower: me,
                debt_asset: 1,
                collateral_asset: 2,
                amount: 9_000_000_000,
            },
        ),
        w.tx(
            1,
            Operation::Repay {
                asset: 1,
                amount: 1_000_000_000,
            },
        ),
    ];
    let r = w.run(&txs);
    assert_eq!(
        status(&r),
        vec![
            Status::Failed(FailReason::Undercollateralised),
            Status::Failed(FailReason::Undercollateralised),
            Status::Failed(FailReason::RepayExceedsDebt),
            Status::Failed(FailReason::InsufficientCash),
            Status::Failed(FailReason::NotLiquidatable),
            Status::Success,
            Status::Failed(FailReason::SelfLiquidation),
            Status::Success,
            Status::Success,
        ]
    );
    // Seized = 9e9 * 1e6 * 1.05 / 9e7 = 105_000_000 BTC units, credited as the liquidator's supply.
    assert_eq!(r[7].outputs, vec![105_000_000]);
    let positions = |w: &World, i: usize| match w.state.map.get(&Key::Positions(addr(&w.keys[i]))) {
        Some(Value::Positions(p)) => p.clone(),
        _ => vec![],
    };
    assert_eq!(
        positions(&w, 1),
        vec![
            Position {
                asset: 1,
                supplied: 0,
                borrowed: 60_000_000_000
            },
            Position {
                asset: 2,
                supplied: 895_000_000,
                borrowed: 0
            },
        ]
    );
    assert!(positions(&w, 2).contains(&Position {
        asset: 2,
        supplied: 1_105_000_000,
        borrowed: 0
    }));
    assert_eq!(PRICE_SCALE, 1_000_000);
    common::check_invariants(&w.state);
}

#[test]
fn bad_input_is_rejected_with_a_reason() {
    let w = world();
    let t = sign(
        &w.keys[1],
        0,
        1,
        Operation::Transfer {
            asset: 0,
            to: addr(&w.keys[2]),
            amount: 1,
        },
    );
    let raw = t.to_bytes();
    assert!(check_stateless(&raw, CHAIN, &w.params).is_ok());
    // Wrong signer: the signature is by another key than `sender`.
    let mut forged = t.clone();
    forged.tx.sender = w.keys[3].public_key();
    assert_eq!(
        check_stateless(&forged.to_bytes(), CHAIN, &w.params),
        Err(TxError::BadSignature)
    );
    // A sender key that is not canonically encoded (y = 2^255 - 1 is above the field prime).
    let mut bad_key = t.clone();
    bad_key.tx.sender = lanes_types::PublicKey([0xff; 32]);
    assert_eq!(
        check_stateless(&bad_key.to_bytes(), CHAIN, &w.params),
        Err(TxError::BadSenderKey(CryptoError::NonCanonicalPublicKey))
    );
    // Empty, truncated, garbage.
    for bytes in [vec![], raw[..10].to_vec(), vec![0xff; 300]] {
        assert!(matches!(
            check_stateless(&bytes, CHAIN, &w.params),
            Err(TxError::Decode(_) | TxError::TooLarge { .. })
        ));
    }
    // The executor's batch check names the bad transactions.
    let ex = Executor::new(2).unwrap();
    assert_eq!(
        ex.verify_signatures(&[t.clone(), forged, t.clone(), bad_key]),
        Err(vec![1, 3])
    );
}

/// A transaction "signed" by a small-order sender key: under ZIP-215 verification the identity
/// point accepts the signature (R = identity, s = 0) for any message, so anyone could spend from
/// its address. The stateless check and the block's batch check both reject it, with a reason.
#[test]
fn small_order_sender_keys_are_rejected() {
    let w = world();
    // The identity point (y = 1): order 1.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1;
    let forged = SignedTransaction {
        tx: Transaction {
            chain_id: CHAIN.into(),
            sender: lanes_types::PublicKey(identity),
            nonce: 0,
            fee: 1,
            op: Operation::Transfer {
                asset: 0,
                to: addr(&w.keys[2]),
                amount: 1,
            },
        },
        signature: lanes_types::Signature(forged_sig),
    };
    // The forgery does verify as a bare signature: the key check is what stops it.
    assert!(forged
        .tx
        .sender
        .verify(&forged.tx.signing_bytes(), &forged.signature)
        .is_ok());
    let err = check_stateless(&forged.to_bytes(), CHAIN, &w.params).unwrap_err();
    assert_eq!(err, TxError::BadSenderKey(CryptoError::WeakPublicKey));
    assert_eq!(
        err.to_string(),
        "sender key rejected: public key is a small-order point"
    );
    assert_eq!(forged.verify_signature(), Err(err));
    // In a block, next to valid transactions, in one batch.
    let good = sign(
        &w.keys[1],
        0,
        1,
        Operation::Transfer {
            asset: 0,
            to: addr(&w.keys[2]),
            amount: 1,
        },
    );
    let mut block = vec![good.clone(); 70];
    block[5] = forged.clone();
    block[66] = forged;
    let ex = Executor::new(2).unwrap();
    assert_eq!(ex.verify_signatures(&block), Err(vec![5, 66]));
    assert_eq!(ex.verify_signatures(&[good]), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder or the stateless check.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let params = lanes_types::ProtocolParams::local_defaults(lanes_types::Address([1; 20]));
        let _ = check_stateless(&bytes, CHAIN, &params);
        let _ = SignedTransaction::from_bytes(&bytes);
        let _ = Receipt::from_bytes(&bytes);
        let _ = Key::from_bytes(&bytes);
        let _ = Value::from_bytes(&bytes);
    }

    /// Mutating any byte of a valid transaction gives a refusal or a different valid
    /// transaction, never a panic; a signed transaction with a flipped byte fails its signature.
    #[test]
    fn mutated_transactions_are_refused(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let w = setup(5);
        let t = sign(&w.keys[1], 0, 1, Operation::Swap { pool: 0, asset_in: 0, amount_in: 5, min_out: 1 });
        let mut raw = t.to_bytes();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        match check_stateless_unsigned(&raw, CHAIN, &w.params) {
            Ok(decoded) => {
                prop_assert_ne!(&decoded, &t);
                let refused = decoded.verify_signature();
                prop_assert!(
                    matches!(refused, Err(TxError::BadSignature | TxError::BadSenderKey(_))),
                    "{:?}", refused
                );
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// A state tree missing nodes under the previous root is an error, not a panic or a wrong root.
#[test]
fn missing_tree_nodes_are_an_error() {
    let mut w = world();
    let t = w.tx(
        1,
        Operation::Transfer {
            asset: 0,
            to: addr(&w.keys[2]),
            amount: 1,
        },
    );
    let ex = Executor::new(2).unwrap();
    let empty = lanes_executor::MemNodeStore::default();
    let err = ex
        .execute_block(&w.state, &empty, w.root, &w.params, &[t])
        .unwrap_err();
    assert!(
        matches!(
            err,
            lanes_executor::ExecError::Tree(lanes_executor::SmtError::MissingNode(_))
        ),
        "{err}"
    );
}
