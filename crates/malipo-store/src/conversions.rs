//! Conversion quotes (`migrations/0015_conversions.sql`): insert, read, and
//! the conditional claim a conversion payment makes.

use crate::payments::amount_from_db;
use crate::{Conn, StoreError, run};

/// A locked conversion quote as stored. Rates are decimal strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionQuoteRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub from_currency: String,
    pub to_currency: String,
    pub from_amount: u64,
    pub to_amount: u64,
    pub rate: String,
    pub mid_rate: String,
    pub spread_basis_points: i64,
    pub source: String,
    pub rate_as_of: i64,
    pub expires_at: i64,
    pub created: i64,
    /// The payment that used it.
    pub payment_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct QuoteRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    from_currency: String,
    to_currency: String,
    from_amount: String,
    to_amount: String,
    rate: String,
    mid_rate: String,
    spread_basis_points: i64,
    source: String,
    rate_as_of: i64,
    expires_at: i64,
    created: i64,
    payment_id: Option<String>,
}

impl TryFrom<QuoteRow> for ConversionQuoteRecord {
    type Error = StoreError;
    fn try_from(row: QuoteRow) -> Result<Self, StoreError> {
        Ok(ConversionQuoteRecord {
            from_amount: amount_from_db(&row.id, "from_amount", &row.from_amount)?,
            to_amount: amount_from_db(&row.id, "to_amount", &row.to_amount)?,
            id: row.id,
            merchant_id: row.merchant_id,
            livemode: row.livemode,
            from_currency: row.from_currency,
            to_currency: row.to_currency,
            rate: row.rate,
            mid_rate: row.mid_rate,
            spread_basis_points: row.spread_basis_points,
            source: row.source,
            rate_as_of: row.rate_as_of,
            expires_at: row.expires_at,
            created: row.created,
            payment_id: row.payment_id,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_conversion_quote(
        &mut self,
        quote: &ConversionQuoteRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO conversion_quotes (id, merchant_id, livemode, from_currency, to_currency,
                     from_amount, to_amount, rate, mid_rate, spread_basis_points, source, rate_as_of,
                     expires_at, created, payment_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&quote.id)
            .bind(&quote.merchant_id)
            .bind(quote.livemode)
            .bind(&quote.from_currency)
            .bind(&quote.to_currency)
            .bind(quote.from_amount.to_string())
            .bind(quote.to_amount.to_string())
            .bind(&quote.rate)
            .bind(&quote.mid_rate)
            .bind(quote.spread_basis_points)
            .bind(&quote.source)
            .bind(quote.rate_as_of)
            .bind(quote.expires_at)
            .bind(quote.created)
            .bind(&quote.payment_id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// A merchant's quote in one mode.
    pub async fn conversion_quote(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<ConversionQuoteRecord>, StoreError> {
        let row: Option<QuoteRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM conversion_quotes WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(ConversionQuoteRecord::try_from).transpose()
    }

    /// Marks an unused, unexpired quote used by `payment_id`, in one
    /// conditional statement; answers whether it did (once per quote).
    pub async fn claim_conversion_quote(
        &mut self,
        id: &str,
        payment_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE conversion_quotes SET payment_id = $1
                 WHERE id = $2 AND payment_id IS NULL AND expires_at > $3",
            )
            .bind(payment_id)
            .bind(id)
            .bind(now)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }
}
