//! Test support shared by every crate's tests: a scripted fake LLM server
//! speaking Anthropic's Messages API and OpenAI's Chat Completions API (both
//! streaming and not) over real HTTP, and helpers to drive the `cairn`
//! binary in a throwaway home.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod fake_llm;
mod fake_platforms;
mod link;
mod mcp_peers;
mod netns;
mod postgres;
mod process;
mod python;
mod server;
mod validate;
mod wire;

pub use cli::{CairnHome, describe};
pub use fake_llm::{FAKE_EMBEDDING_DIMS, FakeLlm, RecordedRequest, Reply, fake_prompt_tokens};
pub use fake_platforms::{
    Failure, FakeSlack, FakeTelegram, hmac_hex, slack_signature, webhook_signature,
};
pub use link::Link;
pub use mcp_peers::{mcp_reference_server, node, repo_path};
pub use netns::PublicHost;
pub use postgres::{TestDatabase, admin_url as postgres_admin_url};
pub use process::LoggedProcess;
pub use python::{minilm_model_dir, mpnet_model_dir, test_python};
pub use server::ServerProcess;
