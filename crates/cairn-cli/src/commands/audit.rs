//! `cairn audit`: read, follow, verify and export the audit log. Reads the
//! store directly (like `cairn runs`), and verifies with the audit key in
//! `$CAIRN_HOME`, so it works while the server is down.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_core::audit::{Actor, AuditEvent, AuditRow, Head, Verdict};
use cairn_store::Store;

use crate::{config, secrets, wiring};

/// Arguments of `cairn audit`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// The newest entries; with --follow, then each new one as it is written.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Keep printing new entries until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line (as `export` writes them).
        #[arg(long)]
        json: bool,
    },
    /// Check every entry's seal and link; exit 1 and say where when broken.
    Verify {
        /// A head printed by an earlier verify (SEQ:SEAL): also catches the
        /// newest entries being deleted since.
        #[arg(long)]
        head: Option<Head>,
        /// The verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every entry as JSON lines, oldest first, to stdout or --out.
    Export {
        /// Only entries after this one.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Write here instead of stdout (made with mode 0600).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    match args.command {
        AuditCommand::Tail {
            lines,
            follow,
            json,
        } => tail(&store, lines.clamp(1, 100_000), follow, json).await,
        AuditCommand::Verify { head, json } => {
            let key = secrets::existing_audit_key(&loaded.home)?;
            let verdict = store.verify_audit(&key, head).await?;
            Ok(report(&verdict, json))
        }
        AuditCommand::Export { after, out } => export(&store, after, out).await,
    }
}

async fn tail(store: &Store, n: i64, follow: bool, json: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut last = 0;
    for row in store.audit_tail(n).await? {
        print_row(&mut out, &row, json)?;
        last = row.seq;
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        for row in store.audit_page(last, 1000).await? {
            print_row(&mut out, &row, json)?;
            last = row.seq;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(out: &mut impl Write, row: &AuditRow, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", export_line(row)?)?;
    } else {
        let who = row
            .actor()
            .map_or_else(|_| row.actor.clone(), |a| actor_text(&a));
        let what = row
            .event()
            .map_or_else(|_| row.event.clone(), |e| event_text(&e));
        let at = cairn_runtime::iso(row.at);
        writeln!(out, "{:>6}  {at}  {who:<24}  {what}", row.seq)?;
    }
    out.flush()?;
    Ok(())
}

/// One entry as an export line: the stored actor and event texts kept as
/// they are (objects, byte for byte), so the seal can be checked again
/// from the export.
fn export_line(row: &AuditRow) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        seq: i64,
        at: i64,
        key_id: &'a str,
        actor: Text<'a>,
        event: Text<'a>,
        prev: &'a str,
        seal: &'a str,
    }
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Text<'a> {
        Json(&'a serde_json::value::RawValue),
        // A stored text that is not JSON (it was tampered with) as a string.
        Plain(&'a str),
    }
    fn raw(s: &str) -> Option<&serde_json::value::RawValue> {
        serde_json::from_str(s).ok()
    }
    let line = Line {
        seq: row.seq,
        at: row.at,
        key_id: &row.key_id,
        actor: raw(&row.actor).map_or(Text::Plain(&row.actor), Text::Json),
        event: raw(&row.event).map_or(Text::Plain(&row.event), Text::Json),
        prev: &row.prev,
        seal: &row.seal,
    };
    serde_json::to_string(&line).context("writing an audit entry as JSON")
}

async fn export(
    store: &Store,
    mut after: i64,
    out: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut count = 0u64;
    loop {
        let page = store.audit_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            writeln!(sink, "{}", export_line(row)?)?;
            count += 1;
        }
    }
    sink.flush()?;
    if let Some(path) = out {
        eprintln!("exported {count} entries to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn report(verdict: &Verdict, json: bool) -> ExitCode {
    match verdict {
        Verdict::Intact { entries, head } => {
            let head_text = head.as_ref().map(ToString::to_string);
            if json {
                let v = serde_json::json!({"intact": true, "entries": entries, "head": head_text});
                println!("{v}");
            } else if let Some(h) = head_text {
                println!(
                    "audit log intact: {entries} entries, each sealed after the one before.\nhead {h}\n(keep the head somewhere else: `cairn audit verify --head {h}` later also catches the newest entries being deleted)"
                );
            } else {
                println!("audit log intact: no entries yet");
            }
            ExitCode::SUCCESS
        }
        Verdict::Broken { intact, at } => {
            if json {
                let v = serde_json::json!({"intact": false, "entries_before_break": intact, "break": at.to_string()});
                println!("{v}");
            } else {
                println!("audit log BROKEN: {at} ({intact} entries before it check out)");
            }
            ExitCode::from(1)
        }
    }
}

fn actor_text(a: &Actor) -> String {
    match a {
        Actor::Operator => "operator".into(),
        Actor::Key { key, user } => format!("{user} (key {key})"),
        Actor::Anonymous => "anonymous".into(),
        Actor::Person { channel, user } => format!("{channel}:{user}"),
        Actor::Agent { agent, run } => format!("agent {agent} ({run})"),
        Actor::System => "cairn".into(),
    }
}

fn event_text(e: &AuditEvent) -> String {
    match e {
        AuditEvent::Refused {
            surface,
            action,
            status,
            reason,
            suppressed,
        } => {
            let more = match suppressed {
                0 => String::new(),
                n => format!(" (+{n} more not recorded)"),
            };
            format!("refused {action} on {surface}: {status} {reason}{more}")
        }
        AuditEvent::KeyUsed {
            surface,
            action,
            status,
        } => format!("{action} on {surface}: {status}"),
        AuditEvent::ToolRan {
            tool,
            call,
            place,
            input_sha256,
            output_sha256,
            is_error,
            ..
        } => format!(
            "ran {tool} ({call}) {place:?}{} in {} out {}",
            if *is_error { " → error" } else { "" },
            &input_sha256[..input_sha256.len().min(12)],
            &output_sha256[..output_sha256.len().min(12)]
        ),
        AuditEvent::ToolRefused {
            tool, call, reason, ..
        } => format!("refused tool {tool} ({call}): {reason}"),
        AuditEvent::Delegated {
            to, what, chain, ..
        } => {
            format!("delegated {what} to {to} (chain of {} blocks)", chain.len())
        }
        AuditEvent::Residency {
            class,
            target,
            reason,
            ..
        } => format!("{class} data → {target}: {reason}"),
        AuditEvent::AgentChanged { name, widened } if widened.is_empty() => {
            format!("agent {name} changed")
        }
        AuditEvent::AgentChanged { name, widened } => {
            format!("agent {name} changed, widening {}", widened.join(", "))
        }
        AuditEvent::KeyCreated { key, user, role } => format!("key {key} made for {user} ({role})"),
        AuditEvent::KeyRevoked { key } => format!("key {key} revoked"),
        AuditEvent::Started {
            version,
            config_sha256,
            listen,
        } => format!(
            "started cairn {version} on {listen}, config {}",
            &config_sha256[..config_sha256.len().min(12)]
        ),
    }
}
