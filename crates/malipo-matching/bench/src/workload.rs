//! The mixed workload, in the shape of exchange-core's benchmark: a book
//! of about 1,000 resting orders around a fixed mid price, then a stream of
//! mostly moves and cancels with some new limit and IOC orders.
//!
//! The stream is generated once, by running it through a malipo engine to
//! know which orders are still open (so that moves and cancels name live
//! orders), and then replayed on each engine from scratch.

use malipo_matching::{
    Command, Engine, NewOrder, OrderId, OrderKind, OwnerId, PairConfig, PairStatus,
    SelfTradePrevention, Side, TimeInForce,
};

/// One operation, in terms every order book understands.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Limit {
        id: u64,
        owner: u64,
        side: Side,
        price: u64,
        quantity: u64,
        immediate_or_cancel: bool,
    },
    /// Moves a resting order to `price`, keeping its open `quantity`.
    Move {
        id: u64,
        side: Side,
        price: u64,
        quantity: u64,
    },
    /// Shrinks a resting order (at `price`) to `quantity` in place.
    Reduce {
        id: u64,
        side: Side,
        price: u64,
        quantity: u64,
    },
    Cancel {
        id: u64,
        owner: u64,
    },
}

pub const MID: u64 = 100_000;
const BAND_TICKS: u64 = 50;
pub const BOOK_TARGET: usize = 1_000;

pub fn config() -> PairConfig {
    PairConfig {
        tick_size: 1,
        lot_size: 1,
        min_notional: 0,
        maker_fee_bps: 10,
        taker_fee_bps: 20,
        status: PairStatus::Active,
        open_orders_max: 1 << 20,
    }
}

/// A small deterministic generator (xorshift64*): same seed, same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn to_command(op: &Op) -> Command {
    match *op {
        Op::Limit {
            id,
            owner,
            side,
            price,
            quantity,
            immediate_or_cancel,
        } => Command::Place(NewOrder {
            id: OrderId(id),
            owner: OwnerId(owner),
            side,
            kind: OrderKind::Limit { price },
            quantity,
            time_in_force: if immediate_or_cancel {
                TimeInForce::Ioc
            } else {
                TimeInForce::Gtc
            },
            self_trade: SelfTradePrevention::CancelTaker,
        }),
        Op::Move {
            id,
            price,
            quantity,
            ..
        }
        | Op::Reduce {
            id,
            price,
            quantity,
            ..
        } => Command::Amend {
            id: OrderId(id),
            owner: OwnerId(owner_of(id)),
            price,
            quantity,
        },
        Op::Cancel { id, owner } => Command::Cancel {
            id: OrderId(id),
            owner: OwnerId(owner),
        },
    }
}

/// Owners are a function of the id, so cancels and amends name them.
pub fn owner_of(id: u64) -> u64 {
    id % 1_000 + 1
}

pub struct Workload {
    /// Places that build the starting book (not timed).
    pub prefill: Vec<Op>,
    /// The timed stream.
    pub ops: Vec<Op>,
}

pub fn generate(count: usize, seed: u64) -> Workload {
    let mut rng = Rng(seed | 1);
    let mut engine = match Engine::new(config()) {
        Ok(engine) => engine,
        Err(error) => panic!("bench config: {error}"),
    };
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 1u64;
    let mut prefill = Vec::new();
    let mut ops = Vec::with_capacity(count);

    let new_limit = |rng: &mut Rng, next_id: &mut u64, aggressive: bool, ioc: bool| {
        let id = *next_id;
        *next_id += 1;
        let side = if rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let offset = 1 + rng.below(BAND_TICKS);
        let cross = if aggressive { rng.below(6) } else { 0 };
        let price = match side {
            Side::Buy => MID - offset + cross * 2,
            Side::Sell => MID + offset - cross * 2,
        };
        Op::Limit {
            id,
            owner: owner_of(id),
            side,
            price,
            quantity: 1 + rng.below(100),
            immediate_or_cancel: ioc,
        }
    };

    let apply = |engine: &mut Engine, live: &mut Vec<u64>, op: &Op| {
        let command = to_command(op);
        let _ = engine.apply(&command);
        if let Op::Limit { id, .. } = *op
            && engine.order(OrderId(id)).is_some()
        {
            live.push(id);
        }
    };

    while live.len() < BOOK_TARGET {
        let op = new_limit(&mut rng, &mut next_id, false, false);
        apply(&mut engine, &mut live, &op);
        prefill.push(op);
    }

    while ops.len() < count {
        // Pick a live order for moves, reductions and cancels.
        let pick = |rng: &mut Rng, live: &mut Vec<u64>| loop {
            if live.is_empty() {
                return None;
            }
            let index = rng.below(live.len() as u64) as usize;
            let id = live[index];
            match engine.order(OrderId(id)) {
                Some(view) => return Some((index, view)),
                None => {
                    live.swap_remove(index);
                }
            }
        };
        let roll = rng.below(100);
        let op = if roll < 50 {
            // Move by up to 5 ticks either way, staying on its side of mid.
            let Some((_, view)) = pick(&mut rng, &mut live) else {
                continue;
            };
            let delta = 1 + rng.below(5);
            let price = view.price.unwrap_or(MID);
            let moved = match view.side {
                Side::Buy if rng.below(2) == 0 => price.saturating_sub(delta),
                Side::Buy => (price + delta).min(MID - 1),
                Side::Sell if rng.below(2) == 0 => price + delta,
                Side::Sell => (price - delta).max(MID + 1),
            };
            Op::Move {
                id: view.id.0,
                side: view.side,
                price: moved,
                quantity: view.quantity,
            }
        } else if roll < 55 {
            let Some((_, view)) = pick(&mut rng, &mut live) else {
                continue;
            };
            if view.quantity < 2 {
                continue;
            }
            Op::Reduce {
                id: view.id.0,
                side: view.side,
                price: view.price.unwrap_or(MID),
                quantity: view.quantity / 2,
            }
        } else if roll < 95 {
            // Cancels and new orders, steering the book to its target size.
            let cancel = if live.len() > BOOK_TARGET + BOOK_TARGET / 10 {
                true
            } else if live.len() < BOOK_TARGET - BOOK_TARGET / 10 {
                false
            } else {
                roll < 75
            };
            if cancel {
                let Some((index, view)) = pick(&mut rng, &mut live) else {
                    continue;
                };
                live.swap_remove(index);
                Op::Cancel {
                    id: view.id.0,
                    owner: view.owner.0,
                }
            } else {
                let aggressive = rng.below(10) == 0;
                new_limit(&mut rng, &mut next_id, aggressive, false)
            }
        } else {
            new_limit(&mut rng, &mut next_id, true, true)
        };
        apply(&mut engine, &mut live, &op);
        ops.push(op);
    }
    Workload { prefill, ops }
}
