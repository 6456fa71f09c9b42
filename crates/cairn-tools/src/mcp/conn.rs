//! One live connection to an MCP server: the child process (stdio) or the
//! HTTP session, the rmcp client over it, and what the server offers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::AsyncBufReadExt;

use super::McpError;
use super::config::{Endpoint, McpServerConfig};
use super::progress::{Ordered, Watchers};
use crate::sandbox::{Confined, Sandbox};

/// Lines of a stdio server's stderr kept to explain a crash.
const STDERR_LINES: usize = 20;
/// CPU seconds a stdio server may use over its life before the kernel
/// stops it (it is then restarted).
const SERVER_CPU: Duration = Duration::from_secs(7 * 24 * 3600);

/// Notifications a server sends outside any answer (progress aside).
#[derive(Clone, Default)]
pub(crate) struct Handler {
    /// Set when the server says its tool list changed.
    pub tools_changed: Arc<AtomicBool>,
    /// Calls waiting for progress (reported by the transport, in order).
    pub progress: Watchers,
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        self.tools_changed.store(true, Ordering::Release);
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("cairn", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// A connected server.
pub(crate) struct Conn {
    /// The client.
    pub service: RunningService<RoleClient, Handler>,
    /// Its notifications.
    pub handler: Handler,
    /// The child process, killed (with all it started) when dropped.
    child: Option<Confined>,
    /// The last lines the child wrote to stderr.
    pub stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Conn {
    /// Whether the connection has ended (the child exited, the session
    /// closed).
    pub fn closed(&self) -> bool {
        self.service.is_closed()
    }

    /// `"; it wrote: <its last stderr lines>"`, or nothing if it wrote
    /// none: the tail of an error message.
    pub fn stderr_note(&self) -> String {
        stderr_note(&self.stderr)
    }
}

fn stderr_note(tail: &Mutex<VecDeque<String>>) -> String {
    let said = match tail.lock() {
        Ok(lines) => lines.iter().cloned().collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    };
    if said.is_empty() {
        said
    } else {
        format!("; it wrote: {said}")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.service.cancellation_token().cancel();
        if let Some(c) = &self.child {
            c.kill_all();
        }
    }
}

/// Where and how a server is started.
pub(crate) struct Launch<'a> {
    /// Server name, for messages.
    pub name: &'a str,
    /// Its entry.
    pub config: &'a McpServerConfig,
    /// The agent's sandbox, which a stdio server runs in.
    pub sandbox: &'a Sandbox,
    /// The agent's workspace (the child's working directory).
    pub workspace: &'a Path,
}

/// Connects and initialises, within the server's timeout.
pub(crate) async fn connect(launch: Launch<'_>) -> Result<Conn, McpError> {
    let name = launch.name.to_string();
    let endpoint = launch.config.endpoint(&name).map_err(McpError::Config)?;
    let timeout = launch.config.timeout();
    let fut = async {
        match endpoint {
            Endpoint::Stdio { command, args } => connect_stdio(&launch, command, args).await,
            Endpoint::Http { url } => connect_http(&launch, url).await,
            Endpoint::Worker => Err(McpError::Start {
                server: launch.name.to_string(),
                reason: "it is pinned to cluster workers (node = …) and is not run here".into(),
            }),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| McpError::Start {
            server: name.clone(),
            reason: format!("no answer to initialize within {} s", timeout.as_secs()),
        })?
}

async fn connect_stdio(
    launch: &Launch<'_>,
    command: String,
    args: Vec<String>,
) -> Result<Conn, McpError> {
    let start_err = |reason: String| McpError::Start {
        server: launch.name.to_string(),
        reason,
    };
    let mut argv = vec![command];
    argv.extend(args);
    let read: Vec<std::path::PathBuf> = launch.config.read_paths.iter().map(Into::into).collect();
    let spawn = crate::sandbox::Launch {
        argv: &argv,
        env: &launch.config.env,
        read: &read,
    };
    let mut child = launch
        .sandbox
        .spawn_service(launch.workspace, spawn, SERVER_CPU)
        .map_err(|e| start_err(e.to_string()))?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (
        child.child.stdin.take(),
        child.child.stdout.take(),
        child.child.stderr.take(),
    ) else {
        return Err(start_err("the child's pipes are missing".into()));
    };
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let keep = tail.clone();
    let server = launch.name.to_string();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(server = %server, "mcp stderr: {line}");
            if let Ok(mut t) = keep.lock() {
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line.chars().take(500).collect());
            }
        }
    });
    let transport = AsyncRwTransport::new_client(stdout, stdin)
        .with_max_line_length(launch.config.max_message_bytes);
    let handler = Handler::default();
    let transport = Ordered::new(transport, handler.progress.clone());
    match handler.clone().serve(transport).await {
        Ok(service) => Ok(Conn {
            service,
            handler,
            child: Some(child),
            stderr: tail,
        }),
        Err(e) => {
            // Give the child a moment to say why it failed.
            tokio::time::sleep(Duration::from_millis(100)).await;
            child.kill_all();
            Err(start_err(format!("{e}{}", stderr_note(&tail))))
        }
    }
}

async fn connect_http(launch: &Launch<'_>, url: String) -> Result<Conn, McpError> {
    let start_err = |reason: String| McpError::Start {
        server: launch.name.to_string(),
        reason,
    };
    let mut headers = HashMap::new();
    let mut auth = None;
    for (k, v) in &launch.config.headers {
        if k.eq_ignore_ascii_case("authorization") {
            // rmcp sends this one itself (as a bearer token).
            auth = Some(v.strip_prefix("Bearer ").unwrap_or(v).to_string());
            continue;
        }
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| start_err(format!("header {k}: {e}")))?;
        let value =
            http::HeaderValue::from_str(v).map_err(|e| start_err(format!("header {k}: {e}")))?;
        headers.insert(name, value);
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers)
        .max_json_response_size(launch.config.max_message_bytes)
        .max_sse_event_size(launch.config.max_message_bytes);
    if let Some(token) = auth {
        config = config.auth_header(token);
    }
    let client = http_client().map_err(start_err)?;
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let handler = Handler::default();
    let transport = Ordered::new(transport, handler.progress.clone());
    let service = handler
        .clone()
        .serve(transport)
        .await
        .map_err(|e| start_err(e.to_string()))?;
    Ok(Conn {
        service,
        handler,
        child: None,
        stderr: Arc::default(),
    })
}

/// The HTTP client for MCP servers: the user configured the address, so
/// unlike `http_fetch` private and loopback addresses are allowed.
fn http_client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // The configured URL is the server; a redirect elsewhere would
        // carry its headers (the key) to an address nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}
