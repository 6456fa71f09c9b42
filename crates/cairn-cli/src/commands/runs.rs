//! `cairn runs list|show`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::api::RunDetail;
use cairn_core::{JournalEntry, JournalKind};

use crate::{config, render, wiring};

/// Arguments of `cairn runs`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(clap::Subcommand)]
enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// Only runs of this session.
        #[arg(long, short)]
        session: Option<String>,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: i64,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run with every step of its journal.
    Show {
        /// Run id (a unique prefix is enough).
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    match args.command {
        RunsCommand::List {
            session,
            limit,
            json,
        } => {
            let runs = store.list_runs(session.as_deref(), limit.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            if runs.is_empty() {
                eprintln!("no runs yet: try `cairn run \"hello\"`");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<10}  {:<24}  {:>5}  {:>15}  {:>9}  {:<19}  INPUT",
                "RUN", "STATUS", "SESSION", "STEPS", "TOKENS IN/OUT", "COST", "STARTED"
            );
            for r in runs {
                println!(
                    "{:<36}  {:<10}  {:<24}  {:>5}  {:>15}  {:>9}  {:<19}  {}",
                    r.id,
                    r.status.as_str(),
                    render::short(&r.session_id, 24),
                    r.steps,
                    format!("{}/{}", r.usage.input_tokens, r.usage.output_tokens),
                    render::cost(r.cost_usd),
                    render::time(r.created_at),
                    render::short(&r.input, 50)
                );
            }
        }
        RunsCommand::Show { id, json } => {
            let run = store.get_run(&id).await?;
            let journal = store.journal(&run.id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&RunDetail { run, journal })?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("run       {}", run.id);
            println!("status    {}", run.status.as_str());
            println!("session   {}   agent {}", run.session_id, run.agent);
            println!("model     {} / {}", run.provider, run.model);
            println!(
                "started   {}{}",
                render::time(run.created_at),
                run.finished_at
                    .map(|f| format!("   took {:.2} s", (f - run.created_at) as f64 / 1000.0))
                    .unwrap_or_default()
            );
            println!(
                "usage     {} steps · {} in / {} out tokens · {}",
                run.steps,
                run.usage.input_tokens,
                run.usage.output_tokens,
                render::cost(run.cost_usd)
            );
            println!("input     {}", render::short(&run.input, 200));
            if let Some(e) = &run.error {
                println!("error     {e}");
            }
            println!("\njournal:");
            for e in &journal {
                println!("  {:>3}  {}", e.seq, describe(e));
            }
            if let Some(o) = &run.output {
                println!("\noutput:\n{o}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(e: &JournalEntry) -> String {
    let p = &e.payload;
    match e.kind {
        JournalKind::ModelCall => format!(
            "model call   {} ({} messages, {} tools{})",
            p["model"].as_str().unwrap_or(""),
            p["messages"],
            p["tools"],
            if p["stream"] == true {
                ", streaming"
            } else {
                ""
            }
        ),
        JournalKind::ModelResult => {
            if let Some(err) = p["error"].as_str() {
                return format!("model error  {}", render::short(err, 150));
            }
            let r = &p["response"];
            let text: String = r["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect();
            let calls = r["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["type"] == "tool_use")
                .count();
            format!(
                "model result {} in / {} out tokens · {} · {}{}",
                r["usage"]["input_tokens"],
                r["usage"]["output_tokens"],
                render::cost(p["cost_usd"].as_f64().unwrap_or(0.0)),
                if calls > 0 {
                    format!("{calls} tool call(s) ")
                } else {
                    String::new()
                },
                render::short(&text, 80)
            )
        }
        JournalKind::ToolCall => format!(
            "tool call    {} {}{}",
            p["name"].as_str().unwrap_or(""),
            render::short(&p["input"].to_string(), 100),
            if p["idempotent"] == true {
                ""
            } else {
                "  (side effects)"
            }
        ),
        JournalKind::ToolResult => format!(
            "tool result  {} {} · {} bytes · {} ms · {}",
            p["name"].as_str().unwrap_or(""),
            if p["is_error"] == true { "error" } else { "ok" },
            p["bytes"],
            p["duration_ms"],
            render::short(p["output"].as_str().unwrap_or(""), 80)
        ),
        JournalKind::CompactionStart => format!(
            "compacting   {} messages, about {} tokens",
            p["messages"], p["tokens_before"]
        ),
        JournalKind::Compaction => format!(
            "compacted    {} messages · {} → {} tokens · {} fact(s) saved · {} call(s)",
            p["messages"],
            p["tokens_before"],
            p["tokens_after"],
            p["facts_saved"],
            p["model_calls"]
        ),
        JournalKind::RunEnd => format!(
            "run end      {}{}",
            p["status"].as_str().unwrap_or(""),
            p["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}
