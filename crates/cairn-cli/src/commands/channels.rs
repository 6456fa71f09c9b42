//! `cairn channels outbox`: what is owed to people on their channels —
//! pending (with attempts and the last error), sent, dead-lettered.

use std::process::ExitCode;

use anyhow::Result;

use crate::{config, render, wiring};

/// Arguments of `cairn channels`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ChannelsCommand,
    /// As JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ChannelsCommand {
    /// Outgoing messages, newest first.
    Outbox {
        /// Only this channel (`telegram`, `slack`, `webhook.<name>`).
        #[arg(long)]
        channel: Option<String>,
        /// Most items.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    let ChannelsCommand::Outbox { channel, limit } = args.command;
    let items = store
        .list_outbound(channel.as_deref(), limit.clamp(1, 10_000))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else if items.is_empty() {
        println!("the outbox is empty");
    } else {
        for o in items {
            println!(
                "{}  {:<12} {:<14} {:<7} {} attempt(s)  {}{}",
                o.id,
                o.channel,
                o.chat_id,
                o.status,
                o.attempts,
                render::short(&o.text, 50),
                o.last_error
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
