//! Choosing and building the provider from config and the usual environment
//! variables (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{AnthropicProvider, LlmError, OpenAiProvider, Provider};

/// Which provider the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// Anthropic if its key is set, else OpenAI (cloud or a local server).
    #[default]
    Auto,
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI or OpenAI-compatible.
    Openai,
}

/// A concrete provider kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Anthropic.
    Anthropic,
    /// OpenAI or compatible.
    OpenAi,
}

/// What `select_provider` needs.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Provider asked for.
    pub choice: ProviderChoice,
    /// Model; empty means the provider's default.
    pub model: String,
    /// Request (and stream idle) timeout.
    pub timeout: Duration,
}

const ANTHROPIC_DEFAULT_URL: &str = "https://api.anthropic.com";
const OPENAI_DEFAULT_URL: &str = "https://api.openai.com/v1";
/// Default models when the config names none.
pub const ANTHROPIC_DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// Default OpenAI cloud model.
pub const OPENAI_DEFAULT_MODEL: &str = "gpt-4.1";

/// Builds the provider the settings and environment point at. `env` reads a
/// variable (injected so callers and tests control it).
pub fn select_provider(
    settings: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, LlmError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let kind = match settings.choice {
        ProviderChoice::Anthropic => ProviderKind::Anthropic,
        ProviderChoice::Openai => ProviderKind::OpenAi,
        ProviderChoice::Auto => {
            if get("ANTHROPIC_API_KEY").is_some() {
                ProviderKind::Anthropic
            } else if get("OPENAI_API_KEY").is_some() || get("OPENAI_BASE_URL").is_some() {
                ProviderKind::OpenAi
            } else {
                return Err(LlmError::NotConfigured);
            }
        }
    };
    match kind {
        ProviderKind::Anthropic => {
            let key = get("ANTHROPIC_API_KEY").ok_or(LlmError::MissingKey {
                provider: "anthropic".into(),
                var: "ANTHROPIC_API_KEY",
            })?;
            let base = get("ANTHROPIC_BASE_URL").unwrap_or_else(|| ANTHROPIC_DEFAULT_URL.into());
            let model = if settings.model.is_empty() {
                ANTHROPIC_DEFAULT_MODEL
            } else {
                &settings.model
            };
            Ok(Arc::new(AnthropicProvider::new(
                &base,
                &key,
                model,
                settings.timeout,
            )))
        }
        ProviderKind::OpenAi => {
            let base = get("OPENAI_BASE_URL").unwrap_or_else(|| OPENAI_DEFAULT_URL.into());
            let cloud = base.contains("api.openai.com");
            let key = get("OPENAI_API_KEY");
            if cloud && key.is_none() {
                return Err(LlmError::MissingKey {
                    provider: "openai".into(),
                    var: "OPENAI_API_KEY",
                });
            }
            // A local server picks its own model when none is configured.
            let model = match (settings.model.is_empty(), cloud) {
                (false, _) => settings.model.as_str(),
                (true, true) => OPENAI_DEFAULT_MODEL,
                (true, false) => "",
            };
            Ok(Arc::new(OpenAiProvider::new(
                &base,
                key.as_deref(),
                model,
                settings.timeout,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProviderSettings {
        ProviderSettings {
            choice: ProviderChoice::Auto,
            model: String::new(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn auto_prefers_anthropic_then_openai_then_says_what_to_set() {
        let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "k".to_string());
        assert_eq!(
            select_provider(&settings(), &env).unwrap().name(),
            "anthropic"
        );
        let env =
            |k: &str| (k == "OPENAI_BASE_URL").then(|| "http://127.0.0.1:11434/v1".to_string());
        let p = select_provider(&settings(), &env).unwrap();
        assert_eq!((p.name(), p.default_model()), ("openai", ""));
        let err = select_provider(&settings(), &|_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("ANTHROPIC_API_KEY")
                && err.contains("OPENAI_API_KEY")
                && err.contains("OPENAI_BASE_URL")
        );
    }

    #[test]
    fn explicit_choice_without_key_names_the_variable() {
        let s = ProviderSettings {
            choice: ProviderChoice::Anthropic,
            ..settings()
        };
        let err = select_provider(&s, &|_| None).err().unwrap().to_string();
        assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
        let s = ProviderSettings {
            choice: ProviderChoice::Openai,
            ..settings()
        };
        let err = select_provider(&s, &|_| None).err().unwrap().to_string();
        assert!(err.contains("OPENAI_API_KEY"), "{err}");
    }
}
