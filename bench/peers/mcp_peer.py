"""The official MCP Python SDK as the peer of cairn's MCP client: N calls of
the reference server's echo tool over stdio or streamable HTTP, one at a
time after a warm-up; prints the per-call latencies (µs) as JSON.

Usage: mcp_peer.py stdio <node> <server-everything index.js> <n>
       mcp_peer.py http <url> <n>
"""

import json
import sys
import time

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def calls(read, write, n):
    async with ClientSession(read, write) as session:
        await session.initialize()
        for _ in range(20):
            await session.call_tool("echo", {"message": "warm"})
        out = []
        for i in range(n):
            t = time.perf_counter()
            await session.call_tool("echo", {"message": f"m{i}"})
            out.append((time.perf_counter() - t) * 1e6)
        return out


async def main():
    if sys.argv[1] == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=[sys.argv[3], "stdio"])
        async with stdio_client(params) as (read, write):
            us = await calls(read, write, int(sys.argv[4]))
    else:
        async with streamable_http_client(sys.argv[2]) as streams:
            us = await calls(streams[0], streams[1], int(sys.argv[3]))
    print(json.dumps(us))


anyio.run(main)
