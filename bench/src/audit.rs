//! The audit log's cost: sealed appends per second on SQLite and
//! PostgreSQL, one writer and eight at once, beside the floor — a plain
//! INSERT of the same row into an unchained table on the same database in
//! the same run — and how fast `verify` checks a chain.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use cairn_core::audit::{Actor, AuditEvent, AuditKey, NewAudit, Verdict};
use cairn_store::{Backend, PgSettings, PgStore, SqliteStore};

/// Entries per measurement.
const N: usize = 2000;

fn entry(i: usize) -> NewAudit {
    NewAudit::now(
        Actor::Agent {
            agent: "default".into(),
            run: format!("run_{i}"),
        },
        AuditEvent::ToolRan {
            run: format!("run_{i}"),
            tool: "exec".into(),
            call: format!("call_{i}"),
            place: cairn_core::audit::Place::Local,
            input_sha256: cairn_core::audit::digest(format!("in {i}").as_bytes()),
            output_sha256: cairn_core::audit::digest(format!("out {i}").as_bytes()),
            is_error: false,
        },
    )
}

/// Appends/s with `writers` tasks sharing `N` entries.
async fn appends<S: Backend>(s: Arc<S>, key: &AuditKey, writers: usize) -> Result<f64> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (s, key) = (s.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(writers) {
                s.append_audit(&key, &[entry(i)]).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(N as f64 / t.elapsed().as_secs_f64())
}

/// Plain INSERTs/s of the same texts into a table with no chain.
async fn plain<DB: sqlx::Database>(pool: sqlx::Pool<DB>, writers: usize) -> Result<f64>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(writers) {
                let e = entry(i);
                let mut conn = pool.acquire().await?;
                sqlx::query("INSERT INTO plain_log (at, actor, event) VALUES ($1, $2, $3)")
                    .bind(e.at)
                    .bind(serde_json::to_string(&e.actor)?)
                    .bind(serde_json::to_string(&e.event)?)
                    .execute(&mut *conn)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(N as f64 / t.elapsed().as_secs_f64())
}

async fn verify_rate<S: Backend>(s: &S, key: &AuditKey) -> Result<(u64, f64)> {
    let t = Instant::now();
    let Verdict::Intact { entries, .. } = s.verify_audit(key, None).await? else {
        anyhow::bail!("the benchmark's own chain did not verify");
    };
    Ok((entries, entries as f64 / t.elapsed().as_secs_f64()))
}

fn row(backend: &str, writers: usize, sealed: f64, floor: f64) {
    println!(
        "  {backend:<10} {writers} writer{}  sealed {sealed:>8.0}/s   plain INSERT {floor:>8.0}/s   ratio {:.2}×",
        if writers == 1 { " " } else { "s" },
        sealed / floor
    );
}

/// `cairn-bench audit`.
pub async fn run() -> Result<()> {
    let key = AuditKey::from_hex(&"5a".repeat(32))?;
    println!(
        "audit log: {N} appends per measurement (sealed: HMAC-SHA256 chain, numbered in one transaction)"
    );
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("audit.db");
    let s = Arc::new(SqliteStore::open_sqlite(&db).await?);
    // The same durability as the store's: WAL, synchronous NORMAL, on every
    // connection of the pool.
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("plain.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let pool = sqlx::SqlitePool::connect_with(opts).await?;
    sqlx::query(
        "CREATE TABLE plain_log (seq INTEGER PRIMARY KEY, at INTEGER, actor TEXT, event TEXT)",
    )
    .execute(&pool)
    .await?;
    for writers in [1, 8] {
        let sealed = appends(s.clone(), &key, writers).await?;
        let floor = plain(pool.clone(), writers).await?;
        row("SQLite", writers, sealed, floor);
    }
    let (n, rate) = verify_rate(&*s, &key).await?;
    println!("  SQLite     verify {n} entries: {rate:.0}/s");

    let url = crate::queue::fresh_db("cairn_bench_audit").await?;
    let pg = Arc::new(PgStore::connect(&url, &PgSettings::default()).await?);
    let pool = sqlx::PgPool::connect(&url).await?;
    sqlx::query(
        "CREATE TABLE plain_log (seq BIGSERIAL PRIMARY KEY, at BIGINT, actor TEXT, event TEXT)",
    )
    .execute(&pool)
    .await?;
    for writers in [1, 8] {
        let sealed = appends(pg.clone(), &key, writers).await?;
        let floor = plain(pool.clone(), writers).await?;
        row("PostgreSQL", writers, sealed, floor);
    }
    let (n, rate) = verify_rate(&*pg, &key).await?;
    println!("  PostgreSQL verify {n} entries: {rate:.0}/s");
    Ok(())
}
