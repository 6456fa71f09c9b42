//! One worker's WebSocket connection on the coordinator: the hello (its
//! labels must be the ones issued), heartbeats (revocation is checked at
//! each), results (fenced by attempt), and on loss, its jobs handed back.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use cairn_core::ToolOutput;
use cairn_core::cluster::{CoordinatorMessage, NodeRecord, WorkerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::coordinator::{Connected, Coordinator, lock, refuse, store_failed};
use crate::tls::Peer;

/// Time a new connection has to say hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) async fn connect(
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

/// Why a worker's connection ended other than by a close.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    /// The WebSocket failed.
    #[error("transport: {0}")]
    Transport(#[from] axum::Error),
    /// A text frame that is not a worker message.
    #[error("bad frame: {0}")]
    BadFrame(#[from] serde_json::Error),
    /// No hello within the limit.
    #[error("no hello")]
    NoHello,
    /// Something other than hello came first, or hello came twice.
    #[error("the first frame, and only it, must be hello")]
    HelloOutOfPlace,
    /// The worker claimed labels its certificate was not issued with.
    #[error("labels not issued")]
    LabelsNotIssued,
    /// The node was revoked while connected.
    #[error("node revoked")]
    Revoked,
    /// The node could not be recorded as connected.
    #[error("store: {0}")]
    Store(#[from] cairn_store::StoreError),
    /// No frame for four heartbeats.
    #[error("silent past the heartbeat limit")]
    Silent,
}

/// Reads the next worker frame (pings and such skipped); `None` at close.
async fn next_frame(
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<Option<WorkerMessage>, SessionEnd> {
    loop {
        match rx.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => return Ok(Some(serde_json::from_str(&t)?)),
            Some(Ok(_)) => continue,
        }
    }
}

/// One worker's connection, from hello to close.
async fn session(
    co: Arc<Coordinator>,
    node: NodeRecord,
    socket: WebSocket,
) -> Result<(), SessionEnd> {
    let (mut sink, mut rx) = socket.split();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, next_frame(&mut rx))
        .await
        .map_err(|_| SessionEnd::NoHello)??;
    let Some(WorkerMessage::Hello { labels, slots, .. }) = hello else {
        return Err(SessionEnd::HelloOutOfPlace);
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
        return Err(SessionEnd::LabelsNotIssued);
    }
    let (tx, mut outbox) = mpsc::channel::<CoordinatorMessage>(64);
    let welcome = CoordinatorMessage::Welcome {
        node_id: node.id.clone(),
        coordinator: co.id.clone(),
        heartbeat_ms: co.settings.heartbeat().as_millis() as u64,
    };
    sink.send(frame(&welcome)).await?;
    co.store
        .node_seen(&node.id, Some(&co.id), i64::from(slots), 0)
        .await?;
    let me = Connected {
        node: node.clone(),
        slots,
        tx: tx.clone(),
        inflight: Default::default(),
    };
    if let Some(old) = co.register(me.clone()) {
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
    // Jobs waiting for a worker like this one.
    co.wake.notify_one();
    let result = read_loop(&co, &me, &mut rx).await;
    co.unregister(&node.id, &tx);
    writer.abort();
    hand_back(&co, &me);
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

/// A lost connection's jobs are not given up at once: the worker may be
/// cut off briefly and come back (here or to another coordinator) with its
/// results. Unrenewed, their leases run out and the upkeep loses them then.
fn hand_back(co: &Arc<Coordinator>, me: &Connected) {
    let held = lock(&me.inflight).drain().count();
    if held > 0 {
        tracing::warn!(node = %me.node.id, jobs = held, "worker lost with jobs in flight; they are given up if it does not return within the lease");
    }
    co.wake.notify_one();
}

/// A worker's result: recorded if its attempt still holds the job.
async fn finished(
    co: &Arc<Coordinator>,
    me: &Connected,
    job: String,
    attempt: i64,
    output: ToolOutput,
) -> Option<CoordinatorMessage> {
    let accepted = match co
        .store
        .finish_tool_job(&job, &me.node.id, attempt, &output)
        .await
    {
        Ok(true) => {
            co.job_changed(&job);
            true
        }
        Ok(false) => {
            tracing::warn!(node = %me.node.id, %job, attempt, "late result rejected: the job was given up, a newer attempt holds it, or another node holds it");
            false
        }
        Err(e) => {
            // No acknowledgement: the worker sends it again.
            tracing::error!(%job, error = %e, "could not record a result");
            return None;
        }
    };
    let mut inflight = lock(&me.inflight);
    if inflight.get(&job) == Some(&attempt) {
        inflight.remove(&job);
        co.wake.notify_one();
    }
    Some(CoordinatorMessage::Ack {
        job,
        attempt,
        accepted,
    })
}

/// A worker's heartbeat: renews the leases of the jobs it runs (stopping
/// attempts that lost theirs), ends the link of a revoked node, and records
/// the node's load.
async fn heartbeat(
    co: &Arc<Coordinator>,
    me: &Connected,
    running: &[cairn_core::cluster::JobRef],
) -> Result<(), SessionEnd> {
    let (node, slots) = (&me.node, me.slots);
    let until = co.lease_until();
    match co
        .store
        .renew_tool_leases(running, &node.id, &co.id, until)
        .await
    {
        // Attempts that lost their jobs (cancelled, given up, run again
        // elsewhere) are stopped, not left to run.
        Ok(stale) => {
            for r in stale {
                let stop = CoordinatorMessage::Cancel {
                    job: r.job,
                    attempt: r.attempt,
                };
                // The writer is gone only when the connection is.
                let _sent = me.tx.send(stop).await;
            }
        }
        Err(e) => {
            tracing::warn!(node = %node.id, error = %e, "could not renew tool leases");
        }
    }
    let revoked = match co.store.node_by_cert(&node.cert_sha256).await {
        Ok(n) => n.is_none_or(|n| n.revoked_at.is_some()),
        Err(e) => {
            tracing::warn!(error = %e, "heartbeat: could not check the node");
            false
        }
    };
    if revoked {
        return Err(SessionEnd::Revoked);
    }
    if let Err(e) = co
        .store
        .node_seen(
            &node.id,
            Some(&co.id),
            i64::from(slots),
            running.len() as i64,
        )
        .await
    {
        tracing::warn!(node = %node.id, error = %e, "could not record a heartbeat");
    }
    Ok(())
}

async fn read_loop(
    co: &Arc<Coordinator>,
    me: &Connected,
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<(), SessionEnd> {
    loop {
        let next = tokio::select! {
            f = tokio::time::timeout(co.settings.heartbeat() * 4, next_frame(rx)) => f,
            () = co.stop.cancelled() => return Ok(()),
        };
        let msg = match next {
            Err(_) => return Err(SessionEnd::Silent),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(m))) => m,
            Ok(Err(e)) => return Err(e),
        };
        match msg {
            WorkerMessage::Heartbeat { running } => heartbeat(co, me, &running).await?,
            WorkerMessage::Done {
                job,
                attempt,
                output,
            } => {
                if let Some(ack) = finished(co, me, job, attempt, output).await {
                    // The writer is gone only when the connection is.
                    let _sent = me.tx.send(ack).await;
                }
            }
            WorkerMessage::Output {
                job,
                attempt,
                chunk,
            } => {
                // Only from the attempt that holds the job over this link.
                if lock(&me.inflight).get(&job) == Some(&attempt) {
                    co.job_output(&job, &chunk);
                }
            }
            WorkerMessage::Hello { .. } => return Err(SessionEnd::HelloOutOfPlace),
        }
    }
}
