//! cairn's HTTP surface. One stable native API under `/api/v1` (described by
//! the OpenAPI document at `/api/v1/openapi.json`, with run events over SSE
//! and WebSocket), an OpenAI-compatible `/v1/chat/completions` and
//! `/v1/models`, health endpoints, and the executor that drives queued runs.

#![deny(clippy::too_many_lines)]

mod api;
mod audit;
pub mod channels;
mod error;
mod executor;
mod hub;
pub mod mcp;
mod scheduler;
mod state;
pub mod watchdog;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cairn_runtime::Runtime;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use api::guard::BrowserPolicy;
pub use state::AppState;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Runs driven at once.
    pub concurrency: usize,
    /// Largest request body accepted (bytes).
    pub body_limit: usize,
    /// On SIGTERM, how long running steps may take to finish.
    pub shutdown_grace: Duration,
    /// Bearer key required on the API; `None` allows only loopback use.
    pub api_key: Option<String>,
    /// The operator's key (`$CAIRN_HOME/operator.key`): admits to the API
    /// like `api_key`, and is required to widen an agent's isolation.
    pub operator_key: Option<String>,
    /// A run without progress for this long is cancelled (zero: never).
    pub watchdog_stuck: Duration,
    /// Cancel a stuck run, or cancel and start it again (once).
    pub watchdog_action: watchdog::WatchdogAction,
    /// Telegram, Slack, webhooks.
    pub channels: channels::ChannelSettings,
    /// Host and Origin values accepted beyond loopback.
    pub browser: BrowserPolicy,
    /// Serve as a cluster coordinator: TLS with the cluster's certificate,
    /// and the join and worker endpoints. `None`: a single node.
    pub coordinator: Option<Arc<cairn_cluster::Coordinator>>,
    /// TLS for a single node (certificate files, or a self-signed one).
    pub tls: Option<cairn_cluster::tls::ServerTls>,
    /// Serve plain HTTP beyond loopback anyway (warned at every start).
    pub insecure: bool,
}

/// Why the server could not start or stopped badly.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Listening beyond this host without an API key.
    #[error(
        "refusing to listen on {0} without an API key: anyone who can reach it could run tools on this host. Set CAIRN_SERVER__API_KEY (clients send `Authorization: Bearer <key>`), or listen on 127.0.0.1"
    )]
    Unprotected(SocketAddr),
    /// Listening beyond this host in plain HTTP: keys and messages would
    /// cross the network readable.
    #[error(
        "refusing to listen on {0} without TLS: API keys and conversations would cross the network in the clear. Give a certificate (--tls-cert FILE --tls-key FILE, or server.tls_cert / server.tls_key), or --tls-self-signed for one made here; --insecure serves plain HTTP anyway"
    )]
    Plaintext(SocketAddr),
    /// The store failed at start.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The cluster's certificates are unusable.
    #[error(transparent)]
    Cluster(#[from] cairn_cluster::ClusterError),
}

/// Serves until `shutdown` fires (or SIGTERM/SIGINT when `handle_signals`),
/// then stops taking work, lets running steps finish up to the grace period
/// and leaves the rest to resume at the next start. `on_ready` is called
/// with the bound address once the listener is up.
pub async fn serve(
    rt: Runtime,
    opts: ServeOptions,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    check_exposure(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen,
            source,
        })?;
    // Runs a previous process left unfinished become claimable now.
    let recovered = rt.store().recover_leases().await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "resuming runs left unfinished by a stopped process"
        );
    }
    let mut app_state = AppState::new(rt, opts.api_key.clone(), shutdown.clone());
    app_state.browser = opts.browser.clone();
    app_state.operator_key = opts.operator_key.clone();
    app_state.channels = channels::Channels::new(&opts.channels, cairn_llm::http_client());
    let state = Arc::new(app_state);
    let mut executors = executor::start(state.clone(), opts.concurrency.max(1));
    watchdog::start(
        state.clone(),
        opts.watchdog_stuck,
        opts.watchdog_action,
        &mut executors,
    );
    channels::start(state.clone(), state.channels.clone(), &mut executors);
    let app = api::router(state.clone(), opts.body_limit);
    listen(app, listener, &opts, shutdown.clone(), on_ready).await?;
    state.rt.stopping().cancel();
    executor::drain(executors, opts.shutdown_grace).await;
    if let Some(hub) = state.rt.mcp() {
        hub.shutdown().await;
    }
    Ok(())
}

/// Beyond loopback: a key, and TLS unless `--insecure` (warned).
fn check_exposure(opts: &ServeOptions) -> Result<(), ServeError> {
    if !opts.listen.ip().is_loopback() {
        if opts.api_key.is_none() {
            return Err(ServeError::Unprotected(opts.listen));
        }
        let encrypted = opts.tls.is_some() || opts.coordinator.is_some();
        if !encrypted && !opts.insecure {
            return Err(ServeError::Plaintext(opts.listen));
        }
        if !encrypted {
            tracing::warn!(listen = %opts.listen, "--insecure: serving plain HTTP beyond loopback; API keys and conversations cross the network readable");
        }
    }
    Ok(())
}

/// Serves `app` on `listener` (TLS when a coordinator or given a
/// certificate) until `shutdown` fires.
async fn listen(
    app: Router,
    listener: tokio::net::TcpListener,
    opts: &ServeOptions,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let stop = shutdown;
    // A coordinator speaks TLS with the cluster's certificate and adds the
    // join and worker endpoints; a single node speaks it when given one.
    let tls = match &opts.coordinator {
        Some(coordinator) => Some((
            cairn_cluster::tls::server_config(coordinator.ca())?,
            Some(coordinator),
        )),
        None => opts.tls.clone().map(|tls| (tls, None)),
    };
    if let Some((tls, coordinator)) = tls {
        let app = match coordinator {
            Some(co) => {
                co.start();
                app.merge(co.router())
            }
            None => app,
        };
        let listener = cairn_cluster::tls::TlsListener::new(listener, tls)?;
        on_ready(addr);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<cairn_cluster::tls::Peer>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    } else {
        on_ready(addr);
        // Streamed answers (SSE, /mcp) are several small writes: without
        // NODELAY each waits for the client's delayed ACK (40 ms here).
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set: {e}");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    }
    Ok(())
}

/// Serves MCP over stdin and stdout (`cairn mcp`): the same executors,
/// runs and memory as `serve`, without a listener, schedules or channels
/// (a `cairn serve` on the same home runs those). Ends when the client
/// closes stdin or `shutdown` fires.
pub async fn serve_mcp_stdio(
    rt: Runtime,
    concurrency: usize,
    shutdown_grace: Duration,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let recovered = rt.store().recover_leases().await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "resuming runs left unfinished by a stopped process"
        );
    }
    let state = Arc::new(AppState::new(rt, None, shutdown.clone()));
    let executors = executor::start(state.clone(), concurrency.max(1));
    let served = mcp::serve_stdio(state.clone(), shutdown.clone()).await;
    shutdown.cancel();
    state.rt.stopping().cancel();
    executor::drain(executors, shutdown_grace).await;
    if let Some(hub) = state.rt.mcp() {
        hub.shutdown().await;
    }
    served.map_err(ServeError::Io)
}
