//! Stands in when no provider is configured, so `cairn serve` still starts
//! (answering health checks, serving stored data, saying not ready) and
//! every model call fails with the message that says what to set.

use async_trait::async_trait;
use cairn_core::{ModelRequest, ModelResponse};

use crate::{EventSink, LlmError, Provider};

/// A provider that is not there.
pub struct UnconfiguredProvider {
    reason: String,
}

impl UnconfiguredProvider {
    /// `reason`: what to set, as the failed selection said it.
    pub fn new(reason: impl Into<String>) -> Self {
        UnconfiguredProvider {
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl Provider for UnconfiguredProvider {
    fn name(&self) -> &str {
        "unconfigured"
    }

    fn default_model(&self) -> &str {
        ""
    }

    fn readiness(&self) -> Result<(), String> {
        Err(self.reason.clone())
    }

    async fn complete(
        &self,
        _req: &ModelRequest,
        _on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        Err(LlmError::Unconfigured(self.reason.clone()))
    }
}
