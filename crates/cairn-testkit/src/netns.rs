//! A "public" host for tests and benchmarks that have no internet: a
//! network namespace with a web server on a public address, reached from
//! the host over a veth pair. Needs root and iproute2 (`ip`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A web server on a public address; the namespace goes when dropped.
pub struct PublicHost {
    ns: String,
    /// Its address (in 11.0.0.0/8: public space no test machine routes to).
    pub addr: String,
    server: Child,
}

fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split(' '))
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {args}: {} (this needs root and iproute2)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PublicHost {
    /// Serves `dir` at `http://<addr>:8080/` with Python's http.server;
    /// `tag` (1..=250) keeps concurrent hosts apart.
    pub fn start(dir: &Path, tag: u32) -> PublicHost {
        let tag = tag % 250 + 1;
        let ns = format!("cairn-pub-{}-{tag}", std::process::id());
        let suffix = format!("{}{tag}", std::process::id() % 10_000);
        let (host_if, ns_if) = (format!("cph{suffix}"), format!("cpn{suffix}"));
        let (host_addr, addr) = (format!("11.77.{tag}.1"), format!("11.77.{tag}.2"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&format!("netns add {ns}"));
        ip(&format!("link add {host_if} type veth peer name {ns_if}"));
        ip(&format!("link set {ns_if} netns {ns}"));
        ip(&format!("addr add {host_addr}/30 dev {host_if}"));
        ip(&format!("link set {host_if} up"));
        ip(&format!(
            "netns exec {ns} ip addr add {addr}/30 dev {ns_if}"
        ));
        ip(&format!("netns exec {ns} ip link set {ns_if} up"));
        ip(&format!("netns exec {ns} ip link set lo up"));
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server"])
            .args(["--bind", &addr, "8080", "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let url = format!("{addr}:8080");
        let start = Instant::now();
        while std::net::TcpStream::connect(&url).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the public host's server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PublicHost { ns, addr, server }
    }
}

impl Drop for PublicHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}
