//! The audit log's entries and its chain. Each entry is sealed with
//! HMAC-SHA256 under the audit key (`$CAIRN_HOME/audit.key`, never in the
//! database) over its own fields and the previous entry's seal, so someone
//! who can write to the database but lacks the key can neither edit,
//! insert, reorder nor forge an entry without [`ChainCheck`] saying where.
//! A plain hash chain would not do: whoever edits a row can recompute
//! every later hash. Deleting the newest entries leaves a valid chain; a
//! head recorded earlier ([`Head`]) is how that is caught.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// The holder of the operator key.
    Operator,
    /// A person's API key.
    Key {
        /// The key's id (never the key).
        key: String,
        /// The person it belongs to.
        user: String,
    },
    /// A caller with no key where the server asks for none (loopback).
    Anonymous,
    /// A person writing on a channel.
    Person {
        /// The channel.
        channel: String,
        /// The person's id there.
        user: String,
    },
    /// An agent acting within a run.
    Agent {
        /// The agent.
        agent: String,
        /// The run.
        run: String,
    },
    /// cairn itself (start-up, scheduler, watchdog).
    System,
}

/// Where a tool call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// In this process, or a sandbox it started.
    Local,
    /// On a cluster worker (the tool job names the node).
    Cluster,
    /// At an MCP server.
    Mcp,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A request was refused at the door (no key, a wrong key, a role
    /// that may not).
    Refused {
        /// Which surface (`api`, `openai`, `mcp`, `webhook`).
        surface: String,
        /// Method and path.
        action: String,
        /// The status answered.
        status: u16,
        /// Why, as the caller was told.
        reason: String,
        /// Refusals not recorded just before this one (too many at once).
        #[serde(default, skip_serializing_if = "is_zero")]
        suppressed: u64,
    },
    /// A key was used to change something.
    KeyUsed {
        /// Which surface.
        surface: String,
        /// Method and path.
        action: String,
        /// The status answered.
        status: u16,
    },
    /// A tool ran.
    ToolRan {
        /// The run.
        run: String,
        /// The tool.
        tool: String,
        /// The call's id.
        call: String,
        /// Where it ran.
        place: Place,
        /// SHA-256 of the call's input (JSON), hex.
        input_sha256: String,
        /// SHA-256 of its output, hex.
        output_sha256: String,
        /// Whether it ended in an error.
        is_error: bool,
    },
    /// A tool call was refused before it ran.
    ToolRefused {
        /// The run.
        run: String,
        /// The tool.
        tool: String,
        /// The call's id.
        call: String,
        /// Why.
        reason: String,
    },
    /// Work was handed to someone else with a narrowed token.
    Delegated {
        /// The run.
        run: String,
        /// To whom (`worker:<node>`, `agent:<name>`).
        to: String,
        /// What was handed over (a tool job, a child run).
        what: String,
        /// The custody chain: each block's facts, root first.
        chain: Vec<String>,
    },
    /// Where a model call on classified data was allowed to go.
    Residency {
        /// The run.
        run: String,
        /// The data's class.
        class: String,
        /// Provider and model it went to (or `refused`).
        target: String,
        /// Why.
        reason: String,
    },
    /// An agent was created or changed.
    AgentChanged {
        /// The agent.
        name: String,
        /// Isolation fields the change widened (empty when none).
        widened: Vec<String>,
    },
    /// An API key was made.
    KeyCreated {
        /// Its id.
        key: String,
        /// Its person.
        user: String,
        /// Its role.
        role: String,
    },
    /// An API key was revoked.
    KeyRevoked {
        /// Its id.
        key: String,
    },
    /// A server started with this configuration.
    Started {
        /// cairn's version.
        version: String,
        /// SHA-256 of the configuration file (empty when none).
        config_sha256: String,
        /// Where it listens.
        listen: String,
    },
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An entry to append (the store gives it its place and seal).
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// When (ms).
    pub at: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub event: AuditEvent,
}

impl NewAudit {
    /// An entry stamped now.
    pub fn now(actor: Actor, event: AuditEvent) -> NewAudit {
        NewAudit {
            at: crate::now_ms(),
            actor,
            event,
        }
    }
}

/// An entry as stored: the sealed fields are the stored texts, so checking
/// never depends on how a type serializes today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Its place in the chain, from 1 without gaps.
    pub seq: i64,
    /// When (ms).
    pub at: i64,
    /// The id of the key that sealed it.
    pub key_id: String,
    /// [`Actor`] as JSON.
    pub actor: String,
    /// [`AuditEvent`] as JSON.
    pub event: String,
    /// The previous entry's seal (the genesis seal for the first).
    pub prev: String,
    /// Its seal.
    pub seal: String,
}

impl AuditRow {
    /// Who, decoded.
    pub fn actor(&self) -> Result<Actor, serde_json::Error> {
        serde_json::from_str(&self.actor)
    }

    /// What, decoded.
    pub fn event(&self) -> Result<AuditEvent, serde_json::Error> {
        serde_json::from_str(&self.event)
    }
}

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A bad audit key file.
#[derive(Debug, thiserror::Error)]
#[error("an audit key is 64 hex digits (256 bits); this one is not")]
pub struct BadAuditKey;

/// The key entries are sealed with.
#[derive(Clone)]
pub struct AuditKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditKey {
    /// The key from its file's text (64 hex digits).
    pub fn from_hex(text: &str) -> Result<AuditKey, BadAuditKey> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(BadAuditKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| BadAuditKey)?;
        }
        let id = hex(&Self::mac(&key, &[b"cairn audit key id"])[..8]);
        Ok(AuditKey { key, id })
    }

    /// Its public name: which key sealed an entry, without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        // Any key length is accepted by HMAC, so this cannot fail.
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            // Length-prefixed, so no two different entries read the same.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The seal of an entry with these fields after `prev`.
    pub fn seal(&self, prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
        hex(&Self::mac(
            &self.key,
            &[
                b"cairn audit v1",
                prev.as_bytes(),
                &seq.to_be_bytes(),
                &at.to_be_bytes(),
                self.id.as_bytes(),
                actor.as_bytes(),
                event.as_bytes(),
            ],
        ))
    }

    /// Whether `row`'s seal is this key's seal of its fields.
    fn seals(&self, row: &AuditRow) -> bool {
        let want = self.seal(&row.prev, row.seq, row.at, &row.actor, &row.event);
        crate::keys::constant_time_eq(want.as_bytes(), row.seal.as_bytes())
    }
}

/// A place in the chain recorded earlier (`seq:seal`), to catch deletion
/// of the newest entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number.
    pub seq: i64,
    /// Its seal.
    pub seal: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.seal)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(s: &str) -> Result<Head, String> {
        let bad = || format!("{s:?} is not a head: write SEQ:SEAL, as `cairn audit verify` prints");
        let (seq, seal) = s.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse().map_err(|_| bad())?;
        if seal.len() != 64 || !seal.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            seal: seal.to_ascii_lowercase(),
        })
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// Entries are missing: deleted.
    #[error("entries {from}..={to} are missing (deleted)")]
    Missing {
        /// First missing.
        from: i64,
        /// Last missing.
        to: i64,
    },
    /// An entry does not come after the one before it (moved or duplicated).
    #[error("entry {seq} comes after entry {after}: the order was changed")]
    OutOfOrder {
        /// The entry.
        seq: i64,
        /// The entry before it.
        after: i64,
    },
    /// An entry's fields do not match its seal: edited, or made by someone
    /// without the key.
    #[error("entry {seq} does not match its seal: it was edited, or written without the audit key")]
    Edited {
        /// The entry.
        seq: i64,
    },
    /// An entry names a key this checker does not have.
    #[error(
        "entry {seq} was sealed by audit key {key_id}, not this one ({ours}): verify with that key, or it was forged"
    )]
    OtherKey {
        /// The entry.
        seq: i64,
        /// The key it names.
        key_id: String,
        /// Ours.
        ours: String,
    },
    /// An entry is sealed, but not after the entry before it: the entries
    /// around it were swapped, or one between them replaced.
    #[error("entry {seq} does not follow entry {after}'s seal: entries were swapped or replaced")]
    Relinked {
        /// The entry.
        seq: i64,
        /// The entry before it.
        after: i64,
    },
    /// A head recorded earlier is not in the chain.
    #[error("the recorded head {head} is not in the chain (newest entries deleted or rewritten)")]
    HeadLost {
        /// The head.
        head: Head,
    },
}

/// Checks a chain entry by entry, in `seq` order.
#[derive(Debug)]
pub struct ChainCheck<'k> {
    key: &'k AuditKey,
    last: Option<Head>,
    checked: u64,
    expected: Option<(Head, bool)>,
}

impl<'k> ChainCheck<'k> {
    /// A check from the first entry.
    pub fn new(key: &'k AuditKey) -> Self {
        ChainCheck {
            key,
            last: None,
            checked: 0,
            expected: None,
        }
    }

    /// Also requires `head`, recorded earlier, to be in the chain.
    pub fn expecting(mut self, head: Head) -> Self {
        self.expected = Some((head, false));
        self
    }

    /// Checks the next entry.
    pub fn next(&mut self, row: &AuditRow) -> Result<(), ChainBreak> {
        let (want_seq, want_prev, after) = match &self.last {
            None => (1, GENESIS, 0),
            Some(h) => (h.seq + 1, h.seal.as_str(), h.seq),
        };
        if row.seq > want_seq {
            return Err(ChainBreak::Missing {
                from: want_seq,
                to: row.seq - 1,
            });
        }
        if row.seq < want_seq {
            return Err(ChainBreak::OutOfOrder {
                seq: row.seq,
                after,
            });
        }
        if row.key_id != self.key.id {
            return Err(ChainBreak::OtherKey {
                seq: row.seq,
                key_id: row.key_id.clone(),
                ours: self.key.id.clone(),
            });
        }
        if !self.key.seals(row) {
            return Err(ChainBreak::Edited { seq: row.seq });
        }
        if row.prev != want_prev {
            return Err(ChainBreak::Relinked {
                seq: row.seq,
                after,
            });
        }
        if let Some((head, seen)) = &mut self.expected
            && head.seq == row.seq
        {
            if head.seal != row.seal {
                return Err(ChainBreak::HeadLost { head: head.clone() });
            }
            *seen = true;
        }
        self.last = Some(Head {
            seq: row.seq,
            seal: row.seal.clone(),
        });
        self.checked += 1;
        Ok(())
    }

    /// Ends the check (the expected head must have been met). Returns
    /// the newest entry's place, if there are entries.
    pub fn finish(self) -> Result<Option<Head>, ChainBreak> {
        if let Some((head, false)) = self.expected {
            return Err(ChainBreak::HeadLost { head });
        }
        Ok(self.last)
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The newest entry checked.
    pub fn head(&self) -> Option<&Head> {
        self.last.as_ref()
    }
}

/// What checking a whole chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is sealed after the one before it.
    Intact {
        /// Entries checked.
        entries: u64,
        /// The newest entry's place (none in an empty log): record it to
        /// catch a later deletion of the newest entries.
        head: Option<Head>,
    },
    /// The chain is broken here.
    Broken {
        /// Entries that checked out before the break.
        intact: u64,
        /// Where and how.
        at: ChainBreak,
    },
}

/// Hex SHA-256 of some bytes (the digests entries carry).
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: char) -> AuditKey {
        AuditKey::from_hex(&b.to_string().repeat(64)).unwrap()
    }

    fn chain(k: &AuditKey, n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let actor = r#"{"type":"system"}"#.to_string();
                let event = format!(r#"{{"kind":"key_revoked","key":"k{seq}"}}"#);
                let seal = k.seal(&prev, seq, seq * 10, &actor, &event);
                let row = AuditRow {
                    seq,
                    at: seq * 10,
                    key_id: k.id().into(),
                    actor,
                    event,
                    prev: prev.clone(),
                    seal: seal.clone(),
                };
                prev = seal;
                row
            })
            .collect()
    }

    fn check(k: &AuditKey, rows: &[AuditRow]) -> Result<(), ChainBreak> {
        let mut c = ChainCheck::new(k);
        rows.iter().try_for_each(|r| c.next(r))
    }

    #[test]
    fn an_untouched_chain_passes_and_each_tampering_is_named() {
        let k = key('a');
        let rows = chain(&k, 5);
        check(&k, &rows).unwrap();

        let mut edited = rows.clone();
        edited[2].event = edited[2].event.replace("k3", "k9");
        assert_eq!(check(&k, &edited), Err(ChainBreak::Edited { seq: 3 }));

        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(
            check(&k, &deleted),
            Err(ChainBreak::Missing { from: 2, to: 2 })
        );

        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            check(&k, &swapped),
            Err(ChainBreak::Missing { .. })
        ));
        // Swapping the rows' places too (renumbered) breaks their seals.
        let (a, b) = (swapped[1].seq, swapped[2].seq);
        swapped[1].seq = b;
        swapped[2].seq = a;
        assert_eq!(check(&k, &swapped), Err(ChainBreak::Edited { seq: 2 }));

        let stranger = key('b');
        let mut forged = rows;
        forged.push(chain(&stranger, 6).pop().unwrap());
        assert!(matches!(
            check(&k, &forged),
            Err(ChainBreak::OtherKey { seq: 6, .. })
        ));
        // A forger who copies our key id still cannot seal.
        forged[5].key_id = k.id().into();
        assert_eq!(check(&k, &forged), Err(ChainBreak::Edited { seq: 6 }));
    }

    #[test]
    fn a_recorded_head_catches_deleted_newest_entries() {
        let k = key('c');
        let rows = chain(&k, 4);
        let head = Head {
            seq: 4,
            seal: rows[3].seal.clone(),
        };
        let mut c = ChainCheck::new(&k).expecting(head.clone());
        rows[..3].iter().for_each(|r| c.next(r).unwrap());
        assert!(matches!(c.finish(), Err(ChainBreak::HeadLost { .. })));
        let mut c = ChainCheck::new(&k).expecting(head.clone());
        rows.iter().for_each(|r| c.next(r).unwrap());
        assert_eq!(c.finish().unwrap(), Some(head.clone()));
        assert_eq!("4:AB".parse::<Head>().ok(), None);
        assert_eq!(head.to_string().parse::<Head>().unwrap(), head);
    }

    #[test]
    fn keys_are_256_bits_of_hex() {
        assert!(AuditKey::from_hex("abc").is_err());
        assert!(AuditKey::from_hex(&"g".repeat(64)).is_err());
        assert!(AuditKey::from_hex(&"é".repeat(32)).is_err());
        assert_ne!(key('a').id(), key('b').id());
    }
}
