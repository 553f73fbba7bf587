//! M-Pesa C2B: customers paying the merchant's paybill or till from their
//! own phone, with no STK push.
//!
//! `POST /v1/connector_accounts/{id}/c2b/register` registers the
//! account's validation and confirmation URLs with Daraja (RegisterURL)
//! for its `c2b_shortcode` (default `shortcode`). Registration is explicit
//! rather than automatic on account creation: it calls Safaricom, can be
//! refused ("Urls are already registered" in production), and the
//! merchant decides when the paybill goes live.
//!
//! The URLs are `{public_url}/v1/hooks/daraja/{account}?c2b=validation|confirmation&token=…`:
//! `daraja` is M-Pesa's alias on the one inbound endpoint (Daraja refuses
//! C2B URLs containing "mpesa"), and since C2B notifications are unsigned
//! and no status API answers synchronously, the URL carries a token (an
//! HMAC of the account id under the server's secret) that only Daraja
//! learns. A notification without it is refused (401) before anything is
//! read; the token is never shown to anyone, the merchant included.
//!
//! - Validation (sent before the money moves, when External Validation is
//!   on for the shortcode) is answered by the account's `c2b_validation`
//!   rule: `accept_all` (default) accepts every payment to the shortcode;
//!   `reference` accepts only a bill reference naming an open M-Pesa
//!   payment of the merchant's (`C2B00012` otherwise) for its exact amount
//!   (`C2B00013`). A payment to another shortcode is `C2B00015`. An
//!   accepted payment that matches an open payment is answered with its id
//!   as `ThirdPartyTransID`, which Daraja echoes in the confirmation.
//!   Validation changes nothing.
//! - Confirmation (the money moved) completes the open payment named by
//!   `ThirdPartyTransID` or by the bill reference when the amount matches,
//!   else records a new succeeded payment (method `mpesa`, the bill
//!   reference as `reference`, the receipt in `metadata.mpesa_receipt`),
//!   with its ledger entries, balance transaction and `payment.created` /
//!   `payment.succeeded` events, in the transaction that records the
//!   callback. The receipt (`TransID`) is the payment's provider reference
//!   and receipt, unique per connector: a duplicate confirmation, the same
//!   body or not, changes nothing.

use crate::auth::{Actor, AuditChange, MerchantContext};
use crate::inbound::HookAnswer;
use crate::payments::{apply_outcome, event, transition};
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_seconds};
use malipo_connectors::ConnectorError;
use malipo_connectors::PaymentOutcome;
use malipo_connectors::mpesa::{
    C2B_ACCEPT, C2B_CONFIRMATION_ANSWER, C2B_INVALID_ACCOUNT_NUMBER, C2B_INVALID_AMOUNT,
    C2B_INVALID_SHORTCODE, C2B_OTHER_ERROR, C2bNotification, parse_c2b_notification,
};
use malipo_core::MinorUnits;
use malipo_core::fee::FeeSchedule;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::objects::{Customer, InboundWebhook, Payment, Scope};
use malipo_core::payment::{PaymentMethod, PaymentStatus, PaymentTransition};
use malipo_hooks::ProviderDefinition;
use malipo_store::{Conn, ConnectorAccountRecord, PaymentRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

/// M-Pesa's other name on `/v1/hooks/{provider}/{account}`.
pub const DARAJA_ALIAS: &str = "daraja";
/// The account credential naming the validation rule.
pub const VALIDATION_RULE_CREDENTIAL: &str = "c2b_validation";
/// The validation rules.
pub const VALIDATION_RULES: &[&str] = &["accept_all", "reference"];
/// How much of the HMAC the URL token carries (128 bits).
const TOKEN_HEX_CHARS: usize = 32;
const MPESA: &str = "mpesa";

/// Which C2B URL Daraja called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum C2bKind {
    Validation,
    Confirmation,
}

impl C2bKind {
    /// The C2B URL `url` is, for an M-Pesa callback.
    pub(crate) fn of(definition: &ProviderDefinition, url: &str) -> Option<C2bKind> {
        if definition.name != MPESA {
            return None;
        }
        match query_param(url, "c2b") {
            Some("validation") => Some(C2bKind::Validation),
            Some("confirmation") => Some(C2bKind::Confirmation),
            _ => None,
        }
    }
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `POST /v1/connector_accounts/{id}/c2b/register`: what was registered.
/// The URLs themselves carry a secret token and are not shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct C2bRegistration {
    /// Always `c2b_registration`.
    pub object: &'static str,
    /// The connector account (`ca_…`).
    pub account: String,
    /// The paybill or till registered.
    pub shortcode: String,
    /// `accept_all` or `reference`: how validation answers.
    pub validation: String,
    pub created: i64,
}

/// A C2B decision: the result code and why.
struct Verdict {
    code: &'static str,
    detail: String,
    /// The open payment the notification matches.
    payment: Option<String>,
}

impl Verdict {
    fn refuse(code: &'static str, detail: String) -> Verdict {
        Verdict {
            code,
            detail,
            payment: None,
        }
    }
}

/// The account's C2B shortcode (its credentials' `c2b_shortcode`, else
/// `shortcode`) and validation rule.
fn c2b_settings(credentials: &BTreeMap<String, String>) -> (String, String) {
    let shortcode = credentials
        .get("c2b_shortcode")
        .or_else(|| credentials.get("shortcode"))
        .map(|code| code.trim().to_owned())
        .unwrap_or_default();
    let rule = credentials
        .get(VALIDATION_RULE_CREDENTIAL)
        .map(|rule| rule.trim().to_owned())
        .unwrap_or_else(|| "accept_all".to_owned());
    (shortcode, rule)
}

/// Checks an M-Pesa account's C2B settings when it is created, naming the
/// credential.
pub(crate) fn check_credentials(credentials: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(rule) = credentials.get(VALIDATION_RULE_CREDENTIAL)
        && !VALIDATION_RULES.contains(&rule.trim())
    {
        return Err(ApiError::invalid(
            format!("credentials[{VALIDATION_RULE_CREDENTIAL}]"),
            format!(
                "{VALIDATION_RULE_CREDENTIAL} must be one of {}",
                VALIDATION_RULES.join(", ")
            ),
        ));
    }
    Ok(())
}

fn json_answer(body: String) -> HookAnswer {
    HookAnswer {
        status: 200,
        content_type: Some("application/json".into()),
        body,
    }
}

impl Gateway {
    /// The secret token in an account's C2B URLs.
    fn c2b_token(&self, account_id: &str) -> String {
        let mut token = self.key_hasher().hash(&format!("mpesa-c2b:{account_id}"));
        token.truncate(TOKEN_HEX_CHARS);
        token
    }

    /// The validation and confirmation URLs of an account.
    fn c2b_urls(&self, account_id: &str) -> (String, String) {
        let base = format!("{}/v1/hooks/{DARAJA_ALIAS}/{account_id}", self.public_url());
        let token = self.c2b_token(account_id);
        (
            format!("{base}?c2b=validation&token={token}"),
            format!("{base}?c2b=confirmation&token={token}"),
        )
    }

    /// Registers an M-Pesa account's C2B URLs with Daraja; audited.
    pub async fn register_c2b_urls(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        account_id: &str,
    ) -> GatewayResult<C2bRegistration> {
        context.require(Scope::Full)?;
        let record = {
            let mut reader = self.store().reader().await?;
            reader.conn().connector_account(account_id).await?
        }
        .filter(|record| {
            record.merchant_id == context.merchant_id && record.livemode == context.livemode()
        })
        .ok_or_else(|| ApiError::not_found("connector_account", account_id))?;
        if record.provider != MPESA {
            return Err(ApiError::invalid(
                "id",
                format!(
                    "C2B is M-Pesa's; connector account {account_id} is `{}`",
                    record.provider
                ),
            )
            .into());
        }
        let credentials = self.connector_credentials(&record)?;
        let (shortcode, validation) = c2b_settings(&credentials);
        let connector = self.connectors().by_name(MPESA).cloned().ok_or_else(|| {
            ApiError::invalid("id", "this gateway has no M-Pesa connector configured")
        })?;
        let account = self.connector_account_of(record.clone())?;
        let (validation_url, confirmation_url) = self.c2b_urls(&record.id);
        connector
            .register_customer_payment_urls(&account, &validation_url, &confirmation_url)
            .await
            .map_err(|error| match error {
                ConnectorError::Unavailable(message) => ApiError::new(
                    ErrorKind::ProviderUnavailable,
                    "provider_unavailable",
                    format!("M-Pesa could not be reached: {message}"),
                ),
                error => ApiError::new(
                    ErrorKind::Payment,
                    "provider_rejected",
                    format!("M-Pesa refused the C2B registration: {error}"),
                ),
            })?;
        let registration = C2bRegistration {
            object: "c2b_registration",
            account: record.id.clone(),
            shortcode,
            validation,
            created: now_seconds(),
        };
        let mut tx = self.store().begin().await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "connector_account.c2b_register",
                    object_type: "connector_account",
                    object_id: &record.id,
                    merchant_id: Some(&record.merchant_id),
                    livemode: Some(record.livemode),
                    before: None,
                    after: Some(crate::auth::audit_state(&registration)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(registration)
    }

    /// A C2B validation or confirmation (see the module docs); the
    /// callback passed the account and allow-list checks already.
    pub(crate) async fn receive_c2b(
        &self,
        mut inbound: InboundWebhook,
        started: Instant,
        account: &ConnectorAccountRecord,
        kind: C2bKind,
        url: &str,
        raw_body: &[u8],
    ) -> GatewayResult<HookAnswer> {
        let expected = self.c2b_token(&account.id);
        let given = query_param(url, "token").unwrap_or_default();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return self
                .reject(
                    inbound,
                    started,
                    "c2b_token_mismatch",
                    "signature",
                    HookAnswer::plain(401, "c2b_token_mismatch"),
                )
                .await;
        }
        inbound.verdict = "verified".into();
        inbound.decided_by = "c2b_token".into();
        let credentials = self.connector_credentials(account)?;
        let (shortcode, rule) = c2b_settings(&credentials);
        let notification = parse_c2b_notification(raw_body);
        let (answer, outcome, detail) = match (kind, notification) {
            (C2bKind::Validation, Err(error)) => (
                json_answer(validation_body(C2B_OTHER_ERROR, None)),
                "processed",
                format!("answered {C2B_OTHER_ERROR}: {error}"),
            ),
            (C2bKind::Confirmation, Err(error)) => (
                HookAnswer::plain(400, "not a C2B confirmation"),
                "unmatched",
                format!("{error}; kept for reconciliation"),
            ),
            (C2bKind::Validation, Ok(notification)) => {
                let verdict = self
                    .c2b_validate(account, &shortcode, &rule, &notification)
                    .await?;
                (
                    json_answer(validation_body(verdict.code, verdict.payment.as_deref())),
                    "processed",
                    format!("answered {}: {}", verdict.code, verdict.detail),
                )
            }
            (C2bKind::Confirmation, Ok(notification)) => {
                return self
                    .c2b_confirm(inbound, started, account, &shortcode, notification)
                    .await;
            }
        };
        inbound.outcome = outcome.into();
        inbound.outcome_detail = Some(detail);
        self.record_inbound(inbound, started).await?;
        Ok(answer)
    }

    async fn record_inbound(
        &self,
        mut inbound: InboundWebhook,
        started: Instant,
    ) -> GatewayResult<()> {
        inbound.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut tx = self.store().begin().await?;
        tx.conn().insert_inbound_webhook(&inbound).await?;
        tx.commit().await?;
        metrics::counter!("malipo_inbound_webhooks_total", "provider" => inbound.provider.clone(), "verdict" => inbound.verdict.clone())
            .increment(1);
        Ok(())
    }

    /// Whether a C2B payment may go ahead, by the account's rule.
    async fn c2b_validate(
        &self,
        account: &ConnectorAccountRecord,
        shortcode: &str,
        rule: &str,
        notification: &C2bNotification,
    ) -> GatewayResult<Verdict> {
        if notification.shortcode != shortcode {
            return Ok(Verdict::refuse(
                C2B_INVALID_SHORTCODE,
                format!(
                    "paid to shortcode {}, this account's is {shortcode}",
                    notification.shortcode
                ),
            ));
        }
        let open = match &notification.bill_ref_number {
            Some(reference) => {
                let id = {
                    let mut reader = self.store().reader().await?;
                    reader
                        .conn()
                        .open_payment_id_by_reference(
                            &account.merchant_id,
                            account.livemode,
                            MPESA,
                            reference,
                        )
                        .await?
                };
                match id {
                    Some(id) => Some(self.admin_payment(&id).await?),
                    None => None,
                }
            }
            None => None,
        };
        let matching = open
            .as_ref()
            .filter(|record| record.payment.amount == notification.amount)
            .map(|record| record.payment.id.clone());
        if rule == "reference" {
            let Some(record) = &open else {
                return Ok(Verdict::refuse(
                    C2B_INVALID_ACCOUNT_NUMBER,
                    format!(
                        "no open payment has reference {:?}",
                        notification.bill_ref_number.as_deref().unwrap_or_default()
                    ),
                ));
            };
            if matching.is_none() {
                return Ok(Verdict::refuse(
                    C2B_INVALID_AMOUNT,
                    format!(
                        "{} cents offered, payment {} is for {}",
                        notification.amount, record.payment.id, record.payment.amount
                    ),
                ));
            }
        }
        let detail = match &matching {
            Some(id) => format!("accepted for payment {id}"),
            None => "accepted (accept_all)".to_owned(),
        };
        Ok(Verdict {
            code: C2B_ACCEPT,
            detail,
            payment: matching,
        })
    }

    /// Records a confirmed C2B payment, once (see the module docs).
    async fn c2b_confirm(
        &self,
        mut inbound: InboundWebhook,
        started: Instant,
        account: &ConnectorAccountRecord,
        shortcode: &str,
        notification: C2bNotification,
    ) -> GatewayResult<HookAnswer> {
        let fees = self
            .fee_schedule(&account.merchant_id, PaymentMethod::Mpesa)
            .await?;
        let event_key = inbound.event_key.clone().unwrap_or_default();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let first_time = conn
            .claim_inbound_event_key(MPESA, &account.id, &event_key, &inbound.id, now_seconds())
            .await?;
        let (outcome, detail) = if !first_time {
            inbound.verdict = "replayed".into();
            inbound.decided_by = "replay".into();
            (
                "duplicate",
                "this event was processed before; nothing changed".to_owned(),
            )
        } else {
            record_c2b_payment(&mut conn, account, shortcode, &notification, fees).await?
        };
        inbound.outcome = outcome.into();
        inbound.outcome_detail = Some(detail);
        inbound.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        conn.insert_inbound_webhook(&inbound).await?;
        tx.commit().await?;
        metrics::counter!("malipo_inbound_webhooks_total", "provider" => inbound.provider.clone(), "verdict" => inbound.verdict.clone())
            .increment(1);
        Ok(json_answer(C2B_CONFIRMATION_ANSWER.to_owned()))
    }
}

/// `{"ResultCode": …, "ResultDesc": …}`, with the matched payment's id as
/// `ThirdPartyTransID` (echoed by Daraja in the confirmation).
fn validation_body(code: &str, payment: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "ResultCode": code,
        "ResultDesc": if code == C2B_ACCEPT { "Accepted" } else { "Rejected" },
    });
    if let Some(payment) = payment {
        body["ThirdPartyTransID"] = payment.into();
    }
    body.to_string()
}

/// Completes the open payment a confirmation names, or records a new
/// succeeded payment; answers the inbound outcome and a detail.
async fn record_c2b_payment(
    conn: &mut Conn<'_>,
    account: &ConnectorAccountRecord,
    shortcode: &str,
    notification: &C2bNotification,
    fees: FeeSchedule,
) -> GatewayResult<(&'static str, String)> {
    let receipt = &notification.trans_id;
    if notification.shortcode != shortcode {
        return Ok((
            "unmatched",
            format!(
                "paid to shortcode {}, this account's is {shortcode}; kept for reconciliation",
                notification.shortcode
            ),
        ));
    }
    if let Some(id) = conn.payment_id_by_provider_receipt(MPESA, receipt).await? {
        return Ok((
            "ignored",
            format!("payment {id} already records M-Pesa receipt {receipt}"),
        ));
    }
    let named = match notification
        .third_party_trans_id
        .as_deref()
        .filter(|id| looks_like(IdKind::Payment, id))
    {
        Some(id) => Some(id.to_owned()),
        None => match &notification.bill_ref_number {
            Some(reference) => {
                conn.open_payment_id_by_reference(
                    &account.merchant_id,
                    account.livemode,
                    MPESA,
                    reference,
                )
                .await?
            }
            None => None,
        },
    };
    if let Some(id) = named
        && let Some(mut record) = conn
            .payment_for_update(&account.merchant_id, account.livemode, &id)
            .await?
        && record.payment.connector == MPESA
        && !record.payment.status.is_terminal()
        && record.payment.amount == notification.amount
    {
        record.provider_reference = Some(receipt.clone());
        record.provider_receipt = Some(receipt.clone());
        apply_outcome(
            conn,
            &mut record,
            PaymentOutcome::Succeeded {
                provider_reference: Some(receipt.clone()),
            },
        )
        .await?;
        return Ok((
            "processed",
            format!("payment {id} completed by M-Pesa receipt {receipt}"),
        ));
    }

    let now = now_seconds();
    let fee = u64::try_from(fees.fee_for(MinorUnits::from(notification.amount)).get())
        .map_err(GatewayError::internal)?;
    let phone = notification
        .msisdn
        .as_deref()
        .filter(|msisdn| !msisdn.is_empty() && msisdn.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    let mut metadata = BTreeMap::from([
        ("mpesa_receipt".to_owned(), receipt.clone()),
        ("mpesa_shortcode".to_owned(), notification.shortcode.clone()),
    ]);
    if !notification.transaction_type.is_empty() {
        metadata.insert(
            "mpesa_transaction_type".to_owned(),
            notification.transaction_type.chars().take(100).collect(),
        );
    }
    let mut record = PaymentRecord {
        merchant_id: account.merchant_id.clone(),
        payment: Payment {
            id: new_id(IdKind::Payment),
            object: "payment",
            livemode: account.livemode,
            amount: notification.amount,
            currency: "kes".into(),
            method: PaymentMethod::Mpesa,
            connector: MPESA.into(),
            status: PaymentStatus::RequiresConfirmation,
            capture_method: malipo_core::payment::CaptureMethod::Automatic,
            amount_capturable: 0,
            amount_received: 0,
            reference: notification
                .bill_ref_number
                .as_ref()
                .map(|reference| reference.chars().take(255).collect()),
            description: Some(format!("M-Pesa payment to {}", notification.shortcode)),
            customer: Customer {
                phone,
                email: None,
                name: notification
                    .name
                    .as_ref()
                    .map(|name| name.chars().take(200).collect()),
            },
            credit_customer: None,
            amount_refunded: 0,
            fee,
            net: notification.amount.saturating_sub(fee),
            next_action: None,
            return_url: None,
            payment_method: None,
            failure: None,
            metadata,
            expires_at: now,
            created: now,
            updated: now,
            conversion: None,
        },
        fee_refunded: 0,
        provider_reference: Some(receipt.clone()),
        provider_receipt: Some(receipt.clone()),
        funds_reserved: false,
        started_ms: Some(now.saturating_mul(1000)),
        next_poll_ms: None,
        pending_operation: None,
    };
    conn.insert_payment(&record).await?;
    let created = event(
        &record.merchant_id,
        record.payment.livemode,
        "payment.created",
        &record.payment,
    )?;
    let succeeded = transition(conn, &mut record, PaymentTransition::Succeed).await?;
    conn.insert_events(&[created, succeeded]).await?;
    conn.update_payment(&record).await?;
    Ok((
        "processed",
        format!(
            "new payment {} for M-Pesa receipt {receipt}",
            record.payment.id
        ),
    ))
}
