"""The official MCP Python SDK as a client of cairn's MCP server.

Usage: mcp_client.py stdio <cairn binary>      (CAIRN_HOME etc. from the environment)
       mcp_client.py http <url> [api key]

Initialises, lists the tools, calls list_agents and ask_agent (with a
progress callback) and prints one JSON object with what it saw.
"""

import json
import os
import sys

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def exercise(read, write):
    progress = []

    async def on_progress(value, total, message):
        progress.append(message)

    async with ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        agents = await session.call_tool("list_agents", {})
        answer = await session.call_tool(
            "ask_agent",
            {"agent": "default", "message": "what is in notes.txt?"},
            progress_callback=on_progress,
        )
        unknown = await session.call_tool("ask_agent", {"agent": "nobody", "message": "hi"})
        memory = await session.call_tool("memory_search", {"agent": "default", "query": "staging server orion"})
        return {
            "server": init.server_info.name if init.server_info else None,
            "tools": sorted(t.name for t in tools.tools),
            "schemas": {t.name: t.input_schema for t in tools.tools},
            "agents": [c.text for c in agents.content],
            "answer": [c.text for c in answer.content],
            "answer_error": bool(answer.is_error),
            "structured": answer.structured_content,
            "progress": progress,
            "unknown_error": bool(unknown.is_error),
            "unknown": [c.text for c in unknown.content],
            "memory": [c.text for c in memory.content],
            "memory_hits": memory.structured_content,
        }


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=["mcp"], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            result = await exercise(read, write)
    else:
        headers = {}
        if len(sys.argv) > 3:
            headers["Authorization"] = f"Bearer {sys.argv[3]}"
        async with httpx2.AsyncClient(headers=headers, timeout=60) as client:
            async with streamable_http_client(sys.argv[2], http_client=client) as streams:
                result = await exercise(streams[0], streams[1])
    print(json.dumps(result))


anyio.run(main)
