//! systemd's notify protocol (`Type=notify`): `READY=1` once serving,
//! `WATCHDOG=1` at half the `WatchdogSec` interval, `STOPPING=1` on the way
//! out. A datagram to `$NOTIFY_SOCKET` each; written here rather than
//! pulled in as a crate because it is these few lines.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The notify socket systemd gave us, if any.
pub struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|p| !p.is_empty())?;
        let target = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, target })
    }

    /// Sends one state line; failures are logged, never fatal.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.target) {
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }

    /// Half of `$WATCHDOG_USEC`, when systemd asks for watchdog pings.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
