//! One-time join tokens. A token carries its id, a secret (stored only as
//! a hash) and the CA's fingerprint, so a joining worker can check it talks
//! to this cluster's coordinator before it has any certificate.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use crate::ClusterError;
use crate::pki::sha256_hex;

/// Prefix and version of the textual form.
const PREFIX: &str = "cjt1";

/// A join token as the user copies it.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Public id (the store's key).
    pub id: String,
    /// Secret part.
    pub secret: String,
    /// SHA-256 of the cluster CA certificate (hex).
    pub ca_sha256: String,
}

/// `n` random bytes as hex, from the system's CSPRNG.
pub fn random_hex(n: usize) -> Result<String, ClusterError> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| ClusterError::Random)?;
    Ok(crate::pki::hex(&buf))
}

/// The hash a token's secret is stored and compared as.
pub(crate) fn secret_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl JoinToken {
    /// A new token for the CA with this fingerprint.
    pub fn mint(ca_sha256: &str) -> Result<JoinToken, ClusterError> {
        Ok(JoinToken {
            id: random_hex(8)?,
            secret: random_hex(32)?,
            ca_sha256: ca_sha256.to_string(),
        })
    }

    /// Parses the textual form; a malformed token is refused before any
    /// network traffic.
    pub fn parse(text: &str) -> Result<JoinToken, ClusterError> {
        let bad = || ClusterError::BadToken("not a cairn join token (cjt1.…)".into());
        let mut parts = text.trim().split('.');
        let (Some(PREFIX), Some(id), Some(secret), Some(ca), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if !is_hex(id, 16) || !is_hex(secret, 64) || !is_hex(ca, 64) {
            return Err(bad());
        }
        Ok(JoinToken {
            id: id.to_string(),
            secret: secret.to_string(),
            ca_sha256: ca.to_ascii_lowercase(),
        })
    }

    /// The hash stored in place of the secret.
    pub fn secret_sha256(&self) -> String {
        secret_hash(&self.secret)
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}.{}.{}.{}", self.id, self.secret, self.ca_sha256)
    }
}

impl fmt::Debug for JoinToken {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        let t = JoinToken::mint(&"ab".repeat(32)).unwrap();
        assert_eq!(JoinToken::parse(&t.to_string()).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.secret));
        for bad in [
            "",
            "cjt1",
            "cjt2.0011223344556677.aa.bb",
            &format!("{t}.extra"),
            &t.to_string().replace("cjt1.", "cjt1.zz"),
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
