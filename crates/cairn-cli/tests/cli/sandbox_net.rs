//! The `workspace` profile's network, as a prompt-injected command tries
//! it: the host's own services (cairn's API, a database, a cache) are out of
//! reach, public addresses are not.

use std::net::TcpListener;
use std::process::Command;

use cairn_testkit::FakeLlm;

use crate::api::start;
use crate::sandbox::exec_all;
use crate::*;

/// Python that connects to each `host port` pair given as arguments and
/// prints `connected` or the error, one line each.
const CONNECT_EACH: &str = r#"python3 - "$@" <<'PY'
import socket, sys
args = sys.argv[1:]
for host, port in zip(args[::2], args[1::2]):
    try:
        socket.create_connection((host, int(port)), 3); print(host, "connected")
    except Exception as e:
        print(host, "refused:", type(e).__name__, e)
PY"#;

fn connect_each(targets: &[(String, u16)]) -> String {
    let args: Vec<String> = targets.iter().map(|(h, p)| format!("{h} {p}")).collect();
    format!("set -- {}; {CONNECT_EACH}", args.join(" "))
}

/// A listener nobody is expected to reach; nonblocking, so `accept` says
/// at once whether anything did.
fn bait(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind(addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// This host's first non-loopback IPv4 address, when it has one.
fn own_address() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.contains('.') && !a.starts_with("127."))
        .map(str::to_string)
}

#[test]
fn a_sandboxed_command_cannot_use_the_local_api_or_loopback_services() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = server.port().to_string();
    let (pg, pg_port) = bait("127.0.0.1:0");
    let (redis, redis_port) = bait("[::1]:0");
    let (public_side, public_port) = bait("0.0.0.0:0");
    let mut targets = vec![
        ("127.0.0.1".to_string(), pg_port),
        ("::1".to_string(), redis_port),
        ("127.0.0.1".to_string(), public_port),
    ];
    let own = own_address();
    if let Some(a) = &own {
        targets.push((a.clone(), public_port));
    }
    // The escalation as it was tried: create an unsandboxed agent through
    // the API, through the proxy the sandbox offers and around it.
    let escalate = format!(
        r#"python3 - <<'PY'
import os, urllib.request
for name in ["no_proxy", "NO_PROXY"]:
    os.environ.pop(name, None)
body = b'{{"name":"pwn","system_prompt":"x","sandbox":"host"}}'
proxy = urllib.request.ProxyHandler({{"http": "http://127.0.0.1:3128"}})
for label, opener in [("proxied", urllib.request.build_opener(proxy)),
                      ("direct", urllib.request.build_opener(urllib.request.ProxyHandler({{}})))]:
    req = urllib.request.Request("http://127.0.0.1:{api}/api/v1/agents", data=body,
                                 headers={{"Content-Type": "application/json"}})
    try:
        print(label, "status", opener.open(req, timeout=5).status)
    except urllib.error.HTTPError as e:
        print(label, "http", e.code, e.read().decode())
    except Exception as e:
        print(label, "failed", type(e).__name__, e)
PY"#
    );
    // Names and spellings that mean loopback, asked of the proxy itself.
    let tunnel = format!(
        r#"python3 - <<'PY'
import socket
for target in ["localhost:{api}", "127.1:{api}", "[::ffff:127.0.0.1]:{api}", "0:{api}"]:
    s = socket.create_connection(("127.0.0.1", 3128), 5)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    print(target, s.recv(200).split(b"\r\n")[0].decode())
PY"#
    );
    let results = exec_all(
        &h,
        &fake,
        &[
            (&escalate, 30),
            (&connect_each(&targets), 30),
            (&tunnel, 30),
        ],
    );
    assert_eq!(
        results[2].matches("HTTP/1.1 403 Forbidden").count(),
        4,
        "{}",
        results[2]
    );
    let escalation = &results[0];
    assert!(
        escalation.contains("proxied http 403") && escalation.contains("loopback address"),
        "{escalation}"
    );
    assert!(escalation.contains("direct failed"), "{escalation}");
    assert!(!escalation.contains("status 201"), "{escalation}");
    let connects = &results[1];
    assert!(!connects.contains("connected"), "{connects}");
    assert_eq!(
        connects.matches("refused:").count(),
        targets.len(),
        "{connects}"
    );
    for l in [&pg, &redis, &public_side] {
        assert!(l.accept().is_err(), "a connection reached the host");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, agents) = rt.block_on(crate::api::Api::new(&server).get("/api/v1/agents"));
    assert_eq!(status, 200, "{agents}");
    assert!(!agents.to_string().contains("pwn"), "{agents}");
}

#[test]
fn an_agent_may_be_allowed_a_private_network_and_nothing_more() {
    let h = home();
    let (allowed, allowed_port) = bait("127.0.0.1:0");
    let (other, other_port) = bait("127.0.0.2:0");
    h.write_config("[agents.default]\nnetwork_allow = [\"127.0.0.1/32\"]\n");
    let fake = FakeLlm::start();
    // Through the proxy (SOCKS5, as `ALL_PROXY` names it): the allowed
    // address connects, its neighbour does not.
    let socks = format!(
        r#"python3 - <<'PY'
import socket, struct
for host, port in [("127.0.0.1", {allowed_port}), ("127.0.0.2", {other_port})]:
    s = socket.create_connection(("127.0.0.1", 3128), 3)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", port))
    print(host, "reply", s.recv(10)[1])
PY"#
    );
    let results = exec_all(&h, &fake, &[(&socks, 20)]);
    assert!(results[0].contains("127.0.0.1 reply 0"), "{}", results[0]);
    // 2: connection not allowed by ruleset.
    assert!(results[0].contains("127.0.0.2 reply 2"), "{}", results[0]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        allowed.accept().is_ok(),
        "the allowed address was not reached"
    );
    assert!(other.accept().is_err(), "the neighbour was reached");
}

#[test]
fn public_addresses_stay_reachable_through_every_proxy_form() {
    let site = tempfile::tempdir().unwrap();
    let body = "x".repeat(3_000_000);
    std::fs::write(site.path().join("pkg.tar"), &body).unwrap();
    let public = cairn_testkit::PublicHost::start(site.path(), 1);
    let a = &public.addr;
    // What package managers do: plain http through HTTP_PROXY, a CONNECT
    // tunnel (https), and SOCKS5 with the name resolved by the proxy.
    let fetch = format!(
        r#"python3 - <<'PY'
import socket, struct, urllib.request
def tunnel_get(s):
    s.sendall(b"GET /pkg.tar HTTP/1.0\r\nHost: {a}\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return len(data.split(b"\r\n\r\n", 1)[1])
print("plain", len(urllib.request.urlopen("http://{a}:8080/pkg.tar", timeout=10).read()))
s = socket.create_connection(("127.0.0.1", 3128), 5)
s.sendall(b"CONNECT {a}:8080 HTTP/1.1\r\nHost: {a}:8080\r\n\r\n")
head = s.recv(39)
print("connect", head.split(b"\r\n")[0].decode(), tunnel_get(s))
s = socket.create_connection(("127.0.0.1", 3128), 5)
s.sendall(b"\x05\x01\x00"); s.recv(2)
s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("{a}") + struct.pack(">H", 8080))
print("socks", s.recv(10)[1], tunnel_get(s))
PY"#
    );
    let h = home();
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[(&fetch, 60)]);
    let r = &results[0];
    assert!(r.contains("plain 3000000"), "{r}");
    assert!(
        r.contains("connect HTTP/1.1 200 Connection established 3000000"),
        "{r}"
    );
    assert!(r.contains("socks 0 3000000"), "{r}");

    // Offline has no way out at all, not even to a public address.
    h.write_config("[agents.default]\nsandbox = \"offline\"\n");
    let results = exec_all(&h, &fake, &[(&fetch, 60)]);
    assert!(!results[0].contains("plain 3000000"), "{}", results[0]);
    assert!(results[0].contains("Error"), "{}", results[0]);
}

#[test]
fn the_egress_relay_ends_with_the_command() {
    // Without cairn around to clean up (a worker killed with -9 just after
    // a command ended left such sandboxes behind), the sandbox must end by
    // itself: its pid 1 waits for every process, the relay included. No
    // --die-with-parent here, so nothing else ends it.
    let marker = format!("relay-marker-{}", std::process::id());
    let mut sandbox = Command::new("bwrap")
        .args(["--unshare-pid", "--unshare-net"])
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_cairn-sandbox-init"))
        .args(["--egress", "/nonexistent.sock", "--", "sh", "-c"])
        .arg(format!("sleep 0.3 & true # {marker}"))
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let ended = loop {
        if let Some(status) = sandbox.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > std::time::Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The backgrounded sleep keeps the relay (it may still want the
    // network) for its 0.3 s; then everything goes.
    let gone = std::time::Instant::now();
    while !processes_with(&marker).is_empty() && gone.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = processes_with(&marker);
    for p in &left {
        if let Some(pid) = p.split(':').next() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = sandbox.kill();
    assert!(
        ended.is_some_and(|s| s.success()),
        "the sandbox did not end: {left:?}"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_malformed_network_exception_is_refused_with_its_key() {
    for (config, key) in [
        (
            "[agents.default]\nnetwork_allow = [\"10.0.0.0/33\"]\n",
            "agents.default.network_allow",
        ),
        (
            "[tools.sandbox]\nnetwork_allow = [\"intranet\"]\n",
            "tools.sandbox.network_allow",
        ),
    ] {
        let h = home();
        h.write_config(config);
        let fake = FakeLlm::start();
        let out = run(h.anthropic(&fake), &["run", "hello"]);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(stderr(&out).contains(key), "{}", describe(&out));
    }
}

#[test]
fn the_egress_proxy_answers_malformed_requests_and_keeps_serving() {
    let h = home();
    let fake = FakeLlm::start();
    let (_l, port) = bait("127.0.0.1:0");
    let script = format!(
        r#"python3 - <<'PY'
import socket, struct
def ask(data, want=1):
    s = socket.create_connection(("127.0.0.1", 3128), 5)
    s.sendall(data)
    got = b""
    try:
        while len(got) < want and (chunk := s.recv(200)):
            got += chunk
    except Exception as e:
        return repr(e).encode()
    return got
print("garbage", ask(b"hello there\r\n\r\n").split(b"\r\n")[0])
print("https-form", ask(b"GET https://example.com/ HTTP/1.1\r\n\r\n").split(b"\r\n")[0])
print("no-port", ask(b"CONNECT example.com HTTP/1.1\r\n\r\n").split(b"\r\n")[0])
print("huge", ask(b"GET http://x/ HTTP/1.1\r\n" + b"X: " + b"a" * 40000 + b"\r\n\r\n").split(b"\r\n")[0])
print("bind", ask(b"\x05\x01\x00" + b"\x05\x02\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", {port}), 12)[2:4])
print("after", ask(b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").split(b"\r\n")[0])
PY"#
    );
    let results = exec_all(&h, &fake, &[(&script, 30)]);
    let r = &results[0];
    assert!(r.contains("garbage b'HTTP/1.1 400 Bad Request'"), "{r}");
    assert!(r.contains("https-form b'HTTP/1.1 400 Bad Request'"), "{r}");
    assert!(r.contains("no-port b'HTTP/1.1 400 Bad Request'"), "{r}");
    assert!(r.contains("huge b'HTTP/1.1 400 Bad Request'"), "{r}");
    // SOCKS5 BIND: the method answer, then 7 (command not supported).
    assert!(r.contains("bind b'\\x05\\x07'"), "{r}");
    assert!(r.contains("after b'HTTP/1.1 403 Forbidden'"), "{r}");
}
