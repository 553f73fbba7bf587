//! Payouts: money from a merchant's available balance to a mobile money
//! wallet (M-Pesa B2C, MTN MoMo Disbursement, Relworx send-payment).
//!
//! Like a refund, a payout is two transactions around one provider call.
//! The first checks everything (the connector refuses what its provider
//! can't send, naming the field, before anything is written), writes the
//! payout `pending`, moves its amount from the merchant's available balance
//! to its payouts-in-transit account (the ledger refuses it, and nothing is
//! written, when the balance can't cover it: a 400 naming `amount`), with
//! its balance transaction, `payout.created` and the Idempotency-Key's
//! recovery point. Then the connector is asked, outside any transaction;
//! the second transaction records its answer with [`apply_payout_outcome`],
//! the one function every path goes through (the first answer, a result
//! callback, a status poll): `processing` keeps the money in transit,
//! `paid` moves it to the connector's clearing account (`payout.paid`),
//! `failed` returns it to the available balance (a `payout_failure`
//! balance transaction and `payout.failed`).
//!
//! A customer's withdrawal ([`Gateway::create_withdrawal`], `POST
//! /v1/customers/{id}/withdrawals`) is the same payout with `customer` set:
//! the money leaves that customer's available balance instead of the
//! merchant's (a short balance is the same 400 naming `amount`, moving
//! nothing), goes through the merchant's payouts-in-transit account and
//! connector like any payout, and a failure returns it to the customer.
//! The merchant's balance transactions are not touched: its balance never
//! moved.
//!
//! A provider that does not answer may still have taken the payout, so it
//! stays `pending` with its money in transit (never failed while the money
//! may be on its way); the worker asks the provider's status API when it
//! has one ([`Gateway::poll_due_payouts`], with the connector's back-off).

use crate::auth::MerchantContext;
use crate::customers::customer_of;
use crate::idempotency::{IdempotencyGuard, complete, recovery_point};
use crate::payments::{
    DESCRIPTION_LENGTH_MAX, PHONE_DIGITS_MAX, PHONE_DIGITS_MIN, POLL_LEASE_MS, created_filters,
    emit, owner_filters, post,
};
use crate::{
    ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_ms, now_seconds,
};
use malipo_connectors::{
    Connector, ConnectorError, PAYOUT_PHONE_PARAM, PayoutOutcome, PayoutRequest,
    PayoutStatusRequest,
};
use malipo_core::Asset;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::metadata::{self, Metadata};
use malipo_core::objects::{BalanceTransaction, Failure, List, Payout, PayoutDestination, Scope};
use malipo_core::payment::PaymentMethod;
use malipo_core::payout::{PayoutStatus, PayoutTransition};
use malipo_ledger::TransferError;
use malipo_store::{Conn, Filter, Page, PayoutRecord, StoreError};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The methods a payout can go by (`sandbox`: decided by the recipient's
/// last four digits, see `malipo_connectors::sandbox`).
pub const PAYOUT_METHODS: [PaymentMethod; 4] = [
    PaymentMethod::Mpesa,
    PaymentMethod::MtnMomo,
    PaymentMethod::AirtelMoney,
    PaymentMethod::Sandbox,
];

/// `POST /v1/payouts`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 50000, "currency": "kes", "method": "mpesa",
    "destination": {"phone": "254708374149"}, "description": "Refund for order 1001"}))]
pub struct CreatePayout {
    /// In the currency's minor unit, > 0, at most the available balance
    /// (and the currency's per-payment maximum).
    pub amount: Option<u64>,
    /// ISO 4217, any case.
    pub currency: Option<String>,
    /// `mpesa`, `mtn_momo` or `airtel_money` (through the merchant's
    /// Relworx account when it has no direct one, like payments), or
    /// `sandbox` (no provider: the recipient's last four digits decide).
    pub method: Option<String>,
    #[serde(default)]
    pub destination: PayoutDestination,
    /// At most 1000 characters; providers see the start of it.
    pub description: Option<String>,
    /// At most 50 keys of 40 characters, values of 500.
    #[serde(default)]
    pub metadata: Metadata,
}

/// `GET /v1/payouts` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct PayoutFilters {
    /// Only the withdrawals of this customer (`cus_…`).
    pub customer: Option<String>,
    /// `pending`, `processing`, `paid` or `failed`.
    pub status: Option<String>,
    pub method: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// `GET /v1/customers/{id}/withdrawals` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct WithdrawalFilters {
    /// `pending`, `processing`, `paid` or `failed`.
    pub status: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// A [`CreatePayout`] that passed the checks that need no connector.
struct NewPayout {
    amount: u64,
    asset: Asset,
    method: PaymentMethod,
    phone: String,
    description: Option<String>,
    metadata: Metadata,
}

impl NewPayout {
    fn parse(request: CreatePayout) -> Result<NewPayout, ApiError> {
        let amount = request.amount.ok_or_else(|| ApiError::missing("amount"))?;
        let currency = request
            .currency
            .ok_or_else(|| ApiError::missing("currency"))?;
        let asset = Asset::parse(&currency)
            .map_err(|error| ApiError::invalid("currency", error.to_string()))?;
        if amount == 0 {
            return Err(ApiError::invalid("amount", "amount must be greater than 0"));
        }
        if u128::from(amount) > asset.payment_amount_max() {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "amount may be at most {} {asset} minor units",
                    asset.payment_amount_max()
                ),
            ));
        }
        let method_text = request.method.ok_or_else(|| ApiError::missing("method"))?;
        let known: Vec<&str> = PAYOUT_METHODS
            .iter()
            .map(|method| method.as_str())
            .collect();
        let method = PaymentMethod::parse(&method_text)
            .filter(|method| PAYOUT_METHODS.contains(method))
            .ok_or_else(|| {
                ApiError::invalid(
                    "method",
                    format!("payouts go by {}, not `{method_text}`", known.join(", ")),
                )
            })?;
        let phone = request
            .destination
            .phone
            .ok_or_else(|| ApiError::missing(PAYOUT_PHONE_PARAM))?;
        let digits = phone.trim().strip_prefix('+').unwrap_or(phone.trim());
        if !(PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApiError::invalid(
                PAYOUT_PHONE_PARAM,
                format!(
                    "destination.phone must be {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits, optionally after `+`"
                ),
            ));
        }
        if let Some(description) = &request.description {
            if description.chars().count() > DESCRIPTION_LENGTH_MAX {
                return Err(ApiError::invalid(
                    "description",
                    format!("description may be at most {DESCRIPTION_LENGTH_MAX} characters"),
                ));
            }
            if let Some(problem) = metadata::text_problem(description) {
                return Err(ApiError::invalid(
                    "description",
                    format!("description {problem}"),
                ));
            }
        }
        metadata::validate(&request.metadata)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;
        Ok(NewPayout {
            amount,
            asset,
            method,
            phone: digits.to_owned(),
            description: request.description,
            metadata: request.metadata,
        })
    }
}

fn not_found_unless_shaped(id: &str) -> Result<(), ApiError> {
    if looks_like(IdKind::Payout, id) {
        Ok(())
    } else {
        Err(ApiError::not_found("payout", id))
    }
}

/// Whether a failed ledger post was the available balance refusing it.
fn is_insufficient_balance(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Internal(error)
    if matches!(
        error.downcast_ref::<StoreError>(),
        Some(StoreError::Ledger(batch)) if batch.error == TransferError::ExceedsCredits
    ))
}

impl Gateway {
    pub async fn create_payout(
        &self,
        context: &MerchantContext,
        request: CreatePayout,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payout> {
        self.send_payout(context, request, None, guard).await
    }

    /// `POST /v1/customers/{id}/withdrawals`: a payout funded from the
    /// customer's available balance of the currency (an unknown or foreign
    /// customer is a 404 naming `id`).
    pub async fn create_withdrawal(
        &self,
        context: &MerchantContext,
        customer_id: &str,
        request: CreatePayout,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payout> {
        context.require(Scope::PayoutsWrite)?;
        let customer = {
            let mut reader = self.store().reader().await?;
            customer_of(&mut reader.conn(), context, customer_id, "id")
                .await?
                .customer
                .id
        };
        self.send_payout(context, request, Some(customer), guard)
            .await
    }

    /// `GET /v1/customers/{id}/withdrawals`: the customer's withdrawals,
    /// newest first.
    pub async fn withdrawals(
        &self,
        context: &MerchantContext,
        customer_id: &str,
        filters: &WithdrawalFilters,
        page: &Page,
    ) -> GatewayResult<List<Payout>> {
        context.require(Scope::ReadOnly)?;
        {
            let mut reader = self.store().reader().await?;
            customer_of(&mut reader.conn(), context, customer_id, "id").await?;
        }
        let filters = PayoutFilters {
            customer: Some(customer_id.to_owned()),
            status: filters.status.clone(),
            method: None,
            created_gte: filters.created_gte,
            created_lte: filters.created_lte,
        };
        self.payouts(context, &filters, page).await
    }

    /// The one path of payouts and withdrawals: `customer` names the
    /// customer whose available balance pays (a withdrawal), `None` the
    /// merchant's.
    async fn send_payout(
        &self,
        context: &MerchantContext,
        request: CreatePayout,
        customer: Option<String>,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payout> {
        context.require(Scope::PayoutsWrite)?;
        if let Some(id) = guard
            .as_ref()
            .and_then(|guard| guard.resume_object_id.clone())
        {
            // An earlier holder of the key created it and died before
            // answering: answer the payout as it stands (never send twice).
            let payout = self.payout(context, &id).await?;
            self.complete_resumed(guard.as_ref(), &payout).await?;
            return Ok(payout);
        }
        let mut new = NewPayout::parse(request)?;
        let connector = self
            .connectors()
            .for_method(new.method)
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(
                    "method",
                    format!(
                        "the `{}` method has no connector on this gateway",
                        new.method
                    ),
                )
            })?;
        let account = if connector.name() == "sandbox" {
            self.sandbox_account(&context.merchant_id, context.livemode())
                .await?
        } else {
            self.merchant_connector_account(
                &context.merchant_id,
                context.livemode(),
                connector.name(),
            )
            .await?
        };
        connector
            .check_payout(&account, &mut new.phone, new.asset.code(), new.amount)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;

        let now_ms = now_ms();
        let now = now_ms / 1000;
        let record = PayoutRecord {
            merchant_id: context.merchant_id.clone(),
            payout: Payout {
                id: new_id(IdKind::Payout),
                object: "payout",
                livemode: context.livemode(),
                amount: new.amount,
                customer,
                currency: new.asset.code().to_owned(),
                method: new.method,
                connector: connector.name().to_owned(),
                status: PayoutStatus::Pending,
                destination: PayoutDestination {
                    phone: Some(new.phone),
                },
                description: new.description,
                receipt: None,
                failure: None,
                metadata: new.metadata,
                created: now,
                updated: now,
            },
            account_id: account.id.clone(),
            provider_reference: None,
            started_ms: Some(now_ms),
            // Crash recovery: if the answer below is never recorded, the
            // worker looks at the payout after this long.
            next_poll_ms: Some(now_ms + self.config().recovery_poll_after_ms),
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let sent = post(
            &mut conn,
            &ledger_entries::payout_accounts(&record),
            &[ledger_entries::payout_sent(&record)],
        )
        .await;
        if let Err(error) = sent {
            if is_insufficient_balance(&error) {
                let whose = if record.payout.customer.is_some() {
                    "customer's"
                } else {
                    "merchant's"
                };
                return Err(ApiError::new(
                    ErrorKind::InvalidRequest,
                    "balance_insufficient",
                    format!(
                        "amount {} is more than the {whose} available {} balance",
                        record.payout.amount, record.payout.currency
                    ),
                )
                .with_param("amount")
                .into());
            }
            return Err(error);
        }
        conn.insert_payout(&record).await?;
        // A withdrawal leaves the merchant's balance as it was.
        if record.payout.customer.is_none() {
            conn.insert_balance_transaction(
                &record.merchant_id,
                &balance_transaction(&record, "payout", -signed(record.payout.amount)?),
            )
            .await?;
        }
        emit(
            &mut conn,
            &record.merchant_id,
            record.payout.livemode,
            "payout.created",
            &record.payout,
        )
        .await?;
        recovery_point(&mut conn, guard.as_ref(), &record.payout.id).await?;
        tx.commit().await?;
        metrics::counter!("malipo_payouts_total", "status" => "pending").increment(1);

        let outcome = self.ask_payout(connector, &account, &record).await;

        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = conn
            .payout_by_id_for_update(&record.payout.id)
            .await?
            .ok_or_else(|| {
                GatewayError::internal(ApiError::not_found("payout", &record.payout.id))
            })?;
        apply_payout_outcome(&mut conn, &mut record, outcome).await?;
        complete(&mut conn, guard.as_ref(), &record.payout).await?;
        tx.commit().await?;
        Ok(record.payout)
    }

    /// Sends a written payout through its connector; what the provider
    /// said, with transport failures mapped to outcomes (unanswered: still
    /// pending, looked at again later; refused: failed).
    async fn ask_payout(
        &self,
        connector: Arc<dyn Connector>,
        account: &malipo_connectors::ConnectorAccount,
        record: &PayoutRecord,
    ) -> PayoutOutcome {
        let payout = &record.payout;
        let answer = connector
            .start_payout(&PayoutRequest {
                payout_id: &payout.id,
                amount: payout.amount,
                currency: &payout.currency,
                phone: payout.destination.phone.as_deref().unwrap_or_default(),
                description: payout.description.as_deref(),
                account,
                livemode: payout.livemode,
            })
            .await;
        match answer {
            Ok(outcome) => outcome,
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(payout = %payout.id, %reason,
                    "the provider did not answer a payout; it stays pending with its money in transit");
                PayoutOutcome::Processing {
                    provider_reference: None,
                    poll_after_ms: u64::try_from(self.config().recovery_poll_after_ms).ok(),
                }
            }
            Err(error) => PayoutOutcome::Failed {
                provider_reference: None,
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: error.to_string(),
                },
            },
        }
    }

    pub async fn payout(&self, context: &MerchantContext, id: &str) -> GatewayResult<Payout> {
        context.require(Scope::ReadOnly)?;
        not_found_unless_shaped(id)?;
        let mut reader = self.store().reader().await?;
        let (mut records, _) = reader
            .conn()
            .payouts(
                &[
                    owner_filters(context),
                    vec![Filter::TextEquals("id", id.to_owned())],
                ]
                .concat(),
                &Page {
                    limit: 1,
                    cursor: malipo_store::Cursor::Newest,
                },
            )
            .await?;
        Ok(records
            .pop()
            .ok_or_else(|| ApiError::not_found("payout", id))?
            .payout)
    }

    pub async fn payouts(
        &self,
        context: &MerchantContext,
        filters: &PayoutFilters,
        page: &Page,
    ) -> GatewayResult<List<Payout>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(customer) = &filters.customer {
            conditions.push(Filter::TextEquals("customer_id", customer.clone()));
        }
        if let Some(status) = &filters.status {
            let status = PayoutStatus::parse(status)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status `{status}`")))?;
            conditions.push(Filter::TextEquals("status", status.as_str().to_owned()));
        }
        if let Some(method) = &filters.method {
            let method = PaymentMethod::parse(method)
                .ok_or_else(|| ApiError::invalid("method", format!("unknown method `{method}`")))?;
            conditions.push(Filter::TextEquals("method", method.as_str().to_owned()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().payouts(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.payout).collect(),
            has_more,
        ))
    }

    /// Worker step: asks the providers about payouts whose poll is due (a
    /// lost result callback, an unanswered request); answers how many.
    pub async fn poll_due_payouts(&self, limit: i64) -> GatewayResult<usize> {
        let now = now_ms();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let ids = conn.payouts_due_for_poll(now, limit).await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(mut record) = conn.payout_by_id_for_update(&id).await? {
                // A lease: no other worker polls this payout until it ends.
                record.next_poll_ms = Some(now + POLL_LEASE_MS);
                conn.update_payout(&record).await?;
                claimed.push(record);
            }
        }
        tx.commit().await?;
        let count = claimed.len();
        for record in claimed {
            if let Err(error) = self.poll_payout(record).await {
                tracing::error!(error = %error.chain(), "payout status poll failed");
            }
        }
        Ok(count)
    }

    async fn poll_payout(&self, record: PayoutRecord) -> GatewayResult<()> {
        let id = record.payout.id.clone();
        let answer = match self.payout_connector(&record).await {
            Ok((connector, account)) => {
                connector
                    .payout_status(&PayoutStatusRequest {
                        payout_id: &id,
                        provider_reference: record.provider_reference.as_deref(),
                        started_ms: record.started_ms.unwrap_or(record.payout.created * 1000),
                        now_ms: now_ms(),
                        account: &account,
                    })
                    .await
            }
            Err(error) => Err(ConnectorError::Rejected(error.chain())),
        };
        let outcome = match answer {
            Ok(outcome) => outcome,
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(payout = %id, %reason, "payout status poll unanswered; retrying after the lease");
                return Ok(());
            }
            Err(error) => {
                // Nothing to ask (no status API, no reference yet): stop
                // polling; the result callback or an operator settles it.
                tracing::warn!(payout = %id, %error,
                    "the provider can't be asked about this payout; it waits for its result callback");
                let mut tx = self.store().begin().await?;
                let mut conn = tx.conn();
                if let Some(mut current) = conn.payout_by_id_for_update(&id).await? {
                    current.next_poll_ms = None;
                    conn.update_payout(&current).await?;
                }
                tx.commit().await?;
                return Ok(());
            }
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        if let Some(mut current) = conn.payout_by_id_for_update(&id).await? {
            apply_payout_outcome(&mut conn, &mut current, outcome).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The connector and the merchant's account a payout went through.
    pub(crate) async fn payout_connector(
        &self,
        record: &PayoutRecord,
    ) -> GatewayResult<(Arc<dyn Connector>, malipo_connectors::ConnectorAccount)> {
        let connector = self
            .connectors()
            .by_name(&record.payout.connector)
            .cloned()
            .ok_or_else(|| {
                GatewayError::internal(ApiError::invalid(
                    "connector",
                    format!("no connector `{}`", record.payout.connector),
                ))
            })?;
        let account = {
            let mut reader = self.store().reader().await?;
            reader.conn().connector_account(&record.account_id).await?
        }
        .ok_or_else(|| {
            GatewayError::internal(ApiError::not_found("connector_account", &record.account_id))
        })?;
        Ok((connector, self.connector_account_of(account)?))
    }
}

fn signed(value: u64) -> GatewayResult<i64> {
    i64::try_from(value).map_err(GatewayError::internal)
}

fn balance_transaction(record: &PayoutRecord, kind: &str, amount: i64) -> BalanceTransaction {
    BalanceTransaction {
        id: new_id(IdKind::BalanceTransaction),
        object: "balance_transaction",
        livemode: record.payout.livemode,
        kind: kind.into(),
        amount,
        fee: 0,
        net: amount,
        currency: record.payout.currency.clone(),
        source: record.payout.id.clone(),
        created: now_seconds(),
    }
}

/// Records what the provider said about a payout, in the caller's
/// transaction (which holds the payout's lock), and writes it back: paid
/// moves the money out through the connector's clearing account, failed
/// returns it to the available balance, processing keeps it in transit
/// (and when to ask again). A payout already paid or failed is left as it
/// is: a late or duplicate answer changes nothing (a contradicting one is
/// logged for the operator).
pub(crate) async fn apply_payout_outcome(
    conn: &mut Conn<'_>,
    record: &mut PayoutRecord,
    outcome: PayoutOutcome,
) -> GatewayResult<()> {
    let status = record.payout.status;
    if status.is_terminal() {
        let contradicts = matches!(
            (&outcome, status),
            (PayoutOutcome::Paid { .. }, PayoutStatus::Failed)
                | (PayoutOutcome::Failed { .. }, PayoutStatus::Paid)
        );
        if contradicts {
            tracing::error!(payout = %record.payout.id, %status, ?outcome,
                "the provider contradicts a settled payout; reconcile it with the provider");
            metrics::counter!("malipo_payouts_contradicted_total").increment(1);
        }
        return Ok(());
    }
    let now = now_seconds();
    let (provider_reference, step) = match outcome {
        PayoutOutcome::Processing {
            provider_reference,
            poll_after_ms,
        } => {
            record.next_poll_ms = poll_after_ms
                .map(|after| now_ms().saturating_add(i64::try_from(after).unwrap_or(i64::MAX)));
            // Accepted once the provider has named it.
            let accepted = status == PayoutStatus::Pending
                && (provider_reference.is_some() || record.provider_reference.is_some());
            (
                provider_reference,
                accepted.then_some(PayoutTransition::Accept),
            )
        }
        PayoutOutcome::Paid {
            provider_reference,
            receipt,
        } => {
            if receipt.is_some() {
                record.payout.receipt = receipt;
            }
            (provider_reference, Some(PayoutTransition::Pay))
        }
        PayoutOutcome::Failed {
            provider_reference,
            failure,
        } => {
            record.payout.failure = Some(failure);
            (provider_reference, Some(PayoutTransition::Fail))
        }
    };
    if provider_reference.is_some() {
        record.provider_reference = provider_reference;
    }
    if let Some(step) = step {
        let next = status.apply(step).map_err(|error| {
            ApiError::new(
                ErrorKind::Conflict,
                "payout_unexpected_state",
                error.to_string(),
            )
        })?;
        let accounts = ledger_entries::payout_accounts(record);
        match next {
            PayoutStatus::Paid => {
                post(conn, &accounts, &[ledger_entries::payout_paid(record)]).await?;
            }
            PayoutStatus::Failed => {
                post(conn, &accounts, &[ledger_entries::payout_returned(record)]).await?;
                if record.payout.customer.is_none() {
                    conn.insert_balance_transaction(
                        &record.merchant_id,
                        &balance_transaction(
                            record,
                            "payout_failure",
                            signed(record.payout.amount)?,
                        ),
                    )
                    .await?;
                }
            }
            PayoutStatus::Pending | PayoutStatus::Processing => {}
        }
        record.payout.status = next;
        if next.is_terminal() {
            record.next_poll_ms = None;
        }
        record.payout.updated = now;
        let event_type = match next {
            PayoutStatus::Paid => Some("payout.paid"),
            PayoutStatus::Failed => Some("payout.failed"),
            PayoutStatus::Pending | PayoutStatus::Processing => None,
        };
        if let Some(event_type) = event_type {
            emit(
                conn,
                &record.merchant_id,
                record.payout.livemode,
                event_type,
                &record.payout,
            )
            .await?;
        }
        metrics::counter!("malipo_payouts_total", "status" => next.as_str()).increment(1);
    }
    conn.update_payout(record).await?;
    Ok(())
}

impl Gateway {
    /// For a provider callback on `account`: the payout it reports on and
    /// the outcome to apply, or `None` when the body is no result of a
    /// payout that went through this account. The outcome is what the
    /// provider's status API answers for an unsigned body (`None` inside
    /// when it could not be asked: the poll will), or the claim itself when
    /// the body is signed or the provider has no status API for payouts
    /// (an M-Pesa B2C Result, named by a ConversationID only Daraja and
    /// Malipo know, trusted like a reversal's Result).
    pub(crate) async fn payout_callback(
        &self,
        connector: &Arc<dyn Connector>,
        account: &malipo_store::ConnectorAccountRecord,
        verdict: malipo_hooks::Verdict,
        raw_body: &[u8],
    ) -> GatewayResult<Option<(String, Option<PayoutOutcome>)>> {
        let Some(claim) = connector.parse_payout_callback(raw_body) else {
            return Ok(None);
        };
        let record = {
            let mut reader = self.store().reader().await?;
            let mut conn = reader.conn();
            let id = match claim
                .payout_id
                .clone()
                .filter(|id| looks_like(IdKind::Payout, id))
            {
                Some(id) => Some(id),
                None => {
                    conn.payout_id_by_provider_reference(&account.id, &claim.provider_reference)
                        .await?
                }
            };
            match id {
                None => None,
                Some(id) => conn
                    .payouts(
                        &[
                            Filter::TextEquals("id", id),
                            Filter::TextEquals("account_id", account.id.clone()),
                        ],
                        &Page {
                            limit: 1,
                            cursor: malipo_store::Cursor::Newest,
                        },
                    )
                    .await?
                    .0
                    .pop(),
            }
        };
        let Some(record) = record.filter(|record| {
            record
                .provider_reference
                .as_ref()
                .is_none_or(|known| *known == claim.provider_reference)
        }) else {
            return Ok(None);
        };
        if verdict != malipo_hooks::Verdict::Unsigned {
            return Ok(Some((record.payout.id, Some(claim.outcome))));
        }
        let answer = match self.payout_connector(&record).await {
            Ok((connector, account)) => {
                connector
                    .payout_status(&PayoutStatusRequest {
                        payout_id: &record.payout.id,
                        provider_reference: Some(&claim.provider_reference),
                        started_ms: record.started_ms.unwrap_or(record.payout.created * 1000),
                        now_ms: now_ms(),
                        account: &account,
                    })
                    .await
            }
            Err(error) => Err(ConnectorError::Unavailable(error.chain())),
        };
        let outcome = match answer {
            Ok(outcome) => Some(outcome),
            Err(ConnectorError::Unsupported(_)) => Some(claim.outcome),
            Err(error) => {
                tracing::warn!(payout = %record.payout.id, %error,
                    "could not confirm a payout callback with the provider's status API; the poll will");
                None
            }
        };
        Ok(Some((record.payout.id, outcome)))
    }

    /// Applies a payout result [`Gateway::payout_callback`] found, in the
    /// inbound callback's transaction; answers the inbound outcome and a
    /// detail.
    pub(crate) async fn process_payout_result(
        &self,
        conn: &mut Conn<'_>,
        payout_id: &str,
        outcome: Option<PayoutOutcome>,
    ) -> GatewayResult<(&'static str, Option<String>)> {
        let Some(outcome) = outcome else {
            return Ok((
                "awaiting_confirmation",
                Some(format!(
                    "payout {payout_id}: the provider's status API did not answer; the poll will"
                )),
            ));
        };
        if matches!(outcome, PayoutOutcome::Processing { .. }) {
            return Ok((
                "ignored",
                Some(format!("payout {payout_id}: still processing")),
            ));
        }
        let Some(mut record) = conn.payout_by_id_for_update(payout_id).await? else {
            return Ok((
                "unmatched",
                Some(format!(
                    "payout {payout_id} vanished; kept for reconciliation"
                )),
            ));
        };
        if record.payout.status.is_terminal() {
            let status = record.payout.status;
            apply_payout_outcome(conn, &mut record, outcome).await?;
            return Ok((
                "ignored",
                Some(format!("payout {payout_id} is already {status}")),
            ));
        }
        apply_payout_outcome(conn, &mut record, outcome).await?;
        Ok((
            "processed",
            Some(format!("payout {payout_id} is {}", record.payout.status)),
        ))
    }
}
