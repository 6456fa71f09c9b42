//! The `cairn` binary.

mod client;
mod commands;
mod config;
mod config_locate;
mod config_template;
mod config_tools;
mod declared;
mod render;
mod sd_notify;
mod secrets;
mod wiring;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// cairn: a runtime for AI agents, from one laptop to a cluster.
#[derive(Parser)]
#[command(name = "cairn", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Where state lives: a SQLite file or a postgres:// URL (overrides
    /// store.database; also CAIRN_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL_OR_PATH")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create $CAIRN_HOME (default ~/.cairn) with a config file and the default agent.
    Init(commands::init::Args),
    /// Serve the native API, the OpenAI-compatible API and run queued work (127.0.0.1:7420).
    Serve(commands::serve::Args),
    /// Run one turn of an agent and print its answer.
    Run(commands::run::Args),
    /// Talk with an agent interactively (streaming; Ctrl-C stops a turn, Ctrl-D quits).
    Chat(commands::chat::Args),
    /// Inspect runs: every step, tokens and cost.
    Runs(commands::runs::Args),
    /// Inspect sessions and their messages.
    Sessions(commands::sessions::Args),
    /// Read and edit what agents remember: save, search (--episodic for history), list, forget.
    Memory(commands::memory::Args),
    /// Run `cairn serve` as a systemd service: `cairn service install [--user]`.
    Service(commands::service::Args),
    /// Channels (Telegram, Slack, webhooks): `cairn channels outbox`.
    Channels(commands::channels::Args),
    /// Wake an agent on a cron schedule, an interval or once: add, list, pause, resume, remove, runs.
    Schedule(commands::schedule::Args),
    /// Copy this SQLite deployment into PostgreSQL (verified, resumable): `cairn migrate --to postgres://…`.
    Migrate(commands::migrate::Args),
    /// One run per input item, resumable: `cairn batch run --agent A --input-dir D --out O`; status, results.
    Batch(commands::batch::Args),
    /// Cluster: init (CA), join-token, nodes, jobs, revoke.
    Cluster(commands::cluster::Args),
    /// Join a cluster and run its tool jobs: `cairn worker --join https://coord:7420 --token T`.
    Worker(commands::worker::Args),
    /// Serve agents and memory to MCP clients over stdio (tools ask_agent, memory_search, list_agents).
    Mcp(commands::mcp::Args),
    /// Hybrid routing: `cairn route explain "<prompt>"` shows where a prompt would go and why.
    Route(commands::route::Args),
    /// People's API keys: create --user U --role viewer|member|admin [--agent A], list, revoke ID.
    Apikey(commands::apikey::Args),
    /// The audit log: tail [--follow], verify [--head SEQ:SEAL], export (JSON lines).
    Audit(commands::audit::Args),
    /// Show configuration, database and recent activity.
    Status(commands::status::Args),
    /// Check configuration, keys, database and sandbox tools, and say what to fix.
    Doctor,
}

fn main() -> ExitCode {
    // Everything cairn creates holds someone's conversations or secrets:
    // the database with its -wal and -shm (wherever it lives), exports,
    // keys. Private whatever the umask it was started with; the commands it
    // runs get the usual 022 back (see cairn_tools::sandbox).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    wiring::init_logging();
    if let Some(db) = cli.database.clone() {
        config::set_database_flag(db);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init(a) => commands::init::run(a).await,
            Command::Serve(a) => commands::serve::run(a).await,
            Command::Run(a) => commands::run::run(a).await,
            Command::Chat(a) => commands::chat::run(a).await,
            Command::Runs(a) => commands::runs::run(a).await,
            Command::Sessions(a) => commands::sessions::run(a).await,
            Command::Memory(a) => commands::memory::run(a).await,
            Command::Schedule(a) => commands::schedule::run(a).await,
            Command::Service(a) => commands::service::run(a).await,
            Command::Channels(a) => commands::channels::run(a).await,
            Command::Migrate(a) => commands::migrate::run(a).await,
            Command::Batch(a) => commands::batch::run(a).await,
            Command::Cluster(a) => commands::cluster::run(a).await,
            Command::Worker(a) => commands::worker::run(a).await,
            Command::Route(a) => commands::route::run(a).await,
            Command::Mcp(a) => commands::mcp::run(a).await,
            Command::Apikey(a) => commands::apikey::run(a).await,
            Command::Audit(a) => commands::audit::run(a).await,
            Command::Status(a) => commands::status::run(a).await,
            Command::Doctor => commands::doctor::run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
