//! `cairn-sandbox-init`: runs first inside a bubblewrap sandbox, adds
//! Landlock to itself, starts the relay to the egress proxy when the
//! sandbox has network, then becomes the command (see
//! `cairn_tools::sandbox::landlock` and `cairn_tools::sandbox::egress`). A
//! binary of its own, apart from `cairn`, because it starts once per
//! command: it parses its arguments by hand and loads nothing else, so it
//! costs a fraction of a millisecond where starting the full `cairn` binary
//! cost about fourteen.
//!
//! Usage: `cairn-sandbox-init [--probe] [--landlock] [--egress SOCKET]
//! [--user UID:GID] --write DIR... -- COMMAND ARGS...`

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_tools::sandbox::egress::LISTEN;
use cairn_tools::sandbox::landlock::{Enforcement, restrict};

#[derive(Default)]
struct Args {
    probe: bool,
    landlock: bool,
    egress: Option<PathBuf>,
    user: Option<(u32, u32)>,
    write: Vec<PathBuf>,
    command: Vec<std::ffi::OsString>,
}

fn parse() -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--probe") => out.probe = true,
            Some("--landlock") => out.landlock = true,
            Some("--write") => match args.next() {
                Some(dir) => out.write.push(PathBuf::from(dir)),
                None => return Err("--write needs a directory".into()),
            },
            Some("--egress") => match args.next() {
                Some(sock) => out.egress = Some(PathBuf::from(sock)),
                None => return Err("--egress needs a socket".into()),
            },
            Some("--user") => {
                let ids = args.next().and_then(|v| {
                    let v = v.to_str()?.to_string();
                    let (u, g) = v.split_once(':')?;
                    Some((u.parse().ok()?, g.parse().ok()?))
                });
                match ids {
                    Some((0, _)) | Some((_, 0)) => return Err("--user must not be root".into()),
                    Some(ids) => out.user = Some(ids),
                    None => return Err("--user needs UID:GID".into()),
                }
            }
            Some("--") => {
                out.command.extend(args.by_ref());
                break;
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(why) => return usage(&why),
    };
    // Bound before anything else so the command never starts before the
    // proxy address answers.
    let relay = match &args.egress {
        Some(sock) => match std::net::TcpListener::bind(LISTEN) {
            Ok(l) => Some((l, sock.clone())),
            Err(e) => {
                eprintln!("cairn sandbox: cannot listen on {LISTEN} for the egress proxy: {e}");
                return ExitCode::from(126);
            }
        },
        None => None,
    };
    if let Some((uid, gid)) = args.user
        && let Err(e) = drop_to(uid, gid)
    {
        eprintln!("cairn sandbox: cannot become uid {uid}: {e}");
        return ExitCode::from(126);
    }
    if args.probe || args.landlock {
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
            // Asked for only where the probe found Landlock: refuse rather
            // than run with one layer less than the server expects.
            eprintln!("cairn sandbox: Landlock was not enforced; refusing to run the command");
            return ExitCode::from(126);
        }
    }
    if let Some((listener, sock)) = relay
        && let Err(e) = relay::start(listener, sock)
    {
        eprintln!("cairn sandbox: cannot start the egress relay: {e}");
        return ExitCode::from(126);
    }
    let Some((program, rest)) = args.command.split_first() else {
        return usage("no command after --");
    };
    let err = std::process::Command::new(program).args(rest).exec();
    eprintln!("cairn sandbox: cannot run {program:?}: {err}");
    ExitCode::from(127)
}

/// Gives up root for good: no supplementary groups, then the group, then
/// the user (which clears every capability the sandbox left this process).
fn drop_to(uid: u32, gid: u32) -> nix::Result<()> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[])?;
    setresgid(gid, gid, gid)?;
    setresuid(uid, uid, uid)?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(nix::errno::Errno::EPERM);
    }
    Ok(())
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "cairn-sandbox-init: {why}\nusage: cairn-sandbox-init [--probe] [--landlock] [--egress SOCKET] [--user UID:GID] --write DIR... -- COMMAND ARGS..."
    );
    ExitCode::from(2)
}

/// The relay from the sandbox's 127.0.0.1:3128 to the proxy's Unix socket:
/// a process of its own, reparented to the sandbox's init, so the command
/// (which this process becomes) neither waits for it nor sees it as a child.
mod relay {
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;

    use nix::sys::wait::waitpid;
    use nix::unistd::{ForkResult, fork};

    /// Forks twice; the grandchild relays for as long as the command (or
    /// anything it started that kept the lifeline) lives. The sandbox's
    /// pid 1 waits for every process before it exits, so a relay outliving
    /// the command would keep the sandbox up after the command is gone.
    pub fn start(listener: TcpListener, sock: PathBuf) -> std::io::Result<()> {
        use std::os::fd::AsFd;
        // The command keeps the write end (inherited across exec); the
        // relay reads EOF once every holder is gone.
        let (alive_r, alive_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        match fork_here()? {
            ForkResult::Parent { child } => {
                drop(alive_r);
                waitpid(child, None).map_err(std::io::Error::from)?;
                nix::fcntl::fcntl(
                    alive_w.as_fd(),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
                // Left open on purpose: this process becomes the command.
                let _lifeline = std::os::fd::IntoRawFd::into_raw_fd(alive_w);
                Ok(())
            }
            ForkResult::Child => {
                if let Ok(ForkResult::Child) = fork_here() {
                    drop(alive_w);
                    quiet();
                    std::thread::spawn(move || {
                        let mut byte = [0u8; 1];
                        // Blocks until EOF (or an error): the command is gone.
                        let _ = nix::unistd::read(&alive_r, &mut byte);
                        std::process::exit(0);
                    });
                    serve(listener, sock);
                }
                std::process::exit(0);
            }
        }
    }

    // The one unsafe block: fork(2) is sound here because this process is
    // single-threaded (nothing has spawned a thread yet), so no lock can be
    // held by a thread that the child lacks.
    #[allow(unsafe_code)]
    fn fork_here() -> std::io::Result<ForkResult> {
        // SAFETY: single-threaded at this point; see above.
        unsafe { fork() }.map_err(std::io::Error::from)
    }

    /// The relay holds none of the command's output pipes open: a reader
    /// waiting for the command's end of output must not wait for the relay.
    fn quiet() {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            // Failures leave a descriptor open, which only delays EOF.
            let _ = nix::unistd::dup2_stdin(&null);
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
        }
    }

    fn serve(listener: TcpListener, sock: PathBuf) {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sock = sock.clone();
            std::thread::spawn(move || {
                if let Ok(up) = UnixStream::connect(&sock) {
                    pipe(conn, up);
                }
            });
        }
    }

    /// Copies both ways; each direction's end is passed on as a shutdown.
    fn pipe(conn: TcpStream, up: UnixStream) {
        let (Ok(mut conn_r), Ok(mut up_r)) = (conn.try_clone(), up.try_clone()) else {
            return;
        };
        let (mut conn_w, mut up_w) = (conn, up);
        let back = std::thread::spawn(move || {
            let _ = std::io::copy(&mut up_r, &mut conn_w);
            let _ = conn_w.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut conn_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
        let _ = back.join();
    }
}
