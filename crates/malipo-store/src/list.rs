//! Cursor pagination over any merchant-owned table, Stripe style: newest
//! first by id (ids are time-sortable), `starting_after` / `ending_before`
//! cursors, and one extra row fetched to answer `has_more`.

use crate::{Conn, StoreError, run};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, QueryBuilder};

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The newest objects.
    Newest,
    /// Objects older than this id.
    StartingAfter(String),
    /// Objects newer than this id (the page before).
    EndingBefore(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// 1 ..= 100; checked by the caller.
    pub limit: u32,
    pub cursor: Cursor,
}

/// One `AND column <op> value` condition. The column and operator are
/// `'static` SQL written in this crate's callers' code, never user input.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    TextEquals(&'static str, String),
    BoolEquals(&'static str, bool),
    IntAtLeast(&'static str, i64),
    IntAtMost(&'static str, i64),
}

pub(crate) trait ListRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> ListRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// Builds `SELECT * FROM table WHERE filters… ORDER BY id … LIMIT n+1` on a
/// query builder of either backend.
macro_rules! build_page_query {
    ($builder:ident, $table:expr, $filters:expr, $page:expr) => {{
        $builder.push("SELECT * FROM ");
        $builder.push($table);
        $builder.push(" WHERE 1 = 1");
        for filter in $filters {
            match filter {
                Filter::TextEquals(column, value) => {
                    $builder
                        .push(format_args!(" AND {column} = "))
                        .push_bind(value.clone());
                }
                Filter::BoolEquals(column, value) => {
                    $builder
                        .push(format_args!(" AND {column} = "))
                        .push_bind(*value);
                }
                Filter::IntAtLeast(column, value) => {
                    $builder
                        .push(format_args!(" AND {column} >= "))
                        .push_bind(*value);
                }
                Filter::IntAtMost(column, value) => {
                    $builder
                        .push(format_args!(" AND {column} <= "))
                        .push_bind(*value);
                }
            }
        }
        match &$page.cursor {
            Cursor::Newest => {
                $builder.push(" ORDER BY id DESC");
            }
            Cursor::StartingAfter(id) => {
                $builder
                    .push(" AND id < ")
                    .push_bind(id.clone())
                    .push(" ORDER BY id DESC");
            }
            Cursor::EndingBefore(id) => {
                $builder
                    .push(" AND id > ")
                    .push_bind(id.clone())
                    .push(" ORDER BY id ASC");
            }
        }
        $builder
            .push(" LIMIT ")
            .push_bind(i64::from($page.limit) + 1);
    }};
}

impl Conn<'_> {
    /// [`Conn::list_page`], each row converted to its record type.
    pub(crate) async fn list_records<R, T>(
        &mut self,
        table: &'static str,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<T>, bool), StoreError>
    where
        R: ListRow,
        T: TryFrom<R, Error = StoreError>,
    {
        let (rows, has_more) = self.list_page::<R>(table, filters, page).await?;
        Ok((
            rows.into_iter()
                .map(T::try_from)
                .collect::<Result<_, _>>()?,
            has_more,
        ))
    }

    /// One page of `table`'s rows matching `filters`, newest first, and
    /// whether more rows lie beyond the page in the direction of travel.
    pub(crate) async fn list_page<R: ListRow>(
        &mut self,
        table: &'static str,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<R>, bool), StoreError> {
        let mut rows: Vec<R> = run!(self, |c| {
            let mut builder = QueryBuilder::new("");
            build_page_query!(builder, table, filters, page);
            builder.build_query_as::<R>().fetch_all(&mut **c).await
        })?;
        let limit = page.limit as usize;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        if matches!(page.cursor, Cursor::EndingBefore(_)) {
            rows.reverse();
        }
        Ok((rows, has_more))
    }
}
