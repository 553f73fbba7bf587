//! Configuration: defaults, then a TOML file, then `MALIPO_*` environment
//! variables (and `DATABASE_URL`), validated at start with messages that
//! name the setting.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every setting, with its default. Names end with their unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    pub listen: String,
    /// The URL providers reach this gateway at, for callback URLs (e.g.
    /// `https://pay.example.com`); empty means `http://<listen address>`.
    pub public_url: String,
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub database_url: String,
    /// Pooled database connections (readers on SQLite).
    pub database_connections_max: u32,
    /// SQLite: fsync the WAL on every commit (survives power loss).
    pub sqlite_fsync_every_commit: bool,
    /// Larger request bodies are refused.
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    /// Default fee: hundredths of a percent of the amount.
    pub default_fee_basis_points: u32,
    /// Default fee: fixed part in the currency's minor units.
    pub default_fee_fixed: u64,
    pub sandbox_payment_expiry_seconds: u64,
    /// How long a bank transfer payment waits for its deposit to be
    /// confirmed before it expires (default 72 h).
    pub bank_transfer_expiry_seconds: u64,
    /// Operator policy ("four eyes"): the operator confirming a bank
    /// deposit must not be the one who configured the merchant's bank
    /// account (default on).
    pub bank_four_eyes: bool,
    /// A trading book's engine is snapshotted every this many commands
    /// (1 to 1,000,000), bounding the log replay after a restart.
    pub trading_snapshot_every_commands: u64,
    /// Command log retention: how many commands before each book's newest
    /// snapshot are kept for live feed resumes (0 to 100000000); those
    /// after it (recovery) and after the second newest snapshot are never
    /// deleted.
    pub trading_log_retain_commands: u64,
    /// Event outbox retention: events older than this many days whose
    /// webhook deliveries are all finished are deleted (1 to 3650).
    pub events_retain_days: u32,
    /// This node's id in a cluster (book leases, the command log, the
    /// `Malipo-Node` header); empty: `node_` and random hex, new at each
    /// start. At most 64 characters of letters, digits, `_`, `-`, `.`.
    pub node_id: String,
    /// The URL other nodes forward a book's commands to (e.g.
    /// `http://10.0.0.5:8080`); empty means `http://<listen address>`.
    pub node_url: String,
    /// How long a node's lease of a book lasts without renewal; it renews
    /// every third (500 to 600000). A dead owner's books move after it.
    pub trading_lease_ms: u64,
    /// A command forwarded to a book's owner gets this long to answer
    /// (100 to 600000); connecting gets at most 1000 ms of it.
    pub trading_forward_timeout_ms: u64,
    /// Live feeds (`GET /v1/trading/stream`): how often a subscribed
    /// book's command log is read for other nodes' commands (10 to 10000).
    pub feed_poll_interval_ms: u64,
    /// Levels per side of a book snapshot, tracked by its updates (1 to 100).
    pub feed_book_depth: usize,
    /// Channels one socket may subscribe to at once (1 to 1000).
    pub feed_subscriptions_per_socket_max: usize,
    /// Open sockets per API key on one node (1 to 10000).
    pub feed_sockets_per_key_max: usize,
    /// Messages queued for one socket before it is closed as a slow
    /// consumer (1 to 100000).
    pub feed_send_buffer_messages: usize,
    /// A WebSocket ping this often; no pong for two intervals closes the
    /// socket (1000 to 600000).
    pub feed_ping_interval_ms: u64,
    /// One message not taken by the client within this closes the socket
    /// (100 to 600000).
    pub feed_write_timeout_ms: u64,
    /// `GET /v1/ws`: the auth message must arrive within this (100 to 60000).
    pub feed_auth_timeout_ms: u64,
    /// A `heartbeat` message to every stream this often (100 to 600000).
    pub feed_heartbeat_interval_ms: u64,
    /// The most book commands a subscription with `since` replays (0 to
    /// 100000); further behind gets a fresh snapshot.
    pub feed_resume_commands_max: u64,
    /// The most of the owner's events a private subscription with `since`
    /// replays (0 to 10000); further behind is sent events from now.
    pub feed_resume_events_max: u32,
    /// How long finished Idempotency-Key records are kept (>= 24).
    pub idempotency_retention_hours: u32,
    pub worker_idle_interval_ms: u64,
    pub worker_batch_size_max: i64,
    /// `text` or `json`.
    pub log_format: String,
    /// Pauses before each webhook retry; empty means the default schedule
    /// (12 attempts over about three days).
    pub webhook_retry_delays_ms: Vec<u64>,
    pub webhook_attempt_timeout_ms: u64,
    /// An endpoint failing continuously this long is disabled.
    pub webhook_endpoint_disable_after_seconds: i64,
    /// A JSON file with a list of provider callback definitions (see
    /// docs/webhooks.md) added to, or replacing, the built-in ones.
    pub providers_file: String,
    /// 32 bytes in base64 that encrypt provider credentials at rest; empty
    /// keeps a generated key in the database (development only).
    pub master_key: String,
    /// Sustained requests per second per API key or operator token; 0
    /// disables the limit.
    pub rate_limit_per_key_per_second: u32,
    /// Sustained requests per second per client address (IPv6: per /64);
    /// 0 disables the limit. `/healthz`, `/readyz`, `/metrics` are exempt.
    pub rate_limit_per_ip_per_second: u32,
    /// How many requests each of those buckets holds: a client may send
    /// this many at once before the per-second rate applies.
    pub rate_limit_burst: u32,
    /// `redis://host:port[/db]`: rate limits shared by every node using it;
    /// empty keeps them in each process.
    pub redis_url: String,
    /// Prepended to every Redis key (`<prefix>:rl:<bucket>`).
    pub redis_key_prefix: String,
    /// One Redis check's time limit; past it (or when Redis fails) the node
    /// uses its own buckets for a second, and logs it.
    pub redis_timeout_ms: u64,
    /// Addresses and CIDR blocks allowed to use the operator API
    /// (`/v1/admin/…`); empty allows any. A list in TOML, or a
    /// comma-separated string (`MALIPO_OPERATOR_ALLOWED_IPS="10.0.0.0/8, ::1"`).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub operator_allowed_ips: Vec<String>,
    /// Assets added to the built-in table, or known ones with another
    /// per-payment maximum (`[[assets]]`: `code`, `kind`, `exponent`,
    /// `payment_major_units_max`); an exponent never changes.
    pub assets: Vec<malipo_core::asset::AssetSpec>,
    /// Exchange rate sources in order of preference (`[[rate_sources]]`,
    /// see docs/conversions.md); none: conversions are unavailable.
    pub rate_sources: Vec<malipo_gateway::rates::RateSourceConfig>,
    /// Taken off the mid rate of every conversion quote, in hundredths of a
    /// percent (at most 5000).
    pub conversion_spread_basis_points: u32,
    /// How long a conversion quote can be paid (1 to 3600).
    pub conversion_quote_lifetime_seconds: u64,
    /// The buy/sell desk (`[desk]`: `fee_basis_points` by payment method,
    /// `spread_basis_points`, `max_pool_deviation_basis_points`,
    /// `quote_lifetime_seconds`,
    /// `payment_window_seconds`; docs/trading.md).
    pub desk: malipo_gateway::desk::DeskConfig,
}

/// A list of strings, or one string of comma- or space-separated entries
/// (what an environment variable holds).
fn list_or_comma_separated<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(deserializer)? {
        ListOrText::List(entries) => entries,
        ListOrText::Text(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            database_url: "sqlite://malipo.db".into(),
            database_connections_max: 8,
            sqlite_fsync_every_commit: true,
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 30_000,
            default_fee_basis_points: 290,
            default_fee_fixed: 0,
            sandbox_payment_expiry_seconds: 600,
            bank_transfer_expiry_seconds: 72 * 3600,
            bank_four_eyes: true,
            trading_snapshot_every_commands: 1_000,
            trading_log_retain_commands:
                malipo_gateway::retention::TRADING_LOG_RETAIN_COMMANDS_DEFAULT,
            events_retain_days: malipo_gateway::retention::EVENTS_RETAIN_DAYS_DEFAULT,
            node_id: String::new(),
            node_url: String::new(),
            trading_lease_ms: malipo_gateway::ownership::LEASE_MS_DEFAULT,
            trading_forward_timeout_ms: malipo_gateway::ownership::FORWARD_TIMEOUT_MS_DEFAULT,
            feed_poll_interval_ms: 100,
            feed_book_depth: 50,
            feed_subscriptions_per_socket_max: 50,
            feed_sockets_per_key_max: 10,
            feed_send_buffer_messages: 256,
            feed_ping_interval_ms: 20_000,
            feed_write_timeout_ms: 10_000,
            feed_auth_timeout_ms: 10_000,
            feed_heartbeat_interval_ms: 15_000,
            feed_resume_commands_max: 1_000,
            feed_resume_events_max: 1_000,
            idempotency_retention_hours: 24,
            worker_idle_interval_ms: 100,
            worker_batch_size_max: 100,
            log_format: "text".into(),
            webhook_retry_delays_ms: Vec::new(),
            webhook_attempt_timeout_ms: 10_000,
            webhook_endpoint_disable_after_seconds: 3 * 24 * 3600,
            providers_file: String::new(),
            master_key: String::new(),
            rate_limit_per_key_per_second: malipo_http::RATE_LIMIT_PER_KEY_PER_SECOND_DEFAULT,
            rate_limit_per_ip_per_second: malipo_http::RATE_LIMIT_PER_IP_PER_SECOND_DEFAULT,
            rate_limit_burst: malipo_http::RATE_LIMIT_BURST_DEFAULT,
            redis_url: String::new(),
            redis_key_prefix: "malipo".into(),
            redis_timeout_ms: 100,
            operator_allowed_ips: Vec::new(),
            assets: Vec::new(),
            rate_sources: Vec::new(),
            conversion_spread_basis_points: 100,
            conversion_quote_lifetime_seconds: 60,
            desk: malipo_gateway::desk::DeskConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: `{setting}` {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        problem: problem.into(),
    }
}

impl Config {
    /// Defaults < `file` (if it exists) < `MALIPO_*` < `DATABASE_URL`.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(invalid(
                    "--config",
                    format!("file {} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file(file));
        } else if Path::new("malipo.toml").exists() {
            figment = figment.merge(Toml::file("malipo.toml"));
        }
        // MALIPO_CONFIG names the file (a CLI flag); MALIPO_TEST_*,
        // MALIPO_FUZZ_* and MALIPO_SCHEMATHESIS_* belong to the test suites
        // (whose servers inherit them): none is a setting.
        figment = figment.merge(Env::prefixed("MALIPO_").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key != "config"
                && !["test_", "fuzz_", "schemathesis_"]
                    .iter()
                    .any(|suite| key.starts_with(suite))
        }));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The provider definitions of `providers_file`, validated.
    pub fn extra_providers(&self) -> Result<Vec<malipo_hooks::ProviderDefinition>, ConfigError> {
        if self.providers_file.is_empty() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&self.providers_file).map_err(|error| {
            invalid(
                "providers_file",
                format!("can't read {}: {error}", self.providers_file),
            )
        })?;
        let definitions: Vec<malipo_hooks::ProviderDefinition> = serde_json::from_str(&text)
            .map_err(|error| {
                invalid(
                    "providers_file",
                    format!(
                        "{} is not a list of provider definitions: {error}",
                        self.providers_file
                    ),
                )
            })?;
        for definition in &definitions {
            definition.validate().map_err(|error| {
                invalid(
                    "providers_file",
                    format!("provider `{}`: {error}", definition.name),
                )
            })?;
        }
        Ok(definitions)
    }

    /// A rate limit's quota; `None` when its rate is 0 (disabled).
    fn quota(
        &self,
        setting: &'static str,
        per_second: u32,
    ) -> Result<Option<malipo_http::Quota>, ConfigError> {
        if per_second == 0 {
            return Ok(None);
        }
        malipo_http::Quota::new(per_second, self.rate_limit_burst)
            .map(Some)
            .map_err(|error| match error {
                malipo_http::QuotaError::Rate(_) => invalid(setting, error.to_string()),
                malipo_http::QuotaError::Burst(_) => invalid("rate_limit_burst", error.to_string()),
            })
    }

    /// The per-key limit, `None` when disabled.
    pub fn rate_limit_per_key(&self) -> Result<Option<malipo_http::Quota>, ConfigError> {
        self.quota(
            "rate_limit_per_key_per_second",
            self.rate_limit_per_key_per_second,
        )
    }

    /// The per-address limit, `None` when disabled.
    pub fn rate_limit_per_ip(&self) -> Result<Option<malipo_http::Quota>, ConfigError> {
        self.quota(
            "rate_limit_per_ip_per_second",
            self.rate_limit_per_ip_per_second,
        )
    }

    /// `operator_allowed_ips`, parsed.
    pub fn operator_allowed_ips(&self) -> Result<malipo_http::IpAllowList, ConfigError> {
        malipo_http::IpAllowList::parse(&self.operator_allowed_ips)
            .map_err(|error| invalid("operator_allowed_ips", error.to_string()))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "listen",
                format!(
                    "must be an address like 127.0.0.1:8080, got {:?}",
                    self.listen
                ),
            ));
        }
        let public_url = &self.public_url;
        if !(public_url.is_empty()
            || public_url.starts_with("http://")
            || public_url.starts_with("https://"))
        {
            return Err(invalid("public_url", "must start with http:// or https://"));
        }
        let url = &self.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if !(1..=256).contains(&self.database_connections_max) {
            return Err(invalid("database_connections_max", "must be 1 to 256"));
        }
        if !(1024..=10 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(invalid("body_limit_bytes", "must be 1024 to 10485760"));
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return Err(invalid("request_timeout_ms", "must be 100 to 600000"));
        }
        if self.default_fee_basis_points > malipo_core::fee::BASIS_POINTS_MAX {
            return Err(invalid(
                "default_fee_basis_points",
                "must be at most 10000 (100%)",
            ));
        }
        if !(1..=30 * 24 * 3600).contains(&self.sandbox_payment_expiry_seconds) {
            return Err(invalid(
                "sandbox_payment_expiry_seconds",
                "must be 1 to 2592000 (30 days)",
            ));
        }
        if !(1..=90 * 24 * 3600).contains(&self.bank_transfer_expiry_seconds) {
            return Err(invalid(
                "bank_transfer_expiry_seconds",
                "must be 1 to 7776000 (90 days)",
            ));
        }
        if !(1..=1_000_000).contains(&self.trading_snapshot_every_commands) {
            return Err(invalid(
                "trading_snapshot_every_commands",
                "must be 1 to 1000000",
            ));
        }
        use malipo_gateway::retention::{
            EVENTS_RETAIN_DAYS_MAX, EVENTS_RETAIN_DAYS_MIN, TRADING_LOG_RETAIN_COMMANDS_MAX,
            TRADING_LOG_RETAIN_COMMANDS_MIN,
        };
        if !(TRADING_LOG_RETAIN_COMMANDS_MIN..=TRADING_LOG_RETAIN_COMMANDS_MAX)
            .contains(&self.trading_log_retain_commands)
        {
            return Err(invalid(
                "trading_log_retain_commands",
                format!(
                    "must be {TRADING_LOG_RETAIN_COMMANDS_MIN} to {TRADING_LOG_RETAIN_COMMANDS_MAX}"
                ),
            ));
        }
        if !(EVENTS_RETAIN_DAYS_MIN..=EVENTS_RETAIN_DAYS_MAX).contains(&self.events_retain_days) {
            return Err(invalid(
                "events_retain_days",
                format!("must be {EVENTS_RETAIN_DAYS_MIN} to {EVENTS_RETAIN_DAYS_MAX}"),
            ));
        }
        if self.node_id.len() > 64
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(invalid(
                "node_id",
                "must be at most 64 letters, digits, `_`, `-` or `.`",
            ));
        }
        let node_url_ok = self.node_url.is_empty()
            || self.node_url.starts_with("http://")
            || self.node_url.starts_with("https://");
        if !node_url_ok {
            return Err(invalid("node_url", "must start with http:// or https://"));
        }
        if !(500..=600_000).contains(&self.trading_lease_ms) {
            return Err(invalid("trading_lease_ms", "must be 500 to 600000"));
        }
        if !(100..=600_000).contains(&self.trading_forward_timeout_ms) {
            return Err(invalid(
                "trading_forward_timeout_ms",
                "must be 100 to 600000",
            ));
        }
        let feed_limits: [(&str, u64, u64, u64); 11] = [
            (
                "feed_poll_interval_ms",
                self.feed_poll_interval_ms,
                10,
                10_000,
            ),
            ("feed_book_depth", self.feed_book_depth as u64, 1, 100),
            (
                "feed_subscriptions_per_socket_max",
                self.feed_subscriptions_per_socket_max as u64,
                1,
                1_000,
            ),
            (
                "feed_sockets_per_key_max",
                self.feed_sockets_per_key_max as u64,
                1,
                10_000,
            ),
            (
                "feed_send_buffer_messages",
                self.feed_send_buffer_messages as u64,
                1,
                100_000,
            ),
            (
                "feed_ping_interval_ms",
                self.feed_ping_interval_ms,
                1_000,
                600_000,
            ),
            (
                "feed_write_timeout_ms",
                self.feed_write_timeout_ms,
                100,
                600_000,
            ),
            (
                "feed_auth_timeout_ms",
                self.feed_auth_timeout_ms,
                100,
                60_000,
            ),
            (
                "feed_heartbeat_interval_ms",
                self.feed_heartbeat_interval_ms,
                100,
                600_000,
            ),
            (
                "feed_resume_commands_max",
                self.feed_resume_commands_max,
                0,
                100_000,
            ),
            (
                "feed_resume_events_max",
                u64::from(self.feed_resume_events_max),
                0,
                10_000,
            ),
        ];
        for (name, value, low, high) in feed_limits {
            if !(low..=high).contains(&value) {
                return Err(invalid(name, format!("must be {low} to {high}")));
            }
        }
        if !(24..=24 * 365).contains(&self.idempotency_retention_hours) {
            return Err(invalid("idempotency_retention_hours", "must be 24 to 8760"));
        }
        if !(10..=60_000).contains(&self.worker_idle_interval_ms) {
            return Err(invalid("worker_idle_interval_ms", "must be 10 to 60000"));
        }
        if !(1..=10_000).contains(&self.worker_batch_size_max) {
            return Err(invalid("worker_batch_size_max", "must be 1 to 10000"));
        }
        if self.webhook_retry_delays_ms.len() > 50
            || self
                .webhook_retry_delays_ms
                .iter()
                .any(|delay| *delay > 7 * 86_400_000)
        {
            return Err(invalid(
                "webhook_retry_delays_ms",
                "at most 50 delays, each at most 7 days",
            ));
        }
        if !(100..=60_000).contains(&self.webhook_attempt_timeout_ms) {
            return Err(invalid(
                "webhook_attempt_timeout_ms",
                "must be 100 to 60000",
            ));
        }
        if !(60..=30 * 86_400).contains(&self.webhook_endpoint_disable_after_seconds) {
            return Err(invalid(
                "webhook_endpoint_disable_after_seconds",
                "must be 60 to 2592000 (30 days)",
            ));
        }
        self.extra_providers()?;
        if !self.master_key.is_empty() {
            use base64::Engine;
            let key = base64::engine::general_purpose::STANDARD.decode(self.master_key.trim());
            if key.map(|key| key.len()).ok() != Some(32) {
                return Err(invalid(
                    "master_key",
                    "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
                ));
            }
        }
        if !(1..=malipo_http::BURST_MAX).contains(&self.rate_limit_burst) {
            return Err(invalid(
                "rate_limit_burst",
                format!("must be 1 to {}", malipo_http::BURST_MAX),
            ));
        }
        self.rate_limit_per_key()?;
        self.rate_limit_per_ip()?;
        let redis_url = &self.redis_url;
        if !(redis_url.is_empty()
            || redis_url.starts_with("redis://")
            || redis_url.starts_with("redis+unix://")
            || redis_url.starts_with("unix://"))
        {
            return Err(invalid(
                "redis_url",
                "must start with redis:// or redis+unix:// (TLS, rediss://, is not built in)",
            ));
        }
        let prefix = &self.redis_key_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "redis_key_prefix",
                "must be 1 to 64 characters without spaces",
            ));
        }
        if !(1..=10_000).contains(&self.redis_timeout_ms) {
            return Err(invalid("redis_timeout_ms", "must be 1 to 10000"));
        }
        self.operator_allowed_ips()?;
        malipo_core::asset::check_specs(&self.assets)
            .map_err(|error| invalid("assets", error.to_string()))?;
        let mut names = std::collections::BTreeSet::new();
        for source in &self.rate_sources {
            source.validate().map_err(|problem| {
                invalid(
                    "rate_sources",
                    format!("source `{}`: {problem}", source.name),
                )
            })?;
            if !names.insert(source.name.as_str()) {
                return Err(invalid(
                    "rate_sources",
                    format!("two sources are named `{}`", source.name),
                ));
            }
        }
        if self.rate_sources.len() > 16 {
            return Err(invalid("rate_sources", "at most 16 sources"));
        }
        malipo_gateway::conversions::check_conversion_settings(
            self.conversion_spread_basis_points,
            self.conversion_quote_lifetime_seconds,
        )
        .map_err(|(setting, problem)| invalid(setting, problem))?;
        self.desk
            .check()
            .map_err(|(setting, problem)| invalid(setting, problem))?;
        if self.log_format != "text" && self.log_format != "json" {
            return Err(invalid("log_format", "must be `text` or `json`"));
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail closures return its large error type; that's its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn environment_overrides_and_ignores_non_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_LISTEN", "127.0.0.1:9999");
            jail.set_env("MALIPO_WEBHOOK_RETRY_DELAYS_MS", "[150, 300]");
            jail.set_env("MALIPO_TEST_DATABASE_URL", "postgres://ignored");
            jail.set_env("MALIPO_CONFIG", "ignored.toml");
            jail.set_env("MALIPO_FUZZ_CASES", "100000");
            jail.set_env("MALIPO_SCHEMATHESIS_EXAMPLES", "10");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.listen, "127.0.0.1:9999");
            assert_eq!(config.webhook_retry_delays_ms, vec![150, 300]);
            Ok(())
        });
    }

    #[test]
    fn feed_limits_load_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_FEED_SEND_BUFFER_MESSAGES", "32");
            jail.set_env("MALIPO_FEED_SOCKETS_PER_KEY_MAX", "3");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.feed_send_buffer_messages, 32);
            assert_eq!(config.feed_sockets_per_key_max, 3);
            Ok(())
        });
        for broken in [
            Config {
                feed_send_buffer_messages: 0,
                ..Config::default()
            },
            Config {
                feed_book_depth: 101,
                ..Config::default()
            },
            Config {
                feed_poll_interval_ms: 0,
                ..Config::default()
            },
            Config {
                feed_heartbeat_interval_ms: 10,
                ..Config::default()
            },
            Config {
                feed_resume_events_max: 10_001,
                ..Config::default()
            },
        ] {
            let error = broken.validate().expect_err("invalid");
            assert!(error.to_string().contains("feed_"), "{error}");
        }
    }

    #[test]
    fn retention_settings_load_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_TRADING_LOG_RETAIN_COMMANDS", "0");
            jail.set_env("MALIPO_EVENTS_RETAIN_DAYS", "90");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.trading_log_retain_commands, 0);
            assert_eq!(config.events_retain_days, 90);
            Ok(())
        });
        let defaults = Config::default();
        assert_eq!(defaults.trading_log_retain_commands, 100_000);
        assert_eq!(defaults.events_retain_days, 30);
        for (broken, setting) in [
            (
                Config {
                    trading_log_retain_commands: 100_000_001,
                    ..Config::default()
                },
                "trading_log_retain_commands",
            ),
            (
                Config {
                    events_retain_days: 0,
                    ..Config::default()
                },
                "events_retain_days",
            ),
            (
                Config {
                    events_retain_days: 3651,
                    ..Config::default()
                },
                "events_retain_days",
            ),
        ] {
            let error = broken.validate().expect_err("invalid");
            assert!(error.to_string().contains(setting), "{error}");
        }
    }

    #[test]
    fn node_settings_load_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_NODE_ID", "node-a");
            jail.set_env("MALIPO_NODE_URL", "http://10.0.0.5:8080");
            jail.set_env("MALIPO_TRADING_LEASE_MS", "1500");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.node_id, "node-a");
            assert_eq!(config.node_url, "http://10.0.0.5:8080");
            assert_eq!(config.trading_lease_ms, 1500);
            Ok(())
        });
        for (broken, setting) in [
            (
                Config {
                    node_id: "node a/1".into(),
                    ..Config::default()
                },
                "node_id",
            ),
            (
                Config {
                    node_url: "10.0.0.5:8080".into(),
                    ..Config::default()
                },
                "node_url",
            ),
            (
                Config {
                    trading_lease_ms: 100,
                    ..Config::default()
                },
                "trading_lease_ms",
            ),
            (
                Config {
                    trading_forward_timeout_ms: 0,
                    ..Config::default()
                },
                "trading_forward_timeout_ms",
            ),
        ] {
            let error = broken.validate().expect_err("invalid");
            assert!(error.to_string().contains(setting), "{error}");
        }
    }

    #[test]
    fn unknown_settings_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_LISTN", "127.0.0.1:9999");
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn providers_come_from_a_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("providers.json");
        let definition = r#"[{"name": "pesapal", "display_name": "Pesapal",
            "scheme": {"kind": "hmac_body", "algorithm": "sha256", "encoding": "base64", "header": "x-pesapal-signature"},
            "event_id": [["/OrderTrackingId"]], "success_response": {"status": 200}}]"#;
        std::fs::write(&path, definition).expect("write");
        let config = Config {
            providers_file: path.display().to_string(),
            ..Config::default()
        };
        let providers = config.extra_providers().expect("valid");
        assert_eq!(providers[0].name, "pesapal");
        std::fs::write(&path, r#"[{"name": "broken"}]"#).expect("write");
        let error = config.validate().expect_err("invalid");
        assert!(error.to_string().contains("providers_file"), "{error}");
    }

    #[test]
    fn security_settings_load_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MALIPO_OPERATOR_ALLOWED_IPS", "10.0.0.0/8, 127.0.0.1 ::1");
            jail.set_env("MALIPO_RATE_LIMIT_PER_KEY_PER_SECOND", "0");
            jail.set_env("MALIPO_REDIS_URL", "redis://127.0.0.1:6379");
            let config = Config::load(None).expect("loads");
            assert_eq!(
                config.operator_allowed_ips,
                ["10.0.0.0/8", "127.0.0.1", "::1"]
            );
            assert!(config.rate_limit_per_key().expect("valid").is_none());
            let per_ip = config.rate_limit_per_ip().expect("valid").expect("on");
            assert_eq!((per_ip.per_second(), per_ip.burst()), (200, 200));
            Ok(())
        });
        let named = |config: Config, setting: &str| {
            let error = config.validate().expect_err("invalid");
            assert!(error.to_string().contains(setting), "{error}");
        };
        named(
            Config {
                operator_allowed_ips: vec!["10.0.0.1/8".into()],
                ..Config::default()
            },
            "operator_allowed_ips",
        );
        named(
            Config {
                rate_limit_burst: 0,
                ..Config::default()
            },
            "rate_limit_burst",
        );
        named(
            Config {
                rate_limit_per_ip_per_second: 2_000_000,
                ..Config::default()
            },
            "rate_limit_per_ip_per_second",
        );
        named(
            Config {
                redis_url: "rediss://cache:6380".into(),
                ..Config::default()
            },
            "redis_url",
        );
        named(
            Config {
                redis_key_prefix: String::new(),
                ..Config::default()
            },
            "redis_key_prefix",
        );
    }

    #[test]
    fn assets_and_rate_sources_load_from_the_file_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "malipo.toml",
                r#"
                conversion_spread_basis_points = 75
                [[assets]]
                code = "cfgtok"
                kind = "crypto"
                exponent = 6
                payment_major_units_max = 1000
                [[rate_sources]]
                name = "static"
                kind = "static"
                rates = { kes = "129.5", ugx = "3700" }
                [[rate_sources]]
                name = "feed"
                kind = "http"
                url = "http://127.0.0.1:9000/rates"
                max_age_seconds = 300
                "#,
            )?;
            let config = Config::load(None).expect("loads");
            assert_eq!(config.conversion_spread_basis_points, 75);
            assert_eq!(config.assets[0].code, "cfgtok");
            assert_eq!(config.rate_sources.len(), 2);
            assert_eq!(config.rate_sources[1].refresh_ms, 30_000, "default");
            Ok(())
        });
        let named = |config: Config, setting: &str, detail: &str| {
            let error = config.validate().expect_err("invalid").to_string();
            assert!(error.contains(setting) && error.contains(detail), "{error}");
        };
        let source = |name: &str, rates: &[(&str, &str)]| malipo_gateway::rates::RateSourceConfig {
            name: name.into(),
            kind: malipo_gateway::rates::RateSourceKind::Static,
            base: "usd".into(),
            rates: rates
                .iter()
                .map(|(code, rate)| ((*code).to_owned(), (*rate).to_owned()))
                .collect(),
            as_of: 0,
            url: String::new(),
            max_age_seconds: 0,
            refresh_ms: 0,
            timeout_ms: 2_000,
        };
        named(
            Config {
                rate_sources: vec![source("a", &[("kes", "1.5")]), source("a", &[("ugx", "2")])],
                ..Config::default()
            },
            "rate_sources",
            "two sources",
        );
        named(
            Config {
                rate_sources: vec![source("a", &[("kes", "1,5")])],
                ..Config::default()
            },
            "rate_sources",
            "kes",
        );
        named(
            Config {
                assets: vec![malipo_core::asset::AssetSpec {
                    code: "usd".into(),
                    kind: None,
                    exponent: Some(3),
                    payment_major_units_max: None,
                }],
                ..Config::default()
            },
            "assets",
            "exponent",
        );
        named(
            Config {
                conversion_spread_basis_points: 6_000,
                ..Config::default()
            },
            "conversion_spread_basis_points",
            "5000",
        );
        named(
            Config {
                conversion_quote_lifetime_seconds: 0,
                ..Config::default()
            },
            "conversion_quote_lifetime_seconds",
            "3600",
        );
    }

    #[test]
    fn the_desk_section_loads_and_is_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "malipo.toml",
                r#"
                [desk]
                spread_basis_points = 80
                quote_lifetime_seconds = 30
                payment_window_seconds = 600
                max_pool_deviation_basis_points = 250
                fee_basis_points = { card = 275, mpesa = 200 }
                "#,
            )?;
            let config = Config::load(None).expect("loads");
            assert_eq!(config.desk.spread_basis_points, 80);
            assert_eq!(config.desk.quote_lifetime_seconds, 30);
            assert_eq!(config.desk.payment_window_seconds, 600);
            assert_eq!(config.desk.max_pool_deviation_basis_points, 250);
            let table = config.desk.check().expect("valid");
            assert_eq!(table.basis_points("card"), Some(275));
            assert_eq!(table.basis_points("voucher"), Some(100), "default kept");
            Ok(())
        });
        let mut config = Config::default();
        config.desk.fee_basis_points.insert("card".into(), 6_000);
        let error = config.validate().expect_err("too high").to_string();
        assert!(
            error.contains("desk.fee_basis_points") && error.contains("card"),
            "{error}"
        );
        let mut config = Config::default();
        config.desk.quote_lifetime_seconds = 0;
        let error = config.validate().expect_err("zero").to_string();
        assert!(error.contains("desk.quote_lifetime_seconds"), "{error}");
        let mut config = Config::default();
        config.desk.payment_window_seconds = 259_201;
        let error = config.validate().expect_err("too long").to_string();
        assert!(error.contains("desk.payment_window_seconds"), "{error}");
        for refused in [0, 5_001] {
            let mut config = Config::default();
            config.desk.max_pool_deviation_basis_points = refused;
            let error = config.validate().expect_err("out of range").to_string();
            assert!(
                error.contains("desk.max_pool_deviation_basis_points"),
                "{error}"
            );
        }
    }

    #[test]
    fn names_the_bad_setting() {
        let config = Config {
            default_fee_basis_points: 20_000,
            ..Config::default()
        };
        let error = config.validate().expect_err("too high");
        assert!(
            error.to_string().contains("default_fee_basis_points"),
            "{error}"
        );
    }
}
