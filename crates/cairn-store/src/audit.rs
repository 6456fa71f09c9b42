//! The audit log: append-only, each entry sealed after the one before it
//! (see `cairn_core::audit`). The store numbers and seals entries inside
//! one transaction, so the chain has no gaps and no forks, even with
//! several coordinators on one PostgreSQL (one chain for all of them).

use async_trait::async_trait;
use cairn_core::audit::{AuditKey, AuditRow, ChainCheck, Head, NewAudit, Verdict};

use crate::StoreError;

/// AuditStore: see the module documentation.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries in order, sealed with `key`; returns their numbers.
    async fn append_audit(
        &self,
        key: &AuditKey,
        entries: &[NewAudit],
    ) -> Result<Vec<i64>, StoreError>;

    /// Up to `limit` entries after `after`, oldest first.
    async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError>;

    /// The newest `n` entries, oldest first.
    async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>, StoreError>;

    /// Checks the whole chain with `key` (and that `head`, recorded
    /// earlier, is still in it), a page at a time.
    async fn verify_audit(
        &self,
        key: &AuditKey,
        head: Option<Head>,
    ) -> Result<Verdict, StoreError> {
        let mut check = ChainCheck::new(key);
        if let Some(head) = head {
            check = check.expecting(head);
        }
        let mut after = 0;
        loop {
            let page = self.audit_page(after, VERIFY_PAGE).await?;
            for row in &page {
                if let Err(at) = check.next(row) {
                    let intact = check.checked();
                    return Ok(Verdict::Broken { intact, at });
                }
            }
            match page.last() {
                Some(row) => after = row.seq,
                None => break,
            }
        }
        let entries = check.checked();
        Ok(match check.finish() {
            Ok(head) => Verdict::Intact { entries, head },
            Err(at) => Verdict::Broken {
                intact: entries,
                at,
            },
        })
    }
}

/// Entries read at a time when verifying.
const VERIFY_PAGE: i64 = 1000;

/// An entry's stored columns.
pub(crate) type AuditCols = (i64, i64, String, String, String, String, String);

/// An entry from its columns.
pub(crate) fn decode_audit(c: AuditCols) -> AuditRow {
    let (seq, at, key_id, actor, event, prev, seal) = c;
    AuditRow {
        seq,
        at,
        key_id,
        actor,
        event,
        prev,
        seal,
    }
}

/// Where the server and the runtime write the audit log: the store and
/// the key entries are sealed with. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    store: crate::Store,
    key: std::sync::Arc<AuditKey>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({:?})", self.key)
    }
}

/// The log was sealed by another key than this process has.
#[derive(Debug, thiserror::Error)]
#[error(
    "the audit log in the store was sealed by audit key {theirs}, and this process has key {ours}: every process writing one store must share one key (copy $CAIRN_HOME/audit.key from the host that made it)"
)]
pub struct ForeignAuditKey {
    /// The newest entry's key id.
    pub theirs: String,
    /// Ours.
    pub ours: String,
}

impl AuditLog {
    /// Writes to `store`, sealing with `key`; refuses a key other than the
    /// one that sealed the newest entry, so a misconfigured coordinator
    /// cannot fork the chain.
    pub async fn open(store: crate::Store, key: AuditKey) -> Result<AuditLog, StoreError> {
        if let Some(last) = store.audit_tail(1).await?.pop()
            && last.key_id != key.id()
        {
            return Err(ForeignAuditKey {
                theirs: last.key_id,
                ours: key.id().to_string(),
            }
            .into());
        }
        Ok(AuditLog {
            store,
            key: std::sync::Arc::new(key),
        })
    }

    /// Appends one entry now. A store error is returned for callers that
    /// must not go on without their entry; others log it.
    pub async fn record(
        &self,
        actor: cairn_core::audit::Actor,
        event: cairn_core::audit::AuditEvent,
    ) -> Result<i64, StoreError> {
        let seqs = self
            .store
            .append_audit(&self.key, &[NewAudit::now(actor, event)])
            .await?;
        seqs.first()
            .copied()
            .ok_or_else(|| StoreError::corrupt("audit_log", "an append returned no entry"))
    }

    /// Appends one entry, logging (not returning) a failure: for entries
    /// about something that already happened.
    pub async fn note(
        &self,
        actor: cairn_core::audit::Actor,
        event: cairn_core::audit::AuditEvent,
    ) {
        if let Err(e) = self.record(actor, event).await {
            tracing::error!(error = %e, "could not write an audit entry");
        }
    }
}
