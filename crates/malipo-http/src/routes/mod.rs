//! One module per resource; each exposes `router()`.

pub mod admin;
pub mod api_keys;
pub mod balance;
pub mod bank;
pub mod conversions;
pub mod customers;
pub mod desk;
pub mod hooks;
pub mod payments;
pub mod payouts;
pub mod pools;
pub mod refunds;
pub mod stream;
pub mod system;
pub mod trading;
pub mod vouchers;
pub mod webhooks;

use serde::Deserialize;
use utoipa::ToSchema;

/// The body of POSTs that take no parameters (`{}` or empty).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}
