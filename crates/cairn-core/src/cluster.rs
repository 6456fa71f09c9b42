//! Cluster vocabulary shared by the store, the coordinator, the worker and
//! the CLI: node labels and the requirements jobs place on them, and the
//! records of nodes and join tokens.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's labels (`region=eu`, `cap=browser`), issued at join and named in
/// its certificate. Sorted, so equal sets compare and print the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

/// Why a label list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {item:?}: {reason} (labels look like region=eu,cap=browser)")]
pub struct LabelError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Whether `s` may be a label key or value: short, and nothing that could
/// be confused with the list's own separators or smuggle markup into a
/// certificate name.
fn is_label_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl Labels {
    /// Parses `key=value,key=value` (spaces around items ignored; empty is
    /// no labels). A key given twice is an error, not a silent override.
    pub fn parse(text: &str) -> Result<Labels, LabelError> {
        let mut map = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let err = |reason| LabelError {
                item: item.to_string(),
                reason,
            };
            let (k, v) = item.split_once('=').ok_or_else(|| err("missing '='"))?;
            let (k, v) = (k.trim(), v.trim());
            if !is_label_word(k) || !is_label_word(v) {
                return Err(err(
                    "keys and values are 1-63 characters of letters, digits, - _ . /",
                ));
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(err("key given twice"));
            }
        }
        Ok(Labels(map))
    }

    /// Whether every requirement is met by a label of the same value.
    pub fn satisfies(&self, required: &Labels) -> bool {
        required
            .0
            .iter()
            .all(|(k, v)| self.0.get(k).is_some_and(|mine| mine == v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// A worker node as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeRecord {
    /// Node id (`node_…`), also the certificate's subject.
    pub id: String,
    /// Name the worker gave at join (its host name by default).
    pub name: String,
    /// Labels issued at join.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub labels: Labels,
    /// SHA-256 of the node certificate (hex): how a connection is matched
    /// to its node.
    pub cert_sha256: String,
    /// Jobs it runs at once, as it last said.
    pub slots: i64,
    /// Jobs it runs now.
    pub running: i64,
    /// Coordinator it is connected to, if any.
    pub coordinator: Option<String>,
    /// When it joined (ms).
    pub joined_at: i64,
    /// Last heartbeat (ms).
    pub last_seen: Option<i64>,
    /// When it was revoked (ms); a revoked node is refused.
    pub revoked_at: Option<i64>,
}

/// A one-time join token as stored: the secret only as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinTokenRecord {
    /// Token id (public part).
    pub id: String,
    /// SHA-256 of the secret part (hex).
    pub secret_sha256: String,
    /// Labels the joining node is issued.
    pub labels: Labels,
    /// Expiry (ms).
    pub expires_at: i64,
    /// When minted (ms).
    pub created_at: i64,
}

/// What presenting a join token came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// Accepted: the node was recorded with the token's labels.
    Joined(NodeRecord),
    /// No such token, or the secret does not match.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Already used (a replay).
    Used,
}

/// `POST /cluster/v1/join`: a worker presents its token and a signing
/// request for the key it keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The token's id.
    pub token_id: String,
    /// The token's secret.
    pub secret: String,
    /// A name for the node (its host name by default).
    pub name: String,
    /// PEM certificate signing request.
    pub csr: String,
}

/// The answer to a join: the node's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// Node id.
    pub node_id: String,
    /// Its certificate (PEM).
    pub cert: String,
    /// The cluster CA (PEM), the only root it trusts from now on.
    pub ca: String,
    /// Labels issued.
    pub labels: Labels,
    /// The key delegation tokens are verified with (`ed25519/<hex>`).
    pub delegation_key: String,
}

/// Worker to coordinator, one JSON text frame each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkerMessage {
    /// First frame: what it is and can do. Labels must be the ones issued.
    Hello {
        /// Labels it claims.
        labels: Labels,
        /// Jobs it runs at once.
        slots: u32,
        /// cairn version.
        version: String,
    },
    /// Liveness and load: the jobs it runs or holds results for, whose
    /// leases the coordinator renews (a job not listed runs out).
    Heartbeat {
        /// Jobs it runs now, or finished and not yet acknowledged.
        running: Vec<JobRef>,
    },
    /// Output of a running job as it appears (best effort; `Done` carries
    /// the complete result).
    Output {
        /// Job id.
        job: String,
        /// Attempt it runs under.
        attempt: i64,
        /// The text printed since the last chunk.
        chunk: String,
    },
    /// A job's result; `attempt` fences it.
    Done {
        /// Job id.
        job: String,
        /// Attempt it ran under.
        attempt: i64,
        /// What the tool returned.
        output: crate::ToolOutput,
    },
}

/// Coordinator to worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    /// The hello was accepted.
    Welcome {
        /// The node id the certificate names.
        node_id: String,
        /// Coordinator instance.
        coordinator: String,
        /// How often to heartbeat (ms).
        heartbeat_ms: u64,
    },
    /// Refused; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
    /// Run a tool call.
    Run(ToolJob),
    /// A result was recorded (`accepted`) or refused because a newer
    /// attempt holds the job; either way the worker forgets it.
    Ack {
        /// Job id.
        job: String,
        /// Attempt.
        attempt: i64,
        /// Whether it counted.
        accepted: bool,
    },
    /// Stop a job (its run was cancelled or its lease moved on).
    Cancel {
        /// Job id.
        job: String,
        /// Attempt.
        attempt: i64,
    },
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRef {
    /// Job id.
    pub job: String,
    /// Attempt.
    pub attempt: i64,
}

/// A tool call sent to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolJob {
    /// Job id.
    pub job: String,
    /// Attempt (the fencing token).
    pub attempt: i64,
    /// Tool name.
    pub tool: String,
    /// Its input.
    pub input: serde_json::Value,
    /// Named workspace (`None`: an ephemeral one per job).
    pub workspace: Option<String>,
    /// Sandbox profile the call runs under.
    pub sandbox: crate::SandboxProfile,
    /// Deadline (ms since epoch).
    pub deadline_ms: i64,
    /// W3C trace context of the run.
    pub traceparent: Option<String>,
    /// The run this call belongs to.
    pub run_id: String,
    /// Biscuit (base64): the run's grant narrowed to this job, tool, node
    /// and deadline; the worker runs nothing whose token fails.
    pub delegation: String,
}

/// Where a tool job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ToolJobStatus {
    /// Waiting for a worker whose labels satisfy it.
    Ready,
    /// Sent to a worker under a lease.
    Leased,
    /// Its result is in.
    Done,
    /// Its worker was lost mid-call and it may not run twice.
    Unknown,
    /// No worker took it before its deadline.
    Expired,
    /// Its run was cancelled; the worker running it was told to stop.
    Cancelled,
}

impl ToolJobStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolJobStatus::Ready => "ready",
            ToolJobStatus::Leased => "leased",
            ToolJobStatus::Done => "done",
            ToolJobStatus::Unknown => "unknown",
            ToolJobStatus::Expired => "expired",
            ToolJobStatus::Cancelled => "cancelled",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<ToolJobStatus> {
        Some(match s {
            "ready" => ToolJobStatus::Ready,
            "leased" => ToolJobStatus::Leased,
            "done" => ToolJobStatus::Done,
            "unknown" => ToolJobStatus::Unknown,
            "expired" => ToolJobStatus::Expired,
            "cancelled" => ToolJobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether it will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ToolJobStatus::Done
                | ToolJobStatus::Unknown
                | ToolJobStatus::Expired
                | ToolJobStatus::Cancelled
        )
    }
}

/// A tool call to run on a worker, as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewToolJob {
    /// Stable across restarts of the run (`<run>/<journal seq>`), so a
    /// resumed run finds its call instead of submitting it again.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// Tool name.
    pub tool: String,
    /// Its input.
    pub input: serde_json::Value,
    /// Labels the worker must have.
    pub requires: Labels,
    /// Named workspace on the worker.
    pub workspace: Option<String>,
    /// Sandbox profile.
    pub sandbox: crate::SandboxProfile,
    /// Whether it may run again after its worker was lost.
    pub idempotent: bool,
    /// Not taken by then: expired (ms).
    pub deadline_ms: i64,
    /// W3C trace context.
    pub traceparent: Option<String>,
}

/// A tool job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolJobRecord {
    /// What was submitted.
    #[serde(flatten)]
    pub job: NewToolJob,
    /// Where it is.
    pub status: ToolJobStatus,
    /// Leases so far (the fencing token of the latest).
    pub attempt: i64,
    /// Worker it was last sent to.
    pub node: Option<String>,
    /// Its result, once final.
    pub output: Option<crate::ToolOutput>,
    /// Submitted (ms).
    pub created_at: i64,
    /// Final (ms).
    pub finished_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_print_and_match() {
        let l = Labels::parse(" region=eu, cap=browser ").unwrap();
        assert_eq!(l.to_string(), "cap=browser,region=eu");
        assert!(l.satisfies(&Labels::parse("region=eu").unwrap()));
        assert!(l.satisfies(&Labels::default()));
        assert!(!l.satisfies(&Labels::parse("region=us").unwrap()));
        assert!(!l.satisfies(&Labels::parse("gpu=yes").unwrap()));
        assert!(Labels::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_labels_are_refused() {
        for bad in [
            "region", "=eu", "region=", "a=b,a=c", "x=y z", "k=<v>", "k=v,,=w",
        ] {
            assert!(Labels::parse(bad).is_err(), "{bad:?}");
        }
    }
}
