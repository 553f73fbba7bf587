//! Hand-computed vectors, most from Uniswap v2's own tests (fee 30 bps:
//! their `997 / 1000` is our `9970 / 10000`).

mod common;

use common::{NOW_MS, add, amount, asset, no_deadline, pool, remove, swap_in};
use malipo_amm::curve::{amount_in, amount_out};
use malipo_amm::{
    AmmError, Deadline, MINIMUM_LIQUIDITY, Movement, NewPool, Party, Pool, RemoveLiquidity,
    SwapExactIn, SwapExactOut, Unit, VenueId,
};

const E18: u128 = 1_000_000_000_000_000_000;

#[test]
fn router_library_get_amount_out_and_in() {
    // UniswapV2Router02's getAmountOut(2, 100, 100) = 1, getAmountIn(1, 100, 100) = 2.
    assert_eq!(amount_out(2, 100, 100, 30), Ok(1));
    assert_eq!(amount_in(1, 100, 100, 30), Ok(2));
    assert_eq!(amount_out(0, 100, 100, 30), Err(AmmError::ZeroAmount));
    assert_eq!(
        amount_out(2, 0, 100, 30),
        Err(AmmError::InsufficientLiquidity)
    );
    assert_eq!(
        amount_in(100, 100, 100, 30),
        Err(AmmError::InsufficientLiquidity)
    );
}

#[test]
fn pair_swap_test_cases() {
    // UniswapV2Pair.spec.ts "getInputPrice": [swap, reserve in, reserve out, expected out].
    let cases: [(u128, u128, u128, u128); 7] = [
        (1, 5, 10, 1_662_497_915_624_478_906),
        (1, 10, 5, 453_305_446_940_074_565),
        (2, 5, 10, 2_851_015_155_847_869_602),
        (2, 10, 5, 831_248_957_812_239_453),
        (1, 10, 10, 906_610_893_880_149_131),
        (1, 100, 100, 987_158_034_397_061_298),
        (1, 1000, 1000, 996_006_981_039_903_216),
    ];
    for (swap, reserve_in, reserve_out, expected) in cases {
        assert_eq!(
            amount_out(swap * E18, reserve_in * E18, reserve_out * E18, 30),
            Ok(expected),
            "{swap} into {reserve_in}/{reserve_out}"
        );
        // The exact-output direction is its inverse: the least input that
        // buys `expected`, and one unit less buys less.
        let needed = amount_in(expected, reserve_in * E18, reserve_out * E18, 30).expect("fits");
        assert!(needed <= swap * E18);
        assert!(
            amount_out(needed, reserve_in * E18, reserve_out * E18, 30).expect("fits") >= expected
        );
        assert!(
            amount_out(needed - 1, reserve_in * E18, reserve_out * E18, 30).expect("fits")
                < expected
        );
    }
}

#[test]
fn small_pool_by_hand() {
    // 1000 * 9970 * 10^6 / (10^6 * 10^4 + 1000 * 9970) = 996.006… -> 996.
    assert_eq!(amount_out(1_000, 1_000_000, 1_000_000, 30), Ok(996));
    // Without a fee: 1000 * 10^6 / 1001000 = 999.000999… -> 999.
    assert_eq!(amount_out(1_000, 1_000_000, 1_000_000, 0), Ok(999));
    // 996 out needs 10^6 * 996 * 10^4 / (999004 * 9970) = 999.99… -> 1000.
    assert_eq!(amount_in(996, 1_000_000, 1_000_000, 30), Ok(1_000));
}

#[test]
fn first_mint_locks_the_minimum_liquidity() {
    // UniswapV2Pair.spec.ts "mint": 1 and 4 tokens give sqrt(4) = 2 shares.
    let (eth, usdc) = (asset("eth"), asset("usdc"));
    let (pool, receipt) = pool("p", (eth, E18), (usdc, 4 * E18), 30);
    assert_eq!(pool.shares_total(), 2 * E18);
    assert_eq!(receipt.shares, 2 * E18 - MINIMUM_LIQUIDITY);
    let id = VenueId("p".to_owned());
    assert_eq!(
        receipt.movements,
        vec![
            Movement {
                from: Party::Owner("founder".into()),
                to: Party::Pool(id.clone()),
                unit: Unit::Asset(eth),
                amount: E18
            },
            Movement {
                from: Party::Owner("founder".into()),
                to: Party::Pool(id.clone()),
                unit: Unit::Asset(usdc),
                amount: 4 * E18
            },
            Movement {
                from: Party::ShareIssuer(id.clone()),
                to: Party::LockedShares(id.clone()),
                unit: Unit::Shares(id.clone()),
                amount: MINIMUM_LIQUIDITY
            },
            Movement {
                from: Party::ShareIssuer(id.clone()),
                to: Party::Owner("founder".into()),
                unit: Unit::Shares(id),
                amount: 2 * E18 - MINIMUM_LIQUIDITY
            },
        ]
    );
}

#[test]
fn burning_everything_but_the_lock() {
    // UniswapV2Pair.spec.ts "burn": 3 and 3 tokens, burn all but 1000 shares.
    let (mut pool, receipt) = pool("p", (asset("eth"), 3 * E18), (asset("mtt"), 3 * E18), 30);
    let burned = remove(&mut pool, receipt.shares).expect("burn");
    assert_eq!(
        burned.amounts.map(|a| a.amount),
        [3 * E18 - 1000, 3 * E18 - 1000]
    );
    assert_eq!(pool.reserves(), [1000, 1000]);
    assert_eq!(pool.shares_total(), MINIMUM_LIQUIDITY);
    assert_eq!(
        remove(&mut pool, 1),
        Err(AmmError::BurnExceedsUnlockedShares {
            unlocked: 0,
            locked: MINIMUM_LIQUIDITY
        })
    );
}

#[test]
fn add_takes_only_the_pool_ratio() {
    let (kes, usd) = (asset("kes"), asset("usd"));
    let (mut pool, _) = pool("p", (kes, 1_000_000), (usd, 4_000_000), 30);
    assert_eq!(pool.shares_total(), 2_000_000);
    // 5000 usd offered with 1000 kes: only 4000 usd is taken.
    let receipt = add(&mut pool, [1_000, 5_000]).expect("add");
    assert_eq!(receipt.amounts, [amount(kes, 1_000), amount(usd, 4_000)]);
    assert_eq!(receipt.shares, 2_000);
    // The other way round: 3000 kes offered with 4000 usd, 1000 taken.
    let receipt = add(&mut pool, [3_000, 4_000]).expect("add");
    assert_eq!(receipt.amounts, [amount(kes, 1_000), amount(usd, 4_000)]);
    assert_eq!(pool.reserves(), [1_002_000, 4_008_000]);
    // Too little to mint one share.
    assert_eq!(add(&mut pool, [0, 1]), Err(AmmError::ZeroAmount));
    let mut tiny = pool.clone();
    assert_eq!(
        add(&mut tiny, [1, 1]),
        Err(AmmError::InsufficientLiquidityMinted)
    );
}

#[test]
fn create_refuses_bad_pools() {
    let (kes, usd) = (asset("kes"), asset("usd"));
    let new = |a: u128, b: u128, fee_bps: u16, second| NewPool {
        id: VenueId("p".into()),
        provider: "founder".into(),
        deposits: [amount(kes, a), amount(second, b)],
        fee_bps,
    };
    assert_eq!(
        Pool::create(new(1, 1, 30, kes)).map(|_| ()),
        Err(AmmError::SameAsset)
    );
    assert_eq!(
        Pool::create(new(0, 5_000, 30, usd)).map(|_| ()),
        Err(AmmError::ZeroAmount)
    );
    assert_eq!(
        Pool::create(new(10_000, 10_000, 1_001, usd)).map(|_| ()),
        Err(AmmError::FeeTooHigh {
            fee_bps: 1_001,
            max: 1_000
        })
    );
    assert_eq!(
        Pool::create(new(1_000, 1_000, 30, usd)).map(|_| ()),
        Err(AmmError::InsufficientInitialLiquidity {
            shares: 1_000,
            minimum: 1_000
        })
    );
    assert_eq!(
        Pool::create(new(1 << 112, 1_000_000, 30, usd)).map(|_| ()),
        Err(AmmError::Overflow)
    );
    // The order of the deposits does not matter: assets are kept sorted.
    let (pool, _) = Pool::create(new(1_000_000, 2_000_000, 30, usd)).expect("valid");
    assert_eq!(pool.assets(), [kes, usd]);
    let (flipped, _) = Pool::create(NewPool {
        deposits: [amount(usd, 2_000_000), amount(kes, 1_000_000)],
        ..new(0, 0, 30, usd)
    })
    .expect("valid");
    assert_eq!(flipped, pool);
}

#[test]
fn swaps_check_slippage_deadline_and_assets() {
    let (kes, usd, eth) = (asset("kes"), asset("usd"), asset("eth"));
    let (mut pool, _) = pool("p", (kes, 1_000_000), (usd, 1_000_000), 30);
    let before = pool.clone();
    let exact_in = |min_amount_out, deadline| SwapExactIn {
        trader: "t".into(),
        asset_in: kes,
        amount_in: 1_000,
        min_amount_out,
        deadline,
    };
    assert_eq!(
        pool.swap_exact_in(exact_in(997, no_deadline())),
        Err(AmmError::Slippage {
            asset: usd,
            minimum: 997,
            actual: 996
        })
    );
    let late = Deadline {
        now_ms: NOW_MS,
        deadline_ms: NOW_MS - 1,
    };
    assert_eq!(
        pool.swap_exact_in(exact_in(0, late)),
        Err(AmmError::Expired {
            deadline_ms: NOW_MS - 1,
            now_ms: NOW_MS
        })
    );
    assert_eq!(
        swap_in(&mut pool, eth, 1_000),
        Err(AmmError::AssetNotInPool(eth))
    );
    assert_eq!(swap_in(&mut pool, kes, 1), Err(AmmError::ZeroOutput));
    assert_eq!(pool, before, "refused swaps change nothing");

    let receipt = pool
        .swap_exact_in(exact_in(996, no_deadline()))
        .expect("swap");
    assert_eq!(receipt.received, amount(usd, 996));
    assert_eq!(pool.reserves(), [1_001_000, 999_004]);

    let exact_out = |max_amount_in| SwapExactOut {
        trader: "t".into(),
        asset_out: usd,
        amount_out: 996,
        max_amount_in,
        deadline: no_deadline(),
    };
    let needed = pool.quote_exact_out(usd, 996).expect("quote");
    assert_eq!(
        pool.swap_exact_out(exact_out(needed - 1)),
        Err(AmmError::ExcessiveInput {
            asset: kes,
            maximum: needed - 1,
            required: needed
        })
    );
    let receipt = pool.swap_exact_out(exact_out(needed)).expect("swap");
    assert_eq!(receipt.paid, amount(kes, needed));
    assert_eq!(receipt.received, amount(usd, 996));
}

#[test]
fn remove_checks_minimums_and_deadline() {
    let (kes, usd) = (asset("kes"), asset("usd"));
    let (mut pool, receipt) = pool("p", (kes, 1_000_000), (usd, 4_000_000), 30);
    let before = pool.clone();
    let request = |min_usd, deadline| RemoveLiquidity {
        provider: "founder".into(),
        shares: 1_000,
        minimum: [amount(usd, min_usd), amount(kes, 0)],
        deadline,
    };
    assert_eq!(
        pool.remove_liquidity(request(2_001, no_deadline())),
        Err(AmmError::Slippage {
            asset: usd,
            minimum: 2_001,
            actual: 2_000
        })
    );
    assert!(matches!(
        pool.remove_liquidity(request(
            0,
            Deadline {
                now_ms: 2,
                deadline_ms: 1
            }
        )),
        Err(AmmError::Expired { .. })
    ));
    assert_eq!(remove(&mut pool, 0), Err(AmmError::ZeroAmount));
    assert_eq!(
        remove(&mut pool, 1),
        Err(AmmError::InsufficientLiquidityBurned)
    );
    assert_eq!(pool, before);
    let paid = pool
        .remove_liquidity(request(2_000, no_deadline()))
        .expect("remove");
    assert_eq!(paid.amounts, [amount(kes, 500), amount(usd, 2_000)]);
    assert!(receipt.shares > 1_000);
}

#[test]
fn venue_ids_are_bounded() {
    let (kes, usd) = (asset("kes"), asset("usd"));
    for id in [
        String::new(),
        "p".repeat(malipo_amm::VENUE_ID_MAX_BYTES + 1),
    ] {
        let created = Pool::create(NewPool {
            id: VenueId(id),
            provider: "founder".into(),
            deposits: [amount(kes, 1_000_000), amount(usd, 1_000_000)],
            fee_bps: 30,
        });
        assert_eq!(created.map(|_| ()), Err(AmmError::InvalidVenueId));
    }
}

/// A pool rebuilt from its stored state (a database row) is the same pool;
/// a state `create` could never have made is refused.
#[test]
fn a_stored_pool_rebuilds_exactly() {
    let (kes, usd) = (asset("kes"), asset("usd"));
    let (mut made, _) = pool("p", (usd, 1_000_000), (kes, 4_000_000), 30);
    made.swap_exact_in(SwapExactIn {
        trader: "t".into(),
        asset_in: kes,
        amount_in: 10_000,
        min_amount_out: 0,
        deadline: no_deadline(),
    })
    .expect("swap");
    let rebuilt = Pool::from_state(
        VenueId("p".into()),
        made.assets(),
        made.reserves(),
        made.fee_bps(),
        made.shares_total(),
    )
    .expect("a valid state");
    assert_eq!(rebuilt, made);
    let id = || VenueId("p".into());
    assert_eq!(
        Pool::from_state(id(), [usd, kes], [1, 1], 30, 2_000),
        Err(AmmError::SameAsset),
        "assets out of canonical order"
    );
    assert_eq!(
        Pool::from_state(id(), [kes, usd], [0, 1], 30, 2_000),
        Err(AmmError::ZeroAmount)
    );
    assert!(matches!(
        Pool::from_state(id(), [kes, usd], [1, 1], 30, MINIMUM_LIQUIDITY),
        Err(AmmError::InsufficientInitialLiquidity { .. })
    ));
    assert!(matches!(
        Pool::from_state(id(), [kes, usd], [1, 1], 1_001, 2_000),
        Err(AmmError::FeeTooHigh { .. })
    ));
}
