//! Memories on PostgreSQL: facts with embeddings, full text by tsvector
//! over the terms cairn analyses itself (`index_terms`, as SQLite's FTS5
//! index holds), ranked by BM25 computed in SQL with FTS5's
//! constants (k1 = 1.2, b = 0.75, IDF floored at 1e-6), so the fusion in
//! cairn-memory reads the same scale from both backends. The vector index
//! is built in process from stored embeddings, as on SQLite.
//!
//! Not shared with SQLite (see `both/`): the full-text and insert-order
//! parts differ throughout (tsvector vs FTS5, advisory lock vs one writer).

use async_trait::async_trait;
use cairn_core::{MemoryRecord, MessageFilter, MessageHit, now_ms};

use super::PgStore;
use crate::StoreError;
use crate::memories::*;

/// `words` (index terms) as a tsquery matching any. Only
/// letters and digits reach the query text, so user input cannot carry
/// tsquery operators.
fn any_of(words: &[String]) -> Option<String> {
    let clean: Vec<String> = words
        .iter()
        .take(64)
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .map(|w| format!("'{w}'"))
        .collect();
    (!clean.is_empty()).then(|| clean.join(" | "))
}

#[async_trait]
impl MemoryStore for PgStore {
    async fn save_memory(&self, m: &NewMemory) -> Result<SavedMemory, StoreError> {
        let mut tx = begin_adding(&self.pool).await?;
        let saved = save_in(&mut tx, m).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn save_memories(&self, ms: &[NewMemory]) -> Result<Vec<SavedMemory>, StoreError> {
        let mut tx = begin_adding(&self.pool).await?;
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            out.push(save_in(&mut tx, m).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn forget_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError> {
        let found = self.get_memory(agent, id).await?;
        sqlx::query("DELETE FROM memories WHERE id = $1")
            .bind(&found.id)
            .execute(&self.pool)
            .await?;
        Ok(found)
    }

    async fn get_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError> {
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories WHERE agent = $1 AND (id = $2 OR (length($2) >= 4 AND
               (starts_with(id, $2) OR starts_with(substr(id, 5), $2))))
             ORDER BY id = $2 DESC LIMIT 2"
        ))
        .bind(agent)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        one_memory(rows, id)
    }

    async fn list_memories(
        &self,
        agent: &str,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MemoryRecord>, StoreError> {
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories WHERE agent = $1 AND ($2::text IS NULL OR user_id = $2)
             ORDER BY updated_at DESC, rowid DESC LIMIT $3"
        ))
        .bind(agent)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| memory_from_row(r).1).collect())
    }

    async fn memories_by_rowid(
        &self,
        rowids: &[i64],
    ) -> Result<Vec<(i64, MemoryRecord)>, StoreError> {
        if rowids.is_empty() {
            return Ok(vec![]);
        }
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories WHERE rowid = ANY($1)"
        ))
        .bind(rowids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(memory_from_row).collect())
    }

    async fn memory_term_counts(
        &self,
        terms: &[String],
        cap: i64,
    ) -> Result<TermCounts, StoreError> {
        let facts: i64 = sqlx::query_scalar("SELECT live FROM memory_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let queries: Vec<String> = terms
            .iter()
            .map(|t| any_of(std::slice::from_ref(t)).unwrap_or_default())
            .collect();
        let matching: Vec<i64> = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM memories
                     WHERE q.text <> '' AND tsv @@ to_tsquery('simple', q.text) LIMIT $2) hits)
             FROM unnest($1::text[]) WITH ORDINALITY AS q(text, i) ORDER BY q.i",
        )
        .bind(&queries)
        .bind(cap.max(1))
        .fetch_all(&self.pool)
        .await?;
        Ok(TermCounts { facts, matching })
    }

    async fn search_memory_text(
        &self,
        agent: &str,
        person: Option<Option<&str>>,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let Some(q) = any_of(terms) else {
            return Ok(vec![]);
        };
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "WITH q AS (SELECT to_tsquery('simple', $1) AS q),
             g AS (SELECT live::float8 AS n,
                          CASE WHEN live > 0 THEN GREATEST(words::float8 / live, 1) ELSE 1 END AS avgdl
                   FROM memory_generation WHERE id = 1),
             lx AS (SELECT DISTINCT u.lexeme FROM unnest(to_tsvector('simple', array_to_string($6::text[], ' '))) u),
             idf AS (SELECT lx.lexeme,
                            GREATEST(ln((g.n - d.n_t + 0.5) / (d.n_t + 0.5)), 1e-6) AS w
                     FROM lx CROSS JOIN g
                     CROSS JOIN LATERAL (SELECT count(*)::float8 AS n_t FROM memories m
                                         WHERE m.tsv @@ quote_literal(lx.lexeme)::tsquery) d),
             cand AS (SELECT m.rowid, m.tsv FROM memories m, q
                      WHERE m.tsv @@ q.q AND m.agent = $2
                        AND (NOT $3 OR m.shared OR m.owner = COALESCE($4, '')))
             SELECT c.rowid,
                    SUM(i.w * (t.tf * 2.2) / (t.tf + 1.2 * (0.25 + 0.75 * d.dl / g.avgdl)))::float8 AS score
             FROM cand c CROSS JOIN g
             CROSS JOIN LATERAL (SELECT cairn_doc_len(c.tsv)::float8 AS dl) d
             CROSS JOIN LATERAL unnest(c.tsv) u
             JOIN idf i ON i.lexeme = u.lexeme
             CROSS JOIN LATERAL (SELECT COALESCE(array_length(u.positions, 1), 1)::float8 AS tf) t
             GROUP BY c.rowid ORDER BY score DESC, c.rowid LIMIT $5",
        )
        .bind(q)
        .bind(agent)
        .bind(person.is_some())
        .bind(person.flatten())
        .bind(limit)
        .bind(terms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn memory_vectors(
        &self,
        model: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredVector>, StoreError> {
        let rows: Vec<VectorRow> = sqlx::query_as(
            "SELECT rowid, agent, owner, shared, embedding FROM memories
             WHERE rowid > $1 AND embed_model = $2 AND embedding IS NOT NULL ORDER BY rowid LIMIT $3",
        )
        .bind(after)
        .bind(model)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(vector_from_row).collect())
    }

    async fn memory_generation(&self) -> Result<(i64, i64), StoreError> {
        Ok(
            sqlx::query_as("SELECT added, removed FROM memory_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn has_memories(&self, agent: &str) -> Result<bool, StoreError> {
        let one: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM memories WHERE agent = $1 LIMIT 1")
                .bind(agent)
                .fetch_optional(&self.pool)
                .await?;
        Ok(one.is_some())
    }

    async fn refresh_memory(
        &self,
        id: &str,
        importance: f64,
        shared: bool,
    ) -> Result<MemoryRecord, StoreError> {
        let row: Option<MemoryRow> = sqlx::query_as(concat!(
            "UPDATE memories SET importance = GREATEST(importance, $1), shared = shared OR $2, updated_at = $3 \
             WHERE id = $4 RETURNING ",
            memory_columns!()
        ))
        .bind(importance)
        .bind(shared)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| memory_from_row(r).1)
            .ok_or_else(|| StoreError::NotFound {
                what: "memory",
                id: id.to_string(),
            })
    }

    async fn memories_missing_vectors(
        &self,
        agent: &str,
        model: &str,
        limit: i64,
    ) -> Result<Vec<(i64, MemoryRecord)>, StoreError> {
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories
             WHERE agent = $1 AND (embed_model IS NULL OR embed_model != $2) ORDER BY rowid LIMIT $3"
        ))
        .bind(agent)
        .bind(model)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(memory_from_row).collect())
    }

    async fn set_memory_vector(
        &self,
        rowid: i64,
        model: &str,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE memories SET embedding = $1, embed_model = $2 WHERE rowid = $3")
            .bind(vector_to_blob(vector))
            .bind(model)
            .bind(rowid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn agent_messages(
        &self,
        agent: &str,
    ) -> Result<Vec<(String, i64, i64, cairn_core::Message)>, StoreError> {
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT m.session_id, m.seq, m.created_at, m.content FROM sessions s
             JOIN messages m ON m.session_id = s.id WHERE s.agent = $1
             ORDER BY m.created_at, m.session_id, m.seq",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        decode_agent_messages(rows)
    }

    async fn index_messages(&self) -> Result<usize, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT m.session_id, m.seq, m.content FROM sessions s
             LEFT JOIN episodic_progress p ON p.session_id = s.id
             JOIN messages m ON m.session_id = s.id AND m.seq > COALESCE(p.seq, 0)
             ORDER BY m.session_id, m.seq",
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let docs = episodic_docs(rows)?;
        let mut tx = self.pool.begin().await?;
        for (session, seq, text) in &docs {
            // Another process may index the same messages: the primary key
            // keeps one copy, the progress row only moves forward.
            if !text.is_empty() {
                sqlx::query(
                    "INSERT INTO messages_fts (session_id, seq, text) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(session)
                .bind(seq)
                .bind(text)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO episodic_progress (session_id, seq) VALUES ($1, $2)
                 ON CONFLICT (session_id) DO UPDATE
                 SET seq = GREATEST(episodic_progress.seq, excluded.seq)",
            )
            .bind(session)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(docs.len())
    }

    async fn search_messages(
        &self,
        query: &str,
        filter: &MessageFilter,
        limit: i64,
    ) -> Result<Vec<MessageHit>, StoreError> {
        let Some(q) = any_of(&index_words(query)) else {
            return Ok(vec![]);
        };
        self.index_messages().await?;
        let rows: Vec<HitRow> = sqlx::query_as(
            "SELECT f.session_id, f.seq, f.text, s.agent, m.run_id, m.role, m.created_at
             FROM messages_fts f
             JOIN messages m ON m.session_id = f.session_id AND m.seq = f.seq
             JOIN sessions s ON s.id = f.session_id
             WHERE f.tsv @@ to_tsquery('cairn', $1)
               AND ($2::text IS NULL OR s.agent = $2)
               AND ($3::text IS NULL OR f.session_id = $3)
               AND ($4::text IS NULL OR s.user_id = $4)
               AND ($5::bigint IS NULL OR m.created_at >= $5)
               AND ($6::bigint IS NULL OR m.created_at < $6)
             ORDER BY ts_rank(f.tsv, to_tsquery('cairn', $1)) DESC, f.session_id, f.seq LIMIT $7",
        )
        .bind(q)
        .bind(&filter.agent)
        .bind(&filter.session_id)
        .bind(&filter.user_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(hit_from_row).collect())
    }
}

/// A memory row and whether the statement inserted it.
type SavedRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    f64,
    Option<String>,
    i64,
    i64,
    bool,
    bool,
);

/// Held by every transaction that adds facts, until it commits: rowids are
/// then given in commit order, which the in-process vector indexes of
/// other processes rely on (they catch up by reading rowids above the last
/// one they saw; a smaller rowid committed later would be skipped).
const MEMORY_INSERT_LOCK: i64 = 0x6361_6972_6e00_0002;

/// A transaction that may add facts, holding `MEMORY_INSERT_LOCK` (once,
/// however many facts it adds) until it ends.
async fn begin_adding(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MEMORY_INSERT_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn save_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    m: &NewMemory,
) -> Result<SavedMemory, StoreError> {
    let now = now_ms();
    // `xmax = 0` tells an insert from an update in one statement, so two
    // processes saving the same fact agree on which one saved it first.
    let row: SavedRow =
        sqlx::query_as(concat!(
            "INSERT INTO memories (id, agent, user_id, text, hash, importance, source, embedding, embed_model, created_at, updated_at, shared, terms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (agent, owner, hash) DO UPDATE SET
                 shared = memories.shared OR excluded.shared,
                 importance = GREATEST(memories.importance, excluded.importance),
                 updated_at = excluded.updated_at,
                 embedding = COALESCE(memories.embedding, excluded.embedding),
                 embed_model = COALESCE(memories.embed_model, excluded.embed_model)
             RETURNING ",
            memory_columns!(),
            ", xmax = 0"
        ))
        .bind(&m.id)
        .bind(&m.agent)
        .bind(&m.user_id)
        .bind(&m.text)
        .bind(&m.hash)
        .bind(m.importance)
        .bind(&m.source)
        .bind(m.embedding.as_deref().map(vector_to_blob))
        .bind(&m.embed_model)
        .bind(m.times.map_or(now, |t| t.0))
        .bind(m.times.map_or(now, |t| t.1))
        .bind(m.shared)
        .bind(terms_text(&m.text))
        .fetch_one(&mut **tx)
        .await?;
    let inserted = row.10;
    let (_, record) = memory_from_row((
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    ));
    Ok(if inserted {
        SavedMemory::New(record)
    } else {
        SavedMemory::Duplicate(record)
    })
}

/// Fills `terms` for facts saved before the store analysed them
/// (migration 0015), a batch per transaction; the tsvector and the word
/// total follow. Idempotent, so coordinators starting together may both
/// run it. Returns how many were filled.
pub(super) async fn fill_terms(pool: &sqlx::PgPool) -> Result<usize, StoreError> {
    let mut filled = 0;
    loop {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT rowid, text FROM memories WHERE terms IS NULL LIMIT 500")
                .fetch_all(pool)
                .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        let (rowids, terms): (Vec<i64>, Vec<String>) = rows
            .iter()
            .map(|(rowid, text)| (*rowid, terms_text(text)))
            .unzip();
        sqlx::query(
            "UPDATE memories m SET terms = t.terms
             FROM unnest($1::bigint[], $2::text[]) AS t(rowid, terms)
             WHERE m.rowid = t.rowid AND m.terms IS NULL",
        )
        .bind(&rowids)
        .bind(&terms)
        .execute(pool)
        .await?;
        filled += rows.len();
    }
}
