//! `cairn-sandbox-init`: runs first inside a bubblewrap sandbox, adds
//! Landlock to itself, then becomes the command (see
//! `cairn_tools::sandbox::landlock`). A binary of its own, apart from
//! `cairn`, because it starts once per command: it parses its arguments by
//! hand and loads nothing else, so it costs a fraction of a millisecond
//! where starting the full `cairn` binary cost about fourteen.
//!
//! Usage: `cairn-sandbox-init [--probe] --write DIR... -- COMMAND ARGS...`

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_tools::sandbox::landlock::{Enforcement, restrict};

fn main() -> ExitCode {
    let mut probe = false;
    let mut write = Vec::new();
    let mut args = std::env::args_os().skip(1);
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--probe") => probe = true,
            Some("--write") => match args.next() {
                Some(dir) => write.push(PathBuf::from(dir)),
                None => return usage("--write needs a directory"),
            },
            Some("--") => {
                command.extend(args.by_ref());
                break;
            }
            _ => return usage(&format!("unknown argument {a:?}")),
        }
    }
    let enforced = match restrict(&write) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cairn sandbox: {e}");
            return ExitCode::from(126);
        }
    };
    if probe {
        println!("{}", enforced.as_str());
        return ExitCode::SUCCESS;
    }
    if enforced == Enforcement::None {
        // Chosen only where the probe found Landlock: refuse rather than
        // run with one layer less than the server expects.
        eprintln!("cairn sandbox: Landlock was not enforced; refusing to run the command");
        return ExitCode::from(126);
    }
    let Some((program, rest)) = command.split_first() else {
        return usage("no command after --");
    };
    let err = std::process::Command::new(program).args(rest).exec();
    eprintln!("cairn sandbox: cannot run {program:?}: {err}");
    ExitCode::from(127)
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "cairn-sandbox-init: {why}\nusage: cairn-sandbox-init [--probe] --write DIR... -- COMMAND ARGS..."
    );
    ExitCode::from(2)
}
