//! The API's resources, as merchants see them. The store reads and writes
//! these, the gateway changes them through named transitions, and the HTTP
//! layer serializes them unchanged: one definition of each object.
//!
//! Amounts are `u64` minor units here (every payment amount fits, see
//! [`crate::Asset::payment_amount_max`]); the ledger works in 128 bits.
//! Times are Unix seconds, as in Stripe's API.

use crate::metadata::Metadata;
use crate::payment::{CaptureMethod, PaymentMethod, PaymentStatus};
use crate::payout::PayoutStatus;
use crate::refund::{RefundReason, RefundStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who is paying. All fields optional; the sandbox and mobile money
/// connectors need `phone`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// E.164 digits, with or without `+` (e.g. `254708374149`).
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Why a payment failed, in the provider-independent vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    /// Stable code, e.g. `insufficient_funds`, `cancelled_by_user`, `expired`.
    pub code: String,
    pub message: String,
}

/// What the customer must do next, when a payment is `requires_action` or
/// `processing` with the customer in the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// A prompt was sent to the customer's phone (STK push / USSD).
    PhonePrompt { phone: String, message: String },
    /// Send the customer to this URL (a provider's hosted card page, 3-D
    /// Secure); the provider sends them back to `return_url` when given.
    Redirect {
        url: String,
        return_url: Option<String>,
    },
    /// The customer pays by bank transfer to this account, quoting
    /// `reference` exactly, before `expires_at`.
    BankTransfer {
        /// The deposit reference to quote, `XXXXX-XXXXX` (10 characters of
        /// `23456789ABCDEFGHJKMNPQRSTUVWXYZ`, the last a check character;
        /// case, spaces and dashes don't matter).
        reference: String,
        bank_name: String,
        account_name: String,
        account_number: String,
        branch: Option<String>,
        /// The bank's SWIFT/BIC code, when the merchant gave one.
        swift: Option<String>,
        /// What to send, in minor units (the payment's amount).
        amount: u64,
        /// The same as a decimal in the currency's major unit, e.g. `1500.00`.
        amount_decimal: String,
        currency: String,
        /// Unix seconds: after this the deposit is no longer accepted.
        expires_at: i64,
    },
    /// The customer sends exactly `pay_amount` of `pay_currency` to
    /// `address` on `network` before `expires_at` (crypto).
    CryptoAddress {
        address: String,
        network: String,
        /// A decimal in the coin's own unit, e.g. `0.00116884`.
        pay_amount: String,
        /// The provider's coin code, e.g. `btc`, `usdttrc20`.
        pay_currency: String,
        /// ISO 8601, when the provider says.
        expires_at: Option<String>,
        /// What has arrived so far, in the coin (`0` until a transfer is seen).
        amount_received: String,
        /// The provider's own status: `waiting`, `confirming`, `confirmed`,
        /// `sending`, or `partially_paid` (less than `pay_amount` arrived).
        provider_status: String,
    },
}

impl NextAction {
    /// Fills what `self` (a provider's newer answer) leaves out from
    /// `previous`: a crypto status answer or IPN repeats the address and
    /// amounts but not the network's name or the expiry.
    pub fn keep_known_from(&mut self, previous: Option<&NextAction>) {
        if let (
            NextAction::CryptoAddress {
                address,
                network,
                expires_at,
                ..
            },
            Some(NextAction::CryptoAddress {
                address: previous_address,
                network: previous_network,
                expires_at: previous_expiry,
                pay_currency: previous_currency,
                ..
            }),
        ) = (self, previous)
            && address == previous_address
        {
            if expires_at.is_none() {
                expires_at.clone_from(previous_expiry);
            }
            if network == previous_currency {
                network.clone_from(previous_network);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// `pay_…`
    pub id: String,
    /// Always `payment`.
    pub object: &'static str,
    pub livemode: bool,
    /// In the currency's minor unit (KES cents, UGX units).
    pub amount: u64,
    /// Lowercase ISO 4217 code or asset code.
    pub currency: String,
    pub method: PaymentMethod,
    /// The connector that carries the payment, e.g. `sandbox`.
    pub connector: String,
    pub status: PaymentStatus,
    /// `automatic` (the default): the money moves when the provider takes
    /// it; `manual`: the provider only authorises it (`requires_capture`)
    /// and the merchant captures it later.
    pub capture_method: CaptureMethod,
    /// What an authorised manual-capture payment may still capture (minor
    /// units); 0 in every other status.
    pub amount_capturable: u64,
    /// What the payment received once it succeeded: `amount`, or what a
    /// manual capture took (a partial capture releases the rest); 0 before.
    pub amount_received: u64,
    /// The merchant's own order id.
    pub reference: Option<String>,
    pub description: Option<String>,
    pub customer: Customer,
    /// The customer (`cus_…`) whose balance the net amount is credited to
    /// when the payment succeeds (created with `credit_customer: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_customer: Option<String>,
    pub amount_refunded: u64,
    /// Malipo's fee, charged when the payment succeeds (on the captured
    /// amount, for a manual capture).
    pub fee: u64,
    /// `amount - fee` (`amount_received - fee` once captured): what the
    /// merchant's balance receives on success.
    pub net: u64,
    pub next_action: Option<NextAction>,
    /// Where the provider's hosted page sends the customer back to (cards).
    pub return_url: Option<String>,
    /// The provider's token for the customer's card (Stripe `pm_…`), when
    /// the merchant collected it with the provider's own library; never a
    /// card number. For `crypto`: the coin the customer pays in (`btc`).
    pub payment_method: Option<String>,
    pub failure: Option<Failure>,
    pub metadata: Metadata,
    /// When the payment expires if it has not completed (Unix seconds).
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
    /// A conversion payment (made with a `conversion_quote`): the customer
    /// pays `amount` in `currency`, the merchant is credited in
    /// `conversion.to_currency` at the quoted rate. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<PaymentConversion>,
}

/// How a conversion payment settles (see docs/conversions.md). The
/// payment's own `fee` is 0 and its `net` its `amount`: the fee is taken in
/// the currency the merchant is credited in, here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentConversion {
    /// The quote the payment used (`cq_…`).
    pub quote: String,
    /// The currency the merchant is credited in.
    pub to_currency: String,
    /// The locked rate: major units of `to_currency` per major unit of the
    /// payment's currency, as a decimal string.
    pub rate: String,
    /// What `amount` buys at `rate`, in `to_currency` minor units.
    pub to_amount: u64,
    /// Malipo's fee, in `to_currency` minor units.
    pub fee: u64,
    /// `to_amount - fee`: what the merchant's `to_currency` balance receives.
    pub net: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Refund {
    /// `re_…`
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    pub livemode: bool,
    /// The refunded payment's id.
    pub payment: String,
    pub amount: u64,
    pub currency: String,
    pub status: RefundStatus,
    pub reason: Option<RefundReason>,
    /// The part of the payment's fee this refund gives back.
    pub fee_refunded: u64,
    pub failure: Option<Failure>,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
}

/// Where a payout goes: a mobile money wallet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutDestination {
    /// The recipient's mobile number; answered as the provider's
    /// international digits (e.g. `254708374149`).
    pub phone: Option<String>,
}

/// Money sent from the merchant's available balance to a mobile money
/// wallet (M-Pesa B2C, MTN MoMo Disbursement, Relworx send-payment), or,
/// for a customer's withdrawal, from that customer's available balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payout {
    /// `po_…`
    pub id: String,
    /// Always `payout`.
    pub object: &'static str,
    pub livemode: bool,
    /// In the currency's minor unit, taken from the available balance.
    pub amount: u64,
    /// A withdrawal: the customer (`cus_…`) whose available balance pays
    /// it (`POST /v1/customers/{id}/withdrawals`); `null` for the
    /// merchant's own payouts.
    pub customer: Option<String>,
    pub currency: String,
    /// `mpesa`, `mtn_momo`, `airtel_money` or `sandbox`.
    pub method: PaymentMethod,
    /// The connector that carries it, e.g. `mpesa`.
    pub connector: String,
    pub status: PayoutStatus,
    pub destination: PayoutDestination,
    pub description: Option<String>,
    /// The provider's receipt for the money sent (e.g. the M-Pesa
    /// TransactionReceipt), once paid and when the provider reports one.
    pub receipt: Option<String>,
    pub failure: Option<Failure>,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Merchant {
    /// `mch_…`
    pub id: String,
    /// Always `merchant`.
    pub object: &'static str,
    pub name: String,
    pub email: Option<String>,
    pub created: i64,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything a merchant can do.
    Full,
    /// Every GET.
    ReadOnly,
    /// Create, confirm and cancel payments (and read).
    PaymentsWrite,
    /// Create refunds (and read).
    RefundsWrite,
    /// Create payouts (and read).
    PayoutsWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Full,
        Scope::ReadOnly,
        Scope::PaymentsWrite,
        Scope::RefundsWrite,
        Scope::PayoutsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::ReadOnly => "read_only",
            Scope::PaymentsWrite => "payments_write",
            Scope::RefundsWrite => "refunds_write",
            Scope::PayoutsWrite => "payouts_write",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// Whether a key with this scope may do what `needed` names.
    pub fn allows(self, needed: Scope) -> bool {
        match (self, needed) {
            (Scope::Full, _) => true,
            (_, Scope::ReadOnly) => true,
            (granted, needed) => granted == needed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// Always `api_key`.
    pub object: &'static str,
    pub livemode: bool,
    pub name: Option<String>,
    /// The first characters of the secret, enough to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// The addresses and CIDR blocks this key is accepted from (e.g.
    /// `["203.0.113.7", "10.0.0.0/8"]`); empty: any address. A request
    /// from elsewhere is refused with 403 `api_key_ip_not_allowed`.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// The whole secret: only in the response that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub revoked: Option<i64>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceTransaction {
    /// `txn_…`
    pub id: String,
    /// Always `balance_transaction`.
    pub object: &'static str,
    pub livemode: bool,
    /// `payment`, `refund`, `payout` or `payout_failure` (a failed
    /// payout's amount coming back).
    #[serde(rename = "type")]
    pub kind: String,
    /// Signed: positive for money in, negative for money out.
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub currency: String,
    /// The payment, refund or payout that caused it.
    pub source: String,
    pub created: i64,
}

/// One currency's balance, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceAmount {
    pub currency: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    /// Always `balance`.
    pub object: &'static str,
    pub livemode: bool,
    /// Settled funds the merchant can be paid out.
    pub available: Vec<BalanceAmount>,
    /// Payments in flight: reserved in the ledger, not yet settled.
    pub pending: Vec<BalanceAmount>,
    /// Payouts on their way to recipients: taken from `available`, not
    /// yet reported paid (a failed payout's amount returns to `available`).
    pub in_transit: Vec<BalanceAmount>,
}

/// A page of objects, Stripe style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T> List<T> {
    pub fn new(data: Vec<T>, has_more: bool) -> Self {
        List {
            object: "list",
            data,
            has_more,
        }
    }
}

/// Something that happened to one of the merchant's objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// `evt_…`
    pub id: String,
    /// Always `event`.
    pub object: &'static str,
    /// e.g. `payment.succeeded`, `refund.created`.
    #[serde(rename = "type")]
    pub kind: String,
    pub livemode: bool,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// The object as the API returned it right after the change.
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
}

/// Where a merchant receives its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpoint {
    /// `we_…`
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub livemode: bool,
    pub url: String,
    pub description: Option<String>,
    /// Event types to send; `["*"]` sends all.
    pub enabled_events: Vec<String>,
    /// Disabled endpoints receive nothing (set by the merchant, or by Malipo
    /// after days of failures: see `disabled_reason`).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): only in the response that created or
    /// rolled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when the previous secret still signs (after a roll).
    pub previous_secret_expires_at: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// One HTTP attempt to deliver an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    /// `wha_…`
    pub id: String,
    /// Always `webhook_attempt`.
    pub object: &'static str,
    pub livemode: bool,
    pub event: String,
    pub endpoint: String,
    /// The delivery (event × endpoint) this attempt belongs to.
    pub delivery: String,
    pub url: String,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// The first bytes of the receiver's answer.
    pub response_excerpt: Option<String>,
    /// Why the attempt failed without an HTTP answer (timeout, refused…).
    pub error: Option<String>,
    pub succeeded: bool,
    pub created: i64,
}

/// A merchant's account with a provider: where its callbacks arrive and
/// how they are checked. Secrets are never shown after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorAccount {
    /// `ca_…`
    pub id: String,
    /// Always `connector_account`.
    pub object: &'static str,
    pub livemode: bool,
    /// e.g. `mpesa`, `paystack`, `sandbox`.
    pub provider: String,
    pub name: Option<String>,
    /// Give this URL to the provider as the callback / webhook URL.
    pub callback_url: String,
    /// Addresses and CIDR blocks callbacks may come from (empty: any).
    pub ip_allowlist: Vec<String>,
    /// Whether a callback secret is configured (never shown).
    pub has_webhook_secret: bool,
    /// The names of the stored API credentials (values are never shown).
    pub credential_names: Vec<String>,
    pub created: i64,
    pub updated: i64,
}

/// One request a provider sent to `/v1/hooks/…`, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InboundWebhook {
    /// `ih_…`
    pub id: String,
    /// Always `inbound_webhook`.
    pub object: &'static str,
    pub provider: String,
    pub account: Option<String>,
    pub merchant: Option<String>,
    pub livemode: Option<bool>,
    pub source_ip: String,
    pub method: String,
    /// `[name, value]` pairs; secrets and signatures redacted.
    // Documented as arrays of strings: utoipa writes a tuple as an `items`
    // array, which OpenAPI 3.1 does not allow (schemathesis refused it).
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// e.g. `verified`, `unsigned`, `bad_signature`, `stale_timestamp`,
    /// `replayed`, `rate_limited`, `ip_refused`, `unknown_account`.
    pub verdict: String,
    /// The check that decided: `provider`, `source_ip`, `rate_limit`,
    /// `signature`, `timestamp`, `replay`.
    pub decided_by: String,
    pub event_key: Option<String>,
    /// `processed`, `duplicate`, `unmatched` (kept for reconciliation),
    /// `awaiting_confirmation`, `rejected`, `error`.
    pub outcome: String,
    pub outcome_detail: Option<String>,
    pub latency_ms: u64,
    pub created: i64,
}
