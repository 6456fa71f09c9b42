//! `cairn init`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::{config, secrets, wiring};

/// Arguments of `cairn init`.
#[derive(clap::Args)]
pub struct Args {
    /// Overwrite an existing cairn.toml.
    #[arg(long)]
    force: bool,
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let home = config::home_dir()?;
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    restrict(&home, 0o700);
    let path = home.join("cairn.toml");
    if path.exists() && !args.force {
        eprintln!(
            "{} already exists; leaving it as it is (use --force to overwrite)",
            path.display()
        );
    } else {
        std::fs::write(&path, crate::config_template::initial_config())
            .with_context(|| format!("writing {}", path.display()))?;
        restrict(&path, 0o600);
        eprintln!("wrote {}", path.display());
    }
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    drop(store);
    eprintln!("database {}", loaded.database().display());
    secrets::operator_key(&loaded)?;
    eprintln!(
        "operator key (needed to widen an agent's sandbox through the API): {}",
        secrets::operator_key_path(&loaded.home).display()
    );
    secrets::audit_key(&loaded)?;
    eprintln!(
        "audit key (seals the audit log; coordinators sharing a database share it): {}",
        secrets::audit_key_path(&loaded.home).display()
    );
    let ws = loaded.workspaces_dir().join("default");
    std::fs::create_dir_all(&ws).with_context(|| format!("creating {}", ws.display()))?;
    eprintln!("workspace of the default agent: {}", ws.display());
    match wiring::provider(&loaded) {
        Ok(p) => eprintln!(
            "model provider: {} ({})\n\nready: cairn run \"hello\"   or   cairn chat",
            p.name(),
            if p.default_model().is_empty() {
                "the server's first model"
            } else {
                p.default_model()
            }
        ),
        Err(e) => eprintln!("\nnext: {e}\nthen: cairn run \"hello\"   or   cairn chat"),
    }
    Ok(ExitCode::SUCCESS)
}

fn restrict(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
