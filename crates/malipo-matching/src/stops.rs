//! Stop and stop-limit orders, kept apart from the book until the last
//! trade price reaches their trigger.
//!
//! Order of triggering, one at a time: among buy stops whose trigger is at
//! or below the last price, the lowest trigger (then the oldest); among sell
//! stops whose trigger is at or above it, the highest trigger (then the
//! oldest); of those two, the older one. The triggered order trades before
//! the next is chosen, against the new last price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::IdMap;
use crate::{NewOrder, OrderId, Price, Side};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StopOrder {
    pub order: NewOrder,
    pub trigger: Price,
    /// Acceptance order, for ties.
    pub sequence: u64,
}

/// Serialized as the list of stop orders; the indexes are rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<StopOrder>", into = "Vec<StopOrder>")]
pub(crate) struct StopBook {
    orders: IdMap<OrderId, StopOrder>,
    /// (trigger, sequence): the first entry is the next to trigger.
    buys: BTreeMap<(Price, u64), OrderId>,
    /// (trigger, u64::MAX - sequence): the last entry is the next to trigger.
    sells: BTreeMap<(Price, u64), OrderId>,
}

fn key(stop: &StopOrder) -> (Price, u64) {
    match stop.order.side {
        Side::Buy => (stop.trigger, stop.sequence),
        Side::Sell => (stop.trigger, u64::MAX - stop.sequence),
    }
}

impl StopBook {
    pub fn insert(&mut self, stop: StopOrder) {
        let id = stop.order.id;
        match stop.order.side {
            Side::Buy => self.buys.insert(key(&stop), id),
            Side::Sell => self.sells.insert(key(&stop), id),
        };
        self.orders.insert(id, stop);
    }

    pub fn get(&self, id: OrderId) -> Option<&StopOrder> {
        self.orders.get(&id)
    }

    pub fn remove(&mut self, id: OrderId) -> Option<StopOrder> {
        let stop = self.orders.remove(&id)?;
        match stop.order.side {
            Side::Buy => self.buys.remove(&key(&stop)),
            Side::Sell => self.sells.remove(&key(&stop)),
        };
        Some(stop)
    }

    /// Removes and answers the next stop that `last_price` triggers.
    pub fn pop_triggered(&mut self, last_price: Price) -> Option<StopOrder> {
        let buy = self
            .buys
            .first_key_value()
            .filter(|((trigger, _), _)| *trigger <= last_price)
            .map(|((_, sequence), id)| (*sequence, *id));
        let sell = self
            .sells
            .last_key_value()
            .filter(|((trigger, _), _)| *trigger >= last_price)
            .map(|((_, inverted), id)| (u64::MAX - *inverted, *id));
        let (_, id) = match (buy, sell) {
            (Some(buy), Some(sell)) => buy.min(sell),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => return None,
        };
        self.remove(id)
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }
}

impl From<Vec<StopOrder>> for StopBook {
    fn from(stops: Vec<StopOrder>) -> StopBook {
        let mut book = StopBook::default();
        for stop in stops {
            book.insert(stop);
        }
        book
    }
}

impl From<StopBook> for Vec<StopOrder> {
    fn from(book: StopBook) -> Vec<StopOrder> {
        let mut stops: Vec<StopOrder> = book.orders.into_values().collect();
        stops.sort_by_key(|stop| stop.sequence);
        stops
    }
}
