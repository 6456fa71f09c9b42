"""An MCP server (stdio, plain JSON-RPC) whose tools misbehave on purpose:
crash exits mid-call, hang never answers, garbage answers with a line that
is not JSON, big answers with 20 MB of text. echo and boot (an id of this start) behave; grow adds a tool
and says the list changed."""

import json
import os
import sys
import time


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def tool(name, props=None):
    return {
        "name": name,
        "description": f"the {name} tool",
        "inputSchema": {"type": "object", "properties": props or {}},
    }


# Names this start of the server, so a test can tell a restart.
BOOT = os.urandom(6).hex()
TOOLS = [tool("echo", {"text": {"type": "string"}}), tool("boot"), tool("crash"), tool("hang"), tool("garbage"), tool("big"), tool("grow")]

for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        version = msg["params"].get("protocolVersion", "2025-06-18")
        if version not in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"):
            version = "2025-06-18"
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bad", "version": "1"},
        }})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        args = msg["params"].get("arguments") or {}
        text = None
        if name == "echo":
            text = "echo: " + str(args.get("text"))
        elif name == "boot":
            text = BOOT
        elif name == "crash":
            sys.stderr.write("bad_mcp: crashing on purpose\n")
            sys.stderr.flush()
            os._exit(3)
        elif name == "hang":
            time.sleep(3600)
        elif name == "garbage":
            sys.stdout.write("this is {not json\n")
            sys.stdout.flush()
            continue
        elif name == "grow":
            # A new tool appears, and the client is told.
            TOOLS.append(tool("extra"))
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            text = "grown"
        elif name == "extra":
            text = "the extra tool"
        elif name == "big":
            text = "B" * (20 * 1000 * 1000)
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no such method"}})
