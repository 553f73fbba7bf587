//! A naive reference engine: the same rules written the obvious way (flat
//! vectors in arrival order, linear scans), for differential testing.

use malipo_matching::{
    CancelReason, Command, DepthLevel, Event, Fill, NewOrder, OrderId, OrderView, OwnerId,
    PairConfig, PairStatus, Price, Quantity, RejectReason, SelfTradePrevention, Side, TimeInForce,
};

#[derive(Debug, Clone)]
struct Open {
    id: OrderId,
    owner: OwnerId,
    side: Side,
    price: Price,
    quantity: Quantity,
    post_only: bool,
    self_trade: SelfTradePrevention,
}

#[derive(Debug, Clone)]
struct Waiting {
    order: NewOrder,
    trigger: Price,
}

#[derive(Debug, Clone)]
struct Taker {
    id: OrderId,
    owner: OwnerId,
    side: Side,
    limit: Option<Price>,
    quantity: Quantity,
    time_in_force: TimeInForce,
    self_trade: SelfTradePrevention,
}

pub struct Reference {
    config: PairConfig,
    /// Resting orders in arrival order: earlier means higher priority at
    /// one price.
    resting: Vec<Open>,
    /// Stop orders in arrival order.
    stops: Vec<Waiting>,
    last_price: Option<Price>,
    sequence: u64,
    changed: bool,
}

fn crosses(side: Side, limit: Option<Price>, price: Price) -> bool {
    match side {
        Side::Buy => limit.is_none_or(|limit| price <= limit),
        Side::Sell => limit.is_none_or(|limit| price >= limit),
    }
}

fn limit_of(order: &NewOrder) -> Option<Price> {
    match order.kind {
        malipo_matching::OrderKind::Limit { price }
        | malipo_matching::OrderKind::StopLimit { price, .. } => Some(price),
        _ => None,
    }
}

fn trigger_of(order: &NewOrder) -> Option<Price> {
    match order.kind {
        malipo_matching::OrderKind::Stop { trigger }
        | malipo_matching::OrderKind::StopLimit { trigger, .. } => Some(trigger),
        _ => None,
    }
}

fn ceil_fee(notional: u128, bps: u16) -> u128 {
    (notional * u128::from(bps)).div_ceil(10_000)
}

impl Reference {
    pub fn new(config: PairConfig) -> Reference {
        Reference {
            config,
            resting: Vec::new(),
            stops: Vec::new(),
            last_price: None,
            sequence: 0,
            changed: false,
        }
    }

    pub fn apply(&mut self, command: &Command) -> Result<Vec<Event>, RejectReason> {
        self.changed = false;
        let mut events = Vec::new();
        match command {
            Command::Place(order) => self.place(order, &mut events)?,
            Command::Cancel { id, owner } => self.cancel(*id, *owner, &mut events)?,
            Command::Amend {
                id,
                owner,
                price,
                quantity,
            } => self.amend(*id, *owner, *price, *quantity, &mut events)?,
            Command::SetStatus(status) => {
                self.config.status = *status;
                events.push(Event::StatusChanged { status: *status });
            }
        }
        if self.changed {
            self.sequence += 1;
        }
        Ok(events)
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn last_trade_price(&self) -> Option<Price> {
        self.last_price
    }

    fn is_open(&self, id: OrderId) -> bool {
        self.resting.iter().any(|o| o.id == id) || self.stops.iter().any(|s| s.order.id == id)
    }

    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        if let Some(o) = self.resting.iter().find(|o| o.id == id) {
            return Some(OrderView {
                id,
                owner: o.owner,
                side: o.side,
                price: Some(o.price),
                trigger: None,
                quantity: o.quantity,
            });
        }
        self.stops
            .iter()
            .find(|s| s.order.id == id)
            .map(|s| OrderView {
                id,
                owner: s.order.owner,
                side: s.order.side,
                price: limit_of(&s.order),
                trigger: Some(s.trigger),
                quantity: s.order.quantity,
            })
    }

    /// Every level of `side`, best first.
    pub fn depth(&self, side: Side) -> Vec<DepthLevel> {
        let mut prices: Vec<Price> = self
            .resting
            .iter()
            .filter(|o| o.side == side)
            .map(|o| o.price)
            .collect();
        prices.sort_unstable();
        prices.dedup();
        if side == Side::Buy {
            prices.reverse();
        }
        prices
            .into_iter()
            .map(|price| {
                let at: Vec<&Open> = self
                    .resting
                    .iter()
                    .filter(|o| o.side == side && o.price == price)
                    .collect();
                DepthLevel {
                    price,
                    quantity: at.iter().map(|o| o.quantity).sum(),
                    orders: at.len(),
                }
            })
            .collect()
    }

    fn level_total(&self, side: Side, price: Price) -> u128 {
        self.resting
            .iter()
            .filter(|o| o.side == side && o.price == price)
            .map(|o| u128::from(o.quantity))
            .sum()
    }

    /// Index of the best resting order of `side`, if any.
    fn best(&self, side: Side) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, o) in self.resting.iter().enumerate() {
            if o.side != side {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => match side {
                    Side::Buy => o.price > self.resting[b].price,
                    Side::Sell => o.price < self.resting[b].price,
                },
            };
            if better {
                best = Some(i);
            }
        }
        best
    }

    fn makers_in_priority(&self, side: Side) -> Vec<Open> {
        let mut makers: Vec<(usize, Open)> = self
            .resting
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, o)| o.side == side)
            .collect();
        makers.sort_by_key(|(i, o)| {
            let price_key = match side {
                Side::Buy => u64::MAX - o.price,
                Side::Sell => o.price,
            };
            (price_key, *i)
        });
        makers.into_iter().map(|(_, o)| o).collect()
    }

    fn entry_check(&self, taker: &Taker) -> Result<(), RejectReason> {
        if taker.time_in_force == TimeInForce::PostOnly
            && let Some(best) = self.best(taker.side.opposite())
            && crosses(taker.side, taker.limit, self.resting[best].price)
        {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        if taker.time_in_force == TimeInForce::Fok {
            let mut available: u128 = 0;
            let mut enough = false;
            for maker in self.makers_in_priority(taker.side.opposite()) {
                if !crosses(taker.side, taker.limit, maker.price) {
                    break;
                }
                if maker.owner == taker.owner {
                    if taker.self_trade == SelfTradePrevention::CancelMaker {
                        continue;
                    }
                    break;
                }
                available += u128::from(maker.quantity);
                if available >= u128::from(taker.quantity) {
                    enough = true;
                    break;
                }
            }
            if !enough {
                return Err(RejectReason::CannotFillCompletely);
            }
        }
        let rests = matches!(
            taker.time_in_force,
            TimeInForce::Gtc | TimeInForce::PostOnly
        );
        if rests
            && let Some(price) = taker.limit
            && self.level_total(taker.side, price) + u128::from(taker.quantity)
                > u128::from(u64::MAX)
        {
            return Err(RejectReason::Overflow);
        }
        Ok(())
    }

    fn check_quantity_and_price(
        &self,
        quantity: Quantity,
        prices: &[Price],
    ) -> Result<(), RejectReason> {
        if quantity == 0 {
            return Err(RejectReason::ZeroQuantity);
        }
        if !quantity.is_multiple_of(self.config.lot_size) {
            return Err(RejectReason::QuantityNotMultipleOfLot);
        }
        for &price in prices {
            if price == 0 {
                return Err(RejectReason::ZeroPrice);
            }
            if price % self.config.tick_size != 0 {
                return Err(RejectReason::PriceNotMultipleOfTick);
            }
        }
        Ok(())
    }

    fn notional(&self, price: Price, quantity: Quantity) -> u128 {
        u128::from(price) * u128::from(quantity / self.config.lot_size)
    }

    fn place(&mut self, order: &NewOrder, events: &mut Vec<Event>) -> Result<(), RejectReason> {
        if self.config.status == PairStatus::Halted {
            return Err(RejectReason::PairHalted);
        }
        let prices: Vec<Price> = trigger_of(order)
            .into_iter()
            .chain(limit_of(order))
            .collect();
        self.check_quantity_and_price(order.quantity, &prices)?;
        let limit = limit_of(order);
        if limit.is_none() && order.time_in_force == TimeInForce::PostOnly {
            return Err(RejectReason::PostOnlyWithoutPrice);
        }
        if let Some(price) = limit
            && self.notional(price, order.quantity) < self.config.min_notional
        {
            return Err(RejectReason::BelowMinNotional);
        }
        if self.is_open(order.id) {
            return Err(RejectReason::DuplicateOrderId);
        }
        if self.resting.len() + self.stops.len() >= self.config.open_orders_max {
            return Err(RejectReason::TooManyOpenOrders);
        }
        if let Some(trigger) = trigger_of(order) {
            self.stops.push(Waiting {
                order: *order,
                trigger,
            });
            events.push(Event::Accepted { order: *order });
        } else {
            let taker = Taker {
                id: order.id,
                owner: order.owner,
                side: order.side,
                limit,
                quantity: order.quantity,
                time_in_force: order.time_in_force,
                self_trade: order.self_trade,
            };
            self.entry_check(&taker)?;
            events.push(Event::Accepted { order: *order });
            self.execute(taker, events);
        }
        self.triggers(events);
        Ok(())
    }

    fn cancel(
        &mut self,
        id: OrderId,
        owner: OwnerId,
        events: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let quantity = if let Some(i) = self.resting.iter().position(|o| o.id == id) {
            if self.resting[i].owner != owner {
                return Err(RejectReason::NotOwner);
            }
            self.changed = true;
            self.resting.remove(i).quantity
        } else if let Some(i) = self.stops.iter().position(|s| s.order.id == id) {
            if self.stops[i].order.owner != owner {
                return Err(RejectReason::NotOwner);
            }
            self.stops.remove(i).order.quantity
        } else {
            return Err(RejectReason::UnknownOrder);
        };
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
        if self.config.status == PairStatus::Halted {
            return Err(RejectReason::PairHalted);
        }
        let Some(i) = self.resting.iter().position(|o| o.id == id) else {
            if self.stops.iter().any(|s| s.order.id == id) {
                return Err(RejectReason::NotAmendable);
            }
            return Err(RejectReason::UnknownOrder);
        };
        let order = self.resting[i].clone();
        if order.owner != owner {
            return Err(RejectReason::NotOwner);
        }
        self.check_quantity_and_price(quantity, &[price])?;
        if self.notional(price, quantity) < self.config.min_notional {
            return Err(RejectReason::BelowMinNotional);
        }
        let kept = price == order.price && quantity <= order.quantity;
        let amended = Event::Amended {
            id,
            owner,
            price,
            old_quantity: order.quantity,
            quantity,
            priority_kept: kept,
        };
        if kept {
            if quantity < order.quantity {
                self.resting[i].quantity = quantity;
                self.changed = true;
            }
            events.push(amended);
            return Ok(());
        }
        let others = self.level_total(order.side, price)
            - if price == order.price {
                u128::from(order.quantity)
            } else {
                0
            };
        if others + u128::from(quantity) > u128::from(u64::MAX) {
            return Err(RejectReason::Overflow);
        }
        if order.post_only
            && let Some(best) = self.best(order.side.opposite())
            && crosses(order.side, Some(price), self.resting[best].price)
        {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        self.resting.remove(i);
        self.changed = true;
        events.push(amended);
        let taker = Taker {
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
        self.execute(taker, events);
        self.triggers(events);
        Ok(())
    }

    fn execute(&mut self, taker: Taker, events: &mut Vec<Event>) {
        let mut remaining = taker.quantity;
        let mut stopped_by_self_trade = false;
        while remaining > 0 {
            let Some(i) = self.best(taker.side.opposite()) else {
                break;
            };
            let maker = self.resting[i].clone();
            if !crosses(taker.side, taker.limit, maker.price) {
                break;
            }
            if maker.owner == taker.owner {
                let cancel_maker = taker.self_trade != SelfTradePrevention::CancelTaker;
                if cancel_maker {
                    self.resting.remove(i);
                    self.changed = true;
                    events.push(Event::Cancelled {
                        id: maker.id,
                        owner: maker.owner,
                        quantity: maker.quantity,
                        reason: CancelReason::SelfTrade,
                    });
                    events.push(Event::Done {
                        id: maker.id,
                        owner: maker.owner,
                    });
                }
                if taker.self_trade == SelfTradePrevention::CancelMaker {
                    continue;
                }
                stopped_by_self_trade = true;
                break;
            }
            let quantity = remaining.min(maker.quantity);
            let notional = self.notional(maker.price, quantity);
            events.push(Event::Fill(Fill {
                maker: maker.id,
                maker_owner: maker.owner,
                taker: taker.id,
                taker_owner: taker.owner,
                taker_side: taker.side,
                price: maker.price,
                quantity,
                notional,
                maker_fee: ceil_fee(notional, self.config.maker_fee_bps),
                taker_fee: ceil_fee(notional, self.config.taker_fee_bps),
            }));
            remaining -= quantity;
            self.last_price = Some(maker.price);
            self.changed = true;
            if quantity == maker.quantity {
                self.resting.remove(i);
                events.push(Event::Done {
                    id: maker.id,
                    owner: maker.owner,
                });
            } else {
                self.resting[i].quantity -= quantity;
            }
        }
        if remaining == 0 {
            events.push(Event::Done {
                id: taker.id,
                owner: taker.owner,
            });
            return;
        }
        let rests = matches!(
            taker.time_in_force,
            TimeInForce::Gtc | TimeInForce::PostOnly
        );
        if rests
            && !stopped_by_self_trade
            && let Some(price) = taker.limit
        {
            self.resting.push(Open {
                id: taker.id,
                owner: taker.owner,
                side: taker.side,
                price,
                quantity: remaining,
                post_only: taker.time_in_force == TimeInForce::PostOnly,
                self_trade: taker.self_trade,
            });
            self.changed = true;
            return;
        }
        events.push(Event::Cancelled {
            id: taker.id,
            owner: taker.owner,
            quantity: remaining,
            reason: if stopped_by_self_trade {
                CancelReason::SelfTrade
            } else {
                CancelReason::Unfilled
            },
        });
        events.push(Event::Done {
            id: taker.id,
            owner: taker.owner,
        });
    }

    fn next_triggered(&self, last: Price) -> Option<usize> {
        let mut best_buy: Option<usize> = None;
        let mut best_sell: Option<usize> = None;
        for (i, s) in self.stops.iter().enumerate() {
            let buy_first = s.order.side == Side::Buy
                && s.trigger <= last
                && best_buy.is_none_or(|b| s.trigger < self.stops[b].trigger);
            let sell_first = s.order.side == Side::Sell
                && s.trigger >= last
                && best_sell.is_none_or(|b| s.trigger > self.stops[b].trigger);
            if buy_first {
                best_buy = Some(i);
            }
            if sell_first {
                best_sell = Some(i);
            }
        }
        match (best_buy, best_sell) {
            (Some(b), Some(s)) => Some(b.min(s)),
            (one, None) | (None, one) => one,
        }
    }

    fn triggers(&mut self, events: &mut Vec<Event>) {
        while let Some(last) = self.last_price {
            let Some(i) = self.next_triggered(last) else {
                break;
            };
            let stop = self.stops.remove(i);
            let order = stop.order;
            events.push(Event::Triggered {
                id: order.id,
                owner: order.owner,
                last_price: last,
            });
            let taker = Taker {
                id: order.id,
                owner: order.owner,
                side: order.side,
                limit: limit_of(&order),
                quantity: order.quantity,
                time_in_force: order.time_in_force,
                self_trade: order.self_trade,
            };
            match self.entry_check(&taker) {
                Ok(()) => self.execute(taker, events),
                Err(reason) => {
                    events.push(Event::Rejected {
                        id: order.id,
                        owner: order.owner,
                        reason,
                    });
                    events.push(Event::Done {
                        id: order.id,
                        owner: order.owner,
                    });
                }
            }
        }
    }
}
