//! Book ownership leases (`trading_book_leases`, migration 0020): which
//! node runs a book's commands and where the others forward them. Claims
//! are one conditional upsert, so two nodes racing for an expired lease
//! end with exactly one holder.

use crate::{Conn, StoreError, run};

/// Who owns a book until when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookLease {
    pub book_id: String,
    pub node_id: String,
    /// Where the node takes forwarded commands (its advertised URL).
    pub node_url: String,
    /// Unix ms; the lease is live before it.
    pub expires_ms: i64,
}

impl Conn<'_> {
    /// Takes the lease of `book_id` for `node_id` until `expires_ms`, or
    /// renews it, unless another node holds it past `now_ms`; answers the
    /// lease as it stands after (this node's, or the live holder's).
    pub async fn claim_book_lease(
        &mut self,
        book_id: &str,
        node_id: &str,
        node_url: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<BookLease, StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_book_leases (book_id, node_id, node_url, expires_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (book_id) DO UPDATE SET node_id = excluded.node_id,
                     node_url = excluded.node_url, expires_ms = excluded.expires_ms
                 WHERE trading_book_leases.node_id = excluded.node_id
                     OR trading_book_leases.expires_ms <= $5",
            )
            .bind(book_id)
            .bind(node_id)
            .bind(node_url)
            .bind(expires_ms)
            .bind(now_ms)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        let lease: Option<BookLease> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM trading_book_leases WHERE book_id = $1")
                .bind(book_id)
                .fetch_optional(&mut **c)
                .await
        })?;
        lease.ok_or_else(|| StoreError::Corrupt(format!("the lease of {book_id} vanished")))
    }

    /// Extends every live lease `node_id` holds to `expires_ms`; answers
    /// the leases it holds after.
    pub async fn renew_book_leases(
        &mut self,
        node_id: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Vec<BookLease>, StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE trading_book_leases SET expires_ms = $1 WHERE node_id = $2 AND expires_ms > $3",
            )
            .bind(expires_ms)
            .bind(node_id)
            .bind(now_ms)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        let leases: Vec<BookLease> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM trading_book_leases WHERE node_id = $1 AND expires_ms > $2 ORDER BY book_id",
            )
            .bind(node_id)
            .bind(now_ms)
            .fetch_all(&mut **c)
            .await
        })?;
        Ok(leases)
    }

    /// Gives up every lease of `node_id` (a node stopping hands its books
    /// over at once instead of after expiry).
    pub async fn release_book_leases(&mut self, node_id: &str) -> Result<u64, StoreError> {
        let released = run!(self, |c| {
            sqlx::query("DELETE FROM trading_book_leases WHERE node_id = $1")
                .bind(node_id)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(released)
    }

    /// Every lease, live or not, by book.
    pub async fn book_leases(&mut self) -> Result<Vec<BookLease>, StoreError> {
        let leases: Vec<BookLease> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM trading_book_leases ORDER BY book_id")
                .fetch_all(&mut **c)
                .await
        })?;
        Ok(leases)
    }
}
