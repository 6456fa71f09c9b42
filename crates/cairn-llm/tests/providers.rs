//! Both providers against the fake LLM over real HTTP, both streaming modes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use cairn_core::{ContentBlock, Message, ModelRequest, StopReason, StreamEvent, ToolSpec};
use cairn_llm::{
    AnthropicProvider, LlmError, OpenAiProvider, Provider, RetryPolicy, complete_with_retry,
};
use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

fn providers(fake: &FakeLlm) -> Vec<Box<dyn Provider>> {
    vec![
        Box::new(AnthropicProvider::new(
            &fake.anthropic_url(),
            "sk-ant-test",
            "claude-sonnet-4-5",
            Duration::from_secs(5),
        )),
        Box::new(OpenAiProvider::new(
            &fake.openai_url(),
            Some("sk-test"),
            "gpt-4.1",
            Duration::from_secs(5),
        )),
    ]
}

fn request(stream: bool) -> ModelRequest {
    ModelRequest {
        model: String::new(),
        system: "be brief".into(),
        messages: vec![Message::user_text("hi")],
        tools: vec![ToolSpec {
            name: "exec".into(),
            description: "run".into(),
            input_schema: json!({"type": "object"}),
        }],
        max_tokens: 100,
        stream,
        hints: Default::default(),
    }
}

async fn call(
    p: &dyn Provider,
    req: &ModelRequest,
) -> (
    Result<cairn_core::ModelResponse, LlmError>,
    Vec<StreamEvent>,
) {
    let events = Mutex::new(Vec::new());
    let sink = |e: StreamEvent| events.lock().unwrap().push(e);
    let r = p.complete(req, &sink).await;
    (r, events.into_inner().unwrap())
}

#[tokio::test]
async fn text_and_tool_calls_in_both_modes() {
    let fake = FakeLlm::start();
    for p in providers(&fake) {
        for stream in [false, true] {
            fake.push([
                Reply::text("Hello there, how are you today?"),
                Reply::tools(vec![
                    ("exec", json!({"command": "echo a"})),
                    ("read_file", json!({"path": "n.txt"})),
                ]),
            ]);
            let (r, events) = call(p.as_ref(), &request(stream)).await;
            let r = r.unwrap();
            assert_eq!(r.stop_reason, StopReason::EndTurn);
            assert_eq!(
                r.content,
                vec![ContentBlock::Text {
                    text: "Hello there, how are you today?".into()
                }]
            );
            assert!(
                r.usage.input_tokens > 0 && r.usage.output_tokens > 0,
                "{}: {:?}",
                p.name(),
                r.usage
            );
            let streamed: String = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::TextDelta { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(streamed, "Hello there, how are you today?");
            if stream {
                assert!(events.len() > 2, "text arrives in several deltas");
            }

            let (r, _) = call(p.as_ref(), &request(stream)).await;
            let r = r.unwrap();
            assert_eq!(r.stop_reason, StopReason::ToolUse);
            let calls: Vec<_> = r
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { name, input, .. } => {
                        Some((name.clone(), input.clone()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(
                calls,
                vec![
                    ("exec".to_string(), json!({"command": "echo a"})),
                    ("read_file".to_string(), json!({"path": "n.txt"}))
                ],
                "{} stream={stream}",
                p.name()
            );
        }
    }
    let reqs = fake.requests();
    let a = &reqs[0];
    assert_eq!(a.path, "/v1/messages");
    assert_eq!(a.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(a.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(a.body["system"], "be brief");
    assert_eq!(a.body["tools"][0]["input_schema"]["type"], "object");
    let o = &reqs[4];
    assert_eq!(o.path, "/v1/chat/completions");
    assert_eq!(o.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(o.body["messages"][0]["role"], "system");
    assert_eq!(o.body["tools"][0]["function"]["name"], "exec");
    assert_eq!(reqs[7].body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn tool_history_round_trips_in_each_wire_format() {
    let fake = FakeLlm::start();
    let mut req = request(false);
    req.messages.push(Message {
        role: cairn_core::Role::Assistant,
        content: vec![ContentBlock::ToolUse {
            id: "c1".into(),
            name: "exec".into(),
            input: json!({"command": "ls"}),
        }],
    });
    req.messages.push(Message {
        role: cairn_core::Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: "c1".into(),
            content: "a.txt".into(),
            is_error: false,
        }],
    });
    for p in providers(&fake) {
        fake.push([Reply::text("ok")]);
        call(p.as_ref(), &req).await.0.unwrap();
    }
    let reqs = fake.requests();
    let a = &reqs[0].body["messages"];
    assert_eq!(a[1]["content"][0]["type"], "tool_use");
    assert_eq!(a[2]["content"][0]["tool_use_id"], "c1");
    let o = &reqs[1].body["messages"];
    assert_eq!(
        o[2]["tool_calls"][0]["function"]["arguments"],
        "{\"command\":\"ls\"}"
    );
    assert_eq!(o[3]["role"], "tool");
    assert_eq!(o[3]["tool_call_id"], "c1");
}

#[tokio::test]
async fn rate_limits_are_retried_honouring_retry_after() {
    let fake = FakeLlm::start();
    let limited = || Reply::Error {
        status: 429,
        message: "slow down".into(),
        headers: vec![("retry-after".into(), "0".into())],
    };
    for p in providers(&fake) {
        fake.push([limited(), limited(), Reply::text("finally")]);
        let retries = Mutex::new(Vec::new());
        let r = complete_with_retry(
            p.as_ref(),
            &request(true),
            &RetryPolicy::default(),
            &|_| {},
            &|n, wait, _| retries.lock().unwrap().push((n, wait)),
        )
        .await
        .unwrap();
        assert_eq!(
            r.content,
            vec![ContentBlock::Text {
                text: "finally".into()
            }]
        );
        assert_eq!(
            *retries.lock().unwrap(),
            vec![(2, Duration::ZERO), (3, Duration::ZERO)]
        );
    }
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test]
async fn auth_and_bad_request_errors_are_clear_and_not_retried() {
    let fake = FakeLlm::start();
    for p in providers(&fake) {
        fake.push([Reply::error(401, "invalid x-api-key")]);
        let err = complete_with_retry(
            p.as_ref(),
            &request(false),
            &RetryPolicy::default(),
            &|_| {},
            &|_, _, _| {},
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{msg}");
        assert!(
            msg.contains("invalid x-api-key") && msg.contains("_API_KEY"),
            "{msg}"
        );
        fake.push([Reply::error(400, "max_tokens too large")]);
        let err = complete_with_retry(
            p.as_ref(),
            &request(false),
            &RetryPolicy::default(),
            &|_| {},
            &|_, _, _| {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("max_tokens too large"));
    }
    assert_eq!(fake.requests().len(), 4, "none retried");
}

#[tokio::test]
async fn malformed_streams_are_errors_not_panics() {
    let fake = FakeLlm::start();
    let bad = [
        "event: message_start\ndata: {not json\n\n",
        "this is not an event stream\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":9,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
    ];
    for p in providers(&fake) {
        for raw in bad {
            fake.push([Reply::RawSse(raw.to_string())]);
            let (r, _) = call(p.as_ref(), &request(true)).await;
            let err = r.unwrap_err();
            assert!(
                matches!(err, LlmError::Protocol { .. } | LlmError::Connect { .. }),
                "{}: {raw:?} gave {err}",
                p.name()
            );
        }
    }
}

#[tokio::test]
async fn invalid_tool_arguments_are_kept_as_text_for_the_runtime() {
    let fake = FakeLlm::start();
    for p in providers(&fake) {
        for stream in [false, true] {
            fake.push([Reply::RawToolCall {
                name: "exec".into(),
                arguments: "{\"command\": \"ls".into(),
            }]);
            let (r, _) = call(p.as_ref(), &request(stream)).await;
            let r = r.unwrap();
            match &r.content[..] {
                [ContentBlock::ToolUse { input, .. }] => {
                    assert_eq!(input, &json!("{\"command\": \"ls"))
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn local_server_without_model_uses_the_first_listed() {
    let fake = FakeLlm::start();
    let p = OpenAiProvider::new(&fake.openai_url(), None, "", Duration::from_secs(5));
    fake.push([Reply::text("hi")]);
    call(&p, &request(false)).await.0.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs[0].body["model"], "fake-local-model");
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(
        reqs[0].body["max_tokens"], 100,
        "compatible servers get max_tokens"
    );
}

#[tokio::test]
async fn connection_refused_is_transient_and_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let p = AnthropicProvider::new(&url, "k", "m", Duration::from_secs(5));
    let (r, _) = call(&p, &request(false)).await;
    let err = r.unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().contains(&url), "{err}");
}
