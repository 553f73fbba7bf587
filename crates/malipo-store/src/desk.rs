//! The buy/sell desk's quotes and trades (`migrations/0018_desk.sql`):
//! insert, read, list, the once-only claim of a quote, and trade updates.
//! `body` is the API object as JSON, written and read by the gateway.

use crate::list::Filter;
use crate::{Conn, Page, StoreError, run};

/// A locked desk quote as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeskQuoteRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub customer_id: String,
    pub expires_at: i64,
    /// The trade that used it.
    pub trade_id: Option<String>,
    pub body: String,
    pub created: i64,
}

/// A desk trade as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeskTradeRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub customer_id: String,
    pub status: String,
    pub payment_id: Option<String>,
    pub body: String,
    pub created: i64,
}

impl Conn<'_> {
    pub async fn insert_desk_quote(&mut self, quote: &DeskQuoteRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO desk_quotes (id, merchant_id, livemode, customer_id, expires_at,
                     trade_id, body, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&quote.id)
            .bind(&quote.merchant_id)
            .bind(quote.livemode)
            .bind(&quote.customer_id)
            .bind(quote.expires_at)
            .bind(&quote.trade_id)
            .bind(&quote.body)
            .bind(quote.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// A merchant's desk quote in one mode.
    pub async fn desk_quote(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<DeskQuoteRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM desk_quotes WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?)
    }

    /// Marks an unused, unexpired quote used by `trade_id`, in one
    /// conditional statement; answers whether it did (once per quote).
    pub async fn claim_desk_quote(
        &mut self,
        id: &str,
        trade_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE desk_quotes SET trade_id = $1
                 WHERE id = $2 AND trade_id IS NULL AND expires_at > $3",
            )
            .bind(trade_id)
            .bind(id)
            .bind(now)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    pub async fn insert_desk_trade(&mut self, trade: &DeskTradeRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO desk_trades (id, merchant_id, livemode, customer_id, status,
                     payment_id, body, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&trade.id)
            .bind(&trade.merchant_id)
            .bind(trade.livemode)
            .bind(&trade.customer_id)
            .bind(&trade.status)
            .bind(&trade.payment_id)
            .bind(&trade.body)
            .bind(trade.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Moves a trade from `from` to `status` with its new body; answers
    /// whether it was still in `from` (a conditional update, so two
    /// settlements of one trade cannot both win).
    pub async fn update_desk_trade(
        &mut self,
        id: &str,
        from: &str,
        status: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE desk_trades SET status = $1, body = $2 WHERE id = $3 AND status = $4",
            )
            .bind(status)
            .bind(body)
            .bind(id)
            .bind(from)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// A merchant's desk trade in one mode.
    pub async fn desk_trade(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<DeskTradeRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM desk_trades WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?)
    }

    /// The trade a payment pays for, if any.
    pub async fn desk_trade_for_payment(
        &mut self,
        payment_id: &str,
    ) -> Result<Option<DeskTradeRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM desk_trades WHERE payment_id = $1")
                .bind(payment_id)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// Every pending trade of both modes (buys waiting for their
    /// payment; each ends with its payment, within the payment window or
    /// the payment's expiry), for `malipo trading check`.
    pub async fn pending_desk_trades(&mut self) -> Result<Vec<DeskTradeRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM desk_trades WHERE status = 'pending' ORDER BY id")
                .fetch_all(&mut **c)
                .await
        })?)
    }

    /// One page of trades, newest first.
    pub async fn desk_trades(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<DeskTradeRecord>, bool), StoreError> {
        self.list_page::<DeskTradeRecord>("desk_trades", filters, page)
            .await
    }
}
