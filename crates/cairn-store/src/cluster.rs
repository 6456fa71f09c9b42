//! The cluster's membership: one-time join tokens and the worker nodes they
//! admitted (labels, certificate fingerprint, heartbeat, revocation).

use async_trait::async_trait;
use cairn_core::cluster::{JoinTokenRecord, Labels, NodeRecord, Redemption};

use crate::StoreError;

/// ClusterStore: see the module documentation.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Stores a newly minted join token.
    async fn create_join_token(&self, token: &JoinTokenRecord) -> Result<(), StoreError>;

    /// The labels token `id` issues, if it exists (spent or not).
    async fn join_token_labels(&self, id: &str) -> Result<Option<Labels>, StoreError>;

    /// Spends token `id` if `secret_sha256` matches, it has not expired at
    /// `now` and was never used; in the same transaction records `node`
    /// with the token's labels (whatever labels `node` carries are ignored).
    async fn redeem_join_token(
        &self,
        id: &str,
        secret_sha256: &str,
        node: &NodeRecord,
        now: i64,
    ) -> Result<Redemption, StoreError>;

    /// The node holding the certificate with this fingerprint.
    async fn node_by_cert(&self, cert_sha256: &str) -> Result<Option<NodeRecord>, StoreError>;

    /// Records a heartbeat: who it is connected to (`None`: disconnected),
    /// its slots and what it runs.
    async fn node_seen(
        &self,
        id: &str,
        coordinator: Option<&str>,
        slots: i64,
        running: i64,
    ) -> Result<(), StoreError>;

    /// Every node, by name.
    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Revokes the node with this id or name; `false` if there is none.
    async fn revoke_node(&self, id_or_name: &str) -> Result<bool, StoreError>;
}

/// A stored node row: id, name, labels (JSON), cert_sha256, slots, running,
/// coordinator, joined_at, last_seen, revoked_at.
pub(crate) type NodeRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);

/// `SELECT` of `NodeRow`'s columns from `cluster_nodes`, then `$rest`.
macro_rules! select_nodes {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, labels, cert_sha256, slots, running, coordinator, joined_at,
             last_seen, revoked_at FROM cluster_nodes ",
            $rest
        )
    };
}
pub(crate) use select_nodes;

/// A node from its row.
pub(crate) fn decode_node(r: NodeRow) -> Result<NodeRecord, StoreError> {
    let labels: Labels =
        serde_json::from_str(&r.2).map_err(|e| StoreError::corrupt("cluster_nodes", e))?;
    Ok(NodeRecord {
        id: r.0,
        name: r.1,
        labels,
        cert_sha256: r.3,
        slots: r.4,
        running: r.5,
        coordinator: r.6,
        joined_at: r.7,
        last_seen: r.8,
        revoked_at: r.9,
    })
}

/// Labels as stored.
pub(crate) fn encode_labels(labels: &Labels) -> Result<String, StoreError> {
    serde_json::to_string(labels).map_err(|e| StoreError::corrupt("cluster labels", e))
}

/// How a token row that was not spent is explained: `(expires_at,
/// used_at, secret matches)` of the row, if there is one.
pub(crate) fn refusal(row: Option<(i64, Option<i64>, bool)>, now: i64) -> Redemption {
    match row {
        None | Some((_, _, false)) => Redemption::Unknown,
        Some((_, Some(_), true)) => Redemption::Used,
        Some((expires, None, true)) if expires <= now => Redemption::Expired,
        // Spent by a concurrent redemption between our two statements.
        Some(_) => Redemption::Used,
    }
}
