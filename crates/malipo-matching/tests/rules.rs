//! The rules, one scenario each.

mod common;

use common::{config, limit, order};
use malipo_matching::{
    CancelReason, Command, ConfigError, DepthLevel, Engine, Event, NewOrder, OrderId, OrderKind,
    OwnerId, PairConfig, PairStatus, RejectReason, SelfTradePrevention, Side, TimeInForce,
};

const BUY: Side = Side::Buy;
const SELL: Side = Side::Sell;

/// The common pair with a minimum notional of one lot at 100.
fn engine() -> Engine {
    match Engine::new(PairConfig {
        min_notional: 100,
        ..config()
    }) {
        Ok(engine) => engine,
        Err(error) => panic!("{error}"),
    }
}

fn apply(engine: &mut Engine, command: Command) -> Vec<Event> {
    match engine.apply(&command) {
        Ok(events) => events,
        Err(reason) => panic!("{command:?} refused: {reason}"),
    }
}

fn refused(engine: &mut Engine, command: Command) -> RejectReason {
    let before = engine.clone();
    match engine.apply(&command) {
        Ok(events) => panic!("{command:?} accepted: {events:?}"),
        Err(reason) => {
            assert_eq!(*engine, before, "a refused command changed the engine");
            reason
        }
    }
}

/// (maker, taker, price, quantity) of each fill.
fn fills(events: &[Event]) -> Vec<(u64, u64, u64, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Fill(fill) => Some((fill.maker.0, fill.taker.0, fill.price, fill.quantity)),
            _ => None,
        })
        .collect()
}

fn cancelled(events: &[Event]) -> Vec<(u64, u64, CancelReason)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Cancelled {
                id,
                quantity,
                reason,
                ..
            } => Some((id.0, *quantity, *reason)),
            _ => None,
        })
        .collect()
}

fn buy_stop(id: u64, owner: u64, trigger: u64, quantity: u64) -> Command {
    order(
        id,
        owner,
        BUY,
        OrderKind::Stop { trigger },
        quantity,
        TimeInForce::Gtc,
    )
}

fn with_self_trade(command: Command, self_trade: SelfTradePrevention) -> Command {
    match command {
        Command::Place(order) => Command::Place(NewOrder {
            self_trade,
            ..order
        }),
        other => other,
    }
}

#[test]
fn better_prices_then_older_orders_fill_first() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 105, 30));
    apply(&mut engine, limit(2, 2, SELL, 100, 30));
    apply(&mut engine, limit(3, 3, SELL, 100, 30));
    let events = apply(&mut engine, limit(4, 4, BUY, 105, 80));
    assert_eq!(
        fills(&events),
        vec![(2, 4, 100, 30), (3, 4, 100, 30), (1, 4, 105, 20)]
    );
    assert_eq!(engine.best_ask(), Some((105, 10)));
    assert_eq!(engine.best_bid(), None);
    assert_eq!(engine.last_trade_price(), Some(105));
}

#[test]
fn a_limit_order_rests_what_it_cannot_fill_and_fees_round_up() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 95, 30));
    let events = apply(&mut engine, limit(2, 2, BUY, 100, 50));
    let Some(Event::Fill(fill)) = events.iter().find(|e| matches!(e, Event::Fill(_))) else {
        panic!("no fill: {events:?}");
    };
    // 3 lots at 95: notional 285; maker 10 bps -> 0.285 -> 1; taker 25 bps -> 0.7125 -> 1.
    assert_eq!((fill.price, fill.quantity, fill.notional), (95, 30, 285));
    assert_eq!((fill.maker_fee, fill.taker_fee), (1, 1));
    assert_eq!(engine.order(OrderId(2)).map(|o| o.quantity), Some(20));
    assert_eq!(
        engine.depth(10).bids,
        vec![DepthLevel {
            price: 100,
            quantity: 20,
            orders: 1
        }]
    );
}

#[test]
fn ioc_and_market_remainders_are_cancelled() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    let events = apply(
        &mut engine,
        order(
            2,
            2,
            BUY,
            OrderKind::Limit { price: 100 },
            50,
            TimeInForce::Ioc,
        ),
    );
    assert_eq!(cancelled(&events), vec![(2, 20, CancelReason::Unfilled)]);
    assert!(engine.order(OrderId(2)).is_none());
    let events = apply(
        &mut engine,
        order(3, 2, BUY, OrderKind::Market, 50, TimeInForce::Gtc),
    );
    assert_eq!(cancelled(&events), vec![(3, 50, CancelReason::Unfilled)]);
    assert_eq!(engine.open_orders(), 0);
}

#[test]
fn fill_or_kill_fills_completely_or_changes_nothing() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    apply(&mut engine, limit(2, 1, SELL, 110, 30));
    let fok = |id, price, quantity| {
        order(
            id,
            2,
            BUY,
            OrderKind::Limit { price },
            quantity,
            TimeInForce::Fok,
        )
    };
    assert_eq!(
        refused(&mut engine, fok(3, 105, 40)),
        RejectReason::CannotFillCompletely
    );
    let events = apply(&mut engine, fok(3, 110, 40));
    assert_eq!(fills(&events), vec![(1, 3, 100, 30), (2, 3, 110, 10)]);
}

#[test]
fn post_only_is_refused_when_it_would_take() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    let post = |price| {
        order(
            2,
            2,
            BUY,
            OrderKind::Limit { price },
            30,
            TimeInForce::PostOnly,
        )
    };
    assert_eq!(
        refused(&mut engine, post(100)),
        RejectReason::PostOnlyWouldTake
    );
    apply(&mut engine, post(95));
    assert_eq!(engine.best_bid(), Some((95, 30)));
    // Moving it across the spread is refused too; it stays where it was.
    let amend = Command::Amend {
        id: OrderId(2),
        owner: OwnerId(2),
        price: 100,
        quantity: 30,
    };
    assert_eq!(refused(&mut engine, amend), RejectReason::PostOnlyWouldTake);
}

#[test]
fn self_trade_prevention_modes() {
    let setup = || {
        let mut engine = engine();
        apply(&mut engine, limit(1, 1, SELL, 100, 30));
        apply(&mut engine, limit(2, 2, SELL, 105, 30));
        engine
    };
    let taker = |mode| with_self_trade(limit(3, 1, BUY, 105, 50), mode);

    let mut engine = setup();
    let events = apply(&mut engine, taker(SelfTradePrevention::CancelTaker));
    assert_eq!(fills(&events), vec![]);
    assert_eq!(cancelled(&events), vec![(3, 50, CancelReason::SelfTrade)]);
    assert!(engine.order(OrderId(1)).is_some());

    let mut engine = setup();
    let events = apply(&mut engine, taker(SelfTradePrevention::CancelMaker));
    assert_eq!(cancelled(&events), vec![(1, 30, CancelReason::SelfTrade)]);
    assert_eq!(fills(&events), vec![(2, 3, 105, 30)]);
    assert_eq!(engine.best_bid(), Some((105, 20)));

    let mut engine = setup();
    let events = apply(&mut engine, taker(SelfTradePrevention::CancelBoth));
    assert_eq!(
        cancelled(&events),
        vec![
            (1, 30, CancelReason::SelfTrade),
            (3, 50, CancelReason::SelfTrade)
        ]
    );
    assert_eq!(engine.open_orders(), 1);
}

#[test]
fn stops_wait_then_enter_in_a_fixed_order() {
    let mut engine = engine();
    let stop = |id, owner, side, trigger, quantity| {
        order(
            id,
            owner,
            side,
            OrderKind::Stop { trigger },
            quantity,
            TimeInForce::Gtc,
        )
    };
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    apply(&mut engine, limit(2, 1, SELL, 105, 30));
    apply(&mut engine, limit(3, 1, SELL, 110, 30));
    // Buy stops at 100 (placed second) and 95 (placed third): the lower
    // trigger enters first even though it is younger.
    apply(&mut engine, stop(10, 2, BUY, 100, 10));
    apply(&mut engine, stop(11, 2, BUY, 95, 10));
    assert_eq!(engine.stop_orders(), 2);
    assert_eq!(engine.best_ask(), Some((100, 30)));

    let events = apply(&mut engine, limit(4, 3, BUY, 100, 10));
    let order_of_entry: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Triggered { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(order_of_entry, vec![11, 10]);
    assert_eq!(
        fills(&events),
        vec![(1, 4, 100, 10), (1, 11, 100, 10), (1, 10, 100, 10)]
    );
    assert_eq!(engine.stop_orders(), 0);
    assert_eq!(engine.best_ask(), Some((105, 30)));
}

#[test]
fn a_stop_limit_rests_at_its_limit_and_a_triggered_stop_can_be_rejected() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 20));
    apply(&mut engine, limit(2, 2, BUY, 100, 10));
    apply(&mut engine, limit(3, 2, BUY, 95, 30));
    assert_eq!(engine.last_trade_price(), Some(100));
    let stop_limit = |id, price, time_in_force| {
        order(
            id,
            3,
            SELL,
            OrderKind::StopLimit {
                trigger: 100,
                price,
            },
            30,
            time_in_force,
        )
    };
    // Already triggered when placed: enters at once, and a post-only sell
    // at 95 would take the bid at 95.
    let events = apply(&mut engine, stop_limit(4, 95, TimeInForce::PostOnly));
    assert_eq!(
        events[1..],
        [
            Event::Triggered {
                id: OrderId(4),
                owner: OwnerId(3),
                last_price: 100
            },
            Event::Rejected {
                id: OrderId(4),
                owner: OwnerId(3),
                reason: RejectReason::PostOnlyWouldTake
            },
            Event::Done {
                id: OrderId(4),
                owner: OwnerId(3)
            },
        ]
    );
    // At 100 it takes nothing and rests behind order 1.
    apply(&mut engine, stop_limit(5, 100, TimeInForce::Gtc));
    let view = engine.order(OrderId(5));
    assert_eq!(view.map(|v| (v.price, v.trigger)), Some((Some(100), None)));
    assert_eq!(engine.best_ask(), Some((100, 40)));
}

#[test]
fn amending_keeps_priority_only_when_shrinking_in_place() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    apply(&mut engine, limit(2, 2, SELL, 100, 30));
    let amend = |id, owner, price, quantity| Command::Amend {
        id: OrderId(id),
        owner: OwnerId(owner),
        price,
        quantity,
    };
    // Shrinking keeps order 1 first.
    apply(&mut engine, amend(1, 1, 100, 20));
    let events = apply(&mut engine, limit(3, 3, BUY, 100, 20));
    assert_eq!(fills(&events), vec![(1, 3, 100, 20)]);
    // Growing loses priority: order 2 now fills first.
    apply(&mut engine, limit(4, 1, SELL, 100, 20));
    let events = apply(&mut engine, amend(2, 2, 100, 40));
    assert!(events.contains(&Event::Amended {
        id: OrderId(2),
        owner: OwnerId(2),
        price: 100,
        old_quantity: 30,
        quantity: 40,
        priority_kept: false
    }));
    let events = apply(&mut engine, limit(5, 3, BUY, 100, 20));
    assert_eq!(fills(&events), vec![(4, 5, 100, 20)]);
    // Moving across the spread trades on the way in.
    apply(&mut engine, limit(6, 3, BUY, 95, 30));
    let events = apply(&mut engine, amend(2, 2, 95, 40));
    assert_eq!(fills(&events), vec![(6, 2, 95, 30)]);
    assert_eq!(engine.best_ask(), Some((95, 10)));
    assert_eq!(
        refused(&mut engine, amend(2, 1, 95, 10)),
        RejectReason::NotOwner
    );
}

#[test]
fn a_halted_pair_refuses_orders_and_amendments_but_cancels() {
    let mut engine = engine();
    apply(&mut engine, limit(1, 1, SELL, 100, 30));
    apply(&mut engine, Command::SetStatus(PairStatus::Halted));
    assert_eq!(
        refused(&mut engine, limit(2, 2, BUY, 100, 30)),
        RejectReason::PairHalted
    );
    let amend = Command::Amend {
        id: OrderId(1),
        owner: OwnerId(1),
        price: 100,
        quantity: 10,
    };
    assert_eq!(refused(&mut engine, amend), RejectReason::PairHalted);
    let events = apply(
        &mut engine,
        Command::Cancel {
            id: OrderId(1),
            owner: OwnerId(1),
        },
    );
    assert_eq!(cancelled(&events), vec![(1, 30, CancelReason::Requested)]);
    apply(&mut engine, Command::SetStatus(PairStatus::Active));
    apply(&mut engine, limit(2, 2, BUY, 100, 30));
}

#[test]
fn entry_checks_name_what_is_wrong() {
    let mut engine = engine();
    let cases = [
        (limit(1, 1, BUY, 100, 0), RejectReason::ZeroQuantity),
        (
            limit(1, 1, BUY, 100, 15),
            RejectReason::QuantityNotMultipleOfLot,
        ),
        (limit(1, 1, BUY, 0, 30), RejectReason::ZeroPrice),
        (
            limit(1, 1, BUY, 101, 30),
            RejectReason::PriceNotMultipleOfTick,
        ),
        (limit(1, 1, BUY, 95, 10), RejectReason::BelowMinNotional),
        (
            order(1, 1, BUY, OrderKind::Market, 10, TimeInForce::PostOnly),
            RejectReason::PostOnlyWithoutPrice,
        ),
        (
            Command::Cancel {
                id: OrderId(9),
                owner: OwnerId(1),
            },
            RejectReason::UnknownOrder,
        ),
    ];
    for (command, reason) in cases {
        assert_eq!(refused(&mut engine, command), reason, "{command:?}");
    }
    apply(&mut engine, limit(1, 1, BUY, 100, 30));
    assert_eq!(
        refused(&mut engine, limit(1, 2, SELL, 200, 30)),
        RejectReason::DuplicateOrderId
    );
    apply(&mut engine, buy_stop(2, 1, 120, 30));
    let amend_stop = Command::Amend {
        id: OrderId(2),
        owner: OwnerId(1),
        price: 100,
        quantity: 30,
    };
    assert_eq!(refused(&mut engine, amend_stop), RejectReason::NotAmendable);
}

#[test]
fn the_number_of_open_orders_is_bounded() {
    let mut engine = engine();
    let max = config().open_orders_max as u64;
    for id in 1..=max {
        apply(&mut engine, limit(id, 1, BUY, 100, 30));
    }
    assert_eq!(
        refused(&mut engine, limit(max + 1, 1, BUY, 100, 30)),
        RejectReason::TooManyOpenOrders
    );
}

#[test]
fn a_level_that_would_overflow_is_refused() {
    let mut engine = engine();
    let huge = u64::MAX - u64::MAX % 10;
    apply(&mut engine, limit(1, 1, BUY, 100, huge));
    assert_eq!(
        refused(&mut engine, limit(2, 2, BUY, 100, 10)),
        RejectReason::Overflow
    );
    // Filling it whole is fine: the notional is a u128.
    let events = apply(&mut engine, limit(3, 2, SELL, 100, huge));
    assert_eq!(fills(&events), vec![(1, 3, 100, huge)]);
}

#[test]
fn the_book_sequence_counts_commands_that_change_the_book() {
    let mut engine = engine();
    assert_eq!(engine.depth(5).sequence, 0);
    apply(&mut engine, limit(1, 1, BUY, 100, 30));
    apply(&mut engine, buy_stop(2, 1, 120, 30));
    refused(&mut engine, limit(1, 1, BUY, 100, 30));
    assert_eq!(
        engine.book_sequence(),
        1,
        "stops and refusals are not book changes"
    );
    apply(&mut engine, limit(3, 2, SELL, 100, 10));
    assert_eq!(engine.depth(5).sequence, 2);
}

#[test]
fn invalid_configs_are_refused() {
    let with = |change: fn(&mut PairConfig)| {
        let mut config = config();
        change(&mut config);
        Engine::new(config).err()
    };
    assert_eq!(with(|c| c.tick_size = 0), Some(ConfigError::ZeroTickSize));
    assert_eq!(with(|c| c.lot_size = 0), Some(ConfigError::ZeroLotSize));
    assert_eq!(
        with(|c| c.taker_fee_bps = 10_001),
        Some(ConfigError::FeeTooHigh)
    );
    assert_eq!(
        with(|c| c.open_orders_max = 0),
        Some(ConfigError::ZeroOpenOrdersMax)
    );
}
