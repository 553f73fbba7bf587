//! Refunds: partial or full, never more than the payment, even when many
//! arrive at once.
//!
//! The first transaction locks the payment, checks what is left to refund,
//! reserves the refund on the payment (`amount_refunded`) and in the ledger
//! (pending transfers, which fail if the merchant's balance can't cover
//! them), then the provider is asked; a second transaction posts or voids
//! the reservation. Concurrent refunds queue on the payment's lock, so the
//! sum of refunds can't pass the amount.

use crate::auth::MerchantContext;
use crate::idempotency::{IdempotencyGuard, complete, recovery_point};
use crate::payments::{created_filters, emit, owner_filters, post};
use crate::{
    ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_seconds,
};
use malipo_connectors::{ConnectorAccount, RefundOutcome, RefundRequest};
use malipo_core::MinorUnits;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::metadata::{self, Metadata};
use malipo_core::objects::{BalanceTransaction, Failure, List, Refund, Scope};
use malipo_core::payment::PaymentStatus;
use malipo_core::refund::{RefundReason, RefundStatus, fee_share_of_refund};
use malipo_ledger::TransferError;
use malipo_store::{Filter, Page, RefundRecord, StoreError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/refunds`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The id of the payment to refund (`pay_…`).
    pub payment: Option<String>,
    /// Defaults to what is left to refund.
    pub amount: Option<u64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// `GET /v1/refunds` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct RefundFilters {
    /// Only the refunds of this payment.
    pub payment: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

fn refund_not_possible(code: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::Conflict, code, message).with_param("payment")
}

impl Gateway {
    pub async fn create_refund(
        &self,
        context: &MerchantContext,
        request: CreateRefund,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Refund> {
        context.require(Scope::RefundsWrite)?;
        if let Some(id) = guard
            .as_ref()
            .and_then(|guard| guard.resume_object_id.clone())
        {
            let refund = self.refund(context, &id).await?;
            let mut tx = self.store().begin().await?;
            complete(&mut tx.conn(), guard.as_ref(), &refund).await?;
            tx.commit().await?;
            return Ok(refund);
        }
        let payment_id = request
            .payment
            .ok_or_else(|| ApiError::missing("payment"))?;
        if !looks_like(IdKind::Payment, &payment_id) {
            return Err(ApiError::not_found("payment", &payment_id)
                .with_param("payment")
                .into());
        }
        let reason = request
            .reason
            .map(|text| {
                RefundReason::parse(&text).ok_or_else(|| {
                    ApiError::invalid(
                        "reason",
                        "reason must be `duplicate`, `fraudulent` or `requested_by_customer`",
                    )
                })
            })
            .transpose()?;
        metadata::validate(&request.metadata)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;

        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut payment = conn
            .payment_for_update(&context.merchant_id, context.livemode(), &payment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("payment", &payment_id).with_param("payment"))?;
        if payment.payment.status != PaymentStatus::Succeeded {
            return Err(refund_not_possible(
                "payment_not_refundable",
                format!(
                    "only a succeeded payment can be refunded; this one is `{}`",
                    payment.payment.status
                ),
            )
            .into());
        }
        let refundable = payment.payment.amount - payment.payment.amount_refunded;
        if refundable == 0 {
            return Err(refund_not_possible(
                "payment_already_refunded",
                "this payment is already fully refunded".into(),
            )
            .into());
        }
        let amount = request.amount.unwrap_or(refundable);
        if amount == 0 {
            return Err(ApiError::invalid("amount", "amount must be greater than 0").into());
        }
        if amount > refundable {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "amount {amount} is more than the {refundable} left to refund on this payment"
                ),
            )
            .into());
        }
        let fee_share = fee_share_of_refund(
            MinorUnits::from(payment.payment.amount),
            MinorUnits::from(payment.payment.fee),
            MinorUnits::from(payment.payment.amount_refunded),
            MinorUnits::from(payment.fee_refunded),
            MinorUnits::from(amount),
        )
        .and_then(|share| u64::try_from(share.get()).ok())
        .ok_or_else(|| {
            GatewayError::internal(ApiError::invalid("amount", "fee share out of range"))
        })?;

        let now = now_seconds();
        let mut record = RefundRecord {
            merchant_id: context.merchant_id.clone(),
            refund: Refund {
                id: new_id(IdKind::Refund),
                object: "refund",
                livemode: context.livemode(),
                payment: payment_id.clone(),
                amount,
                currency: payment.payment.currency.clone(),
                status: RefundStatus::Pending,
                reason,
                fee_refunded: fee_share,
                failure: None,
                metadata: request.metadata,
                created: now,
                updated: now,
            },
            provider_reference: None,
        };
        let reserve =
            ledger_entries::refund_reserved(&payment, &record.refund.id, amount, fee_share);
        match post(
            &mut conn,
            &ledger_entries::payment_accounts(&payment),
            &reserve,
        )
        .await
        {
            Err(GatewayError::Internal(error))
                if matches!(
                    error.downcast_ref::<StoreError>(),
                    Some(StoreError::Ledger(batch)) if batch.error == TransferError::ExceedsCredits
                ) =>
            {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    "balance_insufficient",
                    "the merchant's available balance can't cover this refund",
                )
                .into());
            }
            other => other?,
        }
        payment.payment.amount_refunded += amount;
        payment.fee_refunded += fee_share;
        payment.payment.updated = now;
        conn.update_payment(&payment).await?;
        conn.insert_refund(&record).await?;
        emit(
            &mut conn,
            &context.merchant_id,
            context.livemode(),
            "refund.created",
            &record.refund,
        )
        .await?;
        recovery_point(&mut conn, guard.as_ref(), &record.refund.id).await?;
        tx.commit().await?;

        let connector = self
            .connectors()
            .by_name(&payment.payment.connector)
            .cloned();
        let account = ConnectorAccount::default();
        let outcome = match connector {
            Some(connector) => connector
                .refund(&RefundRequest {
                    refund_id: &record.refund.id,
                    payment_id: &payment_id,
                    provider_reference: payment.provider_reference.as_deref(),
                    amount,
                    currency: &record.refund.currency,
                    account: &account,
                })
                .await
                .unwrap_or_else(|error| RefundOutcome::Failed {
                    failure: Failure {
                        code: "provider_error".into(),
                        message: error.to_string(),
                    },
                }),
            None => RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_error".into(),
                    message: "the payment's connector is gone".into(),
                },
            },
        };

        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut payment = conn
            .payment_for_update(&context.merchant_id, context.livemode(), &payment_id)
            .await?
            .ok_or_else(|| GatewayError::internal(ApiError::not_found("payment", &payment_id)))?;
        record.refund.updated = now_seconds();
        match outcome {
            RefundOutcome::Succeeded { provider_reference } => {
                record.provider_reference = provider_reference;
                record.refund.status = RefundStatus::Succeeded;
                let release = ledger_entries::refund_reservation_released(
                    &payment,
                    &record.refund.id,
                    amount,
                    fee_share,
                    true,
                );
                post(
                    &mut conn,
                    &ledger_entries::payment_accounts(&payment),
                    &release,
                )
                .await?;
                let signed = |value: u64| i64::try_from(value).map_err(GatewayError::internal);
                conn.insert_balance_transaction(
                    &context.merchant_id,
                    &BalanceTransaction {
                        id: new_id(IdKind::BalanceTransaction),
                        object: "balance_transaction",
                        livemode: context.livemode(),
                        kind: "refund".into(),
                        amount: -signed(amount)?,
                        fee: -signed(fee_share)?,
                        net: -signed(amount - fee_share)?,
                        currency: record.refund.currency.clone(),
                        source: record.refund.id.clone(),
                        created: record.refund.updated,
                    },
                )
                .await?;
                emit(
                    &mut conn,
                    &context.merchant_id,
                    context.livemode(),
                    "refund.succeeded",
                    &record.refund,
                )
                .await?;
            }
            RefundOutcome::Failed { failure } => {
                record.refund.status = RefundStatus::Failed;
                record.refund.failure = Some(failure);
                let release = ledger_entries::refund_reservation_released(
                    &payment,
                    &record.refund.id,
                    amount,
                    fee_share,
                    false,
                );
                post(
                    &mut conn,
                    &ledger_entries::payment_accounts(&payment),
                    &release,
                )
                .await?;
                payment.payment.amount_refunded -= amount;
                payment.fee_refunded -= fee_share;
                payment.payment.updated = record.refund.updated;
                conn.update_payment(&payment).await?;
                emit(
                    &mut conn,
                    &context.merchant_id,
                    context.livemode(),
                    "refund.failed",
                    &record.refund,
                )
                .await?;
            }
            RefundOutcome::Pending { provider_reference } => {
                record.provider_reference = provider_reference;
            }
        }
        conn.update_refund(&record).await?;
        metrics::counter!("malipo_refunds_total", "status" => record.refund.status.as_str())
            .increment(1);
        complete(&mut conn, guard.as_ref(), &record.refund).await?;
        tx.commit().await?;
        Ok(record.refund)
    }

    pub async fn refund(&self, context: &MerchantContext, id: &str) -> GatewayResult<Refund> {
        context.require(Scope::ReadOnly)?;
        if !looks_like(IdKind::Refund, id) {
            return Err(ApiError::not_found("refund", id).into());
        }
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .refund(&context.merchant_id, context.livemode(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("refund", id))?;
        Ok(record.refund)
    }

    pub async fn refunds(
        &self,
        context: &MerchantContext,
        filters: &RefundFilters,
        page: &Page,
    ) -> GatewayResult<List<Refund>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(payment) = &filters.payment {
            conditions.push(Filter::TextEquals("payment_id", payment.clone()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().refunds(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.refund).collect(),
            has_more,
        ))
    }
}
