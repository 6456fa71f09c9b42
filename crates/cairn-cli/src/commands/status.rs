//! `cairn status`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::{config, render, wiring};

/// Arguments of `cairn status`.
#[derive(clap::Args)]
pub struct Args {
    /// As JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let provider =
        wiring::provider(&loaded).map(|p| (p.name().to_string(), p.default_model().to_string()));
    let store = wiring::store(&loaded).await?;
    let (sessions, spent) = store.totals().await?;
    let counts = store.run_counts().await?;
    let recent = store.list_runs(None, 5).await?;
    let cooling = store.provider_cooldowns(cairn_core::now_ms()).await?;
    let schedules = store.list_schedules(None).await?;
    let outbox = store.outbound_counts().await?;
    let active: Vec<_> = schedules
        .iter()
        .filter(|s| !s.paused && s.next_due.is_some())
        .collect();
    let next_fire = active
        .iter()
        .filter_map(|s| s.next_due.map(|t| (t, s)))
        .min_by_key(|(t, _)| *t);
    if args.json {
        let v = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "home": loaded.home,
            "config_file": loaded.file,
            "overrides": loaded.overrides,
            "database": loaded.database().display(),
            "schema_version": store.schema_version().await?,
            "provider": provider.as_ref().map(|(n, m)| json!({"name": n, "model": m})).unwrap_or_else(|e| json!({"error": e.to_string()})),
            "sessions": sessions,
            "runs": counts.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "cost_usd": spent,
            "recent_runs": recent,
            "cooling_down": cooling.iter().map(|(p, until, reason)| json!({"provider": p, "until": until, "reason": reason})).collect::<Vec<_>>(),
            "schedules": {"total": schedules.len(), "active": active.len(), "next_due": next_fire.map(|(t, _)| t)},
            "outbox": outbox.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("cairn {} · single-node (SQLite)", env!("CARGO_PKG_VERSION"));
    println!("home       {}", loaded.home.display());
    println!(
        "config     {}",
        loaded
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "none (defaults; `cairn init` writes one)".into())
    );
    if !loaded.overrides.is_empty() {
        println!("overrides  {}", loaded.overrides.join(", "));
    }
    println!(
        "database   {} (schema v{})",
        loaded.database().display(),
        store.schema_version().await?
    );
    match &provider {
        Ok((n, m)) => println!(
            "provider   {n} · model {}",
            if m.is_empty() {
                "(the server's first)"
            } else {
                m
            }
        ),
        Err(e) => println!("provider   not configured: {e}"),
    }
    for (p, until, reason) in &cooling {
        println!(
            "cooldown   {p}: cooling down until {} ({reason}); runs wait and resume by themselves",
            cairn_runtime::iso(*until)
        );
    }
    match next_fire {
        Some((t, s)) => println!(
            "schedules  {} ({} active) · next {} {} ({})",
            schedules.len(),
            active.len(),
            cairn_runtime::iso(t),
            s.id,
            render::short(&s.prompt, 40)
        ),
        None => println!("schedules  {} ({} active)", schedules.len(), active.len()),
    }
    if !outbox.is_empty() {
        println!(
            "outbox     {}",
            outbox
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    println!("sessions   {sessions}");
    println!(
        "runs       {total}{} · spent {}",
        if counts.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                counts
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        render::cost(spent)
    );
    for r in recent {
        println!(
            "  {}  {:<9}  {}  {}",
            render::time(r.created_at),
            r.status.as_str(),
            r.id,
            render::short(&r.input, 50)
        );
    }
    Ok(ExitCode::SUCCESS)
}
