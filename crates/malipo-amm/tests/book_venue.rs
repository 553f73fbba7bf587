//! Order books as router venues, against the real matching engine: a book
//! snapshot's quote is exactly what the engine fills for a market IOC order
//! of the same input, and on random sets of pools and books the router's
//! output is exactly what executing its legs one by one gives (pools by
//! their own swaps, books by orders on the engines).

mod common;

use std::collections::HashMap;

use common::{asset, no_deadline, pool, swap_in};
use malipo_amm::{
    Book, HOPS_MAX, Movement, NewBook, Party, Pool, RestingOrder, Route, RouteError, RouteRequest,
    Unit, Venue, VenueId, Venues,
};
use malipo_core::Asset;
use malipo_matching::{
    Command, Engine, Event, NewOrder, OrderId, OrderKind, OwnerId, PairConfig, PairStatus,
    SelfTradePrevention, Side, TimeInForce,
};
use proptest::prelude::*;

const CODES: [&str; 4] = ["kes", "usd", "eth", "usdc"];

/// The taker of every test order; resting orders belong to others.
const TAKER: OwnerId = OwnerId(0);

#[derive(Debug, Clone)]
struct BookSpec {
    base: usize,
    quote_offset: usize,
    lot: u64,
    tick: u64,
    taker_fee_bps: u16,
    /// The middle price in ticks.
    mid_ticks: u64,
    /// (ticks below or above the middle, lots) per order.
    bids: Vec<(u64, u64)>,
    asks: Vec<(u64, u64)>,
}

fn book_spec() -> impl Strategy<Value = BookSpec> {
    let orders = prop::collection::vec((1..12u64, 1..500u64), 0..25);
    (
        0..CODES.len(),
        1..CODES.len(),
        prop_oneof![Just(1u64), Just(10), Just(1_000)],
        prop_oneof![Just(1u64), Just(5)],
        prop_oneof![Just(0u16), Just(7), Just(25), Just(100), Just(10_000)],
        20..100_000u64,
        orders.clone(),
        orders,
    )
        .prop_map(
            |(base, quote_offset, lot, tick, taker_fee_bps, mid_ticks, bids, asks)| BookSpec {
                base,
                quote_offset,
                lot,
                tick,
                taker_fee_bps,
                mid_ticks,
                bids,
                asks,
            },
        )
}

/// A book venue's id, its assets and its engine.
struct LiveBook {
    id: VenueId,
    base: Asset,
    quote: Asset,
    engine: Engine,
    next_id: u64,
}

impl LiveBook {
    fn new(index: usize, spec: &BookSpec) -> LiveBook {
        let mut engine = Engine::new(PairConfig {
            tick_size: spec.tick,
            lot_size: spec.lot,
            min_notional: 0,
            maker_fee_bps: 3,
            taker_fee_bps: spec.taker_fee_bps,
            status: PairStatus::Active,
            open_orders_max: 10_000,
        })
        .expect("a valid config");
        let mut next_id = 1;
        for (side, orders) in [(Side::Buy, &spec.bids), (Side::Sell, &spec.asks)] {
            for &(distance, lots) in orders {
                let ticks = match side {
                    Side::Buy => spec.mid_ticks - distance.min(spec.mid_ticks - 1),
                    Side::Sell => spec.mid_ticks + distance,
                };
                engine
                    .apply(&Command::Place(NewOrder {
                        id: OrderId(next_id),
                        owner: OwnerId(next_id),
                        side,
                        kind: OrderKind::Limit {
                            price: ticks * spec.tick,
                        },
                        quantity: lots * spec.lot,
                        time_in_force: TimeInForce::Gtc,
                        self_trade: SelfTradePrevention::CancelTaker,
                    }))
                    .expect("a resting order");
                next_id += 1;
            }
        }
        LiveBook {
            id: VenueId(format!("book_{index}")),
            base: asset(CODES[spec.base]),
            quote: asset(CODES[(spec.base + spec.quote_offset) % CODES.len()]),
            engine,
            next_id,
        }
    }

    /// The venue the router sees: the engine's resting orders as they stand.
    fn snapshot(&self) -> Book {
        let side = |side| {
            self.engine
                .resting_in_priority(side)
                .map(|order| RestingOrder {
                    price: order.price.expect("resting orders have a price"),
                    quantity: order.quantity,
                })
                .collect()
        };
        let config = self.engine.config();
        Book::new(NewBook {
            id: self.id.clone(),
            base: self.base,
            quote: self.quote,
            tick_size: config.tick_size,
            lot_size: config.lot_size,
            taker_fee_bps: config.taker_fee_bps,
            bids: side(Side::Buy),
            asks: side(Side::Sell),
        })
        .expect("an engine's book is a valid snapshot")
    }

    /// A market IOC order of the taker: what it spent and got, from the
    /// engine's fills.
    fn take(&mut self, side: Side, quantity: u64) -> (u128, u128) {
        let id = self.next_id;
        self.next_id += 1;
        let events = self
            .engine
            .apply(&Command::Place(NewOrder {
                id: OrderId(id),
                owner: TAKER,
                side,
                kind: OrderKind::Market,
                quantity,
                time_in_force: TimeInForce::Ioc,
                self_trade: SelfTradePrevention::CancelTaker,
            }))
            .expect("the engine takes the order");
        let (mut spent, mut got) = (0u128, 0u128);
        for event in events {
            if let Event::Fill(fill) = event {
                assert_eq!(fill.taker, OrderId(id));
                match side {
                    Side::Sell => {
                        spent += u128::from(fill.quantity);
                        got += fill.notional - fill.taker_fee;
                    }
                    Side::Buy => {
                        spent += fill.notional + fill.taker_fee;
                        got += u128::from(fill.quantity);
                    }
                }
            }
        }
        (spent, got)
    }

    /// Offers `amount` of `asset_in` as the gateway does: the order's
    /// quantity from the snapshot's quote, then the engine's fills.
    fn offer(&mut self, asset_in: Asset, amount: u128) -> (u128, u128) {
        let trade = self
            .snapshot()
            .quote_exact_in(asset_in, amount)
            .expect("the leg was quoted");
        let side = if asset_in == self.base {
            Side::Sell
        } else {
            Side::Buy
        };
        self.take(side, trade.quantity)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_book_quotes_what_the_engine_fills(
        spec in book_spec(),
        amount in prop_oneof![1..1_000u128, 1..100_000_000u128, 1..1_000_000_000_000u128],
        sell in any::<bool>(),
    ) {
        let mut live = LiveBook::new(0, &spec);
        let snapshot = live.snapshot();
        let (asset_in, side) = if sell { (live.base, Side::Sell) } else { (live.quote, Side::Buy) };
        let quoted = match snapshot.quote_exact_in(asset_in, amount) {
            Ok(trade) => trade,
            Err(_) => {
                // Refused: one lot gives nothing or costs more than offered.
                let (spent, got) = live.take(side, spec.lot);
                prop_assert!(got == 0 || spent > amount, "refused, but one lot gives {} for {}", got, spent);
                return Ok(());
            }
        };
        prop_assert!(quoted.amount_spent <= amount);
        prop_assert_eq!(u128::from(quoted.quantity) % u128::from(spec.lot), 0);
        let mut trying_more = LiveBook::new(0, &spec);
        let (spent, got) = live.take(side, quoted.quantity);
        prop_assert_eq!((spent, got), (quoted.amount_spent, quoted.amount_out));

        // The most the input allows: one more lot is beyond it or the book.
        let (more_spent, more_got) = trying_more.take(side, quoted.quantity + spec.lot);
        let more_quantity = if sell { more_spent } else { more_got };
        prop_assert!(
            more_spent > amount || more_quantity == u128::from(quoted.quantity),
            "one more lot costs {} of {} offered", more_spent, amount
        );

        // Applying the quote leaves the snapshot the engine now has.
        let mut applied = snapshot.clone();
        let trade = applied.apply_exact_in(asset_in, amount).expect("applies");
        prop_assert_eq!(trade, quoted);
        prop_assert_eq!(applied, live.snapshot());
    }
}

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
        (10_000..100_000_000u128, 10_000..100_000_000u128),
        prop_oneof![Just(0u16), Just(30), Just(100)],
    )
        .prop_map(|(a, b_offset, reserves, fee_bps)| PoolSpec {
            a,
            b_offset,
            reserves,
            fee_bps,
        })
}

fn build_pool(index: usize, spec: &PoolSpec) -> Pool {
    let a = asset(CODES[spec.a]);
    let b = asset(CODES[(spec.a + spec.b_offset) % CODES.len()]);
    pool(
        &format!("pool_{index}"),
        (a, spec.reserves.0),
        (b, spec.reserves.1),
        spec.fee_bps,
    )
    .0
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

/// Runs the route leg by leg: pools with their own swaps, books with market
/// IOC orders on their engines.
fn execute_by_hand(pools: &[Pool], books: &mut [LiveBook], route: &Route) -> u128 {
    let mut pools: HashMap<VenueId, Pool> =
        pools.iter().map(|p| (p.id().clone(), p.clone())).collect();
    let mut total = 0;
    for part in &route.parts {
        let mut amount = part.amount_in;
        for hop in &part.hops {
            assert_eq!(hop.amount_in, amount);
            let (spent, got) = if let Some(pool) = pools.get_mut(&hop.venue) {
                let receipt = swap_in(pool, hop.asset_in, amount).expect("each leg executes");
                (receipt.paid.amount, receipt.received.amount)
            } else {
                let book = books
                    .iter_mut()
                    .find(|book| book.id == hop.venue)
                    .expect("a known venue");
                book.offer(hop.asset_in, amount)
            };
            assert_eq!(spent, hop.amount_in - hop.amount_unspent);
            assert_eq!(got, hop.amount_out);
            amount = got;
        }
        assert_eq!(amount, part.amount_out);
        total += amount;
    }
    total
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn routes_over_pools_and_books_are_their_legs(
        pool_specs in prop::collection::vec(pool_spec(), 0..5),
        book_specs in prop::collection::vec(book_spec(), 1..5),
        from in 0..CODES.len(),
        to_offset in 1..CODES.len(),
        amount_in in prop_oneof![1..100_000u128, 1..10_000_000_000u128],
        split in any::<bool>(),
    ) {
        let pools: Vec<Pool> = pool_specs.iter().enumerate().map(|(i, s)| build_pool(i, s)).collect();
        let mut books: Vec<LiveBook> = book_specs.iter().enumerate().map(|(i, s)| LiveBook::new(i, s)).collect();
        let venues: Vec<Venue> = pools
            .iter()
            .cloned()
            .map(Venue::from)
            .chain(books.iter().map(|book| Venue::from(book.snapshot())))
            .collect();
        let venues = Venues::new(venues).expect("venues");
        let (asset_in, asset_out) = (asset(CODES[from]), asset(CODES[(from + to_offset) % CODES.len()]));
        let request = RouteRequest { asset_in, asset_out, amount_in, min_amount_out: 0, max_hops: HOPS_MAX, split };
        let route = match venues.quote(&request) {
            Err(RouteError::NoRoute { .. }) => return Ok(()),
            other => other.expect("a route"),
        };
        prop_assert!(route.price_impact_bps <= 10_000);

        // Atomic: one unit above the quote is refused and changes nothing.
        let mut refused = venues.clone();
        let too_much = refused.execute(&route, route.amount_out + 1, "t", no_deadline());
        prop_assert!(matches!(too_much, Err(RouteError::Slippage { .. })), "refused: {:?}", too_much);
        prop_assert_eq!(refused.venues(), venues.venues());

        // Executed by the router: the quote, and the trader's flows.
        let mut executed = venues.clone();
        let execution = executed.execute(&route, route.amount_out, "t", no_deadline()).expect("executes");
        prop_assert_eq!(execution.amount_out, route.amount_out);
        prop_assert_eq!(&execution.parts, &route.parts);
        let flows = net(&execution.movements);
        let trader = Party::Owner("t".into());
        let first_unspent: u128 = route.parts.iter().map(|part| part.hops[0].amount_unspent).sum();
        prop_assert_eq!(
            flows.get(&(trader.clone(), Unit::Asset(asset_in))).copied().unwrap_or(0),
            -i128::try_from(amount_in - first_unspent).expect("fits")
        );
        prop_assert_eq!(
            flows.get(&(trader, Unit::Asset(asset_out))).copied().unwrap_or(0),
            i128::try_from(route.amount_out).expect("fits")
        );

        // Leg by leg, books on their engines: exactly the quote, and the
        // router's books end as the engines do.
        prop_assert_eq!(execute_by_hand(&pools, &mut books, &route), route.amount_out);
        for book in &books {
            let Some(Venue::Book(after)) = executed.get(&book.id) else { unreachable!() };
            prop_assert_eq!(after, &book.snapshot());
        }
    }
}
