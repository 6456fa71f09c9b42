"""The official OpenAI Python SDK against `cairn serve`.

usage: openai_sdk.py BASE_URL   (BASE_URL ends in /v1)
Exits non-zero with a message on the first failed check.
"""
import sys

from openai import NotFoundError, OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="not-needed-on-localhost")


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


models = [m.id for m in client.models.list()]
check("cairn:default" in models, f"models list has cairn:default: {models}")

# Non-streaming.
r = client.chat.completions.create(model="cairn:default", messages=[{"role": "user", "content": "say one"}])
check(r.choices[0].message.content == "one", f"non-streaming answer: {r}")
check(r.choices[0].finish_reason == "stop", "finish_reason stop")
check(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, f"usage: {r.usage}")

# Streaming, with usage.
stream = client.chat.completions.create(model="cairn:default", messages=[{"role": "user", "content": "say two"}],
                                        stream=True, stream_options={"include_usage": True})
text, finish, usage = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
check(text == "two streamed words", f"streamed text: {text!r}")
check(finish == "stop", f"stream finish_reason: {finish}")
check(usage is not None and usage.total_tokens > 0, f"stream usage: {usage}")

# A session continued with X-Cairn-Session.
raw = client.chat.completions.with_raw_response.create(model="cairn:default", messages=[{"role": "user", "content": "remember: blue"}])
session = raw.headers.get("x-cairn-session")
check(bool(session), "x-cairn-session header on the answer")
r = client.chat.completions.create(model="cairn:default", messages=[{"role": "user", "content": "what colour?"}],
                                   extra_headers={"X-Cairn-Session": session})
check(r.choices[0].message.content == "blue", f"continued answer: {r}")

# Unknown model: the SDK's own error type.
try:
    client.chat.completions.create(model="cairn:ghost", messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model must fail")
except NotFoundError as e:
    check(e.code == "model_not_found", f"error code: {e.code}")

print("ok")
