//! Listening beyond loopback: a key and TLS, or `--insecure` said out loud.
//! A single node serves TLS with given certificate files or one it makes
//! itself; plain HTTP to it gets nothing.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_testkit::{FakeLlm, ServerProcess};

use crate::*;

/// Starts `cmd` and returns it with its stderr up to "serving on".
fn started(mut cmd: std::process::Command) -> (std::process::Child, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (start, mut log) = (Instant::now(), String::new());
    while start.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("serving on") {
            return (child, log);
        }
    }
    kill9(&mut child);
    panic!("did not start:\n{log}");
}

#[test]
fn beyond_loopback_plain_http_is_refused_unless_insecure_which_is_said() {
    let h = home();
    let fake = FakeLlm::start();
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__API_KEY", "s3cret-key-for-the-test");
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let out = run(cmd, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("without TLS"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("--tls-self-signed"),
        "{}",
        describe(&out)
    );

    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__API_KEY", "s3cret-key-for-the-test");
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--insecure"]);
    let (mut child, log) = started(cmd);
    assert!(log.contains("--insecure"), "{log}");
    assert!(log.contains("serving on http://"), "{log}");
    kill9(&mut child);

    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__API_KEY", "s3cret-key-for-the-test");
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--tls-self-signed"]);
    let (mut child, log) = started(cmd);
    assert!(log.contains("serving on https://"), "{log}");
    assert!(!log.contains("--insecure"), "{log}");
    kill9(&mut child);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_certificate_is_made_once_and_serves_https_only() {
    let h = home();
    let fake = FakeLlm::start();
    let server = ServerProcess::start_with(h.anthropic(&fake), &["--tls-self-signed"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let cert_path = h.path().join("tls/cert.pem");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(h.path().join("tls/key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let pem = std::fs::read(&cert_path).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/api/v1/sessions", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the same port: no answer a client could use.
    let plain = server.url.replacen("https://", "http://", 1);
    let r = reqwest::Client::new()
        .get(format!("{plain}/api/v1/sessions"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    drop(server);
    // The next start reuses the certificate (clients keep trusting it).
    let again = ServerProcess::start_with(h.anthropic(&fake), &["--tls-self-signed"]);
    assert_eq!(std::fs::read(&cert_path).unwrap(), pem);
    drop(again);
}

#[test]
fn certificate_files_that_do_not_load_are_a_clear_error() {
    let h = home();
    let fake = FakeLlm::start();
    std::fs::write(h.path().join("bad.pem"), "not a certificate").unwrap();
    let cert = h.path().join("bad.pem");
    let mut cmd = h.anthropic(&fake);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&cert);
    let out = run(cmd, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("TLS certificate"),
        "{}",
        describe(&out)
    );
}
