//! The router: the best way to turn an amount of one asset into another
//! across a set of venues, and its execution, all legs or none.
//!
//! [`Venues::quote`] walks every path of up to `max_hops` (at most
//! [`HOPS_MAX`]) hops, quoting each as it goes (see `paths.rs` for the
//! pruning), takes the one giving the most output (ties: fewer hops, then
//! venue order), and, when asked, tries splitting the input across two
//! paths that share no venue (see `split.rs`). The answer names each part's
//! hops with their amounts, the expected output and the price impact.
//!
//! [`Venues::execute`] replays a route's parts hop by hop on copies of the
//! venues it touches and writes them back only if every hop succeeded and
//! the total reaches the caller's minimum. On unchanged venues it gives
//! exactly the quoted output.

mod execute;
mod graph;
mod impact;
mod paths;
mod split;

use std::collections::HashMap;

use malipo_core::Asset;

use crate::{AmmError, Movement, Venue, VenueId};
use graph::Graph;
use impact::{PricedPart, path_mid_price, price_impact_bps};
use paths::{Candidate, Step, enumerate};

/// The most hops a path may have.
pub const HOPS_MAX: usize = 3;

/// The most venues one router holds.
pub const VENUES_MAX: usize = 1_024;

/// The most hop quotes one route search may make. 100 pools give at most a
/// few tens of thousands of paths of three hops; past this limit the search
/// stops with [`RouteError::TooManyPaths`] rather than run unbounded.
pub const HOP_QUOTES_MAX: usize = 200_000;

/// What to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    pub asset_in: Asset,
    pub asset_out: Asset,
    pub amount_in: u128,
    /// The quote is refused below this output (0: no minimum).
    pub min_amount_out: u128,
    /// 1 to [`HOPS_MAX`].
    pub max_hops: usize,
    /// Whether the input may be split across two paths.
    pub split: bool,
}

/// One hop of a route: offer `amount_in` of `asset_in` on `venue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub venue: VenueId,
    pub asset_in: Asset,
    pub asset_out: Asset,
    pub amount_in: u128,
    /// The part of `amount_in` the venue did not use, left with the trader:
    /// always 0 on a pool; on a book, what is short of a whole lot or
    /// beyond its depth (see `book.rs`).
    pub amount_unspent: u128,
    pub amount_out: u128,
}

/// One path of a route and the part of the input that goes through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePart {
    pub hops: Vec<Hop>,
    pub amount_in: u128,
    pub amount_out: u128,
}

/// A quoted route: one part, or two when splitting gives more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub asset_in: Asset,
    pub asset_out: Asset,
    pub amount_in: u128,
    pub amount_out: u128,
    pub parts: Vec<RoutePart>,
    /// The shortfall against the paths' mid prices, fees included, in basis
    /// points rounded up (exact rational arithmetic, see `impact.rs`).
    pub price_impact_bps: u32,
    /// How many complete paths were compared.
    pub paths_considered: usize,
    /// How many hop quotes the search made.
    pub hop_quotes: usize,
}

/// What executing a route did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub amount_out: u128,
    /// The hops as executed, part by part.
    pub parts: Vec<RoutePart>,
    /// To settle as one linked ledger batch: the trader pays the first
    /// venue of each part, each venue pays the next, the last pays the
    /// trader.
    pub movements: Vec<Movement>,
}

/// Why a route could not be quoted or executed. A refused execution
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("at most {max} venues, got {count}")]
    TooManyVenues { count: usize, max: usize },
    #[error("venue `{0}` appears twice")]
    DuplicateVenue(VenueId),
    #[error("the input and output assets must differ")]
    SameAsset,
    #[error("the amount must not be zero")]
    ZeroAmount,
    #[error("max_hops must be 1 to {max}, got {requested}")]
    HopsOutOfRange { requested: usize, max: usize },
    #[error("no path from `{from}` to `{to}` gives any output")]
    NoRoute { from: Asset, to: Asset },
    #[error("the search would take more than {max} hop quotes")]
    TooManyPaths { max: usize },
    #[error("slippage: the route gives {expected}, below the minimum {minimum}")]
    Slippage { minimum: u128, expected: u128 },
    #[error("venue `{0}` is not in this router")]
    UnknownVenue(VenueId),
    #[error("the route does not chain from its input asset to its output asset")]
    MalformedRoute,
    #[error("venue `{venue}` refused its hop: {error}")]
    Venue { venue: VenueId, error: AmmError },
    #[error("the deadline {deadline_ms} ms has passed (now {now_ms} ms)")]
    Expired { deadline_ms: i64, now_ms: i64 },
    #[error("an amount is too large to represent")]
    Overflow,
}

/// The venues a router quotes and executes against.
#[derive(Debug, Clone)]
pub struct Venues {
    venues: Vec<Venue>,
    by_id: HashMap<VenueId, usize>,
    graph: Graph,
}

impl Venues {
    /// At most [`VENUES_MAX`] venues with distinct ids.
    pub fn new(venues: Vec<Venue>) -> Result<Self, RouteError> {
        if venues.len() > VENUES_MAX {
            return Err(RouteError::TooManyVenues {
                count: venues.len(),
                max: VENUES_MAX,
            });
        }
        let mut by_id = HashMap::with_capacity(venues.len());
        for (index, venue) in venues.iter().enumerate() {
            if by_id.insert(venue.id().clone(), index).is_some() {
                return Err(RouteError::DuplicateVenue(venue.id().clone()));
            }
        }
        let graph = Graph::new(&venues);
        Ok(Venues {
            venues,
            by_id,
            graph,
        })
    }

    /// The venues, in the order given.
    pub fn venues(&self) -> &[Venue] {
        &self.venues
    }

    pub fn get(&self, id: &VenueId) -> Option<&Venue> {
        self.by_id.get(id).map(|index| &self.venues[*index])
    }

    /// The best route for the request. See the module docs.
    pub fn quote(&self, request: &RouteRequest) -> Result<Route, RouteError> {
        let RouteRequest {
            asset_in,
            asset_out,
            amount_in,
            min_amount_out,
            max_hops,
            split,
        } = *request;
        if asset_in == asset_out {
            return Err(RouteError::SameAsset);
        }
        if amount_in == 0 {
            return Err(RouteError::ZeroAmount);
        }
        if max_hops == 0 || max_hops > HOPS_MAX {
            return Err(RouteError::HopsOutOfRange {
                requested: max_hops,
                max: HOPS_MAX,
            });
        }
        let no_route = RouteError::NoRoute {
            from: asset_in,
            to: asset_out,
        };
        let (Some(&from), Some(&to)) = (
            self.graph.index.get(&asset_in),
            self.graph.index.get(&asset_out),
        ) else {
            return Err(no_route);
        };
        let (candidates, hop_quotes) =
            enumerate(&self.graph, &self.venues, from, to, amount_in, max_hops)?;
        let leaders = leaders(&candidates);
        let Some(best) = leaders.first() else {
            return Err(no_route);
        };
        let split = if split {
            split::best_split(&self.venues, &leaders, amount_in)
        } else {
            None
        };
        let parts: Vec<(&Candidate, u128)> = match split {
            Some(split) => vec![
                (&leaders[split.first], split.first_in),
                (&leaders[split.second], amount_in - split.first_in),
            ],
            None => vec![(best, amount_in)],
        };
        let route = self.route_of(request, &parts, candidates.len(), hop_quotes)?;
        if route.amount_out < min_amount_out {
            return Err(RouteError::Slippage {
                minimum: min_amount_out,
                expected: route.amount_out,
            });
        }
        Ok(route)
    }

    /// Spells out the chosen parts hop by hop and prices them.
    fn route_of(
        &self,
        request: &RouteRequest,
        parts: &[(&Candidate, u128)],
        paths_considered: usize,
        hop_quotes: usize,
    ) -> Result<Route, RouteError> {
        let mut route_parts = Vec::with_capacity(parts.len());
        let mut priced = Vec::with_capacity(parts.len());
        let mut amount_out = 0u128;
        for (candidate, part_in) in parts {
            let part = self.spell_out(candidate.steps(), *part_in)?;
            let (mid_out, mid_in) = path_mid_price(
                candidate
                    .steps()
                    .iter()
                    .map(|step| {
                        let venue = &self.venues[step.venue];
                        venue
                            .mid_price(step.asset_in)
                            .map_err(|error| venue_error(venue, error))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            );
            priced.push(PricedPart {
                amount_in: *part_in,
                mid_out,
                mid_in,
            });
            amount_out = amount_out
                .checked_add(part.amount_out)
                .ok_or(RouteError::Overflow)?;
            route_parts.push(part);
        }
        Ok(Route {
            asset_in: request.asset_in,
            asset_out: request.asset_out,
            amount_in: request.amount_in,
            amount_out,
            price_impact_bps: price_impact_bps(&priced, amount_out)?,
            parts: route_parts,
            paths_considered,
            hop_quotes,
        })
    }

    fn spell_out(&self, steps: &[Step], amount_in: u128) -> Result<RoutePart, RouteError> {
        let mut hops = Vec::with_capacity(steps.len());
        let mut amount = amount_in;
        for step in steps {
            let venue = &self.venues[step.venue];
            let trade = venue
                .trade_exact_in(step.asset_in, amount)
                .map_err(|error| venue_error(venue, error))?;
            let asset_out = other_asset(venue, step.asset_in);
            hops.push(Hop {
                venue: venue.id().clone(),
                asset_in: step.asset_in,
                asset_out,
                amount_in: amount,
                amount_unspent: amount - trade.amount_spent,
                amount_out: trade.amount_out,
            });
            amount = trade.amount_out;
        }
        Ok(RoutePart {
            hops,
            amount_in,
            amount_out: amount,
        })
    }
}

/// The [`split::SPLIT_CANDIDATES`] best paths, best first: most output,
/// then fewest hops, then the order found (venue order), so quotes are
/// deterministic. Ranks keys, not the paths themselves, to keep it cheap.
fn leaders(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut keys: Vec<_> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| (std::cmp::Reverse(c.amount_out), c.steps().len(), index))
        .collect();
    keys.sort_unstable();
    keys.iter()
        .take(split::SPLIT_CANDIDATES)
        .map(|(_, _, index)| candidates[*index])
        .collect()
}

fn other_asset(venue: &Venue, asset: Asset) -> Asset {
    let [a, b] = venue.assets();
    if a == asset { b } else { a }
}

fn venue_error(venue: &Venue, error: AmmError) -> RouteError {
    RouteError::Venue {
        venue: venue.id().clone(),
        error,
    }
}
