//! `cairn schedule add|list|pause|resume|remove|runs`: schedules that wake
//! an agent with a prompt. `cairn serve` fires them; this edits the store.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::ids::new_id;
use cairn_core::now_ms;
use cairn_core::schedule::{CatchUp, FireOutcome, NewSchedule, ScheduleKind, ScheduleRecord};
use cairn_runtime::iso;

use crate::{config, wiring};

/// A scheduler not seen for this long is taken as not running.
const SCHEDULER_SEEN_WITHIN_MS: i64 = 30_000;

/// Arguments of `cairn schedule`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ScheduleCommand,
    /// As JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ScheduleCommand {
    /// Add a schedule: exactly one of --cron, --every, --at.
    Add {
        /// The message each run starts with.
        prompt: String,
        /// Cron expression (minute hour day-of-month month day-of-week), e.g. "0 8 * * 1-5".
        #[arg(long, group = "when")]
        cron: Option<String>,
        /// Time zone of --cron (IANA name).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Fixed interval: 90s, 15m, 1h30m, 1d.
        #[arg(long, group = "when")]
        every: Option<String>,
        /// Once, at an RFC 3339 time.
        #[arg(long, group = "when")]
        at: Option<String>,
        /// Agent to wake.
        #[arg(long, default_value = "default")]
        agent: String,
        /// Session for its runs (default: one per schedule).
        #[arg(long)]
        session: Option<String>,
        /// Occurrences missed while no scheduler ran: run "once" for them, or "skip".
        #[arg(long, default_value = "once")]
        catch_up: String,
    },
    /// Schedules, soonest first.
    List {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Stop firing until resumed.
    Pause {
        /// Schedule id (or unique prefix).
        id: String,
    },
    /// Fire again from the next occurrence (what passed while paused is not run).
    Resume {
        /// Schedule id (or unique prefix).
        id: String,
    },
    /// Remove a schedule (its record of fires stays).
    Remove {
        /// Schedule id (or unique prefix).
        id: String,
    },
    /// What happened at each due time: fired (with the run), missed, skipped (with why).
    Runs {
        /// Only this schedule.
        id: Option<String>,
        /// Most records.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    let json = args.json;
    match args.command {
        ScheduleCommand::Add {
            prompt,
            cron,
            tz,
            every,
            at,
            agent,
            session,
            catch_up,
        } => {
            loaded.agent(&agent)?;
            if let Some(s) = &session {
                cairn_core::ids::validate_name("session", s)?;
            }
            let Some((kind, spec)) = ScheduleKind::one_of(cron, every, at) else {
                bail!(
                    "say when: one of --cron \"0 8 * * *\", --every 1h, --at 2026-12-01T08:00:00Z"
                );
            };
            let Some(catch_up) = CatchUp::parse(&catch_up) else {
                bail!("--catch-up is \"once\" or \"skip\", not {catch_up:?}");
            };
            let new = NewSchedule {
                agent,
                session_id: session,
                prompt,
                kind,
                spec,
                tz: Some(tz),
                catch_up,
            };
            let s = ScheduleRecord::create(new, new_id("sch"), "cli", now_ms())?;
            store.create_schedule(&s).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "added {} · next {}",
                    s.id,
                    s.next_due.map(iso).unwrap_or_default()
                );
            }
            let seen = store.scheduler_last_seen().await?;
            if seen.is_none_or(|t| now_ms() - t >= SCHEDULER_SEEN_WITHIN_MS) {
                eprintln!(
                    "note: no scheduler is running on this home; schedules fire while `cairn serve` runs"
                );
            }
        }
        ScheduleCommand::List { agent } => {
            let all = store.list_schedules(agent.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "no schedules; add one with `cairn schedule add --cron \"0 8 * * *\" \"…\"`"
                );
            } else {
                for s in all {
                    println!(
                        "{}  {:<6} {:<22} {:<10} next {:<21} {}{}",
                        s.id,
                        s.kind.as_str(),
                        describe_when(&s),
                        s.agent,
                        s.next_due.map(iso).unwrap_or_else(|| "done".into()),
                        crate::render::short(&s.prompt, 50),
                        if s.paused { "  (paused)" } else { "" }
                    );
                }
            }
        }
        ScheduleCommand::Pause { id } => {
            let s = store.get_schedule(&id).await?;
            store.set_schedule_paused(&s.id, true, s.next_due).await?;
            println!("paused {}", s.id);
        }
        ScheduleCommand::Resume { id } => {
            let s = store.get_schedule(&id).await?;
            let next = s.next_due_on_resume(now_ms())?;
            store.set_schedule_paused(&s.id, false, next).await?;
            match next {
                Some(t) => println!("resumed {} · next {}", s.id, iso(t)),
                None => println!("resumed {} · it has no occurrence left", s.id),
            }
        }
        ScheduleCommand::Remove { id } => {
            let s = store.get_schedule(&id).await?;
            store.delete_schedule(&s.id).await?;
            println!("removed {}", s.id);
        }
        ScheduleCommand::Runs { id, limit } => {
            let id = match id {
                Some(i) => Some(store.get_schedule(&i).await?.id),
                None => None,
            };
            let fires = store
                .schedule_fires(id.as_deref(), limit.clamp(1, 10_000))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&fires)?);
            } else if fires.is_empty() {
                println!("nothing has been due yet");
            } else {
                for f in fires {
                    println!(
                        "{}  {}  {:<7} {}{}",
                        iso(f.due_at),
                        f.schedule_id,
                        f.outcome.as_str(),
                        f.run_id.unwrap_or_default(),
                        match (f.outcome, f.reason) {
                            (FireOutcome::Fired, None) => String::new(),
                            (_, Some(r)) => format!("  {r}"),
                            (_, None) => String::new(),
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_when(s: &ScheduleRecord) -> String {
    match s.kind {
        ScheduleKind::Cron if s.tz != "UTC" => format!("{} {}", s.spec, s.tz),
        _ => s.spec.clone(),
    }
}
