//! Random pool graphs and random trades: the router's quote is exactly what
//! executing its legs gives, beats every single path, and its execution is
//! all or nothing and conserves value.

mod common;

use std::collections::HashMap;

use common::{asset, no_deadline, pool, swap_in};
use malipo_amm::{
    HOPS_MAX, Movement, Party, Pool, Route, RouteError, RouteRequest, Unit, Venue, VenueId, Venues,
};
use malipo_core::Asset;
use proptest::prelude::*;

const CODES: [&str; 5] = ["kes", "usd", "eth", "usdc", "mtt"];

#[derive(Debug, Clone)]
struct PoolSpec {
    a: usize,
    b_offset: usize,
    reserves: (u128, u128),
    fee_bps: u16,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        0..CODES.len(),
        1..CODES.len(),
        (
            prop_oneof![
                10_000..10_000_000u128,
                10_000..1_000_000_000_000_000_000_000u128
            ],
            prop_oneof![
                10_000..10_000_000u128,
                10_000..1_000_000_000_000_000_000_000u128
            ],
        ),
        prop_oneof![Just(0u16), Just(5), Just(30), Just(100)],
    )
        .prop_map(|(a, b_offset, reserves, fee_bps)| PoolSpec {
            a,
            b_offset,
            reserves,
            fee_bps,
        })
}

fn build(specs: &[PoolSpec]) -> Vec<Pool> {
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let a = asset(CODES[spec.a]);
            let b = asset(CODES[(spec.a + spec.b_offset) % CODES.len()]);
            pool(
                &format!("pool_{index}"),
                (a, spec.reserves.0),
                (b, spec.reserves.1),
                spec.fee_bps,
            )
            .0
        })
        .collect()
}

/// Every simple path (no asset twice) of up to three hops, by brute force,
/// with what it gives: the reference the router must beat.
fn every_single_path(pools: &[Pool], from: Asset, to: Asset, amount_in: u128) -> Vec<u128> {
    fn walk(
        pools: &[Pool],
        at: Asset,
        to: Asset,
        amount: u128,
        seen: &mut Vec<Asset>,
        hops: usize,
        out: &mut Vec<u128>,
    ) {
        if hops == HOPS_MAX {
            return;
        }
        for pool in pools {
            let Ok(next) = pool.other_asset(at) else {
                continue;
            };
            if seen.contains(&next) {
                continue;
            }
            let Ok(got) = pool.quote_exact_in(at, amount) else {
                continue;
            };
            if got == 0 {
                continue;
            }
            if next == to {
                out.push(got);
            } else {
                seen.push(next);
                walk(pools, next, to, got, seen, hops + 1, out);
                seen.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(pools, from, to, amount_in, &mut vec![from], 0, &mut out);
    out
}

/// Runs the route leg by leg with the pools' own public swap, on copies.
fn execute_by_hand(pools: &[Pool], route: &Route) -> u128 {
    let mut copies: HashMap<VenueId, Pool> =
        pools.iter().map(|p| (p.id().clone(), p.clone())).collect();
    let mut total = 0;
    for part in &route.parts {
        let mut amount = part.amount_in;
        for hop in &part.hops {
            let pool = copies.get_mut(&hop.venue).expect("a known pool");
            let receipt = swap_in(pool, hop.asset_in, amount).expect("each leg executes");
            assert_eq!(receipt.paid.amount, hop.amount_in);
            assert_eq!(receipt.received.amount, hop.amount_out);
            amount = receipt.received.amount;
        }
        assert_eq!(amount, part.amount_out);
        total += amount;
    }
    total
}

/// Per party and unit, what the movements add up to.
fn net(movements: &[Movement]) -> HashMap<(Party, Unit), i128> {
    let mut net = HashMap::new();
    for movement in movements {
        let amount = i128::try_from(movement.amount).expect("fits");
        *net.entry((movement.from.clone(), movement.unit.clone()))
            .or_insert(0) -= amount;
        *net.entry((movement.to.clone(), movement.unit.clone()))
            .or_insert(0) += amount;
    }
    net
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn routes_are_exact_best_and_atomic(
        specs in prop::collection::vec(pool_spec(), 1..12),
        from in 0..CODES.len(),
        to_offset in 1..CODES.len(),
        amount_in in prop_oneof![1..1_000_000u128, 1..1_000_000_000_000_000_000u128],
        split in any::<bool>(),
    ) {
        let pools = build(&specs);
        let venues = Venues::new(pools.iter().cloned().map(Venue::from).collect()).expect("venues");
        let (asset_in, asset_out) = (asset(CODES[from]), asset(CODES[(from + to_offset) % CODES.len()]));
        let request = RouteRequest { asset_in, asset_out, amount_in, min_amount_out: 0, max_hops: HOPS_MAX, split };
        let singles = every_single_path(&pools, asset_in, asset_out, amount_in);
        let route = match venues.quote(&request) {
            Err(RouteError::NoRoute { .. }) => {
                prop_assert!(singles.is_empty(), "no route, but paths give {:?}", singles);
                return Ok(());
            }
            other => other.expect("a route"),
        };

        // At least every single path, and exactly the best one without a split.
        let best_single = singles.iter().copied().max().unwrap_or(0);
        prop_assert!(route.amount_out >= best_single);
        if !split {
            prop_assert_eq!(route.amount_out, best_single);
            prop_assert_eq!(route.paths_considered, singles.len());
        }
        prop_assert_eq!(route.parts.iter().map(|p| p.amount_in).sum::<u128>(), amount_in);
        prop_assert!(route.price_impact_bps <= 10_000);

        // Leg by leg with the pools' own swaps: exactly the quote.
        prop_assert_eq!(execute_by_hand(&pools, &route), route.amount_out);

        // Atomic: one unit above the quote is refused and changes nothing.
        let mut refused = venues.clone();
        let too_much = refused.execute(&route, route.amount_out + 1, "t", no_deadline());
        prop_assert!(
            matches!(too_much, Err(RouteError::Slippage { .. })),
            "refused: {:?}", too_much
        );
        prop_assert_eq!(refused.venues(), venues.venues());

        // Executed for real: the quote, and value conserved.
        let mut executed = venues.clone();
        let execution = executed.execute(&route, route.amount_out, "t", no_deadline()).expect("executes");
        prop_assert_eq!(execution.amount_out, route.amount_out);
        let flows = net(&execution.movements);
        let trader = Party::Owner("t".into());
        prop_assert_eq!(flows.get(&(trader.clone(), Unit::Asset(asset_in))).copied(), Some(-i128::try_from(amount_in).expect("fits")));
        prop_assert_eq!(flows.get(&(trader, Unit::Asset(asset_out))).copied(), Some(i128::try_from(route.amount_out).expect("fits")));
        for (before, after) in venues.venues().iter().zip(executed.venues()) {
            let (Venue::Pool(before), Venue::Pool(after)) = (before, after) else { unreachable!() };
            for (side, asset) in before.assets().into_iter().enumerate() {
                let change = i128::try_from(after.reserves()[side]).expect("fits")
                    - i128::try_from(before.reserves()[side]).expect("fits");
                let moved = flows.get(&(Party::Pool(before.id().clone()), Unit::Asset(asset))).copied().unwrap_or(0);
                prop_assert_eq!(change, moved, "pool {} asset {}", before.id(), asset);
            }
        }
    }
}
