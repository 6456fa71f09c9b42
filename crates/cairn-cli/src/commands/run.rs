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
    /// Run on a `cairn serve` at this URL (e.g. http://127.0.0.1:7420) instead of in this process.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
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
    if let Some(url) = &args.server {
        return remote(url, &args, input).await;
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
            user_id: None,
        },
        &on_event,
    )
    .await?;
    if let Some(hub) = rt.mcp() {
        hub.shutdown().await;
    }
    finish(&run, json, quiet)
}

fn finish(run: &cairn_core::RunRecord, json: bool, quiet: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        println!();
        if !quiet {
            eprintln!("{}", render::summary(run));
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

/// The same turn through a server's native API; Ctrl-C cancels it there.
async fn remote(url: &str, args: &Args, input: String) -> Result<ExitCode> {
    let client = crate::client::Client::new(url);
    let session = client.session(&args.agent, args.session.clone()).await?;
    let json = args.json;
    let quiet = args.quiet || json;
    let run_id = std::sync::Mutex::new(None::<String>);
    let on_event = |e: &cairn_core::RunEvent| {
        if let cairn_core::RunEvent::RunStarted { run_id: id, .. } = e {
            *run_id
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.clone());
        }
        if !json {
            render::live_event(e, quiet);
        }
    };
    let follow = client.post_and_follow(&session.id, input, &on_event);
    tokio::pin!(follow);
    let run = loop {
        tokio::select! {
            r = &mut follow => break r?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\n· stopping this turn (Ctrl-C)…");
                let id = run_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                if let Some(id) = id {
                    client.cancel(&id).await?;
                }
            }
        }
    };
    finish(&run, json, quiet)
}
