//! Properties of every random command sequence: quantity is conserved per
//! order, the book is never crossed, FOK is all or nothing, IOC never rests,
//! post-only never takes, fees are exact, and nobody trades worse than their
//! limit.

mod common;

use std::collections::HashMap;

use common::{LOT, commands, config, engine};
use malipo_matching::{
    CancelReason, Command, Engine, Event, OrderId, OrderKind, Price, Quantity, Side, TimeInForce,
};
use proptest::prelude::*;

/// What the events say about one order since it was accepted.
#[derive(Debug, Clone)]
struct Ledger {
    side: Side,
    kind: OrderKind,
    time_in_force: TimeInForce,
    /// The current limit (amendments move it).
    limit: Option<Price>,
    placed: u128,
    filled: u128,
    cancelled: u128,
    unfilled_cancel: bool,
    rejected: bool,
    requested_cancel: bool,
}

fn fee(notional: u128, bps: u16) -> u128 {
    (notional * u128::from(bps)).div_ceil(10_000)
}

fn open_quantity(engine: &Engine, id: OrderId) -> u128 {
    engine.order(id).map_or(0, |view| u128::from(view.quantity))
}

fn check_command(
    engine: &Engine,
    command: &Command,
    events: &[Event],
    orders: &mut HashMap<OrderId, Ledger>,
) -> Result<(), TestCaseError> {
    let config = config();
    let mut finished = Vec::new();
    for event in events {
        match *event {
            Event::Accepted { order } => {
                prop_assert!(
                    !orders.contains_key(&order.id),
                    "{:?} accepted twice",
                    order.id
                );
                orders.insert(
                    order.id,
                    Ledger {
                        side: order.side,
                        kind: order.kind,
                        time_in_force: order.time_in_force,
                        limit: order.limit_price(),
                        placed: u128::from(order.quantity),
                        filled: 0,
                        cancelled: 0,
                        unfilled_cancel: false,
                        rejected: false,
                        requested_cancel: false,
                    },
                );
            }
            Event::Fill(fill) => {
                prop_assert!(fill.quantity > 0 && fill.quantity % LOT == 0);
                let notional = u128::from(fill.price) * u128::from(fill.quantity / LOT);
                prop_assert_eq!(fill.notional, notional);
                prop_assert_eq!(fill.maker_fee, fee(notional, config.maker_fee_bps));
                prop_assert_eq!(fill.taker_fee, fee(notional, config.taker_fee_bps));
                prop_assert_ne!(fill.maker_owner, fill.taker_owner, "self-trade");
                let maker = orders.get_mut(&fill.maker);
                prop_assert!(maker.is_some(), "fill of an unknown maker");
                if let Some(maker) = maker {
                    prop_assert_eq!(
                        maker.limit,
                        Some(fill.price),
                        "fill away from the maker's price"
                    );
                    maker.filled += u128::from(fill.quantity);
                }
                let taker = orders.get_mut(&fill.taker);
                prop_assert!(taker.is_some(), "fill of an unknown taker");
                if let Some(taker) = taker {
                    prop_assert_ne!(taker.time_in_force, TimeInForce::PostOnly, "post-only took");
                    prop_assert_eq!(taker.side, fill.taker_side);
                    prop_assert!(
                        fill.taker_side.accepts(taker.limit, fill.price),
                        "worse than limit"
                    );
                    taker.filled += u128::from(fill.quantity);
                }
            }
            Event::Cancelled {
                id,
                quantity,
                reason,
                ..
            } => {
                if let Some(order) = orders.get_mut(&id) {
                    order.cancelled += u128::from(quantity);
                    order.unfilled_cancel |= reason == CancelReason::Unfilled;
                    order.requested_cancel |= reason == CancelReason::Requested;
                }
            }
            Event::Amended {
                id,
                price,
                old_quantity,
                quantity,
                ..
            } => {
                if let Some(order) = orders.get_mut(&id) {
                    order.limit = Some(price);
                    if quantity > old_quantity {
                        order.placed += u128::from(quantity - old_quantity);
                    } else {
                        order.cancelled += u128::from(old_quantity - quantity);
                    }
                }
            }
            Event::Rejected { id, .. } => {
                if let Some(order) = orders.get_mut(&id) {
                    order.rejected = true;
                    order.cancelled = order.placed - order.filled;
                }
            }
            Event::Done { id, .. } => finished.push(id),
            Event::Triggered { .. } | Event::StatusChanged { .. } => {}
        }
    }
    for id in finished {
        let order = orders.remove(&id);
        prop_assert!(order.is_some(), "done twice: {:?}", id);
        if let Some(order) = order {
            prop_assert_eq!(
                order.placed,
                order.filled + order.cancelled,
                "{:?} {:?}",
                id,
                command
            );
            prop_assert!(engine.order(id).is_none(), "done but open");
            if order.time_in_force == TimeInForce::Fok && !order.rejected && !order.requested_cancel
            {
                prop_assert_eq!(order.filled, order.placed, "FOK partly filled");
            }
            if order.time_in_force == TimeInForce::Fok {
                prop_assert!(!order.unfilled_cancel, "FOK cancelled after a partial fill");
            }
        }
    }
    for (id, order) in orders.iter() {
        let open = open_quantity(engine, *id);
        prop_assert_eq!(
            order.placed,
            order.filled + order.cancelled + open,
            "{:?}",
            id
        );
        let waiting = engine.order(*id).is_some_and(|view| view.trigger.is_some());
        let never_rests = matches!(order.time_in_force, TimeInForce::Ioc | TimeInForce::Fok)
            || matches!(order.kind, OrderKind::Market | OrderKind::Stop { .. });
        prop_assert!(!never_rests || waiting, "{:?} rests: {:?}", id, order);
    }
    if let (Some((bid, _)), Some((ask, _))) = (engine.best_bid(), engine.best_ask()) {
        prop_assert!(bid < ask, "crossed: {} >= {}", bid, ask);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_command_keeps_the_invariants(commands in commands(150)) {
        let mut engine = engine();
        let mut orders = HashMap::new();
        for command in &commands {
            let before = engine.clone();
            match engine.apply(command) {
                Ok(events) => check_command(&engine, command, &events, &mut orders)?,
                Err(_) => prop_assert_eq!(&engine, &before, "a refused command changed the engine"),
            }
            prop_assert_eq!(orders.len(), engine.open_orders());
        }
    }

    /// Quantities near `u64::MAX`: anything that would overflow is refused
    /// before it changes anything.
    #[test]
    fn huge_quantities_never_overflow(quantities in prop::collection::vec(
        prop_oneof![Just(u64::MAX - 9), Just(u64::MAX / 2 + 10), Just(10u64)], 1..30),
        buys in prop::collection::vec(any::<bool>(), 30)) {
        let mut engine = engine();
        let mut orders = HashMap::new();
        for (i, quantity) in quantities.iter().enumerate() {
            let quantity: Quantity = quantity - quantity % LOT;
            let side = if buys[i] { Side::Buy } else { Side::Sell };
            let command = common::limit(i as u64 + 1, i as u64 % 3 + 1, side, 100, quantity);
            let before = engine.clone();
            match engine.apply(&command) {
                Ok(events) => check_command(&engine, &command, &events, &mut orders)?,
                Err(_) => prop_assert_eq!(&engine, &before),
            }
        }
    }
}
