//! `cairn service install [--user]`: a systemd unit that keeps `cairn serve`
//! running — `Type=notify` (ready only once serving), a watchdog that
//! restarts a hung process, restart on failure, a stop timeout longer than
//! the shutdown grace so running steps can finish.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config;

/// Arguments of `cairn service`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(clap::Subcommand)]
enum ServiceCommand {
    /// Write the systemd unit for `cairn serve` and say how to start it.
    Install {
        /// A user unit (~/.config/systemd/user), no root needed; else a system unit (/etc/systemd/system).
        #[arg(long)]
        user: bool,
        /// Print the unit instead of writing it.
        #[arg(long)]
        print: bool,
    },
}

/// Seconds between watchdog pings systemd expects (cairn pings at half).
const WATCHDOG_SEC: u64 = 30;

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let ServiceCommand::Install { user, print } = args.command;
    let loaded = config::load()?;
    let exe = std::env::current_exe().context("cannot tell where the cairn binary is")?;
    let unit = unit_text(
        &exe,
        &loaded.home,
        loaded.config.server.shutdown_grace_s,
        user,
    );
    if print {
        print!("{unit}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = unit_path(user)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let same = std::fs::read_to_string(&path).is_ok_and(|old| old == unit);
    if same {
        println!("{} is up to date", path.display());
    } else {
        std::fs::write(&path, &unit).with_context(|| {
            format!(
                "cannot write {}{}",
                path.display(),
                if user {
                    ""
                } else {
                    " (a system unit needs root; or use --user)"
                }
            )
        })?;
        println!("wrote {}", path.display());
    }
    if !user && nix::unistd::geteuid().is_root() {
        sandbox_user()?;
    }
    let ctl = if user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    println!("start it now and at every boot:\n  {ctl} daemon-reload && {ctl} enable --now cairn");
    if user {
        println!("keep it running while you are logged out:\n  loginctl enable-linger $USER");
    }
    println!(
        "provider keys go in {} (mode 0600), one VAR=value per line",
        loaded.home.join("env").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A system unit runs `cairn serve` as root; its commands run as this
/// dedicated user, made here when missing (a system user: no home, no
/// login).
fn sandbox_user() -> Result<()> {
    use cairn_tools::sandbox::DEDICATED_USER;
    if nix::unistd::User::from_name(DEDICATED_USER)?.is_some() {
        println!("sandboxed commands run as {DEDICATED_USER}");
        return Ok(());
    }
    let status = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", DEDICATED_USER])
        .status()
        .context("cannot run useradd to create the user sandboxed commands run as")?;
    anyhow::ensure!(
        status.success(),
        "useradd {DEDICATED_USER} failed ({status}); create it by hand, or commands run as nobody"
    );
    println!("created the system user {DEDICATED_USER}: sandboxed commands run as it");
    Ok(())
}

fn unit_path(user: bool) -> Result<PathBuf> {
    if !user {
        return Ok(PathBuf::from("/etc/systemd/system/cairn.service"));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("systemd/user/cairn.service"))
}

fn unit_text(exe: &std::path::Path, home: &std::path::Path, grace_s: u64, user: bool) -> String {
    format!(
        "[Unit]
Description=cairn agent runtime (cairn serve)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exe} serve
Environment=CAIRN_HOME={home}
EnvironmentFile=-{env}
Restart=on-failure
RestartSec=5
WatchdogSec={WATCHDOG_SEC}
TimeoutStopSec={stop}
KillMode=mixed
# Per-command cgroups (process and memory limits) under cgroup v2.
Delegate=yes

[Install]
WantedBy={wanted}
",
        exe = exe.display(),
        home = home.display(),
        env = home.join("env").display(),
        stop = grace_s + 15,
        wanted = if user {
            "default.target"
        } else {
            "multi-user.target"
        },
    )
}
