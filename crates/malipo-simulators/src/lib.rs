//! Local HTTP simulators of the providers Malipo connects to: Safaricom
//! M-Pesa Daraja, MTN MoMo, Airtel Money and Relworx (mobile money),
//! Paystack and Stripe (cards) and NOWPayments (crypto). Each speaks
//! the provider's real wire format (paths, auth, bodies, JSON types,
//! misspellings, error bodies and codes, as written down in
//! `shared/providers.md`), keeps its transactions in memory so status
//! queries agree with callbacks, and delivers callbacks to the URL the
//! request (or the simulated account's settings) named, after a
//! configurable delay. Malipo's tests, its demo and `malipo simulate
//! <provider> --port N` run on them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), malipo_simulators::Error> {
//! use malipo_simulators::{Provider, SimulatorConfig, spawn};
//! let simulator = spawn(Provider::Mpesa, SimulatorConfig::for_tests(20)).await?;
//! // point the connector at simulator.base_url() ...
//! let received = simulator.requests();
//! let sent = simulator.callbacks_sent();
//! simulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Code map
//! - [`rates`]: an exchange-rate JSON endpoint (`GET /rates?base=usd`)
//!   for Malipo's HTTP rate source, rates settable in tests.
//! - [`mpesa`], [`mtn_momo`], [`airtel`], [`relworx`], [`paystack`],
//!   [`stripe`], [`nowpayments`]: one module per
//!   provider, each with its state type, `router(state)`, its magic values
//!   as constants and its error shapes.
//! - [`SimulatorConfig`] (in `config.rs`): credentials, delays, limits and
//!   the quirks that differ between provider environments.
//! - `context.rs`: what all simulators share: journal, callback delivery
//!   (delay, bounded retries), background tasks ended on stop.
//! - `journal.rs`: [`RecordedRequest`] / [`CallbackDelivery`], bounded.
//! - [`spawn`] / [`RunningSimulator`]: bind, serve, inspect, stop.
//!
//! Invariant: a simulator sends callbacks only to the URL a request gave
//! (`CallBackURL`, `ResultURL`, `X-Callback-Url`, registered C2B URLs) or
//! the URL configured for the simulated account (Airtel, Relworx), never
//! elsewhere; every wait and retry is bounded; nothing is kept past
//! `journal_entries_max` / `transactions_max`.
//!
//! # Default credentials
//! | provider | what the simulator accepts |
//! |---|---|
//! | M-Pesa | consumer key `malipo-simulator-consumer-key`, secret `malipo-simulator-consumer-secret`; STK shortcode `174379` with Safaricom's public sandbox passkey `bfb279f9...ed2c919` ([`DARAJA_SANDBOX_PASSKEY`]); initiator `testapi` (SecurityCredential opaque); any 5-7 digit C2B shortcode (sandbox uses 600xxx) |
//! | MTN MoMo | API user `0b7f7bb5-5c3e-4d4c-9a5c-4e2a6d1f0a11`, API key `5b2a4f0c9d8e4b7fa1c3d5e7f9a0b2c4`; subscription keys `malipo-collection-subscription-key` / `malipo-disbursement-subscription-key`; target environment `sandbox`, currency `EUR`; users made through `/v1_0/apiuser` work too |
//! | Airtel | client id `malipo-airtel-client-id`, secret `malipo-airtel-client-secret`; countries in [`airtel::COUNTRIES`] (UG/UGX, KE/KES, ...) |
//! | Relworx | API key `malipo-relworx-api-key`, account `RELJH012BV45P`, webhook key `relworx_webhook_key` |
//! | Paystack | secret key `sk_test_malipo_simulator_paystack_0123456789abcdef` (also the webhook signing key) |
//! | Flutterwave | secret key `FLWSECK_TEST-malipo0simulator0flutterwave0123-X`, webhook secret hash `malipo_simulator_flutterwave_secret_hash` |
//! | Stripe | secret key `sk_test_malipo_simulator_stripe_0123456789abcdef`, webhook secret `whsec_malipo_simulator_stripe_0123456789` |
//! | NOWPayments | API key `malipo-simulator-nowpayments-api-key`, IPN secret `malipo-simulator-nowpayments-ipn-secret` |
//!
//! # Magic values: which input gives which outcome
//! Outcomes happen `callback_delay_ms` after the request (default 1 s)
//! unless said otherwise; "lost" means the transaction completes but no
//! callback is ever sent, so only a status query tells; "duplicate" means
//! the identical callback is delivered twice.
//!
//! ## M-Pesa STK push, by `Amount` (whole KES)
//! | Amount | Outcome |
//! |---|---|
//! | any other (e.g. `1`) | ResultCode `0`, with CallbackMetadata (Amount, MpesaReceiptNumber, Balance, TransactionDate, PhoneNumber) |
//! | `1001` `1019` `1025` `1032` `1037` `2001` `2028` `8006` `9999` | that ResultCode (1032 cancelled by user, 1037 DS timeout, 2001 wrong PIN, ...), no CallbackMetadata |
//! | `9001` `9002` `9003` `9004` `9008` `9017` `9026` | ResultCode `amount - 9000` (1 insufficient balance, 2/3 below min / above max, 4 daily limit, 8 max balance, 17 rule limited, 26 system busy) |
//! | `7001` ([`mpesa::AMOUNT_CALLBACK_LOST`]) | success, callback lost: only the STK query tells |
//! | `7002` ([`mpesa::AMOUNT_DUPLICATE_CALLBACK`]) | success, callback sent twice |
//! | `7003` ([`mpesa::AMOUNT_NEVER_ANSWERED`]) | never answered: the query keeps answering `500.001.1001` "The transaction is being processed", no callback |
//!
//! A `CustomerPayBillOnline` push whose PartyB is not the BusinessShortCode
//! ends with 2028. The STK query answers `ResultCode`/`ResponseCode` as
//! strings; the callback's `ResultCode` is a number. Descriptions:
//! [`mpesa::STK_RESULT_CODES`].
//!
//! ## M-Pesa B2C, by `Amount`
//! Same rule over [`mpesa::B2C_RESULT_CODES`]: `2001` `2040` `8006` give
//! themselves, `9001` `9002` `9011` `9021` give 1, 2, 11, 21; `7001` lost,
//! `7002` duplicate, `7003` no result ever; any other amount succeeds. An
//! `InitiatorName` other than the configured one always gets 2001.
//!
//! ## M-Pesa reversal, by state
//! `0` for a receipt the simulator issued (STK, C2B or B2C) not yet
//! reversed; `"R000001"` (a string) once reversed; `"R000002"` for an id it
//! never issued; `2001` for a wrong `Initiator`.
//!
//! ## M-Pesa C2B, by the merchant's answers
//! A simulated payment ([`RunningSimulator::simulate_c2b_payment`],
//! `POST /simulate/c2b`, or Daraja's own `/mpesa/c2b/v1/simulate`) calls
//! the registered ValidationURL, then, if it answered `ResultCode` `"0"`
//! (or could not answer and ResponseType is `Completed`), the
//! ConfirmationURL. Any other ResultCode (e.g. `C2B00012`) cancels it.
//!
//! ## MTN MoMo, by payer / payee `partyId` (MTN's sandbox numbers)
//! | partyId | Outcome |
//! |---|---|
//! | `46733123450` | FAILED, reason `INTERNAL_PROCESSING_ERROR` |
//! | `46733123451` | FAILED, reason `APPROVAL_REJECTED` (rejected) |
//! | `46733123452` | FAILED, reason `EXPIRED` (timeout) |
//! | `46733123453` | PENDING, then SUCCESSFUL after `ongoing_duration_ms` (default 30 s), then the callback |
//! | `46733123454` | PENDING for ever, no callback |
//! | `46733123455` | SUCCESSFUL, callback lost (simulator extension) |
//! | `46733123456` | SUCCESSFUL, callback sent twice (simulator extension) |
//! | any other | SUCCESSFUL, with `financialTransactionId` |
//!
//! ## Airtel Money, by the last four digits of `subscriber.msisdn`
//! | ending | Outcome |
//! |---|---|
//! | `0002` | `TF`, `DP00800001007` insufficient balance |
//! | `0004` | `TF`, `DP00800001008` refused by the customer |
//! | `0005` | `TIP` for ever, no callback |
//! | `0006` | `TF`, `DP00800001002` incorrect PIN |
//! | `0007` | `TF`, `DP00800001024` timed out |
//! | `0008` | `TA` ambiguous (`DP00800001000`), no callback |
//! | `0009` | `TS`, callback lost |
//! | `0010` | `TS`, callback sent twice |
//! | any other | `TS`, `DP00800001001` |
//!
//! ## Relworx, by the last four digits of `msisdn`
//! | ending | Outcome |
//! |---|---|
//! | `0002` | `failed` (insufficient funds) |
//! | `0004` | `failed` (declined by the customer) |
//! | `0005` | `pending` for ever, no webhook |
//! | `0009` | `success`, webhook lost |
//! | `0010` | `success`, webhook sent twice |
//! | any other | `success` |
//!
//! ## Paystack and the card simulators, by card number on the hosted page
//! The hosted page (`authorization_url`) is a form of the provider's test
//! cards ([`paystack::TEST_CARDS`]): `4084084084084081` succeeds,
//! `4084080000005408` is declined "Insufficient Funds", any other number
//! "Declined". The form's `simulate_webhook` field ([`WebhookTiming`])
//! sends the webhook before the redirect (default), after it, twice, or
//! never.
//!
//! Flutterwave's hosted page ([`flutterwave::TEST_CARDS`], Flutterwave's
//! documented numbers): `5531886652142950` and `4187427415564246` succeed,
//! `5258585922666506` fails "Insufficient funds", any other number
//! "Declined"; `charge.completed` follows either, timed the same way.
//!
//! Stripe decides by payment method ([`stripe::PAYMENT_METHODS`], Stripe's
//! test tokens or their card numbers): `pm_card_visa` succeeds,
//! `pm_card_chargeDeclined…` are declined (402 `card_error` with the
//! decline code), `pm_card_authenticationRequired` needs 3-D Secure on the
//! simulator's challenge page (complete or fail; `simulate_webhook` as
//! above).
//!
//! ## NOWPayments, by `price_amount` (or the sandbox's `case` field)
//! After `callback_delay_ms` the payment is `confirming` (IPN), after as
//! long again it ends (IPN); `actually_paid` is the whole `pay_amount`
//! unless said otherwise.
//! | price_amount | Outcome |
//! |---|---|
//! | `70.13` (or `7013`) | `partially_paid`, half the pay amount received |
//! | `70.14` | `expired`, nothing received (no `confirming`) |
//! | `70.15` | `confirming`, then `failed` |
//! | `70.17` | `finished`, every IPN lost: only the status tells |
//! | `70.18` | `waiting` for ever, no IPN |
//! | `70.19` | `finished`, IPN sent twice |
//! | any other | `finished` |
//!
//! The failing Airtel and Relworx endings (0002, 0004, 0005) mean the same
//! as in Malipo's own sandbox connector.

pub mod airtel;
mod clock;
mod config;
mod context;
pub mod flutterwave;
mod hosted;
mod ids;
mod journal;
mod json;
pub mod mpesa;
pub mod mtn_momo;
pub mod nowpayments;
pub mod paystack;
pub mod rates;
pub mod relworx;
pub mod stripe;
mod tokens;

pub use config::{
    AirtelConfig, CallbackMethod, DARAJA_SANDBOX_MSISDN, DARAJA_SANDBOX_PASSKEY,
    DARAJA_SANDBOX_SHORTCODE, FlutterwaveConfig, FlutterwaveWebhookHeaders, MomoReasonFormat,
    MpesaConfig, MtnMomoConfig, NowPaymentsConfig, PaystackConfig, RelworxConfig,
    RelworxSignatureEncoding, SimulatorConfig, StripeConfig,
};
pub use context::{CONTROL_PATH_PREFIX, SimulatorContext};
pub use hosted::{TestCard, WebhookTiming};
pub use journal::{CallbackDelivery, RecordedRequest};
pub use mpesa::{C2bCommand, C2bOutcome, C2bPayment, C2bValidation};

use axum::Router;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long [`RunningSimulator::shutdown`] waits for open connections.
const SHUTDOWN_GRACE_MS: u64 = 2_000;
/// How often [`RunningSimulator::wait_for_callbacks`] looks again.
const WAIT_POLL_INTERVAL_MS: u64 = 5;

/// What can go wrong starting or driving a simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the callback HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("{operation} needs the {needed} simulator, this one is {actual}")]
    WrongProvider {
        operation: &'static str,
        needed: &'static str,
        actual: Provider,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("waited {waited_ms} ms for {expected} callback attempts, {seen} seen")]
    CallbackTimeout {
        expected: usize,
        seen: usize,
        waited_ms: u64,
    },
}

/// Which provider a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Mpesa,
    MtnMomo,
    Airtel,
    Relworx,
    Paystack,
    Flutterwave,
    Stripe,
    NowPayments,
    /// An exchange-rate JSON endpoint (not a payment provider).
    Rates,
}

impl Provider {
    pub const ALL: [Provider; 9] = [
        Provider::Mpesa,
        Provider::MtnMomo,
        Provider::Airtel,
        Provider::Relworx,
        Provider::Paystack,
        Provider::Flutterwave,
        Provider::Stripe,
        Provider::NowPayments,
        Provider::Rates,
    ];

    /// The name used on the command line (`malipo simulate mpesa`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Mpesa => "mpesa",
            Provider::MtnMomo => "mtn-momo",
            Provider::Airtel => "airtel",
            Provider::Relworx => "relworx",
            Provider::Paystack => "paystack",
            Provider::Flutterwave => "flutterwave",
            Provider::Stripe => "stripe",
            Provider::NowPayments => "nowpayments",
            Provider::Rates => "rates",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = Error;

    /// `mpesa` (or `daraja`, `m-pesa`), `mtn-momo` (or `mtn_momo`, `momo`,
    /// `mtn`), `airtel`, `relworx`, `paystack`, `stripe`, `nowpayments`;
    /// case-insensitive.
    fn from_str(text: &str) -> Result<Provider, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mpesa" | "m-pesa" | "daraja" => Ok(Provider::Mpesa),
            "mtn-momo" | "mtn_momo" | "momo" | "mtn" => Ok(Provider::MtnMomo),
            "airtel" | "airtel-money" => Ok(Provider::Airtel),
            "relworx" => Ok(Provider::Relworx),
            "paystack" => Ok(Provider::Paystack),
            "flutterwave" | "rave" => Ok(Provider::Flutterwave),
            "stripe" => Ok(Provider::Stripe),
            "nowpayments" => Ok(Provider::NowPayments),
            "rates" => Ok(Provider::Rates),
            other => Err(Error::InvalidRequest(format!(
                "unknown provider {other:?}: expected mpesa, mtn-momo, airtel, relworx, paystack, flutterwave, stripe, nowpayments or rates"
            ))),
        }
    }
}

/// One provider's state, for the operations only it offers.
#[derive(Debug, Clone)]
enum ProviderState {
    Mpesa(mpesa::MpesaState),
    MtnMomo(mtn_momo::MtnMomoState),
    Airtel(airtel::AirtelState),
    Relworx(relworx::RelworxState),
    Paystack(paystack::PaystackState),
    Flutterwave(flutterwave::FlutterwaveState),
    Stripe(stripe::StripeState),
    NowPayments(nowpayments::NowPaymentsState),
    Rates(rates::RatesState),
}

impl ProviderState {
    fn new(provider: Provider, context: SimulatorContext) -> ProviderState {
        match provider {
            Provider::Mpesa => ProviderState::Mpesa(mpesa::MpesaState::new(context)),
            Provider::MtnMomo => ProviderState::MtnMomo(mtn_momo::MtnMomoState::new(context)),
            Provider::Airtel => ProviderState::Airtel(airtel::AirtelState::new(context)),
            Provider::Relworx => ProviderState::Relworx(relworx::RelworxState::new(context)),
            Provider::Paystack => ProviderState::Paystack(paystack::PaystackState::new(context)),
            Provider::Flutterwave => {
                ProviderState::Flutterwave(flutterwave::FlutterwaveState::new(context))
            }
            Provider::Stripe => ProviderState::Stripe(stripe::StripeState::new(context)),
            Provider::NowPayments => {
                ProviderState::NowPayments(nowpayments::NowPaymentsState::new(context))
            }
            Provider::Rates => ProviderState::Rates(rates::RatesState::new(context)),
        }
    }

    fn router(&self) -> Router {
        match self {
            ProviderState::Mpesa(state) => mpesa::router(state.clone()),
            ProviderState::MtnMomo(state) => mtn_momo::router(state.clone()),
            ProviderState::Airtel(state) => airtel::router(state.clone()),
            ProviderState::Relworx(state) => relworx::router(state.clone()),
            ProviderState::Paystack(state) => paystack::router(state.clone()),
            ProviderState::Flutterwave(state) => flutterwave::router(state.clone()),
            ProviderState::Stripe(state) => stripe::router(state.clone()),
            ProviderState::NowPayments(state) => nowpayments::router(state.clone()),
            ProviderState::Rates(state) => rates::router(state.clone()),
        }
    }
}

/// The full app of one simulator (provider routes plus request journaling)
/// over `context`, for embedding in another server; [`spawn`] serves it.
pub fn app(provider: Provider, context: SimulatorContext) -> Router {
    app_with_state(&ProviderState::new(provider, context.clone()), context)
}

fn app_with_state(state: &ProviderState, context: SimulatorContext) -> Router {
    state.router().layer(axum::middleware::from_fn_with_state(
        context,
        context::record_requests,
    ))
}

/// Starts a simulator of `provider` on `config.bind_address` and returns
/// once it accepts connections.
pub async fn spawn(provider: Provider, config: SimulatorConfig) -> Result<RunningSimulator, Error> {
    let address = config.bind_address;
    let context = SimulatorContext::new(config)?;
    let state = ProviderState::new(provider, context.clone());
    let app = app_with_state(&state, context.clone());
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { address, source })?;
    let stopped = context.stopped();
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(%error, "simulator server stopped with an error");
        }
    });
    tracing::info!(%provider, %local_addr, "simulator listening");
    Ok(RunningSimulator {
        provider,
        local_addr,
        base_url: format!("http://{local_addr}"),
        context,
        state,
        server: Some(server),
    })
}

/// A simulator serving in the background. Dropping it stops it too
/// (without waiting); [`RunningSimulator::shutdown`] waits.
#[derive(Debug)]
pub struct RunningSimulator {
    provider: Provider,
    local_addr: SocketAddr,
    base_url: String,
    context: SimulatorContext,
    state: ProviderState,
    server: Option<JoinHandle<()>>,
}

impl RunningSimulator {
    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash: the value to
    /// use in place of the provider's host (for Relworx, `<base>/api` works
    /// as well as `<base>`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn config(&self) -> &SimulatorConfig {
        self.context.config()
    }

    /// Every provider request received so far, oldest first (bounded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.context.requests()
    }

    /// Every callback attempt so far, oldest first (bounded), with the
    /// receiver's status or the error.
    pub fn callbacks_sent(&self) -> Vec<CallbackDelivery> {
        self.context.callbacks_sent()
    }

    /// Waits until at least `count` callback attempts were made, at most
    /// `timeout`; returns them all.
    pub async fn wait_for_callbacks(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<CallbackDelivery>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let callbacks = self.callbacks_sent();
            if callbacks.len() >= count {
                return Ok(callbacks);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CallbackTimeout {
                    expected: count,
                    seen: callbacks.len(),
                    waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(Duration::from_millis(WAIT_POLL_INTERVAL_MS)).await;
        }
    }

    /// M-Pesa only: a customer pays a shortcode now (ValidationURL, then
    /// ConfirmationURL, as registered); returns once both calls are done.
    pub async fn simulate_c2b_payment(&self, payment: C2bPayment) -> Result<C2bOutcome, Error> {
        match &self.state {
            ProviderState::Mpesa(state) => state.simulate_c2b_payment(payment).await,
            _ => Err(Error::WrongProvider {
                operation: "simulate_c2b_payment",
                needed: "mpesa",
                actual: self.provider,
            }),
        }
    }

    /// Airtel, Relworx, Paystack, Flutterwave and Stripe only: sets the callback (webhook) URL
    /// configured on the simulated account, since their requests carry none.
    pub fn set_callback_url(&self, url: &str) -> Result<(), Error> {
        match &self.state {
            ProviderState::Airtel(state) => state.set_callback_url(url),
            ProviderState::Relworx(state) => state.set_webhook_url(url),
            ProviderState::Paystack(state) => state.set_webhook_url(url),
            ProviderState::Flutterwave(state) => state.set_webhook_url(url),
            ProviderState::Stripe(state) => state.set_webhook_url(url),
            ProviderState::Mpesa(_)
            | ProviderState::MtnMomo(_)
            | ProviderState::NowPayments(_)
            | ProviderState::Rates(_) => Err(Error::WrongProvider {
                operation: "set_callback_url",
                needed: "airtel, relworx, paystack, flutterwave or stripe",
                actual: self.provider,
            }),
        }
    }

    /// Rates simulator: replaces the rates (units per one USD, decimal
    /// strings; `None` keeps them) and the `timestamp` it answers (`None`:
    /// the time of each request; an old one makes the rates stale).
    pub fn set_rates(
        &self,
        rates: Option<&[(&str, &str)]>,
        timestamp: Option<i64>,
    ) -> Result<(), Error> {
        let ProviderState::Rates(state) = &self.state else {
            return Err(Error::WrongProvider {
                operation: "set_rates",
                needed: "rates",
                actual: self.provider,
            });
        };
        let rates: Option<std::collections::BTreeMap<String, String>> = rates.map(|rates| {
            rates
                .iter()
                .map(|(code, rate)| ((*code).to_owned(), (*rate).to_owned()))
                .collect()
        });
        state
            .set(rates.as_ref(), timestamp)
            .map_err(Error::InvalidRequest)
    }

    /// Stops pending outcomes and callbacks, stops accepting connections
    /// and waits (briefly) for open ones to finish.
    pub async fn shutdown(mut self) {
        self.context.stop();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.context.stop();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
