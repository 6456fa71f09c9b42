//! `cairn __sandbox-init`: runs first inside a bubblewrap sandbox, adds
//! Landlock to itself, then becomes the command (see
//! `cairn_tools::sandbox::landlock`). Not for people to call.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_tools::sandbox::landlock::{Enforcement, restrict};

/// Arguments of `cairn __sandbox-init`.
#[derive(clap::Args)]
pub struct Args {
    /// Print how much of Landlock was enforced (full, partial, none) and exit.
    #[arg(long)]
    probe: bool,
    /// A directory the command may write under.
    #[arg(long)]
    write: Vec<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Restricts this process, then execs the command (returns only on failure).
pub fn run(args: Args) -> ExitCode {
    let enforced = match restrict(&args.write) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cairn sandbox: {e}");
            return ExitCode::from(126);
        }
    };
    if args.probe {
        println!("{}", enforced.as_str());
        return ExitCode::SUCCESS;
    }
    if enforced == Enforcement::None {
        // Chosen only where the probe found Landlock: refuse rather than
        // run with one layer less than the server expects.
        eprintln!("cairn sandbox: Landlock was not enforced; refusing to run the command");
        return ExitCode::from(126);
    }
    let Some((program, rest)) = args.command.split_first() else {
        return ExitCode::from(126);
    };
    let err = std::process::Command::new(program).args(rest).exec();
    eprintln!("cairn sandbox: cannot run {program}: {err}");
    ExitCode::from(127)
}
