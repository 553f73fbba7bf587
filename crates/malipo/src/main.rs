//! `malipo`: the payment gateway in one binary. See `malipo --help`.

use clap::{Parser, Subcommand, ValueEnum};
use malipo::config::Config;
use malipo_core::Mode;
use malipo_core::objects::Scope;
use malipo_gateway::merchants::{CreateApiKey, CreateMerchant};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

mod bench;

#[derive(Parser)]
#[command(
    name = "malipo",
    version,
    about = "Malipo: one payment gateway for mobile money, cards, bank transfer, vouchers and crypto.",
    long_about = "Malipo: one payment gateway for mobile money, cards, bank transfer, vouchers and crypto.\n\n\
    Configuration comes from defaults, then a TOML file (--config, or ./malipo.toml if present), then MALIPO_* \
    environment variables (e.g. MALIPO_LISTEN=0.0.0.0:8080), then DATABASE_URL. SQLite is the default store \
    (sqlite://malipo.db, created on first start); DATABASE_URL=postgres://… uses PostgreSQL."
)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "MALIPO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: HTTP API, background worker. Migrates the database
    /// first; prints a one-time operator token on an empty database.
    Serve {
        /// Also create a demo merchant and print a test secret key and a curl line.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage operator (admin) tokens.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Inspect the ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Inspect the trading venue.
    Trading {
        #[command(subcommand)]
        command: TradingCommand,
    },
    /// Measure throughput (ledger transfers/s, payments/s) on this machine.
    Bench(bench::BenchArgs),
    /// Run a local simulator of a provider's API (mpesa, mtn-momo, airtel,
    /// relworx, …) that speaks its wire format, or of an exchange-rate feed
    /// (rates), until Ctrl-C.
    Simulate {
        /// mpesa (Daraja), mtn-momo, airtel, relworx, paystack, flutterwave,
        /// stripe, nowpayments, or rates (`GET /rates?base=usd`).
        provider: String,
        /// 0 picks a free port.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// How long before the simulator sends its callbacks.
        #[arg(long, default_value_t = 1000)]
        callback_delay_ms: u64,
    },
}

#[derive(Subcommand)]
enum MerchantCommand {
    /// Create a merchant; prints its test and live secret keys (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List merchants.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Test,
    Live,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a secret key for a merchant; prints it (shown once).
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_enum, default_value = "test")]
        mode: ModeArg,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated: full, read_only, payments_write, refunds_write.
        #[arg(long, default_value = "full")]
        scopes: String,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create another operator token; prints it (shown once).
    Token,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Prove debits = credits per asset and every balance = the sum of its
    /// entries. Exits 1 if not.
    Verify,
}

#[derive(Subcommand)]
enum TradingCommand {
    /// Rebuild every book from its command log and prove it agrees with
    /// the orders and the ledger (each open order's hold, each customer's
    /// held balance, no balance below zero). Exits 1 if not.
    Check,
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    malipo_gateway::install_crypto_provider();
    match cli.command {
        Command::Serve { demo } => serve(&config, demo).await,
        Command::Migrate => {
            malipo::open_store(&config).await?;
            println!("migrated {}", redact_url(&config.database_url));
            Ok(())
        }
        Command::Merchant { command } => merchant(&config, command).await,
        Command::Key {
            command:
                KeyCommand::Create {
                    merchant,
                    mode,
                    name,
                    scopes,
                },
        } => {
            let gateway = malipo::open_gateway(&config).await?;
            let scopes = scopes
                .split(',')
                .map(|text| {
                    Scope::parse(text.trim())
                        .ok_or_else(|| anyhow::anyhow!("unknown scope `{text}`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mode = match mode {
                ModeArg::Test => Mode::Test,
                ModeArg::Live => Mode::Live,
            };
            let key = gateway
                .create_api_key_for(
                    &merchant,
                    mode,
                    CreateApiKey {
                        name,
                        scopes: Some(scopes),
                        allowed_ips: None,
                    },
                )
                .await?;
            println!("{}", key.secret.unwrap_or_default());
            Ok(())
        }
        Command::Operator {
            command: OperatorCommand::Token,
        } => {
            let gateway = malipo::open_gateway(&config).await?;
            println!("{}", gateway.create_operator_token().await?);
            Ok(())
        }
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => {
            let gateway = malipo::open_gateway(&config).await?;
            let report = gateway.verify_ledger().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Trading {
            command: TradingCommand::Check,
        } => {
            let gateway = malipo::open_gateway(&config).await?;
            let report = gateway.trading_check().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(&config, args).await,
        Command::Simulate {
            provider,
            port,
            callback_delay_ms,
        } => simulate(&provider, port, callback_delay_ms).await,
    }
}

/// The URL without its password, for printing.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn serve(config: &Config, demo: bool) -> anyhow::Result<()> {
    // The demo's exchange rates: a local rate feed simulator as the HTTP
    // rate source, unless the configuration names sources of its own.
    let mut demo_rates = None;
    let mut config = config.clone();
    if demo && config.rate_sources.is_empty() {
        let simulator = malipo_simulators::spawn(
            malipo_simulators::Provider::Rates,
            malipo_simulators::SimulatorConfig::default(),
        )
        .await?;
        config
            .rate_sources
            .push(malipo_gateway::rates::RateSourceConfig {
                name: "demo-feed".into(),
                kind: malipo_gateway::rates::RateSourceKind::Http,
                base: "usd".into(),
                rates: Default::default(),
                as_of: 0,
                url: format!("{}/rates", simulator.base_url()),
                max_age_seconds: 300,
                refresh_ms: 30_000,
                timeout_ms: 2_000,
            });
        demo_rates = Some(simulator);
    }
    let config = &config;
    let running = malipo::start(config).await?;
    let base = format!("http://{}", running.address);
    println!(
        "Malipo listening on {base} (database: {})",
        redact_url(&config.database_url)
    );
    println!("API docs: {base}/docs");
    if let Some(token) = &running.first_operator_token {
        println!("\nOperator token (shown once, keep it safe):\n  {token}");
    }
    // Kept alive until the server stops.
    let mut demo_simulator = None;
    if demo {
        let created = running
            .gateway
            .create_merchant(CreateMerchant {
                name: "Demo Merchant".into(),
                email: None,
                fee_schedules: Default::default(),
            })
            .await?;
        let secret = created.test_secret_key.secret.unwrap_or_default();
        println!(
            "\nDemo merchant {} — test secret key (shown once):\n  {secret}",
            created.merchant.merchant.id
        );
        println!(
            "\nTry a payment:\n  curl -s {base}/v1/payments -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n    -d '{{\"amount\": 1000, \"currency\": \"kes\", \"method\": \"sandbox\", \"customer\": {{\"phone\": \"254700000000\"}}}}'"
        );
        // A local Daraja simulator, and the demo merchant's M-Pesa account
        // pointing at it: an STK push completes end to end with no internet.
        let simulator = malipo_simulators::spawn(
            malipo_simulators::Provider::Mpesa,
            malipo_simulators::SimulatorConfig::default(),
        )
        .await?;
        let mpesa = &simulator.config().mpesa;
        let context = malipo_gateway::auth::MerchantContext {
            merchant_id: created.merchant.merchant.id.clone(),
            mode: Mode::Test,
            key_id: created.test_secret_key.id.clone(),
            scopes: vec![Scope::Full],
            allowed_ips: Default::default(),
        };
        let credentials = [
            ("consumer_key", mpesa.consumer_key.clone()),
            ("consumer_secret", mpesa.consumer_secret.clone()),
            ("shortcode", mpesa.stk_shortcode.clone()),
            ("passkey", mpesa.stk_passkey.clone()),
            // Reversals (refunds) and B2C payouts: the simulator's operator;
            // it treats the security credential as opaque.
            ("initiator", mpesa.initiator_name.clone()),
            ("security_credential", "ZGVtby1wYXNzd29yZA==".to_owned()),
            ("base_url", simulator.base_url().to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        running
            .gateway
            .create_connector_account(
                &context,
                malipo_gateway::inbound::CreateConnectorAccount {
                    provider: Some("mpesa".into()),
                    name: Some("Daraja simulator".into()),
                    credentials,
                    ..Default::default()
                },
            )
            .await?;
        println!(
            "\nM-Pesa (Daraja simulator at {}): the STK push completes about a second later by callback\n  curl -s {base}/v1/payments -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n    -d '{{\"amount\": 10000, \"currency\": \"kes\", \"method\": \"mpesa\", \"customer\": {{\"phone\": \"254708374149\"}}}}'",
            simulator.base_url()
        );
        println!(
            "\nPay out of the balance to an M-Pesa number (B2C, paid when its Result comes back):\n  curl -s {base}/v1/payouts -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n    -d '{{\"amount\": 500, \"currency\": \"kes\", \"method\": \"mpesa\", \"destination\": {{\"phone\": \"254708374149\"}}}}'"
        );
        // A receiving bank account, so bank transfers can be tried too.
        running
            .gateway
            .create_bank_account(
                &context,
                &malipo_gateway::auth::Actor::system(),
                malipo_gateway::bank::CreateBankAccount {
                    currency: Some("kes".into()),
                    bank_name: Some("Demo Bank".into()),
                    account_name: Some("Demo Merchant".into()),
                    account_number: Some("0100200300".into()),
                    ..Default::default()
                },
            )
            .await?;
        println!(
            "\nBank transfer (the payer quotes next_action.reference; an operator confirms it at POST /v1/admin/bank_deposits/{{id}}/confirm):\n  curl -s {base}/v1/payments -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n    -d '{{\"amount\": 150000, \"currency\": \"kes\", \"method\": \"bank_transfer\"}}'"
        );
        demo_simulator = Some(simulator);
        if let Some(rates) = &demo_rates {
            println!(
                "\nConversion (rates from the feed simulator at {}): lock a rate, then pay KES credited in USD\n  curl -s {base}/v1/conversions/quote -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n    -d '{{\"from_currency\": \"kes\", \"to_currency\": \"usd\", \"amount\": 150000}}'",
                rates.base_url()
            );
        }
    }
    let shutdown = running.shutdown_sender();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    let result = running.wait().await;
    if let Some(simulator) = demo_simulator {
        simulator.shutdown().await;
    }
    if let Some(simulator) = demo_rates {
        simulator.shutdown().await;
    }
    result
}

async fn simulate(provider: &str, port: u16, callback_delay_ms: u64) -> anyhow::Result<()> {
    let provider: malipo_simulators::Provider = provider.parse().map_err(|_| {
        anyhow::anyhow!(
            "unknown provider `{provider}`: use mpesa, mtn-momo, airtel, relworx, paystack, flutterwave, stripe, nowpayments or rates"
        )
    })?;
    let config = malipo_simulators::SimulatorConfig {
        callback_delay_ms,
        ..malipo_simulators::SimulatorConfig::on_port(port)
    };
    let running = malipo_simulators::spawn(provider, config).await?;
    println!(
        "{provider} simulator listening on {} (Ctrl-C stops it)",
        running.base_url()
    );
    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn merchant(config: &Config, command: MerchantCommand) -> anyhow::Result<()> {
    let gateway = malipo::open_gateway(config).await?;
    match command {
        MerchantCommand::Create { name, email } => {
            let created = gateway
                .create_merchant(CreateMerchant {
                    name,
                    email,
                    fee_schedules: Default::default(),
                })
                .await?;
            println!("merchant:        {}", created.merchant.merchant.id);
            println!(
                "test secret key: {}",
                created.test_secret_key.secret.unwrap_or_default()
            );
            println!(
                "live secret key: {}",
                created.live_secret_key.secret.unwrap_or_default()
            );
            println!("(the keys are shown once)");
        }
        MerchantCommand::List => {
            let mut page = malipo_store::Page {
                limit: 100,
                cursor: malipo_store::Cursor::Newest,
            };
            loop {
                let list = gateway.merchants(&page).await?;
                for merchant in &list.data {
                    println!("{}\t{}", merchant.merchant.id, merchant.merchant.name);
                }
                match list.data.last() {
                    Some(last) if list.has_more => {
                        page.cursor = malipo_store::Cursor::StartingAfter(last.merchant.id.clone());
                    }
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
