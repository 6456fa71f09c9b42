//! The worker: joins once with a token (its key never leaves it; it gets a
//! certificate naming its labels), then dials out to a coordinator over
//! mTLS WebSocket, heartbeats, runs the tool jobs it is sent and returns
//! their results; on any loss it reconnects with backoff, trying each
//! coordinator in its list.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::ToolOutput;
use cairn_core::cluster::{
    CoordinatorMessage, JobRef, JoinRequest, JoinResponse, Labels, ToolJob, WorkerMessage,
};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::ClusterError;
use crate::coordinator::lock;
use crate::token::JoinToken;

/// What a worker keeps about itself beside its key and certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node id.
    pub node_id: String,
    /// Labels issued (sent in every hello).
    pub labels: Labels,
    /// Coordinators to dial, in order.
    pub coordinators: Vec<String>,
    /// The cluster's delegation key: jobs whose token it does not verify
    /// are refused.
    #[serde(default)]
    pub delegation_key: String,
}

impl NodeIdentity {
    fn path(dir: &Path) -> PathBuf {
        dir.join("node.json")
    }

    /// The identity saved in `dir`, if the worker joined before.
    pub fn load(dir: &Path) -> Result<Option<NodeIdentity>, ClusterError> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ClusterError::BadCertificate(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClusterError::io(&path, e)),
        }
    }

    /// Replaces the coordinators to dial (each `https://host:port`).
    pub fn set_coordinators(&mut self, dir: &Path, urls: Vec<String>) -> Result<(), ClusterError> {
        for u in &urls {
            host_port(u)?;
        }
        if !urls.is_empty() {
            self.coordinators = urls;
        }
        self.save(dir)
    }

    fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        let path = Self::path(dir);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ClusterError::BadRequest(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| ClusterError::io(&path, e))
    }
}

/// Runs the tool jobs a worker is sent.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync + 'static {
    /// Runs one job to its output (failures are outputs with `is_error`).
    async fn run(&self, job: &ToolJob) -> ToolOutput;
}

/// `https://host:port` split for dialling.
fn host_port(url: &str) -> Result<(String, u16), ClusterError> {
    let bad = || ClusterError::BadRequest(format!("{url:?} is not https://host:port"));
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h.to_string(), p.parse().map_err(|_| bad())?)
        }
        _ => (rest.to_string(), 7420),
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Joins the cluster at `url` with `token`; saves the key, certificate,
/// CA and identity under `dir`.
pub async fn join(
    url: &str,
    token: &JoinToken,
    name: &str,
    dir: &Path,
) -> Result<NodeIdentity, ClusterError> {
    host_port(url)?;
    let (key_pem, csr) = crate::pki::node_request()?;
    let tls = crate::tls::pinned_client_config(&token.ca_sha256)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClusterError::BadRequest(e.to_string()))?;
    let endpoint = format!("{}/cluster/v1/join", url.trim_end_matches('/'));
    let resp = client
        .post(&endpoint)
        .json(&JoinRequest {
            token_id: token.id.clone(),
            secret: token.secret.clone(),
            name: name.to_string(),
            csr,
        })
        .send()
        .await
        .map_err(|e| ClusterError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(ClusterError::Refused(format!("{status}: {}", body.trim())));
    }
    let joined: JoinResponse = resp
        .json()
        .await
        .map_err(|e| ClusterError::BadRequest(format!("join answer: {e}")))?;
    crate::pki::save_node_identity(dir, &key_pem, &joined.cert, &joined.ca)?;
    let identity = NodeIdentity {
        node_id: joined.node_id,
        labels: joined.labels,
        coordinators: vec![url.trim_end_matches('/').to_string()],
        delegation_key: joined.delegation_key,
    };
    identity.save(dir)?;
    Ok(identity)
}

/// The whole cause of an error (reqwest hides the TLS reason in sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Its directory (key, certificate, CA, identity).
    pub dir: PathBuf,
    /// Jobs run at once.
    pub slots: u32,
    /// Status lines (connected, lost) for the operator.
    pub on_status: Arc<dyn Fn(&str) + Send + Sync>,
}

/// What a worker holds across connections: jobs running, and results not
/// yet acknowledged (sent again after a reconnect, where fencing decides).
#[derive(Default)]
struct Held {
    running: Mutex<HashSet<JobRef>>,
    results: Mutex<HashMap<JobRef, ToolOutput>>,
}

impl Held {
    /// Every attempt it answers for (heartbeats list them).
    fn refs(&self) -> Vec<JobRef> {
        let mut refs: Vec<JobRef> = lock(&self.running).iter().cloned().collect();
        refs.extend(lock(&self.results).keys().cloned());
        refs
    }

    fn knows(&self, r: &JobRef) -> bool {
        lock(&self.running).contains(r) || lock(&self.results).contains_key(r)
    }
}

/// Connects and serves until `stop`; returns an error only for what
/// retrying cannot fix (refused, revoked, unusable identity).
pub async fn run(
    opts: WorkerOptions,
    runner: Arc<dyn JobRunner>,
    stop: CancellationToken,
) -> Result<(), ClusterError> {
    let identity = NodeIdentity::load(&opts.dir)?
        .ok_or_else(|| ClusterError::NotInitialised(opts.dir.clone()))?;
    let tls = crate::tls::node_client_config(&opts.dir)?;
    let held = Arc::new(Held::default());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<JobRef>();
    let mut backoff = Duration::from_millis(200);
    let mut i = 0usize;
    loop {
        let url = &identity.coordinators[i % identity.coordinators.len().max(1)];
        i += 1;
        let link = Link {
            opts: &opts,
            identity: &identity,
            runner: runner.clone(),
            held: held.clone(),
            done_tx: done_tx.clone(),
        };
        let outcome = tokio::select! {
            r = link.session(url, tls.clone(), &mut done_rx) => r,
            () = stop.cancelled() => return Ok(()),
        };
        match outcome {
            Lost::Fatal(e) => return Err(e),
            Lost::Dropped(reason) => {
                backoff = Duration::from_millis(200);
                (opts.on_status)(&format!("lost {url}: {reason}; reconnecting"));
            }
            Lost::Retry(reason) => {
                (opts.on_status)(&format!(
                    "cannot reach {url}: {reason}; retrying in {backoff:?}"
                ));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// How a connection ended.
enum Lost {
    /// Never connected; worth trying again (network, coordinator restart).
    Retry(String),
    /// Was connected, then lost: reconnect at once.
    Dropped(String),
    /// Not worth trying again (refused, revoked).
    Fatal(ClusterError),
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn dial(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Ws, Lost> {
    let (host, port) = host_port(url).map_err(Lost::Fatal)?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| Lost::Retry("connect timed out".into()))?
    .map_err(|e| Lost::Retry(e.to_string()))?;
    // Small frames both ways: latency matters more than packing.
    tcp.set_nodelay(true)
        .map_err(|e| Lost::Retry(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Lost::Fatal(ClusterError::BadRequest(e.to_string())))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_lost(&e))?;
    let ws_url = format!("wss://{host}:{port}/cluster/v1/connect");
    match tokio_tungstenite::client_async(ws_url, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            let e = ClusterError::Refused(format!("{status}: {}", body.trim()));
            if status.is_client_error() {
                Err(Lost::Fatal(e))
            } else {
                Err(Lost::Retry(e.to_string()))
            }
        }
        Err(tokio_tungstenite::tungstenite::Error::Io(e)) => Err(tls_lost(&e)),
        Err(e) => Err(Lost::Retry(e.to_string())),
    }
}

/// A TLS failure: certificates that do not fit will not fit next time
/// either (fatal); anything else is worth retrying.
fn tls_lost(e: &std::io::Error) -> Lost {
    use rustls::AlertDescription as A;
    let fatal = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => true,
        Some(rustls::Error::AlertReceived(a)) => matches!(
            a,
            A::BadCertificate
                | A::UnknownCA
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::CertificateRequired
                | A::AccessDenied
                // A signature that does not verify: a key from another CA.
                | A::DecryptError
        ),
        _ => false,
    };
    if fatal {
        Lost::Fatal(ClusterError::Refused(format!(
            "TLS: {e} (is this node's certificate from this cluster's CA? join again with a new token)"
        )))
    } else {
        Lost::Retry(format!("TLS: {e}"))
    }
}

fn text(m: &WorkerMessage) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// One connection's worth of context.
struct Link<'a> {
    opts: &'a WorkerOptions,
    identity: &'a NodeIdentity,
    runner: Arc<dyn JobRunner>,
    held: Arc<Held>,
    done_tx: mpsc::UnboundedSender<JobRef>,
}

impl Link<'_> {
    async fn session(
        &self,
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        done_rx: &mut mpsc::UnboundedReceiver<JobRef>,
    ) -> Lost {
        let ws = match dial(url, tls).await {
            Ok(ws) => ws,
            Err(lost) => return lost,
        };
        let (mut sink, mut rx) = ws.split();
        let hello = WorkerMessage::Hello {
            labels: self.identity.labels.clone(),
            slots: self.opts.slots,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        if let Err(e) = sink.send(text(&hello)).await {
            return Lost::Retry(e.to_string());
        }
        let heartbeat = match next(&mut rx).await {
            Ok(Some(CoordinatorMessage::Welcome {
                heartbeat_ms,
                coordinator,
                ..
            })) => {
                (self.opts.on_status)(&format!("connected to {url} ({coordinator})"));
                Duration::from_millis(heartbeat_ms.max(50))
            }
            Ok(Some(CoordinatorMessage::Refused { reason })) => {
                return Lost::Fatal(ClusterError::Refused(reason));
            }
            Ok(other) => return Lost::Retry(format!("unexpected first frame {other:?}")),
            Err(e) => return Lost::Retry(e),
        };
        match self.serve(&mut sink, &mut rx, heartbeat, done_rx).await {
            Ok(never) => match never {},
            Err(lost) => lost,
        }
    }

    /// Runs jobs and answers until the connection is lost.
    async fn serve(
        &self,
        sink: &mut futures_util::stream::SplitSink<Ws, Message>,
        rx: &mut futures_util::stream::SplitStream<Ws>,
        heartbeat: Duration,
        done_rx: &mut mpsc::UnboundedReceiver<JobRef>,
    ) -> Result<std::convert::Infallible, Lost> {
        let dropped = |e: tokio_tungstenite::tungstenite::Error| Lost::Dropped(e.to_string());
        // Results finished while disconnected go first; the coordinator
        // records or fences each.
        let unsent: Vec<(JobRef, ToolOutput)> = lock(&self.held.results)
            .iter()
            .map(|(r, o)| (r.clone(), o.clone()))
            .collect();
        for (r, output) in unsent {
            sink.send(done(r, output)).await.map_err(dropped)?;
        }
        let mut tick = tokio::time::interval(heartbeat);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                // Frames already here first: after a pause (a stopped
                // process, a busy host) they are proof the link is alive.
                biased;
                m = next(rx) => {
                    heard = tokio::time::Instant::now();
                    if let Some(m) = m.map_err(Lost::Dropped)? {
                        self.handle(m)?;
                    }
                }
                _ = tick.tick() => {
                    // A coordinator that went silent (a cut link sends no
                    // close) is given up after four beats.
                    if heard.elapsed() > heartbeat * 4 {
                        return Err(Lost::Dropped("the coordinator went silent".into()));
                    }
                    let hb = WorkerMessage::Heartbeat { running: self.held.refs() };
                    sink.send(text(&hb)).await.map_err(dropped)?;
                    sink.send(Message::Ping(Default::default())).await.map_err(dropped)?;
                }
                Some(r) = done_rx.recv() => {
                    let output = lock(&self.held.results).get(&r).cloned();
                    if let Some(output) = output {
                        sink.send(done(r, output)).await.map_err(dropped)?;
                    }
                }
            }
        }
    }

    fn handle(&self, m: CoordinatorMessage) -> Result<(), Lost> {
        match m {
            CoordinatorMessage::Run(job) => self.start(job),
            CoordinatorMessage::Ack { job, attempt, .. } => {
                lock(&self.held.results).remove(&JobRef { job, attempt });
            }
            CoordinatorMessage::Refused { reason } => {
                return Err(Lost::Fatal(ClusterError::Refused(reason)));
            }
            CoordinatorMessage::Cancel { .. } | CoordinatorMessage::Welcome { .. } => {}
        }
        Ok(())
    }

    fn start(&self, job: ToolJob) {
        let r = JobRef {
            job: job.job.clone(),
            attempt: job.attempt,
        };
        // Sent twice (a reconnect raced the dispatch): run once.
        if self.held.knows(&r) {
            return;
        }
        let hop = crate::delegation::Hop {
            run: &job.run_id,
            job: &job.job,
            tool: &job.tool,
            node: &self.identity.node_id,
            deadline_ms: job.deadline_ms,
        };
        let verified = crate::delegation::verify(
            &self.identity.delegation_key,
            &job.delegation,
            &hop,
            cairn_core::now_ms(),
        );
        if let Err(why) = verified {
            tracing::warn!(job = %job.job, tool = %job.tool, %why, "job refused: its delegation token does not hold");
            let output =
                ToolOutput::error(format!("the worker refused this call: delegation {why}"));
            lock(&self.held.results).insert(r.clone(), output);
            // The receiver lives as long as the worker.
            let _queued = self.done_tx.send(r);
            return;
        }
        lock(&self.held.running).insert(r.clone());
        let (runner, held, tx) = (self.runner.clone(), self.held.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let output = runner.run(&job).await;
            lock(&held.running).remove(&r);
            lock(&held.results).insert(r.clone(), output);
            // The receiver lives as long as the worker.
            let _queued = tx.send(r);
        });
    }
}

fn done(r: JobRef, output: ToolOutput) -> Message {
    text(&WorkerMessage::Done {
        job: r.job,
        attempt: r.attempt,
        output,
    })
}

/// The next coordinator frame; `None` for control frames (pongs).
async fn next(
    rx: &mut futures_util::stream::SplitStream<Ws>,
) -> Result<Option<CoordinatorMessage>, String> {
    match rx.next().await {
        None | Some(Ok(Message::Close(_))) => Err("the coordinator closed the connection".into()),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| format!("bad frame from the coordinator: {e}")),
        Some(Ok(_)) => Ok(None),
    }
}
