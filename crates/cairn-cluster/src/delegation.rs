//! Delegation tokens (biscuit): every tool job a coordinator sends carries
//! a token signed with the cluster's delegation key. Its first block grants
//! the run; the block appended for the hop narrows it to this job, this
//! tool, this node, until the job's deadline. The worker verifies the chain
//! with the public key it received at join and runs nothing that fails.

use std::path::Path;
use std::str::FromStr;

use biscuit_auth::builder::{AuthorizerBuilder, BlockBuilder};
use biscuit_auth::{Biscuit, KeyPair, PrivateKey, PublicKey};

use crate::ClusterError;

/// What a token is checked against on the worker.
#[derive(Debug, Clone)]
pub struct Hop<'a> {
    /// The run the job belongs to.
    pub run: &'a str,
    /// Job id.
    pub job: &'a str,
    /// Tool asked for.
    pub tool: &'a str,
    /// Node it is sent to.
    pub node: &'a str,
    /// Not valid after (ms).
    pub deadline_ms: i64,
}

/// A string safe inside a Datalog string literal (ids and tool names are).
fn literal(s: &str) -> Result<&str, ClusterError> {
    if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(ClusterError::BadRequest(format!(
            "{s:?} cannot be named in a delegation token"
        )));
    }
    Ok(s)
}

fn token_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::BadRequest(format!("delegation token: {e}"))
}

/// The coordinators' signing side.
pub struct Delegator {
    key: KeyPair,
}

impl Delegator {
    /// The key in `path`, made (mode 0600) if there is none yet.
    pub fn load_or_create(path: &Path) -> Result<Delegator, ClusterError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let private = PrivateKey::from_str(text.trim()).map_err(|e| {
                    ClusterError::BadCertificate(format!("{}: {e}", path.display()))
                })?;
                Ok(Delegator {
                    key: KeyPair::from(&private),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::new();
                crate::pki::write_secret(path, &key.private().to_prefixed_string())?;
                Ok(Delegator { key })
            }
            Err(e) => Err(ClusterError::io(path, e)),
        }
    }

    /// The public key workers verify with (`ed25519/<hex>`).
    pub fn public_key(&self) -> String {
        self.key.public().to_string()
    }

    /// A token for one hop: the run's grant, narrowed to `hop`.
    pub fn token(&self, hop: &Hop<'_>) -> Result<String, ClusterError> {
        let (run, job, tool, node) = (
            literal(hop.run)?,
            literal(hop.job)?,
            literal(hop.tool)?,
            literal(hop.node)?,
        );
        let grant = Biscuit::builder()
            .fact(format!("run(\"{run}\")").as_str())
            .map_err(token_err)?
            .build(&self.key)
            .map_err(token_err)?;
        let narrowed = BlockBuilder::new()
            .check(format!("check if job(\"{job}\")").as_str())
            .and_then(|b| b.check(format!("check if tool(\"{tool}\")").as_str()))
            .and_then(|b| b.check(format!("check if node(\"{node}\")").as_str()))
            .and_then(|b| {
                b.check(format!("check if now_ms($t), $t <= {}", hop.deadline_ms).as_str())
            })
            .map_err(token_err)?;
        grant
            .append(narrowed)
            .and_then(|t| t.to_base64())
            .map_err(token_err)
    }
}

/// Why a delegation token does not hold for a hop.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The worker's copy of the cluster's public key does not parse.
    #[error("cluster key: {0}")]
    ClusterKey(String),
    /// Not a token signed by the cluster (forged, truncated, garbage).
    #[error("not valid: {0}")]
    Invalid(String),
    /// A name of the hop cannot be put in a check.
    #[error("{0}")]
    Unnameable(String),
    /// A block's check failed: another job, tool, node, or too late.
    #[error("refused: {0}")]
    Refused(String),
}

/// Checks `token` for `hop` against the cluster's public key (`ed25519/…`)
/// at `now_ms`: signed by the cluster, every block's checks hold.
pub fn verify(public_key: &str, token: &str, hop: &Hop<'_>, now_ms: i64) -> Result<(), Refusal> {
    let root = PublicKey::from_str(public_key).map_err(|e| Refusal::ClusterKey(e.to_string()))?;
    let biscuit = Biscuit::from_base64(token, root).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let lit = |s| literal(s).map_err(|e| Refusal::Unnameable(e.to_string()));
    let (run, job, tool, node) = (lit(hop.run)?, lit(hop.job)?, lit(hop.tool)?, lit(hop.node)?);
    let mut authorizer = AuthorizerBuilder::new()
        .fact(format!("job(\"{job}\")").as_str())
        .and_then(|a| a.fact(format!("tool(\"{tool}\")").as_str()))
        .and_then(|a| a.fact(format!("node(\"{node}\")").as_str()))
        .and_then(|a| a.fact(format!("now_ms({now_ms})").as_str()))
        .and_then(|a| a.policy(format!("allow if run(\"{run}\")").as_str()))
        .and_then(|a| a.build(&biscuit))
        .map_err(|e| Refusal::Refused(e.to_string()))?;
    authorizer
        .authorize()
        .map(|_| ())
        .map_err(|e| Refusal::Refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_its_hop_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = Delegator::load_or_create(&dir.path().join("k")).unwrap();
        let again = Delegator::load_or_create(&dir.path().join("k")).unwrap();
        assert_eq!(d.public_key(), again.public_key(), "kept, not remade");
        let hop = Hop {
            run: "run_1",
            job: "run_1/4",
            tool: "exec",
            node: "node_a",
            deadline_ms: 2_000,
        };
        let t = d.token(&hop).unwrap();
        let pk = d.public_key();
        verify(&pk, &t, &hop, 1_000).unwrap();
        assert!(
            matches!(verify(&pk, &t, &hop, 3_000), Err(Refusal::Refused(_))),
            "expired"
        );
        for other in [
            Hop {
                tool: "write_file",
                ..hop.clone()
            },
            Hop {
                node: "node_b",
                ..hop.clone()
            },
            Hop {
                job: "run_1/5",
                ..hop.clone()
            },
            Hop {
                run: "run_2",
                ..hop.clone()
            },
        ] {
            assert!(
                matches!(verify(&pk, &t, &other, 1_000), Err(Refusal::Refused(_))),
                "{other:?}"
            );
        }
        let stranger = Delegator::load_or_create(&dir.path().join("other")).unwrap();
        assert!(matches!(
            verify(&stranger.public_key(), &t, &hop, 1_000),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            verify(&pk, "garbage", &hop, 1_000),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            verify("ed25519/nothex", &t, &hop, 1_000),
            Err(Refusal::ClusterKey(_))
        ));
        assert!(
            d.token(&Hop {
                job: "x\"y",
                ..hop.clone()
            })
            .is_err()
        );
    }
}
