"""Peer: LangGraph's prebuilt ReAct agent (langchain-openai) doing the same
run against the same fake LLM.

usage: langgraph_loop.py BASE_URL WORKDIR STEPS  -> prints seconds for the run
"""
import os
import sys
import time

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

base, workdir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])


@tool
def read_file(path: str) -> str:
    """read a file"""
    with open(os.path.join(workdir, path)) as f:
        return f.read()


model = ChatOpenAI(base_url=base, api_key="sk-bench", model="gpt-4.1", streaming=True)
agent = create_react_agent(model, [read_file])
start = time.perf_counter()
agent.invoke({"messages": [("user", "read the file repeatedly")]}, {"recursion_limit": 2 * steps + 10})
print(time.perf_counter() - start)
