//! Router quotes per second over 100 pools, in the same run as a reference:
//! single-pool quotes per second (the unit of work a route search repeats).
//!
//! ```sh
//! cargo run --release -p malipo-amm --example router_bench [-- POOLS SECONDS]
//! ```
//!
//! The pools are generated from a fixed seed: each of the 18 assets in
//! [`BENCH_ASSETS`] is a node (a fixed list, so the figures stay comparable
//! as the asset table grows), pools join random pairs (some pairs get several pools with
//! different fees), reserves are 10^3 to 9 * 10^6 whole units of each asset,
//! and each trade sells 10 to 50,000 whole units of a random asset for
//! another random asset: from a trickle to more than a small pool holds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use malipo_amm::{AssetAmount, HOPS_MAX, NewPool, Pool, RouteRequest, Venue, VenueId, Venues};
use malipo_core::Asset;

/// A small deterministic generator (xorshift64*), so runs compare.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// Two different assets of [`BENCH_ASSETS`].
    fn two_assets(&mut self) -> (Asset, Asset) {
        let assets = bench_assets();
        loop {
            let a = assets[self.below(assets.len() as u64) as usize];
            let b = assets[self.below(assets.len() as u64) as usize];
            if a != b {
                return (a, b);
            }
        }
    }

    /// 10^low to 10^high, log-uniform-ish.
    fn magnitude(&mut self, low: u32, high: u32) -> u128 {
        let exponent = low + self.below(u64::from(high - low)) as u32;
        10u128.pow(exponent) * (1 + u128::from(self.below(9)))
    }
}

/// The assets the pools join: 13 fiat currencies and 5 tokens, with
/// exponents 0 to 18 (the asset table as it was when the figures in
/// docs/benchmarks.md were first measured).
const BENCH_ASSETS: [&str; 18] = [
    "kes", "ugx", "tzs", "rwf", "zmw", "ghs", "ngn", "xaf", "xof", "zar", "usd", "eur", "gbp",
    "btc", "eth", "usdc", "usdt", "mtt",
];

fn bench_assets() -> Vec<Asset> {
    BENCH_ASSETS
        .iter()
        .map(|code| Asset::parse(code).expect("a bench asset is in the asset table"))
        .collect()
}

fn unit(asset: Asset) -> u128 {
    10u128.pow(u32::from(asset.exponent()))
}

fn pools(count: usize, random: &mut Random) -> Vec<Venue> {
    let fees = [5u16, 30, 100];
    let mut venues = Vec::with_capacity(count);
    while venues.len() < count {
        let (a, b) = random.two_assets();
        let created = Pool::create(NewPool {
            id: VenueId(format!("pool_{}", venues.len())),
            provider: "bench".into(),
            deposits: [
                AssetAmount {
                    asset: a,
                    amount: random.magnitude(3, 7) * unit(a),
                },
                AssetAmount {
                    asset: b,
                    amount: random.magnitude(3, 7) * unit(b),
                },
            ],
            fee_bps: fees[random.below(3) as usize],
        });
        if let Ok((pool, _)) = created {
            venues.push(Venue::Pool(pool));
        }
    }
    venues
}

fn requests(count: usize, split: bool, random: &mut Random) -> Vec<RouteRequest> {
    let mut requests = Vec::with_capacity(count);
    while requests.len() < count {
        let (asset_in, asset_out) = random.two_assets();
        // 10 to 50,000 whole units.
        let amount_in = unit(asset_in) * 10 * (1 + u128::from(random.below(5_000)));
        requests.push(RouteRequest {
            asset_in,
            asset_out,
            amount_in,
            min_amount_out: 0,
            max_hops: HOPS_MAX,
            split,
        });
    }
    requests
}

/// Calls and time spent by one workload, measured in slices.
#[derive(Default)]
struct Tally {
    calls: u64,
    elapsed: Duration,
}

impl Tally {
    /// Runs `work` over every input, round and round, for about `slice`.
    fn run<T>(&mut self, inputs: &[T], slice: Duration, work: &mut impl FnMut(&T)) {
        let start = Instant::now();
        while start.elapsed() < slice {
            for input in inputs {
                work(input);
            }
            self.calls += inputs.len() as u64;
        }
        self.elapsed += start.elapsed();
    }

    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pool_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; only --release numbers mean anything");
    }
    let mut random = Random(0x4d61_6c69_706f_2021);
    let venues = match Venues::new(pools(pool_count, &mut random)) {
        Ok(venues) => venues,
        Err(error) => {
            eprintln!("bench pools refused: {error}");
            std::process::exit(1);
        }
    };

    // Reference: one pool quote, the step a route search repeats.
    let hops: Vec<(Venue, Asset, u128)> = venues
        .venues()
        .iter()
        .map(|venue| {
            let asset = venue.assets()[0];
            (venue.clone(), asset, unit(asset) * 100)
        })
        .collect();
    let plain = requests(1_000, false, &mut random);
    let split: Vec<RouteRequest> = plain
        .iter()
        .map(|request| RouteRequest {
            split: true,
            ..request.clone()
        })
        .collect();

    // The three workloads take turns in slices of 100 ms, so that the load
    // of a shared machine falls on all of them alike.
    let slice = Duration::from_millis(100);
    let (mut reference, mut single, mut splitting) =
        (Tally::default(), Tally::default(), Tally::default());
    let mut quote_hop = |(venue, asset, amount): &(Venue, Asset, u128)| {
        let _ = black_box(venue.quote_exact_in(*asset, *amount));
    };
    let mut quote = |request: &RouteRequest| {
        let _ = black_box(venues.quote(black_box(request)));
    };
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < 3.0 * seconds {
        reference.run(&hops, slice, &mut quote_hop);
        single.run(&plain, slice, &mut quote);
        splitting.run(&split, slice, &mut quote);
    }

    println!(
        "{pool_count} pools over {} assets, {seconds} s per workload in 100 ms turns",
        BENCH_ASSETS.len()
    );
    println!(
        "reference: {:>12.0} single-pool quotes/s",
        reference.per_second()
    );
    for (requests, tally) in [(&plain, &single), (&split, &splitting)] {
        let (mut routed, mut paths, mut hop_quotes, mut parts2) = (0u64, 0u64, 0u64, 0u64);
        for request in requests {
            if let Ok(route) = venues.quote(request) {
                routed += 1;
                paths += route.paths_considered as u64;
                hop_quotes += route.hop_quotes as u64;
                parts2 += u64::from(route.parts.len() == 2);
            }
        }
        println!(
            "router (max {HOPS_MAX} hops, split {:>5}): {:>9.0} quotes/s ({:.1} us each); \
             {routed}/{} trades routed, {:.0} paths and {:.0} hop quotes per route on average, \
             {parts2} split in two; {:.0} single-pool quotes per router quote",
            requests[0].split,
            tally.per_second(),
            1e6 / tally.per_second(),
            requests.len(),
            paths as f64 / routed.max(1) as f64,
            hop_quotes as f64 / routed.max(1) as f64,
            reference.per_second() / tally.per_second(),
        );
    }
}
