//! Reading rows back into the engine's records, and the conversions both ways.

use std::str::FromStr;

use portcullis::crypto::SecretHash;
use portcullis::model::{Cursor, Page, PageRequest};
use portcullis::store::StoreResult;
use portcullis::{StoreError, Timestamp};
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;

use crate::Db;

/// A query with its parameters bound.
pub(crate) type Bound<'q> = Query<'q, Postgres, PgArguments>;

/// Running a query with its parameters bound, as the storage contract wants the answer.
pub(crate) trait Run {
    /// The record it finds, if any, read by `read`.
    async fn one<T>(
        self,
        pool: &PgPool,
        read: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>>;

    /// Every record it finds, read by `read`.
    async fn all<T>(self, pool: &PgPool, read: fn(&PgRow) -> StoreResult<T>)
    -> StoreResult<Vec<T>>;

    /// How many rows it changed.
    async fn affected(self, pool: &PgPool) -> StoreResult<u64>;
}

impl Run for Bound<'_> {
    async fn one<T>(
        self,
        pool: &PgPool,
        read: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.fetch_optional(pool)
            .await
            .db()?
            .as_ref()
            .map(read)
            .transpose()
    }

    async fn all<T>(
        self,
        pool: &PgPool,
        read: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.fetch_all(pool).await.db()?.iter().map(read).collect()
    }

    async fn affected(self, pool: &PgPool) -> StoreResult<u64> {
        Ok(self.execute(pool).await.db()?.rows_affected())
    }
}

/// A column of a row, or [`StoreError::Corrupt`] naming the record kind.
pub(crate) fn col<'r, T>(row: &'r PgRow, name: &str, what: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    sqlx::Row::try_get(row, name).map_err(|_| StoreError::Corrupt { what })
}

/// A timestamp column.
pub(crate) fn ts(row: &PgRow, name: &str, what: &'static str) -> StoreResult<Timestamp> {
    col::<i64>(row, name, what).map(Timestamp::from_unix_millis)
}

/// A nullable timestamp column.
pub(crate) fn ts_opt(
    row: &PgRow,
    name: &str,
    what: &'static str,
) -> StoreResult<Option<Timestamp>> {
    Ok(col::<Option<i64>>(row, name, what)?.map(Timestamp::from_unix_millis))
}

/// A `u64` as a `BIGINT` (revisions, steps, generations: far below 2⁶³ in practice).
pub(crate) fn int(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::backend("value out of range for BIGINT"))
}

/// A non-negative `BIGINT` column as a `u64`.
pub(crate) fn uint(row: &PgRow, name: &str, what: &'static str) -> StoreResult<u64> {
    u64::try_from(col::<i64>(row, name, what)?).map_err(|_| StoreError::Corrupt { what })
}

/// A keyed secret hash column (32 bytes).
pub(crate) fn secret_hash(bytes: Vec<u8>, what: &'static str) -> StoreResult<SecretHash> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt { what })?;
    Ok(SecretHash::from_bytes(bytes))
}

/// Parses text a column holds into an engine type.
pub(crate) fn parse<T: FromStr>(text: &str, what: &'static str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt { what })
}

/// The position after which a page starts: the cursor this adapter issued (an id).
pub(crate) fn after<T: FromStr>(page: &PageRequest) -> StoreResult<Option<T>> {
    page.cursor
        .as_ref()
        .map(|c| c.as_str().parse().map_err(|_| StoreError::InvalidCursor))
        .transpose()
}

/// How many rows to fetch for a page: one more than it holds, to know whether more follow.
pub(crate) fn fetch_limit(page: &PageRequest) -> i64 {
    i64::try_from(page.effective_limit()).unwrap_or(i64::MAX) + 1
}

/// A page from rows fetched with [`fetch_limit`]; the cursor is the last item's key.
pub(crate) fn page<T, K: ToString>(
    mut items: Vec<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> K,
) -> Page<T> {
    let limit = page.effective_limit();
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match items.last() {
        Some(last) if more => Some(Cursor::new(key(last).to_string())),
        _ => None,
    };
    Page { items, next_cursor }
}
