//! Confinement of paths to a workspace directory.

use std::path::{Component, Path, PathBuf};

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
    pub fn relative(&self, raw: &str) -> Result<PathBuf, String> {
        if raw.is_empty() {
            return Err("path is empty".into());
        }
        if raw.contains('\0') {
            return Err("path contains a NUL byte".into());
        }
        let given = Path::new(raw);
        let relative = if given.is_absolute() {
            given.strip_prefix(&self.root).map_err(|_| {
                format!(
                    "{raw}: absolute paths outside the workspace are refused; use a path relative to the workspace ({})",
                    self.root.display()
                )
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
                        return Err(format!("{raw}: leaves the workspace (via \"..\"); refused"));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("{raw}: not a workspace path"));
                }
            }
        }
        Ok(clean)
    }

    /// Resolves a path the model gave to a location inside the workspace, or
    /// says why not. Relative paths are relative to the root; absolute paths
    /// must already point inside it; symlinks are followed and must stay in.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, String> {
        let full = self.root.join(self.relative(raw)?);
        self.check_links(raw, &full)?;
        Ok(full)
    }

    /// Follows symlinks along `full`: the deepest existing ancestor, once
    /// canonical, must still be inside the root.
    fn check_links(&self, raw: &str, full: &Path) -> Result<(), String> {
        let mut probe = full.to_path_buf();
        loop {
            match std::fs::symlink_metadata(&probe) {
                Ok(meta) => {
                    let real = probe.canonicalize().map_err(|_| {
                        if meta.file_type().is_symlink() {
                            format!("{raw}: is a symlink to a missing target; refused")
                        } else {
                            format!("{raw}: cannot be resolved")
                        }
                    })?;
                    if !real.starts_with(&self.root) {
                        return Err(format!(
                            "{raw}: resolves outside the workspace (through a symlink); refused"
                        ));
                    }
                    return Ok(());
                }
                Err(_) => {
                    if !probe.pop() {
                        return Err(format!("{raw}: cannot be resolved"));
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
        for bad in ["../x", "sub/../../x", "/etc/passwd", ""] {
            assert!(ws.resolve(bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/etc", ws.root().join("etc")).unwrap();
        assert!(ws.resolve("etc/passwd").unwrap_err().contains("symlink"));
        assert!(ws.resolve("etc/new-file").is_err());
        std::os::unix::fs::symlink("sub", ws.root().join("inner")).unwrap();
        assert!(ws.resolve("inner/x").is_ok());
        std::os::unix::fs::symlink("/nonexistent/zzz", ws.root().join("dangling")).unwrap();
        assert!(ws.resolve("dangling").is_err());
    }
}
