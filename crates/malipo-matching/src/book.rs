//! The resting orders: per side, a `BTreeMap` from price to a level in a
//! slab of levels; each level a FIFO queue threaded through a slab of orders
//! (doubly linked by slot index). Each order knows its level's slot, so
//! cancelling, reducing and filling need no search; only adding at a price
//! and emptying a level touch the map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{OrderId, OwnerId, Price, Quantity, SelfTradePrevention, Side};

/// No slot: the end of a queue.
const NIL: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resting {
    pub id: OrderId,
    pub owner: OwnerId,
    pub side: Side,
    pub price: Price,
    pub remaining: Quantity,
    pub post_only: bool,
    pub self_trade: SelfTradePrevention,
    /// The slot of its level in `Book::levels`: removing or reducing an
    /// order needs no search.
    level: usize,
    prev: usize,
    next: usize,
}

impl Resting {
    pub fn new(
        id: OrderId,
        owner: OwnerId,
        side: Side,
        price: Price,
        remaining: Quantity,
        post_only: bool,
        self_trade: SelfTradePrevention,
    ) -> Resting {
        Resting {
            id,
            owner,
            side,
            price,
            remaining,
            post_only,
            self_trade,
            level: NIL,
            prev: NIL,
            next: NIL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Level {
    head: usize,
    tail: usize,
    /// Sum of the level's remaining quantities; every insert checks first
    /// that it fits ([`Book::fits`]).
    total: Quantity,
    orders: usize,
}

const EMPTY_LEVEL: Level = Level {
    head: NIL,
    tail: NIL,
    total: 0,
    orders: 0,
};

/// One price level, as seen by feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthLevel {
    pub price: Price,
    pub quantity: Quantity,
    pub orders: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Book {
    /// Price -> slot in `levels`, per side.
    bids: BTreeMap<Price, usize>,
    asks: BTreeMap<Price, usize>,
    levels: Vec<Level>,
    free_levels: Vec<usize>,
    slots: Vec<Resting>,
    free: Vec<usize>,
    /// Sum of every resting quantity per side (bids, asks): while it leaves
    /// room, every level of the side does, and [`Book::fits`] needs no
    /// lookup. At most 2^64 orders of less than 2^64 each: fits in a u128.
    side_totals: [u128; 2],
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Book {
    fn prices(&self, side: Side) -> &BTreeMap<Price, usize> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// The level slot at the best price of `side`: the highest bid or the
    /// lowest ask.
    fn best_level(&self, side: Side) -> Option<(Price, &Level)> {
        let best = match side {
            Side::Buy => self.bids.last_key_value(),
            Side::Sell => self.asks.first_key_value(),
        };
        best.and_then(|(price, level)| Some((*price, self.levels.get(*level)?)))
    }

    pub fn best(&self, side: Side) -> Option<(Price, Quantity)> {
        self.best_level(side)
            .map(|(price, level)| (price, level.total))
    }

    /// The slot of the oldest order at the best price of `side`.
    pub fn best_head(&self, side: Side) -> Option<usize> {
        self.best_level(side).map(|(_, level)| level.head)
    }

    /// Whether `quantity` more fits in the level at `price` of `side`.
    pub fn fits(&self, side: Side, price: Price, quantity: Quantity) -> bool {
        let room = u128::from(Quantity::MAX) - u128::from(quantity);
        if self.side_totals[side_index(side)] <= room {
            return true;
        }
        let total = self
            .prices(side)
            .get(&price)
            .and_then(|level| self.levels.get(*level))
            .map_or(0, |level| level.total);
        total.checked_add(quantity).is_some()
    }

    pub fn get(&self, slot: usize) -> Option<&Resting> {
        self.slots.get(slot)
    }

    /// Appends `order` at the back of its level's queue; answers its slot.
    /// The caller has checked [`Book::fits`].
    pub fn insert(&mut self, mut order: Resting) -> usize {
        let (side, price, quantity) = (order.side, order.price, order.remaining);
        let prices = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = *prices
            .entry(price)
            .or_insert_with(|| match self.free_levels.pop() {
                Some(level) => {
                    self.levels[level] = EMPTY_LEVEL;
                    level
                }
                None => {
                    self.levels.push(EMPTY_LEVEL);
                    self.levels.len() - 1
                }
            });
        let tail = self.levels[level].tail;
        order.level = level;
        order.prev = tail;
        order.next = NIL;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = order;
                slot
            }
            None => {
                self.slots.push(order);
                self.slots.len() - 1
            }
        };
        if tail == NIL {
            self.levels[level].head = slot;
        } else {
            self.slots[tail].next = slot;
        }
        let level = &mut self.levels[level];
        level.tail = slot;
        level.total = level.total.saturating_add(quantity);
        level.orders += 1;
        self.side_totals[side_index(side)] += u128::from(quantity);
        slot
    }

    /// Unlinks the order in `slot` and frees the slot; answers the order.
    pub fn remove(&mut self, slot: usize) -> Resting {
        let order = self.slots[slot];
        let (prev, next) = (order.prev, order.next);
        if prev != NIL {
            self.slots[prev].next = next;
        }
        if next != NIL {
            self.slots[next].prev = prev;
        }
        self.side_totals[side_index(order.side)] -= u128::from(order.remaining);
        let level = &mut self.levels[order.level];
        if level.orders <= 1 {
            match order.side {
                Side::Buy => self.bids.remove(&order.price),
                Side::Sell => self.asks.remove(&order.price),
            };
            self.free_levels.push(order.level);
        } else {
            level.orders -= 1;
            level.total -= order.remaining;
            if prev == NIL {
                level.head = next;
            }
            if next == NIL {
                level.tail = prev;
            }
        }
        self.free.push(slot);
        order
    }

    /// Takes `quantity` (at most what remains) off the order in `slot`,
    /// keeping its place in the queue.
    pub fn reduce(&mut self, slot: usize, quantity: Quantity) {
        let order = &mut self.slots[slot];
        order.remaining -= quantity;
        self.side_totals[side_index(order.side)] -= u128::from(quantity);
        self.levels[order.level].total -= quantity;
    }

    /// Resting orders of `side` in priority order (best price first, oldest
    /// first within a price).
    pub fn in_priority(&self, side: Side) -> impl Iterator<Item = &Resting> + '_ {
        let levels: Box<dyn Iterator<Item = &usize>> = match side {
            Side::Buy => Box::new(self.bids.values().rev()),
            Side::Sell => Box::new(self.asks.values()),
        };
        levels.flat_map(move |level| {
            let mut slot = self.levels.get(*level).map_or(NIL, |level| level.head);
            std::iter::from_fn(move || {
                let order = self.slots.get(slot)?;
                slot = order.next;
                Some(order)
            })
        })
    }

    /// The best `levels_max` levels of `side`, best first.
    pub fn depth(&self, side: Side, levels_max: usize) -> Vec<DepthLevel> {
        let view = |(price, level): (&Price, &usize)| {
            let level = self.levels.get(*level).copied().unwrap_or(EMPTY_LEVEL);
            DepthLevel {
                price: *price,
                quantity: level.total,
                orders: level.orders,
            }
        };
        match side {
            Side::Buy => self.bids.iter().rev().take(levels_max).map(view).collect(),
            Side::Sell => self.asks.iter().take(levels_max).map(view).collect(),
        }
    }
}
