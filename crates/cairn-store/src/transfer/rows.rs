//! Rows as plain values: read from either backend by column kind, bound
//! into PostgreSQL, encoded for resume keys and checksums.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::tables::{Kind, Table};
use crate::StoreError;

/// One column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// TEXT.
    Text(Option<String>),
    /// INTEGER.
    Int(Option<i64>),
    /// REAL.
    Real(Option<f64>),
    /// Boolean (0/1 in SQLite).
    Bool(Option<bool>),
    /// BLOB.
    Blob(Option<Vec<u8>>),
}

macro_rules! read_row {
    ($row:expr, $table:expr) => {{
        let row = $row;
        $table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                Ok(match kind {
                    Kind::Text => Val::Text(row.try_get(i)?),
                    Kind::Int => Val::Int(row.try_get(i)?),
                    Kind::Real => Val::Real(row.try_get(i)?),
                    Kind::Bool => Val::Bool(row.try_get(i)?),
                    Kind::Blob => Val::Blob(row.try_get(i)?),
                })
            })
            .collect::<Result<Vec<Val>, sqlx::Error>>()
            .map_err(StoreError::from)
    }};
}

/// A SQLite row's values.
pub fn from_sqlite(row: &SqliteRow, table: &Table) -> Result<Vec<Val>, StoreError> {
    read_row!(row, table)
}

/// A PostgreSQL row's values.
pub fn from_pg(row: &PgRow, table: &Table) -> Result<Vec<Val>, StoreError> {
    read_row!(row, table)
}

/// A key as stored in the progress table (JSON: strings and numbers).
pub fn key_to_json(key: &[Val]) -> String {
    let parts: Vec<serde_json::Value> = key
        .iter()
        .map(|v| match v {
            Val::Text(Some(s)) => serde_json::Value::String(s.clone()),
            Val::Int(Some(n)) => serde_json::Value::from(*n),
            _ => serde_json::Value::Null,
        })
        .collect();
    serde_json::Value::Array(parts).to_string()
}

/// A key back from the progress table.
pub fn key_from_json(text: &str, table: &Table) -> Result<Vec<Val>, StoreError> {
    let parts: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| StoreError::corrupt("cairn_migrate_progress", e))?;
    if parts.len() != table.key.len() {
        return Err(StoreError::corrupt(
            "cairn_migrate_progress",
            format!("key of {} has {} parts", table.name, parts.len()),
        ));
    }
    Ok(parts
        .into_iter()
        .map(|p| match p {
            serde_json::Value::String(s) => Val::Text(Some(s)),
            other => Val::Int(other.as_i64()),
        })
        .collect())
}

/// Feeds a row into a checksum, unambiguously (lengths and kinds are part
/// of it, so no two different rows hash alike by concatenation).
pub fn hash_row(h: &mut sha2::Sha256, row: &[Val]) {
    use sha2::Digest;
    for v in row {
        match v {
            Val::Text(Some(s)) => {
                h.update(b"s");
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Val::Int(Some(n)) => {
                h.update(b"i");
                h.update(n.to_le_bytes());
            }
            Val::Real(Some(x)) => {
                h.update(b"r");
                h.update(x.to_bits().to_le_bytes());
            }
            Val::Bool(Some(b)) => h.update(if *b { b"t" } else { b"f" }),
            Val::Blob(Some(b)) => {
                h.update(b"x");
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Val::Text(None)
            | Val::Int(None)
            | Val::Real(None)
            | Val::Bool(None)
            | Val::Blob(None) => h.update(b"n"),
        }
    }
}

/// Binds a value into a PostgreSQL insert.
pub fn push_pg(b: &mut sqlx::query_builder::Separated<'_, sqlx::Postgres, &'static str>, v: Val) {
    match v {
        Val::Text(x) => b.push_bind(x),
        Val::Int(x) => b.push_bind(x),
        Val::Real(x) => b.push_bind(x),
        Val::Bool(x) => b.push_bind(x),
        Val::Blob(x) => b.push_bind(x),
    };
}
