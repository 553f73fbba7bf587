//! Balances, read from the ledger, and the merchant's balance transactions.

use crate::auth::MerchantContext;
use crate::payments::{created_filters, owner_filters};
use crate::{Gateway, GatewayResult, ledger_entries};
use malipo_core::objects::{Balance, BalanceAmount, BalanceTransaction, List, Scope};
use malipo_ledger::VerifyReport;
use malipo_store::Page;
use serde::Deserialize;
use utoipa::IntoParams;

/// `GET /v1/balance_transactions` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct BalanceTransactionFilters {
    /// `payment`, `refund`, `payout` or `payout_failure`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only entries caused by this payment, refund or payout.
    pub source: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

fn to_u64(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl Gateway {
    /// Available: posted credits less posted and reserved debits (money the
    /// merchant can be paid out). Pending: payments still processing. In
    /// transit: payouts sent and not yet reported paid.
    pub async fn balance(&self, context: &MerchantContext) -> GatewayResult<Balance> {
        context.require(Scope::ReadOnly)?;
        let prefix =
            ledger_entries::merchant_account_prefix(context.livemode(), &context.merchant_id);
        let mut reader = self.store().reader().await?;
        let accounts = reader.conn().ledger_accounts_with_prefix(&prefix).await?;
        let mut balance = Balance {
            object: "balance",
            livemode: context.livemode(),
            available: vec![],
            pending: vec![],
            in_transit: vec![],
        };
        for account in accounts {
            if account
                .id
                .ends_with(ledger_entries::PAYOUTS_IN_TRANSIT_SUFFIX)
            {
                balance.in_transit.push(BalanceAmount {
                    currency: account.asset,
                    amount: to_u64(account.credits_posted.saturating_sub(account.debits_posted)),
                });
                continue;
            }
            let debits = account.debits_posted.saturating_add(account.debits_pending);
            balance.available.push(BalanceAmount {
                currency: account.asset.clone(),
                amount: to_u64(account.credits_posted.saturating_sub(debits)),
            });
            balance.pending.push(BalanceAmount {
                currency: account.asset,
                amount: to_u64(account.credits_pending),
            });
        }
        Ok(balance)
    }

    pub async fn balance_transactions(
        &self,
        context: &MerchantContext,
        filters: &BalanceTransactionFilters,
        page: &Page,
    ) -> GatewayResult<List<BalanceTransaction>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(kind) = &filters.kind {
            conditions.push(malipo_store::Filter::TextEquals("kind", kind.clone()));
        }
        if let Some(source) = &filters.source {
            conditions.push(malipo_store::Filter::TextEquals(
                "source_id",
                source.clone(),
            ));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (rows, has_more) = reader
            .conn()
            .balance_transactions(&conditions, page)
            .await?;
        Ok(List::new(rows, has_more))
    }

    /// Proves the ledger: debits equal credits per asset, and every stored
    /// balance equals the sum of its transfers.
    pub async fn verify_ledger(&self) -> GatewayResult<VerifyReport> {
        let mut reader = self.store().reader().await?;
        let (accounts, transfers) = reader.conn().ledger_everything().await?;
        Ok(malipo_ledger::verify(&accounts, &transfers))
    }
}
