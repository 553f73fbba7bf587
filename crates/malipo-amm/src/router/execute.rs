//! Executing a route: all hops or none.

use std::collections::BTreeMap;

use super::{Execution, Hop, Route, RouteError, RoutePart, Venues, other_asset, venue_error};
use crate::{Deadline, Movement, Party, Venue};

impl Venues {
    /// Executes `route` for `trader`: each part's hops in order, on copies
    /// of the venues touched, written back only if every hop succeeds and
    /// the total output is at least `min_amount_out`. The hops' amounts are
    /// recomputed from the venues as they are now: on the venues the route
    /// was quoted on, that is exactly the quoted output.
    pub fn execute(
        &mut self,
        route: &Route,
        min_amount_out: u128,
        trader: &str,
        deadline: Deadline,
    ) -> Result<Execution, RouteError> {
        deadline.check().map_err(|_| RouteError::Expired {
            deadline_ms: deadline.deadline_ms,
            now_ms: deadline.now_ms,
        })?;
        check_shape(route)?;
        // Copies of the venues touched, by index, written back at the end.
        let mut touched: BTreeMap<usize, Venue> = BTreeMap::new();
        let mut parts = Vec::with_capacity(route.parts.len());
        let mut movements = Vec::new();
        let mut amount_out = 0u128;
        let trader = Party::Owner(trader.to_owned());
        for part in &route.parts {
            let mut amount = part.amount_in;
            let mut payer = trader.clone();
            let mut hops = Vec::with_capacity(part.hops.len());
            for hop in &part.hops {
                let index = *self
                    .by_id
                    .get(&hop.venue)
                    .ok_or_else(|| RouteError::UnknownVenue(hop.venue.clone()))?;
                let venue = touched
                    .entry(index)
                    .or_insert_with(|| self.venues[index].clone());
                let asset_out = other_asset(venue, hop.asset_in);
                if asset_out != hop.asset_out {
                    return Err(RouteError::MalformedRoute);
                }
                let trade = venue
                    .apply_exact_in(hop.asset_in, amount)
                    .map_err(|error| venue_error(venue, error))?;
                let venue_party = match venue {
                    Venue::Book(_) => Party::Book(venue.id().clone()),
                    _ => Party::Pool(venue.id().clone()),
                };
                let unspent = amount - trade.amount_spent;
                movements.push(Movement::asset(
                    payer.clone(),
                    venue_party.clone(),
                    hop.asset_in,
                    trade.amount_spent,
                ));
                // What a book leaves unspent goes back to the trader (or
                // stays there, on a first hop).
                if unspent > 0 && payer != trader {
                    movements.push(Movement::asset(
                        payer,
                        trader.clone(),
                        hop.asset_in,
                        unspent,
                    ));
                }
                hops.push(Hop {
                    venue: hop.venue.clone(),
                    asset_in: hop.asset_in,
                    asset_out,
                    amount_in: amount,
                    amount_unspent: unspent,
                    amount_out: trade.amount_out,
                });
                payer = venue_party;
                amount = trade.amount_out;
            }
            movements.push(Movement::asset(
                payer,
                trader.clone(),
                route.asset_out,
                amount,
            ));
            amount_out = amount_out.checked_add(amount).ok_or(RouteError::Overflow)?;
            parts.push(RoutePart {
                hops,
                amount_in: part.amount_in,
                amount_out: amount,
            });
        }
        if amount_out < min_amount_out {
            return Err(RouteError::Slippage {
                minimum: min_amount_out,
                expected: amount_out,
            });
        }
        for (index, venue) in touched {
            self.venues[index] = venue;
        }
        Ok(Execution {
            amount_out,
            parts,
            movements,
        })
    }
}

/// Every part must be a chain of hops from the route's input asset to its
/// output asset, the parts' inputs must add up to the route's, and no
/// venue may appear twice (a venue used twice would be quoted at a price
/// the first use has already moved).
fn check_shape(route: &Route) -> Result<(), RouteError> {
    let mut total_in = 0u128;
    let mut venues_seen = Vec::new();
    for part in &route.parts {
        if part.amount_in == 0 || part.hops.is_empty() {
            return Err(RouteError::MalformedRoute);
        }
        total_in = total_in
            .checked_add(part.amount_in)
            .ok_or(RouteError::Overflow)?;
        let mut asset = route.asset_in;
        for hop in &part.hops {
            if hop.asset_in != asset || venues_seen.contains(&&hop.venue) {
                return Err(RouteError::MalformedRoute);
            }
            venues_seen.push(&hop.venue);
            asset = hop.asset_out;
        }
        if asset != route.asset_out {
            return Err(RouteError::MalformedRoute);
        }
    }
    if route.parts.is_empty() || total_in != route.amount_in {
        return Err(RouteError::MalformedRoute);
    }
    Ok(())
}
