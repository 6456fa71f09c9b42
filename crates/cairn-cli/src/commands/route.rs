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
    /// Check the classifier's examples: leave each out, classify it by the
    /// others, and report the agreement with its label and the share
    /// judged simple (sent to the simple-work provider).
    Evaluate {
        /// A JSON-lines file of examples (`text`, `label`) instead of the
        /// configured ones.
        #[arg(long)]
        examples: Option<std::path::PathBuf>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let (prompt, agent, json) = match args.command {
        Command::Explain {
            prompt,
            agent,
            json,
        } => (prompt, agent, json),
        Command::Evaluate { examples, json } => return evaluate(examples, json).await,
    };
    let loaded = config::load()?;
    if loaded.config.providers.is_empty() {
        bail!(
            "no router: every call goes to the one provider of [llm]; configure [providers.<name>] entries (and [router]) to route calls by policy"
        );
    }
    let router = wiring::router(&loaded, None)?;
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
    let x = router.explain(&req).await;
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
            "preference": x.preference.why,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let labels = if x.analysis.labels.is_empty() {
            "nothing sensitive found".to_string()
        } else {
            x.analysis.labels.join(", ")
        };
        println!("class: {} ({labels})", x.analysis.class().as_str());
        println!("preference: {}", x.preference.why);
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

/// `cairn route evaluate`.
async fn evaluate(file: Option<std::path::PathBuf>, json: bool) -> Result<ExitCode> {
    use cairn_llm::router::classify::{Complexity, read_examples};
    let mut loaded = config::load()?;
    let cfg = &mut loaded.config.router.classifier;
    if let Some(path) = file {
        cfg.examples = read_examples(&path)?;
        cfg.examples_file.clear();
    }
    let classifier = wiring::classifier(&loaded)?;
    let n = loaded.config.router.classifier.examples.len();
    let predicted = classifier.leave_one_out().await?;
    let labels: Vec<Complexity> = loaded
        .config
        .router
        .classifier
        .examples
        .iter()
        .map(|e| e.label)
        .collect();
    let (agreement, simple_share) = cairn_llm::router::classify::agreement(&labels, &predicted);
    let labelled_simple = loaded
        .config
        .router
        .classifier
        .examples
        .iter()
        .filter(|e| e.label == Complexity::Simple)
        .count();
    if json {
        let out = json!({
            "examples": n,
            "agreement": agreement,
            "judged_simple": simple_share,
            "labelled_simple": labelled_simple as f64 / n.max(1) as f64,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{n} examples, each classified by the others: {:.1}% agree with their label; {:.1}% judged simple (labelled simple: {:.1}%)",
            agreement * 100.0,
            simple_share * 100.0,
            labelled_simple as f64 * 100.0 / n.max(1) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}
