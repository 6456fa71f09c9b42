//! The coordinator's side of the worker protocol: `POST /cluster/v1/join`
//! (a one-time token buys a node certificate) and `GET /cluster/v1/connect`
//! (the WebSocket a worker dials out to, over mTLS), plus the registry of
//! workers connected to this coordinator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::cluster::{CoordinatorMessage, JoinRequest, JoinResponse, NodeRecord, Redemption};
use cairn_core::now_ms;
use cairn_store::Store;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::ClusterSettings;
use crate::pki::CaDir;
use crate::tls::Peer;

/// A worker connected here.
#[derive(Debug, Clone)]
pub struct Connected {
    /// Node.
    pub node: NodeRecord,
    /// Slots it offered.
    pub slots: u32,
    /// Frames to send it.
    pub tx: mpsc::Sender<CoordinatorMessage>,
    /// Jobs sent to it and not back yet: job id → attempt.
    pub inflight: Arc<Mutex<HashMap<String, i64>>>,
}

impl Connected {
    /// Jobs it runs now.
    pub fn running(&self) -> usize {
        lock(&self.inflight).len()
    }
}

/// A run waiting here for a tool job.
struct Waiting {
    /// Woken when the job changes.
    wake: Arc<Notify>,
    /// Where the worker's live output for it goes.
    progress: Option<cairn_tools::Progress>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One coordinator process.
pub struct Coordinator {
    pub(crate) store: Store,
    ca: CaDir,
    /// This instance's name (host and pid), recorded on the nodes it holds
    /// and the tool jobs it leases.
    pub id: String,
    workers: Mutex<HashMap<String, Connected>>,
    pub(crate) settings: ClusterSettings,
    pub(crate) stop: CancellationToken,
    /// A job was submitted, or a worker has room again: dispatch.
    pub(crate) wake: Notify,
    /// Runs waiting for their tool jobs, by job id.
    waiters: Mutex<HashMap<String, Waiting>>,
    /// Signs the delegation token each job carries.
    pub(crate) delegator: crate::delegation::Delegator,
    /// (run, named workspace) → the node its calls went to, as seen here.
    pub(crate) homes: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("id", &self.id).finish()
    }
}

impl Coordinator {
    /// A coordinator over `store` issuing from `ca`.
    pub fn new(
        store: Store,
        ca: CaDir,
        settings: ClusterSettings,
        stop: CancellationToken,
    ) -> Result<Arc<Coordinator>, crate::ClusterError> {
        let delegator = crate::delegation::Delegator::load_or_create(&ca.delegation_key())?;
        Ok(Arc::new(Coordinator {
            delegator,
            store,
            ca,
            settings,
            id: cairn_store::this_process().to_string(),
            workers: Mutex::new(HashMap::new()),
            stop,
            wake: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            homes: Mutex::new(HashMap::new()),
        }))
    }

    /// The cluster's certificates.
    pub fn ca(&self) -> &CaDir {
        &self.ca
    }

    /// Starts dispatching tool jobs and the lease upkeep.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(crate::dispatch::run(self.clone()));
    }

    /// The cluster routes, to merge into the server's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/cluster/v1/join", post(join))
            .route("/cluster/v1/connect", get(crate::session::connect))
            .with_state(self.clone())
    }

    /// Workers connected to this coordinator now.
    pub fn connected(&self) -> Vec<Connected> {
        lock(&self.workers).values().cloned().collect()
    }

    pub(crate) fn register(&self, c: Connected) -> Option<Connected> {
        lock(&self.workers).insert(c.node.id.clone(), c)
    }

    pub(crate) fn unregister(&self, node: &str, tx: &mpsc::Sender<CoordinatorMessage>) {
        let mut w = lock(&self.workers);
        // A reconnect may have replaced this connection already.
        if w.get(node).is_some_and(|c| c.tx.same_channel(tx)) {
            w.remove(node);
        }
    }

    /// What a run waiting for job `id` is woken by; the worker's output
    /// for it is passed to `progress`.
    pub(crate) fn waiter(&self, id: &str, progress: Option<cairn_tools::Progress>) -> Arc<Notify> {
        lock(&self.waiters)
            .entry(id.to_string())
            .or_insert_with(|| Waiting {
                wake: Arc::default(),
                progress,
            })
            .wake
            .clone()
    }

    /// The run no longer waits for job `id`.
    pub(crate) fn forget_waiter(&self, id: &str) {
        lock(&self.waiters).remove(id);
    }

    /// Wakes every waiting run (jobs changed in bulk).
    pub(crate) fn wake_waiters(&self) {
        for w in lock(&self.waiters).values() {
            w.wake.notify_one();
        }
    }

    /// Job `id` changed (finished, lost): wake whoever waits for it here.
    pub(crate) fn job_changed(&self, id: &str) {
        if let Some(w) = lock(&self.waiters).get(id) {
            w.wake.notify_one();
        }
    }

    /// Tells node `node`, if connected here, to stop attempt `attempt` of
    /// job `job`. (Connected elsewhere, it hears at its next heartbeat.)
    pub(crate) async fn stop_on_worker(&self, node: &str, job: &str, attempt: i64) {
        let tx = lock(&self.workers).get(node).map(|c| c.tx.clone());
        if let Some(tx) = tx {
            let cancel = CoordinatorMessage::Cancel {
                job: job.to_string(),
                attempt,
            };
            // A closed channel is a connection already gone: its heartbeat
            // elsewhere tells the worker instead.
            let _sent = tx.send(cancel).await;
        }
    }

    /// Output a worker streamed for job `id`: to its run, if it waits
    /// here (a run on another coordinator gets the result only).
    pub(crate) fn job_output(&self, id: &str, chunk: &str) {
        if let Some(p) = lock(&self.waiters)
            .get(id)
            .and_then(|w| w.progress.as_ref())
        {
            p.send(chunk);
        }
    }
}

/// A refusal as JSON, the API's error shape.
pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": { "code": status.as_u16(), "message": message } })),
    )
        .into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

async fn join(
    State(co): State<Arc<Coordinator>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Result<Json<JoinRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return refuse(StatusCode::BAD_REQUEST, "expected a JSON join request");
    };
    if !valid_name(&req.name) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "node name: 1-63 letters, digits, - _ .",
        );
    }
    // Tokens never change, so the labels read here are the ones the
    // redemption below spends; an unknown token gets none and fails there.
    let labels = match co.store.join_token_labels(&req.token_id).await {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => return store_failed(&e),
    };
    let node_id = cairn_core::ids::new_id("node");
    // Signed before the token is spent so that spending it and recording
    // the certificate are one transaction; a refused join's certificate is
    // dropped unseen.
    let (cert, fingerprint) = match co.ca.issue_node_cert(&req.csr, &node_id, &labels) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let secret = crate::token::secret_hash(&req.secret);
    let node = NodeRecord {
        id: node_id.clone(),
        name: req.name.clone(),
        labels: labels.clone(),
        cert_sha256: fingerprint,
        slots: 0,
        running: 0,
        coordinator: None,
        joined_at: now_ms(),
        last_seen: None,
        revoked_at: None,
    };
    match co
        .store
        .redeem_join_token(&req.token_id, &secret, &node, now_ms())
        .await
    {
        Ok(Redemption::Joined(node)) => {
            tracing::info!(peer = %peer.addr, node = %node.id, name = %node.name, labels = %node.labels, "node joined");
            let ca = match std::fs::read_to_string(co.ca.ca_cert()) {
                Ok(ca) => ca,
                Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            Json(JoinResponse {
                node_id,
                cert,
                ca,
                labels: node.labels,
                delegation_key: co.delegator.public_key(),
            })
            .into_response()
        }
        Ok(why) => {
            tracing::warn!(peer = %peer.addr, token = %req.token_id, name = %req.name, outcome = ?why, "join refused");
            refuse(
                StatusCode::UNAUTHORIZED,
                "join token refused: unknown, expired or already used",
            )
        }
        Err(e) => store_failed(&e),
    }
}

pub(crate) fn store_failed(e: &cairn_store::StoreError) -> Response {
    tracing::error!(error = %e, "cluster: the store failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store failed; try again",
    )
}
