//! The API tested as a client uses it: each test starts the real gateway on
//! a random port over a fresh database and talks HTTP to it, once on SQLite
//! and once on PostgreSQL (see `helpers::POSTGRES_URL_VARIABLE`).

mod helpers;

mod admin;
mod airtel;
mod api_key_ips;
mod audit;
mod auth;
mod bank_transfer;
mod bench_load;
mod capture;
mod cards;
mod conversions;
mod crash;
mod crypto;
mod desk;
mod feeds;
mod flutterwave;
mod hostile;
mod idempotency;
mod inbound;
mod mpesa;
mod mpesa_c2b;
mod mpesa_reversal;
mod mtn_momo;
mod nodes;
mod owners;
mod payments;
mod payouts;
mod pools;
mod rate_limits;
mod refunds;
mod relworx;
mod router;
mod secrets_in_logs;
mod system;
mod trading;
mod validation;
mod vouchers;
mod webhooks;
mod withdrawals;
mod ws;
