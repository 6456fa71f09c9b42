//! What the server writes to the audit log: refusals at the door (rate
//! limited, so a stranger's flood cannot fill the log or the disk), and
//! each use of a key to change something.

use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use cairn_core::audit::{Actor, AuditEvent};

use crate::AppState;
use crate::api::Caller;

/// Refusals recorded per second at most; the rest are counted and the
/// count rides on the next one recorded.
const REFUSALS_PER_SECOND: u32 = 20;

/// Keeps refusals to [`REFUSALS_PER_SECOND`].
#[derive(Debug, Default)]
pub(crate) struct RefusalBudget(Mutex<Window>);

#[derive(Debug, Default)]
struct Window {
    second: i64,
    recorded: u32,
    suppressed: u64,
}

impl RefusalBudget {
    /// `Some(suppressed since the last one recorded)` when this refusal may
    /// be recorded.
    fn admit(&self, now_ms: i64) -> Option<u64> {
        let mut w = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let second = now_ms / 1000;
        if w.second != second {
            w.second = second;
            w.recorded = 0;
        }
        if w.recorded >= REFUSALS_PER_SECOND {
            w.suppressed += 1;
            return None;
        }
        w.recorded += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

/// Which surface a path belongs to.
pub(crate) fn surface(path: &str) -> &'static str {
    if path.starts_with("/v1/") {
        "openai"
    } else if path == "/mcp" || path.starts_with("/mcp/") {
        "mcp"
    } else if path.starts_with("/channels/") {
        "webhook"
    } else {
        "api"
    }
}

/// Records a refusal, within the budget.
pub(crate) async fn refused(
    state: &AppState,
    who: Actor,
    method: &Method,
    path: &str,
    status: StatusCode,
    reason: &str,
) {
    let Some(audit) = state.rt.audit() else {
        return;
    };
    let Some(suppressed) = state.refusals.admit(cairn_core::now_ms()) else {
        return;
    };
    let event = AuditEvent::Refused {
        surface: surface(path).into(),
        action: format!("{method} {path}"),
        status: status.as_u16(),
        reason: reason.into(),
        suppressed,
    };
    audit.note(who, event).await;
}

/// Records a request that changes something, with how it was answered.
pub(crate) async fn key_used(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    path: &str,
    status: StatusCode,
) {
    let Some(audit) = state.rt.audit() else {
        return;
    };
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return;
    }
    let event = AuditEvent::KeyUsed {
        surface: surface(path).into(),
        action: format!("{method} {path}"),
        status: status.as_u16(),
    };
    audit
        .note(caller.actor(state.api_key.is_some()), event)
        .await;
}

/// Records that an agent was created or changed, and which isolation
/// fields the change widened.
pub(crate) async fn agent_changed(
    state: &AppState,
    caller: &Caller,
    current: &cairn_core::AgentSpec,
    new: &cairn_core::AgentSpec,
) {
    let Some(audit) = state.rt.audit() else {
        return;
    };
    let widened = cairn_core::agent::widened(current, new)
        .into_iter()
        .map(str::to_string)
        .collect();
    let event = AuditEvent::AgentChanged {
        name: new.name.clone(),
        widened,
    };
    audit
        .note(caller.actor(state.api_key.is_some()), event)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_in_part_and_counted() {
        let b = RefusalBudget::default();
        let admitted = (0..100).filter(|_| b.admit(5_000).is_some()).count();
        assert_eq!(admitted, REFUSALS_PER_SECOND as usize);
        // The next second's first refusal carries the count of the rest.
        assert_eq!(b.admit(6_000), Some(100 - u64::from(REFUSALS_PER_SECOND)));
        assert_eq!(b.admit(6_001), Some(0));
    }
}
