//! `cairn cluster`: make the cluster CA, mint join tokens, list and revoke
//! worker nodes.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_cluster::{CaDir, JoinToken};
use cairn_core::cluster::{JoinTokenRecord, Labels};
use cairn_core::now_ms;

use crate::{config, render, wiring};

/// Arguments of `cairn cluster`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Create the cluster CA and the coordinators' certificate under $CAIRN_HOME/cluster.
    Init {
        /// Host names and IP addresses workers dial (comma-separated; default: localhost, 127.0.0.1, ::1, this host's name).
        #[arg(long, value_delimiter = ',')]
        san: Vec<String>,
    },
    /// Mint a one-time token a worker joins with: `cairn worker --join URL --token T`.
    JoinToken {
        /// Labels the node is issued, e.g. region=eu,cap=browser.
        #[arg(long, default_value = "")]
        labels: String,
        /// How long the token is valid (30m, 1h, 2d).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Worker nodes: labels, connection, load, last heartbeat.
    Nodes {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tool jobs sent to workers: waiting (no worker fits yet), running, done, lost.
    Jobs {
        /// Most jobs shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node (by id or name): it is refused from now on.
    Revoke {
        /// Node id or name.
        node: String,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let ca = CaDir(loaded.home.join("cluster"));
    match args.command {
        ClusterCommand::Init { san } => {
            let code = init(&ca, san)?;
            // The audit key goes beside the CA, for every coordinator to share.
            crate::secrets::audit_key(&loaded)?;
            Ok(code)
        }
        ClusterCommand::JoinToken { labels, ttl } => {
            let labels = Labels::parse(&labels).context("--labels")?;
            let ttl_ms = cairn_core::schedule::parse_interval(&ttl).map_err(|_| {
                anyhow::anyhow!("--ttl {ttl:?} is a duration such as 30m, 1h or 2d")
            })?;
            if !ca.exists() {
                bail!(cairn_cluster::ClusterError::NotInitialised(ca.0.clone()));
            }
            let token = JoinToken::mint(&ca.ca_fingerprint()?)?;
            let store = wiring::store(&loaded).await?;
            store
                .create_join_token(&JoinTokenRecord {
                    id: token.id.clone(),
                    secret_sha256: token.secret_sha256(),
                    labels: labels.clone(),
                    expires_at: now_ms() + ttl_ms,
                    created_at: now_ms(),
                })
                .await?;
            println!("{token}");
            eprintln!(
                "one-time token, valid {ttl}, labels {}: save it to a file and run cairn worker --join https://<coordinator>:7420 --token-file <file> (or CAIRN_JOIN_TOKEN=<token>; not --token, which ps shows)",
                if labels.is_empty() {
                    "(none)".to_string()
                } else {
                    labels.to_string()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Nodes { json } => nodes(&loaded, json).await,
        ClusterCommand::Jobs { limit, json } => jobs(&loaded, limit, json).await,
        ClusterCommand::Revoke { node } => {
            let store = wiring::store(&loaded).await?;
            if !store.revoke_node(&node).await? {
                bail!("no node {node:?} (see cairn cluster nodes)");
            }
            println!("revoked {node}: its connections are refused from its next heartbeat on");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init(ca: &CaDir, san: Vec<String>) -> Result<ExitCode> {
    let mut names: Vec<String> = san
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        names.extend(cairn_cluster::pki::host_name());
    }
    let fingerprint = ca.init(&names)?;
    println!("cluster CA created in {}", ca.0.display());
    println!("  CA sha256      {fingerprint}");
    println!("  coordinator    certificate for {}", names.join(", "));
    println!(
        "next: CAIRN_DATABASE_URL=postgres://… cairn serve --role coordinator --listen 0.0.0.0:7420"
    );
    println!("      cairn cluster join-token --labels region=eu --ttl 1h");
    println!(
        "other coordinators: copy {} to their $CAIRN_HOME (it holds the CA key: keep it private)",
        ca.0.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn nodes(loaded: &config::Loaded, json: bool) -> Result<ExitCode> {
    let store = wiring::store(loaded).await?;
    let nodes = store.list_nodes().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if nodes.is_empty() {
        println!("no nodes yet: cairn cluster join-token, then cairn worker --join on the node");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<16} {:<10} {:<8} {:<24} LABELS",
        "NODE", "NAME", "STATE", "LOAD", "LAST SEEN"
    );
    for n in nodes {
        // A coordinator killed without a goodbye leaves `coordinator` set;
        // the heartbeat says whether the node is really there.
        let fresh = n.last_seen.is_some_and(|t| now_ms() - t < 20_000);
        let state = if n.revoked_at.is_some() {
            "revoked"
        } else if n.coordinator.is_some() && fresh {
            "up"
        } else {
            "down"
        };
        println!(
            "{:<28} {:<16} {:<10} {:<8} {:<24} {}",
            n.id,
            render::short(&n.name, 16),
            state,
            format!("{}/{}", n.running, n.slots),
            n.last_seen.map(render::time).unwrap_or_else(|| "-".into()),
            n.labels
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn jobs(loaded: &config::Loaded, limit: i64, json: bool) -> Result<ExitCode> {
    let store = wiring::store(loaded).await?;
    let jobs = store.list_tool_jobs(limit.clamp(1, 10_000)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("no tool jobs: agents send tools to workers with [agents.<name>.placement]");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36} {:<11} {:<8} {:<8} {:<34} {:<20} REQUIRES",
        "JOB", "TOOL", "STATUS", "ATTEMPT", "NODE", "SUBMITTED"
    );
    for j in jobs {
        println!(
            "{:<36} {:<11} {:<8} {:<8} {:<34} {:<20} {}",
            render::short(&j.job.id, 36),
            j.job.tool,
            j.status.as_str(),
            j.attempt,
            j.node.as_deref().unwrap_or("-"),
            render::time(j.created_at),
            if j.job.requires.is_empty() {
                "-".to_string()
            } else {
                j.job.requires.to_string()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
