//! File access that cannot leave the workspace, even while something in
//! the workspace races to swap a directory for a symlink: every path is
//! walked from the workspace root one component at a time with
//! `openat(O_NOFOLLOW)`, so a symlink anywhere on the way is refused by the
//! kernel, not by an earlier check on a path that may since have changed.
//! Files are opened non-blocking and must be regular (a FIFO or a device
//! would hang or never end); temporary files are created with `O_EXCL`
//! under a random name.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

use crate::CappedOutput;

/// Why a workspace path could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// A component is a symlink.
    #[error("{0}: a symlink on the way; refused (the workspace is walked without following links)")]
    Symlink(String),
    /// Not a regular file.
    #[error("{0}: not a regular file")]
    NotRegular(String),
    /// Larger than the tool handles.
    #[error("{0}: larger than {1} bytes")]
    TooLarge(String, u64),
    /// Any other failure.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn io(path: &Path, e: impl Into<std::io::Error>) -> BeneathError {
    let e: std::io::Error = e.into();
    let shown = path.display().to_string();
    if e.raw_os_error() == Some(Errno::ELOOP as i32) {
        BeneathError::Symlink(shown)
    } else {
        BeneathError::Io(shown, e)
    }
}

/// Names the symlink when that is why an open failed (O_NOFOLLOW gives
/// ELOOP, or ENOTDIR together with O_DIRECTORY).
fn explain(dirfd: &OwnedFd, name: &OsStr, rel: &Path, e: Errno) -> BeneathError {
    if matches!(e, Errno::ELOOP | Errno::ENOTDIR)
        && let Ok(st) =
            nix::sys::stat::fstatat(dirfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        && SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
    {
        return BeneathError::Symlink(rel.display().to_string());
    }
    io(rel, e)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

/// Opens the directory `rel` (relative, already free of `..`) beneath
/// `root`, creating missing components when `create`.
pub fn open_dir(root: &Path, rel: &Path, create: bool) -> Result<OwnedFd, BeneathError> {
    let mut fd = nix::fcntl::open(root, DIR_FLAGS, Mode::empty()).map_err(|e| io(rel, e))?;
    for part in rel.components() {
        let Component::Normal(name) = part else {
            continue;
        };
        fd = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT) if create => {
                match mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(io(rel, e)),
                }
                let made = openat(&fd, name, DIR_FLAGS, Mode::empty()).map_err(|e| io(rel, e))?;
                inherit_owner(&fd, &made).map_err(|e| io(rel, e))?;
                made
            }
            Err(e) => return Err(explain(&fd, name, rel, e)),
        };
    }
    Ok(fd)
}

/// Gives what a root server creates in a workspace the owner of the
/// directory it is in, so the unprivileged user sandboxed commands run as
/// (who owns the workspace) can change it too.
fn inherit_owner(dir: &OwnedFd, made: &OwnedFd) -> Result<(), Errno> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let owner = nix::sys::stat::fstat(dir)?;
    if owner.st_uid == 0 {
        return Ok(());
    }
    nix::unistd::fchown(
        made,
        Some(nix::unistd::Uid::from_raw(owner.st_uid)),
        Some(nix::unistd::Gid::from_raw(owner.st_gid)),
    )
}

fn split(rel: &Path) -> Result<(&Path, &OsStr), BeneathError> {
    match (rel.parent(), rel.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(BeneathError::NotRegular(rel.display().to_string())),
    }
}

/// Opens the regular file `rel` beneath `root` for reading.
pub fn open_file(root: &Path, rel: &Path) -> Result<File, BeneathError> {
    let (dir, name) = split(rel)?;
    let dirfd = open_dir(root, dir, false)?;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd =
        openat(&dirfd, name, flags, Mode::empty()).map_err(|e| explain(&dirfd, name, rel, e))?;
    let st = fstat(&fd).map_err(|e| io(rel, e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(BeneathError::NotRegular(rel.display().to_string()));
    }
    Ok(File::from(fd))
}

/// Reads at most the head and tail `limit` keeps of a regular file.
pub fn read_capped(root: &Path, rel: &Path, limit: usize) -> Result<CappedOutput, BeneathError> {
    let mut file = open_file(root, rel)?;
    let len = file.metadata().map_err(|e| io(rel, e))?.len();
    let mut out = CappedOutput::new(limit);
    let half = (limit / 2) as u64;
    if len <= limit as u64 {
        let mut bytes = Vec::with_capacity(len as usize);
        // `take`: a file that grows while read still yields a bounded read.
        (&mut file)
            .take(limit as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| io(rel, e))?;
        out.push(&bytes);
        return Ok(out);
    }
    let mut head = vec![0u8; half as usize];
    file.read_exact(&mut head).map_err(|e| io(rel, e))?;
    file.seek(SeekFrom::Start(len - half))
        .map_err(|e| io(rel, e))?;
    let mut tail = Vec::with_capacity(half as usize);
    file.take(half)
        .read_to_end(&mut tail)
        .map_err(|e| io(rel, e))?;
    out.push(&head);
    out.skip(len - 2 * half);
    out.push(&tail);
    Ok(out)
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read_all(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, BeneathError> {
    let file = open_file(root, rel)?;
    let len = file.metadata().map_err(|e| io(rel, e))?.len();
    if len > max {
        return Err(BeneathError::TooLarge(rel.display().to_string(), max));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(rel, e))?;
    if bytes.len() as u64 > max {
        return Err(BeneathError::TooLarge(rel.display().to_string(), max));
    }
    Ok(bytes)
}

/// Replaces `rel` with `bytes` through a temporary file (created with
/// O_EXCL under a random name) and a rename in the same directory, so a
/// crash never leaves a half-written file and no name can be pre-planted.
pub fn write_atomic(root: &Path, rel: &Path, bytes: &[u8]) -> Result<(), BeneathError> {
    let (dir, name) = split(rel)?;
    let dirfd = open_dir(root, dir, true)?;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let (tmp, fd) = loop {
        let tmp = format!(
            ".{}.cairn-tmp-{:016x}",
            name.to_string_lossy(),
            fastrand::u64(..)
        );
        match openat(&dirfd, tmp.as_str(), flags, Mode::from_bits_truncate(0o644)) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(io(rel, e)),
        }
    };
    inherit_owner(&dirfd, &fd).map_err(|e| io(rel, e))?;
    let mut file = File::from(fd);
    let written = file.write_all(bytes).and_then(|_| file.sync_data());
    let result = written
        .map_err(|e| io(rel, e))
        .and_then(|_| renameat(&dirfd, tmp.as_str(), &dirfd, name).map_err(|e| io(rel, e)));
    if result.is_err()
        && let Err(e) = nix::unistd::unlinkat(
            &dirfd,
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
    {
        tracing::warn!(file = %tmp, error = %e, "cannot remove a temporary file");
    }
    result
}

/// One entry of a directory listing.
pub struct Entry {
    /// File name.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
}

/// Kinds shown by `list_dir`.
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of this size.
    File(u64),
    /// A symlink (not followed).
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// Lists the directory `rel` beneath `root`, entries not followed.
pub fn list(root: &Path, rel: &Path) -> Result<Vec<Entry>, BeneathError> {
    let fd = open_dir(root, rel, false)?;
    // A second descriptor of the same directory to stat entries through
    // while the first is being iterated.
    let dirfd = fd.try_clone().map_err(|e| io(rel, e))?;
    let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| io(rel, e))?;
    let mut out = Vec::new();
    for entry in dir.iter() {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let kind = match nix::sys::stat::fstatat(
            &dirfd,
            entry.file_name(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => EntryKind::Dir,
                SFlag::S_IFREG => EntryKind::File(st.st_size as u64),
                SFlag::S_IFLNK => EntryKind::Symlink,
                _ => EntryKind::Other,
            },
            Err(_) => EntryKind::Other,
        };
        out.push(Entry { name, kind });
    }
    Ok(out)
}
