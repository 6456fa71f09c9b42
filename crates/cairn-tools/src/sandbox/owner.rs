//! Who sandboxed commands run as. Inside bubblewrap a command is uid 0 of
//! its own user namespace, but that uid maps to the server's: a server
//! running as root would give every command root's ownership of host files
//! (`/etc/shadow`, private keys), capabilities or not. So a root server
//! runs bubblewrap without a user namespace, its init gives up root for an
//! unprivileged user before the command starts, and that user owns the
//! workspaces.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};

/// The dedicated user `cairn service install` creates.
pub const DEDICATED_USER: &str = "cairn-sandbox";

/// An unprivileged host identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: Uid,
    /// Primary group id.
    pub gid: Gid,
}

impl RunAs {
    /// The identity commands run as when this process is root: `name` when
    /// given, else the dedicated user when it exists, else `nobody`. `None`
    /// when this process is not root (commands run as its own user).
    pub fn for_this_process(name: &str) -> Result<Option<RunAs>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let candidates: Vec<&str> = if name.is_empty() {
            vec![DEDICATED_USER, "nobody"]
        } else {
            vec![name]
        };
        for candidate in candidates {
            match nix::unistd::User::from_name(candidate) {
                Ok(Some(user)) if user.uid.is_root() => {
                    return Err(format!(
                        "tools.sandbox.user = {candidate:?} is root; commands never run as root"
                    ));
                }
                Ok(Some(user)) => {
                    return Ok(Some(RunAs {
                        uid: user.uid,
                        gid: user.gid,
                    }));
                }
                Ok(None) => continue,
                Err(e) => return Err(format!("cannot look up user {candidate:?}: {e}")),
            }
        }
        Err(if name.is_empty() {
            format!(
                "this server runs as root and neither {DEDICATED_USER} nor nobody exists to run commands as; create one (useradd --system {DEDICATED_USER}) or set tools.sandbox.user"
            )
        } else {
            format!("tools.sandbox.user: no user named {name:?}")
        })
    }

    /// A name for messages: `cairn-sandbox (uid 998)`.
    pub fn describe(&self) -> String {
        match nix::unistd::User::from_uid(self.uid) {
            Ok(Some(u)) => format!("{} (uid {})", u.name, self.uid),
            _ => format!("uid {}", self.uid),
        }
    }

    /// Makes `dir` and everything in it this identity's, once: a no-op
    /// when the directory already is. Symlinks are changed, not followed.
    /// The directory itself is made traversable (0755): bubblewrap enters
    /// it before the command becomes this identity, holding no capability
    /// to pass a private one (the server's umask is 077).
    pub fn adopt(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.uid() != self.uid.as_raw() {
            self.adopt_tree(dir)?;
        }
        if meta.mode() & 0o011 != 0o011 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    fn adopt_tree(self, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(self.uid),
            Some(self.gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.adopt_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}
