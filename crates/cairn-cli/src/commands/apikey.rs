//! `cairn apikey`: people's API keys. A key is shown once, at creation;
//! the store keeps its id and a SHA-256 of its secret. Making and revoking
//! keys is written to the audit log.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::audit::{Actor, AuditEvent};
use cairn_core::keys::{ApiKeyRecord, Role, mint};
use cairn_core::now_ms;

use crate::{config, secrets, wiring};

/// Arguments of `cairn apikey`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Make a key for a person and print it (once).
    Create {
        /// The person (a `[channels.users]` name, to be one person across
        /// channels and the API).
        #[arg(long)]
        user: String,
        /// viewer (reads their own), member (talks to agents in their own
        /// sessions) or admin (everything).
        #[arg(long, default_value = "member")]
        role: Role,
        /// Limit the key to this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Print the key as JSON with its record.
        #[arg(long)]
        json: bool,
    },
    /// Every key: id, person, role, agent, made, revoked.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id: it stops admitting at once.
    Revoke {
        /// The key's id (`cairn apikey list`).
        id: String,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let store = wiring::store(&loaded).await?;
    let audit = cairn_store::AuditLog::open(store.clone(), secrets::audit_key(&loaded)?).await?;
    match args.command {
        KeyCommand::Create {
            user,
            role,
            agent,
            json,
        } => {
            cairn_core::ids::validate_name("user", &user)?;
            if let Some(a) = &agent {
                cairn_core::ids::validate_name("agent", a)?;
            }
            let (id, secret_sha256, text) = mint(&secrets::random_bytes("the key")?);
            let record = ApiKeyRecord {
                id: id.clone(),
                user_id: user.clone(),
                role,
                agent,
                secret_sha256,
                created_at: now_ms(),
                revoked_at: None,
            };
            store.create_key(&record).await?;
            let event = AuditEvent::KeyCreated {
                key: id.clone(),
                user,
                role: role.to_string(),
            };
            audit.record(Actor::Operator, event).await?;
            if json {
                println!("{}", serde_json::json!({"key": text, "record": record}));
            } else {
                println!("{text}");
                eprintln!(
                    "key {id} for {} ({role}{}): shown this once; send it as `Authorization: Bearer <key>`",
                    record.user_id,
                    record
                        .agent
                        .as_deref()
                        .map(|a| format!(", agent {a} only"))
                        .unwrap_or_default()
                );
            }
        }
        KeyCommand::List { json } => {
            let keys = store.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string(&keys)?);
            } else if keys.is_empty() {
                eprintln!("no keys: `cairn apikey create --user NAME --role member` makes one");
            } else {
                println!(
                    "{:<14} {:<16} {:<7} {:<14} {:<21} revoked",
                    "id", "user", "role", "agent", "made"
                );
                for k in keys {
                    println!(
                        "{:<14} {:<16} {:<7} {:<14} {:<21} {}",
                        k.id,
                        k.user_id,
                        k.role.as_str(),
                        k.agent.as_deref().unwrap_or("*"),
                        cairn_runtime::iso(k.created_at),
                        k.revoked_at.map(cairn_runtime::iso).unwrap_or_default()
                    );
                }
            }
        }
        KeyCommand::Revoke { id } => {
            if !store.revoke_key(&id, now_ms()).await? {
                match store.get_key(&id).await? {
                    Some(_) => bail!("key {id} was already revoked"),
                    None => bail!("no key {id}: `cairn apikey list` shows the ids"),
                }
            }
            audit
                .record(Actor::Operator, AuditEvent::KeyRevoked { key: id.clone() })
                .await?;
            eprintln!("key {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
