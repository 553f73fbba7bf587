//! Shared test helpers: a small pair, command generators, and the naive
//! reference engine.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod reference;

use malipo_matching::{
    Command, Engine, NewOrder, OrderId, OrderKind, OwnerId, PairConfig, PairStatus, Price,
    Quantity, SelfTradePrevention, Side, TimeInForce,
};
use proptest::prelude::*;

pub const TICK: Price = 5;
pub const LOT: Quantity = 10;
/// Ids are drawn from a small range so that cancels and amends find their
/// orders and ids get reused.
pub const IDS: u64 = 16;

pub fn config() -> PairConfig {
    PairConfig {
        tick_size: TICK,
        lot_size: LOT,
        min_notional: 200,
        maker_fee_bps: 10,
        taker_fee_bps: 25,
        status: PairStatus::Active,
        open_orders_max: 14,
    }
}

pub fn engine() -> Engine {
    match Engine::new(config()) {
        Ok(engine) => engine,
        Err(error) => panic!("the test config is valid: {error}"),
    }
}

pub fn limit(id: u64, owner: u64, side: Side, price: Price, quantity: Quantity) -> Command {
    order(
        id,
        owner,
        side,
        OrderKind::Limit { price },
        quantity,
        TimeInForce::Gtc,
    )
}

pub fn order(
    id: u64,
    owner: u64,
    side: Side,
    kind: OrderKind,
    quantity: Quantity,
    time_in_force: TimeInForce,
) -> Command {
    Command::Place(NewOrder {
        id: OrderId(id),
        owner: OwnerId(owner),
        side,
        kind,
        quantity,
        time_in_force,
        self_trade: SelfTradePrevention::CancelTaker,
    })
}

fn price() -> impl Strategy<Value = Price> {
    prop_oneof![
        20 => (16u64..=24).prop_map(|ticks| ticks * TICK),
        1 => Just(0),
        1 => Just(101),
    ]
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        20 => (1u64..=8).prop_map(|lots| lots * LOT),
        1 => Just(0),
        1 => Just(15),
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn kind() -> impl Strategy<Value = OrderKind> {
    prop_oneof![
        12 => price().prop_map(|price| OrderKind::Limit { price }),
        2 => Just(OrderKind::Market),
        2 => price().prop_map(|trigger| OrderKind::Stop { trigger }),
        2 => (price(), price()).prop_map(|(trigger, price)| OrderKind::StopLimit { trigger, price }),
    ]
}

fn time_in_force() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        6 => Just(TimeInForce::Gtc),
        2 => Just(TimeInForce::Ioc),
        2 => Just(TimeInForce::Fok),
        2 => Just(TimeInForce::PostOnly),
    ]
}

fn self_trade() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::CancelTaker),
        Just(SelfTradePrevention::CancelMaker),
        Just(SelfTradePrevention::CancelBoth),
    ]
}

/// Mostly the owner an id's orders always have (`id % 3 + 1`), so that
/// cancels and amends find them; sometimes another.
fn owner_of(id: u64) -> impl Strategy<Value = u64> {
    prop_oneof![9 => Just(id % 3 + 1), 1 => 1u64..=3]
}

pub fn command() -> impl Strategy<Value = Command> {
    let id_and_owner = (1..=IDS).prop_flat_map(|id| (Just(id), owner_of(id)));
    prop_oneof![
        10 => (id_and_owner.clone(), side(), kind(), quantity(), time_in_force(), self_trade())
            .prop_map(|((id, owner), side, kind, quantity, time_in_force, self_trade)| {
                Command::Place(NewOrder {
                    id: OrderId(id),
                    owner: OwnerId(owner),
                    side,
                    kind,
                    quantity,
                    time_in_force,
                    self_trade,
                })
            }),
        3 => id_and_owner.clone().prop_map(|(id, owner)| Command::Cancel {
            id: OrderId(id),
            owner: OwnerId(owner),
        }),
        4 => (id_and_owner, price(), quantity()).prop_map(|((id, owner), price, quantity)| {
            Command::Amend { id: OrderId(id), owner: OwnerId(owner), price, quantity }
        }),
        // Rare, and mostly back to active: a halted pair refuses most commands.
        1 => prop_oneof![
            1 => Just(PairStatus::Halted),
            4 => Just(PairStatus::Active),
        ]
        .prop_map(Command::SetStatus),
    ]
}

pub fn commands(max: usize) -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec(command(), 1..max)
}
