//! Payments: create, confirm, cancel, read, list; and how a connector's
//! outcome changes a payment (one function for every path: the first answer,
//! a status poll, a crash recovery).
//!
//! A confirmed payment is written before the connector is called (with a
//! recovery poll scheduled), then the outcome is applied in a second
//! transaction. If the process dies in between, the worker asks the provider
//! and finishes the payment: nothing the provider accepted is ever lost.

use crate::auth::MerchantContext;
use crate::group_commit::{IdempotencyWrite, NewPaymentWrite};
use crate::idempotency::{IdempotencyGuard, complete};
use crate::ledger_entries;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_ms, now_seconds};
use malipo_connectors::{
    CaptureRequest, Connector, ConnectorError, PaidDetails, PaymentOutcome, PaymentRequest,
    StatusRequest,
};
use malipo_core::Asset;
use malipo_core::MinorUnits;
use malipo_core::fee::FeeSchedule;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::metadata::{self, Metadata};
use malipo_core::objects::{BalanceTransaction, Customer, Failure, List, Payment};
use malipo_core::payment::{CaptureMethod, PaymentMethod, PaymentStatus, PaymentTransition};
use malipo_store::{
    Conn, EventRecord, Filter, Page, PaymentRecord, PendingOperation, StoredResponse,
};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub const REFERENCE_LENGTH_MAX: usize = 255;
pub const DESCRIPTION_LENGTH_MAX: usize = 1_000;
pub const CUSTOMER_NAME_LENGTH_MAX: usize = 200;
pub const EMAIL_LENGTH_MAX: usize = 254;
/// Phone numbers: E.164 allows at most 15 digits.
pub const PHONE_DIGITS_MIN: usize = 7;
pub const PHONE_DIGITS_MAX: usize = 15;
pub const RETURN_URL_LENGTH_MAX: usize = 2_048;
pub const PAYMENT_METHOD_LENGTH_MAX: usize = 255;
/// How long the worker holds a claimed status poll before another may retry.
pub const POLL_LEASE_MS: i64 = 30_000;
/// A capture or cancel asked this long ago has had its answer (connectors
/// give up on a provider after 30 s): if the provider still holds the
/// authorisation, the step never reached it, and the recovery poll (due
/// this long after the step) forgets it so it can be asked again.
pub const AUTHORIZATION_STEP_ANSWER_MS_MAX: i64 = 60_000;

/// `POST /v1/payments`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 150000, "currency": "kes", "method": "sandbox",
    "customer": {"phone": "254700000000"}, "reference": "order-1001", "metadata": {"order": "1001"}}))]
pub struct CreatePayment {
    /// In the currency's minor unit, > 0 and at most the currency's maximum.
    pub amount: Option<u64>,
    /// ISO 4217 (any case) or a crypto asset code.
    pub currency: Option<String>,
    /// `sandbox` (more methods come with their connectors).
    pub method: Option<String>,
    #[serde(default)]
    pub customer: Customer,
    /// The merchant's order id.
    pub reference: Option<String>,
    pub description: Option<String>,
    /// At most 50 keys of 40 characters, values of 500.
    #[serde(default)]
    pub metadata: Metadata,
    /// Send to the provider at once (default `true`).
    pub confirm: Option<bool>,
    /// The voucher that pays, for `method: "voucher"` (see [`crate::vouchers`]).
    pub voucher: Option<crate::vouchers::VoucherDetails>,
    /// Where a provider's hosted page (cards) sends the customer back to:
    /// an `https` (or `http`) URL of at most 2048 characters.
    pub return_url: Option<String>,
    /// For card providers that take a token (Stripe): the `pm_…` the
    /// merchant got from the provider's own library. Never a card number.
    /// For `crypto` (required): the coin the customer pays in, e.g. `btc`,
    /// `eth`, `usdttrc20`.
    pub payment_method: Option<String>,
    /// `automatic` (default): the money moves when the provider takes it.
    /// `manual`: the provider only authorises it (status
    /// `requires_capture`); capture it with `POST /v1/payments/{id}/capture`
    /// or release it with `/cancel`. Only for connectors that can (Stripe
    /// cards); others answer a 400 naming `capture_method`.
    pub capture_method: Option<String>,
    /// A customer (`cus_…`) of the merchant, with `credit_customer: true`.
    pub customer_id: Option<String>,
    /// Credit the net amount to `customer_id`'s balance in the payment's
    /// currency when the payment succeeds (a deposit for trading).
    pub credit_customer: Option<bool>,
    /// A conversion quote (`cq_…`, from `POST /v1/conversions/quote`): the
    /// customer pays the quote's `from_amount` in its `from_currency`
    /// (`amount` and `currency` may be omitted; if given they must match)
    /// and the merchant is credited in its `to_currency` at its rate. The
    /// quote must be unused and unexpired; a payment uses it once.
    pub conversion_quote: Option<String>,
}

/// `POST /v1/payments/{id}/capture`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapturePayment {
    /// At most `amount_capturable` (the default: all of it). A smaller
    /// capture releases the rest of the authorisation, as at Stripe.
    pub amount_to_capture: Option<u64>,
}

/// A [`CreatePayment`] that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    pub(crate) amount: u64,
    pub(crate) asset: Asset,
    pub(crate) method: PaymentMethod,
    pub(crate) customer: Customer,
    pub(crate) reference: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) metadata: Metadata,
    pub(crate) confirm: bool,
    /// The voucher's code, exactly when the method is `voucher`.
    pub(crate) voucher: Option<crate::vouchers::PaymentVoucher>,
    pub(crate) return_url: Option<String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) capture_method: CaptureMethod,
    /// The customer credited on success.
    pub(crate) credit_customer: Option<String>,
    /// The desk buy this payment pays for (see [`crate::desk`]): opened in
    /// the transaction that writes the payment, which then carries no
    /// processing fee (the desk's fee by payment method prices it).
    pub(crate) desk_trade: Option<crate::desk::TradeAttachment>,
}

fn check_length(param: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.chars().count() > max => Err(ApiError::invalid(
            param,
            format!("{param} may be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// A `return_url`: an absolute `https` or `http` URL with a host, at most
/// [`RETURN_URL_LENGTH_MAX`] characters.
fn parse_return_url(url: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(url) = url else {
        return Ok(None);
    };
    if url.chars().count() > RETURN_URL_LENGTH_MAX {
        return Err(ApiError::invalid(
            "return_url",
            format!("return_url may be at most {RETURN_URL_LENGTH_MAX} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(&url).map_err(|error| {
        ApiError::invalid("return_url", format!("return_url is not a URL: {error}"))
    })?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(ApiError::invalid(
            "return_url",
            "return_url must be an https (or http) URL with a host",
        ));
    }
    Ok(Some(url))
}

/// A `payment_method` token: at most [`PAYMENT_METHOD_LENGTH_MAX`]
/// letters, digits and `_`, and never a card number.
fn parse_payment_method(token: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let digits = token.chars().filter(char::is_ascii_digit).count();
    if digits >= 12
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return Err(ApiError::invalid(
            "payment_method",
            "Malipo never takes card numbers: give the provider's token (e.g. Stripe's pm_…)",
        ));
    }
    if token.is_empty()
        || token.len() > PAYMENT_METHOD_LENGTH_MAX
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::invalid(
            "payment_method",
            format!(
                "payment_method is a provider token of 1 to {PAYMENT_METHOD_LENGTH_MAX} letters, digits and underscores"
            ),
        ));
    }
    Ok(Some(token))
}

/// Whether `coin` is a coin a crypto payment may be paid in (NOWPayments'
/// code, e.g. `btc`, `usdttrc20`).
fn crypto_pay_currency(coin: &str) -> bool {
    malipo_connectors::nowpayments::is_pay_currency(coin)
}

/// Refuses text with characters that hide or reorder what a person reads
/// (see `malipo_core::metadata::text_problem`).
fn check_text(
    param: &str,
    value: &Option<String>,
    problem: fn(&str) -> Option<&'static str>,
) -> Result<(), ApiError> {
    match value.as_deref().and_then(problem) {
        Some(problem) => Err(ApiError::invalid(param, format!("{param} {problem}"))),
        None => Ok(()),
    }
}

fn parse_customer(mut customer: Customer) -> Result<Customer, ApiError> {
    if let Some(phone) = &customer.phone {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        if !(PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApiError::invalid(
                "customer[phone]",
                format!(
                    "customer.phone must be {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits, optionally after `+`"
                ),
            ));
        }
        customer.phone = Some(digits.to_owned());
    }
    if let Some(email) = &customer.email
        && (email.len() > EMAIL_LENGTH_MAX || !email.contains('@'))
    {
        return Err(ApiError::invalid(
            "customer[email]",
            "customer.email must be an email address",
        ));
    }
    check_length("customer[name]", &customer.name, CUSTOMER_NAME_LENGTH_MAX)?;
    check_text("customer[name]", &customer.name, metadata::text_problem)?;
    Ok(customer)
}

impl NewPayment {
    fn parse(request: CreatePayment) -> Result<NewPayment, ApiError> {
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
        let method = PaymentMethod::parse(&method_text).ok_or_else(|| {
            let known: Vec<_> = PaymentMethod::ALL
                .iter()
                .map(|method| method.as_str())
                .collect();
            ApiError::invalid(
                "method",
                format!(
                    "unknown method `{method_text}`; known: {}",
                    known.join(", ")
                ),
            )
        })?;
        metadata::validate(&request.metadata)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;
        check_length("reference", &request.reference, REFERENCE_LENGTH_MAX)?;
        check_length("description", &request.description, DESCRIPTION_LENGTH_MAX)?;
        check_text(
            "reference",
            &request.reference,
            metadata::identifier_problem,
        )?;
        check_text("description", &request.description, metadata::text_problem)?;
        match method {
            PaymentMethod::Card => {}
            PaymentMethod::Crypto
                if request
                    .payment_method
                    .as_deref()
                    .is_some_and(crypto_pay_currency) => {}
            PaymentMethod::Crypto => {
                return Err(ApiError::invalid(
                    "payment_method",
                    format!(
                        "a crypto payment names the coin the customer pays in as payment_method: one of {}",
                        malipo_connectors::nowpayments::PAY_CURRENCIES.join(", ")
                    ),
                ));
            }
            _ if request.payment_method.is_some() => {
                return Err(ApiError::invalid(
                    "payment_method",
                    "payment_method is for `card` and `crypto` payments only",
                ));
            }
            _ => {}
        }
        let voucher = crate::vouchers::voucher_for_method(method, request.voucher)?;
        let capture_method = match request.capture_method.as_deref() {
            None => CaptureMethod::Automatic,
            Some(text) => CaptureMethod::parse(text).ok_or_else(|| {
                ApiError::invalid(
                    "capture_method",
                    "capture_method must be `automatic` or `manual`",
                )
            })?,
        };
        let credit_customer = match (request.credit_customer, request.customer_id) {
            (Some(true), Some(id)) => Some(id),
            (Some(true), None) => return Err(ApiError::missing("customer_id")),
            (_, Some(_)) => {
                return Err(ApiError::invalid(
                    "credit_customer",
                    "customer_id is only used with credit_customer: true",
                ));
            }
            (_, None) => None,
        };
        if credit_customer.is_some() && method == PaymentMethod::Voucher {
            return Err(ApiError::invalid(
                "credit_customer",
                "voucher payments cannot credit a customer",
            ));
        }
        Ok(NewPayment {
            desk_trade: None,
            credit_customer,
            capture_method,
            amount,
            asset,
            method,
            customer: parse_customer(request.customer)?,
            reference: request.reference,
            description: request.description,
            metadata: request.metadata,
            confirm: request.confirm.unwrap_or(true),
            voucher,
            return_url: parse_return_url(request.return_url)?,
            payment_method: parse_payment_method(request.payment_method)?.map(
                |token| match method {
                    PaymentMethod::Crypto => token.to_ascii_lowercase(),
                    _ => token,
                },
            ),
        })
    }
}

/// `GET /v1/payments` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct PaymentFilters {
    pub status: Option<String>,
    pub method: Option<String>,
    pub reference: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// Filters every merchant-owned list starts with.
pub(crate) fn owner_filters(context: &MerchantContext) -> Vec<Filter> {
    vec![
        Filter::TextEquals("merchant_id", context.merchant_id.clone()),
        Filter::BoolEquals("livemode", context.livemode()),
    ]
}

pub(crate) fn created_filters(filters: &mut Vec<Filter>, gte: Option<i64>, lte: Option<i64>) {
    if let Some(gte) = gte {
        filters.push(Filter::IntAtLeast("created", gte));
    }
    if let Some(lte) = lte {
        filters.push(Filter::IntAtMost("created", lte));
    }
}

fn not_found_unless_shaped(id: &str) -> Result<(), ApiError> {
    if looks_like(IdKind::Payment, id) {
        Ok(())
    } else {
        Err(ApiError::not_found("payment", id))
    }
}

fn unexpected_state(message: String) -> ApiError {
    ApiError::new(ErrorKind::Conflict, "payment_unexpected_state", message)
}

/// A 400 naming `capture_method` for a connector (or method) that can't
/// hold an authorisation.
fn manual_capture_unsupported(connector: &str) -> ApiError {
    ApiError::invalid(
        "capture_method",
        format!(
            "`{connector}` payments can't be authorised now and captured later: leave capture_method out (automatic); manual capture works with card payments through Stripe"
        ),
    )
}

/// Refuses a capture or cancel of anything but an unexpired authorisation.
fn require_authorised(payment: &Payment, verb: &str) -> Result<(), ApiError> {
    if payment.status != PaymentStatus::RequiresCapture {
        return Err(unexpected_state(format!(
            "only a payment with status `requires_capture` (capture_method manual, authorised) can be {verb}; this one is `{}`",
            payment.status
        )));
    }
    if now_seconds() >= payment.expires_at {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "authorization_expired",
            "the authorisation expired before it was captured; the provider releases it",
        ));
    }
    Ok(())
}

/// The caller's payment, locked for the rest of the transaction; 404 when
/// this merchant has no such payment in this mode.
async fn lock_payment(
    conn: &mut Conn<'_>,
    context: &MerchantContext,
    id: &str,
) -> GatewayResult<PaymentRecord> {
    not_found_unless_shaped(id)?;
    Ok(conn
        .payment_for_update(&context.merchant_id, context.livemode(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", id))?)
}

/// Writes one event of the merchant's, with the object as it is now.
pub(crate) async fn emit(
    conn: &mut Conn<'_>,
    merchant_id: &str,
    livemode: bool,
    event_type: &str,
    object: &impl serde::Serialize,
) -> GatewayResult<()> {
    conn.insert_event(&event(merchant_id, livemode, event_type, object)?)
        .await?;
    Ok(())
}

/// An event of the merchant's with the object as it is now, to insert.
pub(crate) fn event(
    merchant_id: &str,
    livemode: bool,
    event_type: &str,
    object: &impl serde::Serialize,
) -> GatewayResult<EventRecord> {
    Ok(EventRecord {
        id: new_id(IdKind::Event),
        merchant_id: merchant_id.to_owned(),
        livemode,
        event_type: event_type.to_owned(),
        data: serde_json::to_string(object).map_err(GatewayError::internal)?,
        created: now_seconds(),
    })
}

/// Posts ledger transfers, creating the accounts first.
pub(crate) async fn post(
    conn: &mut Conn<'_>,
    accounts: &[malipo_ledger::Account],
    transfers: &[malipo_ledger::TransferRequest],
) -> GatewayResult<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let outcome = conn
        .post_transfers_creating_accounts(accounts, transfers, now_seconds(), now_ms())
        .await?;
    metrics::counter!("malipo_ledger_transfers_total").increment(outcome.created.len() as u64);
    Ok(())
}

fn event_type_for(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::RequiresConfirmation => "payment.created",
        PaymentStatus::Processing => "payment.processing",
        PaymentStatus::RequiresAction => "payment.requires_action",
        PaymentStatus::RequiresCapture => "payment.requires_capture",
        PaymentStatus::Succeeded => "payment.succeeded",
        PaymentStatus::Failed => "payment.failed",
        PaymentStatus::Canceled => "payment.canceled",
        PaymentStatus::Expired => "payment.expired",
    }
}

/// The money side of a change to a payment: ledger transfers (with the
/// accounts they need) and the balance transaction, computed before
/// anything is written so one transaction can carry many payments' changes
/// (see [`crate::group_commit`]).
#[derive(Debug, Default)]
pub(crate) struct PaymentMoney {
    pub ledger_accounts: Vec<malipo_ledger::Account>,
    pub transfers: Vec<malipo_ledger::TransferRequest>,
    pub balance_transaction: Option<BalanceTransaction>,
    /// A payment crediting a customer that reached a final status: the
    /// desk trade it pays for, if any, settles or fails with it
    /// ([`crate::desk::payment_finished`]) wherever this money is written.
    pub finished: Option<(String, PaymentStatus)>,
}

impl PaymentMoney {
    fn moves(record: &PaymentRecord, transfers: Vec<malipo_ledger::TransferRequest>) -> Self {
        PaymentMoney {
            ledger_accounts: ledger_entries::payment_accounts(record).to_vec(),
            transfers,
            balance_transaction: None,
            finished: None,
        }
    }

    /// Writes the transfers and the balance transaction in the caller's
    /// transaction.
    pub(crate) async fn write(&self, conn: &mut Conn<'_>, merchant_id: &str) -> GatewayResult<()> {
        post(conn, &self.ledger_accounts, &self.transfers).await?;
        if let Some(balance_transaction) = &self.balance_transaction {
            conn.insert_balance_transaction(merchant_id, balance_transaction)
                .await?;
        }
        if let Some((payment_id, status)) = &self.finished {
            crate::desk::payment_finished(conn, payment_id, *status).await?;
        }
        Ok(())
    }
}

/// Moves a payment through `transition`, with its ledger entries and balance
/// transaction, inside the caller's transaction; answers the event to
/// insert (callers batch it with others). The caller holds
/// the payment's row lock and writes the record afterwards.
pub(crate) async fn transition(
    conn: &mut Conn<'_>,
    record: &mut PaymentRecord,
    transition: PaymentTransition,
) -> GatewayResult<EventRecord> {
    let (money, event) = plan_transition(record, transition)?;
    money.write(conn, &record.merchant_id).await?;
    Ok(event)
}

/// [`transition`] without writing: changes the record and answers the
/// money to move and the event to insert.
fn plan_transition(
    record: &mut PaymentRecord,
    transition: PaymentTransition,
) -> GatewayResult<(PaymentMoney, EventRecord)> {
    let next = record
        .payment
        .status
        .apply(transition)
        .map_err(|error| unexpected_state(error.to_string()))?;
    let mut money = PaymentMoney::default();
    match next {
        // An authorisation holds the money like a payment in flight: the
        // merchant's pending balance, voided if it is never captured.
        PaymentStatus::Processing | PaymentStatus::RequiresCapture if !record.funds_reserved => {
            money = PaymentMoney::moves(record, ledger_entries::payment_reserved(record));
            record.funds_reserved = true;
        }
        PaymentStatus::Succeeded => {
            let transfers = match (transition, record.pending_operation) {
                (
                    PaymentTransition::Capture,
                    Some(PendingOperation::Capture { amount, fee, .. }),
                ) if record.funds_reserved => {
                    // Posts the captured part of the reservation; the
                    // ledger releases the rest.
                    let transfers = ledger_entries::payment_captured(record, amount - fee, fee);
                    record.payment.amount_received = amount;
                    record.payment.fee = fee;
                    record.payment.net = amount - fee;
                    transfers
                }
                (PaymentTransition::Capture, _) => {
                    return Err(GatewayError::internal(ApiError::new(
                        ErrorKind::Conflict,
                        "capture_not_requested",
                        format!(
                            "payment {} was captured with no capture requested",
                            record.payment.id
                        ),
                    )));
                }
                _ if record.funds_reserved => {
                    record.payment.amount_received = record.payment.amount;
                    ledger_entries::payment_reservation_released(record, true)
                }
                _ => {
                    record.payment.amount_received = record.payment.amount;
                    ledger_entries::payment_posted(record)
                }
            };
            money = PaymentMoney::moves(record, transfers);
            if let Some(customer_id) = &record.payment.credit_customer
                && record.payment.net > 0
            {
                let (accounts, transfer) =
                    ledger_entries::payment_credits_customer(record, customer_id);
                money.ledger_accounts.extend(accounts);
                money.transfers.push(transfer);
            }
            record.funds_reserved = false;
            let payment = &record.payment;
            let signed = |value: u64| i64::try_from(value).map_err(GatewayError::internal);
            // A conversion payment's balance moves in the credited currency.
            let (amount, fee, net, currency) = match &payment.conversion {
                Some(conversion) => (
                    conversion.to_amount,
                    conversion.fee,
                    conversion.net,
                    conversion.to_currency.clone(),
                ),
                None => (
                    payment.amount_received,
                    payment.fee,
                    payment.net,
                    payment.currency.clone(),
                ),
            };
            money.balance_transaction = Some(BalanceTransaction {
                id: new_id(IdKind::BalanceTransaction),
                object: "balance_transaction",
                livemode: payment.livemode,
                kind: "payment".into(),
                amount: signed(amount)?,
                fee: signed(fee)?,
                net: signed(net)?,
                currency,
                source: payment.id.clone(),
                created: now_seconds(),
            });
        }
        PaymentStatus::Failed | PaymentStatus::Canceled | PaymentStatus::Expired
            if record.funds_reserved =>
        {
            money = PaymentMoney::moves(
                record,
                ledger_entries::payment_reservation_released(record, false),
            );
            record.funds_reserved = false;
        }
        _ => {}
    }
    record.payment.status = next;
    record.payment.updated = now_seconds();
    if next.is_terminal() && record.payment.credit_customer.is_some() {
        money.finished = Some((record.payment.id.clone(), next));
    }
    if next.is_terminal() {
        record.next_poll_ms = None;
        record.payment.next_action = None;
        record.payment.amount_capturable = 0;
        record.pending_operation = None;
    }
    if next == PaymentStatus::RequiresCapture {
        // Nothing to ask the provider until the merchant captures or cancels.
        record.next_poll_ms = None;
        record.payment.next_action = None;
    }
    metrics::counter!("malipo_payments_total", "status" => next.as_str()).increment(1);
    let event = event(
        &record.merchant_id,
        record.payment.livemode,
        event_type_for(next),
        &record.payment,
    )?;
    Ok((money, event))
}

/// Whether a payment was never sent to its provider
/// (`requires_confirmation`, never confirmed), so canceling it here can't
/// leave money at the provider. A `requires_action` payment is not: the
/// provider holds it (a card's hosted page or 3-D Secure, a crypto deposit
/// address, a partial crypto payment) and the customer may still pay it.
pub(crate) fn cancelable_unsent(record: &PaymentRecord) -> bool {
    record.payment.status == PaymentStatus::RequiresConfirmation && record.started_ms.is_none()
}

/// Cancels a locked payment without asking its provider (a status the
/// transition table refuses is refused) and writes it, with its event.
/// The desk calls it only for [`cancelable_unsent`] payments.
pub(crate) async fn cancel_unsent(
    conn: &mut Conn<'_>,
    record: &mut PaymentRecord,
) -> GatewayResult<()> {
    let canceled = transition(conn, record, PaymentTransition::Cancel).await?;
    conn.insert_event(&canceled).await?;
    conn.update_payment(record).await?;
    Ok(())
}

/// Applies what the provider said about a payment and writes the payment
/// back. A payment that is already final is left as it is (a late or
/// duplicate answer).
pub(crate) async fn apply_outcome(
    conn: &mut Conn<'_>,
    record: &mut PaymentRecord,
    outcome: PaymentOutcome,
) -> GatewayResult<()> {
    let (money, event) = plan_outcome(record, outcome)?;
    money.write(conn, &record.merchant_id).await?;
    if let Some(event) = event {
        conn.insert_event(&event).await?;
    }
    conn.update_payment(record).await?;
    Ok(())
}

/// Records what a payment callback reported about the money and checks
/// it against the payment, before the (confirmed) outcome is applied: the
/// provider's receipt is kept (unless another payment holds it), and a
/// success for another amount than the payment's fails it with
/// `amount_mismatch` instead: nothing unpaid is ever credited, and the
/// merchant hears of it by `payment.failed` (the receipt is kept, to
/// reconcile or reverse). Details about another payment change nothing.
pub(crate) async fn check_paid_details(
    conn: &mut Conn<'_>,
    record: &mut PaymentRecord,
    outcome: PaymentOutcome,
    details: Option<&PaidDetails>,
) -> GatewayResult<PaymentOutcome> {
    let Some(details) = details.filter(|details| {
        record.provider_reference.as_deref() == Some(&details.provider_reference)
    }) else {
        return Ok(outcome);
    };
    if record.provider_receipt.is_none()
        && let Some(receipt) = &details.receipt
    {
        match conn
            .payment_id_by_provider_receipt(&record.payment.connector, receipt)
            .await?
        {
            None => record.provider_receipt = Some(receipt.clone()),
            Some(other) => tracing::warn!(payment = %record.payment.id, %other, %receipt,
                "a callback reports a receipt another payment holds; not recorded"),
        }
    }
    Ok(match (outcome, details.amount) {
        (PaymentOutcome::Succeeded { provider_reference }, Some(paid))
            if paid != record.payment.amount && !record.payment.status.is_terminal() =>
        {
            tracing::warn!(payment = %record.payment.id, paid, amount = record.payment.amount,
                "the provider reports another amount paid; the payment fails with amount_mismatch");
            PaymentOutcome::Failed {
                provider_reference,
                failure: Failure {
                    code: "amount_mismatch".into(),
                    message: format!(
                        "the provider reports {paid} {currency} minor units paid for a payment of {amount} (receipt {receipt}); nothing was credited: reconcile it, or reverse it with the provider",
                        currency = record.payment.currency,
                        amount = record.payment.amount,
                        receipt = details.receipt.as_deref().unwrap_or("none"),
                    ),
                },
            }
        }
        (outcome, _) => outcome,
    })
}

/// Whether the provider reports a payment Malipo had already closed
/// without success (e.g. canceled while the hosted page stayed open) as
/// paid. Never silent: the customer may have been charged, so an operator is
/// alerted (an error log and `malipo_payments_paid_after_close_total`) to
/// refund it at the provider.
pub(crate) fn alert_if_paid_after_close(record: &PaymentRecord, outcome: &PaymentOutcome) -> bool {
    let paid_after_close = record.payment.status.is_terminal()
        && record.payment.status != PaymentStatus::Succeeded
        && matches!(outcome, PaymentOutcome::Succeeded { .. });
    if paid_after_close {
        tracing::error!(
            payment = %record.payment.id,
            status = %record.payment.status,
            connector = %record.payment.connector,
            "the provider reports a closed payment as paid: the customer may have been charged; refund it at the provider"
        );
        metrics::counter!("malipo_payments_paid_after_close_total", "connector" => record.payment.connector.clone())
            .increment(1);
    }
    paid_after_close
}

/// [`apply_outcome`] without writing anything: changes the record and
/// answers the money to move and the event to insert, if any.
pub(crate) fn plan_outcome(
    record: &mut PaymentRecord,
    outcome: PaymentOutcome,
) -> GatewayResult<(PaymentMoney, Option<EventRecord>)> {
    if record.payment.status.is_terminal() {
        alert_if_paid_after_close(record, &outcome);
        return Ok((PaymentMoney::default(), None));
    }
    if record.payment.status == PaymentStatus::RequiresCapture {
        return plan_authorized_outcome(record, outcome);
    }
    let (provider_reference, step) = match outcome {
        PaymentOutcome::Succeeded { provider_reference } => {
            (provider_reference, Some(PaymentTransition::Succeed))
        }
        PaymentOutcome::Failed {
            provider_reference,
            failure,
        } => {
            record.payment.failure = Some(failure);
            (provider_reference, Some(PaymentTransition::Fail))
        }
        PaymentOutcome::Processing {
            provider_reference,
            mut next_action,
            poll_after_ms,
        } => {
            if let Some(next) = &mut next_action {
                next.keep_known_from(record.payment.next_action.as_ref());
            }
            record.payment.next_action = next_action;
            record.next_poll_ms =
                Some(now_ms().saturating_add(i64::try_from(poll_after_ms).unwrap_or(i64::MAX)));
            let step = (record.payment.status != PaymentStatus::Processing)
                .then_some(PaymentTransition::StartProcessing);
            (provider_reference, step)
        }
        PaymentOutcome::RequiresAction {
            provider_reference,
            mut next_action,
            poll_after_ms,
        } => {
            next_action.keep_known_from(record.payment.next_action.as_ref());
            record.payment.next_action = Some(next_action);
            record.next_poll_ms =
                Some(now_ms().saturating_add(i64::try_from(poll_after_ms).unwrap_or(i64::MAX)));
            let step = (record.payment.status != PaymentStatus::RequiresAction)
                .then_some(PaymentTransition::RequireAction);
            (provider_reference, step)
        }
        PaymentOutcome::Authorized {
            provider_reference,
            amount_capturable,
            expires_after_seconds,
        } => {
            // Never more than the payment asked for.
            record.payment.amount_capturable = amount_capturable.min(record.payment.amount);
            record.payment.expires_at = now_seconds()
                .saturating_add(i64::try_from(expires_after_seconds).unwrap_or(i64::MAX));
            (provider_reference, Some(PaymentTransition::Authorize))
        }
    };
    if provider_reference.is_some() {
        record.provider_reference = provider_reference;
    }
    if let Some(step) = step {
        let (money, event) = plan_transition(record, step)?;
        return Ok((money, Some(event)));
    }
    record.payment.updated = now_seconds();
    Ok((PaymentMoney::default(), None))
}

/// What the provider says about an authorised (`requires_capture`)
/// payment. Only the merchant's capture or cancel moves it on: a success
/// settles the capture Malipo asked for (when the provider's answer, its
/// webhook or the recovery poll says so, whichever comes first), a
/// cancellation the cancel asked for; the provider ending it otherwise
/// (e.g. canceled in its dashboard) fails the payment, releasing the
/// reservation. An authorisation still held long after a step was asked
/// (see [`AUTHORIZATION_STEP_ANSWER_MS_MAX`]) means the step never reached
/// the provider: it is forgotten, to be asked again; sooner, it may still
/// be on its way (a late webhook), so it is kept and asked about later.
fn plan_authorized_outcome(
    record: &mut PaymentRecord,
    outcome: PaymentOutcome,
) -> GatewayResult<(PaymentMoney, Option<EventRecord>)> {
    // Only a step in flight needs the provider asked again.
    record.next_poll_ms = record
        .pending_operation
        .map(|_| now_ms() + AUTHORIZATION_STEP_ANSWER_MS_MAX);
    let step = match (outcome, record.pending_operation) {
        (PaymentOutcome::Succeeded { .. }, Some(PendingOperation::Capture { .. })) => {
            Some(PaymentTransition::Capture)
        }
        (PaymentOutcome::Succeeded { .. }, _) => {
            tracing::error!(payment = %record.payment.id, connector = %record.payment.connector,
                "the provider reports an authorisation Malipo did not capture as captured: capture through Malipo, or refund it at the provider");
            metrics::counter!("malipo_payments_captured_outside_total", "connector" => record.payment.connector.clone())
                .increment(1);
            None
        }
        (PaymentOutcome::Failed { .. }, Some(PendingOperation::Cancel { .. })) => {
            Some(PaymentTransition::Cancel)
        }
        (PaymentOutcome::Failed { failure, .. }, _) => {
            record.payment.failure = Some(failure);
            Some(PaymentTransition::Fail)
        }
        (PaymentOutcome::Authorized { .. }, Some(step))
            if now_ms() - step.at_ms() >= AUTHORIZATION_STEP_ANSWER_MS_MAX =>
        {
            tracing::warn!(payment = %record.payment.id, "a capture or cancel never reached the provider; it may be asked again");
            record.pending_operation = None;
            record.next_poll_ms = None;
            None
        }
        _ => None,
    };
    match step {
        Some(step) => {
            let (money, event) = plan_transition(record, step)?;
            Ok((money, Some(event)))
        }
        None => {
            record.payment.updated = now_seconds();
            Ok((PaymentMoney::default(), None))
        }
    }
}

impl Gateway {
    fn connector_for(&self, method: PaymentMethod) -> Result<Arc<dyn Connector>, ApiError> {
        self.connectors()
            .for_method(method)
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(
                    "method",
                    format!(
                        "the `{method}` method has no connector configured on this gateway yet"
                    ),
                )
            })
    }

    /// Malipo's fee on a new payment: the merchant's schedule for its
    /// method, or nothing for a desk buy's payment (the desk's own fee by
    /// payment method is the price of paying that way; both would charge
    /// twice).
    pub(crate) async fn payment_fee(
        &self,
        merchant_id: &str,
        new: &NewPayment,
    ) -> GatewayResult<u64> {
        if new.desk_trade.is_some() {
            return Ok(0);
        }
        let fee = self
            .fee_schedule(merchant_id, new.method)
            .await?
            .fee_for(MinorUnits::from(new.amount));
        u64::try_from(fee.get()).map_err(GatewayError::internal)
    }

    pub(crate) async fn fee_schedule(
        &self,
        merchant_id: &str,
        method: PaymentMethod,
    ) -> GatewayResult<FeeSchedule> {
        let mut reader = self.store().reader().await?;
        let schedules = reader
            .conn()
            .merchant(merchant_id)
            .await?
            .map(|merchant| merchant.fee_schedules)
            .unwrap_or_default();
        let config = self.config();
        Ok(schedules
            .get(method.as_str())
            .copied()
            .or_else(|| config.default_fees_by_method.get(method.as_str()).copied())
            .unwrap_or(config.default_fee))
    }

    pub async fn create_payment(
        &self,
        context: &MerchantContext,
        request: CreatePayment,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        context.require(malipo_core::objects::Scope::PaymentsWrite)?;
        if let Some(resumed) = self.resume(context, guard.as_ref()).await? {
            return Ok(resumed);
        }
        self.create_payment_for(context, request, guard, None).await
    }

    /// `POST /v1/payments`, and the payment of a desk buy (`desk_trade`,
    /// whose request carries no Idempotency-Key of its own: the trade's
    /// records the trade).
    pub(crate) async fn create_payment_for(
        &self,
        context: &MerchantContext,
        request: CreatePayment,
        guard: Option<IdempotencyGuard>,
        desk_trade: Option<crate::desk::TradeAttachment>,
    ) -> GatewayResult<Payment> {
        let mut request = request;
        let conversion = self.conversion_for(context, &mut request).await?;
        let mut new = NewPayment::parse(request)?;
        new.desk_trade = desk_trade;
        if conversion.is_some() {
            if matches!(
                new.method,
                PaymentMethod::Voucher | PaymentMethod::BankTransfer
            ) {
                return Err(ApiError::invalid(
                    "conversion_quote",
                    format!(
                        "a `{}` payment can't use a conversion quote (yet): it pays in its own currency",
                        new.method.as_str()
                    ),
                )
                .into());
            }
            if new.capture_method == CaptureMethod::Manual {
                return Err(ApiError::invalid(
                    "capture_method",
                    "a conversion payment is captured automatically",
                )
                .into());
            }
            if new.credit_customer.is_some() {
                return Err(ApiError::invalid(
                    "conversion_quote",
                    "a customer deposit (credit_customer) is credited in the payment's own currency: no conversion quote",
                )
                .into());
            }
        }
        if new.capture_method == CaptureMethod::Manual
            && matches!(
                new.method,
                PaymentMethod::Voucher | PaymentMethod::BankTransfer
            )
        {
            return Err(manual_capture_unsupported(new.method.as_str()).into());
        }
        if let Some(customer_id) = &new.credit_customer {
            let mut reader = self.store().reader().await?;
            crate::customers::customer_of(&mut reader.conn(), context, customer_id, "customer_id")
                .await?;
        }
        if new.method == PaymentMethod::BankTransfer {
            // Paid by the customer's bank, confirmed by an operator.
            return self.create_bank_transfer_payment(context, new, guard).await;
        }
        if new.method == PaymentMethod::Voucher {
            // Paid from Malipo's own vouchers: no connector to ask.
            return self.create_voucher_payment(context, new, guard).await;
        }
        let connector = match new.method {
            PaymentMethod::Card => {
                self.card_connector(
                    &context.merchant_id,
                    context.livemode(),
                    &new.customer,
                    new.asset.code(),
                    new.amount,
                    new.payment_method.as_deref(),
                )
                .await?
            }
            method => self.connector_for(method)?,
        };
        connector
            .check_payment(&mut new.customer, new.asset.code(), new.amount)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;
        if new.capture_method == CaptureMethod::Manual && !connector.supports_manual_capture() {
            return Err(manual_capture_unsupported(connector.name()).into());
        }
        if connector.name() != "sandbox" {
            // Refuse before writing anything when the merchant can't use it.
            self.merchant_connector_account(
                &context.merchant_id,
                context.livemode(),
                connector.name(),
            )
            .await?;
        }
        let fee = self.payment_fee(&context.merchant_id, &new).await?;
        let now_ms = now_ms();
        let now = now_ms / 1000;
        let expiry_seconds = i64::try_from(connector.payment_expiry_seconds()).unwrap_or(i64::MAX);
        let mut expires_at = now.saturating_add(expiry_seconds);
        // A desk buy's payment ends by its trade's deadline: paying later
        // would be a free option on the locked price.
        if let Some(deadline) = new
            .desk_trade
            .as_ref()
            .and_then(|attachment| attachment.trade.expires_at)
        {
            expires_at = expires_at.min(deadline);
        }
        let mut record = PaymentRecord {
            merchant_id: context.merchant_id.clone(),
            payment: Payment {
                id: new_id(IdKind::Payment),
                object: "payment",
                livemode: context.livemode(),
                amount: new.amount,
                currency: new.asset.code().to_owned(),
                method: new.method,
                connector: connector.name().to_owned(),
                status: PaymentStatus::RequiresConfirmation,
                capture_method: new.capture_method,
                amount_capturable: 0,
                amount_received: 0,
                reference: new.reference,
                description: new.description,
                customer: new.customer,
                credit_customer: new.credit_customer,
                amount_refunded: 0,
                fee,
                net: new.amount - fee,
                next_action: None,
                return_url: new.return_url,
                payment_method: new.payment_method,
                failure: None,
                metadata: new.metadata,
                expires_at,
                created: now,
                updated: now,
                conversion: None,
            },
            fee_refunded: 0,
            provider_reference: None,
            provider_receipt: None,
            funds_reserved: false,
            started_ms: None,
            next_poll_ms: None,
            pending_operation: None,
        };
        let quote_claim = conversion
            .as_ref()
            .map(|conversion| conversion.quote.clone());
        if let Some(conversion) = conversion {
            // The fee is taken in the credited currency (conversion.fee);
            // nothing is deducted in the paid one.
            record.payment.conversion = Some(
                self.with_fee(&context.merchant_id, new.method, conversion)
                    .await?,
            );
            record.payment.fee = 0;
            record.payment.net = record.payment.amount;
        }
        if new.confirm {
            record.started_ms = Some(now_ms);
            record.next_poll_ms = Some(now_ms + self.config().recovery_poll_after_ms);
        }
        // A connector that answers in-process (the sandbox) moves no real
        // money, so nothing is lost by asking it first: the payment is then
        // written with its first answer in one transaction instead of two.
        let first_answer = if new.confirm && connector.answers_in_process() {
            Some(self.ask_connector(connector.as_ref(), &record).await?)
        } else {
            None
        };
        let mut events = vec![event(
            &record.merchant_id,
            record.payment.livemode,
            "payment.created",
            &record.payment,
        )?];
        let mut money = PaymentMoney::default();
        let goes_to_provider = new.confirm && first_answer.is_none();
        if let Some(outcome) = first_answer {
            let (moved, changed) = plan_outcome(&mut record, outcome)?;
            money = moved;
            events.extend(changed);
        }
        let idempotency = match &guard {
            Some(guard) if goes_to_provider => Some((
                guard.claim.clone(),
                IdempotencyWrite::RecoveryPoint(record.payment.id.clone()),
            )),
            Some(guard) => Some((
                guard.claim.clone(),
                IdempotencyWrite::Complete(StoredResponse {
                    ok: true,
                    body: serde_json::to_string(&record.payment).map_err(GatewayError::internal)?,
                }),
            )),
            None => None,
        };
        // One transaction for the payment, its events, ledger entries and
        // idempotency record, shared with other requests' new payments.
        self.payment_writes()
            .insert_payment(NewPaymentWrite {
                record: record.clone(),
                events,
                money,
                idempotency,
                quote_claim,
                desk_trade: new.desk_trade,
            })
            .await?;
        if !goes_to_provider {
            return Ok(record.payment);
        }
        self.start_with_connector(connector, record, guard.as_ref())
            .await
    }

    /// The object an earlier, crashed holder of the idempotency key created.
    async fn resume(
        &self,
        context: &MerchantContext,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<Option<Payment>> {
        let Some(id) = guard.and_then(|guard| guard.resume_object_id.as_deref()) else {
            return Ok(None);
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let Some(record) = conn
            .payment_for_update(&context.merchant_id, context.livemode(), id)
            .await?
        else {
            return Ok(None);
        };
        complete(&mut conn, guard, &record.payment).await?;
        tx.commit().await?;
        Ok(Some(record.payment))
    }

    /// The connector account a payment goes through: the merchant's
    /// sandbox account for sandbox payments (its callback URL and secret).
    pub(crate) async fn account_for(
        &self,
        record: &PaymentRecord,
    ) -> GatewayResult<malipo_connectors::ConnectorAccount> {
        if record.payment.connector == "sandbox" {
            return self
                .sandbox_account(&record.merchant_id, record.payment.livemode)
                .await;
        }
        self.merchant_connector_account(
            &record.merchant_id,
            record.payment.livemode,
            &record.payment.connector,
        )
        .await
    }

    /// The merchant's account with a provider, its credentials decrypted;
    /// a clear 400 naming `method` when the merchant has none. A method
    /// Relworx carries (MTN MoMo, Airtel Money in Uganda) falls back to the
    /// merchant's `relworx` account when there is no direct one; the
    /// connector then sends the payment through Relworx.
    pub(crate) async fn merchant_connector_account(
        &self,
        merchant_id: &str,
        livemode: bool,
        provider: &str,
    ) -> GatewayResult<malipo_connectors::ConnectorAccount> {
        use malipo_connectors::relworx::{CARRIED_PROVIDERS, RELWORX};
        let carried = CARRIED_PROVIDERS.contains(&provider);
        let record = {
            let mut reader = self.store().reader().await?;
            let mut conn = reader.conn();
            match conn
                .connector_account_for(merchant_id, livemode, provider)
                .await?
            {
                None if carried => {
                    conn.connector_account_for(merchant_id, livemode, RELWORX)
                        .await?
                }
                record => record,
            }
        };
        let Some(record) = record else {
            let or_relworx = if carried { " (or `relworx`)" } else { "" };
            return Err(ApiError::invalid(
                "method",
                format!("no `{provider}`{or_relworx} connector account is configured for this merchant in this mode (POST /v1/connector_accounts)"),
            )
            .into());
        };
        self.connector_account_of(record)
    }

    /// Hands a written payment to its connector and records the answer.
    /// Asks the connector to start a payment; what the provider said, with
    /// transport failures mapped to outcomes (unreachable: keep processing
    /// and let the status poll find out; rejected: failed).
    async fn ask_connector(
        &self,
        connector: &dyn Connector,
        record: &PaymentRecord,
    ) -> GatewayResult<PaymentOutcome> {
        let account = self.account_for(record).await?;
        let payment = &record.payment;
        let answer = connector
            .start_payment(&PaymentRequest {
                payment_id: &payment.id,
                amount: payment.amount,
                currency: &payment.currency,
                method: payment.method,
                customer: &payment.customer,
                reference: payment.reference.as_deref(),
                description: payment.description.as_deref(),
                return_url: payment.return_url.as_deref(),
                payment_method: payment.payment_method.as_deref(),
                capture_method: payment.capture_method,
                account: &account,
                livemode: payment.livemode,
            })
            .await;
        Ok(match answer {
            Ok(outcome) => outcome,
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(payment = %payment.id, %reason, "provider unavailable while starting a payment");
                PaymentOutcome::Processing {
                    provider_reference: None,
                    next_action: None,
                    poll_after_ms: u64::try_from(self.config().recovery_poll_after_ms)
                        .unwrap_or(5_000),
                }
            }
            Err(error) => PaymentOutcome::Failed {
                provider_reference: None,
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: error.to_string(),
                },
            },
        })
    }

    /// Hands a written payment to its connector and records the answer.
    async fn start_with_connector(
        &self,
        connector: Arc<dyn Connector>,
        record: PaymentRecord,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        let outcome = self.ask_connector(connector.as_ref(), &record).await?;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = conn
            .payment_by_id_for_update(&record.payment.id)
            .await?
            .ok_or_else(|| {
                GatewayError::internal(ApiError::not_found("payment", &record.payment.id))
            })?;
        apply_outcome(&mut conn, &mut record, outcome).await?;
        complete(&mut conn, guard, &record.payment).await?;
        tx.commit().await?;
        Ok(record.payment)
    }

    pub async fn confirm_payment(
        &self,
        context: &MerchantContext,
        id: &str,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        context.require(malipo_core::objects::Scope::PaymentsWrite)?;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = lock_payment(&mut conn, context, id).await?;
        if record.payment.status != PaymentStatus::RequiresConfirmation
            || record.started_ms.is_some()
        {
            return Err(unexpected_state(format!(
                "only a payment with status `requires_confirmation` that was never confirmed can be confirmed; this one is `{}`",
                record.payment.status
            ))
            .into());
        }
        let connector = match record.payment.method {
            // A card payment stays with the provider it was routed to.
            PaymentMethod::Card => self
                .connectors()
                .by_name(&record.payment.connector)
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid(
                        "method",
                        format!(
                            "the payment's card connector `{}` is not on this gateway",
                            record.payment.connector
                        ),
                    )
                })?,
            method => self.connector_for(method)?,
        };
        let now_ms = now_ms();
        record.started_ms = Some(now_ms);
        record.next_poll_ms = Some(now_ms + self.config().recovery_poll_after_ms);
        conn.update_payment(&record).await?;
        tx.commit().await?;
        self.start_with_connector(connector, record, guard.as_ref())
            .await
    }

    /// Cancels a payment nobody has sent to a provider yet, or an
    /// authorisation (`requires_capture`), which is canceled at the
    /// provider first (see [`Gateway::authorization_step`]).
    pub async fn cancel_payment(
        &self,
        context: &MerchantContext,
        id: &str,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        context.require(malipo_core::objects::Scope::PaymentsWrite)?;
        if let Some(resumed) = self.resume(context, guard.as_ref()).await? {
            return Ok(resumed);
        }
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = lock_payment(&mut conn, context, id).await?;
        if record.payment.status == PaymentStatus::RequiresCapture {
            // Nothing written: the step takes the lock again itself.
            drop(tx);
            return self
                .authorization_step(
                    context,
                    id,
                    PendingOperation::Cancel { at_ms: now_ms() },
                    guard,
                )
                .await;
        }
        if record.payment.status == PaymentStatus::RequiresConfirmation
            && record.started_ms.is_some()
        {
            return Err(unexpected_state(
                "the payment is being confirmed with the provider; it can't be canceled now".into(),
            )
            .into());
        }
        cancel_unsent(&mut conn, &mut record).await?;
        complete(&mut conn, guard.as_ref(), &record.payment).await?;
        tx.commit().await?;
        Ok(record.payment)
    }

    /// `POST /v1/payments/{id}/capture`: captures all or part of an
    /// authorised (`requires_capture`) payment at its provider, and only
    /// then marks it succeeded and credits the captured amount (its fee
    /// taken from the merchant's schedule for that amount).
    pub async fn capture_payment(
        &self,
        context: &MerchantContext,
        id: &str,
        request: CapturePayment,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        context.require(malipo_core::objects::Scope::PaymentsWrite)?;
        if let Some(resumed) = self.resume(context, guard.as_ref()).await? {
            return Ok(resumed);
        }
        let payment = self.payment(context, id).await?;
        require_authorised(&payment, "captured")?;
        let amount = request
            .amount_to_capture
            .unwrap_or(payment.amount_capturable);
        if amount == 0 || amount > payment.amount_capturable {
            return Err(ApiError::invalid(
                "amount_to_capture",
                format!(
                    "amount_to_capture must be 1 to {} (the amount_capturable)",
                    payment.amount_capturable
                ),
            )
            .into());
        }
        let fee = self
            .fee_schedule(&context.merchant_id, payment.method)
            .await?
            .fee_for(MinorUnits::from(amount));
        let fee = u64::try_from(fee.get()).map_err(GatewayError::internal)?;
        self.authorization_step(
            context,
            id,
            PendingOperation::Capture {
                amount,
                fee,
                at_ms: now_ms(),
            },
            guard,
        )
        .await
    }

    /// Captures or cancels an authorisation at its provider. The step is
    /// written first (`pending_operation`, with a recovery poll), so a
    /// second one is refused while it runs and a crash before the answer is
    /// recorded is finished by the poll; the provider's answer (or its
    /// webhook, if first) then settles it through [`plan_authorized_outcome`].
    async fn authorization_step(
        &self,
        context: &MerchantContext,
        id: &str,
        step: PendingOperation,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        let verb = match step {
            PendingOperation::Capture { .. } => "captured",
            PendingOperation::Cancel { .. } => "canceled",
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = lock_payment(&mut conn, context, id).await?;
        require_authorised(&record.payment, verb)?;
        if let PendingOperation::Capture { amount, .. } = step
            && amount > record.payment.amount_capturable
        {
            return Err(ApiError::invalid(
                "amount_to_capture",
                format!(
                    "amount_to_capture must be 1 to {} (the amount_capturable)",
                    record.payment.amount_capturable
                ),
            )
            .into());
        }
        if record.pending_operation.is_some() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "payment_operation_in_progress",
                "a capture or cancel of this payment is already with the provider; retry when it has finished",
            )
            .into());
        }
        let connector = self
            .connectors()
            .by_name(&record.payment.connector)
            .cloned()
            .ok_or_else(|| {
                GatewayError::internal(ApiError::invalid(
                    "connector",
                    format!("no connector `{}`", record.payment.connector),
                ))
            })?;
        record.pending_operation = Some(step);
        record.next_poll_ms = Some(step.at_ms() + AUTHORIZATION_STEP_ANSWER_MS_MAX);
        record.payment.updated = now_seconds();
        conn.update_payment(&record).await?;
        crate::idempotency::recovery_point(&mut conn, guard.as_ref(), id).await?;
        tx.commit().await?;

        let account = self.account_for(&record).await?;
        let request = CaptureRequest {
            payment_id: &record.payment.id,
            provider_reference: record.provider_reference.as_deref(),
            amount: match step {
                PendingOperation::Capture { amount, .. } => amount,
                PendingOperation::Cancel { .. } => record.payment.amount_capturable,
            },
            currency: &record.payment.currency,
            account: &account,
            livemode: record.payment.livemode,
        };
        let answer = match step {
            PendingOperation::Capture { .. } => connector.capture_payment(&request).await,
            PendingOperation::Cancel { .. } => {
                connector
                    .cancel_payment(&request)
                    .await
                    .map(|()| PaymentOutcome::Failed {
                        provider_reference: None,
                        failure: Failure {
                            code: "canceled".into(),
                            message: "canceled by the merchant".into(),
                        },
                    })
            }
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut record = lock_payment(&mut conn, context, id).await?;
        match answer {
            Ok(outcome) => {
                apply_outcome(&mut conn, &mut record, outcome).await?;
                complete(&mut conn, guard.as_ref(), &record.payment).await?;
                tx.commit().await?;
                Ok(record.payment)
            }
            Err(ConnectorError::Unavailable(reason)) => {
                // The provider may have done it: the recovery poll asks.
                tracing::warn!(payment = %id, %reason, "the provider did not answer a capture or cancel; the poll will ask it");
                Err(ApiError::new(
                    ErrorKind::ProviderUnavailable,
                    "provider_unavailable",
                    format!(
                        "the provider did not answer; Malipo asks it again and records the outcome (payment.succeeded or payment.canceled), or lets you retry: {reason}"
                    ),
                )
                .into())
            }
            Err(error) => {
                if record.pending_operation == Some(step) {
                    record.pending_operation = None;
                    record.next_poll_ms = None;
                    conn.update_payment(&record).await?;
                    tx.commit().await?;
                }
                Err(ApiError::new(
                    ErrorKind::Payment,
                    match step {
                        PendingOperation::Capture { .. } => "capture_failed",
                        PendingOperation::Cancel { .. } => "cancel_failed",
                    },
                    format!("the provider refused: {error}"),
                )
                .into())
            }
        }
    }

    pub async fn payment(&self, context: &MerchantContext, id: &str) -> GatewayResult<Payment> {
        context.require(malipo_core::objects::Scope::ReadOnly)?;
        not_found_unless_shaped(id)?;
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .payments(
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
            .await?
            .0
            .pop()
            .ok_or_else(|| ApiError::not_found("payment", id))?;
        Ok(record.payment)
    }

    /// Operator: any payment by id, whoever owns it.
    pub async fn admin_payment(&self, id: &str) -> GatewayResult<PaymentRecord> {
        not_found_unless_shaped(id)?;
        let mut reader = self.store().reader().await?;
        let (mut records, _) = reader
            .conn()
            .payments(
                &[Filter::TextEquals("id", id.to_owned())],
                &Page {
                    limit: 1,
                    cursor: malipo_store::Cursor::Newest,
                },
            )
            .await?;
        records
            .pop()
            .ok_or_else(|| ApiError::not_found("payment", id).into())
    }

    pub async fn payments(
        &self,
        context: &MerchantContext,
        filters: &PaymentFilters,
        page: &Page,
    ) -> GatewayResult<List<Payment>> {
        context.require(malipo_core::objects::Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(status) = &filters.status {
            let status = PaymentStatus::parse(status)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status `{status}`")))?;
            conditions.push(Filter::TextEquals("status", status.as_str().to_owned()));
        }
        if let Some(method) = &filters.method {
            let method = PaymentMethod::parse(method)
                .ok_or_else(|| ApiError::invalid("method", format!("unknown method `{method}`")))?;
            conditions.push(Filter::TextEquals("method", method.as_str().to_owned()));
        }
        if let Some(reference) = &filters.reference {
            conditions.push(Filter::TextEquals("reference", reference.clone()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().payments(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.payment).collect(),
            has_more,
        ))
    }

    /// Worker step: asks the connectors about payments whose poll is due;
    /// answers how many were polled.
    pub async fn poll_due_payments(&self, limit: i64) -> GatewayResult<usize> {
        let now = now_ms();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let ids = conn.payments_due_for_poll(now, limit).await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(mut record) = conn.payment_by_id_for_update(&id).await? {
                // A lease: no other worker polls this payment until it ends.
                record.next_poll_ms = Some(now + POLL_LEASE_MS);
                conn.update_payment(&record).await?;
                claimed.push(record);
            }
        }
        tx.commit().await?;
        let count = claimed.len();
        // One after another: each is a short provider call, and a round is
        // bounded by `limit`; this keeps SQLite's single writer free between.
        for record in claimed {
            if let Err(error) = self.poll_payment(record).await {
                tracing::error!(error = %error.chain(), "payment status poll failed");
            }
        }
        Ok(count)
    }

    async fn poll_payment(&self, record: PaymentRecord) -> GatewayResult<()> {
        let Some(connector) = self
            .connectors()
            .by_name(&record.payment.connector)
            .cloned()
        else {
            tracing::error!(payment = %record.payment.id, connector = %record.payment.connector, "no such connector");
            return Ok(());
        };
        let account = match self.account_for(&record).await {
            Ok(account) => account,
            Err(error) => {
                tracing::warn!(payment = %record.payment.id, error = %error.chain(), "no connector account to poll with");
                return Ok(());
            }
        };
        let answer = connector
            .payment_status(&StatusRequest {
                payment_id: &record.payment.id,
                provider_reference: record.provider_reference.as_deref(),
                customer: &record.payment.customer,
                started_ms: record.started_ms.unwrap_or(record.payment.created * 1000),
                now_ms: now_ms(),
                next_action: record.payment.next_action.as_ref(),
                amount: record.payment.amount,
                currency: &record.payment.currency,
                account: &account,
            })
            .await;
        let outcome = match answer {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(payment = %record.payment.id, %error, "status poll failed; retrying after the lease");
                return Ok(());
            }
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        if let Some(mut current) = conn.payment_by_id_for_update(&record.payment.id).await? {
            apply_outcome(&mut conn, &mut current, outcome).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Worker step: expires unfinished payments past `expires_at`; answers
    /// how many.
    pub async fn expire_due_payments(&self, limit: i64) -> GatewayResult<usize> {
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let ids = conn.payments_due_for_expiry(now_seconds(), limit).await?;
        let mut expired = 0;
        let mut events = Vec::new();
        for id in ids {
            let Some(mut record) = conn.payment_by_id_for_update(&id).await? else {
                continue;
            };
            if record.payment.status.is_terminal() || record.pending_operation.is_some() {
                // A capture or cancel with the provider: its poll decides.
                continue;
            }
            record.payment.failure = Some(
                if record.payment.status == PaymentStatus::RequiresCapture {
                    Failure {
                    code: "authorization_expired".into(),
                    message: "the authorisation was not captured in time; nothing was charged and the provider releases it".into(),
                }
                } else {
                    Failure {
                        code: "expired".into(),
                        message: "the payment was not completed before it expired".into(),
                    }
                },
            );
            events.push(transition(&mut conn, &mut record, PaymentTransition::Expire).await?);
            conn.update_payment(&record).await?;
            if record.payment.method == PaymentMethod::BankTransfer {
                conn.expire_bank_deposit(&record.payment.id, now_seconds())
                    .await?;
            }
            expired += 1;
        }
        conn.insert_events(&events).await?;
        tx.commit().await?;
        Ok(expired)
    }
}
