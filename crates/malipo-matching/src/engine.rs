//! The state machine: `apply(command)` checks everything first, then
//! changes the book and answers the events. A refused command changes
//! nothing.

use serde::{Deserialize, Serialize};

use crate::book::{Book, DepthLevel, Resting};
use crate::fee::{fee, notional};
use crate::hash::IdMap;
use crate::stops::{StopBook, StopOrder};
use crate::{
    CancelReason, Command, ConfigError, Event, Fill, NewOrder, OrderId, OrderKind, OwnerId,
    PairConfig, PairStatus, Price, Quantity, RejectReason, SelfTradePrevention, Side, TimeInForce,
};

/// Where an open order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Location {
    Resting(usize),
    Stop,
}

/// An order entering the book: a new one, a triggered stop, or the
/// replacement of an amended one.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: OrderId,
    owner: OwnerId,
    side: Side,
    limit: Option<Price>,
    quantity: Quantity,
    time_in_force: TimeInForce,
    self_trade: SelfTradePrevention,
}

impl Entry {
    fn of(order: &NewOrder) -> Entry {
        Entry {
            id: order.id,
            owner: order.owner,
            side: order.side,
            limit: order.limit_price(),
            quantity: order.quantity,
            time_in_force: order.time_in_force,
            self_trade: order.self_trade,
        }
    }

    /// The price its remainder rests at, if it may rest.
    fn resting_price(&self) -> Option<Price> {
        match self.time_in_force {
            TimeInForce::Gtc | TimeInForce::PostOnly => self.limit,
            TimeInForce::Ioc | TimeInForce::Fok => None,
        }
    }
}

/// An open order, as queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: OrderId,
    pub owner: OwnerId,
    pub side: Side,
    /// The resting price, or a stop-limit's limit price.
    pub price: Option<Price>,
    /// Set for orders waiting in the stop book.
    pub trigger: Option<Price>,
    /// The open quantity.
    pub quantity: Quantity,
}

/// The book's top levels, with the sequence number of the last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    pub sequence: u64,
    pub bids: Vec<DepthLevel>,
    pub asks: Vec<DepthLevel>,
}

/// One pair's order book. Serializing it is a snapshot; deserializing a
/// snapshot and applying the commands logged after it gives the same state
/// as replaying the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    config: PairConfig,
    book: Book,
    stops: StopBook,
    index: IdMap<OrderId, Location>,
    last_trade_price: Option<Price>,
    /// Counts accepted orders and replacements: the time priority of stops.
    order_sequence: u64,
    /// Counts commands that changed the resting book (for feeds: a depth
    /// snapshot at sequence n plus the changes after n).
    book_sequence: u64,
    /// Scratch for one command: set by any change of the resting book,
    /// always false between commands.
    #[serde(skip)]
    book_changed: bool,
}

impl Engine {
    pub fn new(config: PairConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            config,
            book: Book::default(),
            stops: StopBook::default(),
            index: IdMap::default(),
            last_trade_price: None,
            order_sequence: 0,
            book_sequence: 0,
            book_changed: false,
        })
    }

    /// Applies one command: either every check passes and the events say
    /// what changed, or the command is refused and nothing changed.
    pub fn apply(&mut self, command: &Command) -> Result<Vec<Event>, RejectReason> {
        let mut events = Vec::new();
        self.apply_into(command, &mut events)?;
        Ok(events)
    }

    /// As [`Engine::apply`], appending to `events` (left as it was when the
    /// command is refused), so that a hot loop can reuse one buffer.
    pub fn apply_into(
        &mut self,
        command: &Command,
        events: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let result = match command {
            Command::Place(order) => self.place(order, events),
            Command::Cancel { id, owner } => self.cancel(*id, *owner, events),
            Command::Amend {
                id,
                owner,
                price,
                quantity,
            } => self.amend(*id, *owner, *price, *quantity, events),
            Command::SetStatus(status) => {
                self.config.status = *status;
                events.push(Event::StatusChanged { status: *status });
                Ok(())
            }
        };
        if self.book_changed {
            // 2^64 book changes outlast any venue: at a billion a second,
            // 584 years.
            self.book_sequence = self.book_sequence.saturating_add(1);
            self.book_changed = false;
        }
        result
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    pub fn best_bid(&self) -> Option<(Price, Quantity)> {
        self.book.best(Side::Buy)
    }

    pub fn best_ask(&self) -> Option<(Price, Quantity)> {
        self.book.best(Side::Sell)
    }

    pub fn last_trade_price(&self) -> Option<Price> {
        self.last_trade_price
    }

    pub fn book_sequence(&self) -> u64 {
        self.book_sequence
    }

    pub fn open_orders(&self) -> usize {
        self.index.len()
    }

    /// The best `levels_max` levels of each side, best first.
    pub fn depth(&self, levels_max: usize) -> Depth {
        Depth {
            sequence: self.book_sequence,
            bids: self.book.depth(Side::Buy, levels_max),
            asks: self.book.depth(Side::Sell, levels_max),
        }
    }

    /// The resting orders of `side` in the order a taker meets them: best
    /// price first, oldest first within a price (the router snapshots a
    /// book from this).
    pub fn resting_in_priority(&self, side: Side) -> impl Iterator<Item = OrderView> + '_ {
        self.book.in_priority(side).map(|order| OrderView {
            id: order.id,
            owner: order.owner,
            side: order.side,
            price: Some(order.price),
            trigger: None,
            quantity: order.remaining,
        })
    }

    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        match self.index.get(&id)? {
            Location::Resting(slot) => self.book.get(*slot).map(|order| OrderView {
                id: order.id,
                owner: order.owner,
                side: order.side,
                price: Some(order.price),
                trigger: None,
                quantity: order.remaining,
            }),
            Location::Stop => self.stops.get(id).map(|stop| OrderView {
                id,
                owner: stop.order.owner,
                side: stop.order.side,
                price: stop.order.limit_price(),
                trigger: Some(stop.trigger),
                quantity: stop.order.quantity,
            }),
        }
    }

    fn check_active(&self) -> Result<(), RejectReason> {
        match self.config.status {
            PairStatus::Active => Ok(()),
            PairStatus::Halted => Err(RejectReason::PairHalted),
        }
    }

    fn check_quantity(&self, quantity: Quantity) -> Result<(), RejectReason> {
        if quantity == 0 {
            return Err(RejectReason::ZeroQuantity);
        }
        // A lot of 1 needs no division (tens of cycles on the hot path).
        if self.config.lot_size != 1 && !quantity.is_multiple_of(self.config.lot_size) {
            return Err(RejectReason::QuantityNotMultipleOfLot);
        }
        Ok(())
    }

    fn check_price(&self, price: Price) -> Result<(), RejectReason> {
        if price == 0 {
            return Err(RejectReason::ZeroPrice);
        }
        if self.config.tick_size != 1 && !price.is_multiple_of(self.config.tick_size) {
            return Err(RejectReason::PriceNotMultipleOfTick);
        }
        Ok(())
    }

    fn check_notional(&self, price: Price, quantity: Quantity) -> Result<(), RejectReason> {
        if self.config.min_notional > 0
            && notional(price, quantity, self.config.lot_size) < self.config.min_notional
        {
            return Err(RejectReason::BelowMinNotional);
        }
        Ok(())
    }

    /// The checks that depend on the book, made just before an order
    /// enters it.
    fn check_entry(&self, entry: &Entry) -> Result<(), RejectReason> {
        let opposite = entry.side.opposite();
        if entry.time_in_force == TimeInForce::PostOnly
            && let Some((best, _)) = self.book.best(opposite)
            && entry.side.accepts(entry.limit, best)
        {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        if entry.time_in_force == TimeInForce::Fok && !self.fillable(entry) {
            return Err(RejectReason::CannotFillCompletely);
        }
        if let Some(price) = entry.resting_price()
            && !self.book.fits(entry.side, price, entry.quantity)
        {
            return Err(RejectReason::Overflow);
        }
        Ok(())
    }

    /// Whether matching would fill `entry` completely: walks the makers it
    /// would meet, as [`Engine::execute`] does, without changing anything.
    fn fillable(&self, entry: &Entry) -> bool {
        let mut available: Quantity = 0;
        for maker in self.book.in_priority(entry.side.opposite()) {
            if !entry.side.accepts(entry.limit, maker.price) {
                return false;
            }
            if maker.owner == entry.owner {
                match entry.self_trade {
                    SelfTradePrevention::CancelMaker => continue,
                    SelfTradePrevention::CancelTaker | SelfTradePrevention::CancelBoth => {
                        return false;
                    }
                }
            }
            available = available.saturating_add(maker.remaining);
            if available >= entry.quantity {
                return true;
            }
        }
        false
    }

    fn next_order_sequence(&mut self) -> u64 {
        self.order_sequence = self.order_sequence.saturating_add(1);
        self.order_sequence
    }

    fn place(&mut self, order: &NewOrder, events: &mut Vec<Event>) -> Result<(), RejectReason> {
        self.check_active()?;
        self.check_quantity(order.quantity)?;
        if let Some(trigger) = order.trigger_price() {
            self.check_price(trigger)?;
        }
        let limit = order.limit_price();
        if let Some(price) = limit {
            self.check_price(price)?;
        }
        if limit.is_none() && order.time_in_force == TimeInForce::PostOnly {
            return Err(RejectReason::PostOnlyWithoutPrice);
        }
        if let Some(price) = limit {
            self.check_notional(price, order.quantity)?;
        }
        if self.index.contains_key(&order.id) {
            return Err(RejectReason::DuplicateOrderId);
        }
        if self.index.len() >= self.config.open_orders_max {
            return Err(RejectReason::TooManyOpenOrders);
        }
        match order.kind {
            OrderKind::Stop { trigger } | OrderKind::StopLimit { trigger, .. } => {
                let sequence = self.next_order_sequence();
                self.stops.insert(StopOrder {
                    order: *order,
                    trigger,
                    sequence,
                });
                self.index.insert(order.id, Location::Stop);
                events.push(Event::Accepted { order: *order });
            }
            OrderKind::Limit { .. } | OrderKind::Market => {
                let entry = Entry::of(order);
                self.check_entry(&entry)?;
                events.push(Event::Accepted { order: *order });
                self.execute(&entry, None, events);
            }
        }
        self.run_triggers(events);
        Ok(())
    }

    fn cancel(
        &mut self,
        id: OrderId,
        owner: OwnerId,
        events: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let location = *self.index.get(&id).ok_or(RejectReason::UnknownOrder)?;
        let quantity = match location {
            Location::Resting(slot) => {
                let order = self.book.get(slot).ok_or(RejectReason::UnknownOrder)?;
                if order.owner != owner {
                    return Err(RejectReason::NotOwner);
                }
                self.book_changed = true;
                self.book.remove(slot).remaining
            }
            Location::Stop => {
                let stop = self.stops.get(id).ok_or(RejectReason::UnknownOrder)?;
                if stop.order.owner != owner {
                    return Err(RejectReason::NotOwner);
                }
                let quantity = stop.order.quantity;
                self.stops.remove(id);
                quantity
            }
        };
        self.index.remove(&id);
        events.push(Event::Cancelled {
            id,
            owner,
            quantity,
            reason: CancelReason::Requested,
        });
        events.push(Event::Done { id, owner });
        Ok(())
    }

    fn amend(
        &mut self,
        id: OrderId,
        owner: OwnerId,
        price: Price,
        quantity: Quantity,
        events: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        self.check_active()?;
        let slot = match self.index.get(&id) {
            None => return Err(RejectReason::UnknownOrder),
            Some(Location::Stop) => return Err(RejectReason::NotAmendable),
            Some(Location::Resting(slot)) => *slot,
        };
        let order = *self.book.get(slot).ok_or(RejectReason::UnknownOrder)?;
        if order.owner != owner {
            return Err(RejectReason::NotOwner);
        }
        self.check_quantity(quantity)?;
        self.check_price(price)?;
        self.check_notional(price, quantity)?;
        let amended = Event::Amended {
            id,
            owner,
            price,
            old_quantity: order.remaining,
            quantity,
            priority_kept: price == order.price && quantity <= order.remaining,
        };
        if price == order.price && quantity <= order.remaining {
            if quantity < order.remaining {
                self.book.reduce(slot, order.remaining - quantity);
                self.book_changed = true;
            }
            events.push(amended);
            return Ok(());
        }
        let entry = Entry {
            id,
            owner,
            side: order.side,
            limit: Some(price),
            quantity,
            time_in_force: if order.post_only {
                TimeInForce::PostOnly
            } else {
                TimeInForce::Gtc
            },
            self_trade: order.self_trade,
        };
        // The order leaves the book before it re-enters: its own level must
        // not count against it.
        let own_level = if price == order.price {
            order.remaining
        } else {
            0
        };
        let fits = quantity
            .checked_sub(own_level)
            .is_none_or(|grows_by| self.book.fits(order.side, price, grows_by));
        if !fits {
            return Err(RejectReason::Overflow);
        }
        if entry.time_in_force == TimeInForce::PostOnly
            && let Some((best, _)) = self.book.best(order.side.opposite())
            && order.side.accepts(Some(price), best)
        {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        self.book.remove(slot);
        self.book_changed = true;
        events.push(amended);
        // The index keeps the id, pointing at the freed slot, until the
        // replacement rests (often in that same slot) or finishes.
        self.execute(&entry, Some(slot), events);
        self.run_triggers(events);
        Ok(())
    }

    /// Matches `entry` against the book, then rests or cancels what
    /// remains. Cannot fail: every check was made before. `indexed_at` is
    /// the slot the index still names for an amended order.
    fn execute(&mut self, entry: &Entry, indexed_at: Option<usize>, events: &mut Vec<Event>) {
        self.next_order_sequence();
        let maker_side = entry.side.opposite();
        let mut remaining = entry.quantity;
        let mut self_trade = false;
        while remaining > 0 {
            let Some(slot) = self.book.best_head(maker_side) else {
                break;
            };
            let Some(maker) = self.book.get(slot).copied() else {
                break;
            };
            if !entry.side.accepts(entry.limit, maker.price) {
                break;
            }
            if maker.owner == entry.owner {
                if entry.self_trade != SelfTradePrevention::CancelTaker {
                    self.remove_resting(slot, &maker, CancelReason::SelfTrade, events);
                }
                if entry.self_trade == SelfTradePrevention::CancelMaker {
                    continue;
                }
                self_trade = true;
                break;
            }
            let quantity = remaining.min(maker.remaining);
            let notional = notional(maker.price, quantity, self.config.lot_size);
            let fill = Fill {
                maker: maker.id,
                maker_owner: maker.owner,
                taker: entry.id,
                taker_owner: entry.owner,
                taker_side: entry.side,
                price: maker.price,
                quantity,
                notional,
                maker_fee: fee(notional, self.config.maker_fee_bps),
                taker_fee: fee(notional, self.config.taker_fee_bps),
            };
            events.push(Event::Fill(fill));
            remaining -= quantity;
            self.book_changed = true;
            self.last_trade_price = Some(maker.price);
            if quantity == maker.remaining {
                self.book.remove(slot);
                self.index.remove(&maker.id);
                events.push(Event::Done {
                    id: maker.id,
                    owner: maker.owner,
                });
            } else {
                self.book.reduce(slot, quantity);
            }
        }
        let done = Event::Done {
            id: entry.id,
            owner: entry.owner,
        };
        let resting_price = entry
            .resting_price()
            .filter(|_| !self_trade && remaining > 0);
        if resting_price.is_none() && indexed_at.is_some() {
            self.index.remove(&entry.id);
        }
        if remaining == 0 {
            events.push(done);
            return;
        }
        if let Some(price) = resting_price {
            let slot = self.book.insert(Resting::new(
                entry.id,
                entry.owner,
                entry.side,
                price,
                remaining,
                entry.time_in_force == TimeInForce::PostOnly,
                entry.self_trade,
            ));
            if indexed_at != Some(slot) {
                self.index.insert(entry.id, Location::Resting(slot));
            }
            self.book_changed = true;
            return;
        }
        events.push(Event::Cancelled {
            id: entry.id,
            owner: entry.owner,
            quantity: remaining,
            reason: if self_trade {
                CancelReason::SelfTrade
            } else {
                CancelReason::Unfilled
            },
        });
        events.push(done);
    }

    fn remove_resting(
        &mut self,
        slot: usize,
        order: &Resting,
        reason: CancelReason,
        events: &mut Vec<Event>,
    ) {
        self.book.remove(slot);
        self.index.remove(&order.id);
        self.book_changed = true;
        events.push(Event::Cancelled {
            id: order.id,
            owner: order.owner,
            quantity: order.remaining,
            reason,
        });
        events.push(Event::Done {
            id: order.id,
            owner: order.owner,
        });
    }

    /// Enters every stop order the last trade price triggers, one at a
    /// time (see the crate docs).
    fn run_triggers(&mut self, events: &mut Vec<Event>) {
        while let Some(last_price) = self.last_trade_price {
            let Some(stop) = self.stops.pop_triggered(last_price) else {
                break;
            };
            let (id, owner) = (stop.order.id, stop.order.owner);
            self.index.remove(&id);
            events.push(Event::Triggered {
                id,
                owner,
                last_price,
            });
            let entry = Entry::of(&stop.order);
            match self.check_entry(&entry) {
                Ok(()) => self.execute(&entry, None, events),
                Err(reason) => {
                    events.push(Event::Rejected { id, owner, reason });
                    events.push(Event::Done { id, owner });
                }
            }
        }
    }

    /// Open stop orders (for tests and audits).
    pub fn stop_orders(&self) -> usize {
        self.stops.len()
    }
}
