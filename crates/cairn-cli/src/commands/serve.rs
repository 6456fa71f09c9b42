//! `cairn serve`: the single-node agent host every surface talks to.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_server::{ServeOptions, serve};
use tokio_util::sync::CancellationToken;

use crate::{config, secrets, wiring};

/// Arguments of `cairn serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (default: server.listen, 127.0.0.1:7420).
    #[arg(long)]
    listen: Option<String>,
    /// `single` (one node, plain HTTP on loopback) or `coordinator` (TLS
    /// with the cluster's certificate; workers join and connect here).
    #[arg(long, value_enum, default_value = "single")]
    role: Role,
    /// TLS certificate chain, PEM (default: server.tls_cert).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key, PEM (default: server.tls_key).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Serve TLS with a certificate made here once ($CAIRN_HOME/tls/) for
    /// the listen address, localhost and this host's name.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Serve plain HTTP beyond loopback anyway (logged at every start).
    #[arg(long)]
    insecure: bool,
}

/// What this server is.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Single,
    Coordinator,
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let server = &loaded.config.server;
    let listen_text = args.listen.clone().unwrap_or_else(|| server.listen.clone());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("--listen / server.listen {listen_text:?} is not an address such as 127.0.0.1:7420")
    })?;
    let ca = cairn_cluster::CaDir(loaded.home.join("cluster"));
    if args.role == Role::Coordinator && !ca.exists() {
        bail!(cairn_cluster::ClusterError::NotInitialised(ca.0));
    }
    let role = args.role;
    let tls = match role {
        Role::Single => single_tls(&loaded, &args, listen)?,
        Role::Coordinator => None,
    };
    if args.insecure && tls.is_none() && role == Role::Single && !listen.ip().is_loopback() {
        eprintln!(
            "warning: --insecure: serving plain HTTP on {listen}; API keys and conversations cross the network readable"
        );
    }
    let scheme = match (role, &tls) {
        (Role::Single, None) => "http",
        _ => "https",
    };
    let shutdown = CancellationToken::new();
    let (mut rt, unconfigured) = wiring::serve_runtime(&loaded).await?;
    let coordinator = match args.role {
        Role::Single => None,
        Role::Coordinator => {
            let co = cairn_cluster::Coordinator::new(
                rt.store().clone(),
                ca,
                loaded.config.cluster.clone(),
                shutdown.clone(),
            )?;
            rt = rt.with_placement(std::sync::Arc::new(
                cairn_cluster::remote::ClusterPlacement::new(co.clone()),
            ));
            Some(co)
        }
    };
    publish_agents(&loaded, &rt).await?;
    if let Some(who) = rt.sandbox().run_as {
        tracing::info!(
            "this server runs as root; sandboxed commands run as {}",
            who.describe()
        );
    }
    warm_mcp(&loaded, &rt)?;
    let declared = crate::declared::sync(&loaded, rt.store()).await?;
    if declared > 0 {
        tracing::info!(
            declared,
            "schedules and heartbeats from the config are in place"
        );
    }
    let problems = loaded.config.channels.problems();
    for p in problems.iter().filter(|p| !p.fatal) {
        eprintln!("warning: [channels.{}] {}", p.channel, p.message);
    }
    let fatal: Vec<String> = problems
        .iter()
        .filter(|p| p.fatal)
        .map(|p| format!("[channels.{}] {}", p.channel, p.message))
        .collect();
    if !fatal.is_empty() {
        bail!("{}", fatal.join("\n"));
    }
    let opts = ServeOptions {
        listen,
        concurrency: server.concurrency.max(1),
        body_limit: server.body_limit_bytes.max(1024),
        shutdown_grace: Duration::from_secs(server.shutdown_grace_s),
        api_key: server.api_key.clone().filter(|k| !k.is_empty()),
        operator_key: Some(secrets::operator_key(&loaded)?),
        watchdog_stuck: Duration::from_secs(server.watchdog_stuck_s),
        watchdog_action: cairn_server::watchdog::WatchdogAction::parse(&server.watchdog_action)
            .with_context(|| {
                format!(
                    "server.watchdog_action is \"cancel\" or \"retry\", not {:?}",
                    server.watchdog_action
                )
            })?,
        channels: loaded.config.channels.clone(),
        browser: cairn_server::BrowserPolicy {
            allowed_hosts: server
                .allowed_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            allowed_origins: server
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        },
        coordinator,
        tls,
        insecure: args.insecure,
    };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!(
            "stopping: no new work; running steps get up to the grace period, the rest resume at the next start"
        );
        stop.cancel();
    });
    let provider = format!(
        "{} · model {}",
        rt.provider().name(),
        if rt.provider().default_model().is_empty() {
            "(the server's first)"
        } else {
            rt.provider().default_model()
        }
    );
    record_start(&loaded, &rt, listen).await?;
    let db = loaded.database().display();
    let pinger = crate::sd_notify::Notifier::from_env().map(std::sync::Arc::new);
    let stopped = shutdown.clone();
    serve(rt, opts, shutdown, |addr| {
        if let Some(n) = pinger.clone() {
            n.send("READY=1");
            let every = crate::sd_notify::Notifier::watchdog_interval();
            tokio::spawn(async move {
                loop {
                    if every.is_some() {
                        n.send("WATCHDOG=1");
                    }
                    let wait = every.unwrap_or(Duration::from_secs(3600));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped.cancelled() => {
                            n.send("STOPPING=1");
                            break;
                        }
                    }
                }
            });
        }
        eprintln!(
            "cairn {} serving on {scheme}://{addr}",
            env!("CARGO_PKG_VERSION")
        );
        eprintln!("  native API  {scheme}://{addr}/api/v1   (OpenAPI: /api/v1/openapi.json)");
        eprintln!("  OpenAI API  {scheme}://{addr}/v1       (model \"cairn:<agent>\")");
        eprintln!("  provider    {provider}");
        eprintln!("  database    {db}");
        if role == Role::Coordinator {
            eprintln!("  cluster     workers: cairn worker --join https://{addr} --token <cairn cluster join-token>");
        }
        if let Some(reason) = &unconfigured {
            eprintln!("\nnot ready: {reason}\n(the server runs; runs fail until a provider is set and cairn serve restarts)");
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Agents from the config file are what the API serves (the file wins
/// over API edits of the same name at each start).
pub(crate) async fn publish_agents(
    loaded: &config::Loaded,
    rt: &cairn_runtime::Runtime,
) -> Result<()> {
    let mut names: Vec<String> = loaded.config.agents.keys().cloned().collect();
    if !names.iter().any(|n| n == "default") {
        names.push("default".into());
    }
    for name in names {
        let agent = loaded.agent(&name)?;
        if agent.sandbox == cairn_core::SandboxProfile::Host {
            eprintln!(
                "warning: agent {name} runs commands unsandboxed on this host (sandbox = \"host\")"
            );
        }
        rt.store().put_agent(&agent).await?;
    }
    Ok(())
}

/// Starts the agents' MCP servers in the background, so their tools are
/// discovered at start and a server that cannot start is reported at once.
fn warm_mcp(loaded: &config::Loaded, rt: &cairn_runtime::Runtime) -> Result<()> {
    if rt.mcp().is_none() {
        return Ok(());
    }
    for name in loaded.config.agents.keys() {
        let agent = loaded.agent(name)?;
        if agent.mcp.is_empty() {
            continue;
        }
        let rt = rt.clone();
        tokio::spawn(async move {
            if let Err(e) = rt.warm_mcp(&agent).await {
                tracing::warn!(target: "cairn_tools::mcp", agent = %agent.name, "MCP servers not started: {e}");
            }
        });
    }
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// Writes the start to the audit log with a digest of the configuration
/// in force (file and environment), so a changed config shows between two
/// starts. A server that cannot write its log does not start.
async fn record_start(
    loaded: &config::Loaded,
    rt: &cairn_runtime::Runtime,
    listen: SocketAddr,
) -> Result<()> {
    let Some(audit) = rt.audit() else {
        return Ok(());
    };
    let config = serde_json::to_vec(&loaded.config).context("serializing the configuration")?;
    let event = cairn_core::audit::AuditEvent::Started {
        version: env!("CARGO_PKG_VERSION").into(),
        config_sha256: cairn_core::audit::digest(&config),
        listen: listen.to_string(),
    };
    audit
        .record(cairn_core::audit::Actor::System, event)
        .await
        .context("writing the audit log")?;
    Ok(())
}

/// TLS for a single node: the given certificate files, or one made here.
fn single_tls(
    loaded: &config::Loaded,
    args: &Args,
    listen: SocketAddr,
) -> Result<Option<cairn_cluster::tls::ServerTls>> {
    let server = &loaded.config.server;
    let given = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ if !server.tls_cert.is_empty() || !server.tls_key.is_empty() => {
            if server.tls_cert.is_empty() || server.tls_key.is_empty() {
                bail!("server.tls_cert and server.tls_key go together: set both, or neither");
            }
            Some((
                loaded.home.join(&server.tls_cert),
                loaded.home.join(&server.tls_key),
            ))
        }
        _ => None,
    };
    if let Some((cert, key)) = given {
        let tls = cairn_cluster::tls::plain_server_config(&cert, &key).with_context(|| {
            format!(
                "TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;
        return Ok(Some(tls));
    }
    if !args.tls_self_signed {
        return Ok(None);
    }
    let dir = loaded.home.join("tls");
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(cairn_cluster::pki::host_name());
    let fingerprint = cairn_cluster::pki::self_signed_server(&dir, &names)?;
    eprintln!(
        "TLS with a self-signed certificate ({}, sha256 {fingerprint}): clients must trust {}",
        names.join(", "),
        dir.join("cert.pem").display()
    );
    let tls = cairn_cluster::tls::plain_server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
    Ok(Some(tls))
}
