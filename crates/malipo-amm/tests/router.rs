//! The router by hand: paths, splits, price impact, minimums, atomicity.

mod common;

use common::{asset, no_deadline, pool};
use malipo_amm::curve::amount_out;
use malipo_amm::{
    Deadline, Movement, Party, RouteError, RouteRequest, Unit, Venue, VenueId, Venues,
};
use malipo_core::Asset;

/// A pool by id, its two deposits (asset code, amount) and its fee.
type PoolSpec<'a> = (&'a str, (&'a str, u128), (&'a str, u128), u16);

fn venues(pools: &[PoolSpec]) -> Venues {
    Venues::new(
        pools
            .iter()
            .map(|(id, a, b, fee)| {
                Venue::from(pool(id, (asset(a.0), a.1), (asset(b.0), b.1), *fee).0)
            })
            .collect(),
    )
    .expect("valid venues")
}

fn request(from: &str, to: &str, amount_in: u128, split: bool) -> RouteRequest {
    RouteRequest {
        asset_in: asset(from),
        asset_out: asset(to),
        amount_in,
        min_amount_out: 0,
        max_hops: 3,
        split,
    }
}

fn venue_ids(route: &malipo_amm::Route) -> Vec<Vec<String>> {
    route
        .parts
        .iter()
        .map(|part| part.hops.iter().map(|hop| hop.venue.0.clone()).collect())
        .collect()
}

#[test]
fn two_deep_hops_beat_a_thin_direct_pool() {
    let venues = venues(&[
        ("kes_usd", ("kes", 100_000), ("usd", 100_000), 30),
        ("kes_usdc", ("kes", 100_000_000), ("usdc", 100_000_000), 30),
        ("usd_usdc", ("usd", 100_000_000), ("usdc", 100_000_000), 30),
    ]);
    let route = venues
        .quote(&request("kes", "usd", 10_000, false))
        .expect("route");
    assert_eq!(venue_ids(&route), [["kes_usdc", "usd_usdc"]]);
    let middle = amount_out(10_000, 100_000_000, 100_000_000, 30).expect("hop");
    let expected = amount_out(middle, 100_000_000, 100_000_000, 30).expect("hop");
    assert_eq!(route.amount_out, expected);
    assert_eq!(route.parts[0].hops[0].amount_out, middle);
    assert!(route.amount_out > amount_out(10_000, 100_000, 100_000, 30).expect("direct"));
    assert_eq!(route.paths_considered, 2);
}

#[test]
fn splits_across_parallel_pools_at_the_best_point() {
    let venues = venues(&[
        ("a", ("kes", 1_000_000), ("usd", 1_000_000), 30),
        ("b", ("kes", 2_000_000), ("usd", 2_000_000), 30),
    ]);
    let amount_in = 30_000;
    let single = venues
        .quote(&request("kes", "usd", amount_in, false))
        .expect("route");
    assert_eq!(venue_ids(&single), [["b"]]);
    let split = venues
        .quote(&request("kes", "usd", amount_in, true))
        .expect("route");
    assert_eq!(split.parts.len(), 2);
    assert!(split.amount_out > single.amount_out);
    // The best split by brute force over every integer split.
    let best = (1..amount_in)
        .map(|x| {
            amount_out(x, 2_000_000, 2_000_000, 30).expect("b")
                + amount_out(amount_in - x, 1_000_000, 1_000_000, 30).expect("a")
        })
        .max()
        .expect("some");
    assert_eq!(split.amount_out, best);
    // About two thirds through the pool twice as deep (the integer outputs
    // are flat around the optimum, so any point of the flat top will do).
    let through_b = split
        .parts
        .iter()
        .find(|p| p.hops[0].venue.0 == "b")
        .expect("b");
    assert!(
        (19_500..=20_500).contains(&through_b.amount_in),
        "{}",
        through_b.amount_in
    );
}

#[test]
fn price_impact_is_the_shortfall_against_the_mid_price() {
    let no_fee = venues(&[("p", ("kes", 1_000_000), ("usd", 1_000_000), 0)]);
    // 1000 * 10^6 / 1001000 = 999.0…: 1 short of 1000 is 10 bps.
    let route = no_fee
        .quote(&request("kes", "usd", 1_000, false))
        .expect("route");
    assert_eq!((route.amount_out, route.price_impact_bps), (999, 10));
    let with_fee = venues(&[("p", ("kes", 1_000_000), ("usd", 1_000_000), 30)]);
    let route = with_fee
        .quote(&request("kes", "usd", 1_000, false))
        .expect("route");
    assert_eq!((route.amount_out, route.price_impact_bps), (996, 40));
    // At a price of 4 usd per kes: 1000 kes would ideally give 4000 usd.
    let priced = venues(&[("p", ("kes", 1_000_000), ("usd", 4_000_000), 0)]);
    let route = priced
        .quote(&request("kes", "usd", 1_000, false))
        .expect("route");
    // 1000 * 4 * 10^6 / 1001000 = 3996.003… -> 3996, 4 short of 4000: 10 bps.
    assert_eq!((route.amount_out, route.price_impact_bps), (3_996, 10));
}

#[test]
fn refuses_what_it_cannot_route() {
    let venues = venues(&[
        ("ab", ("kes", 1_000_000), ("usd", 1_000_000), 30),
        ("bc", ("usd", 1_000_000), ("eur", 1_000_000), 30),
        ("cd", ("eur", 1_000_000), ("gbp", 1_000_000), 30),
        ("de", ("gbp", 1_000_000), ("zar", 1_000_000), 30),
    ]);
    let (kes, zar, gbp) = (asset("kes"), asset("zar"), asset("gbp"));
    assert_eq!(
        venues.quote(&request("kes", "zar", 1_000, true)),
        Err(RouteError::NoRoute { from: kes, to: zar })
    );
    assert!(venues.quote(&request("kes", "gbp", 1_000, true)).is_ok());
    let btc: Asset = asset("btc");
    assert_eq!(
        venues.quote(&request("kes", "btc", 1_000, true)),
        Err(RouteError::NoRoute { from: kes, to: btc })
    );
    assert_eq!(
        venues.quote(&request("kes", "kes", 1, true)),
        Err(RouteError::SameAsset)
    );
    assert_eq!(
        venues.quote(&request("kes", "usd", 0, true)),
        Err(RouteError::ZeroAmount)
    );
    assert_eq!(
        venues.quote(&RouteRequest {
            max_hops: 4,
            ..request("kes", "gbp", 1, true)
        }),
        Err(RouteError::HopsOutOfRange {
            requested: 4,
            max: 3
        })
    );
    // Too small to buy anything anywhere.
    assert_eq!(
        venues.quote(&request("kes", "usd", 1, true)),
        Err(RouteError::NoRoute {
            from: kes,
            to: asset("usd")
        })
    );
    let _ = gbp;
    let quoted = venues
        .quote(&request("kes", "usd", 1_000, false))
        .expect("route");
    assert_eq!(
        venues.quote(&RouteRequest {
            min_amount_out: 997,
            ..request("kes", "usd", 1_000, false)
        }),
        Err(RouteError::Slippage {
            minimum: 997,
            expected: quoted.amount_out
        })
    );
    let duplicate = pool("ab", (kes, 10_000), (zar, 10_000), 30).0;
    let mut list: Vec<Venue> = venues.venues().to_vec();
    list.push(duplicate.into());
    assert_eq!(
        Venues::new(list).map(|_| ()),
        Err(RouteError::DuplicateVenue(VenueId("ab".into())))
    );
}

#[test]
fn executes_all_legs_with_their_movements() {
    let mut venues = venues(&[
        ("kes_usdc", ("kes", 100_000_000), ("usdc", 100_000_000), 30),
        ("usd_usdc", ("usd", 100_000_000), ("usdc", 100_000_000), 30),
    ]);
    let route = venues
        .quote(&request("kes", "usd", 10_000, true))
        .expect("route");
    let middle = route.parts[0].hops[0].amount_out;
    let execution = venues
        .execute(&route, route.amount_out, "cus_1", no_deadline())
        .expect("executes");
    assert_eq!(execution.amount_out, route.amount_out);
    assert_eq!(execution.parts, route.parts);
    let trader = Party::Owner("cus_1".into());
    let first = Party::Pool(VenueId("kes_usdc".into()));
    let second = Party::Pool(VenueId("usd_usdc".into()));
    let movement = |from: &Party, to: &Party, code, amount| Movement {
        from: from.clone(),
        to: to.clone(),
        unit: Unit::Asset(asset(code)),
        amount,
    };
    assert_eq!(
        execution.movements,
        [
            movement(&trader, &first, "kes", 10_000),
            movement(&first, &second, "usdc", middle),
            movement(&second, &trader, "usd", route.amount_out),
        ]
    );
    let Some(Venue::Pool(pool)) = venues.get(&VenueId("kes_usdc".into())) else {
        panic!("the pool is there");
    };
    assert_eq!(pool.reserve_of(asset("kes")), Ok(100_010_000));
    // The same route again now gives less: the first trade moved the price.
    let again = venues
        .execute(&route, 0, "cus_1", no_deadline())
        .expect("executes");
    assert!(again.amount_out < route.amount_out);
}

#[test]
fn a_refused_execution_changes_nothing() {
    let mut venues = venues(&[
        ("a", ("kes", 1_000_000), ("usd", 1_000_000), 30),
        ("b", ("kes", 2_000_000), ("usd", 2_000_000), 30),
    ]);
    let before = venues.venues().to_vec();
    let route = venues
        .quote(&request("kes", "usd", 30_000, true))
        .expect("route");
    assert_eq!(route.parts.len(), 2);
    assert_eq!(
        venues.execute(&route, route.amount_out + 1, "t", no_deadline()),
        Err(RouteError::Slippage {
            minimum: route.amount_out + 1,
            expected: route.amount_out
        })
    );
    assert_eq!(venues.venues(), before.as_slice());
    // The second part names a venue that is not there: the first part,
    // already applied to a copy, is dropped with it.
    let mut broken = route.clone();
    broken.parts[1].hops[0].venue = VenueId("gone".into());
    assert_eq!(
        venues.execute(&broken, 0, "t", no_deadline()),
        Err(RouteError::UnknownVenue(VenueId("gone".into())))
    );
    assert_eq!(venues.venues(), before.as_slice());
    let late = Deadline {
        now_ms: 10,
        deadline_ms: 9,
    };
    assert_eq!(
        venues.execute(&route, 0, "t", late),
        Err(RouteError::Expired {
            deadline_ms: 9,
            now_ms: 10
        })
    );
    let mut reused = route.clone();
    reused.parts[1].hops[0].venue = reused.parts[0].hops[0].venue.clone();
    assert_eq!(
        venues.execute(&reused, 0, "t", no_deadline()),
        Err(RouteError::MalformedRoute)
    );
    assert_eq!(venues.venues(), before.as_slice());
}
