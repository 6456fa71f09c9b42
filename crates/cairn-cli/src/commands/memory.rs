//! `cairn memory save|search|list|forget|reindex`: read and edit what agents
//! remember.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_core::MessageFilter;
use cairn_memory::{SaveMemory, Scope, SearchOptions};
use cairn_store::SavedMemory;

use crate::{config, render, wiring};

/// Arguments of `cairn memory`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: MemoryCommand,
    /// The agent whose memory to use.
    #[arg(long, global = true, default_value = "default")]
    agent: String,
    /// As JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum MemoryCommand {
    /// Remember a fact.
    Save {
        /// The fact.
        text: String,
        /// 0 (trivia) to 1 (essential).
        #[arg(long)]
        importance: Option<f64>,
        /// The person it is about (default: the local owner).
        #[arg(long)]
        user: Option<String>,
        /// Recalled for every person the agent works for, not only one.
        #[arg(long)]
        shared: bool,
    },
    /// Search facts (hybrid: words and meaning), or with --episodic every
    /// message of every session.
    Search {
        /// What to look for.
        query: String,
        /// Search conversation history instead of saved facts.
        #[arg(long)]
        episodic: bool,
        /// Only this session (episodic).
        #[arg(long)]
        session: Option<String>,
        /// Only this person.
        #[arg(long)]
        user: Option<String>,
        /// Only messages at or after this time (RFC 3339 or YYYY-MM-DD; episodic).
        #[arg(long)]
        since: Option<String>,
        /// Only messages before this time (episodic).
        #[arg(long)]
        until: Option<String>,
        /// Results.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Show how each fact ranked: its full-text rank and score, its
        /// cosine, its relevance and whether it would be recalled.
        #[arg(long)]
        explain: bool,
    },
    /// Facts, newest first.
    List {
        /// Only facts about this person.
        #[arg(long)]
        user: Option<String>,
        /// Results.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Forget a fact by id (or unique id prefix).
    Forget {
        /// Memory id.
        id: String,
    },
    /// Embed facts saved before the current embedding model was configured.
    Reindex,
    /// Write the agent's memory to a directory of markdown (identity.md,
    /// state.md, references.md, users/, sessions/, facts/).
    Export {
        /// A new or empty directory.
        dir: std::path::PathBuf,
    },
    /// Import the facts of an export (all or none).
    Import {
        /// A directory written by `cairn memory export`.
        dir: std::path::PathBuf,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    let memory = wiring::memory(&loaded, store)?;
    let agent = args.agent;
    match args.command {
        MemoryCommand::Save {
            text,
            importance,
            user,
            shared,
        } => {
            let saved = memory
                .save(SaveMemory {
                    agent,
                    user_id: user,
                    text,
                    importance,
                    source: Some("cli".into()),
                    times: None,
                    shared,
                })
                .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(saved.record())?);
            } else {
                match saved {
                    SavedMemory::New(m) => println!("saved {}", m.id),
                    SavedMemory::Duplicate(m) => println!("already known as {}: {}", m.id, m.text),
                }
            }
        }
        MemoryCommand::Search {
            query,
            episodic: true,
            session,
            user,
            since,
            until,
            limit,
            ..
        } => {
            let filter = MessageFilter {
                agent: Some(agent),
                session_id: session,
                user_id: user,
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
            };
            let hits = memory
                .search_messages(&query, &filter, limit as i64)
                .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                eprintln!("no messages match");
            } else {
                for h in hits {
                    println!(
                        "{}  {}#{}  {}: {}",
                        render::time(h.created_at),
                        h.session_id,
                        h.seq,
                        h.role,
                        render::short(&h.text.replace('\n', " "), 160)
                    );
                }
            }
        }
        MemoryCommand::Search {
            query,
            user,
            limit,
            explain,
            ..
        } => {
            let opts = SearchOptions {
                scope: user.map_or(Scope::Everyone, |u| Scope::Person(Some(u))),
                // What a prompt gets depends on the first two facts.
                limit: if explain { limit.max(2) } else { limit },
                ..Default::default()
            };
            let mut hits = memory.search(&agent, &query, &opts).await?;
            let semantic = memory.embedder().is_some();
            let relevances: Vec<f64> = hits.iter().map(|h| h.relevance).collect();
            let recalled = memory.fusion().recalled(semantic, &relevances);
            hits.truncate(limit);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                eprintln!("no saved facts match");
            } else if explain {
                let fusion = memory.fusion();
                print!(
                    "{}",
                    render::memory_explain(&hits, &recalled, &fusion, semantic)
                );
            } else {
                for h in hits {
                    println!("{}  {:.4}  {}", h.memory.id, h.score, h.memory.text);
                }
            }
        }
        MemoryCommand::List { user, limit } => {
            let facts = memory.list(&agent, user.as_deref(), limit).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&facts)?);
            } else {
                for m in facts {
                    println!(
                        "{}  {}  {:.1}  {}",
                        m.id,
                        render::time(m.updated_at),
                        m.importance,
                        m.text
                    );
                }
            }
        }
        MemoryCommand::Forget { id } => {
            let m = memory.forget(&agent, &Scope::Everyone, &id).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("forgot {}: {}", m.id, m.text);
            }
        }
        MemoryCommand::Export { dir } => {
            let spec = loaded.agent(&agent)?;
            let (skills, _) = cairn_memory::skills::list_skills(&cairn_memory::skills::skill_dirs(
                &loaded.home,
                &agent,
            ));
            let done = cairn_memory::export_markdown(&memory, &spec, &skills, &dir).await?;
            eprintln!(
                "exported {} facts, {} days of conversation, {} people to {}",
                done.facts,
                done.days,
                done.users,
                dir.display()
            );
        }
        MemoryCommand::Import { dir } => {
            let (new, known) = cairn_memory::import_markdown(&memory, &agent, &dir).await?;
            eprintln!("imported {new} facts ({known} already known)");
        }
        MemoryCommand::Reindex => {
            let n = memory.reindex(&agent).await?;
            println!("embedded {n} facts");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds since the epoch from RFC 3339 or a date (midnight UTC).
fn parse_time(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("{s:?} is not a time: use RFC 3339 (2026-11-25T08:00:00Z) or a date (2026-11-25)")
    })?;
    Ok(d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0))
}
