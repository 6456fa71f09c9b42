"""Peer: the minimal agent loop every Python framework runs at its core —
the official OpenAI SDK, a tool call, the tool's result appended, again —
against the same fake LLM cairn is measured against.

usage: openai_loop.py BASE_URL WORKDIR STEPS  -> prints seconds for the run
"""
import json
import os
import sys
import time

from openai import OpenAI

base, workdir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = OpenAI(base_url=base, api_key="sk-bench")
tools = [{"type": "function", "function": {"name": "read_file", "description": "read a file",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
messages = [{"role": "system", "content": "bench"}, {"role": "user", "content": "read the file repeatedly"}]
start = time.perf_counter()
for _ in range(steps + 1):
    r = client.chat.completions.create(model="gpt-4.1", messages=messages, tools=tools, stream=True,
                                       stream_options={"include_usage": True})
    text, calls = "", {}
    for chunk in r:
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        text += d.content or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            c["id"] = tc.id or c["id"]
            c["name"] += (tc.function.name or "") if tc.function else ""
            c["args"] += (tc.function.arguments or "") if tc.function else ""
    if not calls:
        break
    messages.append({"role": "assistant", "content": text or None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["args"]}} for c in calls.values()]})
    for c in calls.values():
        path = json.loads(c["args"])["path"]
        with open(os.path.join(workdir, path)) as f:
            out = f.read()
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": out})
print(time.perf_counter() - start)
