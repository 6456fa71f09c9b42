//! Provider failures: missing keys, rejected keys, rate limits, broken streams.

use cairn_testkit::{FakeLlm, Reply};

use crate::*;

#[test]
fn no_key_names_the_variables_to_set() {
    let h = home();
    let out = run(h.cmd(), &["run", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for var in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"] {
        assert!(err.contains(var), "{err}");
    }
    let mut cmd = h.cmd();
    cmd.env("CAIRN_LLM__PROVIDER", "anthropic");
    let out = run(cmd, &["run", "hello"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no API key: set ANTHROPIC_API_KEY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rejected_key_gives_a_clear_message_and_a_failed_run() {
    for provider in ["anthropic", "openai"] {
        let h = home();
        let fake = FakeLlm::start();
        fake.push([Reply::error(401, "invalid x-api-key")]);
        let cmd = if provider == "anthropic" {
            h.anthropic(&fake)
        } else {
            h.openai(&fake)
        };
        let out = run(cmd, &["run", "hello"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("rejected the API key") && err.contains("invalid x-api-key"),
            "{err}"
        );
        let var = if provider == "anthropic" {
            "ANTHROPIC_API_KEY"
        } else {
            "OPENAI_API_KEY"
        };
        assert!(err.contains(var), "{err}");
        assert_eq!(fake.requests().len(), 1, "auth errors are not retried");
        assert_eq!(json(&h, &["runs", "list"])[0]["status"], "failed");
    }
}

#[test]
fn rate_limited_twice_then_success() {
    let h = home();
    let fake = FakeLlm::start();
    let limited = || Reply::Error {
        status: 429,
        message: "rate limited".into(),
        headers: vec![("retry-after".into(), "0".into())],
    };
    fake.push([limited(), limited(), Reply::text("made it")]);
    let out = ok(h.anthropic(&fake), &["run", "hello"]);
    assert!(stdout(&out).contains("made it"));
    assert!(
        stderr(&out).contains("retrying (attempt 3)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), 3);
}

#[test]
fn an_account_out_of_credit_fails_at_once_instead_of_cooling_down() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
    )]);
    let out = run(h.openai(&fake), &["run", "hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("out of credit"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("cooling down"));
    assert_eq!(fake.requests().len(), 1, "no retries, no cooldown loop");
}

#[test]
fn malformed_stream_fails_the_run_with_a_clear_error() {
    for provider in ["anthropic", "openai"] {
        let h = home();
        let fake = FakeLlm::start();
        fake.push([Reply::RawSse(
            "event: message_start\ndata: {\"type\": \"message_start\", broken\n\n".into(),
        )]);
        let cmd = if provider == "anthropic" {
            h.anthropic(&fake)
        } else {
            h.openai(&fake)
        };
        let out = run(cmd, &["run", "hello"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            cairn_testkit::describe(&out)
        );
        let err = stderr(&out);
        assert!(err.contains("malformed response"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        let run = &json(&h, &["runs", "list"])[0];
        assert_eq!(run["status"], "failed");
        assert!(run["error"].as_str().unwrap().contains("not JSON"), "{run}");
    }
}

#[test]
fn a_local_openai_compatible_server_needs_no_key() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("local answer")]);
    let mut cmd = h.cmd();
    cmd.env("OPENAI_BASE_URL", fake.openai_url());
    let out = ok(cmd, &["run", "hello"]);
    assert!(stdout(&out).contains("local answer"));
    let r = &fake.requests()[0];
    assert_eq!(
        r.body["model"], "fake-local-model",
        "the server's first model is used"
    );
    assert_eq!(r.header("authorization"), None);
}

#[test]
fn a_usage_limit_that_says_when_it_resets_is_a_cooldown_until_then() {
    let h = home();
    let fake = FakeLlm::start();
    // Not a 429 and no retry-after: the reset time is only in the message.
    let reset = cairn_core::now_ms() / 1000 + 2;
    fake.push([
        Reply::error(400, &format!("Claude AI usage limit reached|{reset}")),
        Reply::text("after the reset"),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_LLM__MAX_RETRY_WAIT_S", "1");
    let out = ok(cmd, &["run", "hello"]);
    assert!(
        stdout(&out).contains("after the reset"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("cooling down until"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), 2);
}
