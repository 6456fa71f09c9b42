//! `cairn chat`: an interactive session in the terminal.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ids::new_id;
use cairn_runtime::TurnRequest;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{config, render, wiring};

/// Arguments of `cairn chat`.
#[derive(clap::Args)]
pub struct Args {
    /// Session to continue (created when new); a fresh session when omitted.
    #[arg(long, short)]
    session: Option<String>,
    /// Agent to talk to.
    #[arg(long, short, default_value = "default")]
    agent: String,
}

const HELP: &str = "commands: /new (fresh session), /session (show id), /exit (or Ctrl-D); Ctrl-C stops the current turn";

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let agent = loaded.agent(&args.agent)?;
    let rt = wiring::runtime(&loaded).await?;
    let mut session = match args.session {
        Some(s) => {
            cairn_core::ids::validate_name("session", &s)?;
            s
        }
        None => new_id("ses"),
    };
    eprintln!(
        "cairn chat · agent {} · session {session} · {}",
        agent.name, HELP
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("\n> ");
        let _ = std::io::stdout().flush();
        let line = tokio::select! {
            l = lines.next_line() => l?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else {
            println!();
            return Ok(ExitCode::SUCCESS);
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => return Ok(ExitCode::SUCCESS),
            "/help" => {
                eprintln!("{HELP}");
                continue;
            }
            "/session" => {
                eprintln!("session {session}");
                continue;
            }
            "/new" => {
                session = new_id("ses");
                eprintln!("new session {session}");
                continue;
            }
            _ => {}
        }
        let on_event = |e: cairn_core::RunEvent| render::live_event(&e, false);
        let req = TurnRequest {
            agent: agent.clone(),
            session_id: Some(session.clone()),
            input: line.to_string(),
            user_id: None,
        };
        let run = super::turn_with_ctrl_c(&rt, req, &on_event).await?;
        println!();
        if let Some(err) = run.error.as_deref() {
            eprintln!("· {}: {err}", run.status.as_str());
        }
        eprintln!("· {}", render::summary(&run));
    }
}
