//! Schedules on SQLite: lists are read in one go on the bulk reader
//! (rusqlite), the rest is sqlx.
//! The text is `both/schedules.rs`, shared by both backends.

use super::SqliteStore as Store;

include!("../both/schedules.rs");

impl Store {
    /// Deletes the schedules `created_by` made, except those in `keep`.
    async fn delete_schedules_except(
        &self,
        created_by: &str,
        keep: &[String],
    ) -> Result<u64, StoreError> {
        let keep = serde_json::to_string(keep).map_err(|e| StoreError::corrupt("schedules", e))?;
        let done = sqlx::query(
            "DELETE FROM schedules WHERE created_by = $1 AND id NOT IN (SELECT value FROM json_each($2))",
        )
        .bind(created_by)
        .bind(keep)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Schedules by `sql` (a `select_schedules!` query with one text
    /// parameter), read in one go on the bulk reader.
    async fn read_schedules(
        &self,
        sql: &'static str,
        param: Option<String>,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.bulk
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(sql)?;
                let rows =
                    stmt.query_map(rusqlite::params![param], |r| Ok(schedule_from_sqlite(r)))?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(row??);
                }
                Ok(out)
            })
            .await
    }
}

/// A `select_schedules!` row, columns by position.
fn schedule_from_sqlite(r: &rusqlite::Row<'_>) -> Result<ScheduleRecord, StoreError> {
    schedule_from_row((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}
