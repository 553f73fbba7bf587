//! Refunds: partial or full, never more than the payment, even when many
//! arrive at once.
//!
//! The first transaction locks the payment, checks what is left to refund,
//! reserves the refund on the payment (`amount_refunded`) and in the ledger
//! (pending transfers, which fail if the merchant's balance can't cover
//! them), then the provider is asked; a second transaction posts or voids
//! the reservation. Concurrent refunds queue on the payment's lock, so the
//! sum of refunds can't pass the amount.
//!
//! The refund goes through the payment's connector and the merchant's
//! account the payment went through; the connector first checks what the
//! provider can do (M-Pesa and Airtel Money reverse whole transactions
//! only: a partial refund is a 400 naming `amount`). A provider that
//! answers later (an M-Pesa reversal) leaves the refund `pending`, its
//! reservation held, until the result callback reaches the inbound path,
//! which settles it with [`settle_refund`] in the same way.
//!
//! A voucher payment is refunded onto its voucher, at once and in one
//! transaction: the voucher's remaining value grows by the amount (a used
//! up voucher is active again; never above its face value), the ledger
//! liability (`vouchers_outstanding`) comes back, the refund succeeds. A
//! voucher that has expired (its unused value already released) can't take
//! value back: that refund is refused (409 `voucher_expired`) and changes
//! nothing. Conversion payments are refused (409
//! `conversion_refund_unsupported`, see docs/conversions.md).
//!
//! A payment that credited a customer (`credit_customer`, desk buys
//! included) passed its net on to the customer's balance: its refund first
//! takes the refunded part of that net back from the customer's available
//! balance to the merchant's, in the same transaction (400
//! `balance_insufficient` naming `amount` when the customer no longer has
//! it; nothing moves), and gives it back to the customer if the provider
//! refuses the refund.

use crate::auth::MerchantContext;
use crate::idempotency::{IdempotencyGuard, complete, recovery_point};
use crate::payments::{created_filters, emit, owner_filters, post};
use crate::vouchers::VOUCHER_CONNECTOR;
use crate::{
    ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_seconds,
};
use malipo_connectors::{
    Connector, ConnectorError, RefundCheck, RefundClaim, RefundOutcome, RefundRequest,
};
use malipo_core::MinorUnits;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::metadata::{self, Metadata};
use malipo_core::objects::{BalanceTransaction, Failure, List, Refund, Scope};
use malipo_core::payment::PaymentStatus;
use malipo_core::refund::{RefundReason, RefundStatus, fee_share_of_refund};
use malipo_ledger::TransferError;
use malipo_store::{Conn, Filter, Page, PaymentRecord, RefundRecord, StoreError};
use serde::Deserialize;
use std::sync::Arc;
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

/// A voucher payment whose voucher has expired: its value can't go back.
fn voucher_expired_refusal() -> ApiError {
    refund_not_possible(
        "voucher_expired",
        "this payment's voucher has expired: its unused value was released, so a refund can't go back onto it".into(),
    )
}

/// Whether the ledger refused a batch because an account would go below
/// zero.
fn exceeds_credits(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Internal(error) if matches!(
        error.downcast_ref::<StoreError>(),
        Some(StoreError::Ledger(batch)) if batch.error == TransferError::ExceedsCredits
    ))
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
            self.complete_resumed(guard.as_ref(), &refund).await?;
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
        if payment.payment.conversion.is_some() {
            return Err(refund_not_possible(
                "conversion_refund_unsupported",
                "a conversion payment can't be refunded through the API yet: the customer paid in one currency and the merchant was credited in another (see docs/conversions.md)".into(),
            )
            .into());
        }
        let refundable = payment
            .payment
            .amount_received
            .saturating_sub(payment.payment.amount_refunded);
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
        // The provider's own limits (e.g. M-Pesa and Airtel reverse whole
        // transactions only), before anything is reserved.
        let connector = self
            .connectors()
            .by_name(&payment.payment.connector)
            .cloned();
        // A voucher payment's refund goes back onto its voucher, in this
        // transaction (see `refund_to_voucher` below).
        let voucher_id = match &connector {
            _ if payment.payment.connector == VOUCHER_CONNECTOR => {
                let voucher_id = payment.provider_reference.clone().ok_or_else(|| {
                    GatewayError::internal(ApiError::invalid(
                        "payment",
                        "a voucher payment without its voucher",
                    ))
                })?;
                let voucher = conn.voucher(&voucher_id).await?;
                if voucher.is_none_or(|voucher| {
                    voucher.status == "expired" || voucher.expires_at <= now_seconds()
                }) {
                    return Err(voucher_expired_refusal().into());
                }
                Some(voucher_id)
            }
            Some(connector) => {
                connector
                    .check_refund(&RefundCheck {
                        amount,
                        payment_amount: payment.payment.amount_received,
                        provider_receipt: payment.provider_receipt.as_deref(),
                    })
                    .map_err(|error| ApiError::invalid(error.param, error.message))?;
                None
            }
            // Any method without a provider connector has nothing to refund
            // through: refuse before anything is reserved.
            None => {
                return Err(ApiError::invalid(
                    "payment",
                    format!(
                        "payments made with `{}` can't be refunded through the API",
                        payment.payment.method
                    ),
                )
                .into());
            }
        };
        let fee_share = fee_share_of_refund(
            MinorUnits::from(payment.payment.amount_received),
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
        if let Some(customer_id) = &payment.payment.credit_customer {
            let taken = amount.saturating_sub(fee_share);
            let (accounts, take) = ledger_entries::refund_takes_from_customer(
                &payment,
                customer_id,
                &record.refund.id,
                taken,
                false,
            );
            match post(&mut conn, &accounts, &[take]).await {
                Err(error) if exceeds_credits(&error) => {
                    return Err(ApiError::new(
                        ErrorKind::InvalidRequest,
                        "balance_insufficient",
                        format!(
                            "this payment credited customer {customer_id}, whose available {} balance can't give back the {taken} minor units of the refund",
                            payment.payment.currency
                        ),
                    )
                    .with_param("amount")
                    .into());
                }
                other => other?,
            }
        }
        let reserve =
            ledger_entries::refund_reserved(&payment, &record.refund.id, amount, fee_share);
        match post(
            &mut conn,
            &ledger_entries::payment_accounts(&payment),
            &reserve,
        )
        .await
        {
            Err(error) if exceeds_credits(&error) => {
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
        if let Some(voucher_id) = voucher_id {
            // The value goes back onto the voucher (active again if it was
            // used up), the liability with it, and the refund succeeds: all
            // in this transaction. The conditional UPDATE refuses a voucher
            // that expired meanwhile, and then nothing here commits.
            let value = i64::try_from(amount).map_err(GatewayError::internal)?;
            if !conn
                .refund_to_voucher(&voucher_id, value, now_seconds())
                .await?
            {
                return Err(voucher_expired_refusal().into());
            }
            settle_refund(
                &mut conn,
                &mut payment,
                &mut record,
                RefundOutcome::Succeeded {
                    provider_reference: Some(voucher_id),
                },
            )
            .await?;
            let (outstanding, back) =
                ledger_entries::voucher_refunded(&payment, &record.refund.id, amount);
            let mut accounts = ledger_entries::payment_accounts(&payment);
            accounts.push(outstanding);
            post(&mut conn, &accounts, &[back]).await?;
            complete(&mut conn, guard.as_ref(), &record.refund).await?;
            tx.commit().await?;
            return Ok(record.refund);
        }
        recovery_point(&mut conn, guard.as_ref(), &record.refund.id).await?;
        tx.commit().await?;

        let outcome = self.ask_refund(connector, &payment, &record).await;

        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut payment = conn
            .payment_for_update(&context.merchant_id, context.livemode(), &payment_id)
            .await?
            .ok_or_else(|| GatewayError::internal(ApiError::not_found("payment", &payment_id)))?;
        settle_refund(&mut conn, &mut payment, &mut record, outcome).await?;
        complete(&mut conn, guard.as_ref(), &record.refund).await?;
        tx.commit().await?;
        Ok(record.refund)
    }

    /// Asks the payment's connector to refund, through the merchant's
    /// account the payment went through. A provider that did not answer
    /// may still have taken the refund: it stays pending (its reservation
    /// held) rather than failing while the money may be on its way back.
    async fn ask_refund(
        &self,
        connector: Option<Arc<dyn Connector>>,
        payment: &PaymentRecord,
        record: &RefundRecord,
    ) -> RefundOutcome {
        let failed = |message: String| RefundOutcome::Failed {
            failure: Failure {
                code: "provider_error".into(),
                message,
            },
        };
        let Some(connector) = connector else {
            return failed("the payment's connector is gone".into());
        };
        let account = match self.account_for(payment).await {
            Ok(account) => account,
            Err(error) => {
                return failed(format!(
                    "no connector account to refund through: {}",
                    error.chain()
                ));
            }
        };
        let answer = connector
            .refund(&RefundRequest {
                refund_id: &record.refund.id,
                payment_id: &payment.payment.id,
                provider_reference: payment.provider_reference.as_deref(),
                provider_receipt: payment.provider_receipt.as_deref(),
                amount: record.refund.amount,
                payment_amount: payment.payment.amount_received,
                currency: &record.refund.currency,
                account: &account,
                livemode: payment.payment.livemode,
            })
            .await;
        match answer {
            Ok(outcome) => outcome,
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(refund = %record.refund.id, %reason,
                    "the provider did not answer a refund; it stays pending until reconciled");
                RefundOutcome::Pending {
                    provider_reference: None,
                }
            }
            Err(error) => failed(error.to_string()),
        }
    }

    /// Applies a provider's refund result (an M-Pesa reversal `Result`),
    /// in the inbound callback's transaction: the pending refund of this
    /// account's merchant and mode that the provider knows by the claim's
    /// reference, through this account's provider, and (when the result
    /// names it) for the payment's own receipt. Anything else changes
    /// nothing and is kept for reconciliation. Answers the inbound outcome
    /// and a detail.
    pub(crate) async fn process_refund_claim(
        &self,
        conn: &mut Conn<'_>,
        account: &malipo_store::ConnectorAccountRecord,
        claim: RefundClaim,
    ) -> GatewayResult<(&'static str, Option<String>)> {
        let kept = |detail: String| {
            Ok((
                "unmatched",
                Some(format!("{detail}; kept for reconciliation")),
            ))
        };
        let Some(found) = conn
            .refund_by_provider_reference(
                &account.merchant_id,
                account.livemode,
                &claim.provider_reference,
            )
            .await?
        else {
            return kept(format!(
                "no refund of this account's merchant has provider reference {}",
                claim.provider_reference
            ));
        };
        // Lock order: the payment first, then read the refund again.
        let Some(mut payment) = conn
            .payment_for_update(
                &account.merchant_id,
                account.livemode,
                &found.refund.payment,
            )
            .await?
        else {
            return kept(format!("refund {} has no payment", found.refund.id));
        };
        let Some(mut record) = conn
            .refund(&account.merchant_id, account.livemode, &found.refund.id)
            .await?
        else {
            return kept(format!("refund {} vanished", found.refund.id));
        };
        if payment.payment.connector != account.provider {
            return kept(format!(
                "refund {} is of a {} payment, the callback came for a {} account",
                record.refund.id, payment.payment.connector, account.provider
            ));
        }
        if let (Some(original), Some(receipt)) =
            (&claim.original_transaction, &payment.provider_receipt)
            && original != receipt
        {
            return kept(format!(
                "the result reverses {original}, refund {}'s payment has receipt {receipt}",
                record.refund.id
            ));
        }
        if record.refund.status != RefundStatus::Pending {
            return Ok((
                "ignored",
                Some(format!(
                    "refund {} is already {}",
                    record.refund.id,
                    record.refund.status.as_str()
                )),
            ));
        }
        if matches!(claim.outcome, RefundOutcome::Pending { .. }) {
            return Ok(("ignored", Some("a pending result changes nothing".into())));
        }
        settle_refund(conn, &mut payment, &mut record, claim.outcome).await?;
        Ok((
            "processed",
            Some(format!(
                "refund {} is {}",
                record.refund.id,
                record.refund.status.as_str()
            )),
        ))
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

/// Records where a refund stands, in the caller's transaction, which holds
/// the payment's lock: success posts its reservation (with a balance
/// transaction and `refund.succeeded`), failure voids it and gives the
/// amount back to the payment (`refund.failed`), pending keeps it and the
/// provider's reference its result will name.
pub(crate) async fn settle_refund(
    conn: &mut Conn<'_>,
    payment: &mut PaymentRecord,
    record: &mut RefundRecord,
    outcome: RefundOutcome,
) -> GatewayResult<()> {
    let merchant_id = record.merchant_id.clone();
    let livemode = record.refund.livemode;
    let amount = record.refund.amount;
    let fee_share = record.refund.fee_refunded;
    record.refund.updated = now_seconds();
    match outcome {
        RefundOutcome::Succeeded { provider_reference } => {
            if provider_reference.is_some() {
                record.provider_reference = provider_reference;
            }
            record.refund.status = RefundStatus::Succeeded;
            let release = ledger_entries::refund_reservation_released(
                payment,
                &record.refund.id,
                amount,
                fee_share,
                true,
            );
            post(conn, &ledger_entries::payment_accounts(payment), &release).await?;
            let signed = |value: u64| i64::try_from(value).map_err(GatewayError::internal);
            conn.insert_balance_transaction(
                &merchant_id,
                &BalanceTransaction {
                    id: new_id(IdKind::BalanceTransaction),
                    object: "balance_transaction",
                    livemode,
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
                conn,
                &merchant_id,
                livemode,
                "refund.succeeded",
                &record.refund,
            )
            .await?;
        }
        RefundOutcome::Failed { failure } => {
            record.refund.status = RefundStatus::Failed;
            record.refund.failure = Some(failure);
            let release = ledger_entries::refund_reservation_released(
                payment,
                &record.refund.id,
                amount,
                fee_share,
                false,
            );
            post(conn, &ledger_entries::payment_accounts(payment), &release).await?;
            if let Some(customer_id) = &payment.payment.credit_customer {
                let (accounts, back) = ledger_entries::refund_takes_from_customer(
                    payment,
                    customer_id,
                    &record.refund.id,
                    amount.saturating_sub(fee_share),
                    true,
                );
                post(conn, &accounts, &[back]).await?;
            }
            payment.payment.amount_refunded -= amount;
            payment.fee_refunded -= fee_share;
            payment.payment.updated = record.refund.updated;
            conn.update_payment(payment).await?;
            emit(
                conn,
                &merchant_id,
                livemode,
                "refund.failed",
                &record.refund,
            )
            .await?;
        }
        RefundOutcome::Pending { provider_reference } => {
            if provider_reference.is_some() {
                record.provider_reference = provider_reference;
            }
        }
    }
    conn.update_refund(record).await?;
    metrics::counter!("malipo_refunds_total", "status" => record.refund.status.as_str())
        .increment(1);
    Ok(())
}
