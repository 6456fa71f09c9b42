//! `cairn migrate --to postgres://…`: a SQLite deployment moves to
//! PostgreSQL with every session, run, journal, memory and schedule; the
//! file is left as it was; a copy killed with SIGKILL resumes and ends equal
//! to its source; a non-empty target is refused without --force.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply, ServerProcess, TestDatabase};
use sha2::Digest;

use crate::api::Api;
use crate::*;

fn file_hash(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!("{:x}", sha2::Sha256::digest(&bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_moves_to_postgres_and_carries_on_there() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("Noted: the boiler is serviced in May.")]);
    ok(
        h.anthropic(&fake),
        &[
            "run",
            "--session",
            "house",
            "The boiler is serviced in May.",
        ],
    );
    ok(
        h.cmd(),
        &["memory", "save", "The boiler is serviced every May."],
    );
    ok(
        h.cmd(),
        &["schedule", "add", "--every", "1h", "Check the boiler log."],
    );
    let db_file = h.path().join("cairn.db");
    let before = file_hash(&db_file);

    let pg = TestDatabase::create().await;
    let out = ok(h.cmd(), &["migrate", "--to", pg.url()]);
    let said = stderr(&out);
    assert!(said.contains("counts and checksums match"), "{said}");
    assert!(
        said.contains("messages"),
        "shows progress per table: {said}"
    );
    assert_eq!(file_hash(&db_file), before, "the SQLite file is only read");

    let again = run(h.cmd(), &["migrate", "--to", pg.url()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = ok(h.cmd(), &["migrate", "--to", pg.url(), "--force"]);
    assert!(stderr(&forced).contains("counts and checksums match"));

    // A new host with nothing but the database URL continues the session.
    let other = home();
    let mut cmd = other.anthropic(&fake);
    cmd.args(["--database", pg.url()]);
    let server = ServerProcess::start(cmd);
    let api = Api::new(&server);
    fake.push([Reply::text("In May.")]);
    let done = api.turn("house", "When is the boiler serviced?").await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let sent = fake.requests().pop().unwrap().body.to_string();
    assert!(sent.contains("The boiler is serviced in May."), "{sent}");
    let mut with_pg = other.cmd();
    with_pg.env("CAIRN_DATABASE_URL", pg.url());
    let facts = stdout(&ok(with_pg, &["memory", "list"]));
    assert!(facts.contains("every May"), "{facts}");
    let mut with_pg = other.cmd();
    with_pg.env("CAIRN_DATABASE_URL", pg.url());
    let schedules = stdout(&ok(with_pg, &["schedule", "list"]));
    assert!(schedules.contains("Check the boiler log."), "{schedules}");
}

/// A home whose database holds `n` messages, written straight into the
/// file (setting up a big deployment through turns would take minutes).
async fn big_home(n: usize) -> cairn_testkit::CairnHome {
    let h = home();
    ok(h.cmd(), &["status"]);
    let url = format!("sqlite://{}", h.path().join("cairn.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("INSERT INTO sessions (id, agent, version, created_at, updated_at) VALUES ('big', 'default', 0, 0, 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    let content =
        serde_json::to_string(&cairn_core::Message::user_text("a line of history")).unwrap();
    let mut tx = <sqlx::SqliteConnection as sqlx::Connection>::begin(&mut conn)
        .await
        .unwrap();
    for seq in 1..=n {
        sqlx::query("INSERT INTO messages (session_id, seq, run_id, role, content, created_at) VALUES ('big', ?, NULL, 'user', ?, 0)")
            .bind(seq as i64)
            .bind(&content)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_at_a_random_point_resumes_and_equals_its_source() {
    const N: usize = 60_000;
    let h = big_home(N).await;
    let pg = TestDatabase::create().await;
    let mut child = h
        .cmd()
        .args(["migrate", "--to", pg.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the messages to start moving, then a random while more.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("messages") {
        let n = stderr_pipe.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "migrate ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(Duration::from_millis(fastrand::u64(50..400)));
    kill9(&mut child);

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(pg.url())
        .await
        .unwrap();
    let copied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(copied < N as i64, "killed mid-copy ({copied} of {N})");
    let interrupted: bool =
        sqlx::query_scalar("SELECT to_regclass('cairn_migrate_progress') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(interrupted);

    let resumed = ok(h.cmd(), &["migrate", "--to", pg.url()]);
    assert!(
        stderr(&resumed).contains("counts and checksums match"),
        "{}",
        stderr(&resumed)
    );
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(total, N as i64, "every row once");
    let distinct: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT seq) FROM messages WHERE session_id = 'big'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(distinct, N as i64);
}
