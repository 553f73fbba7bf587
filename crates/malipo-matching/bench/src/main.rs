//! The matching engine's benchmark: one mixed workload (see `workload.rs`)
//! on malipo-matching and on published order books, one after another on
//! the same core, reporting operations per second and per-operation
//! latency.
//!
//! Run (see docs/benchmarks.md):
//! `taskset -c 1 cargo run --release --manifest-path crates/malipo-matching/bench/Cargo.toml -- 2000000`

mod venues;
mod workload;

use std::hint::black_box;
use std::time::Instant;

use venues::{Lobster, Malipo, Matchcore, OrderbookRs, Venue};
use workload::{Op, Workload, generate};

struct Figures {
    name: &'static str,
    refused: usize,
    /// Median of the rounds.
    ops_per_second: f64,
    best_ops_per_second: f64,
    p50_ns: u64,
    p99_ns: u64,
    p9999_ns: u64,
    max_ns: u64,
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or(0)
}

/// Operations per second over the whole stream, on a fresh book.
fn throughput<V: Venue>(workload: &Workload) -> (f64, usize) {
    let (mut venue, prepared) = V::prepare(workload);
    let first = workload.prefill.len();
    for index in 0..first {
        venue.apply(&prepared, index);
    }
    let last = first + workload.ops.len();
    let mut refused = 0usize;
    let start = Instant::now();
    for index in first..last {
        refused += usize::from(!venue.apply(&prepared, black_box(index)));
    }
    let elapsed = start.elapsed();
    (workload.ops.len() as f64 / elapsed.as_secs_f64(), refused)
}

/// Each operation timed on its own (which adds the clock's cost, about
/// 20 ns), on a fresh book: p50, p99, p99.99, max in nanoseconds.
fn latency<V: Venue>(workload: &Workload) -> [u64; 4] {
    let (mut venue, prepared) = V::prepare(workload);
    let first = workload.prefill.len();
    for index in 0..first {
        venue.apply(&prepared, index);
    }
    let mut latencies = Vec::with_capacity(workload.ops.len());
    for index in first..first + workload.ops.len() {
        let start = Instant::now();
        black_box(venue.apply(&prepared, black_box(index)));
        latencies.push(start.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    [
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.9999),
        latencies.last().copied().unwrap_or(0),
    ]
}

struct Runner {
    name: &'static str,
    throughput: fn(&Workload) -> (f64, usize),
    latency: fn(&Workload) -> [u64; 4],
}

fn runner<V: Venue>() -> Runner {
    Runner {
        name: V::NAME,
        throughput: throughput::<V>,
        latency: latency::<V>,
    }
}

/// Rounds of the throughput pass, engines taking turns, so that a burst of
/// load from other processes on this shared machine hits all of them.
const ROUNDS: usize = 5;

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(2_000_000);
    let workload = generate(count, 0x6d61_6c69_706f);
    let mut mix = [0usize; 5];
    for op in &workload.ops {
        let slot = match op {
            Op::Move { .. } => 0,
            Op::Cancel { .. } => 1,
            Op::Reduce { .. } => 2,
            Op::Limit {
                immediate_or_cancel: false,
                ..
            } => 3,
            Op::Limit { .. } => 4,
        };
        mix[slot] += 1;
    }
    let share = |n: usize| 100.0 * n as f64 / workload.ops.len() as f64;
    println!(
        "workload: {} prefill orders, {} operations: move {:.1}%, cancel {:.1}%, reduce {:.1}%, GTC limit {:.1}%, IOC {:.1}%",
        workload.prefill.len(),
        workload.ops.len(),
        share(mix[0]),
        share(mix[1]),
        share(mix[2]),
        share(mix[3]),
        share(mix[4]),
    );
    // A second argument runs only the engines whose names contain it (for
    // profiling one of them).
    let only = std::env::args().nth(2).unwrap_or_default();
    let runners: Vec<Runner> = [
        runner::<Malipo>(),
        runner::<Lobster>(),
        runner::<Matchcore>(),
        runner::<OrderbookRs>(),
    ]
    .into_iter()
    .filter(|runner| runner.name.contains(only.as_str()))
    .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let mut refused = vec![0usize; runners.len()];
    for _ in 0..ROUNDS {
        for (index, runner) in runners.iter().enumerate() {
            let (rate, count) = (runner.throughput)(&workload);
            rates[index].push(rate);
            refused[index] = count;
        }
    }
    let figures: Vec<Figures> = runners
        .iter()
        .enumerate()
        .map(|(index, runner)| {
            let mut sorted = rates[index].clone();
            sorted.sort_by(f64::total_cmp);
            let [p50_ns, p99_ns, p9999_ns, max_ns] = (runner.latency)(&workload);
            Figures {
                name: runner.name,
                refused: refused[index],
                ops_per_second: sorted[sorted.len() / 2],
                best_ops_per_second: sorted.last().copied().unwrap_or(0.0),
                p50_ns,
                p99_ns,
                p9999_ns,
                max_ns,
            }
        })
        .collect();
    let ours = figures.first().map_or(1.0, |f| f.ops_per_second);
    println!(
        "| engine | ops/s (median of {ROUNDS}) | best | vs malipo | p50 (ns) | p99 (ns) | p99.99 (ns) | max (ns) | refused |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for f in &figures {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {} | {} | {} | {} | {} |",
            f.name,
            f.ops_per_second,
            f.best_ops_per_second,
            f.ops_per_second / ours,
            f.p50_ns,
            f.p99_ns,
            f.p9999_ns,
            f.max_ns,
            f.refused
        );
    }
}
