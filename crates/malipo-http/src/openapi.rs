//! The OpenAPI 3.1 document, generated from the handlers' annotations, and
//! a Swagger UI whose assets are compiled into the binary (no CDN).

use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{self, NoParameters};
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "secret_key",
            bearer("A merchant secret key: `sk_test_…` or `sk_live_…`"),
        );
        components.add_security_scheme("operator_token", bearer("An operator token: `op_…`"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Malipo API",
        description = "One integration for M-Pesa, MTN MoMo, Airtel Money, cards, bank transfer, vouchers and crypto.\n\n\
            Sandbox test numbers (last four digits of `customer.phone`, method `sandbox`): `0000` succeeds at once; \
            `0002` fails (`insufficient_funds`); `0003` is `processing` then succeeds about a second later; `0004` is \
            `processing` then fails (`cancelled_by_user`); `0005` stays `processing` until the payment expires; \
            anything else succeeds at once.",
    ),
    paths(
        routes::payments::create, routes::payments::list, routes::payments::retrieve,
        routes::payments::confirm, routes::payments::cancel, routes::payments::capture,
        routes::refunds::create, routes::refunds::list, routes::refunds::retrieve,
        routes::payouts::create, routes::payouts::list, routes::payouts::retrieve,
        routes::balance::balance, routes::balance::transactions,
        routes::api_keys::create, routes::api_keys::list, routes::api_keys::update,
        routes::api_keys::revoke,
        routes::admin::create_merchant, routes::admin::list_merchants, routes::admin::retrieve_merchant,
        routes::admin::create_key, routes::admin::update_key, routes::admin::retrieve_payment, routes::admin::verify_ledger,
        routes::admin::audit_log,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::retrieve, routes::webhooks::update,
        routes::webhooks::delete, routes::webhooks::roll_secret, routes::webhooks::endpoint_deliveries,
        routes::webhooks::list_events, routes::webhooks::retrieve_event, routes::webhooks::event_deliveries,
        routes::webhooks::redeliver,
        routes::hooks::receive, routes::hooks::create_account, routes::hooks::list_accounts,
        routes::hooks::register_c2b,
        routes::hooks::providers, routes::hooks::stats, routes::hooks::health, routes::hooks::inbound_log,
        routes::vouchers::create_batch, routes::vouchers::list_batches, routes::vouchers::list_vouchers,
        routes::vouchers::validate,
        routes::bank::create_account, routes::bank::list_accounts,
        routes::bank::create_account_for_merchant, routes::bank::list_deposits,
        routes::bank::retrieve_deposit, routes::bank::confirm_deposit,
        routes::bank::upload_statement, routes::bank::retrieve_statement,
        routes::bank::confirm_statement,
        routes::customers::create, routes::customers::list, routes::customers::retrieve,
        routes::customers::balances, routes::customers::test_credit,
        routes::customers::create_withdrawal, routes::customers::list_withdrawals,
        routes::customers::create_token,
        routes::trading::create_pair, routes::trading::update_pair, routes::trading::list_pairs,
        routes::trading::create_order, routes::trading::list_orders, routes::trading::retrieve_order,
        routes::trading::cancel_order, routes::trading::book, routes::trading::list_fills,
        routes::desk::price, routes::desk::create_quote, routes::desk::buy, routes::desk::sell,
        routes::desk::list_trades, routes::desk::retrieve_trade, routes::desk::cancel_trade, routes::desk::fund_reserve,
        routes::desk::list_reserves,
        routes::conversions::currencies, routes::conversions::rates,
        routes::conversions::create_quote, routes::conversions::retrieve_quote,
        routes::pools::create_pool, routes::pools::list_pools, routes::pools::retrieve_pool,
        routes::pools::add_liquidity, routes::pools::remove_liquidity, routes::pools::create_swap,
        routes::pools::quote_route, routes::pools::execute_route,
        routes::stream::stream, routes::stream::ws,
    ),
    components(schemas(ErrorBody, ErrorDetail, NoParameters)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
