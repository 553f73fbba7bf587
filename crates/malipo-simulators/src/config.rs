//! What a simulator accepts and how it behaves: credentials, delays, limits
//! and the quirks that differ between provider environments.
//!
//! Every field has a documented default (see each `Default` impl). The
//! credentials are test values that only this simulator knows; Daraja's
//! shortcode and passkey are Safaricom's public sandbox values, so a client
//! configured for the real sandbox works against the simulator by changing
//! only its base URL and consumer key/secret.

use std::net::{Ipv4Addr, SocketAddr};

/// Safaricom's public sandbox Lipa Na M-Pesa Online shortcode.
pub const DARAJA_SANDBOX_SHORTCODE: &str = "174379";
/// Safaricom's public sandbox passkey for [`DARAJA_SANDBOX_SHORTCODE`].
pub const DARAJA_SANDBOX_PASSKEY: &str =
    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
/// Safaricom's public sandbox test MSISDN.
pub const DARAJA_SANDBOX_MSISDN: &str = "254708374149";

/// How a whole simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where to listen. Default `127.0.0.1:0` (a free port chosen by the OS).
    pub bind_address: SocketAddr,
    /// How long after accepting a request the simulated customer "answers"
    /// and the outcome (and its callback) happens. Default 1 000 ms.
    pub callback_delay_ms: u64,
    /// How many times one callback is tried before giving up (at least 1).
    /// Default 3.
    pub callback_attempts_max: u32,
    /// Wait before the second attempt; doubled for each later one.
    /// Default 200 ms.
    pub callback_retry_backoff_ms: u64,
    /// Time limit for one callback attempt. Default 5 000 ms.
    pub callback_timeout_ms: u64,
    /// How many received requests and callback attempts the inspection
    /// journal keeps (oldest dropped first). Default 1 000 each.
    pub journal_entries_max: usize,
    /// Largest request body accepted; larger gets HTTP 413. Default 64 KiB.
    pub request_body_bytes_max: usize,
    /// How many transactions one simulator keeps in memory; past that new
    /// requests are refused as the provider refuses when overloaded.
    /// Default 100 000.
    pub transactions_max: usize,
    pub mpesa: MpesaConfig,
    pub mtn_momo: MtnMomoConfig,
    pub airtel: AirtelConfig,
    pub relworx: RelworxConfig,
    pub paystack: PaystackConfig,
    pub flutterwave: FlutterwaveConfig,
    pub stripe: StripeConfig,
    pub nowpayments: NowPaymentsConfig,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            bind_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            callback_delay_ms: 1_000,
            callback_attempts_max: 3,
            callback_retry_backoff_ms: 200,
            callback_timeout_ms: 5_000,
            journal_entries_max: 1_000,
            request_body_bytes_max: 64 * 1024,
            transactions_max: 100_000,
            mpesa: MpesaConfig::default(),
            mtn_momo: MtnMomoConfig::default(),
            airtel: AirtelConfig::default(),
            relworx: RelworxConfig::default(),
            paystack: PaystackConfig::default(),
            flutterwave: FlutterwaveConfig::default(),
            stripe: StripeConfig::default(),
            nowpayments: NowPaymentsConfig::default(),
        }
    }
}

impl SimulatorConfig {
    /// The defaults, listening on `127.0.0.1:port` (`0` = any free port).
    pub fn on_port(port: u16) -> SimulatorConfig {
        SimulatorConfig {
            bind_address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            ..SimulatorConfig::default()
        }
    }

    /// The defaults with a short callback delay, for tests.
    pub fn for_tests(callback_delay_ms: u64) -> SimulatorConfig {
        SimulatorConfig {
            callback_delay_ms,
            callback_retry_backoff_ms: 20,
            callback_timeout_ms: 2_000,
            ..SimulatorConfig::default()
        }
    }
}

/// Safaricom M-Pesa Daraja.
#[derive(Debug, Clone)]
pub struct MpesaConfig {
    /// Consumer key of the app (OAuth Basic user). Default
    /// `malipo-simulator-consumer-key`.
    pub consumer_key: String,
    /// Consumer secret (OAuth Basic password). Default
    /// `malipo-simulator-consumer-secret`.
    pub consumer_secret: String,
    /// The Lipa Na M-Pesa Online shortcode STK push accepts. Default
    /// [`DARAJA_SANDBOX_SHORTCODE`].
    pub stk_shortcode: String,
    /// Its passkey. Default [`DARAJA_SANDBOX_PASSKEY`].
    pub stk_passkey: String,
    /// The API operator (Initiator / InitiatorName) B2C and reversals must
    /// name; any other gets result 2001 like Daraja. Default `testapi`.
    pub initiator_name: String,
    /// Token life; `expires_in` reports it. Default 3 599 s.
    pub token_lifetime_seconds: u64,
    /// Send `expires_in` as the string `"3599"` (older live responses) rather
    /// than the number `3599` (current docs). Default `true`.
    pub expires_in_as_string: bool,
    /// Whether a new OAuth token revokes the previous ones (Daraja's FAQ says
    /// so). Default `false`, because several clients of one app (a test
    /// suite's gateway and worker) would otherwise evict each other.
    pub new_token_revokes_previous: bool,
    /// HTTP status for `404.001.03` Invalid Access Token and `404.001.04`.
    /// Daraja documents 404; live traffic has shown 401. Default 404.
    pub invalid_token_http_status: u16,
    /// Whether registering C2B URLs twice for one shortcode is refused with
    /// `500.003.1001` "Urls are already registered" (production). Default
    /// `false` (the sandbox overwrites).
    pub c2b_urls_register_once: bool,
    /// Whether the shortcode has External Validation: the ValidationURL is
    /// called before the ConfirmationURL. Default `true`.
    pub c2b_external_validation: bool,
    /// How long Daraja waits for the ValidationURL before applying the
    /// registered ResponseType. Default 2 000 ms.
    pub c2b_validation_timeout_ms: u64,
    /// Names Daraja puts in C2B notifications. Default `John` / `Doe`.
    pub customer_first_name: String,
    pub customer_last_name: String,
}

impl Default for MpesaConfig {
    fn default() -> Self {
        MpesaConfig {
            consumer_key: "malipo-simulator-consumer-key".into(),
            consumer_secret: "malipo-simulator-consumer-secret".into(),
            stk_shortcode: DARAJA_SANDBOX_SHORTCODE.into(),
            stk_passkey: DARAJA_SANDBOX_PASSKEY.into(),
            initiator_name: "testapi".into(),
            token_lifetime_seconds: 3_599,
            expires_in_as_string: true,
            new_token_revokes_previous: false,
            invalid_token_http_status: 404,
            c2b_urls_register_once: false,
            c2b_external_validation: true,
            c2b_validation_timeout_ms: 2_000,
            customer_first_name: "John".into(),
            customer_last_name: "Doe".into(),
        }
    }
}

/// HTTP method of MTN MoMo callbacks (MTN says accept both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMethod {
    Put,
    Post,
}

/// How MTN MoMo writes `reason` on FAILED transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MomoReasonFormat {
    /// `"reason": "APPROVAL_REJECTED"` (current production).
    Text,
    /// `"reason": {"code": "APPROVAL_REJECTED", "message": "..."}` (old swagger).
    Object,
}

/// MTN MoMo Open API (Collection and Disbursement).
#[derive(Debug, Clone)]
pub struct MtnMomoConfig {
    /// API user id (a UUID) accepted by the token endpoints. Default
    /// `0b7f7bb5-5c3e-4d4c-9a5c-4e2a6d1f0a11`.
    pub api_user: String,
    /// Its API key. Default `5b2a4f0c9d8e4b7fa1c3d5e7f9a0b2c4`.
    pub api_key: String,
    /// `Ocp-Apim-Subscription-Key` of the Collection product. Default
    /// `malipo-collection-subscription-key`.
    pub collection_subscription_key: String,
    /// `Ocp-Apim-Subscription-Key` of the Disbursement product. Default
    /// `malipo-disbursement-subscription-key`.
    pub disbursement_subscription_key: String,
    /// `X-Target-Environment` accepted. Default `sandbox`.
    pub target_environment: String,
    /// The only currency accepted (the sandbox takes only EUR). Default `EUR`.
    pub currency: String,
    /// Host callbacks must point at for the configured API user, like the
    /// user's `providerCallbackHost`; `None` accepts any. Default `None`.
    pub provider_callback_host: Option<String>,
    /// Token life. Default 3 600 s.
    pub token_lifetime_seconds: u64,
    /// How long the "ongoing" test number stays PENDING. Default 30 000 ms.
    pub ongoing_duration_ms: u64,
    /// Method of callbacks. Default PUT (what the sandbox historically used).
    pub callback_method: CallbackMethod,
    /// Shape of `reason`. Default [`MomoReasonFormat::Text`].
    pub reason_format: MomoReasonFormat,
    /// `availableBalance` the balance endpoints report. Default `"1000000"`.
    pub available_balance: String,
}

impl Default for MtnMomoConfig {
    fn default() -> Self {
        MtnMomoConfig {
            api_user: "0b7f7bb5-5c3e-4d4c-9a5c-4e2a6d1f0a11".into(),
            api_key: "5b2a4f0c9d8e4b7fa1c3d5e7f9a0b2c4".into(),
            collection_subscription_key: "malipo-collection-subscription-key".into(),
            disbursement_subscription_key: "malipo-disbursement-subscription-key".into(),
            target_environment: "sandbox".into(),
            currency: "EUR".into(),
            provider_callback_host: None,
            token_lifetime_seconds: 3_600,
            ongoing_duration_ms: 30_000,
            callback_method: CallbackMethod::Put,
            reason_format: MomoReasonFormat::Text,
            available_balance: "1000000".into(),
        }
    }
}

/// Airtel Money Open API.
#[derive(Debug, Clone)]
pub struct AirtelConfig {
    /// OAuth client id. Default `malipo-airtel-client-id`.
    pub client_id: String,
    /// OAuth client secret. Default `malipo-airtel-client-secret`.
    pub client_secret: String,
    /// Token life, reported as the string `expires_in`. Default 180 s.
    pub token_lifetime_seconds: u64,
    /// The callback URL configured on the Airtel app (Airtel takes none per
    /// request). `None` = no callbacks until one is set. Default `None`.
    pub callback_url: Option<String>,
    /// With "callback authentication" enabled Airtel adds a top-level
    /// `hash`; see [`crate::airtel`] for the (unconfirmed) algorithm.
    /// Default `None` (disabled).
    pub callback_hash_key: Option<String>,
    /// Name shown in callback messages ("Paid UGX 5,000 to ..."). Default
    /// `MALIPO SIMULATOR`.
    pub merchant_name: String,
}

impl Default for AirtelConfig {
    fn default() -> Self {
        AirtelConfig {
            client_id: "malipo-airtel-client-id".into(),
            client_secret: "malipo-airtel-client-secret".into(),
            token_lifetime_seconds: 180,
            callback_url: None,
            callback_hash_key: None,
            merchant_name: "MALIPO SIMULATOR".into(),
        }
    }
}

/// How the `v=` part of `Relworx-Signature` is encoded (the docs disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelworxSignatureEncoding {
    /// Lowercase hex of HMAC-SHA256 (what the docs' text and PHP sample say).
    Hex,
    /// Standard base64 of HMAC-SHA256 (what the docs' sample header looks like).
    Base64,
}

/// Relworx.
#[derive(Debug, Clone)]
pub struct RelworxConfig {
    /// API key sent as `Authorization: Bearer`. Default
    /// `malipo-relworx-api-key`.
    pub api_key: String,
    /// The business account number. Default `RELJH012BV45P` (the docs' sample).
    pub account_no: String,
    /// Webhook URL configured on the business account. `None` = no webhooks
    /// until one is set. Default `None`.
    pub webhook_url: Option<String>,
    /// Webhook signing key; `None` sends no `Relworx-Signature`. Default
    /// `Some("relworx_webhook_key")`.
    pub webhook_key: Option<String>,
    /// Default [`RelworxSignatureEncoding::Hex`].
    pub signature_encoding: RelworxSignatureEncoding,
}

impl Default for RelworxConfig {
    fn default() -> Self {
        RelworxConfig {
            api_key: "malipo-relworx-api-key".into(),
            account_no: "RELJH012BV45P".into(),
            webhook_url: None,
            webhook_key: Some("relworx_webhook_key".into()),
            signature_encoding: RelworxSignatureEncoding::Hex,
        }
    }
}

/// The simulated Paystack integration.
#[derive(Clone)]
pub struct PaystackConfig {
    /// The secret key API calls must carry (and webhooks are signed with).
    pub secret_key: String,
    /// The webhook URL of the simulated dashboard (also settable later).
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for PaystackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaystackConfig")
            .field("secret_key", &"[redacted]")
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

impl Default for PaystackConfig {
    fn default() -> Self {
        PaystackConfig {
            secret_key: "sk_test_malipo_simulator_paystack_0123456789abcdef".into(),
            webhook_url: None,
        }
    }
}

/// Which signature headers the Flutterwave simulator's webhooks carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlutterwaveWebhookHeaders {
    /// `verif-hash` and `flutterwave-signature` (default).
    #[default]
    Both,
    /// Only `verif-hash` (v3 classic deliveries).
    VerifHashOnly,
    /// Only `flutterwave-signature` (newer deliveries).
    SignatureOnly,
}

/// The simulated Flutterwave account.
#[derive(Clone)]
pub struct FlutterwaveConfig {
    /// The secret key API calls must carry (`FLWSECK_TEST-…-X`).
    pub secret_key: String,
    /// The dashboard's webhook "secret hash": sent as `verif-hash` and the
    /// key of `flutterwave-signature`.
    pub secret_hash: String,
    /// The webhook URL of the simulated dashboard (also settable later).
    pub webhook_url: Option<String>,
    pub webhook_headers: FlutterwaveWebhookHeaders,
}

impl std::fmt::Debug for FlutterwaveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlutterwaveConfig")
            .field("secret_key", &"[redacted]")
            .field("secret_hash", &"[redacted]")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_headers", &self.webhook_headers)
            .finish()
    }
}

impl Default for FlutterwaveConfig {
    fn default() -> Self {
        FlutterwaveConfig {
            secret_key: "FLWSECK_TEST-malipo0simulator0flutterwave0123-X".into(),
            secret_hash: "malipo_simulator_flutterwave_secret_hash".into(),
            webhook_url: None,
            webhook_headers: FlutterwaveWebhookHeaders::Both,
        }
    }
}

/// The simulated Stripe account.
#[derive(Clone)]
pub struct StripeConfig {
    /// The secret key API calls must carry.
    pub secret_key: String,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: String,
    /// The webhook endpoint's URL (also settable later).
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"[redacted]")
            .field("webhook_secret", &"[redacted]")
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            secret_key: "sk_test_malipo_simulator_stripe_0123456789abcdef".into(),
            webhook_secret: "whsec_malipo_simulator_stripe_0123456789".into(),
            webhook_url: None,
        }
    }
}

/// The simulated NOWPayments account.
#[derive(Clone)]
pub struct NowPaymentsConfig {
    /// The API key calls must carry in `x-api-key`.
    pub api_key: String,
    /// The IPN secret IPNs are signed with (`x-nowpayments-sig`).
    pub ipn_secret: String,
    /// How long a fixed-rate payment's address stays valid: NOWPayments
    /// gives 20 minutes. Default 1 200 000 ms.
    pub fixed_rate_lifetime_ms: i64,
}

impl std::fmt::Debug for NowPaymentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NowPaymentsConfig")
            .field("api_key", &"[redacted]")
            .field("ipn_secret", &"[redacted]")
            .field("fixed_rate_lifetime_ms", &self.fixed_rate_lifetime_ms)
            .finish()
    }
}

impl Default for NowPaymentsConfig {
    fn default() -> Self {
        NowPaymentsConfig {
            api_key: "malipo-simulator-nowpayments-api-key".into(),
            ipn_secret: "malipo-simulator-nowpayments-ipn-secret".into(),
            fixed_rate_lifetime_ms: 20 * 60 * 1000,
        }
    }
}
