//! Splitting one input across two paths.
//!
//! The output of a pool path is concave in its input (each hop is
//! `x -> a*x / (b + c*x)`, and a composition of increasing concave
//! functions is concave), so the total `f(x) + g(input - x)` of two paths
//! that share no venue has one peak, found by ternary search over the
//! integer split `x`: about `1.7 * log2(input)` rounds of two quotes each.
//! Rounding down in every hop makes the curve flat in places at the scale
//! of a few minor units, so the split found may miss the very best by that
//! much; it is compared with the single paths and used only when it is
//! strictly better, so a route never gives less than its best single path.
//!
//! A book's output is only roughly concave (whole lots, fees rounded per
//! fill, prices that worsen level by level), so through a book the search
//! may miss the best split by a little more; the same comparison keeps it
//! from ever doing worse than the best single path.
//!
//! Only paths sharing no venue are paired: then the two parts do not move
//! each other's prices and the quote is exact whatever order they run in.
//! Only the [`SPLIT_CANDIDATES`] best single paths are paired (every pair
//! of them), which bounds the work of a quote.

use super::paths::{Candidate, path_output};
use crate::Venue;

/// How many of the best single paths are tried in pairs.
pub(crate) const SPLIT_CANDIDATES: usize = 6;

/// A split of the input: `first_in` goes through `first`, the rest through
/// `second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) first: usize,
    pub(crate) second: usize,
    pub(crate) first_in: u128,
    pub(crate) amount_out: u128,
}

/// The best split over pairs of the leading paths (best first, at most
/// [`SPLIT_CANDIDATES`]) that beats the best single path, if any does.
pub(crate) fn best_split(
    venues: &[Venue],
    leaders: &[Candidate],
    amount_in: u128,
) -> Option<Split> {
    let single_best = leaders.first()?.amount_out;
    let mut best: Option<Split> = None;
    for (first, a) in leaders.iter().enumerate() {
        for (second, b) in leaders.iter().enumerate().skip(first + 1) {
            if a.shares_a_venue_with(b) {
                continue;
            }
            let Some((first_in, amount_out)) = search(venues, a, b, amount_in) else {
                continue;
            };
            let to_beat = best.map_or(single_best, |split| split.amount_out);
            if amount_out > to_beat {
                best = Some(Split {
                    first,
                    second,
                    first_in,
                    amount_out,
                });
            }
        }
    }
    best
}

/// The best `x` strictly between 0 and `amount_in` for sending `x` through
/// `a` and the rest through `b`, with the total output.
fn search(venues: &[Venue], a: &Candidate, b: &Candidate, amount_in: u128) -> Option<(u128, u128)> {
    if amount_in < 2 {
        return None;
    }
    let total = |x: u128| -> Option<u128> {
        let out_a = path_output(venues, a.steps(), x)?;
        let out_b = path_output(venues, b.steps(), amount_in - x)?;
        out_a.checked_add(out_b)
    };
    // A part that fails or gives nothing counts as worse than any output.
    let score = |x: u128| total(x).map_or(0, |out| out + 1);
    let (mut low, mut high) = (1, amount_in - 1);
    while high - low > 2 {
        let third = (high - low) / 3;
        let (left, right) = (low + third, high - third);
        if score(left) < score(right) {
            low = left;
        } else {
            high = right;
        }
    }
    (low..=high)
        .filter_map(|x| Some((x, total(x)?)))
        .max_by_key(|(x, out)| (*out, std::cmp::Reverse(*x)))
}
