//! Who is calling, and what they may do at the door. The operator key, the
//! shared `server.api_key` (and no key on loopback) act as the host's
//! owner, as the CLI does; a person's key (`ck_…`, `cairn apikey create`)
//! carries a role: a viewer reads, a member talks to agents, both see only
//! their own sessions and runs; changing agents, keys or config is an
//! admin's. `/metrics` (counts of everyone's work) is an admin's too.

use axum::http::Method;
use cairn_core::audit::Actor;
use cairn_core::keys::{PresentedKey, Role};

use crate::AppState;
use crate::error::ApiError;

/// Who a request comes from, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator's key: may also widen isolation.
    Operator,
    /// The shared API key, or no key where none is required: the host's
    /// owner, who sees everything.
    Owner,
    /// A person's key.
    Person(Person),
}

/// A person's key, as found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The key's id.
    pub key: String,
    /// Who.
    pub user: String,
    /// What they may do.
    pub role: Role,
    /// The one agent the key may use, if limited.
    pub agent: Option<String>,
}

impl Caller {
    /// The person whose things alone this caller sees (`None`: all).
    pub fn scope(&self) -> Option<&str> {
        match self {
            Caller::Person(p) if p.role != Role::Admin => Some(&p.user),
            _ => None,
        }
    }

    /// The person runs started by this caller work for (`None`: the
    /// host's owner).
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Person(p) => Some(&p.user),
            _ => None,
        }
    }

    /// Who, for the audit log.
    pub fn actor(&self, shared_key: bool) -> Actor {
        match self {
            Caller::Operator => Actor::Operator,
            Caller::Owner if shared_key => Actor::Key {
                key: "server.api_key".into(),
                user: "owner".into(),
            },
            Caller::Owner => Actor::Anonymous,
            Caller::Person(p) => Actor::Key {
                key: p.key.clone(),
                user: p.user.clone(),
            },
        }
    }

    /// Refuses use of `agent` by a key limited to another one.
    pub fn may_use(&self, agent: &str) -> Result<(), ApiError> {
        match self {
            Caller::Person(Person {
                agent: Some(only), ..
            }) if only != agent => Err(ApiError::forbidden(format!(
                "this key may use agent {only:?} only, not {agent:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether listings show this caller `agent` (a key limited to one
    /// agent sees that one only).
    pub fn shows_agent(&self, agent: &str) -> bool {
        self.may_use(agent).is_ok()
    }

    /// Whether this caller may see a thing belonging to `owner`
    /// (`None`: the host's owner).
    pub fn sees(&self, owner: Option<&str>) -> bool {
        self.scope().is_none_or(|me| owner == Some(me))
    }
}

/// A person's key from its text: `Ok(None)` when the text is not a
/// person's key at all; an error (401) for an unknown, wrong or revoked one.
pub async fn person(state: &AppState, text: &str) -> Result<Option<Person>, ApiError> {
    let Some(given) = PresentedKey::parse(text) else {
        return Ok(None);
    };
    let record = state.tables.keys.get_key(given.id).await?;
    let Some(record) = record.filter(|r| given.matches(r)) else {
        return Err(ApiError::unauthorized("unknown API key"));
    };
    if record.revoked_at.is_some() {
        return Err(ApiError::unauthorized("this API key was revoked"));
    }
    Ok(Some(Person {
        key: record.id,
        user: record.user_id,
        role: record.role,
        agent: record.agent,
    }))
}

/// What a role may not do at all, by method and path; `Err` says why.
pub fn door(caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
    let Caller::Person(p) = caller else {
        return Ok(());
    };
    if p.role == Role::Admin {
        return Ok(());
    }
    let reads = matches!(*method, Method::GET | Method::HEAD);
    let role = p.role;
    if path.starts_with("/api/v1/agents") && !path.contains("/memories") && !reads {
        return Err(ApiError::forbidden(format!(
            "changing agents is an admin's (this key's role is {role})"
        )));
    }
    if path == "/metrics" {
        return Err(ApiError::forbidden(format!(
            "{path} is open to admins only for now (this key's role is {role})"
        )));
    }
    if p.role == Role::Viewer && !reads {
        return Err(ApiError::forbidden(
            "a viewer's key reads; it may not start or change anything",
        ));
    }
    Ok(())
}

/// A session this caller may see; another person's reads as absent.
pub async fn visible_session(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<cairn_core::api::SessionInfo, ApiError> {
    let session = state.tables.sessions.get_session(id).await?;
    if caller.sees(session.user_id.as_deref()) {
        Ok(session)
    } else {
        Err(ApiError::not_found(format!("session {id:?} not found")))
    }
}

/// A run this caller may see; another person's reads as absent.
pub async fn visible_run(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<cairn_core::RunRecord, ApiError> {
    let run = state.tables.runs.get_run(id).await?;
    if caller.sees(run.user_id.as_deref()) {
        Ok(run)
    } else {
        Err(ApiError::not_found(format!("run {id:?} not found")))
    }
}

/// The session `id` of `agent` for this caller, made when missing (a
/// person's new session is theirs); another person's, or the owner's for
/// a person, is refused as taken.
pub async fn own_session(
    state: &AppState,
    caller: &Caller,
    id: &str,
    agent: &str,
) -> Result<cairn_core::api::SessionInfo, ApiError> {
    caller.may_use(agent)?;
    let sessions = &state.tables.sessions;
    let info = match caller.user() {
        Some(user) => sessions.ensure_session_of(id, agent, user).await?,
        None => sessions.ensure_session(id, agent).await?,
    };
    if caller.sees(info.user_id.as_deref()) {
        Ok(info)
    } else {
        Err(ApiError::conflict(format!(
            "session id {id:?} is taken; use another"
        )))
    }
}
