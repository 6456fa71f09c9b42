//! `cairn migrate`: copies a SQLite deployment into PostgreSQL. The source
//! is opened read-only and never changed. Rows go over in key order, in
//! batches that commit together with the copy's progress, so a copy killed
//! at any point resumes where it stopped and never doubles a row. At the
//! end every table's row count and checksum (over its rows in key order)
//! are compared on both sides; the progress table is dropped only when all
//! match.

mod rows;
mod tables;

use std::path::Path;
use std::str::FromStr;

use sha2::Digest;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, PgPool, QueryBuilder, SqlitePool};

pub use rows::Val;
pub use tables::{Kind, TABLES, Table};

use crate::StoreError;

/// Rows per committed batch.
const BATCH: i64 = 500;

/// What can stop a migration.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A store error on either side.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source is not at this binary's schema version.
    #[error(
        "the SQLite database is at schema version {found}, this cairn writes version {expected}: run `cairn status` on it once with this cairn (it upgrades the file), then migrate"
    )]
    SourceVersion {
        /// Its version.
        found: i64,
        /// This binary's.
        expected: i64,
    },
    /// The target holds data and no interrupted copy of this source.
    #[error(
        "the target database is not empty ({0}); migrate into an empty database, or pass --force to erase what it holds first"
    )]
    TargetNotEmpty(String),
    /// The target holds an interrupted copy of another source.
    #[error(
        "the target holds an unfinished copy of {0}; finish that one, or pass --force to start over"
    )]
    OtherSource(String),
    /// Counts or checksums differ after the copy.
    #[error(
        "the copy does not match its source in: {0} (nothing was removed; run migrate again to resume)"
    )]
    Mismatch(String),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

/// Where a copy is.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Table being copied.
    pub table: &'static str,
    /// Rows of it copied so far.
    pub copied: u64,
    /// Rows it holds in the source.
    pub total: u64,
}

/// One table after the copy.
#[derive(Debug, Clone)]
pub struct TableReport {
    /// Its name.
    pub table: &'static str,
    /// Rows in the source.
    pub rows: u64,
    /// SHA-256 of its rows, in key order (the same on both sides).
    pub checksum: String,
}

/// A copy from a SQLite file into a PostgreSQL database.
pub struct Transfer {
    source: SqlitePool,
    source_name: String,
    target: PgPool,
}

impl Transfer {
    /// Opens the source read-only and the target (bringing its schema up
    /// to date).
    pub async fn open(source: &Path, target: &crate::PgStore) -> Result<Self, MigrateError> {
        if !source.exists() {
            return Err(StoreError::Open {
                target: source.display().to_string(),
                reason: "no such file".into(),
            }
            .into());
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::from)?
            .filename(source)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open {
                target: source.display().to_string(),
                reason: e.to_string(),
            })?;
        let found = crate::sqlite::migrate::current_version(&pool).await?;
        let expected = crate::sqlite::migrate::SQLITE.last().map_or(0, |m| m.0);
        if found != expected {
            return Err(MigrateError::SourceVersion { found, expected });
        }
        Ok(Transfer {
            source: pool,
            source_name: source.display().to_string(),
            target: target.pool.clone(),
        })
    }

    /// Copies every table, then verifies. `progress` is called after each
    /// batch.
    pub async fn run(
        &self,
        force: bool,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Vec<TableReport>, MigrateError> {
        self.prepare(force).await?;
        for table in TABLES {
            self.copy(table, &mut progress).await?;
        }
        // New facts must not reuse a copied rowid.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('memories', 'rowid'), GREATEST((SELECT MAX(rowid) FROM memories), 1))",
        )
        .execute(&self.target)
        .await?;
        let reports = self.verify().await?;
        sqlx::query("DROP TABLE cairn_migrate_progress")
            .execute(&self.target)
            .await?;
        Ok(reports)
    }

    /// Starts or resumes: refuses a non-empty target unless forced.
    async fn prepare(&self, force: bool) -> Result<(), MigrateError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS cairn_migrate_progress (
                 table_name TEXT PRIMARY KEY, last_key TEXT NOT NULL, rows BIGINT NOT NULL, source TEXT NOT NULL)",
        )
        .execute(&self.target)
        .await?;
        let sources: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT source FROM cairn_migrate_progress")
                .fetch_all(&self.target)
                .await?;
        let resuming = sources.contains(&self.source_name);
        if let Some(other) = sources.iter().find(|s| **s != self.source_name)
            && !force
        {
            return Err(MigrateError::OtherSource(other.clone()));
        }
        if resuming && !force {
            return Ok(());
        }
        let mut held = Vec::new();
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {}", t.name);
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&self.target)
                .await?;
            if n > 0 {
                held.push(format!("{} {}", n, t.name));
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        if !force {
            return Err(MigrateError::TargetNotEmpty(held.join(", ")));
        }
        self.erase_target().await
    }

    /// `--force`: empties every copied and derived table of the target.
    async fn erase_target(&self) -> Result<(), MigrateError> {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let mut tx = self.target.begin().await?;
        let sql = format!(
            "TRUNCATE {}, messages_fts, episodic_progress, cairn_migrate_progress RESTART IDENTITY CASCADE",
            names.join(", ")
        );
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        sqlx::query("UPDATE memory_generation SET added = 0, removed = 0, live = 0, words = 0")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Copies one table from where an earlier attempt stopped.
    async fn copy(
        &self,
        table: &'static Table,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), MigrateError> {
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            table.name
        )))
        .fetch_one(&self.source)
        .await?;
        let done: Option<(String, i64)> = sqlx::query_as(
            "SELECT last_key, rows FROM cairn_migrate_progress WHERE table_name = $1",
        )
        .bind(table.name)
        .fetch_optional(&self.target)
        .await?;
        let (mut after, mut copied) = match done {
            Some((key, rows)) => (Some(rows::key_from_json(&key, table)?), rows),
            None => (None, 0),
        };
        progress(&Progress {
            table: table.name,
            copied: copied as u64,
            total: total as u64,
        });
        loop {
            let batch = read_sqlite(&self.source, table, after.as_deref()).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            let key = last[..table.key.len()].to_vec();
            let n = batch.len() as i64;
            let mut tx = self.target.begin().await?;
            insert_pg(&mut tx, table, batch).await?;
            sqlx::query(
                "INSERT INTO cairn_migrate_progress (table_name, last_key, rows, source) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (table_name) DO UPDATE SET last_key = excluded.last_key, rows = excluded.rows",
            )
            .bind(table.name)
            .bind(rows::key_to_json(&key))
            .bind(copied + n)
            .bind(&self.source_name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            copied += n;
            after = Some(key);
            progress(&Progress {
                table: table.name,
                copied: copied as u64,
                total: total as u64,
            });
        }
    }

    /// Compares counts and checksums of every table.
    async fn verify(&self) -> Result<Vec<TableReport>, MigrateError> {
        let mut reports = Vec::new();
        let mut differ = Vec::new();
        for table in TABLES {
            let (n_src, sum_src) = checksum(Side::Sqlite(&self.source), table).await?;
            let (n_dst, sum_dst) = checksum(Side::Pg(&self.target), table).await?;
            if n_src != n_dst || sum_src != sum_dst {
                differ.push(format!("{} ({n_src} rows, {n_dst} copied)", table.name));
            }
            reports.push(TableReport {
                table: table.name,
                rows: n_src,
                checksum: sum_src,
            });
        }
        if differ.is_empty() {
            Ok(reports)
        } else {
            Err(MigrateError::Mismatch(differ.join(", ")))
        }
    }
}

/// Either side of a copy, for reading.
pub enum Side<'a> {
    /// The source.
    Sqlite(&'a SqlitePool),
    /// The target.
    Pg(&'a PgPool),
}

/// Rows and SHA-256 of a table, read in key order.
pub async fn checksum(
    side: Side<'_>,
    table: &'static Table,
) -> Result<(u64, String), MigrateError> {
    let mut hash = sha2::Sha256::new();
    let mut after: Option<Vec<Val>> = None;
    let mut n = 0u64;
    loop {
        let batch = match side {
            Side::Sqlite(pool) => read_sqlite(pool, table, after.as_deref()).await?,
            Side::Pg(pool) => read_pg(pool, table, after.as_deref()).await?,
        };
        let Some(last) = batch.last() else {
            break;
        };
        after = Some(last[..table.key.len()].to_vec());
        for row in &batch {
            rows::hash_row(&mut hash, row);
        }
        n += batch.len() as u64;
    }
    let digest = hash.finalize();
    Ok((n, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Binds a key's values to a query of either backend.
macro_rules! bind_all {
    ($query:expr, $values:expr) => {{
        let mut q = $query;
        for v in $values.unwrap_or_default() {
            q = match v.clone() {
                Val::Text(x) => q.bind(x),
                Val::Int(x) => q.bind(x),
                Val::Real(x) => q.bind(x),
                Val::Bool(x) => q.bind(x),
                Val::Blob(x) => q.bind(x),
            };
        }
        q
    }};
}

fn columns(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| c.0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The next batch after `after`, from SQLite (BINARY collation: byte order).
async fn read_sqlite(
    pool: &SqlitePool,
    table: &'static Table,
    after: Option<&[Val]>,
) -> Result<Vec<Vec<Val>>, MigrateError> {
    let key = table.key.join(", ");
    let filter = match after {
        Some(_) => format!(
            "WHERE ({key}) > ({})",
            vec!["?"; table.key.len()].join(", ")
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {BATCH}",
        columns(table),
        table.name
    );
    let rows = bind_all!(sqlx::query(AssertSqlSafe(sql)), after)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| rows::from_sqlite(r, table))
        .collect::<Result<_, _>>()?)
}

/// The next batch after `after`, from PostgreSQL in byte order (`COLLATE
/// "C"`), as SQLite orders text.
async fn read_pg(
    pool: &PgPool,
    table: &'static Table,
    after: Option<&[Val]>,
) -> Result<Vec<Vec<Val>>, MigrateError> {
    let key: Vec<String> = table
        .key
        .iter()
        .map(|k| match table.columns.iter().find(|c| c.0 == *k) {
            Some((_, Kind::Text)) => format!("{k} COLLATE \"C\""),
            _ => k.to_string(),
        })
        .collect();
    let key = key.join(", ");
    let filter = match after {
        Some(_) => {
            let params: Vec<String> = (1..=table.key.len()).map(|i| format!("${i}")).collect();
            format!("WHERE ROW({key}) > ROW({})", params.join(", "))
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {BATCH}",
        columns(table),
        table.name
    );
    let rows = bind_all!(sqlx::query(AssertSqlSafe(sql)), after)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| rows::from_pg(r, table))
        .collect::<Result<_, _>>()?)
}

/// Inserts a batch; rows already there (a resumed batch) are left alone.
async fn insert_pg(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    table: &'static Table,
    batch: Vec<Vec<Val>>,
) -> Result<(), MigrateError> {
    let head = format!("INSERT INTO {} ({}) ", table.name, columns(table));
    let mut q: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(head);
    q.push_values(batch, |mut b, row| {
        for v in row {
            rows::push_pg(&mut b, v);
        }
    });
    q.push(" ON CONFLICT DO NOTHING");
    q.build().execute(&mut **tx).await?;
    Ok(())
}
