//! A worker's connection to a coordinator: dial over mTLS WebSocket, say
//! hello, then run the jobs sent, stream their output, send their results
//! (again after a reconnect, where fencing decides), heartbeat, and stop
//! the jobs the coordinator says no longer count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::ToolOutput;
use cairn_core::cluster::{CoordinatorMessage, JobRef, ToolJob, WorkerMessage};
use cairn_tools::Progress;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::ClusterError;
use crate::coordinator::lock;
use crate::worker::{JobControl, JobRunner, Lost, NodeIdentity, WorkerOptions, host_port};

/// Output chunks waiting for the link; more are dropped (results are not).
const OUTPUT_QUEUE: usize = 256;

/// What a worker holds across connections: jobs running (with what stops
/// each), and results not yet acknowledged (sent again after a reconnect,
/// where fencing decides).
#[derive(Default)]
pub(crate) struct Held {
    running: Mutex<HashMap<JobRef, CancellationToken>>,
    results: Mutex<HashMap<JobRef, ToolOutput>>,
}

impl Held {
    /// Every attempt it answers for (heartbeats list them).
    fn refs(&self) -> Vec<JobRef> {
        let mut refs: Vec<JobRef> = lock(&self.running).keys().cloned().collect();
        refs.extend(lock(&self.results).keys().cloned());
        refs
    }

    fn knows(&self, r: &JobRef) -> bool {
        lock(&self.running).contains_key(r) || lock(&self.results).contains_key(r)
    }
}

/// What jobs send towards whichever connection is up.
#[derive(Clone)]
pub(crate) struct Outbox {
    done: mpsc::UnboundedSender<JobRef>,
    output: mpsc::Sender<(JobRef, String)>,
}

/// The connection's end of the outbox.
pub(crate) struct Inbox {
    done: mpsc::UnboundedReceiver<JobRef>,
    output: mpsc::Receiver<(JobRef, String)>,
}

/// A worker's outbox and inbox, kept for its lifetime.
pub(crate) fn mailbox() -> (Outbox, Inbox) {
    let (done, done_rx) = mpsc::unbounded_channel();
    let (output, output_rx) = mpsc::channel(OUTPUT_QUEUE);
    (
        Outbox { done, output },
        Inbox {
            done: done_rx,
            output: output_rx,
        },
    )
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// How long dialling (TCP, TLS and the WebSocket upgrade) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials `url`. Bounded as a whole: a link that takes the connection but
/// passes nothing (a half-dead path, a cut mid-handshake) must not hold
/// the worker forever.
async fn dial(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Ws, Lost> {
    tokio::time::timeout(DIAL_TIMEOUT, handshake(url, tls))
        .await
        .map_err(|_| Lost::Retry(format!("no answer within {DIAL_TIMEOUT:?}")))?
}

async fn handshake(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Ws, Lost> {
    let (host, port) = host_port(url).map_err(Lost::Fatal)?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
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
pub(crate) struct Link<'a> {
    pub(crate) opts: &'a WorkerOptions,
    pub(crate) identity: &'a NodeIdentity,
    pub(crate) runner: Arc<dyn JobRunner>,
    pub(crate) held: Arc<Held>,
    pub(crate) outbox: Outbox,
}

impl Link<'_> {
    /// Dials `url` and serves until the connection is lost.
    pub(crate) async fn session(
        &self,
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        inbox: &mut Inbox,
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
        match self.serve(&mut sink, &mut rx, heartbeat, inbox).await {
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
        inbox: &mut Inbox,
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
                // Output before results: a job's last chunks are queued
                // before its result (see `start`), and a chunk arriving
                // after the result is dropped by the coordinator.
                Some((r, chunk)) = inbox.output.recv() => {
                    let m = WorkerMessage::Output { job: r.job, attempt: r.attempt, chunk };
                    sink.send(text(&m)).await.map_err(dropped)?;
                }
                Some(r) = inbox.done.recv() => {
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
            CoordinatorMessage::Cancel { job, attempt } => {
                if let Some(stop) = lock(&self.held.running).get(&JobRef { job, attempt }) {
                    stop.cancel();
                }
            }
            CoordinatorMessage::Welcome { .. } => {}
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
            let _queued = self.outbox.done.send(r);
            return;
        }
        let stop = CancellationToken::new();
        lock(&self.held.running).insert(r.clone(), stop.clone());
        let (progress, relayed) = self.relay_output(&r);
        let control = JobControl {
            cancel: stop,
            progress: Some(progress),
        };
        let (runner, held, outbox) = (self.runner.clone(), self.held.clone(), self.outbox.clone());
        tokio::spawn(async move {
            let output = runner.run(&job, control).await;
            // The job's progress sender is gone with its control: once the
            // relay has queued the last chunk, the result may follow. Bounded:
            // a sender kept elsewhere must not hold the result back.
            match tokio::time::timeout(std::time::Duration::from_secs(2), relayed).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "a job's output relay ended early"),
                Err(_) => {
                    tracing::debug!("a job's output relay outlived it; its result goes first")
                }
            }
            lock(&held.running).remove(&r);
            lock(&held.results).insert(r.clone(), output);
            // The receiver lives as long as the worker.
            let _queued = outbox.done.send(r);
        });
    }

    /// A job's live output, passed to whichever connection is up; dropped
    /// when none is or the link falls behind (the result has it all). The
    /// task ends once every chunk is queued and the job's sender is gone.
    fn relay_output(&self, r: &JobRef) -> (Progress, tokio::task::JoinHandle<()>) {
        let (progress, mut chunks) = Progress::channel();
        let (tx, r) = (self.outbox.output.clone(), r.clone());
        let relayed = tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                if tx.try_send((r.clone(), chunk)).is_err() {
                    // Full or gone: this chunk is lost, by design.
                }
            }
        });
        (progress, relayed)
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
