//! Semantic memories (facts with embeddings, de-duplicated per agent) and
//! full-text search over them and over every message (episodic memory).
//! Ranking and the vector index live in cairn-memory; this is storage.
//!
//! Not shared with PostgreSQL (see `both/`): full text here is an FTS5
//! index with its own query syntax and BM25, there a tsvector with BM25
//! written in SQL; rowids come from SQLite's one writer, there from an
//! advisory lock. Sharing the plain reads would split one table's code
//! over two files for a few lines.

use cairn_core::{MemoryRecord, MessageFilter, MessageHit, now_ms};

use async_trait::async_trait;

use super::SqliteStore;
use crate::StoreError;
use crate::memories::*;

/// Turns free text into an FTS5 query matching any of its words, each
/// quoted so that punctuation and FTS operators in user text are literal.
pub fn fts_query(text: &str) -> Option<String> {
    let words = fts_words(text);
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// The distinct words of `text`, each quoted as an FTS5 string.
fn fts_words(text: &str) -> Vec<String> {
    index_words(text)
        .iter()
        .take(64)
        .map(|w| fts_string(w))
        .collect()
}

/// `word` as an FTS5 string: quoted, so operators in user text are literal.
fn fts_string(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

#[async_trait]
impl MemoryStore for SqliteStore {
    async fn save_memory(&self, m: &NewMemory) -> Result<SavedMemory, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let saved = save_in(&mut tx, m).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn save_memories(&self, ms: &[NewMemory]) -> Result<Vec<SavedMemory>, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            out.push(save_in(&mut tx, m).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn forget_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError> {
        let found = self.get_memory(agent, id).await?;
        let _writing = self.lock_writes().await;
        sqlx::query("DELETE FROM memories WHERE id = ?")
            .bind(&found.id)
            .execute(&self.writer)
            .await?;
        Ok(found)
    }

    async fn get_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError> {
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories WHERE agent = ?1 AND (id = ?2 OR (length(?2) >= 4 AND
               (substr(id, 1, length(?2)) = ?2 OR substr(id, 5, length(?2)) = ?2)))
             ORDER BY id = ?2 DESC LIMIT 2"
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
            " FROM memories
             WHERE agent = ?1 AND (?2 IS NULL OR user_id = ?2)
             ORDER BY updated_at DESC, rowid DESC LIMIT ?3"
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
        let ids = serde_json::to_string(rowids).map_err(|e| StoreError::corrupt("memories", e))?;
        let rows: Vec<MemoryRow> = sqlx::query_as(concat!(
            "SELECT ",
            memory_columns!(),
            " FROM memories WHERE rowid IN (SELECT value FROM json_each(?))"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(memory_from_row).collect())
    }

    async fn memory_term_counts(
        &self,
        terms: &[String],
        cap: i64,
    ) -> Result<TermCounts, StoreError> {
        // Only placeholders are formatted into the text.
        let sql = std::iter::once("SELECT 0, live FROM memory_generation WHERE id = 1".to_string())
            .chain((1..=terms.len()).map(|i| {
                format!(
                    "SELECT {i}, (SELECT count(*) FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?{i} LIMIT ?{}))",
                    terms.len() + 1
                )
            }))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
        for t in terms {
            q = q.bind(fts_string(t));
        }
        let rows = q.bind(cap.max(1)).fetch_all(&self.pool).await?;
        let mut out = TermCounts {
            facts: 0,
            matching: vec![0; terms.len()],
        };
        for (i, n) in rows {
            match i {
                0 => out.facts = n,
                i => {
                    if let Some(slot) = out.matching.get_mut(i as usize - 1) {
                        *slot = n;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn search_memory_text(
        &self,
        agent: &str,
        person: Option<Option<&str>>,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        if terms.is_empty() {
            return Ok(vec![]);
        }
        let q = terms
            .iter()
            .map(|t| fts_string(t))
            .collect::<Vec<_>>()
            .join(" OR ");
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            // CROSS JOIN fixes the order: matches first, then their rows;
            // the planner would otherwise walk the agent's memories and
            // probe the full-text index once per memory.
            "SELECT m.rowid, -bm25(memories_fts) AS score
             FROM memories_fts f CROSS JOIN memories m ON m.rowid = f.rowid
             WHERE memories_fts MATCH ?1 AND m.agent = ?2
               AND (?3 = 0 OR m.shared = 1 OR m.owner = COALESCE(?4, ''))
             ORDER BY bm25(memories_fts), m.rowid LIMIT ?5",
        )
        .bind(q)
        .bind(agent)
        .bind(person.is_some())
        .bind(person.flatten())
        .bind(limit)
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
             WHERE rowid > ? AND embed_model = ? AND embedding IS NOT NULL ORDER BY rowid LIMIT ?",
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
        let one: Option<i64> = sqlx::query_scalar("SELECT 1 FROM memories WHERE agent = ? LIMIT 1")
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
        let _writing = self.lock_writes().await;
        let row: Option<MemoryRow> = sqlx::query_as(concat!(
            "UPDATE memories SET importance = max(importance, ?), shared = max(shared, ?), updated_at = ? \
             WHERE id = ? RETURNING ",
            memory_columns!()
        ))
        .bind(importance)
        .bind(shared)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(r) => Ok(memory_from_row(r).1),
            None => Err(StoreError::NotFound {
                what: "memory",
                id: id.to_string(),
            }),
        }
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
             WHERE agent = ? AND (embed_model IS NULL OR embed_model != ?) ORDER BY rowid LIMIT ?"
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
        let _writing = self.lock_writes().await;
        sqlx::query("UPDATE memories SET embedding = ?, embed_model = ? WHERE rowid = ?")
            .bind(vector_to_blob(vector))
            .bind(model)
            .bind(rowid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn agent_messages(
        &self,
        agent: &str,
    ) -> Result<Vec<(String, i64, i64, cairn_core::Message)>, StoreError> {
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT m.session_id, m.seq, m.created_at, m.content FROM sessions s
             JOIN messages m ON m.session_id = s.id WHERE s.agent = ?
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
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        for (session, seq, text) in &docs {
            // Re-checked inside the write lock: another process may have
            // indexed the same messages meanwhile.
            let done: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM episodic_progress WHERE session_id = ?")
                    .bind(session)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some_and(|d| d >= *seq) {
                continue;
            }
            if !text.is_empty() {
                sqlx::query("INSERT INTO messages_fts (text, session_id, seq) VALUES (?, ?, ?)")
                    .bind(text)
                    .bind(session)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO episodic_progress (session_id, seq) VALUES (?, ?)
                 ON CONFLICT (session_id) DO UPDATE SET seq = excluded.seq",
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
        let Some(q) = fts_query(query) else {
            return Ok(vec![]);
        };
        self.index_messages().await?;
        let rows: Vec<HitRow> = sqlx::query_as(
            "SELECT f.session_id, f.seq, f.text, s.agent, m.run_id, m.role, m.created_at
             FROM messages_fts f
             CROSS JOIN messages m ON m.session_id = f.session_id AND m.seq = f.seq
             CROSS JOIN sessions s ON s.id = f.session_id
             WHERE messages_fts MATCH ?1
               AND (?2 IS NULL OR s.agent = ?2)
               AND (?3 IS NULL OR f.session_id = ?3)
               AND (?4 IS NULL OR s.user_id = ?4)
               AND (?5 IS NULL OR m.created_at >= ?5)
               AND (?6 IS NULL OR m.created_at < ?6)
             ORDER BY bm25(messages_fts) LIMIT ?7",
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

async fn save_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    m: &NewMemory,
) -> Result<SavedMemory, StoreError> {
    let now = now_ms();
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM memories WHERE agent = ? AND owner = COALESCE(?, '') AND hash = ?",
    )
    .bind(&m.agent)
    .bind(&m.user_id)
    .bind(&m.hash)
    .fetch_optional(&mut **tx)
    .await?;
    let new = existing.is_none();
    let row: MemoryRow = sqlx::query_as(concat!("INSERT INTO memories (id, agent, user_id, text, hash, importance, source, embedding, embed_model, created_at, updated_at, shared, terms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (agent, owner, hash) DO UPDATE SET
             shared = max(shared, excluded.shared),
             importance = max(importance, excluded.importance), updated_at = excluded.updated_at,
             embedding = COALESCE(embedding, excluded.embedding),
             embed_model = COALESCE(embed_model, excluded.embed_model)
         RETURNING ", memory_columns!(), ""))
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
    let (_, record) = memory_from_row(row);
    Ok(if new {
        SavedMemory::New(record)
    } else {
        SavedMemory::Duplicate(record)
    })
}

/// Fills `terms` for facts saved before the store analysed them
/// (migration 0015), a batch per transaction; the update trigger indexes
/// each. Returns how many were filled.
pub(super) async fn fill_terms(pool: &sqlx::SqlitePool) -> Result<usize, StoreError> {
    let mut filled = 0;
    loop {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT rowid, text FROM memories WHERE terms IS NULL LIMIT 500")
                .fetch_all(pool)
                .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        let mut tx = pool.begin().await?;
        for (rowid, text) in &rows {
            sqlx::query("UPDATE memories SET terms = ? WHERE rowid = ? AND terms IS NULL")
                .bind(terms_text(text))
                .bind(rowid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        filled += rows.len();
    }
}
