//! cairn's cluster: the CA and join tokens (`cairn cluster init`,
//! `join-token`), the coordinator side of the worker protocol (join and the
//! mTLS WebSocket workers dial out to), and the worker itself.

#![deny(clippy::too_many_lines)]

pub mod coordinator;
pub mod delegation;
mod dispatch;
mod link;
pub mod pki;
pub mod remote;
pub mod runner;
mod session;
pub mod tls;
pub mod token;
pub mod worker;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use coordinator::Coordinator;
pub use pki::CaDir;
pub use token::JoinToken;

/// `[cluster]` in cairn.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// How often workers heartbeat (ms); one silent for four beats is dropped.
    pub heartbeat_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat_ms: 5_000,
        }
    }
}

impl ClusterSettings {
    /// The heartbeat interval (at least 50 ms).
    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.heartbeat_ms.max(50))
    }
}

/// Why a cluster operation failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `cluster init` over an existing CA.
    #[error(
        "a cluster CA already exists in {0}; every node's certificate hangs off it, so it is not replaced (move the directory away to start a new cluster)"
    )]
    AlreadyInitialised(PathBuf),
    /// No CA yet.
    #[error("no cluster CA in {0}: run `cairn cluster init` first")]
    NotInitialised(PathBuf),
    /// Making or signing a certificate failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A certificate or key file is unusable.
    #[error("bad certificate or key: {0}")]
    BadCertificate(String),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A join token that does not parse.
    #[error("join token: {0}")]
    BadToken(String),
    /// A peer sent something unusable.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// The coordinator refused (join or connect), with its reason.
    #[error("refused by the coordinator: {0}")]
    Refused(String),
    /// The coordinator could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
}

impl ClusterError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ClusterError {
        ClusterError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
