//! The resting orders: one `BTreeMap` of price levels per side, each level a
//! FIFO queue threaded through a slab of orders (doubly linked by slot
//! index), so that adding, cancelling and filling the head are O(1) in the
//! level and O(log levels) in the map.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

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

/// One price level, as seen by feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthLevel {
    pub price: Price,
    pub quantity: Quantity,
    pub orders: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Book {
    bids: BTreeMap<Price, Level>,
    asks: BTreeMap<Price, Level>,
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
    fn levels(&self, side: Side) -> &BTreeMap<Price, Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn levels_mut(&mut self, side: Side) -> &mut BTreeMap<Price, Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The best price of `side`: the highest bid or the lowest ask.
    pub fn best(&self, side: Side) -> Option<(Price, Quantity)> {
        let level = match side {
            Side::Buy => self.bids.last_key_value(),
            Side::Sell => self.asks.first_key_value(),
        };
        level.map(|(price, level)| (*price, level.total))
    }

    /// The slot of the oldest order at the best price of `side`.
    pub fn best_head(&self, side: Side) -> Option<usize> {
        let level = match side {
            Side::Buy => self.bids.last_key_value(),
            Side::Sell => self.asks.first_key_value(),
        };
        level.map(|(_, level)| level.head)
    }

    /// Whether `quantity` more fits in the level at `price` of `side`.
    pub fn fits(&self, side: Side, price: Price, quantity: Quantity) -> bool {
        let room = u128::from(Quantity::MAX) - u128::from(quantity);
        if self.side_totals[side_index(side)] <= room {
            return true;
        }
        let total = self.levels(side).get(&price).map_or(0, |level| level.total);
        total.checked_add(quantity).is_some()
    }

    pub fn get(&self, slot: usize) -> Option<&Resting> {
        self.slots.get(slot)
    }

    /// Appends `order` at the back of its level's queue; answers its slot.
    /// The caller has checked [`Book::fits`].
    pub fn insert(&mut self, order: Resting) -> usize {
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
        let (side, price, quantity) = (order.side, order.price, order.remaining);
        let level = self.levels_mut(side).entry(price).or_insert(Level {
            head: NIL,
            tail: NIL,
            total: 0,
            orders: 0,
        });
        let tail = level.tail;
        level.tail = slot;
        if tail == NIL {
            level.head = slot;
        }
        level.total = level.total.saturating_add(quantity);
        level.orders += 1;
        self.side_totals[side_index(side)] += u128::from(quantity);
        self.slots[slot].prev = tail;
        self.slots[slot].next = NIL;
        if tail != NIL {
            self.slots[tail].next = slot;
        }
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
        if let Entry::Occupied(mut entry) = self.levels_mut(order.side).entry(order.price) {
            let level = entry.get_mut();
            if level.orders <= 1 {
                entry.remove();
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
        }
        self.free.push(slot);
        order
    }

    /// Takes `quantity` (at most what remains) off the order in `slot`,
    /// keeping its place in the queue.
    pub fn reduce(&mut self, slot: usize, quantity: Quantity) {
        let order = &mut self.slots[slot];
        order.remaining -= quantity;
        let (side, price) = (order.side, order.price);
        self.side_totals[side_index(side)] -= u128::from(quantity);
        if let Some(level) = self.levels_mut(side).get_mut(&price) {
            level.total -= quantity;
        }
    }

    /// Resting orders of `side` in priority order (best price first, oldest
    /// first within a price).
    pub fn in_priority(&self, side: Side) -> impl Iterator<Item = &Resting> + '_ {
        let levels: Box<dyn Iterator<Item = &Level>> = match side {
            Side::Buy => Box::new(self.bids.values().rev()),
            Side::Sell => Box::new(self.asks.values()),
        };
        levels.flat_map(move |level| {
            let mut slot = level.head;
            std::iter::from_fn(move || {
                let order = self.slots.get(slot)?;
                slot = order.next;
                Some(order)
            })
        })
    }

    /// The best `levels_max` levels of `side`, best first.
    pub fn depth(&self, side: Side, levels_max: usize) -> Vec<DepthLevel> {
        let view = |(price, level): (&Price, &Level)| DepthLevel {
            price: *price,
            quantity: level.total,
            orders: level.orders,
        };
        match side {
            Side::Buy => self.bids.iter().rev().take(levels_max).map(view).collect(),
            Side::Sell => self.asks.iter().take(levels_max).map(view).collect(),
        }
    }
}
