//! `cairn route explain "<prompt>"`: what the router would do with a
//! prompt and why, without calling any model.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::{Message, ModelRequest, RouteHints};
use cairn_llm::router::Verdict;
use serde_json::json;

use crate::{config, wiring};

/// Arguments of `cairn route`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show the classes a prompt carries and where it would go.
    Explain {
        /// The prompt.
        prompt: String,
        /// As the agent named would send it.
        #[arg(long, default_value = "default")]
        agent: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let Command::Explain {
        prompt,
        agent,
        json,
    } = args.command;
    let loaded = config::load()?;
    if loaded.config.providers.is_empty() {
        bail!(
            "no router: every call goes to the one provider of [llm]; configure [providers.<name>] entries (and [router]) to route calls by policy"
        );
    }
    let router = wiring::router(&loaded)?;
    let req = ModelRequest {
        model: String::new(),
        system: String::new(),
        messages: vec![Message::user_text(prompt)],
        tools: vec![],
        max_tokens: 0,
        stream: false,
        hints: RouteHints {
            agent,
            ..Default::default()
        },
    };
    let x = router.explain(&req);
    let chosen = x
        .providers
        .iter()
        .find(|(_, _, v)| *v != Verdict::NotAllowed);
    let word = |v: &Verdict| match v {
        Verdict::AsIs => "allowed",
        Verdict::Redacted => "allowed, redacted",
        Verdict::NotAllowed => "not allowed",
    };
    if json {
        let providers: Vec<_> = x
            .providers
            .iter()
            .map(|(n, m, v)| json!({"provider": n, "model": m, "verdict": word(v)}))
            .collect();
        let out = json!({
            "class": x.analysis.class(),
            "labels": x.analysis.labels,
            "providers": providers,
            "chosen": chosen.map(|(n, _, _)| n),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let labels = if x.analysis.labels.is_empty() {
            "nothing sensitive found".to_string()
        } else {
            x.analysis.labels.join(", ")
        };
        println!("class: {} ({labels})", x.analysis.class().as_str());
        for (n, m, v) in &x.providers {
            let model = if m.is_empty() { "its default model" } else { m };
            println!("  {n:<12} {model:<28} {}", word(v));
        }
        match chosen {
            Some((n, _, v)) => println!(
                "→ {n}{} (then the next allowed one if it fails)",
                if *v == Verdict::Redacted {
                    ", with the restricted values replaced by placeholders"
                } else {
                    ""
                }
            ),
            None => println!("→ refused: no provider may receive this data"),
        }
    }
    Ok(if chosen.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
