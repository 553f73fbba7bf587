//! Malipo's use cases: everything a merchant or operator can do, as methods
//! on [`Gateway`]. Each state change is one store transaction holding the
//! object's new state, its ledger transfers, its events and its idempotency
//! record.
//!
//! - [`auth`]: API keys (shown once, stored as keyed hashes, scoped, per
//!   mode) and operator tokens.
//! - [`merchants`]: onboarding merchants and their keys.
//! - [`payments`]: create, confirm, cancel, read, list; applying connector
//!   outcomes; the worker's polling and expiry steps.
//! - [`refunds`]: partial and full refunds that can never exceed the payment.
//! - [`payouts`]: money from the available balance to mobile money wallets
//!   (M-Pesa B2C, MTN MoMo Disbursement, Relworx send-payment).
//! - [`balances`]: balances and balance transactions from the ledger.
//! - [`idempotency`]: the Idempotency-Key protocol.
//! - [`inbound`]: provider callbacks at `/v1/hooks/{provider}/{account}`:
//!   connector accounts, the ordered checks, replay protection, the audit log.
//! - [`c2b`]: M-Pesa C2B (paybill and till payments customers start):
//!   URL registration, validation by the merchant's rule, confirmation.
//! - [`secrets`]: provider credentials encrypted at rest (AES-256-GCM).
//! - [`webhooks`]: events, webhook endpoints, signed delivery with retries.
//! - [`ledger_entries`]: which ledger accounts and transfers each event of a
//!   payment's life produces.
//! - [`customers`]: a merchant's end users and their ledger balances per
//!   asset.
//! - [`trading`]: the trading venue: pairs, orders settled through the
//!   ledger, the durable command log each book is rebuilt from, and the
//!   consistency check.
//! - [`rates`]: exchange rate sources (static table, HTTP JSON; a trait the
//!   exchange's order books can implement) with freshness limits.
//! - [`conversions`]: currencies, rates, locked conversion quotes and the
//!   settlement of conversion payments.
//! - [`ownership`]: which node runs each book's commands (leases), and
//!   where the others forward them.
//! - [`feeds`]: the live feeds (book, trades, ticker, prices, orders from
//!   the command log; payments and trades from the event outbox), resumable
//!   from a sequence, queued per socket without waiting.
//! - [`customer_tokens`]: short-lived credentials of one customer for the
//!   live feeds.
//! - [`vouchers`]: voucher batches (codes shown once, stored hashed),
//!   validation, redemption as `method: "voucher"`, expiry.
//!
//! Architecture invariant: no SQL here (that is `malipo-store`) and no HTTP
//! status codes (that is `malipo-http`).

pub mod auth;
pub mod balances;
pub mod bank;
pub mod c2b;
mod cards;
pub mod conversions;
pub mod customer_tokens;
pub mod customers;
pub mod desk;
mod error;
pub mod feeds;
mod group_commit;
pub mod idempotency;
pub mod inbound;
pub mod ledger_entries;
pub mod merchants;
pub mod ownership;
pub mod payments;
pub mod payouts;
pub mod pools;
pub mod rates;
pub mod refunds;
pub mod retention;
pub mod secrets;
pub mod trading;
pub mod vouchers;
pub mod webhooks;

pub use error::{ApiError, ErrorKind, GatewayError, GatewayResult};

use malipo_connectors::Connector;
use malipo_connectors::airtel::AirtelConnector;
use malipo_connectors::flutterwave::FlutterwaveConnector;
use malipo_connectors::mtn_momo::MtnMomoConnector;
use malipo_connectors::paystack::PaystackConnector;
use malipo_connectors::relworx::{RelworxConnector, ViaRelworx};
use malipo_connectors::sandbox::SandboxConnector;
use malipo_connectors::stripe::StripeConnector;
use malipo_core::fee::FeeSchedule;
use malipo_core::payment::PaymentMethod;
use malipo_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Settings of the use cases, validated by the binary at start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The fee every merchant pays unless its own schedule says otherwise.
    pub default_fee: FeeSchedule,
    /// Per-method defaults that override `default_fee`.
    pub default_fees_by_method: BTreeMap<String, FeeSchedule>,
    /// How long an Idempotency-Key stays locked by a request that is still
    /// running; after that a retry may take it over (the holder died).
    pub idempotency_lock_ms: i64,
    /// How long finished Idempotency-Key records are kept (at least 24 h).
    pub idempotency_retention_hours: u32,
    /// How long sandbox payments may stay incomplete.
    pub sandbox_payment_expiry_seconds: u64,
    /// When a payment was handed to a connector but the answer was not
    /// recorded (the process died), ask the provider after this long.
    pub recovery_poll_after_ms: i64,
    /// Webhook delivery settings.
    pub webhooks: WebhookConfig,
    /// Provider callback definitions added to (or replacing) the built-in
    /// ones: a provider whose scheme Malipo knows is configuration, not code.
    pub extra_providers: Vec<malipo_hooks::ProviderDefinition>,
    /// The key that encrypts provider credentials at rest (32 bytes,
    /// base64); `None` keeps a generated one in the database (development).
    pub master_key: Option<String>,
    /// How long a bank transfer payment waits for its deposit before the
    /// worker expires it.
    pub bank_transfer_expiry_seconds: u64,
    /// Operator policy: the operator confirming a bank deposit must not be
    /// the actor who configured the receiving bank account.
    pub bank_four_eyes: bool,
    /// A book's engine is snapshotted every this many commands, bounding
    /// the replay after a restart.
    pub trading_snapshot_every_commands: u64,
    /// Retention of each book's command log: how many commands before the
    /// newest snapshot are kept for feed resumes ([`retention`]).
    pub trading_log_retain_commands: u64,
    /// Retention of the event outbox: finished events older than this are
    /// deleted ([`retention`]).
    pub events_retain_days: u32,
    /// Where exchange rates come from, in order of preference.
    pub rate_sources: Vec<rates::RateSourceConfig>,
    /// Taken off the mid rate of every conversion quote (hundredths of a
    /// percent).
    pub conversion_spread_basis_points: u32,
    /// How long a conversion quote can be paid.
    pub conversion_quote_lifetime_seconds: u64,
    /// The buy/sell desk's fees, spread and quote lifetime.
    pub desk: desk::DeskConfig,
    /// Limits of the live feeds (`GET /v1/ws`, `GET /v1/trading/stream`).
    pub feeds: feeds::FeedConfig,
    /// This node's id and its book leases (several nodes).
    pub node: ownership::NodeConfig,
}

/// How merchant webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Pause before each retry after a failed attempt; the delivery is
    /// marked failed when the list runs out. Each delay gets ±10% jitter.
    pub retry_delays_ms: Vec<u64>,
    /// One attempt's time limit (connect + answer).
    pub attempt_timeout_ms: u64,
    /// An endpoint failing without a single success for this long is
    /// disabled and the operator alerted.
    pub endpoint_disable_after_seconds: i64,
    /// How long after a roll the previous secret may keep signing, at most.
    pub secret_overlap_seconds_max: i64,
    /// Bytes of a receiver's answer kept with the attempt.
    pub response_excerpt_bytes_max: usize,
}

/// The default retry schedule: 12 attempts over about three days
/// (1 min, 5 min, 30 min, 2 h, 5 h, 10 h ×3, 12 h ×3).
pub const WEBHOOK_RETRY_DELAYS_SECONDS: [u64; 11] = [
    60, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 36_000, 43_200, 43_200, 43_200,
];

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry_delays_ms: WEBHOOK_RETRY_DELAYS_SECONDS
                .iter()
                .map(|seconds| seconds * 1000)
                .collect(),
            attempt_timeout_ms: 10_000,
            endpoint_disable_after_seconds: 3 * 24 * 3600,
            secret_overlap_seconds_max: 7 * 24 * 3600,
            response_excerpt_bytes_max: 1024,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            default_fee: FeeSchedule {
                basis_points: 290,
                fixed: 0,
            },
            default_fees_by_method: BTreeMap::new(),
            idempotency_lock_ms: 60_000,
            idempotency_retention_hours: 24,
            sandbox_payment_expiry_seconds: 600,
            recovery_poll_after_ms: 5_000,
            webhooks: WebhookConfig::default(),
            extra_providers: Vec::new(),
            master_key: None,
            bank_transfer_expiry_seconds: 72 * 3600,
            bank_four_eyes: true,
            trading_snapshot_every_commands: trading::SNAPSHOT_EVERY_COMMANDS_DEFAULT,
            trading_log_retain_commands: retention::TRADING_LOG_RETAIN_COMMANDS_DEFAULT,
            events_retain_days: retention::EVENTS_RETAIN_DAYS_DEFAULT,
            rate_sources: Vec::new(),
            conversion_spread_basis_points: 100,
            conversion_quote_lifetime_seconds: 60,
            desk: desk::DeskConfig::default(),
            feeds: feeds::FeedConfig::default(),
            node: ownership::NodeConfig::default(),
        }
    }
}

/// The registered connectors, by the method they serve, and the carriers:
/// connectors that serve no method themselves but carry other methods'
/// payments (Relworx) and receive callbacks.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    by_method: BTreeMap<&'static str, Arc<dyn Connector>>,
    carriers: Vec<Arc<dyn Connector>>,
}

impl Connectors {
    pub fn register(&mut self, method: PaymentMethod, connector: Arc<dyn Connector>) {
        self.by_method.insert(method.as_str(), connector);
    }

    /// A connector found by name only (to read its callbacks).
    pub fn register_carrier(&mut self, connector: Arc<dyn Connector>) {
        self.carriers.push(connector);
    }

    pub fn for_method(&self, method: PaymentMethod) -> Option<&Arc<dyn Connector>> {
        self.by_method.get(method.as_str())
    }

    /// The connector with this name (to resume a payment it carries).
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.by_method
            .values()
            .chain(&self.carriers)
            .find(|connector| connector.name() == name)
    }
}

/// The gateway: cheap to clone, shared by the HTTP layer and the worker.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    connectors: Connectors,
    config: GatewayConfig,
    key_hasher: auth::KeyHasher,
    /// Encrypts provider credentials at rest.
    secret_box: secrets::SecretBox,
    /// For webhook deliveries: no redirects, bounded time.
    webhook_client: reqwest::Client,
    /// The base URL providers reach this gateway at (callback URLs), set
    /// once the server knows its address.
    public_url: std::sync::OnceLock<String>,
    /// How provider callbacks are authenticated, by provider name.
    providers: malipo_hooks::ProviderRegistry,
    /// Per (provider, account) callback counts in the current minute.
    inbound_rate: inbound::RateWindows,
    /// Each merchant's sandbox connector account per mode, once created.
    sandbox_accounts:
        std::sync::Mutex<BTreeMap<(String, bool), malipo_store::ConnectorAccountRecord>>,
    /// The writer new payments queue on (group commit).
    payment_writes: group_commit::GroupCommit,
    /// Per API key, invalid voucher codes tried this minute.
    voucher_attempts: vouchers::AttemptWindows,
    /// The order books this node holds in memory.
    venue: trading::Venue,
    /// The configured exchange rate sources.
    rate_book: rates::RateBook,
    /// This node's live feeds of the books somebody subscribed to.
    feeds: feeds::Feeds,
    /// This node's id, URL and book leases.
    node: ownership::Node,
}

impl Gateway {
    /// Builds the gateway over a migrated store, with every connector
    /// registered (sandbox, M-Pesa, MTN MoMo, Airtel Money, Relworx,
    /// Paystack, Flutterwave and Stripe for cards, NOWPayments for crypto);
    /// loads (or on first start creates) the key-hashing secret.
    pub async fn new(store: Store, config: GatewayConfig) -> GatewayResult<Gateway> {
        install_crypto_provider();
        let mut connectors = Connectors::default();
        connectors.register(
            PaymentMethod::Mpesa,
            Arc::new(malipo_connectors::mpesa::MpesaConnector::new()),
        );
        // MTN MoMo and Airtel Money go direct, or through the merchant's
        // Relworx account when it has one and no direct account.
        let relworx = Arc::new(RelworxConnector::new());
        connectors.register(
            PaymentMethod::MtnMomo,
            Arc::new(ViaRelworx::new(
                Arc::new(MtnMomoConnector::new()),
                relworx.clone(),
            )),
        );
        connectors.register(
            PaymentMethod::AirtelMoney,
            Arc::new(ViaRelworx::new(
                Arc::new(AirtelConnector::new()),
                relworx.clone(),
            )),
        );
        connectors.register_carrier(relworx);
        // Cards: the merchant's card account picks the provider (cards.rs).
        connectors.register_carrier(Arc::new(PaystackConnector::new()));
        connectors.register_carrier(Arc::new(FlutterwaveConnector::new()));
        connectors.register_carrier(Arc::new(StripeConnector::new()));
        // Crypto: NOWPayments (a deposit address, signed IPNs).
        connectors.register(
            PaymentMethod::Crypto,
            Arc::new(malipo_connectors::nowpayments::NowPaymentsConnector::new()),
        );
        connectors.register(
            PaymentMethod::Sandbox,
            Arc::new(SandboxConnector::new(config.sandbox_payment_expiry_seconds)),
        );
        Gateway::with_connectors(store, config, connectors).await
    }

    pub async fn with_connectors(
        store: Store,
        config: GatewayConfig,
        connectors: Connectors,
    ) -> GatewayResult<Gateway> {
        let mut providers = malipo_hooks::ProviderRegistry::builtin();
        for definition in &config.extra_providers {
            providers.insert(definition.clone()).map_err(|error| {
                GatewayError::internal(ApiError::invalid(
                    "extra_providers",
                    format!("provider `{}`: {error}", definition.name),
                ))
            })?;
        }
        let key_hasher = auth::KeyHasher::load_or_create(&store).await?;
        let secret_box = secrets::SecretBox::load(&store, config.master_key.as_deref()).await?;
        install_crypto_provider();
        let webhook_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_millis(
                config.webhooks.attempt_timeout_ms,
            ))
            .user_agent(concat!(
                "Malipo/",
                env!("CARGO_PKG_VERSION"),
                " (+webhooks)"
            ))
            .build()
            .map_err(GatewayError::internal)?;
        let rates_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Malipo/", env!("CARGO_PKG_VERSION"), " (+rates)"))
            .build()
            .map_err(GatewayError::internal)?;
        let mut rate_sources = Vec::with_capacity(config.rate_sources.len());
        for source in &config.rate_sources {
            rate_sources.push(
                source
                    .build(&rates_client, now_seconds())
                    .map_err(|problem| {
                        GatewayError::internal(ApiError::invalid(
                            "rate_sources",
                            format!("rate source `{}`: {problem}", source.name),
                        ))
                    })?,
            );
        }
        let payment_writes = group_commit::GroupCommit::start(store.clone());
        Ok(Gateway {
            inner: Arc::new(Inner {
                store,
                connectors,
                key_hasher,
                secret_box,
                webhook_client,
                public_url: std::sync::OnceLock::new(),
                providers,
                inbound_rate: inbound::RateWindows::default(),
                sandbox_accounts: std::sync::Mutex::new(BTreeMap::new()),
                payment_writes,
                voucher_attempts: vouchers::AttemptWindows::default(),
                venue: trading::Venue::default(),
                rate_book: rates::RateBook::new(rate_sources),
                feeds: feeds::Feeds::default(),
                node: ownership::Node::new(&config.node.id),
                config,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    pub(crate) fn payment_writes(&self) -> &group_commit::GroupCommit {
        &self.inner.payment_writes
    }

    pub(crate) fn node(&self) -> &ownership::Node {
        &self.inner.node
    }

    pub(crate) fn venue(&self) -> &trading::Venue {
        &self.inner.venue
    }

    pub(crate) fn rate_book(&self) -> &rates::RateBook {
        &self.inner.rate_book
    }

    pub(crate) fn connectors(&self) -> &Connectors {
        &self.inner.connectors
    }

    pub(crate) fn key_hasher(&self) -> &auth::KeyHasher {
        &self.inner.key_hasher
    }

    pub(crate) fn secret_box(&self) -> &secrets::SecretBox {
        &self.inner.secret_box
    }

    pub(crate) fn webhook_client(&self) -> &reqwest::Client {
        &self.inner.webhook_client
    }

    /// Tells the gateway the base URL providers reach it at (e.g.
    /// `https://pay.example.com`); callback URLs are built from it. Only the
    /// first call counts.
    pub fn set_public_url(&self, url: &str) {
        let _ = self
            .inner
            .public_url
            .set(url.trim_end_matches('/').to_owned());
    }

    pub fn public_url(&self) -> &str {
        self.inner
            .public_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8080")
    }

    pub fn providers(&self) -> &malipo_hooks::ProviderRegistry {
        &self.inner.providers
    }
}

/// Makes rustls use the `ring` provider (the only one compiled in; the
/// default would pull in C code). Idempotent; every HTTP client Malipo
/// builds needs it first.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is the goal.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now, in Unix seconds.
pub fn now_seconds() -> i64 {
    now_ms() / 1000
}
