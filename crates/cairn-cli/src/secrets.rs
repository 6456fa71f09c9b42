//! The secrets cairn keeps in its home, each a file of 256 random bits in
//! hex, mode 0600, made at first use: the operator's key and the audit
//! key. Sandboxed commands never see them (all of `CAIRN_HOME` is hidden
//! from them), and neither is in the database.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_core::audit::AuditKey;

use crate::config::Loaded;

/// Where the operator's key lives.
pub fn operator_key_path(home: &Path) -> PathBuf {
    home.join("operator.key")
}

/// Where the audit key lives: beside the cluster's CA once there is one
/// (`cluster/audit.key`, so copying `cluster/` to another coordinator
/// brings it: they must share it to extend one chain), else in the home.
pub fn audit_key_path(home: &Path) -> PathBuf {
    let cluster = home.join("cluster");
    if cluster.is_dir() {
        cluster.join("audit.key")
    } else {
        home.join("audit.key")
    }
}

/// A home that made its key before its cluster did keeps it: the key is
/// copied beside the CA (the chain it sealed goes on).
fn carry_into_cluster(home: &Path) -> Result<()> {
    let (old, new) = (home.join("audit.key"), audit_key_path(home));
    if old == new || new.exists() || !old.exists() {
        return Ok(());
    }
    let key = std::fs::read(&old).with_context(|| format!("reading {}", old.display()))?;
    write_secret(&new, &key)
}

/// The operator's key, made when missing. It admits to the API like the
/// API key and alone may widen an agent's isolation.
pub fn operator_key(loaded: &Loaded) -> Result<String> {
    secret_file(&operator_key_path(&loaded.home), "the operator key")
}

/// The key audit entries are sealed with, made when missing. Every
/// process writing one store (coordinators on one PostgreSQL) must have
/// the same one.
pub fn audit_key(loaded: &Loaded) -> Result<AuditKey> {
    carry_into_cluster(&loaded.home)?;
    let path = audit_key_path(&loaded.home);
    let text = secret_file(&path, "the audit key")?;
    AuditKey::from_hex(&text).with_context(|| path.display().to_string())
}

/// The audit key, which must already exist (for reading the log: a
/// missing key is not made, as a new one could verify nothing).
pub fn existing_audit_key(home: &Path) -> Result<AuditKey> {
    carry_into_cluster(home)?;
    let path = audit_key_path(home);
    let Some(text) = read_secret(&path, "the audit key")? else {
        anyhow::bail!(
            "no audit key at {}: the log is verified with the key of the server that wrote it (copy its audit.key here, or set CAIRN_HOME)",
            path.display()
        );
    };
    AuditKey::from_hex(&text).with_context(|| path.display().to_string())
}

/// The secret in `path`, made (256 random bits, mode 0600) when missing.
fn secret_file(path: &Path, what: &str) -> Result<String> {
    if let Some(key) = read_secret(path, what)? {
        return Ok(key);
    }
    let key = hex(&random_bytes::<32>(what)?);
    write_secret(path, key.as_bytes())?;
    Ok(key)
}

/// The secret in `path` (trimmed), `None` when there is no such file; an
/// empty file, or one others may read, is an error.
fn read_secret(path: &Path, what: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(key) if !key.trim().is_empty() => {
            crate::config::check_secret_mode(path)?;
            Ok(Some(key.trim().to_string()))
        }
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to have {what} made anew",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a new secret file (mode 0600; never over an existing one).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `N` bytes from the kernel's random source, for `what`.
pub fn random_bytes<const N: usize>(what: &str) -> Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .with_context(|| format!("reading /dev/urandom for {what}"))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
