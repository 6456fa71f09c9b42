//! `cairn serve` on PostgreSQL: state outlives its host. A server is
//! killed with SIGKILL and another, with a home of its own (another host),
//! continues the session from the database alone. Bad databases are
//! refused with a clear message and a non-zero exit.

use cairn_testkit::{CairnHome, FakeLlm, Reply, ServerProcess, TestDatabase};

use crate::api::Api;
use crate::*;

fn serve_on(h: &CairnHome, fake: &FakeLlm, url: &str) -> ServerProcess {
    let mut cmd = h.anthropic(fake);
    cmd.args(["--database", url]);
    ServerProcess::start(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continues_on_another_host_after_the_first_is_killed() {
    let db = TestDatabase::create().await;
    let fake = FakeLlm::start();
    let first_host = home();
    let mut first = serve_on(&first_host, &fake, db.url());
    let api = Api::new(&first);
    api.session("s1").await;
    fake.push([Reply::text("Noted: the launch is on Thursday.")]);
    let done = api.turn("s1", "The launch is on Thursday.").await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    first.kill9();

    // Another host on the same database seals the same audit chain.
    let second_host = home();
    std::fs::copy(
        first_host.path().join("audit.key"),
        second_host.path().join("audit.key"),
    )
    .unwrap();
    let second = serve_on(&second_host, &fake, db.url());
    let api = Api::new(&second);
    let (_, messages) = api.get("/api/v1/sessions/s1/messages").await;
    assert_eq!(messages.as_array().unwrap().len(), 2, "{messages}");
    fake.push([Reply::text("Thursday.")]);
    let done = api.turn("s1", "When is the launch?").await;
    assert_eq!(done["run"]["output"], "Thursday.", "{done}");
    let last = fake.requests().pop().unwrap();
    let sent = last.body.to_string();
    assert!(
        sent.contains("The launch is on Thursday."),
        "the model sees the history: {sent}"
    );
    let (_, runs) = api.get("/api/v1/runs?session=s1").await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "completed"),
        "{runs}"
    );
    // The CLI reads the same database from a third home.
    let third = home();
    let mut cmd = third.cmd();
    cmd.env("CAIRN_DATABASE_URL", db.url());
    let listed = ok(cmd, &["sessions", "list"]);
    assert!(stdout(&listed).contains("s1"), "{}", stdout(&listed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_databases_are_refused_clearly() {
    let h = home();
    let unreachable = run(
        h.cmd(),
        &["doctor", "--database", "postgres://cairn@127.0.0.1:1/cairn"],
    );
    assert!(!unreachable.status.success());
    let text = stdout(&unreachable) + &stderr(&unreachable);
    assert!(text.contains("127.0.0.1:1"), "names the target: {text}");

    let admin = cairn_testkit::postgres_admin_url();
    let wrong_password = run(h.cmd(), &["doctor", "--database", &wrong_url(&admin)]);
    assert!(!wrong_password.status.success());
    let text = stdout(&wrong_password) + &stderr(&wrong_password);
    assert!(text.contains("nobody_here"), "says who was refused: {text}");
    assert!(
        !text.contains("wrong-password"),
        "never prints the password: {text}"
    );

    let db = TestDatabase::create().await;
    // A newer cairn migrated this database.
    let newer = run(h.cmd(), &["status", "--database", db.url()]);
    assert!(newer.status.success(), "{}", stderr(&newer));
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    let refused = run(h.cmd(), &["status", "--database", db.url()]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("newer"), "{}", stderr(&refused));

    // A database that refuses writes (a replica, a read-only role): said
    // at once, not on the first run.
    let read_only = TestDatabase::create().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(read_only.url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        read_only.name()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let refused = run(h.cmd(), &["status", "--database", read_only.url()]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("read-only"),
        "{}",
        stderr(&refused)
    );
}

/// The admin URL with a user that does not exist and a wrong password.
fn wrong_url(admin: &str) -> String {
    let (scheme, rest) = admin.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://nobody_here:wrong-password@{host}")
}
