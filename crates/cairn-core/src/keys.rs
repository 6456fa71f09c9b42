//! People's API keys: who holds one, what it may do, and its wire form.
//! A key reads `ck_<id>_<secret>`; the store keeps the id and a SHA-256 of
//! the secret, never the secret, so a stolen database admits no one.

use serde::{Deserialize, Serialize};

/// What a key's holder may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads their own sessions, runs and memories; never starts a run.
    Viewer,
    /// Talks to agents in their own sessions; sees only their own things.
    Member,
    /// Everything, including agents, keys and config.
    Admin,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not a role: viewer, member or admin")),
        }
    }
}

/// A stored key (without its secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Its public id (the middle of `ck_<id>_<secret>`).
    pub id: String,
    /// The person it belongs to (a `[channels.users]` name, or any name).
    pub user_id: String,
    /// What it may do.
    pub role: Role,
    /// The one agent it may use, when limited to one.
    pub agent: Option<String>,
    /// SHA-256 of the secret, hex.
    #[serde(skip_serializing)]
    pub secret_sha256: String,
    /// When it was made (ms).
    pub created_at: i64,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

/// A key as presented: its id and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its secret.
    pub secret: &'a str,
}

/// The prefix every person's key starts with.
pub const KEY_PREFIX: &str = "ck_";

impl<'a> PresentedKey<'a> {
    /// Reads `ck_<id>_<secret>`; `None` for anything else (such as the
    /// shared `server.api_key` or the operator key).
    pub fn parse(text: &'a str) -> Option<PresentedKey<'a>> {
        let rest = text.strip_prefix(KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hexish(id, 12) && hexish(secret, 64)).then_some(PresentedKey { id, secret })
    }

    /// Whether this secret is the one `record` was made with (comparing
    /// digests, so in constant time whatever the input).
    pub fn matches(&self, record: &ApiKeyRecord) -> bool {
        let ours = crate::audit::digest(self.secret.as_bytes());
        constant_time_eq(ours.as_bytes(), record.secret_sha256.as_bytes())
    }
}

/// Equal without a timing difference, even in length: both sides are
/// hashed first, so the comparison is always of 32 bytes. For secrets,
/// signatures and seals.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A new key's id and secret from 38 random bytes, and its full text.
pub fn mint(random: &[u8; 38]) -> (String, String, String) {
    let id = crate::audit::hex(&random[..6]);
    let secret = crate::audit::hex(&random[6..]);
    let text = format!("{KEY_PREFIX}{id}_{secret}");
    (id, crate::audit::digest(secret.as_bytes()), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_reads_back_and_matches_only_itself() {
        let (id, sha, text) = mint(&[7u8; 38]);
        let k = PresentedKey::parse(&text).unwrap();
        assert_eq!(k.id, id);
        let rec = ApiKeyRecord {
            id,
            user_id: "alice".into(),
            role: Role::Member,
            agent: None,
            secret_sha256: sha,
            created_at: 0,
            revoked_at: None,
        };
        assert!(k.matches(&rec));
        let (_, _, other) = mint(&[8u8; 38]);
        let mut forged = PresentedKey::parse(&other).unwrap();
        forged.id = &rec.id;
        assert!(!forged.matches(&rec));
        for bad in ["", "ck_", "ck_zz_zz", "Bearer x", &text[..text.len() - 1]] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
        assert!(
            !serde_json::to_string(&rec)
                .unwrap()
                .contains(&rec.secret_sha256)
        );
    }
}
