//! The coordinator's side of the worker protocol: `POST /cluster/v1/join`
//! (a one-time token buys a node certificate) and `GET /cluster/v1/connect`
//! (the WebSocket a worker dials out to, over mTLS), plus the registry of
//! workers connected to this coordinator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::cluster::{
    CoordinatorMessage, JoinRequest, JoinResponse, NodeRecord, Redemption, WorkerMessage,
};
use cairn_core::now_ms;
use cairn_store::Store;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ClusterSettings;
use crate::pki::CaDir;
use crate::tls::Peer;

/// Time a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A worker connected here.
#[derive(Debug, Clone)]
pub struct Connected {
    /// Node.
    pub node: NodeRecord,
    /// Slots it offered.
    pub slots: u32,
    /// Frames to send it.
    pub tx: mpsc::Sender<CoordinatorMessage>,
}

/// One coordinator process.
pub struct Coordinator {
    store: Store,
    ca: CaDir,
    /// This instance's name (host and pid), recorded on the nodes it holds.
    pub id: String,
    workers: Mutex<HashMap<String, Connected>>,
    settings: ClusterSettings,
    stop: CancellationToken,
}

impl Coordinator {
    /// A coordinator over `store` issuing from `ca`.
    pub fn new(
        store: Store,
        ca: CaDir,
        settings: ClusterSettings,
        stop: CancellationToken,
    ) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            store,
            ca,
            settings,
            id: cairn_store::this_process().to_string(),
            workers: Mutex::new(HashMap::new()),
            stop,
        })
    }

    /// The cluster routes, to merge into the server's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/cluster/v1/join", post(join))
            .route("/cluster/v1/connect", get(connect))
            .with_state(self.clone())
    }

    /// Workers connected to this coordinator now.
    pub fn connected(&self) -> Vec<Connected> {
        match self.workers.lock() {
            Ok(w) => w.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    fn register(&self, c: Connected) -> Option<Connected> {
        let mut w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(c.node.id.clone(), c)
    }

    fn unregister(&self, node: &str, tx: &mpsc::Sender<CoordinatorMessage>) {
        let mut w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        // A reconnect may have replaced this connection already.
        if w.get(node).is_some_and(|c| c.tx.same_channel(tx)) {
            w.remove(node);
        }
    }
}

/// A refusal as JSON, the API's error shape.
fn refuse(status: StatusCode, message: &str) -> Response {
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
    let secret = crate::pki::sha256_hex(req.secret.as_bytes());
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

fn store_failed(e: &cairn_store::StoreError) -> Response {
    tracing::error!(error = %e, "cluster: the store failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store failed; try again",
    )
}

async fn connect(
    State(co): State<Arc<Coordinator>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(fingerprint) = peer.cert_sha256.as_deref() else {
        tracing::warn!(peer = %peer.addr, "worker connection without a node certificate");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a node certificate from this cluster is required (cairn worker --join)",
        );
    };
    let node = match co.store.node_by_cert(fingerprint).await {
        Ok(Some(n)) if n.revoked_at.is_none() => n,
        Ok(found) => {
            let why = if found.is_some() {
                "revoked"
            } else {
                "unknown"
            };
            tracing::warn!(peer = %peer.addr, cert = %fingerprint, why, "worker refused");
            return refuse(StatusCode::FORBIDDEN, &format!("node certificate {why}"));
        }
        Err(e) => return store_failed(&e),
    };
    ws.on_upgrade(move |socket| async move {
        let peer = peer.addr;
        if let Err(e) = session(co, node, socket).await {
            tracing::info!(%peer, error = %e, "worker connection ended");
        }
    })
}

fn frame(m: &CoordinatorMessage) -> Message {
    // Serialising our own enum cannot fail; an empty frame would be refused.
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// Reads the next worker frame (pings and such skipped); `None` at close.
async fn next_frame(
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<Option<WorkerMessage>, String> {
    loop {
        match rx.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t)
                    .map(Some)
                    .map_err(|e| format!("bad frame: {e}"));
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// One worker's connection, from hello to close.
async fn session(co: Arc<Coordinator>, node: NodeRecord, socket: WebSocket) -> Result<(), String> {
    let (mut sink, mut rx) = socket.split();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, next_frame(&mut rx))
        .await
        .map_err(|_| "no hello".to_string())??;
    let Some(WorkerMessage::Hello { labels, slots, .. }) = hello else {
        return Err("the first frame must be hello".into());
    };
    if labels != node.labels {
        tracing::warn!(node = %node.id, claimed = %labels, issued = %node.labels, "worker claimed labels it was not issued");
        let reason = format!(
            "labels {labels} were not issued to this node (issued: {})",
            node.labels
        );
        // Best effort: the connection is dropped either way.
        let _sent = sink
            .send(frame(&CoordinatorMessage::Refused { reason }))
            .await;
        return Err("labels not issued".into());
    }
    let (tx, mut outbox) = mpsc::channel::<CoordinatorMessage>(64);
    let welcome = CoordinatorMessage::Welcome {
        node_id: node.id.clone(),
        coordinator: co.id.clone(),
        heartbeat_ms: co.settings.heartbeat().as_millis() as u64,
    };
    sink.send(frame(&welcome))
        .await
        .map_err(|e| e.to_string())?;
    co.store
        .node_seen(&node.id, Some(&co.id), i64::from(slots), 0)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(old) = co.register(Connected {
        node: node.clone(),
        slots,
        tx: tx.clone(),
    }) {
        tracing::info!(node = %node.id, "node reconnected; the older connection is dropped");
        drop(old);
    }
    tracing::info!(node = %node.id, name = %node.name, labels = %node.labels, slots, "worker connected");
    let writer = tokio::spawn(async move {
        while let Some(m) = outbox.recv().await {
            if sink.send(frame(&m)).await.is_err() {
                break;
            }
        }
    });
    let result = read_loop(&co, &node, slots, &mut rx).await;
    co.unregister(&node.id, &tx);
    writer.abort();
    if let Err(e) = co
        .store
        .node_seen(&node.id, None, i64::from(slots), 0)
        .await
    {
        tracing::warn!(node = %node.id, error = %e, "could not record the disconnect");
    }
    tracing::info!(node = %node.id, "worker disconnected");
    result
}

async fn read_loop(
    co: &Arc<Coordinator>,
    node: &NodeRecord,
    slots: u32,
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<(), String> {
    loop {
        let next = tokio::select! {
            f = tokio::time::timeout(co.settings.heartbeat() * 4, next_frame(rx)) => f,
            () = co.stop.cancelled() => return Ok(()),
        };
        let msg = match next {
            Err(_) => return Err("silent past the heartbeat limit".into()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(m))) => m,
            Ok(Err(e)) => return Err(e),
        };
        match msg {
            WorkerMessage::Heartbeat { running } => {
                let revoked = match co.store.node_by_cert(&node.cert_sha256).await {
                    Ok(n) => n.is_none_or(|n| n.revoked_at.is_some()),
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat: could not check the node");
                        false
                    }
                };
                if revoked {
                    return Err("node revoked".into());
                }
                if let Err(e) = co
                    .store
                    .node_seen(&node.id, Some(&co.id), i64::from(slots), i64::from(running))
                    .await
                {
                    tracing::warn!(node = %node.id, error = %e, "could not record a heartbeat");
                }
            }
            WorkerMessage::Done { job, attempt, .. } => {
                tracing::debug!(node = %node.id, %job, attempt, "result");
            }
            WorkerMessage::Hello { .. } => return Err("hello twice".into()),
        }
    }
}
