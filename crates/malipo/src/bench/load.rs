//! `malipo bench load`: an open-loop load run at increasing rates, on
//! SQLite and PostgreSQL, of three operations a merchant's integration
//! makes: create + confirm a payment, GET one payment, list payments.
//!
//! For each backend a gateway is started in this process on a fresh
//! database with rate limits off (as for `bench payments`: all the traffic
//! comes from one key on one address), a merchant is created, and
//! `--seed-payments` payments are made (unmeasured) for GET and list to
//! read. Then, for each operation, one step per rate of `--rates` runs for
//! `--step-seconds` through [`open_loop`]: requests are scheduled at the
//! step's rate whatever the answers do, and each latency counts from the
//! request's scheduled time, so a server falling behind shows as latency
//! and as a missed rate, not as fewer requests sent (no coordinated
//! omission). An operation stops at the first step that misses its rate
//! (fewer than [`ACHIEVED_FRACTION_MIN`] of the offered requests/s
//! answered) or has an error: the step before it is the highest rate the
//! operation holds. A progress line on stderr follows each step while it
//! runs. With `--postgres`, pgbench runs first on the same server for the
//! reference figure of the same run.

use super::generator::{Endpoint, Progress, Target, connect, exchange, open_loop, payment_request};
use super::{
    LatencySummary, PgbenchOptions, Targets, bench_config, bench_merchant, grouped, payment_id,
    per_second, summarize, whole, with_fresh_database,
};
use anyhow::Context;
use clap::{Args, ValueEnum};
use malipo::config::Config;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A step that answers fewer than this fraction of its offered requests/s
/// missed its rate.
pub(super) const ACHIEVED_FRACTION_MIN: f64 = 0.95;
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A pause between steps, so the background work a step left (the outbox
/// of its payments) does not fall on the next step's first second only.
const STEP_PAUSE: Duration = Duration::from_secs(1);
/// Connections creating the seed payments.
const SEED_CONNECTIONS: u64 = 16;

/// Options of `malipo bench load`.
#[derive(Args, Clone)]
pub(super) struct LoadOptions {
    /// Offered rates in requests/s, one step each, run in increasing order;
    /// an operation stops after the first step that misses its rate or has
    /// an error.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000,8000",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rates: Vec<u32>,
    /// Seconds each step schedules requests for.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    step_seconds: u64,
    /// The operations to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "create,get,list")]
    operations: Vec<Operation>,
    /// Connections of the load generator: the most requests in flight at
    /// once. A request whose time comes while all are busy waits for one,
    /// and the wait counts in its latency.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=2_000))]
    connections: u32,
    /// Payments made (unmeasured) before the steps, for GET and list to read.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    seed_payments: u32,
    /// Page size of the list operation (`GET /v1/payments?limit=N`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    list_limit: u32,
    /// Don't run the pgbench reference (with --postgres).
    #[arg(long)]
    no_pgbench: bool,
    #[command(flatten)]
    pub(super) pgbench: PgbenchOptions,
}

impl LoadOptions {
    pub(super) fn pgbench_wanted(&self) -> bool {
        !self.no_pgbench
    }

    /// The rates in increasing order, each once.
    fn steps(&self) -> Vec<u32> {
        let mut rates = self.rates.clone();
        rates.sort_unstable();
        rates.dedup();
        rates
    }
}

/// What a step's requests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Operation {
    /// `POST /v1/payments`: create + confirm on the sandbox connector (the
    /// payment, its ledger transfers and events in one transaction).
    Create,
    /// `GET /v1/payments/{id}` of the seed payments, round robin.
    Get,
    /// `GET /v1/payments?limit=N`: the newest page.
    List,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Create => "create + confirm",
            Operation::Get => "GET one payment",
            Operation::List => "list payments",
        }
    }

    fn endpoint(self, ids: &[String], list_limit: u32) -> Endpoint {
        match self {
            Operation::Create => Endpoint::CreatePayment,
            Operation::Get => Endpoint::GetPayment { ids: ids.to_vec() },
            Operation::List => Endpoint::ListPayments { limit: list_limit },
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every request answered, at the offered rate.
    Held,
    /// Answered fewer than [`ACHIEVED_FRACTION_MIN`] of the offered rate.
    Missed,
    /// At least one request failed (or was unanswered at the end).
    Errors,
}

impl Verdict {
    fn judge(offered: u32, achieved: f64, errors: u64) -> Verdict {
        if errors > 0 {
            Verdict::Errors
        } else if achieved < f64::from(offered) * ACHIEVED_FRACTION_MIN {
            Verdict::Missed
        } else {
            Verdict::Held
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Missed => "**missed the rate**",
            Verdict::Errors => "**errors**",
        }
    }
}

/// One step of one operation on one backend.
#[derive(Debug, Clone)]
pub(super) struct StepResult {
    backend: &'static str,
    operation: Operation,
    /// Requests/s scheduled.
    offered: u32,
    /// Requests scheduled.
    scheduled: u64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the first scheduled request to the last answer.
    elapsed: Duration,
    latency: LatencySummary,
    verdict: Verdict,
}

impl StepResult {
    fn achieved(&self) -> f64 {
        per_second(self.ok, self.elapsed)
    }
}

/// Everything `bench load` measured.
#[derive(Debug, Clone, Default)]
pub(super) struct LoadReport {
    steps: Vec<StepResult>,
    /// `ledger verify` per backend after its steps.
    verified: Vec<(&'static str, bool)>,
    step_seconds: u64,
    connections: u32,
    seed_payments: u32,
    list_limit: u32,
    /// /proc/loadavg (1, 5 and 15 minutes) when the run started and ended.
    load_average_start: Option<String>,
    load_average_end: Option<String>,
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg has them.
pub(super) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// Runs every operation's steps on every backend.
pub(super) async fn run_load(
    config: &Config,
    targets: &Targets,
    options: &LoadOptions,
) -> anyhow::Result<LoadReport> {
    let mut report = LoadReport {
        step_seconds: options.step_seconds,
        connections: options.connections,
        seed_payments: options.seed_payments,
        list_limit: options.list_limit,
        load_average_start: load_average(),
        ..LoadReport::default()
    };
    for postgres in targets.backends() {
        let (backend, steps, verified) = with_fresh_database(postgres, |url, backend| async move {
            let (steps, verified) = load_backend(config, &url, backend, options).await?;
            Ok((backend, steps, verified))
        })
        .await?;
        report.verified.push((backend, verified));
        report.steps.extend(steps);
    }
    report.load_average_end = load_average();
    Ok(report)
}

/// One backend: a gateway, a merchant, the seed payments, then the steps.
/// Answers the steps and whether the ledger verified afterwards.
async fn load_backend(
    config: &Config,
    url: &str,
    backend: &'static str,
    options: &LoadOptions,
) -> anyhow::Result<(Vec<StepResult>, bool)> {
    let config = bench_config(config, url);
    let running = malipo::start(&config).await?;
    let measured = async {
        let authorization = bench_merchant(&running.gateway, "Load Merchant").await?;
        let target = |endpoint| {
            Arc::new(Target {
                address: running.address,
                host: running.address.to_string(),
                authorization: authorization.clone(),
                idempotency_keys: false,
                endpoint,
            })
        };
        eprintln!(
            "load {backend}: making {} seed payments",
            options.seed_payments
        );
        let ids = seed_payments(&target(Endpoint::CreatePayment), options.seed_payments).await?;
        let mut steps = Vec::new();
        for &operation in &options.operations {
            let target = target(operation.endpoint(&ids, options.list_limit));
            for rate in options.steps() {
                let step = run_step(&target, backend, operation, rate, options).await;
                eprintln!(
                    "load {backend} {} at {}/s: {}/s answered, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} errors: {}",
                    operation.label(),
                    grouped(u64::from(rate)),
                    whole(step.achieved()),
                    step.latency.p50_ms,
                    step.latency.p99_ms,
                    step.latency.p999_ms,
                    step.errors,
                    step.verdict.text().trim_matches('*'),
                );
                if let Some(error) = &step.first_error {
                    eprintln!("  first error: {error}");
                }
                let last = step.verdict != Verdict::Held;
                steps.push(step);
                if last {
                    break;
                }
                tokio::time::sleep(STEP_PAUSE).await;
            }
        }
        Ok::<_, anyhow::Error>(steps)
    }
    .await;
    let verified = match running.gateway.verify_ledger().await {
        Ok(report) => report.ok,
        Err(error) => {
            eprintln!("warning: ledger verify failed: {error}");
            false
        }
    };
    running.stop().await;
    Ok((measured?, verified))
}

/// Makes `count` payments, [`SEED_CONNECTIONS`] at a time; answers their ids.
async fn seed_payments(target: &Arc<Target>, count: u32) -> anyhow::Result<Vec<String>> {
    let count = u64::from(count);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..SEED_CONNECTIONS.min(count) {
        let target = target.clone();
        tasks.spawn(async move {
            let mut sender = connect(target.address).await?;
            let mut ids = Vec::new();
            let mut sequence = worker;
            while sequence < count {
                let request = payment_request(&target, sequence).map_err(anyhow::Error::msg)?;
                let id = exchange(&mut sender, request, |body| {
                    payment_id(body).ok_or_else(|| "a payment without an id".to_owned())
                })
                .await
                .map_err(|error| anyhow::anyhow!("a seed payment failed: {error}"))?;
                ids.push(id);
                sequence += SEED_CONNECTIONS;
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        ids.extend(joined.context("a seed task panicked")??);
    }
    Ok(ids)
}

/// One step: `rate` requests/s of `operation` for `--step-seconds`, with a
/// progress line while it runs.
async fn run_step(
    target: &Arc<Target>,
    backend: &'static str,
    operation: Operation,
    rate: u32,
    options: &LoadOptions,
) -> StepResult {
    let progress = Arc::new(Progress::default());
    let label = format!(
        "load {backend} {} at {}/s",
        operation.label(),
        grouped(u64::from(rate))
    );
    let display = tokio::spawn(show_progress(
        label,
        progress.clone(),
        options.step_seconds,
        Instant::now(),
    ));
    let run = open_loop(
        target,
        options.connections,
        rate,
        options.step_seconds,
        &progress,
    )
    .await;
    display.abort();
    let _ = display.await;
    if std::io::stderr().is_terminal() {
        // Clear the progress line for the step's summary.
        eprint!("\r\x1b[2K");
    }
    let scheduled = progress.scheduled.load(Ordering::Relaxed);
    let mut micros = run.micros;
    let achieved = per_second(run.ok, run.elapsed);
    StepResult {
        backend,
        operation,
        offered: rate,
        scheduled,
        ok: run.ok,
        errors: run.errors,
        first_error: run.first_error,
        elapsed: run.elapsed,
        latency: summarize(&mut micros),
        verdict: Verdict::judge(rate, achieved, run.errors),
    }
}

/// Redraws a progress line every [`PROGRESS_INTERVAL`] until aborted: one
/// line redrawn in place on a terminal, a line per interval otherwise.
async fn show_progress(label: String, progress: Arc<Progress>, seconds: u64, started: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let scheduled = progress.scheduled.load(Ordering::Relaxed);
        let completed = progress.completed.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let line = format!(
            "{label}: {:.0} s of {seconds}, {} sent, {} answered, {} waiting or in flight, {} errors",
            started.elapsed().as_secs_f64(),
            grouped(scheduled),
            grouped(completed),
            grouped(scheduled.saturating_sub(completed)),
            grouped(errors),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = if terminal {
            write!(stderr, "\r\x1b[2K{line}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
}

impl LoadReport {
    /// The Markdown tables of the run.
    pub(super) fn markdown(&self, line: &mut impl FnMut(String)) {
        if self.steps.is_empty() {
            return;
        }
        line("### Open-loop load: throughput and latency at increasing offered rates".into());
        line(String::new());
        line(format!(
            "Each step schedules requests at its offered rate for {} s whatever the answers do \
             ({} connections; latency from each request's scheduled time); an operation stops \
             at the first step that answers fewer than {:.0}% of its rate or has an error. \
             {} seed payments; lists of {}. Load average (1/5/15 min) at the start: {}; at the end: {}.",
            self.step_seconds,
            self.connections,
            ACHIEVED_FRACTION_MIN * 100.0,
            grouped(u64::from(self.seed_payments)),
            self.list_limit,
            self.load_average_start.as_deref().unwrap_or("?"),
            self.load_average_end.as_deref().unwrap_or("?"),
        ));
        line(String::new());
        line("| Backend | Operation | Offered (req/s) | Achieved (req/s) | Sent | Answered ok | Errors | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | Step |".into());
        line("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|".into());
        for step in &self.steps {
            line(format!(
                "| {} | {} | {} | **{}** | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                step.backend,
                step.operation.label(),
                grouped(u64::from(step.offered)),
                whole(step.achieved()),
                grouped(step.scheduled),
                grouped(step.ok),
                grouped(step.errors),
                step.latency.p50_ms,
                step.latency.p99_ms,
                step.latency.p999_ms,
                step.latency.max_ms,
                step.verdict.text(),
            ));
        }
        line(String::new());
        line("| Backend | Operation | Highest offered rate held (req/s) | p99 there (ms) | Ledger verified |".into());
        line("|---|---|--:|--:|---|".into());
        for (backend, verified) in &self.verified {
            let mut operations: Vec<Operation> = Vec::new();
            for step in self.steps.iter().filter(|step| step.backend == *backend) {
                if !operations.contains(&step.operation) {
                    operations.push(step.operation);
                }
            }
            for operation in operations {
                let held = self
                    .steps
                    .iter()
                    .filter(|step| {
                        step.backend == *backend
                            && step.operation == operation
                            && step.verdict == Verdict::Held
                    })
                    .max_by_key(|step| step.offered);
                let (rate, p99) = held.map_or(("none".to_owned(), "-".to_owned()), |step| {
                    (
                        grouped(u64::from(step.offered)),
                        format!("{:.2}", step.latency.p99_ms),
                    )
                });
                line(format!(
                    "| {backend} | {} | **{rate}** | {p99} | {} |",
                    operation.label(),
                    if *verified { "yes" } else { "**NO**" }
                ));
            }
        }
        line(String::new());
        for step in &self.steps {
            if let Some(error) = &step.first_error {
                line(format!(
                    "First error: {} {} at {}/s: {error}",
                    step.backend,
                    step.operation.label(),
                    step.offered
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_holds_only_at_its_rate_without_errors() {
        assert_eq!(Verdict::judge(1_000, 990.0, 0), Verdict::Held);
        assert_eq!(Verdict::judge(1_000, 950.0, 0), Verdict::Held);
        assert_eq!(Verdict::judge(1_000, 949.0, 0), Verdict::Missed);
        assert_eq!(Verdict::judge(1_000, 1_000.0, 1), Verdict::Errors);
    }
}
