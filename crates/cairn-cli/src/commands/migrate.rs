//! `cairn migrate --to postgres://…`: phase 2 of the growth path. Copies
//! this home's SQLite database into PostgreSQL (the file is only read),
//! verifies every table, and says how to switch over and how to go back.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cairn_store::transfer::{Progress, Transfer};

use crate::config::{self, Database};

/// Arguments of `cairn migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// The PostgreSQL database to copy into (postgres://user:pass@host/db).
    #[arg(long, value_name = "URL", env = "CAIRN_MIGRATE_TO")]
    to: String,
    /// The SQLite file to copy (default: this home's database).
    #[arg(long, value_name = "PATH")]
    from: Option<std::path::PathBuf>,
    /// Erase what the target holds before copying.
    #[arg(long)]
    force: bool,
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let source = match (args.from, loaded.database()) {
        (Some(path), _) => path,
        (None, Database::Sqlite(path)) => path,
        (None, Database::Postgres(_)) => {
            bail!(
                "this home already uses PostgreSQL; pass --from <sqlite file> to copy a SQLite database"
            )
        }
    };
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!(
            "--to must be a postgres:// URL, got {:?}",
            cairn_store::postgres::redact_url(&args.to)
        );
    }
    let target_name = cairn_store::postgres::redact_url(&args.to);
    let settings = cairn_store::PgSettings {
        max_connections: 2,
        ..Default::default()
    };
    let target = cairn_store::PgStore::connect(&args.to, &settings)
        .await
        .with_context(|| format!("connecting to {target_name}"))?;
    let transfer = Transfer::open(&source, &target).await?;
    eprintln!("copying {} → {target_name}", source.display());
    let started = Instant::now();
    let mut bar = Bar::default();
    let reports = transfer.run(args.force, |p| bar.show(p)).await?;
    bar.finish();
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    eprintln!(
        "copied {rows} rows in {} tables in {:.1} s; counts and checksums match",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    for r in reports.iter().filter(|r| r.rows > 0) {
        eprintln!(
            "  {:<22} {:>8} rows  sha256 {}",
            r.table,
            r.rows,
            &r.checksum[..16]
        );
    }
    eprintln!(
        "\nnext: stop `cairn serve`, then start it on PostgreSQL:\n  cairn serve --database '{target_name}'\n\
         (or set store.database, or CAIRN_DATABASE_URL). {} was only read and is unchanged:\n\
         to go back, start cairn on it again; what was written to PostgreSQL since is not in it.",
        source.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A one-line progress bar on stderr.
#[derive(Default)]
struct Bar {
    table: &'static str,
    drawn: bool,
}

impl Bar {
    fn show(&mut self, p: &Progress) {
        if self.drawn && self.table != p.table {
            eprintln!();
        }
        self.table = p.table;
        self.drawn = true;
        let share = if p.total == 0 {
            1.0
        } else {
            p.copied as f64 / p.total as f64
        };
        let filled = (share.min(1.0) * 30.0).round() as usize;
        eprint!(
            "\r  {:<22} [{}{}] {}/{}",
            p.table,
            "#".repeat(filled),
            " ".repeat(30 - filled),
            p.copied,
            p.total
        );
        if let Err(e) = std::io::stderr().flush() {
            tracing::debug!(error = %e, "stderr flush");
        }
    }

    fn finish(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}
