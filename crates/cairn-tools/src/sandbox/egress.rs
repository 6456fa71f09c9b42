//! The `workspace` profile's only way out. A sandboxed command has a network
//! namespace of its own (loopback only); inside it the sandbox's init
//! listens on 127.0.0.1:3128 and relays each connection over a Unix socket
//! bound into the sandbox to this proxy, which runs in the server. The
//! proxy speaks HTTP (`CONNECT`, and absolute-form requests for plain
//! `http://`) and SOCKS5, resolves names itself and connects only to
//! addresses `http_fetch` may reach — the address actually connected to is
//! the one checked, so no name can rebind to loopback between check and use.
//!
//! Why a proxy and not pasta/slirp4netns or a veth with nftables: the user
//! -mode stacks forward to any address the host reaches (the LAN, the
//! metadata service) with no filter of their own, and nftables needs root
//! in the host's namespace. A proxy works unprivileged, shares the one
//! address policy with `http_fetch`, and is what package managers, git and
//! curl already honour through `HTTPS_PROXY`/`ALL_PROXY`. What does not
//! honour a proxy (raw sockets, its own DNS) gets no network at all.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::net_guard::{FetchPolicy, Unusable};

/// Where the proxy's socket appears inside the sandbox.
pub const SOCKET_PATH: &str = "/run/cairn-egress.sock";
/// The address the sandbox's init listens on inside the sandbox.
pub const LISTEN: &str = "127.0.0.1:3128";

/// Where exceptions to the rules are configured, named in refusals.
const EXCEPTIONS: &str = "tools.sandbox.network_allow or the agent's network_allow";

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// One command's proxy: its socket and the task serving it; dropping it
/// stops both.
pub struct Egress {
    dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Egress {
    /// Starts a proxy for one command on a fresh socket, connectable only by
    /// `owner` (the uid commands run as).
    pub fn start(
        policy: Arc<FetchPolicy>,
        owner: Option<nix::unistd::Uid>,
    ) -> std::io::Result<Egress> {
        let dir = std::env::temp_dir().join(format!(
            "cairn-egress-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir(&dir)?;
        let made = (|| {
            use std::os::unix::fs::PermissionsExt;
            // Traversable, not listable: the socket's own mode admits.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
            let listener = UnixListener::bind(dir.join("s"))?;
            std::fs::set_permissions(dir.join("s"), std::fs::Permissions::from_mode(0o600))?;
            if let Some(uid) = owner {
                nix::unistd::chown(&dir.join("s"), Some(uid), None)
                    .map_err(std::io::Error::from)?;
            }
            Ok::<_, std::io::Error>(listener)
        })();
        let listener = match made {
            Ok(l) => l,
            Err(e) => {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::debug!(error = %e, "cannot remove an egress socket directory");
                }
                return Err(e);
            }
        };
        let task = tokio::spawn(accept(listener, policy));
        Ok(Egress { dir, task })
    }

    /// The socket on the host, bound into the sandbox at [`SOCKET_PATH`].
    pub fn socket(&self) -> PathBuf {
        self.dir.join("s")
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(dir = %self.dir.display(), error = %e, "cannot remove an egress socket directory");
        }
    }
}

/// The variables that point a command's tools at the proxy.
pub fn proxy_env() -> Vec<(String, String)> {
    let http = format!("http://{LISTEN}");
    let socks = format!("socks5h://{LISTEN}");
    let mut out = Vec::new();
    for (name, value) in [
        ("http_proxy", &http),
        ("https_proxy", &http),
        ("all_proxy", &socks),
    ] {
        out.push((name.to_string(), value.clone()));
        out.push((name.to_uppercase(), value.clone()));
    }
    for name in ["no_proxy", "NO_PROXY"] {
        out.push((name.to_string(), "localhost,127.0.0.1,::1".to_string()));
    }
    out
}

/// Serves connections until aborted; the connections are tasks of a set
/// this owns, so stopping the proxy (the command ended) ends them too, even
/// one whose far end would keep it open.
async fn accept(listener: UnixListener, policy: Arc<FetchPolicy>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    conns.spawn(serve(conn, policy.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the sandbox's egress proxy stopped accepting");
                    return;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve(conn: UnixStream, policy: Arc<FetchPolicy>) {
    let mut conn = BufReader::new(conn);
    let first = match conn.fill_buf().await {
        Ok([first, ..]) => *first,
        _ => return,
    };
    let outcome = if first == 5 {
        socks5(&mut conn, &policy).await
    } else {
        http(&mut conn, &policy).await
    };
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "a sandbox egress connection ended");
    }
}

/// Why a destination was not connected to.
enum Refused {
    /// The rules forbid every address it has.
    Policy(crate::net_guard::AddressRefused),
    /// It does not resolve or does not answer.
    Unreachable(String),
}

/// Resolves `host` and connects to the first address the policy permits.
async fn connect(host: &str, port: u16, policy: &FetchPolicy) -> Result<TcpStream, Refused> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match policy
        .resolve(host, port, "the sandbox's network", EXCEPTIONS)
        .await
    {
        Ok(a) => a,
        Err(Unusable::Unresolved(e)) => {
            return Err(Refused::Unreachable(format!("cannot resolve {host}: {e}")));
        }
        Err(Unusable::Refused(why)) => {
            tracing::info!(host, port, "sandbox egress refused: {why}");
            return Err(Refused::Policy(why));
        }
        Err(Unusable::NoAddress) => {
            return Err(Refused::Unreachable(format!("{host} has no address")));
        }
    };
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Interactive protocols (ssh over CONNECT, streamed answers)
                // must not wait on Nagle.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    Err(Refused::Unreachable(last))
}

async fn socks5(conn: &mut BufReader<UnixStream>, policy: &FetchPolicy) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    conn.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    conn.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        return conn.get_mut().write_all(&[5, 0xff]).await;
    }
    conn.get_mut().write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    conn.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            conn.read_exact(&mut a).await?;
            IpAddr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            conn.read_exact(&mut a).await?;
            IpAddr::from(a).to_string()
        }
        3 => {
            let len = conn.read_u8().await? as usize;
            let mut name = vec![0u8; len];
            conn.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return socks_reply(conn, 8).await,
    };
    let port = conn.read_u16().await?;
    if req[1] != 1 {
        // Only CONNECT: no BIND, no UDP.
        return socks_reply(conn, 7).await;
    }
    match connect(&host, port, policy).await {
        Ok(mut upstream) => {
            socks_reply(conn, 0).await?;
            relay(conn, &mut upstream).await
        }
        Err(Refused::Policy(_)) => socks_reply(conn, 2).await,
        Err(Refused::Unreachable(_)) => socks_reply(conn, 4).await,
    }
}

async fn socks_reply(conn: &mut BufReader<UnixStream>, code: u8) -> std::io::Result<()> {
    conn.get_mut()
        .write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
}

/// A parsed proxy request head.
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<String>,
}

async fn read_head(conn: &mut BufReader<UnixStream>) -> std::io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let Some((first, headers)) = lines.split_first() else {
        return Ok(None);
    };
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers: headers.to_vec(),
    }))
}

async fn http(conn: &mut BufReader<UnixStream>, policy: &FetchPolicy) -> std::io::Result<()> {
    let Some(head) = read_head(conn).await? else {
        return http_error(conn, "400 Bad Request", "not an HTTP proxy request").await;
    };
    if head.method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_host_port(&head.target, None) else {
            return http_error(conn, "400 Bad Request", "CONNECT needs host:port").await;
        };
        return match connect(&host, port, policy).await {
            Ok(mut upstream) => {
                conn.get_mut()
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await?;
                relay(conn, &mut upstream).await
            }
            Err(refused) => refuse(conn, refused).await,
        };
    }
    let Some(rest) = head.target.strip_prefix("http://") else {
        return http_error(
            conn,
            "400 Bad Request",
            "the proxy takes http:// URLs and CONNECT (https goes through CONNECT)",
        )
        .await;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((host, port)) = split_host_port(authority, Some(80)) else {
        return http_error(conn, "400 Bad Request", "bad host in the URL").await;
    };
    let mut upstream = match connect(&host, port, policy).await {
        Ok(u) => u,
        Err(refused) => return refuse(conn, refused).await,
    };
    let mut out = format!("{} {} {}\r\n", head.method, path, head.version);
    for h in &head.headers {
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "proxy-connection" | "proxy-authorization" | "connection"
        ) {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    // One request per connection: a second one on a kept-alive connection
    // would otherwise reach this host whatever its URL named.
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes()).await?;
    relay(conn, &mut upstream).await
}

async fn refuse(conn: &mut BufReader<UnixStream>, refused: Refused) -> std::io::Result<()> {
    match refused {
        Refused::Policy(why) => http_error(conn, "403 Forbidden", &why.to_string()).await,
        Refused::Unreachable(why) => http_error(conn, "502 Bad Gateway", &why).await,
    }
}

async fn http_error(
    conn: &mut BufReader<UnixStream>,
    status: &str,
    why: &str,
) -> std::io::Result<()> {
    let body = format!("cairn sandbox: {why}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(text.as_bytes()).await
}

/// `host:port`, `[v6]:port`, or a bare host with `default` as its port.
fn split_host_port(text: &str, default: Option<u16>) -> Option<(String, u16)> {
    let text = text.rsplit('@').next()?;
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default?,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((text.to_string(), default?)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// Copies both ways until either side closes; what the sandbox buffered
/// after its request head goes first.
async fn relay(conn: &mut BufReader<UnixStream>, upstream: &mut TcpStream) -> std::io::Result<()> {
    let buffered = conn.buffer().to_vec();
    if !buffered.is_empty() {
        upstream.write_all(&buffered).await?;
        conn.consume(buffered.len());
    }
    tokio::io::copy_bidirectional(conn.get_mut(), upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        assert_eq!(
            split_host_port("example.com:443", None),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("[::1]:8080", None),
            Some(("::1".into(), 8080))
        );
        assert_eq!(
            split_host_port("example.com", Some(80)),
            Some(("example.com".into(), 80))
        );
        assert_eq!(split_host_port("example.com", None), None);
        assert_eq!(split_host_port(":80", None), None);
        assert_eq!(split_host_port("a:b:c", None), None);
        assert_eq!(
            split_host_port("user:pw@example.com:81", None),
            Some(("example.com".into(), 81))
        );
    }
}
