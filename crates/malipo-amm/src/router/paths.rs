//! Every path of up to `hops_max` hops from one asset to another, each
//! quoted as it is walked (depth first, so paths sharing a prefix share its
//! quotes).
//!
//! Pruning, none of which can drop a path that gives any output:
//! - an asset is never visited twice on a path (a cycle only pays fees);
//! - a step is taken only if the target is still reachable in the hops left
//!   (distances from the target, by breadth-first search over the assets);
//! - a step whose quote fails or gives nothing ends that branch: every path
//!   through it would fail or give nothing too.

use std::collections::VecDeque;

use malipo_core::Asset;

use super::graph::Graph;
use super::{HOP_QUOTES_MAX, HOPS_MAX, RouteError};
use crate::Venue;

/// One hop of a path: sell `asset_in` on the venue at this index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) venue: usize,
    /// Which of the venue's assets is sold (0 or 1), for quoting.
    pub(crate) side_in: usize,
    pub(crate) asset_in: Asset,
}

/// A complete path and what it gives for the whole input. The steps are
/// kept inline (a search finds dozens of paths per quote; no allocation
/// each).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    steps: [Step; HOPS_MAX],
    hops: usize,
    pub(crate) amount_out: u128,
}

impl Candidate {
    /// `None` for an empty path or one longer than [`HOPS_MAX`].
    fn new(path: &[Step], amount_out: u128) -> Option<Self> {
        let first = *path.first()?;
        let mut steps = [first; HOPS_MAX];
        steps.get_mut(..path.len())?.copy_from_slice(path);
        Some(Candidate {
            steps,
            hops: path.len(),
            amount_out,
        })
    }

    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps[..self.hops]
    }

    pub(crate) fn shares_a_venue_with(&self, other: &Candidate) -> bool {
        self.steps()
            .iter()
            .any(|step| other.steps().iter().any(|o| o.venue == step.venue))
    }
}

/// What a path gives for `amount_in`: `Some(0)` for no input, `None` when a
/// hop fails or gives nothing (such a path cannot be executed).
pub(crate) fn path_output(venues: &[Venue], steps: &[Step], amount_in: u128) -> Option<u128> {
    if amount_in == 0 {
        return Some(0);
    }
    let mut amount = amount_in;
    for step in steps {
        amount = venues[step.venue]
            .quote_side_in(step.side_in, amount)
            .ok()
            .filter(|out| *out > 0)?;
    }
    Some(amount)
}

/// Every path from `from` to `to` with at most `hops_max` hops that gives a
/// positive output for `amount_in`, in a deterministic order, and how many
/// hop quotes it took.
pub(crate) fn enumerate(
    graph: &Graph,
    venues: &[Venue],
    from: usize,
    to: usize,
    amount_in: u128,
    hops_max: usize,
) -> Result<(Vec<Candidate>, usize), RouteError> {
    let mut search = Search {
        graph,
        venues,
        target: to,
        distance: distances_to(graph, to),
        visited: vec![false; graph.assets.len()],
        steps: Vec::with_capacity(hops_max),
        found: Vec::new(),
        quotes: 0,
    };
    search.visited[from] = true;
    search.visit(from, amount_in, hops_max)?;
    Ok((search.found, search.quotes))
}

struct Search<'a> {
    graph: &'a Graph,
    venues: &'a [Venue],
    target: usize,
    distance: Vec<usize>,
    visited: Vec<bool>,
    steps: Vec<Step>,
    found: Vec<Candidate>,
    quotes: usize,
}

impl Search<'_> {
    fn visit(&mut self, at: usize, amount: u128, hops_left: usize) -> Result<(), RouteError> {
        let graph = self.graph;
        let asset_in = graph.assets[at];
        for edge in &graph.edges[at] {
            if self.visited[edge.to] || self.distance[edge.to] >= hops_left {
                continue;
            }
            self.quotes += 1;
            if self.quotes > HOP_QUOTES_MAX {
                return Err(RouteError::TooManyPaths {
                    max: HOP_QUOTES_MAX,
                });
            }
            let Ok(out) = self.venues[edge.venue].quote_side_in(edge.side_in, amount) else {
                continue;
            };
            if out == 0 {
                continue;
            }
            self.steps.push(Step {
                venue: edge.venue,
                side_in: edge.side_in,
                asset_in,
            });
            if edge.to == self.target {
                self.found.extend(Candidate::new(&self.steps, out));
            } else {
                self.visited[edge.to] = true;
                self.visit(edge.to, out, hops_left - 1)?;
                self.visited[edge.to] = false;
            }
            self.steps.pop();
        }
        Ok(())
    }
}

/// Hops from each asset to `target` (`usize::MAX` where unreachable).
fn distances_to(graph: &Graph, target: usize) -> Vec<usize> {
    let mut distance = vec![usize::MAX; graph.assets.len()];
    distance[target] = 0;
    let mut queue = VecDeque::from([target]);
    while let Some(at) = queue.pop_front() {
        for edge in &graph.edges[at] {
            if distance[edge.to] == usize::MAX {
                distance[edge.to] = distance[at] + 1;
                queue.push_back(edge.to);
            }
        }
    }
    distance
}
