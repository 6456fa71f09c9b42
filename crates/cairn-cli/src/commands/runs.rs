//! `cairn runs list|show`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::api::RunDetail;
use cairn_core::{ContentBlock, JournalEntry, JournalPayload, ModelOutcome};

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
    match &e.body {
        JournalPayload::ModelCall(c) => format!(
            "model call   {} ({} messages, {} tools{})",
            c.model,
            c.messages,
            c.tools,
            if c.stream { ", streaming" } else { "" }
        ),
        JournalPayload::ModelResult(ModelOutcome::Failed { error, .. }) => {
            format!("model error  {}", render::short(error, 150))
        }
        JournalPayload::ModelResult(ModelOutcome::Answered { response, cost_usd }) => {
            let text: String = response
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let calls = response
                .content
                .iter()
                .filter(|b| matches!(b, ContentBlock::ToolUse { .. }))
                .count();
            let route = response.route.as_ref().map_or_else(String::new, |r| {
                let labels = if r.labels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", r.labels.join(", "))
                };
                format!(
                    "\n             routed to {} ({}): {} data{labels}; {}",
                    r.provider,
                    r.model,
                    r.class.as_str(),
                    r.reason
                )
            });
            format!(
                "model result {} in / {} out tokens · {} · {}{}{route}",
                response.usage.input_tokens,
                response.usage.output_tokens,
                render::cost(*cost_usd),
                if calls > 0 {
                    format!("{calls} tool call(s) ")
                } else {
                    String::new()
                },
                render::short(&text, 80)
            )
        }
        JournalPayload::ToolCall(c) => format!(
            "tool call    {} {}{}",
            c.name,
            render::short(&c.input.to_string(), 100),
            if c.idempotent { "" } else { "  (side effects)" }
        ),
        JournalPayload::ToolResult(r) => format!(
            "tool result  {} {} · {} bytes · {} ms · {}{}",
            r.name,
            if r.is_error { "error" } else { "ok" },
            r.bytes,
            r.duration_ms,
            if r.outcome_unknown {
                "outcome unknown · "
            } else {
                ""
            },
            render::short(&r.output, 80)
        ),
        JournalPayload::CompactionStart(c) => format!(
            "compacting   {} messages, about {} tokens",
            c.messages, c.tokens_before
        ),
        JournalPayload::Compaction(c) => format!(
            "compacted    {} messages · {} → {} tokens · {} fact(s) saved · {} call(s)",
            c.messages, c.tokens_before, c.tokens_after, c.facts_saved, c.model_calls
        ),
        JournalPayload::RunEnd(r) => format!(
            "run end      {}{}",
            r.status.as_str(),
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}
