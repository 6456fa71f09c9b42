//! Schedules on PostgreSQL.
//! The text is `both/schedules.rs`, shared by both backends.

use super::PgStore as Store;

include!("../both/schedules.rs");

impl Store {
    /// Deletes the schedules `created_by` made, except those in `keep`.
    async fn delete_schedules_except(
        &self,
        created_by: &str,
        keep: &[String],
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM schedules WHERE created_by = $1 AND NOT (id = ANY($2))")
                .bind(created_by)
                .bind(keep)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Schedules by `sql` (a `select_schedules!` query with one text
    /// parameter).
    async fn read_schedules(
        &self,
        sql: &'static str,
        param: Option<String>,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(sql)
            .bind(param)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(schedule_from_row).collect()
    }
}
