//! `cairn sessions list|show`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::{ContentBlock, Role};

use crate::{config, render, wiring};

/// Arguments of `cairn sessions`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(clap::Subcommand)]
enum SessionsCommand {
    /// Sessions, most recently active first.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A session's messages in order.
    Show {
        /// Session id.
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
        SessionsCommand::List { json } => {
            let sessions = store.list_sessions(1000).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
            } else {
                println!(
                    "{:<40}  {:<12}  {:>8}  LAST ACTIVE",
                    "SESSION", "AGENT", "MESSAGES"
                );
                for s in sessions {
                    println!(
                        "{:<40}  {:<12}  {:>8}  {}",
                        s.id,
                        s.agent,
                        s.messages,
                        render::time(s.updated_at)
                    );
                }
            }
        }
        SessionsCommand::Show { id, json } => {
            store.get_session(&id).await?;
            let messages = store.messages(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
                return Ok(ExitCode::SUCCESS);
            }
            for m in messages {
                for b in &m.content {
                    let who = match m.role {
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    };
                    match b {
                        ContentBlock::Text { text } => println!("{who}: {text}"),
                        ContentBlock::ToolUse { name, input, .. } => {
                            println!("{who} → {name} {}", render::short(&input.to_string(), 120))
                        }
                        ContentBlock::ToolResult {
                            content, is_error, ..
                        } => {
                            println!(
                                "  {} {}",
                                if *is_error { "✗" } else { "←" },
                                render::short(content, 120)
                            )
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
