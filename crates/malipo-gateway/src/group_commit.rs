//! Group commit: many new payments written in one database transaction.
//!
//! Every request that creates a payment hands its whole first write (the
//! payment row, its events, its ledger transfers, its balance transaction
//! and its idempotency record) to one writer task and waits for the answer.
//! The writer takes whatever has queued up (at most
//! [`GROUP_COMMIT_PAYMENTS_MAX`]) and writes it with one statement per
//! table and one commit, instead of one transaction per payment. Under load
//! this is the difference between one database round trip per statement per
//! payment and one per statement per group; unloaded, a group is one payment
//! and nothing waits.
//!
//! Each payment still commits all or nothing and is acknowledged only after
//! its commit: its ledger batch is judged on its own
//! (`malipo_ledger::apply_batches`), so a refused one fails that request
//! alone; if the group's transaction fails as a whole, each payment is
//! written again in a transaction of its own, so one bad write can't fail its
//! neighbours.

use crate::payments::PaymentMoney;
use crate::{GatewayError, GatewayResult, now_ms, now_seconds};
use malipo_ledger::TransferRequest;
use malipo_store::ledger::TRANSFERS_PER_BATCH_MAX;
use malipo_store::{
    EventRecord, IdempotencyClaim, PaymentRecord, Store, StoreError, StoredResponse,
};
use tokio::sync::{mpsc, oneshot};

/// The most payments one group transaction carries.
pub const GROUP_COMMIT_PAYMENTS_MAX: usize = 128;

/// How many writes may wait for the writer before callers wait to queue.
const QUEUE_CAPACITY: usize = 4 * GROUP_COMMIT_PAYMENTS_MAX;

/// A new payment's whole first write.
#[derive(Debug)]
pub(crate) struct NewPaymentWrite {
    pub record: PaymentRecord,
    pub events: Vec<EventRecord>,
    pub money: PaymentMoney,
    pub idempotency: Option<(IdempotencyClaim, IdempotencyWrite)>,
    /// The conversion quote the payment uses (`cq_…`), claimed in the same
    /// transaction: a quote already used or expired fails this write alone.
    pub quote_claim: Option<String>,
    /// The desk buy the payment pays for, opened in the same transaction
    /// (its quote claimed, the reserve checked): a refusal fails the
    /// group, then this write alone when each is written on its own.
    pub desk_trade: Option<crate::desk::TradeAttachment>,
}

/// What the write records for the request's Idempotency-Key.
#[derive(Debug)]
pub(crate) enum IdempotencyWrite {
    /// The request is complete: store its response.
    Complete(StoredResponse),
    /// The request goes on (to a provider): remember the object it created.
    RecoveryPoint(String),
}

struct Job {
    write: NewPaymentWrite,
    reply: oneshot::Sender<GatewayResult<()>>,
}

/// The handle requests queue their writes on. The writer task ends when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    sender: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current Tokio runtime.
    pub(crate) fn start(store: Store) -> GroupCommit {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_groups(store, receiver));
        GroupCommit { sender }
    }

    /// Writes a new payment; answers once it is committed.
    pub(crate) async fn insert_payment(&self, write: NewPaymentWrite) -> GatewayResult<()> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job { write, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> GatewayError {
    GatewayError::internal(std::io::Error::other("the payment writer has stopped"))
}

async fn write_groups(store: Store, mut receiver: mpsc::Receiver<Job>) {
    let mut queued = Vec::with_capacity(GROUP_COMMIT_PAYMENTS_MAX);
    while receiver
        .recv_many(&mut queued, GROUP_COMMIT_PAYMENTS_MAX)
        .await
        > 0
    {
        let mut jobs = std::mem::take(&mut queued);
        // Keep each group within what one ledger batch may carry.
        while !jobs.is_empty() {
            let mut transfers = 0;
            let fits = jobs
                .iter()
                .take_while(|job| {
                    transfers += job.write.money.transfers.len();
                    transfers <= TRANSFERS_PER_BATCH_MAX
                })
                .count()
                .max(1);
            let rest = jobs.split_off(fits);
            write_group(&store, jobs).await;
            jobs = rest;
        }
    }
}

/// Writes a group in one transaction, or each of its payments alone if the
/// group's transaction fails.
async fn write_group(store: &Store, jobs: Vec<Job>) {
    metrics::histogram!("malipo_group_commit_payments").record(jobs.len() as f64);
    if jobs.len() > 1 {
        let writes: Vec<&NewPaymentWrite> = jobs.iter().map(|job| &job.write).collect();
        match write(store, &writes).await {
            Ok(verdicts) => {
                for (job, verdict) in jobs.into_iter().zip(verdicts) {
                    let _ = job.reply.send(verdict);
                }
                return;
            }
            Err(error) => tracing::warn!(
                payments = jobs.len(),
                error = %error.chain(),
                "a group commit failed; writing its payments one by one"
            ),
        }
    }
    for job in jobs {
        let verdict = match write(store, &[&job.write]).await {
            Ok(mut verdicts) => verdicts.pop().unwrap_or(Ok(())),
            Err(error) => Err(error),
        };
        let _ = job.reply.send(verdict);
    }
}

/// One transaction for `writes`; answers each write's verdict (a refused
/// ledger batch fails its own write only).
async fn write(
    store: &Store,
    writes: &[&NewPaymentWrite],
) -> GatewayResult<Vec<GatewayResult<()>>> {
    let mut tx = store.begin().await?;
    let mut conn = tx.conn();
    // Conversion quotes first: a write whose quote is gone is refused
    // before any of its money moves.
    let mut claim_verdicts: Vec<GatewayResult<()>> = Vec::with_capacity(writes.len());
    for write in writes {
        claim_verdicts.push(match &write.quote_claim {
            Some(quote) => {
                if conn
                    .claim_conversion_quote(quote, &write.record.payment.id, now_seconds())
                    .await?
                {
                    Ok(())
                } else {
                    Err(crate::conversions::quote_gone(quote).into())
                }
            }
            None => Ok(()),
        });
    }
    let all_writes = writes;
    let writes: Vec<&NewPaymentWrite> = all_writes
        .iter()
        .zip(&claim_verdicts)
        .filter(|(_, verdict)| verdict.is_ok())
        .map(|(write, _)| *write)
        .collect();
    let accounts: Vec<malipo_ledger::Account> = writes
        .iter()
        .flat_map(|write| write.money.ledger_accounts.iter().cloned())
        .collect();
    let batches: Vec<&[TransferRequest]> = writes
        .iter()
        .map(|write| write.money.transfers.as_slice())
        .collect();
    let ledger_verdicts = conn
        .post_transfer_groups(&accounts, &batches, now_seconds(), now_ms())
        .await?;
    let accepted: Vec<&NewPaymentWrite> = writes
        .iter()
        .zip(&ledger_verdicts)
        .filter(|(_, verdict)| verdict.is_ok())
        .map(|(write, _)| *write)
        .collect();
    let balance_transactions: Vec<_> = accepted
        .iter()
        .filter_map(|write| {
            write
                .money
                .balance_transaction
                .as_ref()
                .map(|transaction| (write.record.merchant_id.as_str(), transaction))
        })
        .collect();
    conn.insert_balance_transactions(&balance_transactions)
        .await?;
    let events: Vec<EventRecord> = accepted
        .iter()
        .flat_map(|write| write.events.iter().cloned())
        .collect();
    conn.insert_events(&events).await?;
    let records: Vec<&PaymentRecord> = accepted.iter().map(|write| &write.record).collect();
    conn.insert_payments(&records).await?;
    for write in &accepted {
        if let Some(trade) = &write.desk_trade {
            crate::desk::open_trade(&mut conn, trade, &write.record).await?;
        }
    }
    for write in &accepted {
        match &write.idempotency {
            Some((claim, IdempotencyWrite::Complete(response))) => {
                conn.complete_idempotency_key(claim, response).await?;
            }
            Some((claim, IdempotencyWrite::RecoveryPoint(object_id))) => {
                conn.set_idempotency_recovery_point(claim, object_id)
                    .await?;
            }
            None => {}
        }
    }
    tx.commit().await?;
    let transfers: usize = accepted
        .iter()
        .map(|write| write.money.transfers.len())
        .sum();
    metrics::counter!("malipo_ledger_transfers_total").increment(transfers as u64);
    let mut ledger_verdicts = ledger_verdicts.into_iter();
    Ok(claim_verdicts
        .into_iter()
        .map(|claimed| {
            claimed?;
            match ledger_verdicts.next() {
                Some(verdict) => verdict.map_err(|error| StoreError::Ledger(error).into()),
                None => Ok(()),
            }
        })
        .collect())
}
