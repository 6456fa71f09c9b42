//! The worker: joins once with a token (its key never leaves it; it gets a
//! certificate naming its labels), then dials out to a coordinator over
//! mTLS WebSocket (see `link`), runs the tool jobs it is sent and returns
//! their results; on any loss it reconnects with backoff, trying each
//! coordinator in its list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::ToolOutput;
use cairn_core::cluster::{JoinRequest, JoinResponse, Labels, ToolJob};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ClusterError;
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

/// What steers a running job.
pub struct JobControl {
    /// Fires when the coordinator says the job no longer counts (its run
    /// was cancelled, it was given up or runs elsewhere).
    pub cancel: CancellationToken,
    /// Where its output goes as it appears.
    pub progress: Option<cairn_tools::Progress>,
}

/// Runs the tool jobs a worker is sent.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync + 'static {
    /// Runs one job to its output (failures are outputs with `is_error`).
    async fn run(&self, job: &ToolJob, control: JobControl) -> ToolOutput;
}

/// `https://host:port` split for dialling.
pub(crate) fn host_port(url: &str) -> Result<(String, u16), ClusterError> {
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
    let held = Arc::new(crate::link::Held::default());
    let (outbox, mut inbox) = crate::link::mailbox();
    let mut backoff = Duration::from_millis(200);
    let mut i = 0usize;
    loop {
        let url = &identity.coordinators[i % identity.coordinators.len().max(1)];
        i += 1;
        let link = crate::link::Link {
            opts: &opts,
            identity: &identity,
            runner: runner.clone(),
            held: held.clone(),
            outbox: outbox.clone(),
        };
        let outcome = tokio::select! {
            r = link.session(url, tls.clone(), &mut inbox) => r,
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
pub(crate) enum Lost {
    /// Never connected; worth trying again (network, coordinator restart).
    Retry(String),
    /// Was connected, then lost: reconnect at once.
    Dropped(String),
    /// Not worth trying again (refused, revoked).
    Fatal(ClusterError),
}
