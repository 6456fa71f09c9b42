//! Driving the `cairn` binary from tests: a throwaway `CAIRN_HOME` and a
//! command with a clean provider environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::FakeLlm;

/// Variables a developer's shell may carry that would leak into tests.
const PROVIDER_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
];

/// A temporary cairn home directory; removed when dropped.
pub struct CairnHome {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl CairnHome {
    /// A fresh, empty home for the binary at `bin`.
    pub fn new(bin: impl Into<PathBuf>) -> CairnHome {
        CairnHome {
            dir: tempfile::tempdir().unwrap(),
            bin: bin.into(),
        }
    }

    /// A fresh home under `parent` (tests that must not rely on the
    /// sandbox hiding /tmp put it elsewhere); falls back to the system's
    /// temporary directory when `parent` cannot be written.
    pub fn new_in(bin: impl Into<PathBuf>, parent: &Path) -> CairnHome {
        let dir = std::fs::create_dir_all(parent)
            .and_then(|_| {
                tempfile::Builder::new()
                    .prefix("cairn-home-")
                    .tempdir_in(parent)
            })
            .unwrap_or_else(|_| tempfile::tempdir().unwrap());
        CairnHome {
            dir,
            bin: bin.into(),
        }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `cairn.toml`, readable by its owner only (as cairn requires of
    /// a file that holds secrets).
    pub fn write_config(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path().join("cairn.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// The default agent's workspace.
    pub fn workspace(&self) -> PathBuf {
        self.path().join("workspaces").join("default")
    }

    /// `cairn` with `CAIRN_HOME` set and no provider variables.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("CAIRN_HOME", self.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("CAIRN_") && k != "CAIRN_HOME" {
                c.env_remove(k);
            }
        }
        for v in PROVIDER_VARS {
            c.env_remove(v);
        }
        c
    }

    /// `cairn` pointed at the fake's Anthropic endpoint.
    pub fn anthropic(&self, fake: &FakeLlm) -> Command {
        let mut c = self.cmd();
        c.env("ANTHROPIC_API_KEY", "sk-ant-test")
            .env("ANTHROPIC_BASE_URL", fake.anthropic_url());
        c
    }

    /// `cairn` pointed at the fake's OpenAI endpoint.
    pub fn openai(&self, fake: &FakeLlm) -> Command {
        let mut c = self.cmd();
        c.env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_BASE_URL", fake.openai_url());
        c
    }

    /// Runs `cmd` with `args`, returning its output.
    pub fn run(mut cmd: Command, args: &[&str]) -> Output {
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

/// Both streams of an output as text, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
