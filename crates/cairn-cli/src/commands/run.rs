//! `cairn run`: one turn, answer on stdout.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_core::RunStatus;
use cairn_runtime::TurnRequest;

use crate::{config, render, wiring};

/// Arguments of `cairn run`.
#[derive(clap::Args)]
pub struct Args {
    /// Session to continue (created when new); a fresh session when omitted.
    #[arg(long, short)]
    session: Option<String>,
    /// Agent to run.
    #[arg(long, short, default_value = "default")]
    agent: String,
    /// Print the finished run as JSON instead of streaming the answer.
    #[arg(long)]
    json: bool,
    /// Ask the model for a complete response instead of a stream.
    #[arg(long)]
    no_stream: bool,
    /// Only the answer: no tool activity or summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// The message. `-` reads it from stdin.
    #[arg(required = true, value_name = "MESSAGE")]
    message: Vec<String>,
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let input = if args.message == ["-"] {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the message from stdin")?;
        s
    } else {
        args.message.join(" ")
    };
    if input.trim().is_empty() {
        bail!("the message is empty");
    }
    let loaded = config::load()?;
    let mut agent = loaded.agent(&args.agent)?;
    if args.no_stream {
        agent.stream = false;
    }
    let rt = wiring::runtime(&loaded).await?;
    let json = args.json;
    let quiet = args.quiet || json;
    let on_event = move |e: cairn_core::RunEvent| {
        if !json {
            render::live_event(&e, quiet);
        }
    };
    let run = super::turn_with_ctrl_c(
        &rt,
        TurnRequest {
            agent,
            session_id: args.session,
            input,
        },
        &on_event,
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!();
        if !quiet {
            eprintln!("{}", render::summary(&run));
        }
        if run.status != RunStatus::Completed {
            eprintln!(
                "error: {}",
                run.error.as_deref().unwrap_or("the run did not complete")
            );
        }
    }
    Ok(render::exit_code(run.status))
}
