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

    /// Dollars the runs of `agent` created since `since` cost.
    async fn agent_cost_since(&self, agent: &str, since: i64) -> Result<f64, StoreError>;

    /// Dollars the runs working for `user` created since `since` cost.
    async fn user_cost_since(&self, user: &str, since: i64) -> Result<f64, StoreError>;

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

/// A schedule row as both backends select it: id, agent, session_id,
/// prompt, kind, spec, tz, catch_up, paused, next_due, created_at,
/// created_by, heartbeat JSON, user_id.
pub(crate) type ScheduleRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    Option<i64>,
    i64,
    String,
    Option<String>,
    Option<String>,
);

/// A schedule from its row.
pub(crate) fn schedule_from_row(r: ScheduleRow) -> Result<ScheduleRecord, StoreError> {
    use cairn_core::schedule::{CatchUp, ScheduleKind};
    let (kind, catch_up) = (r.4, r.7);
    Ok(ScheduleRecord {
        id: r.0,
        agent: r.1,
        session_id: r.2,
        prompt: r.3,
        kind: ScheduleKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt("schedules", format!("kind {kind:?}")))?,
        spec: r.5,
        tz: r.6,
        catch_up: CatchUp::parse(&catch_up)
            .ok_or_else(|| StoreError::corrupt("schedules", format!("catch_up {catch_up:?}")))?,
        paused: r.8,
        next_due: r.9,
        created_at: r.10,
        created_by: r.11,
        heartbeat: match r.12 {
            Some(j) => {
                Some(serde_json::from_str(&j).map_err(|e| StoreError::corrupt("schedules", e))?)
            }
            None => None,
        },
        user_id: r.13,
    })
}

/// A schedule's heartbeat policy as stored.
pub(crate) fn heartbeat_json(s: &ScheduleRecord) -> Result<Option<String>, StoreError> {
    s.heartbeat
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::corrupt("schedules", e))
}

/// A fire record row: schedule_id, due_at, handled_at, outcome, reason, run_id.
pub(crate) type FireRow = (String, i64, i64, String, Option<String>, Option<String>);

/// Fire records from their rows.
pub(crate) fn fires_from_rows(rows: Vec<FireRow>) -> Result<Vec<FireRecord>, StoreError> {
    rows.into_iter()
        .map(
            |(schedule_id, due_at, handled_at, outcome, reason, run_id)| {
                Ok(FireRecord {
                    schedule_id,
                    due_at,
                    handled_at,
                    outcome: cairn_core::schedule::FireOutcome::parse(&outcome).ok_or_else(
                        || StoreError::corrupt("schedule_fires", format!("outcome {outcome:?}")),
                    )?,
                    reason,
                    run_id,
                })
            },
        )
        .collect()
}

/// The one schedule an id or prefix names among up to two found (an exact
/// id first).
pub(crate) fn one_schedule(
    found: Vec<ScheduleRecord>,
    id_or_prefix: &str,
) -> Result<ScheduleRecord, StoreError> {
    match found.as_slice() {
        [] => Err(StoreError::NotFound {
            what: "schedule",
            id: id_or_prefix.to_string(),
        }),
        [one] => Ok(one.clone()),
        [first, _] if first.id == id_or_prefix => Ok(first.clone()),
        more => Err(StoreError::Ambiguous {
            what: "schedule",
            prefix: id_or_prefix.to_string(),
            count: more.len(),
        }),
    }
}
