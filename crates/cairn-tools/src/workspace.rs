//! Confinement of paths to a workspace directory.

use std::path::{Component, Path, PathBuf};

use thiserror::Error;

/// Why a path the model gave is refused. Each says the path as given, so
/// the model can correct it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathRefused {
    /// No path at all.
    #[error("path is empty")]
    Empty,
    /// A NUL byte, which no file name holds.
    #[error("path contains a NUL byte")]
    Nul,
    /// An absolute path that is not under the workspace.
    #[error(
        "{path}: absolute paths outside the workspace are refused; use a path relative to the workspace ({root})"
    )]
    OutsideAbsolute {
        /// As given.
        path: String,
        /// The workspace.
        root: String,
    },
    /// `..` past the workspace's root.
    #[error("{0}: leaves the workspace (via \"..\"); refused")]
    Escapes(String),
    /// A root or drive prefix in the middle of a path.
    #[error("{0}: not a workspace path")]
    NotWorkspace(String),
    /// A symlink on the way leads outside.
    #[error("{0}: resolves outside the workspace (through a symlink); refused")]
    ThroughLink(String),
    /// A symlink on the way points nowhere.
    #[error("{0}: is a symlink to a missing target; refused")]
    DanglingLink(String),
    /// It cannot be resolved at all.
    #[error("{0}: cannot be resolved")]
    Unresolvable(String),
}

/// A directory a tool may work in, and nothing outside it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Creates the directory if needed and pins its canonical path.
    pub fn open(dir: &Path) -> std::io::Result<Workspace> {
        std::fs::create_dir_all(dir)?;
        Ok(Workspace {
            root: dir.canonicalize()?,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path the model gave, as a clean path relative to the root (no
    /// `..`, no root), or why not. Nothing is followed here: the file tools
    /// open it beneath the root without following symlinks.
    pub fn relative(&self, raw: &str) -> Result<PathBuf, PathRefused> {
        if raw.is_empty() {
            return Err(PathRefused::Empty);
        }
        if raw.contains('\0') {
            return Err(PathRefused::Nul);
        }
        let given = Path::new(raw);
        let relative = if given.is_absolute() {
            given
                .strip_prefix(&self.root)
                .map_err(|_| PathRefused::OutsideAbsolute {
                    path: raw.to_string(),
                    root: self.root.display().to_string(),
                })?
        } else {
            given
        };
        let mut clean = PathBuf::new();
        for part in relative.components() {
            match part {
                Component::Normal(p) => clean.push(p),
                Component::CurDir => {}
                Component::ParentDir => {
                    if !clean.pop() {
                        return Err(PathRefused::Escapes(raw.to_string()));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(PathRefused::NotWorkspace(raw.to_string()));
                }
            }
        }
        Ok(clean)
    }

    /// Resolves a path the model gave to a location inside the workspace, or
    /// says why not. Relative paths are relative to the root; absolute paths
    /// must already point inside it; symlinks are followed and must stay in.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, PathRefused> {
        let full = self.root.join(self.relative(raw)?);
        self.check_links(raw, &full)?;
        Ok(full)
    }

    /// Follows symlinks along `full`: the deepest existing ancestor, once
    /// canonical, must still be inside the root.
    fn check_links(&self, raw: &str, full: &Path) -> Result<(), PathRefused> {
        let mut probe = full.to_path_buf();
        loop {
            match std::fs::symlink_metadata(&probe) {
                Ok(meta) => {
                    let real = probe.canonicalize().map_err(|_| {
                        if meta.file_type().is_symlink() {
                            PathRefused::DanglingLink(raw.to_string())
                        } else {
                            PathRefused::Unresolvable(raw.to_string())
                        }
                    })?;
                    if !real.starts_with(&self.root) {
                        return Err(PathRefused::ThroughLink(raw.to_string()));
                    }
                    return Ok(());
                }
                Err(_) => {
                    if !probe.pop() {
                        return Err(PathRefused::Unresolvable(raw.to_string()));
                    }
                }
            }
        }
    }

    /// A path shown to the model: relative to the root.
    pub fn display(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&dir.path().join("ws")).unwrap();
        std::fs::create_dir(ws.root().join("sub")).unwrap();
        assert_eq!(ws.resolve("a.txt").unwrap(), ws.root().join("a.txt"));
        assert_eq!(ws.resolve("sub/../b").unwrap(), ws.root().join("b"));
        assert_eq!(
            ws.resolve("new/dir/c").unwrap(),
            ws.root().join("new/dir/c")
        );
        let inside = ws.root().join("sub/x").display().to_string();
        assert!(ws.resolve(&inside).is_ok());
        assert_eq!(ws.resolve("../x"), Err(PathRefused::Escapes("../x".into())));
        assert_eq!(
            ws.resolve("sub/../../x"),
            Err(PathRefused::Escapes("sub/../../x".into()))
        );
        assert!(matches!(
            ws.resolve("/etc/passwd"),
            Err(PathRefused::OutsideAbsolute { .. })
        ));
        assert_eq!(ws.resolve(""), Err(PathRefused::Empty));
        assert_eq!(ws.resolve("a\0b"), Err(PathRefused::Nul));
        std::os::unix::fs::symlink("/etc", ws.root().join("etc")).unwrap();
        assert_eq!(
            ws.resolve("etc/passwd"),
            Err(PathRefused::ThroughLink("etc/passwd".into()))
        );
        assert!(ws.resolve("etc/new-file").is_err());
        std::os::unix::fs::symlink("sub", ws.root().join("inner")).unwrap();
        assert!(ws.resolve("inner/x").is_ok());
        std::os::unix::fs::symlink("/nonexistent/zzz", ws.root().join("dangling")).unwrap();
        assert!(ws.resolve("dangling").is_err());
    }
}
