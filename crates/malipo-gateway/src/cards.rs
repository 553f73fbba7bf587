//! Routing `card` payments: one method, several providers (Paystack,
//! Stripe). A card payment goes to the merchant's card account in this
//! mode; with several, to the first in `malipo_connectors::cards::CARD_PROVIDERS`
//! order (Paystack, then Stripe) that fits the request — a `payment_method`
//! token goes to a provider that takes tokens (Stripe), none to a hosted
//! page (Paystack) — and whose provider takes the payment's currency and
//! customer; else to the first one that fits the token rule, else the first
//! one, which then refuses with a 400 naming the field. The payment keeps that provider as its `connector`, so
//! polls, callbacks and refunds go back to it even if the merchant adds
//! another card account later.

use crate::{ApiError, Gateway, GatewayResult};
use malipo_connectors::Connector;
use malipo_connectors::cards::{CARD_PROVIDERS, takes_token};
use malipo_core::objects::Customer;
use std::sync::Arc;

impl Gateway {
    /// The card connector for a new payment of this merchant (see the
    /// module docs); a 400 naming `method` when it has no card account.
    pub(crate) async fn card_connector(
        &self,
        merchant_id: &str,
        livemode: bool,
        customer: &Customer,
        currency: &str,
        amount: u64,
        payment_method: Option<&str>,
    ) -> GatewayResult<Arc<dyn Connector>> {
        let mut accounts = Vec::new();
        {
            let mut reader = self.store().reader().await?;
            let mut conn = reader.conn();
            for provider in CARD_PROVIDERS {
                if conn
                    .connector_account_for(merchant_id, livemode, provider)
                    .await?
                    .is_some()
                {
                    accounts.push(*provider);
                }
            }
        }
        let connectors: Vec<Arc<dyn Connector>> = accounts
            .iter()
            .filter_map(|provider| self.connectors().by_name(provider).cloned())
            .collect();
        let takes = |connector: &Arc<dyn Connector>| {
            connector
                .check_payment(&mut customer.clone(), currency, amount)
                .is_ok()
        };
        let fits = |connector: &&Arc<dyn Connector>| {
            takes_token(connector.name()) == payment_method.is_some()
        };
        let chosen = connectors
            .iter()
            .filter(fits)
            .find(|connector| takes(connector))
            .or_else(|| connectors.iter().find(fits))
            .or_else(|| connectors.first())
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(
                    "method",
                    format!(
                        "no card connector account ({}) is configured for this merchant in this mode (POST /v1/connector_accounts)",
                        CARD_PROVIDERS.join(" or ")
                    ),
                )
            })?;
        match (takes_token(chosen.name()), payment_method) {
            (true, None) => Err(ApiError::invalid(
                "payment_method",
                format!(
                    "card payments through {} need payment_method: the token the provider's own library gave for the card",
                    chosen.name()
                ),
            )
            .into()),
            (false, Some(_)) => Err(ApiError::invalid(
                "payment_method",
                format!(
                    "card payments through {} take the card on the provider's hosted page: leave payment_method out",
                    chosen.name()
                ),
            )
            .into()),
            _ => Ok(chosen),
        }
    }
}
