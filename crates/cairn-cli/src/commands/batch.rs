//! `cairn batch`: one run per input item (the files of a directory, the
//! lines of a JSONL file), run by the servers (any coordinator) a bounded
//! number at a time; this command records the batch, shows progress and
//! writes each result as it arrives. Running it again resumes the batch:
//! nothing is started twice and results already written stay.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_core::batch::{BatchCounts, BatchRecord, ItemStatus};
use cairn_core::now_ms;
use cairn_store::Store;

use crate::{config, wiring};

/// Largest input item read (bytes).
const MAX_ITEM_BYTES: u64 = 1 << 20;

/// Arguments of `cairn batch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BatchCommand,
}

#[derive(clap::Subcommand)]
enum BatchCommand {
    /// Start (or resume) a batch and follow it, writing results to --out.
    Run {
        /// Agent each item's run uses.
        #[arg(long, default_value = "default")]
        agent: String,
        /// One item per file in this directory.
        #[arg(
            long,
            conflicts_with = "input_jsonl",
            required_unless_present = "input_jsonl"
        )]
        input_dir: Option<PathBuf>,
        /// One item per line of this JSONL file (a string, or {"input": …}).
        #[arg(long)]
        input_jsonl: Option<PathBuf>,
        /// Directory for results: <item>.md each, failures.txt.
        #[arg(long)]
        out: PathBuf,
        /// Runs in flight at most.
        #[arg(long, default_value_t = 8)]
        concurrency: i64,
        /// Runs per item at most (the first and its retries).
        #[arg(long, default_value_t = 3)]
        attempts: i64,
        /// Batch name (default: from the agent and the input's path).
        #[arg(long)]
        name: Option<String>,
        /// Record the batch and return; follow with `cairn batch status`.
        #[arg(long)]
        detach: bool,
    },
    /// Progress of one batch, or the list of batches.
    Status {
        /// Batch id or name.
        batch: Option<String>,
    },
    /// Write a batch's results to a directory and list its failures.
    Results {
        /// Batch id or name.
        batch: String,
        /// Directory for results.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    match args.command {
        BatchCommand::Run {
            agent,
            input_dir,
            input_jsonl,
            out,
            concurrency,
            attempts,
            name,
            detach,
        } => {
            let (source, items) = match (&input_dir, &input_jsonl) {
                (Some(dir), _) => (dir.clone(), dir_items(dir)?),
                (None, Some(file)) => (file.clone(), jsonl_items(file)?),
                (None, None) => bail!("give --input-dir or --input-jsonl"),
            };
            if items.is_empty() {
                bail!("{} holds no items", source.display());
            }
            let source = std::fs::canonicalize(&source).unwrap_or(source);
            let name = name.unwrap_or_else(|| default_name(&agent, &source));
            let wanted = BatchRecord {
                id: cairn_core::ids::new_id("bat"),
                name: name.clone(),
                agent,
                source: source.display().to_string(),
                concurrency: concurrency.clamp(1, 10_000),
                max_attempts: attempts.clamp(1, 100),
                created_at: now_ms(),
                finished_at: None,
            };
            let batch = store.create_batch(&wanted, &items).await?;
            let total = store.batch_counts(&batch.id).await?.total();
            if batch.id != wanted.id {
                if total != items.len() as i64 || batch.agent != wanted.agent {
                    bail!(
                        "a batch named {name:?} exists with {total} items for agent {}; give another --name to start a new one",
                        batch.agent
                    );
                }
                eprintln!("resuming batch {} ({total} items)", batch.name);
            } else {
                eprintln!(
                    "batch {} · {total} items · agent {} · {} at a time",
                    batch.name, batch.agent, batch.concurrency
                );
            }
            if detach {
                println!("{}", batch.id);
                return Ok(ExitCode::SUCCESS);
            }
            follow(&store, &batch, &out).await
        }
        BatchCommand::Status { batch: None } => {
            for b in store.list_batches(100).await? {
                let c = store.batch_counts(&b.id).await?;
                println!("{:<32} {:<12} {}", b.name, b.agent, progress_line(&c));
            }
            Ok(ExitCode::SUCCESS)
        }
        BatchCommand::Status { batch: Some(name) } => {
            let b = find(&store, &name).await?;
            let c = store.batch_counts(&b.id).await?;
            println!(
                "{} ({}) · agent {} · {}",
                b.name,
                b.id,
                b.agent,
                progress_line(&c)
            );
            list_failures(&store, &b, &mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        BatchCommand::Results { batch, out } => {
            let b = find(&store, &batch).await?;
            let written = write_results(&store, &b, &out).await?;
            let c = store.batch_counts(&b.id).await?;
            println!(
                "{written} results written to {} · {}",
                out.display(),
                progress_line(&c)
            );
            Ok(if c.failed > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn find(store: &Store, name: &str) -> Result<BatchRecord> {
    store
        .get_batch(name)
        .await?
        .with_context(|| format!("no batch {name:?} (see cairn batch status)"))
}

fn default_name(agent: &str, source: &Path) -> String {
    let hash = cairn_cluster::pki::sha256_hex(source.display().to_string().as_bytes());
    let stem = source
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    format!("{agent}-{stem}-{}", &hash[..8])
}

/// One item per regular file, by name; too big a file is refused up front.
fn dir_items(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut items = Vec::with_capacity(files.len());
    for f in files {
        let label = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let size = std::fs::metadata(&f)?.len();
        if size > MAX_ITEM_BYTES {
            bail!(
                "{} is {size} bytes; items are at most {MAX_ITEM_BYTES}",
                f.display()
            );
        }
        let text = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        let text = String::from_utf8_lossy(&text);
        items.push((label.clone(), format!("File: {label}\n\n{text}")));
    }
    Ok(items)
}

/// One item per non-empty line: a JSON string, an object's "input" (or
/// "prompt"), else the line itself.
fn jsonl_items(file: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let input = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(serde_json::Value::Object(o)) => o
                .get("input")
                .or_else(|| o.get("prompt"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .with_context(|| {
                    format!(
                        "{}:{}: an object needs an \"input\" string",
                        file.display(),
                        n + 1
                    )
                })?,
            _ => line.to_string(),
        };
        items.push((format!("line-{:05}", n + 1), input));
    }
    Ok(items)
}

fn progress_line(c: &BatchCounts) -> String {
    format!(
        "{}/{} done, {} failed, {} running, {} waiting",
        c.done,
        c.total(),
        c.failed,
        c.running,
        c.pending
    )
}

fn bar(c: &BatchCounts) -> String {
    let width = 30;
    let total = c.total().max(1);
    let filled = ((c.done + c.failed) * width / total) as usize;
    format!(
        "[{}{}] {}",
        "#".repeat(filled),
        ".".repeat(width as usize - filled),
        progress_line(c)
    )
}

/// Follows a batch to its end, writing results as they come.
async fn follow(store: &Store, batch: &BatchRecord, out: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut hinted = false;
    let mut last_line = Instant::now() - Duration::from_secs(60);
    loop {
        // Counted before writing: an item done by the count is written
        // below, so a finished count never leaves a result unwritten.
        let c = store.batch_counts(&batch.id).await?;
        write_results(store, batch, out).await?;
        if tty {
            eprint!("\r{}", bar(&c));
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= Duration::from_secs(5) || c.finished() {
            eprintln!("{}", progress_line(&c));
            last_line = Instant::now();
        }
        if c.finished() {
            if tty {
                eprintln!();
            }
            break;
        }
        if !hinted
            && c.running == 0
            && c.done == 0
            && c.failed == 0
            && started.elapsed() > Duration::from_secs(5)
        {
            eprintln!(
                "\nnothing started yet: batches are run by the server (is `cairn serve` running on this database?)"
            );
            hinted = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut stderr = std::io::stderr();
    let failed = list_failures(store, batch, &mut stderr).await?;
    eprintln!("results in {}", out.display());
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes every finished item's result not yet written; how many.
async fn write_results(store: &Store, batch: &BatchRecord, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = 0;
    let mut after = -1;
    loop {
        let items = store
            .batch_items(&batch.id, Some(ItemStatus::Done), after, 500)
            .await?;
        let Some(last) = items.last() else { break };
        after = last.idx;
        for item in &items {
            let path = out.join(format!("{}.md", safe_file_name(&item.label)));
            if path.exists() {
                continue;
            }
            let tmp = path.with_extension("md.part");
            std::fs::write(&tmp, item.output.as_deref().unwrap_or(""))
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            written += 1;
        }
    }
    Ok(written)
}

/// A label as a file name: no directories, nothing hidden.
fn safe_file_name(label: &str) -> String {
    let cleaned: String = label
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_string()
}

/// Lists failed items; how many.
async fn list_failures(store: &Store, batch: &BatchRecord, to: &mut dyn Write) -> Result<usize> {
    let failed = store
        .batch_items(&batch.id, Some(ItemStatus::Failed), -1, 10_000)
        .await?;
    for item in &failed {
        writeln!(
            to,
            "failed: {} after {} attempts: {}",
            item.label,
            item.attempt,
            item.error.as_deref().unwrap_or("?")
        )?;
    }
    Ok(failed.len())
}
