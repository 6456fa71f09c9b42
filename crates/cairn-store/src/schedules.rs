//! Schedules and their fire records. A fire is one transaction: the fire
//! record (unique per schedule and due time), the run and its job, and the
//! schedule's `next_due` advanced by compare-and-set. Two schedulers racing
//! on one store produce one run, whichever wins.

use async_trait::async_trait;
use cairn_core::RunRecord;
use cairn_core::schedule::FireRecord;
use cairn_core::schedule::ScheduleRecord;

use crate::StoreError;

/// One due time handled by a scheduler.
#[derive(Debug, Clone)]
pub struct ScheduleFire<'a> {
    /// The schedule.
    pub schedule_id: &'a str,
    /// `next_due` the scheduler read; the fire applies only if unchanged.
    pub expected_due: i64,
    /// The schedule's next occurrence after this one (`None`: finished).
    pub next_due: Option<i64>,
    /// Records to write (`fired`, `missed`, `skipped`), each keyed by due time.
    pub records: Vec<FireRecord>,
    /// The run to start, when one fires.
    pub run: Option<&'a RunRecord>,
}

/// ScheduleStore: see the module documentation.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule.
    async fn create_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError>;

    /// Creates or updates a schedule declared in config (or a heartbeat):
    /// an unchanged time spec keeps its next due time and paused state.
    async fn upsert_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError>;

    /// Removes the schedules created by `created_by` whose ids are not in
    /// `keep` (config entries that were deleted).
    async fn prune_schedules(&self, created_by: &str, keep: &[String]) -> Result<u64, StoreError>;

    /// When a person (not a schedule) last started a run of `agent`.
    async fn last_person_activity(&self, agent: &str) -> Result<Option<i64>, StoreError>;

    /// Dollars spent by the runs of a session started at or after `since`.
    async fn session_cost_since(&self, session_id: &str, since: i64) -> Result<f64, StoreError>;

    /// Every schedule (of `agent`, when given), soonest first.
    async fn list_schedules(&self, agent: Option<&str>) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// A schedule by id or unique id prefix.
    async fn get_schedule(&self, id_or_prefix: &str) -> Result<ScheduleRecord, StoreError>;

    /// Pauses or resumes; a resumed schedule continues from `next_due`.
    async fn set_schedule_paused(
        &self,
        id: &str,
        paused: bool,
        next_due: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Removes a schedule (its fire records stay, as history).
    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError>;

    /// Active schedules due at or before `now`.
    async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// Applies a fire: `false` (and nothing written) when another scheduler
    /// handled this due time first.
    async fn fire_schedule(&self, fire: ScheduleFire<'_>) -> Result<bool, StoreError>;

    /// Fire records, newest first (of one schedule, when given).
    async fn schedule_fires(
        &self,
        schedule_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FireRecord>, StoreError>;

    /// Forgets fire records of due times before `before` (ms).
    async fn prune_schedule_fires(&self, before: i64) -> Result<u64, StoreError>;

    /// Records that a scheduler loop of `owner` is alive at `now`.
    async fn scheduler_heartbeat(&self, owner: &str, now: i64) -> Result<(), StoreError>;

    /// When a scheduler loop was last seen alive (ms), if ever.
    async fn scheduler_last_seen(&self) -> Result<Option<i64>, StoreError>;
}
