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
