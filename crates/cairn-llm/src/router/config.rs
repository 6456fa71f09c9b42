//! `[providers.<name>]` and `[router]` in cairn.toml, and building the
//! providers they name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::DataClass;
use serde::{Deserialize, Deserializer, Serialize};

use crate::pricing::Price;
use crate::{AnthropicProvider, LlmError, OpenAiProvider, Provider};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// OpenAI Chat Completions: OpenAI, and local servers (Ollama,
    /// llama.cpp, vLLM).
    #[default]
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

/// `[providers.<name>]`: one model endpoint the router may use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderEntry {
    /// Wire format.
    pub kind: WireFormat,
    /// Endpoint; empty: the cloud API of `kind`.
    pub base_url: String,
    /// Model to ask for.
    pub model: String,
    /// Environment variable holding the key; empty: `ANTHROPIC_API_KEY` or
    /// `OPENAI_API_KEY` for the cloud APIs, none for other endpoints.
    pub key_env: String,
    /// Classes of data it may receive.
    pub data: Vec<DataClass>,
    /// Dollars per million tokens; absent: the built-in list price of the
    /// model.
    pub price: Option<Price>,
}

impl Default for ProviderEntry {
    fn default() -> Self {
        ProviderEntry {
            kind: WireFormat::Openai,
            base_url: String::new(),
            model: String::new(),
            key_env: String::new(),
            // Restricted data goes only where the config says it may.
            data: vec![DataClass::Public, DataClass::Internal],
            price: None,
        }
    }
}

/// What to do with content a provider may not receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestrictedPolicy {
    /// Only providers allowed every class present get the call; if none
    /// can, it is refused.
    #[default]
    Route,
    /// The preferred provider gets the call with what it may not see
    /// replaced by placeholders (restored in the answer) or withheld.
    Redact,
    /// As `Redact`, but a result of a declared source is summarised by a
    /// provider allowed to read it (a local model) instead of withheld, so
    /// a cloud model can go on reasoning over edge data it may not see.
    #[serde(alias = "summarize")]
    Summarise,
}

impl RestrictedPolicy {
    /// Whether a provider allowed less may get the call, altered.
    pub fn alters(self) -> bool {
        self != RestrictedPolicy::Route
    }
}

/// `[router]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Providers in order of preference; empty: by name.
    pub order: Vec<String>,
    /// What happens to content above a provider's classes.
    pub restricted: RestrictedPolicy,
    /// Built-in detectors to run; empty: all.
    pub detectors: Vec<String>,
    /// Your own detectors: name → regular expression (matches are
    /// restricted).
    pub patterns: BTreeMap<String, Pattern>,
    /// Tools whose results carry a class (`crm_lookup = "restricted"`).
    pub tools: BTreeMap<String, DataClass>,
    /// Agents all of whose content carries a class.
    pub agents: BTreeMap<String, DataClass>,
    /// Rules tried in order: the first that matches a call puts its
    /// provider first (residency still applies).
    pub rules: Vec<Rule>,
    /// The complexity classifier, when no rule matched.
    pub classifier: super::classify::ClassifierConfig,
    /// Daily spend limits by agent (`"*"`: every agent without its own).
    pub budgets: BTreeMap<String, super::budget::Budget>,
    /// Who writes the summaries under `restricted = "summarise"`; empty:
    /// the first provider in order allowed restricted data.
    pub summarise_with: String,
    /// Daily spend limits by person (`"telegram:42"`; `"*"`: every person
    /// without their own; the local owner has none).
    pub user_budgets: BTreeMap<String, super::budget::Budget>,
}

/// `[[router.rules]]`: calls matching every condition given go to
/// `provider` first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// Calls of this agent.
    pub agent: String,
    /// Calls continuing a tool chain (true) or not (false): whether the
    /// last message holds tool results.
    pub tool_chain: Option<bool>,
    /// Calls whose conversation is at least this many tokens (estimated).
    pub min_tokens: u64,
    /// Where they go.
    pub provider: String,
}

/// A user detector's regular expression, checked as the config is read
/// (so a bad one is reported with its line).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s).map_err(|e| {
            serde::de::Error::custom(format!("not a valid regular expression: {e}"))
        })?;
        Ok(Pattern(s))
    }
}

/// A `[router]` setting that cannot work, and the key to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    /// `router.order`, `providers.<name>.data`, …
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl RouterConfig {
    /// Checks the policy against the providers: every name known, every
    /// provider allowed something, the built-in detectors named right,
    /// and some provider for restricted data unless it is redacted.
    pub fn check(&self, providers: &BTreeMap<String, ProviderEntry>) -> Result<(), PolicyError> {
        let err = |key: String, message: String| Err(PolicyError { key, message });
        if providers.is_empty() {
            return Ok(());
        }
        for name in &self.order {
            if !providers.contains_key(name) {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                return err(
                    "router.order".into(),
                    format!(
                        "[router] order names {name:?}, which is not a provider (configured: {})",
                        known.join(", ")
                    ),
                );
            }
        }
        let known = |n: &str| n.is_empty() || providers.contains_key(n);
        for (i, r) in self.rules.iter().enumerate() {
            if r.provider.is_empty() || !known(&r.provider) {
                return err(
                    "router.rules".into(),
                    format!(
                        "rule {} sends calls to {:?}, which is not a provider",
                        i + 1,
                        r.provider
                    ),
                );
            }
        }
        for (what, name) in [
            ("simple", &self.classifier.simple),
            ("complex", &self.classifier.complex),
        ] {
            if !known(name) {
                return err(
                    format!("router.classifier.{what}"),
                    format!("[router.classifier] {what} = {name:?} is not a provider"),
                );
            }
        }
        if self.classifier.enabled()
            && self.classifier.examples.is_empty()
            && self.classifier.examples_file.is_empty()
        {
            return err(
                "router.classifier.simple".into(),
                "[router.classifier] has no examples: give examples = [...] or examples_file"
                    .into(),
            );
        }
        let budgets = self.budgets.iter().map(|(n, b)| ("budgets", n, b)).chain(
            self.user_budgets
                .iter()
                .map(|(n, b)| ("user_budgets", n, b)),
        );
        for (table, agent, b) in budgets {
            let key = format!("router.{table}.{agent}");
            if b.daily_usd.is_nan() || b.daily_usd < 0.0 {
                return err(
                    key,
                    format!("[router.budgets.{agent}] daily_usd must be 0 or more"),
                );
            }
            let downgrade = b.over == super::budget::OverBudget::Downgrade;
            if downgrade && (b.downgrade_to.is_empty() || !known(&b.downgrade_to)) {
                return err(
                    key,
                    format!(
                        "[router.{table}.{agent}] downgrades to {:?}, which is not a provider (set downgrade_to, or over = \"stop\")",
                        b.downgrade_to
                    ),
                );
            }
        }
        for (name, p) in providers {
            if p.data.is_empty() {
                return err(
                    format!("providers.{name}.data"),
                    format!(
                        "[providers.{name}] data is empty: it could be sent nothing (list the classes it may receive: public, internal, restricted)"
                    ),
                );
            }
        }
        for d in &self.detectors {
            if !super::detect::BUILTIN.contains(&d.as_str()) {
                return err(
                    "router.detectors".into(),
                    format!(
                        "unknown detector {d:?} (built in: {})",
                        super::detect::BUILTIN.join(", ")
                    ),
                );
            }
        }
        let allows = |c: DataClass| providers.values().any(|p| p.data.contains(&c));
        if self.restricted == RestrictedPolicy::Route && !allows(DataClass::Restricted) {
            return err(
                "router.restricted".into(),
                "no provider may receive restricted data, so every call carrying any (an email, a key, a declared source) would be refused: add \"restricted\" to the data of a local provider, or set [router] restricted = \"redact\"".into(),
            );
        }
        if self.restricted == RestrictedPolicy::Summarise {
            self.check_summariser(providers)?;
        }
        let declared = self
            .agents
            .iter()
            .map(|(n, c)| ("agents", n, c))
            .chain(self.tools.iter().map(|(n, c)| ("tools", n, c)));
        for (table, name, class) in declared {
            if !allows(*class) && self.restricted == RestrictedPolicy::Route {
                return err(
                    format!("router.{table}"),
                    format!(
                        "{name} is declared {} but no provider may receive {} data",
                        class.as_str(),
                        class.as_str()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Under `summarise`, someone must be able to read what is summarised.
    fn check_summariser(
        &self,
        providers: &BTreeMap<String, ProviderEntry>,
    ) -> Result<(), PolicyError> {
        let reads = |p: &ProviderEntry| p.data.contains(&DataClass::Restricted);
        let name = &self.summarise_with;
        let message = if name.is_empty() {
            if providers.values().any(reads) {
                return Ok(());
            }
            "restricted = \"summarise\" needs a provider that may receive restricted data (a local model) to write the summaries: add \"restricted\" to its data, or use \"redact\"".to_string()
        } else {
            match providers.get(name) {
                Some(p) if reads(p) => return Ok(()),
                Some(_) => format!(
                    "summarise_with = {name:?} may not receive restricted data, so it cannot read what it would summarise: add \"restricted\" to [providers.{name}] data, or name a local provider"
                ),
                None => format!("summarise_with = {name:?} is not a provider"),
            }
        };
        Err(PolicyError {
            key: "router.summarise_with".into(),
            message,
        })
    }
}

/// A configured provider, built.
pub(crate) struct Routed {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    pub model: String,
    pub allowed: BTreeSet<DataClass>,
    pub price: Option<Price>,
}

const ANTHROPIC_URL: &str = "https://api.anthropic.com";
const OPENAI_URL: &str = "https://api.openai.com/v1";

/// Builds provider `name` from its entry; `env` reads variables.
pub(crate) fn build(
    name: &str,
    e: &ProviderEntry,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Routed, LlmError> {
    let cloud = e.base_url.is_empty();
    let default_var = match e.kind {
        WireFormat::Anthropic => "ANTHROPIC_API_KEY",
        WireFormat::Openai => "OPENAI_API_KEY",
    };
    let var: &str = match (e.key_env.as_str(), cloud) {
        ("", true) => default_var,
        ("", false) => "",
        (v, _) => v,
    };
    let key = if var.is_empty() {
        None
    } else {
        env(var).filter(|k| !k.trim().is_empty())
    };
    if cloud && key.is_none() {
        return Err(LlmError::MissingKey {
            provider: name.to_string(),
            var: if var == default_var {
                default_var
            } else {
                "the variable in key_env"
            },
        });
    }
    // A local server picks its own model when none is named.
    let model = match (e.model.is_empty(), e.kind, cloud) {
        (false, _, _) => e.model.as_str(),
        (true, WireFormat::Anthropic, _) => crate::select::ANTHROPIC_DEFAULT_MODEL,
        (true, WireFormat::Openai, true) => crate::select::OPENAI_DEFAULT_MODEL,
        (true, WireFormat::Openai, false) => "",
    };
    let provider: Arc<dyn Provider> = match e.kind {
        WireFormat::Anthropic => {
            let base = if cloud {
                ANTHROPIC_URL
            } else {
                e.base_url.as_str()
            };
            Arc::new(AnthropicProvider::new(
                base,
                key.as_deref().unwrap_or_default(),
                model,
                timeout,
            ))
        }
        WireFormat::Openai => {
            let base = if cloud {
                OPENAI_URL
            } else {
                e.base_url.as_str()
            };
            Arc::new(OpenAiProvider::new(base, key.as_deref(), model, timeout))
        }
    };
    Ok(Routed {
        name: name.to_string(),
        model: provider.default_model().to_string(),
        provider,
        allowed: e.data.iter().copied().collect(),
        price: e.price,
    })
}
