//! AMM liquidity pools: one row per pool and mode with its reserves and
//! shares outstanding, read under a row lock by every operation.

use crate::{Conn, StoreError, corrupt, run};

/// A pool's row. Reserves and shares are minor units / shares (`u128`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    pub id: String,
    pub livemode: bool,
    pub assets: [String; 2],
    pub fee_bps: u16,
    /// `active` or `halted`.
    pub status: String,
    pub reserves: [u128; 2],
    pub shares_total: u128,
    pub created: i64,
    pub updated: i64,
}

#[derive(sqlx::FromRow)]
struct PoolRow {
    id: String,
    livemode: bool,
    asset_a: String,
    asset_b: String,
    fee_bps: i64,
    status: String,
    reserve_a: String,
    reserve_b: String,
    shares_total: String,
    created: i64,
    updated: i64,
}

fn amount(id: &str, column: &str, text: &str) -> Result<u128, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("{id}.{column} = {text:?} is not a number")))
}

impl TryFrom<PoolRow> for PoolRecord {
    type Error = StoreError;
    fn try_from(row: PoolRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        Ok(PoolRecord {
            fee_bps: u16::try_from(row.fee_bps)
                .map_err(|_| corrupt(format!("{id}.fee_bps is out of range")))?,
            reserves: [
                amount(id, "reserve_a", &row.reserve_a)?,
                amount(id, "reserve_b", &row.reserve_b)?,
            ],
            shares_total: amount(id, "shares_total", &row.shares_total)?,
            id: row.id,
            livemode: row.livemode,
            assets: [row.asset_a, row.asset_b],
            status: row.status,
            created: row.created,
            updated: row.updated,
        })
    }
}

impl Conn<'_> {
    /// Inserts a pool's row for one mode; answers false when it exists.
    pub async fn insert_trading_pool(&mut self, pool: &PoolRecord) -> Result<bool, StoreError> {
        let inserted = run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_pools (id, livemode, asset_a, asset_b, fee_bps, status,
                     reserve_a, reserve_b, shares_total, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id, livemode) DO NOTHING",
            )
            .bind(&pool.id)
            .bind(pool.livemode)
            .bind(&pool.assets[0])
            .bind(&pool.assets[1])
            .bind(i64::from(pool.fee_bps))
            .bind(&pool.status)
            .bind(pool.reserves[0].to_string())
            .bind(pool.reserves[1].to_string())
            .bind(pool.shares_total.to_string())
            .bind(pool.created)
            .bind(pool.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    /// A pool in one mode; `lock` takes its row until commit on PostgreSQL
    /// (every operation on a pool is serialized on it).
    pub async fn trading_pool(
        &mut self,
        id: &str,
        livemode: bool,
        lock: bool,
    ) -> Result<Option<PoolRecord>, StoreError> {
        let row: Option<PoolRow> = run!(self, |c, postgres| {
            let sql = if postgres && lock {
                "SELECT * FROM trading_pools WHERE id = $1 AND livemode = $2 FOR UPDATE"
            } else {
                "SELECT * FROM trading_pools WHERE id = $1 AND livemode = $2"
            };
            sqlx::query_as(sql)
                .bind(id)
                .bind(livemode)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(PoolRecord::try_from).transpose()
    }

    /// Every pool of one mode, by id; `lock` takes every row (in id order,
    /// so two callers never deadlock) until commit on PostgreSQL.
    pub async fn trading_pools(
        &mut self,
        livemode: bool,
        lock: bool,
    ) -> Result<Vec<PoolRecord>, StoreError> {
        let rows: Vec<PoolRow> = run!(self, |c, postgres| {
            let sql = if postgres && lock {
                "SELECT * FROM trading_pools WHERE livemode = $1 ORDER BY id FOR UPDATE"
            } else {
                "SELECT * FROM trading_pools WHERE livemode = $1 ORDER BY id"
            };
            sqlx::query_as(sql).bind(livemode).fetch_all(&mut **c).await
        })?;
        rows.into_iter().map(PoolRecord::try_from).collect()
    }

    /// Writes a pool's state and status.
    pub async fn update_trading_pool(&mut self, pool: &PoolRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE trading_pools SET reserve_a = $1, reserve_b = $2, shares_total = $3,
                     status = $4, updated = $5 WHERE id = $6 AND livemode = $7",
            )
            .bind(pool.reserves[0].to_string())
            .bind(pool.reserves[1].to_string())
            .bind(pool.shares_total.to_string())
            .bind(&pool.status)
            .bind(pool.updated)
            .bind(&pool.id)
            .bind(pool.livemode)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }
}
