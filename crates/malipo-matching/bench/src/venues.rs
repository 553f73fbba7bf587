//! One adapter per order book. Each translates the workload into its own
//! commands before the clock starts; `apply` runs one of them.
//!
//! Where a book lacks an operation, the adapter does what a venue would
//! have to: lobster has no amend and no IOC, so a move or a reduction is a
//! cancel plus a new order, and an IOC order is a limit order cancelled
//! right after if it rested.

use std::collections::HashMap;
use std::hint::black_box;

use crate::workload::{Op, Workload, config, to_command};

pub trait Venue: Sized {
    const NAME: &'static str;
    type Prepared;
    fn prepare(workload: &Workload) -> (Self, Self::Prepared);
    /// Applies operation `index` of prefill followed by the timed stream;
    /// answers whether the book accepted it.
    fn apply(&mut self, prepared: &Self::Prepared, index: usize) -> bool;
}

fn all_ops(workload: &Workload) -> impl Iterator<Item = &Op> {
    workload.prefill.iter().chain(workload.ops.iter())
}

pub struct Malipo {
    engine: malipo_matching::Engine,
    events: Vec<malipo_matching::Event>,
}

impl Venue for Malipo {
    const NAME: &'static str = "malipo-matching";
    type Prepared = Vec<malipo_matching::Command>;

    fn prepare(workload: &Workload) -> (Self, Self::Prepared) {
        let engine = match malipo_matching::Engine::new(config()) {
            Ok(engine) => engine,
            Err(error) => panic!("bench config: {error}"),
        };
        let venue = Malipo {
            engine,
            events: Vec::with_capacity(64),
        };
        (venue, all_ops(workload).map(to_command).collect())
    }

    fn apply(&mut self, prepared: &Self::Prepared, index: usize) -> bool {
        self.events.clear();
        let result = self.engine.apply_into(&prepared[index], &mut self.events);
        black_box(&self.events);
        result.is_ok()
    }
}

pub struct Lobster {
    book: lobster::OrderBook,
}

fn lobster_side(side: malipo_matching::Side) -> lobster::Side {
    match side {
        malipo_matching::Side::Buy => lobster::Side::Bid,
        malipo_matching::Side::Sell => lobster::Side::Ask,
    }
}

impl Venue for Lobster {
    const NAME: &'static str = "lobster 0.7";
    type Prepared = Vec<Op>;

    fn prepare(workload: &Workload) -> (Self, Self::Prepared) {
        let book = lobster::OrderBook::new(1 << 16, 16, false);
        (Lobster { book }, all_ops(workload).copied().collect())
    }

    fn apply(&mut self, prepared: &Self::Prepared, index: usize) -> bool {
        use lobster::OrderType;
        match prepared[index] {
            Op::Limit {
                id,
                side,
                price,
                quantity,
                immediate_or_cancel,
                ..
            } => {
                let event = self.book.execute(OrderType::Limit {
                    id: u128::from(id),
                    side: lobster_side(side),
                    qty: quantity,
                    price,
                });
                if immediate_or_cancel {
                    black_box(&event);
                    let event = self.book.execute(OrderType::Cancel { id: u128::from(id) });
                    black_box(event);
                } else {
                    black_box(event);
                }
                true
            }
            Op::Move {
                id,
                side,
                price,
                quantity,
            }
            | Op::Reduce {
                id,
                side,
                price,
                quantity,
            } => {
                let cancelled = self.book.execute(OrderType::Cancel { id: u128::from(id) });
                if cancelled == (lobster::OrderEvent::Canceled { id: u128::from(id) }) {
                    let event = self.book.execute(OrderType::Limit {
                        id: u128::from(id),
                        side: lobster_side(side),
                        qty: quantity,
                        price,
                    });
                    black_box(event);
                    return true;
                }
                false
            }
            Op::Cancel { id, .. } => {
                let event = self.book.execute(OrderType::Cancel { id: u128::from(id) });
                event == (lobster::OrderEvent::Canceled { id: u128::from(id) })
            }
        }
    }
}

pub struct Matchcore {
    book: matchcore::OrderBook,
}

impl Venue for Matchcore {
    const NAME: &'static str = "matchcore 0.4";
    type Prepared = Vec<matchcore::Command>;

    fn prepare(workload: &Workload) -> (Self, Self::Prepared) {
        use matchcore::*;
        // Matchcore numbers an order by the sequence number of its submit.
        let mut ids: HashMap<u64, u64> = HashMap::new();
        let mut commands = Vec::new();
        for (sequence, op) in all_ops(workload).enumerate() {
            let sequence = sequence as u64;
            let id_of = |ids: &HashMap<u64, u64>, id: u64| {
                OrderId(ids.get(&id).copied().unwrap_or(u64::MAX))
            };
            let kind = match *op {
                Op::Limit {
                    id,
                    side,
                    price,
                    quantity,
                    immediate_or_cancel,
                    ..
                } => {
                    ids.insert(id, sequence);
                    let side = match side {
                        malipo_matching::Side::Buy => Side::Buy,
                        malipo_matching::Side::Sell => Side::Sell,
                    };
                    let time_in_force = if immediate_or_cancel {
                        TimeInForce::Ioc
                    } else {
                        TimeInForce::Gtc
                    };
                    CommandKind::Submit(SubmitCmd {
                        order: NewOrder::Limit(LimitOrder::new(
                            Price(price),
                            QuantityPolicy::Standard {
                                quantity: Quantity(quantity),
                            },
                            OrderFlags::new(side, false, time_in_force),
                        )),
                    })
                }
                Op::Move { id, price, .. } => CommandKind::Amend(AmendCmd {
                    order_id: id_of(&ids, id),
                    patch: AmendPatch::Limit(LimitOrderPatch::new().with_price(Price(price))),
                }),
                Op::Reduce { id, quantity, .. } => CommandKind::Amend(AmendCmd {
                    order_id: id_of(&ids, id),
                    patch: AmendPatch::Limit(LimitOrderPatch::new().with_quantity_policy(
                        QuantityPolicy::Standard {
                            quantity: Quantity(quantity),
                        },
                    )),
                }),
                Op::Cancel { id, .. } => CommandKind::Cancel(CancelCmd {
                    order_id: id_of(&ids, id),
                    order_kind: OrderKind::Limit,
                }),
            };
            commands.push(Command {
                meta: CommandMeta {
                    sequence_number: SequenceNumber(sequence),
                    timestamp: Timestamp(sequence),
                },
                kind,
            });
        }
        (
            Matchcore {
                book: OrderBook::new("BENCH"),
            },
            commands,
        )
    }

    fn apply(&mut self, prepared: &Self::Prepared, index: usize) -> bool {
        let outcome = self.book.execute(&prepared[index]);
        let applied = matches!(outcome, matchcore::CommandOutcome::Applied(_));
        black_box(outcome);
        applied
    }
}

pub struct OrderbookRs {
    book: orderbook_rs::OrderBook<()>,
}

impl Venue for OrderbookRs {
    const NAME: &'static str = "orderbook-rs 0.15";
    type Prepared = Vec<Op>;

    fn prepare(workload: &Workload) -> (Self, Self::Prepared) {
        let book = orderbook_rs::OrderBook::new("BENCH");
        (OrderbookRs { book }, all_ops(workload).copied().collect())
    }

    fn apply(&mut self, prepared: &Self::Prepared, index: usize) -> bool {
        use orderbook_rs::{Id, TimeInForce};
        use pricelevel::{OrderUpdate, Price, Quantity};
        match prepared[index] {
            Op::Limit {
                id,
                side,
                price,
                quantity,
                immediate_or_cancel,
                ..
            } => {
                let side = match side {
                    malipo_matching::Side::Buy => orderbook_rs::Side::Buy,
                    malipo_matching::Side::Sell => orderbook_rs::Side::Sell,
                };
                let time_in_force = if immediate_or_cancel {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Gtc
                };
                let result = self.book.add_limit_order(
                    Id::from_u64(id),
                    u128::from(price),
                    quantity,
                    side,
                    time_in_force,
                    None,
                );
                result.is_ok()
            }
            Op::Move { id, price, .. } => {
                let result = self.book.update_order(OrderUpdate::UpdatePrice {
                    order_id: Id::from_u64(id),
                    new_price: Price::new(u128::from(price)),
                });
                result.is_ok()
            }
            Op::Reduce { id, quantity, .. } => {
                let result = self.book.update_order(OrderUpdate::UpdateQuantity {
                    order_id: Id::from_u64(id),
                    new_quantity: Quantity::new(quantity),
                });
                result.is_ok()
            }
            Op::Cancel { id, .. } => self.book.cancel_order(Id::from_u64(id)).is_ok(),
        }
    }
}
