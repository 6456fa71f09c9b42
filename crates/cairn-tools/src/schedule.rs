//! `schedule_create`, `schedule_list`, `schedule_cancel`: an agent sets its
//! own reminders and recurring work. Creating one fails loudly when no
//! scheduler is running: a schedule nothing would fire is worse than none.

use async_trait::async_trait;
use cairn_core::ids::new_id;
use cairn_core::now_ms;
use cairn_core::schedule::{CatchUp, NewSchedule, ScheduleKind, ScheduleRecord};
use cairn_core::{ToolOutput, ToolSpec};
use cairn_store::ScheduleStore;
use serde_json::json;

use crate::{Tool, ToolContext, str_arg};

/// A scheduler whose heartbeat is older than this is taken as stopped.
pub const SCHEDULER_ALIVE_WITHIN_MS: i64 = 30_000;

/// The `schedule_create` tool.
pub struct ScheduleCreate;
/// The `schedule_list` tool.
pub struct ScheduleList;
/// The `schedule_cancel` tool.
pub struct ScheduleCancel;

fn store(ctx: &ToolContext) -> Result<&dyn ScheduleStore, ToolOutput> {
    ctx.schedules
        .as_deref()
        .ok_or_else(|| ToolOutput::error("schedules are not available in this run"))
}

fn when(s: &ScheduleRecord) -> String {
    let next = s
        .next_due
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "no further occurrence".into());
    format!("{} {} ({}), next {next}", s.kind.as_str(), s.spec, s.tz)
}

#[async_trait]
impl Tool for ScheduleCreate {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "schedule_create".into(),
            description: "Schedule yourself to be woken later with a prompt: a reminder at a time (at), a recurring task \
                (cron, in a time zone), or every fixed interval (every). Give exactly one of cron, every, at. The run happens in \
                this conversation unless new_session is true.".into(),
            input_schema: json!({"type": "object", "properties": {
                "prompt": {"type": "string", "description": "what you will be told when it fires, e.g. \"Remind the user to call the bank.\""},
                "cron": {"type": "string", "description": "minute hour day-of-month month day-of-week, e.g. \"0 8 * * 1-5\""},
                "tz": {"type": "string", "description": "IANA time zone of cron, e.g. \"Europe/Paris\" (default UTC)"},
                "every": {"type": "string", "description": "interval such as \"30m\", \"2h\", \"1d\""},
                "at": {"type": "string", "description": "RFC 3339 time, e.g. \"2026-12-01T08:00:00+01:00\""},
                "new_session": {"type": "boolean", "description": "run in a conversation of its own (default false)"}
            }, "required": ["prompt"]}),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let store = tool_try!(store(ctx));
        let prompt = tool_try!(str_arg(&input, "prompt"));
        let arg = |k: &str| input.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let Some((kind, spec)) = ScheduleKind::one_of(arg("cron"), arg("every"), arg("at")) else {
            return ToolOutput::error("give exactly one of \"cron\", \"every\" or \"at\"");
        };
        let now = now_ms();
        match store.scheduler_last_seen().await {
            Ok(Some(t)) if now - t < SCHEDULER_ALIVE_WITHIN_MS => {}
            Ok(_) => {
                return ToolOutput::error(
                    "NOT scheduled: no scheduler is running for this agent (schedules fire only while `cairn serve` runs). \
                     Tell the user it cannot be scheduled from here.",
                );
            }
            Err(e) => return ToolOutput::error(format!("NOT scheduled: {e}")),
        }
        let new_session = input
            .get("new_session")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        let new = NewSchedule {
            agent: ctx.agent.clone(),
            session_id: if new_session {
                None
            } else {
                ctx.session_id.clone()
            },
            prompt: prompt.to_string(),
            kind,
            spec,
            tz: arg("tz"),
            catch_up: CatchUp::Once,
        };
        let by = format!("agent:{}", ctx.run_id.as_deref().unwrap_or("?"));
        let s = match ScheduleRecord::create(new, new_id("sch"), &by, now) {
            Ok(mut s) => {
                s.user_id = ctx.user_id.clone();
                s
            }
            Err(e) => return ToolOutput::error(format!("NOT scheduled: {e}")),
        };
        match store.create_schedule(&s).await {
            Ok(()) => ToolOutput::ok(format!("scheduled {}: {}", s.id, when(&s))),
            Err(e) => ToolOutput::error(format!("NOT scheduled: {e}")),
        }
    }
}

#[async_trait]
impl Tool for ScheduleList {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "schedule_list".into(),
            description: "List your schedules (id, when, next time, prompt).".into(),
            input_schema: json!({"type": "object", "properties": {}}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, _input: serde_json::Value) -> ToolOutput {
        let store = tool_try!(store(ctx));
        // Only the schedules of the person this run works for.
        let mine = store.list_schedules(Some(&ctx.agent)).await.map(|all| {
            all.into_iter()
                .filter(|s| s.user_id == ctx.user_id)
                .collect::<Vec<_>>()
        });
        match mine {
            Ok(all) if all.is_empty() => ToolOutput::ok("no schedules"),
            Ok(all) => ToolOutput::ok(
                all.iter()
                    .map(|s| {
                        format!(
                            "{}: {}{} — {}",
                            s.id,
                            when(s),
                            if s.paused { " (paused)" } else { "" },
                            s.prompt
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

#[async_trait]
impl Tool for ScheduleCancel {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "schedule_cancel".into(),
            description: "Cancel one of your schedules by id (from schedule_list).".into(),
            input_schema: json!({"type": "object", "properties": {
                "id": {"type": "string"}
            }, "required": ["id"]}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let store = tool_try!(store(ctx));
        let id = tool_try!(str_arg(&input, "id"));
        match store.get_schedule(id).await {
            Ok(s) if s.agent == ctx.agent && s.user_id == ctx.user_id => {
                match store.delete_schedule(&s.id).await {
                    Ok(()) => ToolOutput::ok(format!("cancelled {}", s.id)),
                    Err(e) => ToolOutput::error(e.to_string()),
                }
            }
            Ok(_) => ToolOutput::error(format!("{id} is not one of your schedules")),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}
