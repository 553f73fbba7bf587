//! Explicit retention of the two logs that would otherwise grow forever,
//! run by the worker's prune step:
//!
//! - each trading book's command log and snapshots
//!   ([`Gateway::prune_trading_logs`]): recovery needs only the newest
//!   snapshot and the commands after it, which are never deleted; the last
//!   [`crate::GatewayConfig::trading_log_retain_commands`] before it are
//!   kept for live feed resumes (`since`), and the newest two snapshots.
//!   A resume from a deleted sequence gets `resume_unavailable` and a fresh
//!   snapshot, as it always did when the log no longer held it.
//! - the event outbox ([`Gateway::prune_events`]): events older than
//!   [`crate::GatewayConfig::events_retain_days`] whose webhook deliveries
//!   are all finished, with those deliveries and attempts. An event still
//!   waiting to be fanned out or delivered is never deleted.
//!
//! Deletes go in transactions of at most [`PRUNE_BATCH_MAX`] rows (per
//! book for the log), at most [`PRUNE_BATCHES_PER_RUN_MAX`] of them per run,
//! so a large backlog never holds a long transaction nor the worker long;
//! the next run continues.

use crate::{Gateway, GatewayResult, now_seconds};

/// Default of `trading_log_retain_commands`.
pub const TRADING_LOG_RETAIN_COMMANDS_DEFAULT: u64 = 100_000;
/// Bounds of `trading_log_retain_commands`.
pub const TRADING_LOG_RETAIN_COMMANDS_MIN: u64 = 0;
pub const TRADING_LOG_RETAIN_COMMANDS_MAX: u64 = 100_000_000;
/// Default of `events_retain_days` (as Stripe keeps events).
pub const EVENTS_RETAIN_DAYS_DEFAULT: u32 = 30;
/// Bounds of `events_retain_days`.
pub const EVENTS_RETAIN_DAYS_MIN: u32 = 1;
pub const EVENTS_RETAIN_DAYS_MAX: u32 = 3650;
/// The most rows one retention transaction deletes.
pub const PRUNE_BATCH_MAX: i64 = 1_000;
/// The most transactions one run takes per book (log) or for the outbox.
pub const PRUNE_BATCHES_PER_RUN_MAX: usize = 100;

impl Gateway {
    /// Applies the command log retention to every book; answers how many
    /// commands and snapshots it deleted.
    pub async fn prune_trading_logs(&self) -> GatewayResult<u64> {
        let retain = self.config().trading_log_retain_commands;
        let books = self.store().reader().await?.conn().trading_books().await?;
        let mut deleted = 0;
        for book in books {
            for _ in 0..PRUNE_BATCHES_PER_RUN_MAX {
                let mut tx = self.store().begin().await?;
                let step = tx
                    .conn()
                    .prune_trading_log(&book.id, retain, PRUNE_BATCH_MAX)
                    .await?;
                tx.commit().await?;
                deleted += step;
                if step < PRUNE_BATCH_MAX as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Applies the event outbox retention; answers how many events it
    /// deleted.
    pub async fn prune_events(&self) -> GatewayResult<u64> {
        let retain_seconds = i64::from(self.config().events_retain_days) * 86_400;
        let created_before = now_seconds() - retain_seconds;
        let mut deleted = 0;
        for _ in 0..PRUNE_BATCHES_PER_RUN_MAX {
            // Read apart: the transaction then only deletes (each statement
            // checking again that no delivery is pending).
            let ids = self
                .store()
                .reader()
                .await?
                .conn()
                .prunable_events(created_before, PRUNE_BATCH_MAX)
                .await?;
            let mut tx = self.store().begin().await?;
            deleted += tx.conn().delete_finished_events(&ids).await?;
            tx.commit().await?;
            if ids.len() < PRUNE_BATCH_MAX as usize {
                break;
            }
        }
        Ok(deleted)
    }
}
