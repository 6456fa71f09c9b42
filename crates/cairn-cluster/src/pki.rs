//! The cluster's certificates: a CA made by `cairn cluster init`, the
//! coordinators' server certificate, and node certificates issued at join
//! from the worker's signing request. Keys are ECDSA P-256 (rcgen + ring),
//! written with mode 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::ClusterError;

/// Where a coordinator keeps the cluster's certificates (`$CAIRN_HOME/cluster`).
#[derive(Debug, Clone)]
pub struct CaDir(pub PathBuf);

/// How long a node certificate is valid; a node joins again (new token)
/// after that. Revocation cuts it short.
const NODE_VALIDITY_DAYS: i64 = 365;
/// The CA and coordinator certificates.
const CA_VALIDITY_DAYS: i64 = 3650;

/// Hex SHA-256 of DER bytes: how certificates are named in the store,
/// tokens and logs.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour back: clocks of nodes differ a little.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Writes a file only its owner can read (keys) or anyone can (certs).
fn write(path: &Path, text: &str, secret: bool) -> Result<(), ClusterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| ClusterError::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| ClusterError::io(path, e))
}

/// Writes a file only its owner can read.
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), ClusterError> {
    write(path, text, true)
}

fn read(path: &Path) -> Result<String, ClusterError> {
    std::fs::read_to_string(path).map_err(|e| ClusterError::io(path, e))
}

/// The CA's own parameters: the same every time, so an issuer rebuilt from
/// them matches the certificate written at init.
fn ca_params() -> Result<CertificateParams, ClusterError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "cairn cluster CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

impl CaDir {
    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// The coordinator certificate: itself, then the CA.
    pub fn server_cert(&self) -> PathBuf {
        self.0.join("coordinator.pem")
    }
    fn server_key(&self) -> PathBuf {
        self.0.join("coordinator.key")
    }

    /// The key delegation tokens are signed with.
    pub fn delegation_key(&self) -> PathBuf {
        self.0.join("delegation.key")
    }

    /// Whether `init` was run here.
    pub fn exists(&self) -> bool {
        self.ca_cert().exists() && self.ca_key().exists()
    }

    /// Creates the CA and a coordinator certificate for `names` (host names
    /// and IP addresses workers will dial). Refuses to replace an existing
    /// CA: every node's certificate hangs off it.
    pub fn init(&self, names: &[String]) -> Result<String, ClusterError> {
        if self.exists() {
            return Err(ClusterError::AlreadyInitialised(self.0.clone()));
        }
        std::fs::create_dir_all(&self.0).map_err(|e| ClusterError::io(&self.0, e))?;
        let ca_key = KeyPair::generate()?;
        let mut params = ca_params()?;
        validity(&mut params, CA_VALIDITY_DAYS);
        let ca = params.self_signed(&ca_key)?;
        write(&self.ca_key(), &ca_key.serialize_pem(), true)?;
        write(&self.ca_cert(), &ca.pem(), false)?;
        crate::delegation::Delegator::load_or_create(&self.delegation_key())?;
        self.issue_server_cert(names)?;
        Ok(sha256_hex(ca.der()))
    }

    /// (Re)issues the coordinators' certificate for `names`.
    pub fn issue_server_cert(&self, names: &[String]) -> Result<(), ClusterError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(names.to_vec())?;
        p.distinguished_name
            .push(DnType::CommonName, "cairn coordinator");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut p, CA_VALIDITY_DAYS);
        let cert = p.signed_by(&key, &issuer)?;
        let chain = format!("{}{}", cert.pem(), read(&self.ca_cert())?);
        write(&self.server_key(), &key.serialize_pem(), true)?;
        write(&self.server_cert(), &chain, false)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, ClusterError> {
        let key = KeyPair::from_pem(&read(&self.ca_key())?)?;
        Ok(Issuer::from_ca_cert_pem(&read(&self.ca_cert())?, key)?)
    }

    /// Signs a node's certificate from its signing request: the subject is
    /// the node id and the labels are the ones issued (whatever the request
    /// asked for is ignored but its key). Returns the PEM and fingerprint.
    pub fn issue_node_cert(
        &self,
        csr_pem: &str,
        node_id: &str,
        labels: &cairn_core::cluster::Labels,
    ) -> Result<(String, String), ClusterError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| ClusterError::BadRequest(format!("certificate request: {e}")))?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, node_id);
        let mut sans = vec![SanType::URI(
            format!("urn:cairn:node:{node_id}").try_into()?,
        )];
        for (k, v) in &labels.0 {
            sans.push(SanType::URI(format!("urn:cairn:label:{k}={v}").try_into()?));
        }
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut p, NODE_VALIDITY_DAYS);
        let cert = p.signed_by(&csr.public_key, &self.issuer()?)?;
        Ok((cert.pem(), sha256_hex(cert.der())))
    }

    /// The CA certificate's fingerprint.
    pub fn ca_fingerprint(&self) -> Result<String, ClusterError> {
        let der = CertificateDer::from_pem_file(self.ca_cert()).map_err(|e| {
            ClusterError::BadCertificate(format!("{}: {e}", self.ca_cert().display()))
        })?;
        Ok(sha256_hex(&der))
    }

    /// The coordinator's chain and key, for its TLS listener.
    pub fn server_identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClusterError> {
        identity(&self.server_cert(), &self.server_key())
    }
}

/// A certificate chain and its key from PEM files.
pub fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClusterError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(std::iter::Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| ClusterError::BadCertificate(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ClusterError::BadCertificate(format!("{}: {e}", key.display())))?;
    Ok((chain, key))
}

/// A fresh node key and a signing request for it; the key stays on the node.
pub fn node_request() -> Result<(String, String), ClusterError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "cairn worker");
    let csr = p.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Writes a node's key and certificate (and the CA it trusts) into `dir`.
pub fn save_node_identity(
    dir: &Path,
    key_pem: &str,
    cert_pem: &str,
    ca_pem: &str,
) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|e| ClusterError::io(dir, e))?;
    write(&dir.join("node.key"), key_pem, true)?;
    write(&dir.join("node.pem"), cert_pem, false)?;
    write(&dir.join("ca.pem"), ca_pem, false)
}

/// A self-signed server certificate for `names` in `dir` (`cert.pem`,
/// `key.pem` 0600), made once and reused; returns its SHA-256, for clients
/// to pin.
pub fn self_signed_server(dir: &Path, names: &[String]) -> Result<String, ClusterError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::io(dir, e))?;
        let pair = KeyPair::generate()?;
        let mut p = CertificateParams::new(names.to_vec())?;
        p.distinguished_name
            .push(DnType::CommonName, "cairn server");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut p, CA_VALIDITY_DAYS);
        let made = p.self_signed(&pair)?;
        write(&key, &pair.serialize_pem(), true)?;
        write(&cert, &made.pem(), false)?;
    }
    let (chain, _) = identity(&cert, &key)?;
    let first = chain.first().ok_or_else(|| {
        ClusterError::BadCertificate(format!("{}: no certificate", cert.display()))
    })?;
    Ok(sha256_hex(first))
}

/// This host's name (`/etc/hostname`), for the names a server certificate
/// is good for.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}
