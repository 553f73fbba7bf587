//! The Malipo binary's library half: configuration and assembling a running
//! gateway (store, gateway, worker, HTTP server) from it. `main.rs` is the
//! CLI; the integration tests start the same [`start`] on a random port.
//!
//! - [`config`]: every setting, its default, and its validation.
//! - [`start`]: migrate, build, serve; [`Running`] stops it gracefully.

pub mod config;

use config::Config;
use malipo_core::fee::FeeSchedule;
use malipo_gateway::{Gateway, GatewayConfig, WebhookConfig};
use malipo_http::HttpConfig;
use malipo_store::{Store, StoreOptions};
use malipo_worker::WorkerConfig;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Opens and migrates the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let options = StoreOptions {
        connections_max: config.database_connections_max,
        sqlite_fsync_every_commit: config.sqlite_fsync_every_commit,
        ..StoreOptions::new(&config.database_url)
    };
    let store = Store::connect(&options).await?;
    store.migrate().await?;
    Ok(store)
}

pub fn gateway_config(config: &Config) -> GatewayConfig {
    let defaults = WebhookConfig::default();
    let webhooks = WebhookConfig {
        retry_delays_ms: if config.webhook_retry_delays_ms.is_empty() {
            defaults.retry_delays_ms.clone()
        } else {
            config.webhook_retry_delays_ms.clone()
        },
        attempt_timeout_ms: config.webhook_attempt_timeout_ms,
        endpoint_disable_after_seconds: config.webhook_endpoint_disable_after_seconds,
        ..defaults
    };
    GatewayConfig {
        webhooks,
        default_fee: FeeSchedule {
            basis_points: config.default_fee_basis_points,
            fixed: config.default_fee_fixed,
        },
        sandbox_payment_expiry_seconds: config.sandbox_payment_expiry_seconds,
        bank_transfer_expiry_seconds: config.bank_transfer_expiry_seconds,
        bank_four_eyes: config.bank_four_eyes,
        trading_snapshot_every_commands: config.trading_snapshot_every_commands,
        trading_log_retain_commands: config.trading_log_retain_commands,
        events_retain_days: config.events_retain_days,
        feeds: malipo_gateway::feeds::FeedConfig {
            poll_interval_ms: config.feed_poll_interval_ms,
            book_depth: config.feed_book_depth,
            subscriptions_per_socket_max: config.feed_subscriptions_per_socket_max,
            sockets_per_key_max: config.feed_sockets_per_key_max,
            send_buffer_messages: config.feed_send_buffer_messages,
            ping_interval_ms: config.feed_ping_interval_ms,
            write_timeout_ms: config.feed_write_timeout_ms,
            auth_timeout_ms: config.feed_auth_timeout_ms,
            heartbeat_interval_ms: config.feed_heartbeat_interval_ms,
            resume_commands_max: config.feed_resume_commands_max,
            resume_events_max: config.feed_resume_events_max,
        },
        idempotency_retention_hours: config.idempotency_retention_hours,
        // Validated when the configuration was loaded.
        extra_providers: config.extra_providers().unwrap_or_default(),
        master_key: (!config.master_key.is_empty()).then(|| config.master_key.clone()),
        rate_sources: config.rate_sources.clone(),
        conversion_spread_basis_points: config.conversion_spread_basis_points,
        conversion_quote_lifetime_seconds: config.conversion_quote_lifetime_seconds,
        desk: config.desk.clone(),
        node: malipo_gateway::ownership::NodeConfig {
            id: config.node_id.clone(),
            lease_ms: config.trading_lease_ms,
            forward_timeout_ms: config.trading_forward_timeout_ms,
        },
        ..GatewayConfig::default()
    }
}

pub async fn open_gateway(config: &Config) -> anyhow::Result<Gateway> {
    // Process-wide and additive (see malipo_core::asset); validated with
    // the configuration.
    malipo_core::asset::configure(&config.assets)?;
    let store = open_store(config).await?;
    Ok(Gateway::new(store, gateway_config(config)).await?)
}

/// The HTTP layer's settings, with the rate limiter they name: buckets in
/// Redis when `redis_url` is set (connected lazily: the gateway starts while
/// Redis is down, and fails open to its own buckets), in process otherwise.
pub fn http_config(config: &Config) -> anyhow::Result<HttpConfig> {
    let rate_limiter = if config.redis_url.is_empty() {
        malipo_http::RateLimiter::in_process()
    } else {
        malipo_http::RateLimiter::with_redis(&malipo_http::RedisOptions {
            url: config.redis_url.clone(),
            key_prefix: config.redis_key_prefix.clone(),
            timeout_ms: config.redis_timeout_ms,
        })?
    };
    tracing::info!(
        backend = rate_limiter.backend_name(),
        per_key_per_second = config.rate_limit_per_key_per_second,
        per_ip_per_second = config.rate_limit_per_ip_per_second,
        burst = config.rate_limit_burst,
        "rate limits"
    );
    Ok(HttpConfig {
        body_limit_bytes: config.body_limit_bytes,
        request_timeout_ms: config.request_timeout_ms,
        rate_limit_per_key: config.rate_limit_per_key()?,
        rate_limit_per_ip: config.rate_limit_per_ip()?,
        rate_limiter,
        operator_allowed_ips: config.operator_allowed_ips()?,
    })
}

/// A gateway serving HTTP, with its worker.
pub struct Running {
    pub address: SocketAddr,
    pub gateway: Gateway,
    /// The operator token created on first start of an empty database.
    pub first_operator_token: Option<String>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
    leases: JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests, lets in-flight ones finish, stops the
    /// worker, closes the database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
        let _ = self.leases.await;
        self.gateway.store().close().await;
    }

    /// Waits until the server ends (after a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        let _ = self.worker.await;
        let _ = self.leases.await;
        self.gateway.store().close().await;
        result??;
        Ok(())
    }

    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Migrates, builds the gateway, and serves on `config.listen` (port 0
/// picks a free port; see [`Running::address`]).
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let gateway = open_gateway(config).await?;
    let first_operator_token = gateway.bootstrap_operator_token().await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let address = listener.local_addr()?;
    if config.public_url.is_empty() {
        gateway.set_public_url(&format!("http://{address}"));
    } else {
        gateway.set_public_url(&config.public_url);
    }
    if config.node_url.is_empty() {
        gateway.set_node_url(&format!("http://{address}"));
    } else {
        gateway.set_node_url(&config.node_url);
    }
    let http_config = http_config(config)?;
    let app = malipo_http::router(gateway.clone(), &http_config);
    let (shutdown, mut shutdown_signal) = watch::channel(false);
    let worker_config = WorkerConfig {
        idle_interval_ms: config.worker_idle_interval_ms,
        batch_size_max: config.worker_batch_size_max,
        ..WorkerConfig::default()
    };
    let worker = malipo_worker::spawn(gateway.clone(), worker_config, shutdown.subscribe());
    let leases = malipo_worker::spawn_lease_keeper(gateway.clone(), shutdown.subscribe());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = shutdown_signal.wait_for(|stop| *stop).await;
        })
        .await
    });
    Ok(Running {
        address,
        gateway,
        first_operator_token,
        shutdown,
        server,
        worker,
        leases,
    })
}
