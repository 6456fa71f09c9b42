//! Schedules and heartbeats declared in `cairn.toml`, put in the store when
//! `cairn serve` starts: added, updated (an unchanged time keeps its next
//! due time), and removed when gone from the file.

use anyhow::{Context, Result, bail};
use cairn_core::now_ms;
use cairn_core::schedule::{
    CatchUp, HeartbeatPolicy, NewSchedule, ScheduleError, ScheduleKind, ScheduleRecord,
    parse_interval,
};
use cairn_store::{Found, Store};

use crate::config::{Loaded, ScheduleConfig};

/// Brings the store's config-made schedules and heartbeats in line with
/// the file; returns how many are declared.
pub async fn sync(loaded: &Loaded, store: &Store) -> Result<usize> {
    let now = now_ms();
    let mut kept = Vec::new();
    for (name, c) in &loaded.config.schedules {
        cairn_core::ids::validate_name("schedule", name)?;
        loaded
            .agent(&c.agent)
            .with_context(|| format!("[schedules.{name}]"))?;
        let id = format!("sch_cfg-{name}");
        let new = declared(name, c)?;
        match ScheduleRecord::create(new, id.clone(), "config", now) {
            Ok(s) => store.upsert_schedule(&s).await?,
            // A one-shot that already fired stays as it is.
            Err(ScheduleError::NeverDue(why)) => {
                let kept = store
                    .get_schedule(&id)
                    .await
                    .found()
                    .with_context(|| format!("[schedules.{name}]"))?;
                if kept.is_none() {
                    bail!("[schedules.{name}]: {}", ScheduleError::NeverDue(why));
                }
            }
            Err(e) => bail!("[schedules.{name}]: {e}"),
        }
        kept.push(id);
    }
    store.prune_schedules("config", &kept).await?;

    let mut beats = Vec::new();
    for (agent, c) in &loaded.config.agents {
        let hb = &c.heartbeat;
        if hb.every.trim().is_empty() {
            continue;
        }
        let what = format!("[agents.{agent}.heartbeat]");
        let policy = HeartbeatPolicy {
            quiet_hours: Some(hb.quiet_hours.trim().to_string()).filter(|q| !q.is_empty()),
            tz: hb.tz.clone(),
            max_daily_usd: hb.max_daily_usd.max(0.0),
            idle_after_ms: parse_interval(&hb.idle_after)
                .with_context(|| format!("{what} idle_after"))?,
            model: Some(hb.model.trim().to_string()).filter(|m| !m.is_empty()),
        };
        policy.validate().with_context(|| what.clone())?;
        let new = NewSchedule {
            agent: agent.clone(),
            session_id: Some(format!("heartbeat-{agent}")),
            prompt: "heartbeat".into(),
            kind: ScheduleKind::Every,
            spec: hb.every.clone(),
            tz: None,
            catch_up: CatchUp::Skip,
        };
        let id = format!("sch_heartbeat-{agent}");
        let mut s = ScheduleRecord::create(new, id.clone(), "heartbeat", now)
            .with_context(|| format!("{what} every"))?;
        s.heartbeat = Some(policy);
        store.upsert_schedule(&s).await?;
        beats.push(id);
    }
    store.prune_schedules("heartbeat", &beats).await?;
    Ok(kept.len() + beats.len())
}

fn declared(name: &str, c: &ScheduleConfig) -> Result<NewSchedule> {
    let set = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let Some((kind, spec)) = ScheduleKind::one_of(set(&c.cron), set(&c.every), set(&c.at)) else {
        bail!("[schedules.{name}]: set exactly one of cron, every, at");
    };
    let Some(catch_up) = CatchUp::parse(&c.catch_up) else {
        bail!(
            "[schedules.{name}] catch_up: \"once\" or \"skip\", not {:?}",
            c.catch_up
        );
    };
    Ok(NewSchedule {
        agent: c.agent.clone(),
        session_id: set(&c.session),
        prompt: c.prompt.clone(),
        kind,
        spec,
        tz: Some(c.tz.clone()),
        catch_up,
    })
}
