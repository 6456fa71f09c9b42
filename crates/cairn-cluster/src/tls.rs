//! TLS for every cluster hop: the coordinator's listener (server
//! certificate from the cluster CA; a client certificate is optional at the
//! TLS layer so the API and `join` work without one, and required by the
//! worker endpoint), the worker's mTLS client, and the pinned verifier a
//! worker uses at join before it has the CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::ClusterError;
use crate::pki::{CaDir, identity, sha256_hex};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &Path) -> Result<RootCertStore, ClusterError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem)
        .map_err(|e| ClusterError::BadCertificate(format!("{}: {e}", ca_pem.display())))?
    {
        let cert =
            cert.map_err(|e| ClusterError::BadCertificate(format!("{}: {e}", ca_pem.display())))?;
        roots
            .add(cert)
            .map_err(|e| ClusterError::BadCertificate(e.to_string()))?;
    }
    Ok(roots)
}

/// The coordinator's TLS settings.
pub fn server_config(ca: &CaDir) -> Result<Arc<ServerConfig>, ClusterError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&ca.ca_cert())?), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| ClusterError::BadCertificate(e.to_string()))?;
    let (chain, key) = ca.server_identity()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS settings of a server that is not a coordinator: a certificate chain
/// and key from PEM files (yours, or `self_signed_server`'s), no client
/// certificates.
pub fn plain_server_config(cert: &Path, key: &Path) -> Result<ServerTls, ClusterError> {
    let (chain, key) = identity(cert, key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server's TLS settings, ready to listen with.
pub type ServerTls = Arc<ServerConfig>;

/// A worker's mTLS client settings from its node directory.
pub fn node_client_config(dir: &Path) -> Result<Arc<ClientConfig>, ClusterError> {
    let (chain, key) = identity(&dir.join("node.pem"), &dir.join("node.key"))?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&dir.join("ca.pem"))?)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Client settings for join: the server's chain must include the CA whose
/// fingerprint the token names, and the server certificate must be valid
/// under it for the host dialled.
pub fn pinned_client_config(ca_sha256: &str) -> Result<ClientConfig, ClusterError> {
    let verifier = PinnedCa {
        ca_sha256: ca_sha256.to_string(),
        algorithms: provider().signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct PinnedCa {
    ca_sha256: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c) == self.ca_sha256)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's certificate is not from the cluster CA the token names".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks (a
/// slow or silent client holds up nobody) and finished connections queue.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small frames both ways (jobs, results, heartbeats): without
                // this, Nagle and delayed ACKs add 40 ms to a hop.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY");
                }
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            // The server is gone if this fails; nothing to do.
                            let _sent = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Who is on the other end of a TLS connection: its address and, when it
/// presented a certificate the CA signed, that certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// SHA-256 of the verified client certificate.
    pub cert_sha256: Option<String>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Peer {
        let (_, conn) = stream.io().get_ref();
        Peer {
            addr: *stream.remote_addr(),
            cert_sha256: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| sha256_hex(c)),
        }
    }
}
