//! Connectors: how Malipo talks to each payment provider.
//!
//! [`Connector`] is the one abstraction every provider fits: a payment is
//! started with [`Connector::start_payment`], which may finish at once or
//! leave the payment `processing` / `requires_action` (a phone prompt, a
//! redirect, a bank reference, a crypto address in `next_action`); the
//! outcome then arrives by callback or by [`Connector::payment_status`]
//! polling. Refunds go through [`Connector::refund`].
//!
//! Payouts (money to a customer's wallet) go through
//! [`Connector::start_payout`], checked first by [`Connector::check_payout`]
//! (whose default refuses: a connector without payouts is a 400 naming
//! `method`); the result arrives by a callback
//! ([`Connector::parse_payout_callback`]) or [`Connector::payout_status`].
//! M-Pesa pays out by B2C, MTN MoMo by a Disbursement transfer, Relworx by
//! send-payment (for `mtn_momo` / `airtel_money` carried by a Relworx
//! account).
//!
//! Manual capture: a connector whose provider can hold an authorisation
//! ([`Connector::supports_manual_capture`], Stripe) starts a
//! `capture_method: manual` payment as an authorisation only
//! ([`PaymentOutcome::Authorized`]); the money moves on
//! [`Connector::capture_payment`] (all or part of it), and
//! [`Connector::cancel_payment`] releases it. Other connectors refuse both.
//!
//! Architecture invariant: connectors never touch the store. They get what
//! they need in the request (including the merchant's connector account
//! credentials) and answer with an outcome; the gateway records it.
//!
//! Callbacks: [`Connector::parse_callback`] reads what a provider's callback
//! body claims (which payment, what outcome) as a [`CallbackClaim`]. The
//! gateway trusts a claim only when the provider signs its callbacks
//! (Relworx); an unsigned one (M-Pesa, MTN MoMo, Airtel Money) only names
//! the payment to confirm with [`Connector::payment_status`].
//!
//! - [`sandbox`]: the offline connector that decides by test phone numbers.
//! - [`mpesa`]: Safaricom M-Pesa Daraja (STK push, STK query, callbacks).
//! - [`mtn_momo`]: MTN MoMo Collection (RequestToPay, status, callbacks).
//! - [`airtel`]: Airtel Money (USSD push, enquiry, callbacks, refunds).
//! - [`relworx`]: Relworx (request payment, status, signed webhooks), and
//!   [`relworx::ViaRelworx`], which carries MTN MoMo and Airtel Money
//!   payments in Uganda through a merchant's Relworx account.
//! - [`paystack`]: Paystack cards (initialize, hosted checkout redirect,
//!   verify, signed webhooks, refunds); [`cards`]: what card connectors
//!   share (decline codes, the redirect, references).
//! - [`flutterwave`]: Flutterwave cards (Standard hosted checkout, verify
//!   by `tx_ref` with amount and currency checked, webhooks as hints
//!   confirmed by that verify, refunds).
//! - [`stripe`]: Stripe cards (PaymentIntents confirmed with the merchant's
//!   `pm_…` token, 3-D Secure redirects, declines, refunds, webhooks).
//! - [`nowpayments`]: NOWPayments crypto (a deposit address and amount,
//!   signed IPNs, status polling; no refunds).
//! - `common.rs`: what they share (credentials, the token cache, phone
//!   numbers per country, exact amounts, the poll schedule).
//!
//! Every connector reads its credentials from
//! [`ConnectorAccount::credentials`]; each module's docs list their names.

pub mod airtel;
pub mod cards;
mod common;
pub mod flutterwave;
pub mod mpesa;
pub mod mtn_momo;
pub mod nowpayments;
pub mod paystack;
pub mod relworx;
pub mod sandbox;
pub mod stripe;

use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure, NextAction};
use malipo_core::payment::{CaptureMethod, PaymentMethod};
use std::collections::BTreeMap;
use std::fmt;

/// A merchant's configured account with a provider: which credentials to
/// use. Credentials redact themselves in `Debug` so they never reach logs.
#[derive(Clone, Default)]
pub struct ConnectorAccount {
    pub id: String,
    /// The provider the account is with (`mtn_momo`, `relworx`, ...): a
    /// connector that can reach its method through another provider's
    /// account ([`relworx::ViaRelworx`]) goes by it.
    pub provider: String,
    pub credentials: BTreeMap<String, String>,
    /// Where the provider should send its callbacks for this account
    /// (`{public_url}/v1/hooks/{provider}/{account}`), when known.
    pub callback_url: Option<String>,
}

impl fmt::Debug for ConnectorAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorAccount")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field(
                "credentials",
                &format_args!("[{} redacted]", self.credentials.len()),
            )
            .finish()
    }
}

/// What a connector needs to start a payment.
#[derive(Debug, Clone)]
pub struct PaymentRequest<'a> {
    pub payment_id: &'a str,
    pub amount: u64,
    pub currency: &'a str,
    pub method: PaymentMethod,
    pub customer: &'a Customer,
    pub reference: Option<&'a str>,
    pub description: Option<&'a str>,
    /// Where a hosted page (cards) sends the customer back to.
    pub return_url: Option<&'a str>,
    /// The provider's token for the card (Stripe `pm_…`), when the
    /// merchant collected it with the provider's library.
    pub payment_method: Option<&'a str>,
    /// `Manual`: only authorise; the money moves on
    /// [`Connector::capture_payment`]. Only asked of connectors that
    /// [`Connector::supports_manual_capture`].
    pub capture_method: CaptureMethod,
    pub account: &'a ConnectorAccount,
    pub livemode: bool,
}

/// What a connector needs to capture or cancel an authorised payment.
#[derive(Debug, Clone)]
pub struct CaptureRequest<'a> {
    pub payment_id: &'a str,
    /// The provider's id for the authorisation (a PaymentIntent `pi_…`).
    pub provider_reference: Option<&'a str>,
    /// What to capture, in minor units (at most the authorised amount; a
    /// smaller capture releases the rest). Unused by a cancel.
    pub amount: u64,
    pub currency: &'a str,
    pub account: &'a ConnectorAccount,
    pub livemode: bool,
}

/// What a connector needs to ask where a payment stands.
#[derive(Debug, Clone)]
pub struct StatusRequest<'a> {
    pub payment_id: &'a str,
    /// The provider's own id for the payment, from an earlier outcome.
    pub provider_reference: Option<&'a str>,
    /// The payment's amount (minor units) and currency, for providers whose
    /// answer must be checked against them (Flutterwave).
    pub amount: u64,
    pub currency: &'a str,
    pub customer: &'a Customer,
    /// When the payment was started, for providers (and the sandbox) whose
    /// answer depends on elapsed time.
    pub started_ms: i64,
    pub now_ms: i64,
    /// What the customer was last asked to do (a hosted page's URL), for
    /// providers whose status answer does not repeat it.
    pub next_action: Option<&'a NextAction>,
    pub account: &'a ConnectorAccount,
}

/// What a connector needs to refund (part of) a payment.
#[derive(Debug, Clone)]
pub struct RefundRequest<'a> {
    pub refund_id: &'a str,
    pub payment_id: &'a str,
    /// The provider's id for the payment (e.g. Daraja's CheckoutRequestID).
    pub provider_reference: Option<&'a str>,
    /// The provider's receipt for the money received (the M-Pesa receipt,
    /// Airtel's `airtel_money_id`), when one was recorded.
    pub provider_receipt: Option<&'a str>,
    /// What to refund, in minor units.
    pub amount: u64,
    /// The payment's whole amount: a refund of less is partial.
    pub payment_amount: u64,
    pub currency: &'a str,
    /// The merchant's account the payment went through, credentials
    /// decrypted, with the URL the provider calls back.
    pub account: &'a ConnectorAccount,
    pub livemode: bool,
}

/// A refund to check before anything is reserved ([`Connector::check_refund`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundCheck<'a> {
    pub amount: u64,
    pub payment_amount: u64,
    pub provider_receipt: Option<&'a str>,
}

impl RefundCheck<'_> {
    /// Whether the refund returns less than the whole payment.
    pub fn is_partial(&self) -> bool {
        self.amount < self.payment_amount
    }

    /// Refuses a partial refund (naming `amount`) for a provider that
    /// reverses whole transactions only.
    pub fn whole_only(&self, provider: &str) -> Result<(), FieldError> {
        if self.is_partial() {
            return Err(FieldError {
                param: "amount",
                message: format!(
                    "{provider} reverses whole transactions only: refund all {} (omit amount), not {}",
                    self.payment_amount, self.amount
                ),
            });
        }
        Ok(())
    }
}

/// What a provider's callback reporting a refund's result claims (an
/// M-Pesa reversal `Result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundClaim {
    /// The provider's reference for the refund, as the connector answered
    /// it in [`RefundOutcome::Pending`].
    pub provider_reference: String,
    /// `Succeeded` or `Failed`.
    pub outcome: RefundOutcome,
    /// The provider's id of the transaction reversed, when the body says.
    pub original_transaction: Option<String>,
}

/// What a payment callback says about the money itself: the receipt, the
/// amount paid and who paid, for the gateway to record and check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaidDetails {
    /// The payment the callback is about, by the provider's reference.
    pub provider_reference: String,
    pub receipt: Option<String>,
    /// The amount the provider says was paid, in minor units.
    pub amount: Option<u64>,
    pub phone: Option<String>,
}

/// Where a payment stands according to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Succeeded {
        provider_reference: Option<String>,
    },
    Failed {
        provider_reference: Option<String>,
        failure: Failure,
    },
    /// The provider holds the request; ask again after `poll_after_ms`.
    Processing {
        provider_reference: Option<String>,
        next_action: Option<NextAction>,
        poll_after_ms: u64,
    },
    /// The customer must act before the provider goes on.
    RequiresAction {
        provider_reference: Option<String>,
        next_action: NextAction,
        poll_after_ms: u64,
    },
    /// The provider authorised a manual-capture payment: `amount_capturable`
    /// (minor units) waits for [`Connector::capture_payment`], at most
    /// `expires_after_seconds` (a little less than the provider holds it).
    Authorized {
        provider_reference: Option<String>,
        amount_capturable: u64,
        expires_after_seconds: u64,
    },
}

/// What a provider's callback body claims: which payment (by the
/// provider's reference, and by Malipo's payment id when the provider
/// echoes it) and where it stands. A claim from an unsigned callback is a
/// hint to confirm, never a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackClaim {
    /// The provider's reference, as stored on the payment from the
    /// connector's first answer.
    pub provider_reference: String,
    /// Malipo's payment id, when the callback carries it back.
    pub payment_id: Option<String>,
    pub outcome: PaymentOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded { provider_reference: Option<String> },
    Failed { failure: Failure },
    Pending { provider_reference: Option<String> },
}

/// What a connector needs to send a payout.
#[derive(Debug, Clone)]
pub struct PayoutRequest<'a> {
    pub payout_id: &'a str,
    /// In minor units.
    pub amount: u64,
    pub currency: &'a str,
    /// The recipient, as [`Connector::check_payout`] normalised it.
    pub phone: &'a str,
    pub description: Option<&'a str>,
    /// The merchant's account, credentials decrypted, with the URL the
    /// provider calls back.
    pub account: &'a ConnectorAccount,
    pub livemode: bool,
}

/// What a connector needs to ask where a payout stands.
#[derive(Debug, Clone)]
pub struct PayoutStatusRequest<'a> {
    pub payout_id: &'a str,
    /// The provider's id for the payout, from its first answer.
    pub provider_reference: Option<&'a str>,
    /// When the payout was sent and now (Unix ms), for the poll back-off.
    pub started_ms: i64,
    pub now_ms: i64,
    pub account: &'a ConnectorAccount,
}

/// Where a payout stands according to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutOutcome {
    /// The recipient was credited.
    Paid {
        provider_reference: Option<String>,
        /// The provider's receipt for the money sent, when it gives one.
        receipt: Option<String>,
    },
    Failed {
        provider_reference: Option<String>,
        failure: Failure,
    },
    /// The provider holds the request. `poll_after_ms`: when to ask its
    /// status API; `None` when it has none and only its callback tells.
    Processing {
        provider_reference: Option<String>,
        poll_after_ms: Option<u64>,
    },
}

/// What a callback reporting a payout's result claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutClaim {
    /// The provider's reference, as the connector answered it first.
    pub provider_reference: String,
    /// Malipo's payout id, when the provider echoes it.
    pub payout_id: Option<String>,
    pub outcome: PayoutOutcome,
}

/// A request field a provider can't take, e.g. `customer[phone]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub param: &'static str,
    pub message: String,
}

/// A connector could not get an answer (the provider was unreachable, timed
/// out or answered nonsense). Distinct from a declined payment, which is an
/// outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("the provider could not be reached: {0}")]
    Unavailable(String),
    #[error("the provider rejected the request: {0}")]
    Rejected(String),
    #[error("{0} is not supported by this connector")]
    Unsupported(&'static str),
}

#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The connector's stable name, e.g. `sandbox`, `mpesa`.
    fn name(&self) -> &'static str;

    /// How long a payment may stay incomplete before it expires.
    fn payment_expiry_seconds(&self) -> u64;

    /// Whether the connector answers from inside this process and moves no
    /// real money (the sandbox). The gateway may then ask it before writing
    /// the payment and record both in one transaction; a real provider is
    /// always asked after the payment is durably written.
    fn answers_in_process(&self) -> bool {
        false
    }

    /// Whether the provider can authorise a payment now and capture it
    /// later (`capture_method: manual`), and cancel the authorisation.
    fn supports_manual_capture(&self) -> bool {
        false
    }

    /// Captures (part of) an authorised payment: `Succeeded` once the
    /// provider took the money. Unsupported unless
    /// [`Connector::supports_manual_capture`].
    async fn capture_payment(
        &self,
        _request: &CaptureRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported(
            "capturing an authorised payment",
        ))
    }

    /// Cancels an authorised payment at the provider, releasing the hold on
    /// the customer's money; answers once the provider confirmed.
    /// Unsupported unless [`Connector::supports_manual_capture`].
    async fn cancel_payment(&self, _request: &CaptureRequest<'_>) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "canceling an authorised payment",
        ))
    }

    /// Checks a new payment against what the provider takes, before
    /// anything is written, and normalises the customer's phone into the
    /// provider's format. A refusal names the request field to blame.
    fn check_payment(
        &self,
        _customer: &mut Customer,
        _currency: &str,
        _amount: u64,
    ) -> Result<(), FieldError> {
        Ok(())
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError>;

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError>;

    /// Checks a refund against what the provider can do, before anything
    /// is reserved (e.g. a provider that reverses whole transactions only
    /// refuses a partial refund). A refusal names the request field.
    fn check_refund(&self, _refund: &RefundCheck<'_>) -> Result<(), FieldError> {
        Ok(())
    }

    /// Refunds (part of) a payment. `RefundOutcome::Pending` means the
    /// provider answers later, by a callback [`Connector::parse_refund_callback`]
    /// reads, naming the refund by the pending outcome's reference.
    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError>;

    /// Reads a callback reporting a refund's result, or `None` when the
    /// body is not one.
    fn parse_refund_callback(&self, _raw_body: &[u8]) -> Option<RefundClaim> {
        None
    }

    /// Reads the receipt, amount and payer a payment callback reports, or
    /// `None` when it reports none.
    fn parse_paid_details(&self, _raw_body: &[u8]) -> Option<PaidDetails> {
        None
    }

    /// Whether even a callback whose signature checked out only names the
    /// payment, to be confirmed with [`Connector::payment_status`] before
    /// anything changes (Flutterwave: `verif-hash` is a static secret, and
    /// its docs say to verify every transaction).
    fn confirms_callbacks(&self) -> bool {
        false
    }

    /// Registers where the provider announces payments customers start
    /// themselves (M-Pesa C2B: paybill and till payments), for `account`.
    async fn register_customer_payment_urls(
        &self,
        _account: &ConnectorAccount,
        _validation_url: &str,
        _confirmation_url: &str,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "registering customer payment URLs",
        ))
    }

    /// Reads a callback body of this connector's provider: the payment it
    /// names and the outcome it claims, or `None` when the body is not a
    /// payment callback this connector knows.
    fn parse_callback(&self, _raw_body: &[u8]) -> Option<CallbackClaim> {
        None
    }

    /// Checks a payout before anything is written or moved, through
    /// `account`, and normalises the recipient's `phone` into the
    /// provider's format. A refusal names the request field; the default
    /// refuses every payout (naming `method`).
    fn check_payout(
        &self,
        _account: &ConnectorAccount,
        _phone: &mut String,
        _currency: &str,
        _amount: u64,
    ) -> Result<(), FieldError> {
        Err(payouts_unsupported(self.name()))
    }

    /// Sends a payout. `Processing` means the provider answers later, by
    /// a callback [`Connector::parse_payout_callback`] reads or by
    /// [`Connector::payout_status`].
    async fn start_payout(
        &self,
        _request: &PayoutRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("payouts"))
    }

    /// Asks the provider where a payout stands.
    async fn payout_status(
        &self,
        _request: &PayoutStatusRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("payout status queries"))
    }

    /// Reads a callback reporting a payout's result, or `None` when the
    /// body is not one.
    fn parse_payout_callback(&self, _raw_body: &[u8]) -> Option<PayoutClaim> {
        None
    }
}

/// The refusal of a payout through a connector that sends none.
pub fn payouts_unsupported(connector: &str) -> FieldError {
    FieldError {
        param: "method",
        message: format!("payouts through `{connector}` are not supported"),
    }
}

/// The field a payout's phone is named by in errors.
pub const PAYOUT_PHONE_PARAM: &str = "destination[phone]";
