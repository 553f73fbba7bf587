//! Random sequences of swaps and liquidity moves on random pools, checking
//! the pool's invariants after every operation.

mod common;

use common::{add, asset, no_deadline, pool, remove, swap_in};
use malipo_amm::{
    AmmError, LiquidityReceipt, MINIMUM_LIQUIDITY, Movement, Party, Pool, SwapExactOut, Unit,
};
use num_bigint::BigUint;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Operation {
    SwapIn {
        first_in: bool,
        amount: u128,
    },
    SwapOut {
        first_out: bool,
        amount: u128,
    },
    Add {
        amounts: [u128; 2],
    },
    /// Burn this many millionths of the unlocked shares (more than a
    /// million asks for more than can be burned).
    Remove {
        millionths: u128,
    },
}

/// Amounts across many scales: cents, whole tokens, 18-decimal tokens.
fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        1..1_000u128,
        1..1_000_000_000u128,
        1..1_000_000_000_000_000_000_000u128,
    ]
}

fn reserve() -> impl Strategy<Value = u128> {
    prop_oneof![
        1_001..10_000_000u128,
        1_001..1_000_000_000_000_000_000_000_000u128,
    ]
}

fn fee_bps() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(30), Just(1_000), 0..=1_000u16]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (any::<bool>(), amount()).prop_map(|(first_in, amount)| Operation::SwapIn { first_in, amount }),
        2 => (any::<bool>(), amount()).prop_map(|(first_out, amount)| Operation::SwapOut { first_out, amount }),
        2 => (amount(), amount()).prop_map(|(a, b)| Operation::Add { amounts: [a, b] }),
        2 => (0..=1_100_000u128).prop_map(|millionths| Operation::Remove { millionths }),
    ]
}

fn k(pool: &Pool) -> BigUint {
    let [a, b] = pool.reserves();
    BigUint::from(a) * b
}

/// What the movements say the pool gained (or lost, if negative) of each
/// asset, and how many shares were issued net.
fn net_into_pool(pool: &Pool, movements: &[Movement]) -> ([i128; 2], i128) {
    let mut assets = [0i128; 2];
    let mut shares = 0i128;
    for movement in movements {
        assert!(movement.amount > 0, "a movement of nothing: {movement:?}");
        assert_ne!(movement.from, movement.to);
        assert!(
            !matches!(movement.from, Party::LockedShares(_)),
            "locked shares moved: {movement:?}"
        );
        let amount = i128::try_from(movement.amount).expect("fits");
        match &movement.unit {
            Unit::Asset(asset) => {
                let side = pool
                    .assets()
                    .iter()
                    .position(|a| a == asset)
                    .expect("pool asset");
                if matches!(movement.to, Party::Pool(_)) {
                    assets[side] += amount;
                }
                if matches!(movement.from, Party::Pool(_)) {
                    assets[side] -= amount;
                }
            }
            Unit::Shares(_) => {
                if matches!(movement.from, Party::ShareIssuer(_)) {
                    shares += amount;
                }
                if matches!(movement.to, Party::ShareIssuer(_)) {
                    shares -= amount;
                }
            }
        }
    }
    (assets, shares)
}

fn apply(pool: &mut Pool, operation: &Operation) -> Result<Vec<Movement>, AmmError> {
    let [a, b] = pool.assets();
    match *operation {
        Operation::SwapIn { first_in, amount } => {
            swap_in(pool, if first_in { a } else { b }, amount).map(|r| r.movements)
        }
        Operation::SwapOut { first_out, amount } => pool
            .swap_exact_out(SwapExactOut {
                trader: "trader".into(),
                asset_out: if first_out { a } else { b },
                amount_out: amount,
                max_amount_in: u128::MAX,
                deadline: no_deadline(),
            })
            .map(|r| r.movements),
        Operation::Add { amounts } => add(pool, amounts).map(|r| r.movements),
        Operation::Remove { millionths } => {
            let shares = shares_to_burn(pool, millionths);
            remove(pool, shares).map(|r| r.movements)
        }
    }
}

fn unlocked(pool: &Pool) -> u128 {
    pool.shares_total() - MINIMUM_LIQUIDITY
}

/// `millionths` of the unlocked shares, rounded up so that anything above a
/// million asks for more than the unlocked shares.
fn shares_to_burn(pool: &Pool, millionths: u128) -> u128 {
    let scaled = BigUint::from(unlocked(pool)) * millionths + 999_999u32;
    (scaled / 1_000_000u32).try_into().unwrap_or(u128::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_through_any_sequence(
        reserves in (reserve(), reserve()),
        fee_bps in fee_bps(),
        operations in prop::collection::vec(operation(), 1..40),
    ) {
        let (mut pool, _) = pool("p", (asset("kes"), reserves.0), (asset("eth"), reserves.1), fee_bps);
        for operation in &operations {
            let before = pool.clone();
            match apply(&mut pool, operation) {
                Err(error) => {
                    prop_assert_eq!(&pool, &before, "{:?} refused with {:?} but changed the pool", operation, error);
                    if let Operation::Remove { millionths } = operation {
                        // Refused for the lock exactly when it asks for more
                        // than the unlocked shares.
                        prop_assert_eq!(
                            matches!(error, AmmError::BurnExceedsUnlockedShares { .. }),
                            shares_to_burn(&before, *millionths) > unlocked(&before),
                            "{:?}",
                            error
                        );
                    }
                }
                Ok(movements) => {
                    // Value is conserved: the reserves moved by exactly what
                    // the movements say, and so did the shares.
                    let (assets, shares) = net_into_pool(&before, &movements);
                    for (side, moved) in assets.into_iter().enumerate() {
                        let change = i128::try_from(pool.reserves()[side]).expect("fits")
                            - i128::try_from(before.reserves()[side]).expect("fits");
                        prop_assert_eq!(change, moved);
                    }
                    let share_change = i128::try_from(pool.shares_total()).expect("fits")
                        - i128::try_from(before.shares_total()).expect("fits");
                    prop_assert_eq!(share_change, shares);

                    match operation {
                        Operation::SwapIn { .. } | Operation::SwapOut { .. } => {
                            prop_assert_eq!(pool.shares_total(), before.shares_total());
                            if fee_bps > 0 {
                                prop_assert!(k(&pool) > k(&before), "k fell or stood still");
                            } else {
                                prop_assert!(k(&pool) >= k(&before), "k fell");
                            }
                        }
                        Operation::Add { .. } | Operation::Remove { .. } => {
                            // A share is never worth less afterwards:
                            // k / shares^2 never decreases.
                            let s_before = BigUint::from(before.shares_total());
                            let s_after = BigUint::from(pool.shares_total());
                            prop_assert!(k(&pool) * &s_before * &s_before >= k(&before) * &s_after * &s_after);
                        }
                    }
                }
            }
            prop_assert!(pool.shares_total() >= MINIMUM_LIQUIDITY);
            prop_assert!(pool.reserves().iter().all(|r| *r > 0));
        }
    }

    #[test]
    fn add_then_remove_never_returns_more(
        reserves in (reserve(), reserve()),
        fee_bps in fee_bps(),
        swaps in prop::collection::vec((any::<bool>(), amount()), 0..5),
        desired in (amount(), amount()),
    ) {
        let (mut pool, _) = pool("p", (asset("usd"), reserves.0), (asset("usdc"), reserves.1), fee_bps);
        let [a, b] = pool.assets();
        for (first_in, amount) in swaps {
            let _ = swap_in(&mut pool, if first_in { a } else { b }, amount);
        }
        let Ok(LiquidityReceipt { amounts: put_in, shares, .. }) = add(&mut pool, [desired.0, desired.1]) else {
            return Ok(());
        };
        prop_assert!(put_in[0].amount <= desired.0 && put_in[1].amount <= desired.1);
        match remove(&mut pool, shares) {
            Ok(receipt) => {
                prop_assert_eq!(receipt.shares, shares);
                for side in 0..2 {
                    prop_assert!(receipt.amounts[side].amount <= put_in[side].amount,
                        "got back {:?} for {:?}", receipt.amounts, put_in);
                }
            }
            // Too few shares to pay out one unit of each asset: nothing back.
            Err(error) => prop_assert_eq!(error, AmmError::InsufficientLiquidityBurned),
        }
    }

    #[test]
    fn the_minimum_liquidity_is_never_burned(
        reserves in (reserve(), reserve()),
        extra in 1..1_000u128,
    ) {
        let (mut pool, receipt) = pool("p", (asset("ugx"), reserves.0), (asset("mtt"), reserves.1), 30);
        prop_assert_eq!(receipt.shares + MINIMUM_LIQUIDITY, pool.shares_total());
        let refused = remove(&mut pool, receipt.shares + extra);
        prop_assert!(
            matches!(refused, Err(AmmError::BurnExceedsUnlockedShares { .. })),
            "refused: {:?}", refused
        );
        if remove(&mut pool, receipt.shares).is_ok() {
            prop_assert_eq!(pool.shares_total(), MINIMUM_LIQUIDITY);
            prop_assert!(pool.reserves().iter().all(|r| *r > 0));
        }
    }
}
