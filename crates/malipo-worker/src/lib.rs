//! Bounded background loops, one task per node:
//!
//! - status polling: asks connectors about payments whose poll is due (the
//!   sandbox's delayed outcomes, crash recovery of payments handed to a
//!   provider whose answer was never recorded), and about payouts whose
//!   result never came (with the connector's back-off);
//! - expiry: unfinished payments past `expires_at` become `expired`;
//!   vouchers past theirs become `expired` and release their liability;
//! - webhooks: new events fanned out to deliveries, due deliveries attempted;
//! - pruning: Idempotency-Key records past their retention, expired
//!   customer tokens, the trading command log and the event outbox past
//!   their retention (`malipo_gateway::retention`);
//! - book leases ([`spawn_lease_keeper`], a task of its own so a slow
//!   webhook never delays a renewal): this node's leases renewed every
//!   third of a lease, released when the node stops.
//!
//! Every round handles at most `batch_size_max` items per job, and the loop
//! stops when the shutdown signal fires. Several nodes on one PostgreSQL
//! share the work: due rows are claimed with `FOR UPDATE SKIP LOCKED`.

use malipo_gateway::Gateway;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Pause between rounds when there was nothing to do.
    pub idle_interval_ms: u64,
    /// The most payments one job handles per round.
    pub batch_size_max: i64,
    /// How often to prune idempotency records.
    pub prune_interval_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            idle_interval_ms: 100,
            batch_size_max: 100,
            prune_interval_ms: 3_600_000,
        }
    }
}

/// Starts the loop; it ends soon after `shutdown` turns true.
pub fn spawn(
    gateway: Gateway,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_prune = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let busy = run_round(&gateway, &config).await;
            if last_prune.elapsed() >= Duration::from_millis(config.prune_interval_ms) {
                last_prune = tokio::time::Instant::now();
                report_prune("idempotency keys", gateway.prune_idempotency_keys().await);
                report_prune(
                    "expired customer tokens",
                    gateway.prune_customer_tokens().await,
                );
                report_prune(
                    "trading log commands and snapshots",
                    gateway.prune_trading_logs().await,
                );
                report_prune("finished events", gateway.prune_events().await);
            }
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(config.idle_interval_ms)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::info!("worker stopped");
    })
}

/// Logs one prune job's outcome.
fn report_prune(what: &str, result: malipo_gateway::GatewayResult<u64>) {
    match result {
        Ok(pruned) if pruned > 0 => tracing::info!(pruned, "pruned {what}"),
        Ok(_) => {}
        Err(error) => tracing::error!(error = %error.chain(), "pruning {what} failed"),
    }
}

/// Keeps this node's book leases (`malipo_gateway::ownership`): renews
/// them every third of a lease until `shutdown`, then releases them so the
/// other nodes take the books at once.
pub fn spawn_lease_keeper(gateway: Gateway, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pause = Duration::from_millis((gateway.config().node.lease_ms / 6).max(50));
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(error) = gateway.renew_book_leases().await {
                tracing::error!(error = %error.chain(), "renewing book leases failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        match gateway.release_book_leases().await {
            Ok(released) => tracing::info!(released, "book leases released"),
            Err(error) => tracing::error!(error = %error.chain(), "releasing book leases failed"),
        }
    })
}

/// One round of every job; answers whether any job found a full batch
/// (then the next round starts at once).
pub async fn run_round(gateway: &Gateway, config: &WorkerConfig) -> bool {
    let polled = gateway
        .poll_due_payments(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "payment polling failed");
            0
        });
    let payouts_polled = gateway
        .poll_due_payouts(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "payout polling failed");
            0
        });
    let expired = gateway
        .expire_due_payments(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "payment expiry failed");
            0
        });
    let vouchers_expired = gateway
        .expire_due_vouchers(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "voucher expiry failed");
            0
        });
    let dispatched = gateway
        .dispatch_events(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "event dispatch failed");
            0
        });
    let delivered = gateway
        .deliver_due_webhooks(config.batch_size_max)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(error = %error.chain(), "webhook delivery failed");
            0
        });
    let full = usize::try_from(config.batch_size_max).unwrap_or(usize::MAX);
    [
        polled,
        payouts_polled,
        expired,
        vouchers_expired,
        dispatched,
        delivered,
    ]
    .iter()
    .any(|count| *count >= full)
}
